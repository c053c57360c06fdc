#include "predictor/xgb_predictor.h"

#include <xgboost/c_api.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::predictor {
namespace {

absl::Status XgbError(const char* what) {
  return absl::InternalError(absl::StrCat("XGBoost: ", what, ": ", XGBGetLastError()));
}

// Owns a DMatrixHandle.
class Matrix {
 public:
  Matrix() = default;
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;
  ~Matrix() {
    if (handle_ != nullptr) XGDMatrixFree(handle_);
  }
  DMatrixHandle* out() { return &handle_; }
  DMatrixHandle get() const { return handle_; }

 private:
  DMatrixHandle handle_ = nullptr;
};

// Owns a BoosterHandle until released.
class Booster {
 public:
  Booster() = default;
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;
  ~Booster() {
    if (handle_ != nullptr) XGBoosterFree(handle_);
  }
  BoosterHandle* out() { return &handle_; }
  BoosterHandle get() const { return handle_; }
  BoosterHandle release() { return std::exchange(handle_, nullptr); }

 private:
  BoosterHandle handle_ = nullptr;
};

// A CSR matrix of 0/1 rows with `columns` columns (every listed index is a 1).
absl::Status MakeMatrix(const std::vector<const std::vector<int32_t>*>& rows, size_t columns,
                        Matrix* matrix) {
  std::vector<size_t> indptr = {0};
  std::vector<unsigned> indices;
  for (const std::vector<int32_t>* row : rows) {
    for (const int32_t index : *row) indices.push_back(static_cast<unsigned>(index));
    indptr.push_back(indices.size());
  }
  const std::vector<float> ones(indices.size(), 1.0f);
  if (XGDMatrixCreateFromCSREx(indptr.data(), indices.data(), ones.data(), indptr.size(),
                               indices.size(), columns, matrix->out()) != 0) {
    return XgbError("creating a matrix");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> PredictMatrix(BoosterHandle booster, const Matrix& matrix) {
  bst_ulong length = 0;
  const float* result = nullptr;
  if (XGBoosterPredict(booster, matrix.get(), 0, 0, 0, &length, &result) != 0) {
    return XgbError("predicting");
  }
  return std::vector<float>(result, result + length);
}

double Rmse(const std::vector<float>& predicted, const std::vector<float>& labels) {
  double squared = 0.0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double error = static_cast<double>(predicted[i]) - labels[i];
    squared += error * error;
  }
  return std::sqrt(squared / labels.size());
}

absl::Status CheckOptions(const XgbTrainingOptions& options) {
  if (options.input_size <= 0) return absl::InvalidArgumentError("input_size must be > 0");
  if (!(options.validation_fraction > 0.0 && options.validation_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation_fraction must be in (0, 1), got ", options.validation_fraction));
  }
  if (options.max_rounds <= 0) return absl::InvalidArgumentError("max_rounds must be > 0");
  if (options.patience <= 0) return absl::InvalidArgumentError("patience must be > 0");
  if (options.max_depth <= 0) return absl::InvalidArgumentError("max_depth must be > 0");
  if (!(options.learning_rate > 0.0 && options.learning_rate <= 1.0)) {
    return absl::InvalidArgumentError("learning_rate must be in (0, 1]");
  }
  if (!(options.subsample > 0.0 && options.subsample <= 1.0)) {
    return absl::InvalidArgumentError("subsample must be in (0, 1]");
  }
  if (!(options.colsample_bytree > 0.0 && options.colsample_bytree <= 1.0)) {
    return absl::InvalidArgumentError("colsample_bytree must be in (0, 1]");
  }
  if (!(options.min_child_weight >= 0.0)) {
    return absl::InvalidArgumentError("min_child_weight must be >= 0");
  }
  if (options.threads <= 0) return absl::InvalidArgumentError("threads must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::string> SaveModel(BoosterHandle booster) {
  bst_ulong length = 0;
  const char* bytes = nullptr;
  if (XGBoosterSaveModelToBuffer(booster, R"({"format": "json"})", &length, &bytes) != 0) {
    return XgbError("saving the model");
  }
  return std::string(bytes, length);
}

}  // namespace

absl::StatusOr<std::unique_ptr<XgbPredictor>> XgbPredictor::Train(
    const std::vector<TrainingSample>& samples, const XgbTrainingOptions& options,
    XgbTrainingReport* report) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckOptions(options));
  RETURN_IF_ERROR(ValidateTrainingSamples(samples, options.input_size));
  XgbTrainingReport local_report;
  XgbTrainingReport& out = report != nullptr ? *report : local_report;
  out = XgbTrainingReport();
  const int count = static_cast<int>(samples.size());
  out.validation_indices = ValidationSplit(count, options.validation_fraction, options.seed);
  std::vector<char> is_validation(count, 0);
  for (const int index : out.validation_indices) is_validation[index] = 1;

  std::vector<const std::vector<int32_t>*> train_rows;
  std::vector<const std::vector<int32_t>*> validation_rows;
  std::vector<float> train_labels;
  std::vector<float> validation_labels;
  for (int i = 0; i < count; ++i) {
    const std::vector<int32_t>* features = &samples[i].features;
    if (is_validation[i]) {
      validation_rows.push_back(features);
      validation_labels.push_back(static_cast<float>(samples[i].accuracy));
    } else {
      train_rows.push_back(features);
      train_labels.push_back(static_cast<float>(samples[i].accuracy));
    }
  }
  out.train_samples = static_cast<int>(train_rows.size());
  out.validation_samples = static_cast<int>(validation_rows.size());
  Matrix train;
  Matrix validation;
  RETURN_IF_ERROR(MakeMatrix(train_rows, options.input_size, &train));
  RETURN_IF_ERROR(MakeMatrix(validation_rows, options.input_size, &validation));
  if (XGDMatrixSetFloatInfo(train.get(), "label", train_labels.data(), train_labels.size()) != 0) {
    return XgbError("setting the labels");
  }

  Booster booster;
  DMatrixHandle cache[] = {train.get()};
  if (XGBoosterCreate(cache, 1, booster.out()) != 0) return XgbError("creating the booster");
  double mean = 0.0;
  for (const float label : train_labels) mean += label;
  mean /= train_labels.size();
  const std::pair<const char*, std::string> parameters[] = {
      {"objective", "reg:squarederror"},
      {"tree_method", "hist"},
      {"base_score", absl::StrCat(mean)},
      {"max_depth", absl::StrCat(options.max_depth)},
      {"eta", absl::StrCat(options.learning_rate)},
      {"subsample", absl::StrCat(options.subsample)},
      {"colsample_bytree", absl::StrCat(options.colsample_bytree)},
      {"min_child_weight", absl::StrCat(options.min_child_weight)},
      {"nthread", absl::StrCat(options.threads)},
      {"seed", absl::StrCat(options.seed % 2147483647)},
      {"verbosity", "0"},
  };
  for (const auto& [name, value] : parameters) {
    if (XGBoosterSetParam(booster.get(), name, value.c_str()) != 0) {
      return XgbError(absl::StrCat("setting ", name).c_str());
    }
  }
  double best_rmse = std::numeric_limits<double>::infinity();
  int since_best = 0;
  for (int round = 0; round < options.max_rounds; ++round) {
    if (XGBoosterUpdateOneIter(booster.get(), round, train.get()) != 0) {
      return XgbError("boosting a round");
    }
    out.rounds_run = round + 1;
    ASSIGN_OR_RETURN(std::vector<float> predicted, PredictMatrix(booster.get(), validation));
    const double rmse = Rmse(predicted, validation_labels);
    if (options.on_round && !options.on_round(round + 1, rmse)) {
      return absl::CancelledError(absl::StrCat("training cancelled after round ", round + 1));
    }
    if (rmse < best_rmse) {
      best_rmse = rmse;
      out.best_rounds = round + 1;
      since_best = 0;
    } else if (++since_best >= options.patience) {
      break;
    }
  }
  Booster best;
  if (XGBoosterSlice(booster.get(), 0, out.best_rounds, 1, best.out()) != 0) {
    return XgbError("keeping the best rounds");
  }
  ASSIGN_OR_RETURN(std::string model, SaveModel(best.get()));
  // The sliced booster is reloaded from its own bytes, so that Predict and a Deserialize of
  // Serialize() run the same model.
  ASSIGN_OR_RETURN(std::unique_ptr<XgbPredictor> predictor,
                   Deserialize(model, options.input_size, options.threads));
  ASSIGN_OR_RETURN(std::vector<float> validation_predicted,
                   PredictMatrix(static_cast<BoosterHandle>(predictor->booster_), validation));
  ASSIGN_OR_RETURN(std::vector<float> train_predicted,
                   PredictMatrix(static_cast<BoosterHandle>(predictor->booster_), train));
  out.validation_rmse = Rmse(validation_predicted, validation_labels);
  out.train_rmse = Rmse(train_predicted, train_labels);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return predictor;
}

absl::StatusOr<std::unique_ptr<XgbPredictor>> XgbPredictor::Deserialize(const std::string& model,
                                                                        int input_size,
                                                                        int threads) {
  if (input_size <= 0) return absl::InvalidArgumentError("input_size must be > 0");
  if (threads <= 0) return absl::InvalidArgumentError("threads must be > 0");
  Booster booster;
  if (XGBoosterCreate(nullptr, 0, booster.out()) != 0) return XgbError("creating a booster");
  if (XGBoosterLoadModelFromBuffer(booster.get(), model.data(), model.size()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("not an XGBoost model: ", XGBGetLastError()));
  }
  if (XGBoosterSetParam(booster.get(), "nthread", absl::StrCat(threads).c_str()) != 0) {
    return XgbError("setting nthread");
  }
  return std::unique_ptr<XgbPredictor>(
      new XgbPredictor(booster.release(), model, input_size, threads));
}

XgbPredictor::~XgbPredictor() { XGBoosterFree(static_cast<BoosterHandle>(booster_)); }

absl::Status XgbPredictor::Predict(const FeatureBatch& batch, std::vector<float>* accuracies) {
  const std::vector<int32_t>& indices = batch.indices();
  const std::vector<int32_t>& offsets = batch.offsets();
  std::vector<size_t> indptr(offsets.begin(), offsets.end());
  std::vector<unsigned> columns;
  columns.reserve(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= input_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("feature index ", indices[i], " is outside [0, ", input_size_, ")"));
    }
    columns.push_back(static_cast<unsigned>(indices[i]));
  }
  const std::vector<float> ones(columns.size(), 1.0f);
  Matrix matrix;
  if (XGDMatrixCreateFromCSREx(indptr.data(), columns.data(), ones.data(), indptr.size(),
                               columns.size(), input_size_, matrix.out()) != 0) {
    return XgbError("creating a matrix");
  }
  ASSIGN_OR_RETURN(*accuracies, PredictMatrix(static_cast<BoosterHandle>(booster_), matrix));
  return absl::OkStatus();
}

std::unique_ptr<AccuracyPredictor> XgbPredictor::Clone() const {
  absl::StatusOr<std::unique_ptr<XgbPredictor>> clone = Deserialize(model_, input_size_, threads_);
  // The model loaded once already; a failure now is an XGBoost internal error.
  return clone.ok() ? std::move(clone).value() : nullptr;
}

}  // namespace apq::predictor
