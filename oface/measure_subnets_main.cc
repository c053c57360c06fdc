// Measures sampled subnets of a trained Fashion-MNIST supernet (oface/subnet_measurement.h)
// and appends one CSV line per subnet, resumably (configs already in the CSV with the same
// method are skipped):
//   bazel-bin/oface/measure_subnets --checkpoint W.pt --count 1000 --seed 1 --out fp32.csv
//   bazel-bin/oface/measure_subnets --checkpoint W.pt --count 300 --quantized --out quant.csv
// A progress line per record goes to stderr.
#include <ATen/Parallel.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

ABSL_FLAG(std::string, checkpoint, "",
          "Supernet weights (Supernet::SaveWeights or the trainer's checkpoint.pt).");
ABSL_FLAG(std::string, out, "", "CSV file the records are appended to.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files.");
ABSL_FLAG(int, count, 100, "Configs of the job (the first N distinct ones of the seed).");
ABSL_FLAG(bool, quantized, false,
          "Measure (subnet, bit policy) pairs with the supernet's fake quantization.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of config sampling and of the calibration subset.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, calibration_images, 2000, "Training images for BN recalibration.");
ABSL_FLAG(int, test_images, 0, "First N test images to evaluate on (0: all 10,000).");
ABSL_FLAG(int, calibration_batch_size, 200, "Batch size of BN recalibration.");
ABSL_FLAG(int, eval_batch_size, 250,
          "Batch size of evaluation (250 ran twice as fast as 1000 here: smaller activations).");

namespace {

absl::Status Run() {
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (checkpoint.empty()) return absl::InvalidArgumentError("--checkpoint is required");
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_count) <= 0) return absl::InvalidArgumentError("--count must be > 0");
  if (absl::GetFlag(FLAGS_threads) <= 0) {
    return absl::InvalidArgumentError("--threads must be > 0");
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const bool quantized = absl::GetFlag(FLAGS_quantized);

  // The CSV first: a foreign file fails before any expensive step.
  absl::StatusOr<std::vector<apq::oface::MeasurementRecord>> existing =
      apq::oface::ReadMeasurementCsv(out);
  if (!existing.ok()) return existing.status();
  const std::string method =
      quantized ? apq::oface::kMeasuredQuantFromSupernet : apq::oface::kMeasuredFp32;
  std::set<std::string> done;
  for (const apq::oface::MeasurementRecord& record : *existing) {
    if (record.method == method) done.insert(record.config_json);
  }

  absl::StatusOr<apq::oface::EvaluationImages> images = apq::oface::LoadEvaluationImages(
      absl::GetFlag(FLAGS_data_dir), absl::GetFlag(FLAGS_calibration_images),
      absl::GetFlag(FLAGS_test_images), absl::GetFlag(FLAGS_seed));
  if (!images.ok()) return images.status();
  const apq::oface::LabeledImages& calibration = images->calibration;
  const apq::oface::LabeledImages& test = images->test;

  absl::StatusOr<std::unique_ptr<apq::oface::Supernet>> supernet =
      apq::oface::Supernet::Create(apq::oface::FashionMnistSpec(), seed);
  if (!supernet.ok()) return supernet.status();
  if (absl::Status status = (*supernet)->LoadWeights(checkpoint); !status.ok()) return status;

  apq::oface::MeasureOptions options;
  options.count = absl::GetFlag(FLAGS_count);
  options.quantized = quantized;
  options.seed = seed;
  options.eval.calibration_batch_size = absl::GetFlag(FLAGS_calibration_batch_size);
  options.eval.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  options.already_measured = [&](const std::string& config) { return done.count(config) > 0; };
  int index = 0;
  options.on_record = [&](const apq::oface::MeasurementRecord& record) {
    if (absl::Status status = apq::oface::AppendMeasurementCsv(out, record); !status.ok()) {
      return status;
    }
    done.insert(record.config_json);
    std::fprintf(stderr, "[%d] %s accuracy=%.4f seconds=%.2f\n", ++index, method.c_str(),
                 record.accuracy, record.seconds);
    return absl::OkStatus();
  };
  std::fprintf(stderr,
               "measure_subnets: %s, %d configs, seed %llu, %d calibration / %d test images, "
               "%zu already in %s\n",
               method.c_str(), options.count, static_cast<unsigned long long>(seed),
               calibration.count, test.count, done.size(), out.c_str());
  absl::StatusOr<apq::oface::MeasureSummary> summary =
      apq::oface::MeasureSubnets(**supernet, calibration, test, options);
  if (!summary.ok()) return summary.status();
  std::fprintf(stderr, "measured %d, skipped %d, %.1f s measuring (%.2f s per subnet)\n",
               summary->measured, summary->skipped, summary->seconds,
               summary->measured > 0 ? summary->seconds / summary->measured : 0.0);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("measure_subnets", argc, argv, Run); }
