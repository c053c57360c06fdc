// A gradient-boosted tree regressor (XGBoost's C API) over the same 0/1 config encodings as
// the MLP predictors: an alternative accuracy predictor, and a member of ensembles.
//
// Training: squared error, trees grown on the training split of the records (the MLP
// trainer's ValidationSplit, so the two are compared on the same held-out records), one
// boosting round at a time; the model keeps the rounds up to the best validation RMSE
// (early stopping after `patience` rounds without improvement). Inputs are sparse: a feature
// that is 0 is "missing" to XGBoost, which learns a default direction for it, the exact
// equivalent of a 0 for a 0/1 feature.
//
// Thread safety: an XgbPredictor is used by one thread at a time; Clone gives each job its own
// booster (loaded from the same serialized model).
#ifndef APQ_PREDICTOR_XGB_PREDICTOR_H_
#define APQ_PREDICTOR_XGB_PREDICTOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"
#include "predictor/training_data.h"

namespace apq::predictor {

struct XgbTrainingOptions {
  int input_size = 0;  // Length of the 0/1 encoding.
  double validation_fraction = 0.2;
  uint64_t seed = 1;
  int max_rounds = 2000;
  int patience = 50;
  int max_depth = 6;
  double learning_rate = 0.05;  // XGBoost's eta.
  double subsample = 0.8;
  double colsample_bytree = 0.8;
  double min_child_weight = 1.0;
  int threads = 1;
  // Called after every round with (round, validation RMSE); returning false stops training
  // with CANCELLED. May be empty.
  std::function<bool(int round, double validation_rmse)> on_round;
};

struct XgbTrainingReport {
  int train_samples = 0;
  int validation_samples = 0;
  std::vector<int> validation_indices;  // Into the samples, ascending.
  int rounds_run = 0;
  int best_rounds = 0;  // Trees kept.
  double validation_rmse = 0.0;
  double train_rmse = 0.0;
  double seconds = 0.0;
};

class XgbPredictor : public AccuracyPredictor {
 public:
  // Trains a regressor. INVALID_ARGUMENT naming the record or option as TrainMlp does
  // (predictor/mlp_training.h); INTERNAL with XGBoost's message when the library fails.
  static absl::StatusOr<std::unique_ptr<XgbPredictor>> Train(
      const std::vector<TrainingSample>& samples, const XgbTrainingOptions& options,
      XgbTrainingReport* report);
  // A predictor from a model written by Serialize. INVALID_ARGUMENT when the bytes are not an
  // XGBoost model or input_size is not positive.
  static absl::StatusOr<std::unique_ptr<XgbPredictor>> Deserialize(const std::string& model,
                                                                   int input_size, int threads = 1);
  ~XgbPredictor() override;
  XgbPredictor(const XgbPredictor&) = delete;
  XgbPredictor& operator=(const XgbPredictor&) = delete;

  int input_size() const override { return input_size_; }
  absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) override;
  std::unique_ptr<AccuracyPredictor> Clone() const override;

  // The model in XGBoost's JSON format (XGBoosterSaveModelToBuffer).
  const std::string& Serialize() const { return model_; }

 private:
  XgbPredictor(void* booster, std::string model, int input_size, int threads)
      : booster_(booster), model_(std::move(model)), input_size_(input_size), threads_(threads) {}

  void* booster_;  // BoosterHandle.
  std::string model_;
  int input_size_;
  int threads_;
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_XGB_PREDICTOR_H_
