#include "predictor/shared_predictions.h"

#include <utility>

namespace apq::predictor {

void SharedPredictions::Find(const std::vector<std::string>& keys, std::vector<float>* values,
                             std::vector<bool>* found) const {
  values->assign(keys.size(), 0.0f);
  found->assign(keys.size(), false);
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto it = predictions_.find(keys[i]);
    if (it == predictions_.end()) {
      ++misses_;
      continue;
    }
    ++hits_;
    (*values)[i] = it->second;
    (*found)[i] = true;
  }
}

void SharedPredictions::Insert(const std::vector<std::string>& keys,
                               const std::vector<float>& values) {
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < keys.size() && predictions_.size() < max_entries_; ++i) {
    predictions_.emplace(keys[i], values[i]);
  }
}

SharedPredictions::Stats SharedPredictions::stats() const {
  absl::MutexLock lock(&mutex_);
  return {hits_, misses_, predictions_.size()};
}

CachingPredictor::CachingPredictor(std::unique_ptr<AccuracyPredictor> predictor,
                                   std::shared_ptr<SharedPredictions> shared)
    : predictor_(std::move(predictor)), shared_(std::move(shared)) {}

absl::Status CachingPredictor::Predict(const FeatureBatch& batch, std::vector<float>* accuracies) {
  const int samples = batch.size();
  const std::vector<int32_t>& indices = batch.indices();
  const std::vector<int32_t>& offsets = batch.offsets();
  // A sample's key: the bytes of its ascending active indices.
  keys_.resize(samples);
  for (int i = 0; i < samples; ++i) {
    keys_[i].assign(reinterpret_cast<const char*>(indices.data() + offsets[i]),
                    sizeof(int32_t) * (offsets[i + 1] - offsets[i]));
  }
  shared_->Find(keys_, &cached_, &found_);
  misses_.Clear();
  miss_keys_.clear();
  for (int i = 0; i < samples; ++i) {
    if (found_[i]) continue;
    misses_.mutable_indices()->insert(misses_.mutable_indices()->end(),
                                      indices.begin() + offsets[i],
                                      indices.begin() + offsets[i + 1]);
    misses_.EndSample();
    miss_keys_.push_back(keys_[i]);
  }
  if (!miss_keys_.empty()) {
    // The wrapped predictor validates the indices (INVALID_ARGUMENT) as without the cache.
    if (absl::Status predicted = predictor_->Predict(misses_, &miss_values_); !predicted.ok()) {
      return predicted;
    }
    shared_->Insert(miss_keys_, miss_values_);
  }
  accuracies->resize(samples);
  size_t next_miss = 0;
  for (int i = 0; i < samples; ++i) {
    (*accuracies)[i] = found_[i] ? cached_[i] : miss_values_[next_miss++];
  }
  return absl::OkStatus();
}

std::unique_ptr<AccuracyPredictor> CachingPredictor::Clone() const {
  return std::make_unique<CachingPredictor>(predictor_->Clone(), shared_);
}

}  // namespace apq::predictor
