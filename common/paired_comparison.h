// Paired comparisons of two classifiers on the same images: whether one is better than the
// other beyond what chance disagreement on a finite test set explains. Two networks that
// differ by a few test images are not different; final reports say which differences hold.
//
// Thread safety: pure functions.
#ifndef APQ_COMMON_PAIRED_COMPARISON_H_
#define APQ_COMMON_PAIRED_COMPARISON_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace apq {

struct PairedComparison {
  int images = 0;
  double first_accuracy = 0.0;
  double second_accuracy = 0.0;
  // Images only the first (second) classifies correctly: McNemar's discordant pairs.
  int only_first = 0;
  int only_second = 0;
  double difference = 0.0;  // first_accuracy - second_accuracy.
  // Exact two-sided McNemar test: P(a split of the discordant pairs at least this uneven)
  // under the hypothesis that each discordant image favours either network with 1/2.
  double mcnemar_p = 1.0;
  // 95% percentile interval of `difference` over paired bootstrap resamples of the images.
  double bootstrap_low = 0.0;
  double bootstrap_high = 0.0;
};

// The exact two-sided McNemar p-value for `only_first` and `only_second` discordant pairs:
// min(1, 2 P(X <= min)) with X ~ Binomial(only_first + only_second, 1/2); 1 for no
// discordant pairs. Precondition: both counts >= 0.
double ExactMcNemarP(int only_first, int only_second);

// Compares two per-image correctness vectors (1: correct, 0: wrong, one entry per image in the
// same order). `bootstrap_samples` resamples (seeded) give the interval; 0 skips it (the
// interval is then [difference, difference]). INVALID_ARGUMENT for vectors of different or
// zero length, an entry other than 0 or 1, or bootstrap_samples outside [0, 100000].
absl::StatusOr<PairedComparison> ComparePaired(const std::vector<uint8_t>& first,
                                               const std::vector<uint8_t>& second,
                                               int bootstrap_samples, uint64_t seed);

}  // namespace apq

#endif  // APQ_COMMON_PAIRED_COMPARISON_H_
