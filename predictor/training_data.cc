#include "predictor/training_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

namespace apq::predictor {

absl::Status ValidateTrainingSamples(const std::vector<TrainingSample>& samples, int input_size) {
  if (samples.size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(samples.size(),
                     " records are too few to split into training and validation "
                     "sets (at least 4)"));
  }
  std::vector<char> seen(input_size, 0);
  for (size_t i = 0; i < samples.size(); ++i) {
    const TrainingSample& sample = samples[i];
    if (!(sample.accuracy >= 0.0 && sample.accuracy <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("record ", i, ": accuracy ", sample.accuracy, " is not in [0, 1]"));
    }
    for (const int32_t index : sample.features) {
      if (index < 0 || index >= input_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("record ", i, ": feature ", index, " is outside [0, ", input_size, ")"));
      }
      if (seen[index]) {
        return absl::InvalidArgumentError(
            absl::StrCat("record ", i, ": feature ", index, " is listed twice"));
      }
      seen[index] = 1;
    }
    for (const int32_t index : sample.features) seen[index] = 0;
  }
  return absl::OkStatus();
}

std::vector<int> ValidationSplit(int count, double fraction, uint64_t seed) {
  std::vector<int> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  // Fisher-Yates with the generator's raw output: the same split on every platform.
  for (int i = count - 1; i > 0; --i) {
    std::swap(order[i], order[static_cast<int>(rng() % static_cast<uint64_t>(i + 1))]);
  }
  const int size = std::clamp(static_cast<int>(std::lround(count * fraction)), 1, count - 1);
  std::vector<int> validation(order.begin(), order.begin() + size);
  std::sort(validation.begin(), validation.end());
  return validation;
}

}  // namespace apq::predictor
