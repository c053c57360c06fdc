#include "predictor/training_data.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>
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

std::vector<int> GroupedValidationSplit(const std::vector<std::string>& groups, double fraction,
                                        uint64_t seed) {
  const int count = static_cast<int>(groups.size());
  std::vector<std::string> distinct;
  std::map<std::string, int> group_of;
  std::vector<int> members;  // Group index of each record.
  members.reserve(groups.size());
  for (const std::string& group : groups) {
    auto [found, inserted] = group_of.emplace(group, static_cast<int>(distinct.size()));
    if (inserted) distinct.push_back(group);
    members.push_back(found->second);
  }
  const int group_count = static_cast<int>(distinct.size());
  std::vector<int> order(group_count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (int i = group_count - 1; i > 0; --i) {
    std::swap(order[i], order[static_cast<int>(rng() % static_cast<uint64_t>(i + 1))]);
  }
  std::vector<int> group_size(group_count, 0);
  for (const int group : members) ++group_size[group];
  const int target = std::clamp(static_cast<int>(std::lround(count * fraction)), 1, count - 1);
  std::vector<bool> held(group_count, false);
  int held_records = 0;
  for (int k = 0; k < group_count - 1 && held_records < target; ++k) {
    held[order[k]] = true;
    held_records += group_size[order[k]];
  }
  std::vector<int> validation;
  for (int i = 0; i < count; ++i) {
    if (held[members[i]]) validation.push_back(i);
  }
  return validation;
}

std::string ArchitectureKey(const TrainingSample& sample, int arch_inputs) {
  std::string key;
  for (const int32_t feature : sample.features) {
    if (feature < arch_inputs) absl::StrAppend(&key, feature, ",");
  }
  return key;
}

}  // namespace apq::predictor
