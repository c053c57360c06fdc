// Trains a space's shipped accuracy predictor from measurement records (the CSV that
// measure_subnets exports) and writes it where the catalog loads it:
//   bazel-bin/server/train_predictor --measurements data/fmnist_mbv2/measurements.csv
//       --out_stem data/fmnist_mbv2/qa_predictor   (one command line)
// --kind mlp-transfer (the default): the full-precision predictor learns from the fp32
// records (architecture features); the quantization-aware one starts from it (transfer) and
// is fine-tuned on every quantized record; written as <stem>.f32 + <stem>.manifest.json.
// --kind ensemble, xgboost or mlp-scratch: trained as the TrainPredictor RPC trains that kind
// (server/predictor_training.h), with --holdout_fraction of the architectures held out to
// measure it (printed); written as one file, <stem>.artifact (server/predictor_artifact.h).
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_training.h"
#include "server/measurement_samples.h"
#include "server/predictor_artifact.h"
#include "server/predictor_training.h"
#include "server/store/records.h"

ABSL_FLAG(std::string, space, "fmnist_mbv2",
          "The records' space: fmnist_mbv2, fmnist_lowbit or fmnist_int8float "
          "(oface/mbconv_spec.h).");
ABSL_FLAG(std::string, measurements, "", "CSV of measurement records (required).");
ABSL_FLAG(std::string, out_stem, "", "Writes <stem>.f32 and <stem>.manifest.json (required).");
ABSL_FLAG(uint64_t, seed, 1, "Split, initialisation and batch order.");
ABSL_FLAG(int, threads, 2, "LibTorch threads.");
ABSL_FLAG(std::string, kind, "mlp-transfer",
          "mlp-transfer, mlp-scratch, xgboost or ensemble (the mean of the transferred MLP and "
          "XGBoost).");
ABSL_FLAG(double, holdout_fraction, 0.1,
          "For the kinds other than mlp-transfer: the fraction of architectures held out to "
          "measure the result, in [0.05, 0.5].");

namespace {

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", temporary));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", temporary, ": ", error.message()));
  }
  return absl::OkStatus();
}

// Kinds other than mlp-transfer: trained as the TrainPredictor RPC does.
absl::Status TrainStoredKind(const apq::oface::SearchSpace& space,
                             apq::server::PredictorTrainingKind kind,
                             const std::vector<apq::oface::MeasurementRecord>& records,
                             const std::string& space_name, const std::string& out_stem) {
  std::vector<apq::server::MeasurementRow> rows;
  rows.reserve(records.size());
  for (const apq::oface::MeasurementRecord& record : records) {
    rows.push_back({0, record.config_json, record.accuracy, record.method, record.seconds,
                    record.seed, record.split, 0.0});
  }
  apq::server::PredictorTrainingOptions options;
  options.kind = kind;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.holdout_fraction = absl::GetFlag(FLAGS_holdout_fraction);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.name = absl::StrCat(space_name, "-", absl::GetFlag(FLAGS_kind));
  ASSIGN_OR_RETURN(apq::server::TrainedPredictor trained,
                   apq::server::TrainPredictorFromRows(space, rows, options));
  std::printf(
      "%s: trained on %d records (%d more chose when to stop), %d fp32 records in its first "
      "stage, %.1f s\nheld out: %d records of %d architectures never trained on: RMSE %.2f "
      "points, Kendall tau %.3f, pairwise accuracy %.3f\n",
      trained.kind.c_str(), trained.train_records, trained.validation_records,
      trained.fp32_records_used, trained.seconds, trained.heldout.count,
      trained.heldout_architectures, 100.0 * trained.heldout.rmse, trained.heldout.kendall_tau,
      trained.heldout.pairwise_accuracy);
  const std::string path = out_stem + ".artifact";
  RETURN_IF_ERROR(WriteFileAtomically(
      path, apq::server::EncodeShippedArtifact({trained.kind, trained.version, trained.artifact})));
  std::printf("wrote %s (version %s)\n", path.c_str(), trained.version.c_str());
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string measurements = absl::GetFlag(FLAGS_measurements);
  const std::string out_stem = absl::GetFlag(FLAGS_out_stem);
  if (measurements.empty()) return absl::InvalidArgumentError("--measurements is required");
  if (out_stem.empty()) return absl::InvalidArgumentError("--out_stem is required");
  if (absl::GetFlag(FLAGS_threads) <= 0) {
    return absl::InvalidArgumentError("--threads must be > 0");
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<apq::oface::MbConvSpec> spec =
      apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space));
  if (!spec.ok())
    return absl::InvalidArgumentError(absl::StrCat("--space: ", spec.status().message()));
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::SearchSpace> space,
                   apq::oface::NewMbConvQuantSpace(*spec));
  ASSIGN_OR_RETURN(std::vector<apq::oface::MeasurementRecord> records,
                   apq::oface::ReadMeasurementCsv(measurements));
  const std::string kind = absl::GetFlag(FLAGS_kind);
  if (kind != "mlp-transfer") {
    const std::map<std::string, apq::server::PredictorTrainingKind> kinds = {
        {"mlp-scratch", apq::server::PredictorTrainingKind::kMlpScratch},
        {"xgboost", apq::server::PredictorTrainingKind::kXgboost},
        {"ensemble", apq::server::PredictorTrainingKind::kEnsemble}};
    const auto found = kinds.find(kind);
    if (found == kinds.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kind: mlp-transfer, mlp-scratch, xgboost or ensemble, got '", kind, "'"));
    }
    return TrainStoredKind(*space, found->second, records, absl::GetFlag(FLAGS_space), out_stem);
  }
  const int arch_inputs = space->arch_feature_size();
  ASSIGN_OR_RETURN(apq::server::MeasurementSamples samples,
                   apq::server::SamplesFromMeasurements(*space, records, measurements));
  const std::vector<apq::predictor::TrainingSample>& fp32 = samples.fp32;
  const std::vector<apq::predictor::TrainingSample>& quant = samples.quantized;
  apq::predictor::MlpTrainingOptions options;
  options.name = "qa_predictor";
  options.arch_inputs = arch_inputs;
  options.bit_inputs = space->feature_size() - arch_inputs;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.threads = absl::GetFlag(FLAGS_threads);
  apq::predictor::MlpTrainingReport fp32_report;
  apq::predictor::MlpTrainingReport report;
  ASSIGN_OR_RETURN(
      apq::predictor::MlpWeights quant_weights,
      apq::predictor::TrainMlpByTransfer(fp32, quant, options, nullptr, &fp32_report, &report));
  std::printf("fp32 predictor: %zu records, validation RMSE %.4f (mean predictor %.4f)\n",
              fp32.size(), fp32_report.validation_rmse, fp32_report.initial_validation_rmse);
  std::printf(
      "quantization-aware predictor (by transfer): %zu records, validation RMSE %.4f (the "
      "transferred start %.4f), best epoch %d of %d\n",
      quant.size(), report.validation_rmse, report.initial_validation_rmse, report.best_epoch,
      report.epochs_run);
  ASSIGN_OR_RETURN(std::unique_ptr<apq::predictor::MlpPredictor> predictor,
                   apq::predictor::MlpPredictor::Create(std::move(quant_weights), {}));
  RETURN_IF_ERROR(predictor->WriteRawFloat32(out_stem + ".f32", out_stem + ".manifest.json"));
  std::printf("wrote %s.f32 and %s.manifest.json (version %s)\n", out_stem.c_str(),
              out_stem.c_str(), predictor->version().c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("train_predictor", argc, argv, Run); }
