// Trains one accuracy predictor of a space from a dataset's measurement records, the way the
// TrainPredictor RPC does: which records feed which network, the held-out records that
// measure the result, and the stored form of the result (server/predictor_artifact.h).
//
// Kinds: the transferred MLP, the MLP from scratch, XGBoost, and the mean of the transferred
// MLP and XGBoost trained on the same records (an ensemble).
//
// Records: "fp32" ones (oface::kMeasuredFp32) feed the full-precision predictor with their
// architecture features; every other method is a quantized measurement and feeds the
// quantization-aware predictor with the full encoding. In a space without bitwidths the
// fp32 records are the target. A seeded `holdout_fraction` of the target records never takes
// part in training (the fp32 records of a transfer all do); the result's metrics are measured
// on them. The rest goes to the trainer, which holds out its own validation records for early
// stopping (predictor/mlp_training.h, predictor/xgb_predictor.h).
#ifndef APQ_SERVER_PREDICTOR_TRAINING_H_
#define APQ_SERVER_PREDICTOR_TRAINING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "oface/search_space.h"
#include "predictor/ranking_metrics.h"
#include "server/store/records.h"

namespace apq::server {

// Values match apq.v1.PredictorKind.
enum class PredictorTrainingKind { kMlpTransfer = 1, kMlpScratch = 2, kXgboost = 3, kEnsemble = 4 };

// The fewest records of a dataset (UploadDataset) and of the records a kind trains on: two
// held out for metrics, four to train and validate.
inline constexpr int kMinDatasetRecords = 8;

// The trainers' defaults (predictor/mlp_training.h, predictor/xgb_predictor.h).
inline constexpr int kMlpDefaultEpochs = 400;
inline constexpr double kMlpDefaultLearningRate = 1e-3;
inline constexpr int kXgbDefaultRounds = 2000;
inline constexpr double kXgbDefaultLearningRate = 0.05;

struct PredictorTrainingOptions {
  PredictorTrainingKind kind = PredictorTrainingKind::kMlpTransfer;
  uint64_t seed = 1;              // Hold-out split, trainer split, initialisation and batch order.
  double holdout_fraction = 0.2;  // In [0.05, 0.5].
  // MLP epochs and Adam's step, or XGBoost's rounds and eta (an ensemble's MLP takes these;
  // its trees take XGBoost's defaults, 2000 rounds and eta 0.05). Both > 0.
  int max_epochs = 400;
  double learning_rate = 1e-3;
  int threads = 1;   // LibTorch / XGBoost threads.
  std::string name;  // Prefix of the predictor's version, e.g. "fmnist_mbv2-mlp".
  // Called after every epoch (round) of each stage: "fp32", "quantized" or "xgboost", the
  // epochs done, the stage's limit and the epoch's validation RMSE. Returning false cancels
  // training (CANCELLED).
  std::function<bool(const std::string& stage, int epoch, int max_epochs, double validation_rmse)>
      on_progress;
};

// How the records split for the kind: FAILED_PRECONDITION naming the counts when a dataset
// with `fp32_records` and `quantized_records` cannot train it.
absl::Status CheckRecordsSuffice(const oface::SearchSpace& space, PredictorTrainingKind kind,
                                 int64_t fp32_records, int64_t quantized_records,
                                 double holdout_fraction);

struct TrainedPredictor {
  std::string kind;  // PredictorRecord::kind
  std::string artifact;
  std::string version;
  int input_size = 0;
  predictor::RankingMetrics heldout;  // On the held-out target records.
  int train_records = 0;              // Target records the final stage was fitted on.
  int validation_records = 0;         // Target records that chose when it stopped.
  // Architectures held out (all their records, at every precision, stay out of training).
  int heldout_architectures = 0;
  // Full-precision records the transfer's first stage learned from (0 without one).
  int fp32_records_used = 0;
  double seconds = 0.0;
};

// Trains as described above. INVALID_ARGUMENT for bad options or a row whose config is not
// in the space (named); FAILED_PRECONDITION as CheckRecordsSuffice; ABORTED when training
// diverges; CANCELLED by on_progress.
absl::StatusOr<TrainedPredictor> TrainPredictorFromRows(const oface::SearchSpace& space,
                                                        const std::vector<MeasurementRow>& rows,
                                                        const PredictorTrainingOptions& options);

// The metrics JSON stored with a predictor (PredictorRecord::metrics_json): the held-out
// metrics, the record counts, the seconds, the input size and the training job's id.
std::string PredictorMetricsJson(const TrainedPredictor& trained, const std::string& training_job);

}  // namespace apq::server

#endif  // APQ_SERVER_PREDICTOR_TRAINING_H_
