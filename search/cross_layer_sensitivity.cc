#include "search/cross_layer_sensitivity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

// LAPACK's symmetric eigen-decomposition (Debian's liblapack).
extern "C" void dsyev_(  // NOLINT(readability-identifier-naming): LAPACK's symbol.
    const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
    double* work, const int* lwork, int* info);

namespace apq::search {
namespace {

std::vector<int> Offsets(const std::vector<int>& choices_per_slot) {
  std::vector<int> offsets;
  int offset = 0;
  for (const int choices : choices_per_slot) {
    offsets.push_back(offset);
    offset += choices;
  }
  return offsets;
}

// Calls single(s, c) for each single change of the reference, slot by slot and choice by
// choice, then (with pairs) pair(s, c, t, d) for each change of two slots t < s: the one
// order the policies are measured in and read back in.
template <typename Single, typename Pair>
void VisitChanges(const std::vector<int>& choices_per_slot, const std::vector<int>& reference,
                  bool pairs, Single single, Pair pair) {
  const int slots = static_cast<int>(choices_per_slot.size());
  for (int s = 0; s < slots; ++s) {
    for (int c = 0; c < choices_per_slot[s]; ++c) {
      if (c != reference[s]) single(s, c);
    }
  }
  if (!pairs) return;
  for (int s = 0; s < slots; ++s) {
    for (int t = 0; t < s; ++t) {
      for (int c = 0; c < choices_per_slot[s]; ++c) {
        if (c == reference[s]) continue;
        for (int d = 0; d < choices_per_slot[t]; ++d) {
          if (d != reference[t]) pair(s, c, t, d);
        }
      }
    }
  }
}

}  // namespace

int SensitivityEvaluations(const std::vector<int>& choices_per_slot, bool pairs) {
  int singles = 0;
  int products = 0;
  for (size_t s = 0; s < choices_per_slot.size(); ++s) {
    const int others = std::max(0, choices_per_slot[s] - 1);
    if (pairs) products += others * singles;
    singles += others;
  }
  return 1 + singles + products;
}

std::vector<std::vector<int>> SensitivityPolicies(const std::vector<int>& choices_per_slot,
                                                  const std::vector<int>& reference, bool pairs) {
  std::vector<std::vector<int>> policies;
  policies.reserve(SensitivityEvaluations(choices_per_slot, pairs));
  policies.push_back(reference);
  VisitChanges(
      choices_per_slot, reference, pairs,
      [&](int s, int c) {
        policies.push_back(reference);
        policies.back()[s] = c;
      },
      [&](int s, int c, int t, int d) {
        policies.push_back(reference);
        policies.back()[s] = c;
        policies.back()[t] = d;
      });
  return policies;
}

absl::StatusOr<std::vector<double>> AssembleSensitivity(const std::vector<int>& choices_per_slot,
                                                        const std::vector<int>& reference,
                                                        bool pairs,
                                                        const std::vector<double>& losses) {
  if (losses.size() != static_cast<size_t>(SensitivityEvaluations(choices_per_slot, pairs))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "losses: ", losses.size(), ", expected ", SensitivityEvaluations(choices_per_slot, pairs)));
  }
  for (const double loss : losses) {
    if (!std::isfinite(loss)) {
      return absl::InvalidArgumentError(absl::StrCat("the loss of a policy is not finite: ", loss));
    }
  }
  const std::vector<int> offsets = Offsets(choices_per_slot);
  const int n = offsets.back() + choices_per_slot.back();
  std::vector<double> g(static_cast<size_t>(n) * n, 0.0);
  const auto at = [&](int i, int j) -> double& { return g[static_cast<size_t>(i) * n + j]; };
  const double base = losses[0];
  size_t next = 1;
  VisitChanges(
      choices_per_slot, reference, pairs,
      [&](int s, int c) {
        const int i = offsets[s] + c;
        at(i, i) = losses[next++] - base;
      },
      [&](int s, int c, int t, int d) {
        const int i = offsets[s] + c;
        const int j = offsets[t] + d;
        const double interaction = (losses[next++] - base - at(i, i) - at(j, j)) / 2;
        at(i, j) = interaction;
        at(j, i) = interaction;
      });
  return g;
}

absl::StatusOr<std::vector<double>> MeasureCrossLayerSensitivity(
    const std::vector<int>& choices_per_slot, const std::vector<int>& reference,
    const std::function<absl::StatusOr<double>(const std::vector<int>& policy)>& loss,
    const SensitivityOptions& options) {
  const int slots = static_cast<int>(choices_per_slot.size());
  if (slots == 0 || reference.size() != choices_per_slot.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference: one choice per slot (", slots, ") expected"));
  }
  for (int s = 0; s < slots; ++s) {
    if (reference[s] < 0 || reference[s] >= choices_per_slot[s]) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference[", s, "]: ", reference[s], " is not a choice of the slot"));
    }
  }
  const std::vector<std::vector<int>> policies =
      SensitivityPolicies(choices_per_slot, reference, options.pairs);
  std::vector<double> losses;
  losses.reserve(policies.size());
  for (const std::vector<int>& policy : policies) {
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("the sensitivity measurement was cancelled");
    }
    absl::StatusOr<double> value = loss(policy);
    if (!value.ok()) return value.status();
    if (!std::isfinite(*value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the loss of a policy is not finite: ", *value));
    }
    losses.push_back(*value);
    if (options.progress) {
      options.progress(static_cast<int>(losses.size()), static_cast<int>(policies.size()));
    }
  }
  return AssembleSensitivity(choices_per_slot, reference, options.pairs, losses);
}

absl::StatusOr<std::vector<double>> ClipToPositiveSemidefinite(const std::vector<double>& g,
                                                               int n) {
  if (n <= 0 || g.size() != static_cast<size_t>(n) * n) {
    return absl::InvalidArgumentError(absl::StrCat("g: ", g.size(), " entries, not ", n, " x ", n));
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double value = g[static_cast<size_t>(i) * n + j];
      if (!std::isfinite(value) || value != g[static_cast<size_t>(j) * n + i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("g: not symmetric and finite at (", i, ", ", j, ")"));
      }
    }
  }
  std::vector<double> vectors = g;  // Symmetric: row- and column-major alike.
  std::vector<double> values(n);
  int info = 0;
  int lwork = -1;
  double optimal_work = 0;
  dsyev_("V", "U", &n, vectors.data(), &n, values.data(), &optimal_work, &lwork, &info);
  if (info != 0) return absl::InternalError(absl::StrCat("dsyev workspace query: info ", info));
  lwork = std::max(1, static_cast<int>(optimal_work));
  std::vector<double> work(lwork);
  dsyev_("V", "U", &n, vectors.data(), &n, values.data(), work.data(), &lwork, &info);
  if (info != 0) return absl::InternalError(absl::StrCat("dsyev: info ", info));
  // Column k of `vectors` (column-major) is the eigenvector of values[k].
  std::vector<double> clipped(static_cast<size_t>(n) * n, 0.0);
  for (int k = 0; k < n; ++k) {
    const double value = std::max(0.0, values[k]);
    if (value == 0.0) continue;
    const double* v = &vectors[static_cast<size_t>(k) * n];
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) clipped[static_cast<size_t>(i) * n + j] += value * v[i] * v[j];
    }
  }
  // Exactly symmetric, whatever the rounding of the sums.
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) {
      const double mean =
          (clipped[static_cast<size_t>(i) * n + j] + clipped[static_cast<size_t>(j) * n + i]) / 2;
      clipped[static_cast<size_t>(i) * n + j] = mean;
      clipped[static_cast<size_t>(j) * n + i] = mean;
    }
  }
  return clipped;
}

}  // namespace apq::search
