// Trains a space's default accuracy predictors from measurement records (the CSV that
// measure_subnets exports) and writes the quantization-aware one as the raw float32 weights
// and manifest the catalog loads (data/<space>/qa_predictor.{f32,manifest.json}):
//   bazel-bin/server/train_predictor --measurements data/fmnist_mbv2/measurements.csv
//       --out_stem data/fmnist_mbv2/qa_predictor   (one command line)
// The full-precision predictor learns from the fp32 records (architecture features); the
// quantization-aware one starts from it (transfer) and is fine-tuned on the quantized records.
#include <ATen/Parallel.h>

#include <cstdio>
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

ABSL_FLAG(std::string, space, "fmnist_mbv2",
          "The records' space: fmnist_mbv2 or fmnist_lowbit (oface/mbconv_spec.h).");
ABSL_FLAG(std::string, measurements, "", "CSV of measurement records (required).");
ABSL_FLAG(std::string, out_stem, "", "Writes <stem>.f32 and <stem>.manifest.json (required).");
ABSL_FLAG(uint64_t, seed, 1, "Split, initialisation and batch order.");
ABSL_FLAG(int, threads, 2, "LibTorch threads.");

namespace {

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
