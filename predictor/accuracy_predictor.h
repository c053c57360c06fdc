// The accuracy-predictor interface used by search. Free of LibTorch headers on purpose:
// everything that includes this compiles fast.
#ifndef APQ_PREDICTOR_ACCURACY_PREDICTOR_H_
#define APQ_PREDICTOR_ACCURACY_PREDICTOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace apq::predictor {

// A batch of 0/1 input vectors stored sparsely: sample i's ones are at
// indices[offsets[i] .. offsets[i+1]), ascending.
class FeatureBatch {
 public:
  FeatureBatch() { offsets_.push_back(0); }

  void Clear() {
    indices_.clear();
    offsets_.assign(1, 0);
  }
  // Appends a sample whose ones were already pushed with `mutable_indices()`.
  void EndSample() { offsets_.push_back(static_cast<int32_t>(indices_.size())); }
  std::vector<int32_t>* mutable_indices() { return &indices_; }

  int size() const { return static_cast<int>(offsets_.size()) - 1; }
  const std::vector<int32_t>& indices() const { return indices_; }
  const std::vector<int32_t>& offsets() const { return offsets_; }

 private:
  std::vector<int32_t> indices_;
  std::vector<int32_t> offsets_;
};

class AccuracyPredictor {
 public:
  virtual ~AccuracyPredictor() = default;

  // Length of the 0/1 input vector.
  virtual int input_size() const = 0;

  // Writes one predicted accuracy (a fraction, 0.8 = 80 %) per sample to `accuracies`
  // (resized to batch.size()). INVALID_ARGUMENT if an index is outside [0, input_size()).
  // Not thread-safe: a predictor may reuse internal buffers between calls; give each
  // concurrent job its own instance (see Clone).
  virtual absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) = 0;

  // A new predictor with the same weights (shared, read-only) and its own buffers.
  virtual std::unique_ptr<AccuracyPredictor> Clone() const = 0;
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_ACCURACY_PREDICTOR_H_
