// Predictions shared between searches that use one predictor on one space's encoding (the
// scenarios of a sweep): a network's predicted accuracy does not depend on the budget or the
// device it is searched for, so a network that one scenario scored is not scored again by
// another.
//
// `SharedPredictions` maps a network's encoding (its active feature indices) to the
// prediction. `CachingPredictor` wraps a predictor: each batch is looked up, only the
// misses go to the wrapped predictor (in their batch order), and their predictions are kept.
// A prediction through the cache equals the wrapped predictor's for the same sample as long
// as the wrapped predictor scores each sample independently of the others in its batch
// (every predictor of this project does: MLP rows are computed one by one, XGBoost trees per
// row, an ensemble per member).
//
// Memory is bounded: beyond `max_entries` new predictions are computed but not kept.
//
// Thread safety: SharedPredictions may be used from any thread; a CachingPredictor, like any
// AccuracyPredictor, by one thread at a time (Clone one per thread; clones share the cache).
#ifndef APQ_PREDICTOR_SHARED_PREDICTIONS_H_
#define APQ_PREDICTOR_SHARED_PREDICTIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "predictor/accuracy_predictor.h"

namespace apq::predictor {

class SharedPredictions {
 public:
  // About 100 bytes per entry for the spaces of this project (40-60 active features).
  static constexpr size_t kDefaultMaxEntries = 1 << 20;

  explicit SharedPredictions(size_t max_entries = kDefaultMaxEntries) : max_entries_(max_entries) {}

  // For each key: its prediction into `values[i]` and true into `found[i]` when held.
  void Find(const std::vector<std::string>& keys, std::vector<float>* values,
            std::vector<bool>* found) const;
  // Keeps the predictions of keys not held yet, while there is room.
  void Insert(const std::vector<std::string>& keys, const std::vector<float>& values);

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;
    size_t entries = 0;
  };
  Stats stats() const;

 private:
  const size_t max_entries_;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, float> predictions_ ABSL_GUARDED_BY(mutex_);
  mutable int64_t hits_ ABSL_GUARDED_BY(mutex_) = 0;
  mutable int64_t misses_ ABSL_GUARDED_BY(mutex_) = 0;
};

class CachingPredictor final : public AccuracyPredictor {
 public:
  // Both non-null.
  CachingPredictor(std::unique_ptr<AccuracyPredictor> predictor,
                   std::shared_ptr<SharedPredictions> shared);

  int input_size() const override { return predictor_->input_size(); }
  // As the wrapped predictor's Predict (the same errors, nothing kept on error).
  absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) override;
  std::unique_ptr<AccuracyPredictor> Clone() const override;

 private:
  std::unique_ptr<AccuracyPredictor> predictor_;
  std::shared_ptr<SharedPredictions> shared_;
  // Per-call buffers.
  std::vector<std::string> keys_;
  std::vector<float> cached_;
  std::vector<bool> found_;
  FeatureBatch misses_;
  std::vector<std::string> miss_keys_;
  std::vector<float> miss_values_;
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_SHARED_PREDICTIONS_H_
