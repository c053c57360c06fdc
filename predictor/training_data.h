// The records accuracy predictors learn from, and how every trainer splits them, so that
// predictors trained on the same records are compared on the same held-out records.
#ifndef APQ_PREDICTOR_TRAINING_DATA_H_
#define APQ_PREDICTOR_TRAINING_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace apq::predictor {

// One record: the indices of the ones of the config's 0/1 encoding (SearchSpace::
// ActiveFeatures: architecture features first, then bit features) and its measured accuracy.
struct TrainingSample {
  std::vector<int32_t> features;
  double accuracy = 0.0;
};

// INVALID_ARGUMENT naming the record ("record <i>: ...") for a feature index outside
// [0, input_size), an index listed twice, or an accuracy that is NaN or outside [0, 1]; for
// fewer than 4 records (too few to split into training and validation sets).
absl::Status ValidateTrainingSamples(const std::vector<TrainingSample>& samples, int input_size);

// The indices of the validation records of a split of `count` records (a seeded shuffle, the
// first round(count x fraction) of it, at least 1 and at most count - 1), ascending.
// Precondition: count >= 2.
std::vector<int> ValidationSplit(int count, double fraction, uint64_t seed);

// A split that never separates the records of one group (e.g. one architecture measured at
// several bit policies, or at full precision and quantized): the distinct groups, in order of
// first appearance, are shuffled as ValidationSplit shuffles records, and whole groups are
// taken until round(count x fraction) records are held (at least one group; never every
// group). Returns the held records' indices, ascending. With every group a single record it
// is ValidationSplit(count, fraction, seed). Precondition: at least two groups.
std::vector<int> GroupedValidationSplit(const std::vector<std::string>& groups, double fraction,
                                        uint64_t seed);

// The group key of an encoded record of a space: its architecture features (indices below
// `arch_inputs`), so that the fp32 and quantized records of one architecture share a key.
std::string ArchitectureKey(const TrainingSample& sample, int arch_inputs);

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_TRAINING_DATA_H_
