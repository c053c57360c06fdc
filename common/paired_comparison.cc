#include "common/paired_comparison.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace apq {

double ExactMcNemarP(int only_first, int only_second) {
  const int n = only_first + only_second;
  if (n == 0) return 1.0;
  const int k = std::min(only_first, only_second);
  // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n reaches 10,000).
  const double log_half_n = n * std::log(0.5);
  double tail = 0.0;
  for (int i = 0; i <= k; ++i) {
    const double log_choose =
        std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0);
    tail += std::exp(log_choose + log_half_n);
  }
  return std::min(1.0, 2.0 * tail);
}

absl::StatusOr<PairedComparison> ComparePaired(const std::vector<uint8_t>& first,
                                               const std::vector<uint8_t>& second,
                                               int bootstrap_samples, uint64_t seed) {
  if (first.empty() || first.size() != second.size()) {
    return absl::InvalidArgumentError(absl::StrCat("paired comparison: ", first.size(), " and ",
                                                   second.size(),
                                                   " images; need the same non-zero count"));
  }
  if (bootstrap_samples < 0 || bootstrap_samples > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap_samples: must be in [0, 100000], got ", bootstrap_samples));
  }
  PairedComparison result;
  result.images = static_cast<int>(first.size());
  int first_correct = 0;
  int second_correct = 0;
  // Per image: +1 only the first is right, -1 only the second, 0 both or neither.
  std::vector<int8_t> signs(first.size(), 0);
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] > 1 || second[i] > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("paired comparison: image ", i, " has an entry other than 0 or 1"));
    }
    first_correct += first[i];
    second_correct += second[i];
    signs[i] = static_cast<int8_t>(first[i] - second[i]);
    result.only_first += signs[i] > 0;
    result.only_second += signs[i] < 0;
  }
  result.first_accuracy = static_cast<double>(first_correct) / result.images;
  result.second_accuracy = static_cast<double>(second_correct) / result.images;
  result.difference = result.first_accuracy - result.second_accuracy;
  result.mcnemar_p = ExactMcNemarP(result.only_first, result.only_second);
  result.bootstrap_low = result.bootstrap_high = result.difference;
  if (bootstrap_samples > 0) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick(0, result.images - 1);
    std::vector<double> differences(bootstrap_samples);
    for (double& difference : differences) {
      int sum = 0;
      for (int i = 0; i < result.images; ++i) sum += signs[pick(rng)];
      difference = static_cast<double>(sum) / result.images;
    }
    std::sort(differences.begin(), differences.end());
    const auto at = [&](double quantile) {
      const auto index = static_cast<size_t>(std::floor(quantile * (bootstrap_samples - 1) + 0.5));
      return differences[std::min(index, differences.size() - 1)];
    };
    result.bootstrap_low = at(0.025);
    result.bootstrap_high = at(0.975);
  }
  return result;
}

}  // namespace apq
