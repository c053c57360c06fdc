#include "server/predictor_training.h"

#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "oface/measurement_csv.h"
#include "predictor/mean_ensemble.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_training.h"
#include "predictor/training_data.h"
#include "predictor/xgb_predictor.h"
#include "server/measurement_samples.h"
#include "server/predictor_artifact.h"
#include "server/sha256.h"

namespace apq::server {
namespace {

using predictor::TrainingSample;

// The hold-out split draws from its own seed so that it does not repeat the trainer's split
// of the remaining records.
constexpr uint64_t kHoldoutSeedOffset = 1000;

bool HasBits(const oface::SearchSpace& space) {
  return space.feature_size() > space.arch_feature_size();
}

// The held-out count of `count` target records (ValidationSplit's rule).
int HoldoutCount(int64_t count, double fraction) {
  if (count < 2) return 0;
  const auto rounded = static_cast<int64_t>(std::llround(static_cast<double>(count) * fraction));
  return static_cast<int>(std::min(std::max<int64_t>(rounded, 1), count - 1));
}

struct SplitSamples {
  std::vector<TrainingSample> train;
  std::vector<TrainingSample> heldout;
};

// Holds out whole architectures: every record of a held-out architecture (at any bit policy)
// is held out, and its key is added to `held_architectures`, so the held-out metrics judge
// architectures the predictor never saw.
SplitSamples HoldOut(std::vector<TrainingSample> samples, double fraction, uint64_t seed,
                     int arch_inputs, std::set<std::string>* held_architectures) {
  std::vector<std::string> groups;
  groups.reserve(samples.size());
  for (const TrainingSample& sample : samples) {
    groups.push_back(predictor::ArchitectureKey(sample, arch_inputs));
  }
  std::vector<int> heldout_indices;
  if (std::set<std::string>(groups.begin(), groups.end()).size() >= 2) {
    heldout_indices =
        predictor::GroupedValidationSplit(groups, fraction, seed + kHoldoutSeedOffset);
  }
  SplitSamples split;
  size_t next = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (next < heldout_indices.size() && heldout_indices[next] == static_cast<int>(i)) {
      held_architectures->insert(groups[i]);
      split.heldout.push_back(std::move(samples[i]));
      ++next;
    } else {
      split.train.push_back(std::move(samples[i]));
    }
  }
  return split;
}

absl::Status ValidateOptions(const PredictorTrainingOptions& options) {
  if (!(options.holdout_fraction >= 0.05 && options.holdout_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("holdout_fraction: must be in [0.05, 0.5], got ", options.holdout_fraction));
  }
  if (options.max_epochs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_epochs: must be > 0, got ", options.max_epochs));
  }
  if (!(std::isfinite(options.learning_rate) && options.learning_rate > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate: must be finite and > 0, got ", options.learning_rate));
  }
  if (options.threads <= 0) return absl::InvalidArgumentError("threads: must be > 0");
  return absl::OkStatus();
}

// An MLP trainer's epoch callback that reports `stage` to on_progress.
std::function<bool(int, double, double)> EpochReporter(const PredictorTrainingOptions& options,
                                                       const std::string& stage) {
  if (!options.on_progress) return {};
  return [&options, stage](int epoch, double /*train_mse*/, double validation_rmse) {
    return options.on_progress(stage, epoch, options.max_epochs, validation_rmse);
  };
}

struct TrainedMember {
  std::unique_ptr<predictor::AccuracyPredictor> predictor;
  std::string artifact;
  std::string version;  // MLPs only.
  int train_records = 0;
  int validation_records = 0;
};

// XGBoost on the target records, reporting "xgboost" progress.
absl::StatusOr<TrainedMember> TrainXgbMember(const oface::SearchSpace& space,
                                             const std::vector<TrainingSample>& train,
                                             const PredictorTrainingOptions& options, int rounds,
                                             double learning_rate) {
  predictor::XgbTrainingOptions xgb;
  xgb.input_size = space.feature_size();
  xgb.seed = options.seed;
  xgb.max_rounds = rounds;
  xgb.learning_rate = learning_rate;
  xgb.threads = options.threads;
  if (options.on_progress) {
    xgb.on_round = [&options, rounds](int round, double rmse) {
      return options.on_progress("xgboost", round, rounds, rmse);
    };
  }
  predictor::XgbTrainingReport report;
  ASSIGN_OR_RETURN(std::unique_ptr<predictor::XgbPredictor> model,
                   predictor::XgbPredictor::Train(train, xgb, &report));
  TrainedMember member;
  member.artifact = XgbArtifact(*model);
  member.train_records = report.train_samples;
  member.validation_records = report.validation_samples;
  member.predictor = std::move(model);
  return member;
}

// The MLP on the target records; with `transfer` in a space with bitwidths, first the
// full-precision MLP on the fp32 records, whose layers start the quantization-aware one.
absl::StatusOr<TrainedMember> TrainMlpMember(const oface::SearchSpace& space,
                                             const std::vector<TrainingSample>& fp32,
                                             const std::vector<TrainingSample>& train,
                                             bool transfer,
                                             const PredictorTrainingOptions& options) {
  const bool has_bits = HasBits(space);
  predictor::MlpTrainingOptions mlp;
  mlp.name = options.name;
  mlp.arch_inputs = space.arch_feature_size();
  mlp.seed = options.seed;
  mlp.max_epochs = options.max_epochs;
  mlp.learning_rate = options.learning_rate;
  mlp.threads = options.threads;
  mlp.bit_inputs = space.feature_size() - space.arch_feature_size();
  mlp.on_epoch = EpochReporter(options, has_bits ? "quantized" : "fp32");
  predictor::MlpTrainingReport report;
  ASSIGN_OR_RETURN(predictor::MlpWeights weights,
                   transfer && has_bits
                       ? predictor::TrainMlpByTransfer(
                             fp32, train, mlp, EpochReporter(options, "fp32"), nullptr, &report)
                       : predictor::TrainMlp(train, mlp, &report));
  predictor::MlpPredictor::Options predictor_options;
  predictor_options.num_threads = options.threads;
  ASSIGN_OR_RETURN(std::unique_ptr<predictor::MlpPredictor> model,
                   predictor::MlpPredictor::Create(std::move(weights), predictor_options));
  TrainedMember member;
  ASSIGN_OR_RETURN(member.artifact, MlpArtifact(*model));
  member.version = model->version();
  member.train_records = report.train_samples;
  member.validation_records = report.validation_samples;
  member.predictor = std::move(model);
  return member;
}

}  // namespace

absl::Status CheckRecordsSuffice(const oface::SearchSpace& space, PredictorTrainingKind kind,
                                 int64_t fp32_records, int64_t quantized_records,
                                 double holdout_fraction) {
  const bool has_bits = HasBits(space);
  const int64_t target = has_bits ? quantized_records : fp32_records;
  const char* target_name = has_bits ? "quantized" : "fp32";
  const int holdout = HoldoutCount(target, holdout_fraction);
  if (holdout < 2 || target - holdout < 4) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the dataset has ", target, " ", target_name, " records (and ",
        has_bits ? fp32_records : quantized_records, " ", has_bits ? "fp32" : "quantized",
        "); training needs at least 2 held out and 4 to train and validate on (with "
        "holdout_fraction ",
        holdout_fraction, ": ", holdout, " held out)"));
  }
  const bool transfer =
      kind == PredictorTrainingKind::kMlpTransfer || kind == PredictorTrainingKind::kEnsemble;
  if (transfer && has_bits && fp32_records < 4) {
    return absl::FailedPreconditionError(
        absl::StrCat("a transfer starts from the full-precision predictor: the dataset has ",
                     fp32_records, " fp32 records, it needs at least 4"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainedPredictor> TrainPredictorFromRows(const oface::SearchSpace& space,
                                                        const std::vector<MeasurementRow>& rows,
                                                        const PredictorTrainingOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const double start = NowUnixSeconds();
  std::vector<oface::MeasurementRecord> records;
  records.reserve(rows.size());
  for (const MeasurementRow& row : rows) {
    records.push_back({row.config_json, row.accuracy, row.method, row.seconds, row.seed});
  }
  ASSIGN_OR_RETURN(MeasurementSamples samples,
                   SamplesFromMeasurements(space, records, "dataset record"));
  const bool has_bits = HasBits(space);
  RETURN_IF_ERROR(CheckRecordsSuffice(
      space, options.kind, static_cast<int64_t>(samples.fp32.size()),
      static_cast<int64_t>(samples.quantized.size()), options.holdout_fraction));
  const int arch_inputs = space.arch_feature_size();
  std::set<std::string> held_architectures;
  SplitSamples target =
      HoldOut(has_bits ? std::move(samples.quantized) : std::move(samples.fp32),
              options.holdout_fraction, options.seed, arch_inputs, &held_architectures);
  // The full-precision records of held-out architectures stay out of the transfer's first
  // stage too.
  std::vector<TrainingSample> fp32_train;
  if (has_bits) {
    for (TrainingSample& sample : samples.fp32) {
      if (held_architectures.count(predictor::ArchitectureKey(sample, arch_inputs)) == 0) {
        fp32_train.push_back(std::move(sample));
      }
    }
  }

  TrainedPredictor trained;
  trained.heldout_architectures = static_cast<int>(held_architectures.size());
  std::unique_ptr<predictor::AccuracyPredictor> result;
  if (options.kind == PredictorTrainingKind::kXgboost) {
    ASSIGN_OR_RETURN(TrainedMember xgb, TrainXgbMember(space, target.train, options,
                                                       options.max_epochs, options.learning_rate));
    trained.kind = kXgboostJsonKind;
    trained.artifact = std::move(xgb.artifact);
    trained.train_records = xgb.train_records;
    trained.validation_records = xgb.validation_records;
    result = std::move(xgb.predictor);
  } else {
    const bool transfer = options.kind != PredictorTrainingKind::kMlpScratch;
    if (transfer && has_bits) trained.fp32_records_used = static_cast<int>(fp32_train.size());
    ASSIGN_OR_RETURN(TrainedMember mlp,
                     TrainMlpMember(space, fp32_train, target.train, transfer, options));
    trained.train_records = mlp.train_records;
    trained.validation_records = mlp.validation_records;
    if (options.kind == PredictorTrainingKind::kEnsemble) {
      // The trees see the same records and the same validation split as the MLP.
      ASSIGN_OR_RETURN(
          TrainedMember xgb,
          TrainXgbMember(space, target.train, options, kXgbDefaultRounds, kXgbDefaultLearningRate));
      trained.kind = kMeanEnsembleKind;
      trained.artifact = MeanEnsembleArtifact(
          {{kMlpRawF32Kind, std::move(mlp.artifact)}, {kXgboostJsonKind, std::move(xgb.artifact)}});
      std::vector<std::unique_ptr<predictor::AccuracyPredictor>> members;
      members.push_back(std::move(mlp.predictor));
      members.push_back(std::move(xgb.predictor));
      ASSIGN_OR_RETURN(result, predictor::MeanEnsemble::Create(std::move(members)));
    } else {
      trained.kind = kMlpRawF32Kind;
      trained.artifact = std::move(mlp.artifact);
      trained.version = std::move(mlp.version);
      result = std::move(mlp.predictor);
    }
  }
  // MLP versions are the weights' own hash (MlpPredictor::version); the others hash the
  // artifact.
  if (trained.version.empty()) {
    trained.version = absl::StrCat(options.name, "-", Sha256Hex(trained.artifact).substr(0, 16));
  }
  trained.input_size = result->input_size();
  ASSIGN_OR_RETURN(trained.heldout, predictor::ScoreOnSamples(*result, target.heldout));
  trained.seconds = NowUnixSeconds() - start;
  return trained;
}

std::string PredictorMetricsJson(const TrainedPredictor& trained, const std::string& training_job) {
  const nlohmann::json metrics = {
      {"heldout_records", trained.heldout.count},
      {"rmse", trained.heldout.rmse},
      {"kendall_tau", trained.heldout.kendall_tau},
      {"pairwise_accuracy", trained.heldout.pairwise_accuracy},
      {"train_records", trained.train_records},
      {"validation_records", trained.validation_records},
      {"heldout_architectures", trained.heldout_architectures},
      {"fp32_records_used", trained.fp32_records_used},
      {"train_seconds", trained.seconds},
      {"input_size", trained.input_size},
      {"training_job", training_job},
  };
  return metrics.dump();
}

}  // namespace apq::server
