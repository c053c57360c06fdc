#include "search/cross_layer_sensitivity.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::search {
namespace {

using ::testing::HasSubstr;

// A loss that is a sum of per-slot and per-pair terms of the choices (any such loss, not only
// one that is zero at the reference), as CLADO's model assumes.
struct PairwiseLoss {
  PairwiseLoss(const std::vector<int>& choices, uint64_t seed, bool with_pairs)
      : choices_per_slot(choices) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, 1);
    const int slots = static_cast<int>(choices.size());
    single.resize(slots);
    pair.assign(slots, std::vector<std::vector<std::vector<double>>>(slots));
    for (int s = 0; s < slots; ++s) {
      for (int c = 0; c < choices[s]; ++c) single[s].push_back(normal(rng));
      for (int t = 0; t < s; ++t) {
        pair[s][t].assign(choices[s], std::vector<double>(choices[t], 0.0));
        for (auto& row : pair[s][t]) {
          for (double& value : row) value = with_pairs ? normal(rng) : 0.0;
        }
      }
    }
  }
  double operator()(const std::vector<int>& policy) const {
    double total = 2.5;
    for (size_t s = 0; s < policy.size(); ++s) {
      total += single[s][policy[s]];
      for (size_t t = 0; t < s; ++t) total += pair[s][t][policy[s]][policy[t]];
    }
    return total;
  }
  std::vector<int> choices_per_slot;
  std::vector<std::vector<double>> single;
  std::vector<std::vector<std::vector<std::vector<double>>>> pair;
};

double Quadratic(const std::vector<double>& g, const std::vector<int>& choices,
                 const std::vector<int>& policy) {
  std::vector<int> chosen;
  int offset = 0;
  for (size_t s = 0; s < policy.size(); ++s) {
    chosen.push_back(offset + policy[s]);
    offset += choices[s];
  }
  const int n = offset;
  double total = 0;
  for (const int i : chosen) {
    for (const int j : chosen) total += g[static_cast<size_t>(i) * n + j];
  }
  return total;
}

// Calls `visit` with every policy.
template <typename Visit>
void ForEachPolicy(const std::vector<int>& choices, Visit visit) {
  std::vector<int> policy(choices.size(), 0);
  while (true) {
    visit(policy);
    size_t s = 0;
    while (s < choices.size() && ++policy[s] == choices[s]) policy[s++] = 0;
    if (s == choices.size()) return;
  }
}

TEST(CrossLayerSensitivityTest, APairwiseLossIsRecoveredExactlyForEveryPolicy) {
  const std::vector<int> choices = {3, 2, 4, 3};
  const std::vector<int> reference = {2, 1, 3, 0};
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const PairwiseLoss loss(choices, seed, /*with_pairs=*/true);
    int calls = 0;
    const absl::StatusOr<std::vector<double>> g = MeasureCrossLayerSensitivity(
        choices, reference, [&](const std::vector<int>& policy) -> absl::StatusOr<double> {
          ++calls;
          return loss(policy);
        });
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(calls, SensitivityEvaluations(choices, true));
    EXPECT_EQ(calls, 1 + 8 + (2 * 1 + 2 * 3 + 1 * 3 + 2 * 2 + 1 * 2 + 3 * 2));
    const double base = loss(reference);
    ForEachPolicy(choices, [&](const std::vector<int>& policy) {
      EXPECT_NEAR(Quadratic(*g, choices, policy), loss(policy) - base, 1e-9);
    });
  }
}

TEST(CrossLayerSensitivityTest, WithoutPairsAnAdditiveLossIsRecoveredAndInteractionsAreNot) {
  const std::vector<int> choices = {3, 3, 2};
  const std::vector<int> reference = {2, 2, 1};
  const PairwiseLoss additive(choices, 7, /*with_pairs=*/false);
  int calls = 0;
  const absl::StatusOr<std::vector<double>> g = MeasureCrossLayerSensitivity(
      choices, reference,
      [&](const std::vector<int>& policy) -> absl::StatusOr<double> {
        ++calls;
        return additive(policy);
      },
      SensitivityOptions{/*pairs=*/false, nullptr, nullptr});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(calls, 1 + 5);
  ForEachPolicy(choices, [&](const std::vector<int>& policy) {
    EXPECT_NEAR(Quadratic(*g, choices, policy), additive(policy) - additive(reference), 1e-9);
  });
  // With interactions, the diagonal alone misses them on policies that change two slots.
  const PairwiseLoss interacting(choices, 8, /*with_pairs=*/true);
  const absl::StatusOr<std::vector<double>> diagonal = MeasureCrossLayerSensitivity(
      choices, reference,
      [&](const std::vector<int>& policy) -> absl::StatusOr<double> { return interacting(policy); },
      SensitivityOptions{/*pairs=*/false, nullptr, nullptr});
  ASSERT_TRUE(diagonal.ok());
  const std::vector<int> two_changes = {0, 0, 1};
  EXPECT_GT(std::abs(Quadratic(*diagonal, choices, two_changes) -
                     (interacting(two_changes) - interacting(reference))),
            1e-6);
}

TEST(CrossLayerSensitivityTest, ProgressCancellationAndBadInput) {
  const std::vector<int> choices = {2, 2, 2};
  const PairwiseLoss loss(choices, 3, true);
  const auto value = [&](const std::vector<int>& policy) -> absl::StatusOr<double> {
    return loss(policy);
  };
  std::vector<int> reported;
  int asked = 0;
  SensitivityOptions options;
  options.progress = [&](int done, int total) {
    reported.push_back(done);
    EXPECT_EQ(total, SensitivityEvaluations(choices, true));
  };
  options.cancelled = [&] { return ++asked > 4; };
  const absl::StatusOr<std::vector<double>> cancelled =
      MeasureCrossLayerSensitivity(choices, {0, 0, 0}, value, options);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(reported, ::testing::ElementsAre(1, 2, 3, 4));

  EXPECT_EQ(MeasureCrossLayerSensitivity(choices, {0, 2, 0}, value).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureCrossLayerSensitivity(choices, {0, 0}, value).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::StatusOr<std::vector<double>> not_finite = MeasureCrossLayerSensitivity(
      choices, {0, 0, 0},
      [](const std::vector<int>& /*policy*/) -> absl::StatusOr<double> { return std::nan(""); });
  EXPECT_EQ(not_finite.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_finite.status().message()), HasSubstr("not finite"));
  const absl::StatusOr<std::vector<double>> failing = MeasureCrossLayerSensitivity(
      choices, {0, 0, 0}, [](const std::vector<int>& /*policy*/) -> absl::StatusOr<double> {
        return absl::UnavailableError("no supernet");
      });
  EXPECT_EQ(failing.status().code(), absl::StatusCode::kUnavailable);
}

TEST(CrossLayerSensitivityTest, ClippingKeepsAPositiveSemidefiniteMatrixAndClipsOtherwise) {
  // [[1, 2], [2, 1]]: eigenvalues 3 on (1, 1) and -1 on (1, -1); clipped: 1.5 everywhere.
  const absl::StatusOr<std::vector<double>> clipped = ClipToPositiveSemidefinite({1, 2, 2, 1}, 2);
  ASSERT_TRUE(clipped.ok());
  for (const double value : *clipped) EXPECT_NEAR(value, 1.5, 1e-12);

  // A A^T is positive semi-definite: unchanged.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0, 1);
  const int n = 7;
  std::vector<double> a(n * 3);
  for (double& value : a) value = normal(rng);
  std::vector<double> psd(n * n, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      for (int k = 0; k < 3; ++k) psd[i * n + j] += a[i * 3 + k] * a[j * 3 + k];
    }
  }
  const absl::StatusOr<std::vector<double>> same = ClipToPositiveSemidefinite(psd, n);
  ASSERT_TRUE(same.ok());
  for (int i = 0; i < n * n; ++i) EXPECT_NEAR((*same)[i], psd[i], 1e-9);

  // An indefinite matrix: the result is symmetric and v^T G v >= 0 for every v tried.
  std::vector<double> indefinite(n * n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) indefinite[i * n + j] = indefinite[j * n + i] = normal(rng);
  }
  const absl::StatusOr<std::vector<double>> fixed = ClipToPositiveSemidefinite(indefinite, n);
  ASSERT_TRUE(fixed.ok());
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> v(n);
    for (double& value : v) value = normal(rng);
    double form = 0;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) form += v[i] * (*fixed)[i * n + j] * v[j];
    }
    EXPECT_GE(form, -1e-9);
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) EXPECT_EQ((*fixed)[i * n + j], (*fixed)[j * n + i]);
  }
  EXPECT_EQ(ClipToPositiveSemidefinite({1, 2, 3, 1}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClipToPositiveSemidefinite({1, 2, 3}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::search
