// The Fashion-MNIST supernet at its shipped size (oface/supernet.h, FashionMnistSpec):
//   training   images/s of each training phase (full: the largest subnet alone; sandwich:
//              largest + smallest + 2 random subnets per step; quant: the same with fake
//              quantization), batch 128, from the trainer's own progress reports;
//   evaluation BN recalibration time (2,000 images) and test images/s of the largest and the
//              smallest subnet, full precision and quantized at 8 / 4 bits;
//   extraction ExtractSubnet (recalibration + copy + TorchScript compile) and the exported
//              module's test images/s.
//
//   bazel run //bench:supernet_bench -- [--weights data/fmnist_mbv2/supernet_quant.pt]
//       [--threads 2] [--train_steps 30]
//
// Without --weights the supernet is untrained (timings do not depend on the weights).
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "oface/supernet_train.h"

ABSL_FLAG(std::string, weights, "", "Supernet weights to load (default: untrained).");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir, "Fashion-MNIST folder.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, train_steps, 30, "Steps timed per training phase (0 skips training).");

namespace {

using apq::oface::Genotype;
using apq::oface::Supernet;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs each phase for `steps` steps in a scratch folder and prints the last progress report's
// speed of each phase.
absl::Status BenchTraining(int threads, int steps) {
  const std::string out_dir =
      (std::filesystem::temp_directory_path() / "apq_supernet_bench").string();
  std::filesystem::remove_all(out_dir);
  apq::oface::TrainOptions options;
  options.out_dir = out_dir;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.threads = threads;
  // 100 steps per epoch; each phase runs `steps` steps plus warm-up.
  options.train_limit = 128 * 100;
  const double epochs = (steps + 5) / 100.0;
  options.phase_epochs = {epochs, epochs, epochs};
  options.log_every = steps / 2 > 0 ? steps / 2 : 1;
  options.checkpoint_every = 100000;
  options.evaluate_at_phase_end = false;
  std::vector<apq::oface::TrainProgress> last(apq::oface::kNumTrainPhases);
  options.on_progress = [&](const apq::oface::TrainProgress& progress) {
    last[static_cast<int>(progress.phase)] = progress;
  };
  RETURN_IF_ERROR(apq::oface::TrainSupernet(options));
  std::filesystem::remove_all(out_dir);
  for (int phase = 0; phase < apq::oface::kNumTrainPhases; ++phase) {
    std::printf("train %-8s  %7.1f images/s  %7.1f subnet-images/s  (batch 128, %d threads)\n",
                apq::oface::TrainPhaseName(static_cast<apq::oface::TrainPhase>(phase)),
                last[phase].images_per_second, last[phase].subnet_images_per_second, threads);
  }
  return absl::OkStatus();
}

absl::Status BenchSubnet(Supernet& supernet, const std::string& name, const Genotype& genotype,
                         bool quantized, const apq::oface::EvaluationImages& images) {
  RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
  supernet.SetQuantized(quantized);
  apq::oface::EvalOptions eval;
  eval.eval_batch_size = 250;
  auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(supernet.RecalibrateBatchNorm(images.calibration, eval));
  const double recalibration = SecondsSince(start);
  ASSIGN_OR_RETURN(apq::oface::EvalResult result,
                   supernet.Evaluate(images.calibration, images.evaluated, eval));
  const double evaluation = result.seconds - recalibration;

  start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      apq::oface::ExtractedSubnet extracted,
      apq::oface::ExtractSubnet(supernet, genotype, quantized, images.calibration, eval));
  const double extraction = SecondsSince(start);
  start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(double exported_accuracy, extracted.Accuracy(images.evaluated, 250));
  const double exported_evaluation = SecondsSince(start);
  std::printf(
      "%-9s %-5s  accuracy %.4f  recalibration %.2f s  eval %7.0f images/s  "
      "extraction %.2f s  exported: accuracy %.4f, %7.0f images/s\n",
      name.c_str(), quantized ? "quant" : "fp32", result.accuracy, recalibration,
      images.evaluated.count / evaluation, extraction, exported_accuracy,
      images.evaluated.count / exported_evaluation);
  return absl::OkStatus();
}

absl::Status Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) return absl::InvalidArgumentError("--threads must be > 0");
  if (absl::GetFlag(FLAGS_train_steps) < 0) {
    return absl::InvalidArgumentError("--train_steps must be >= 0");
  }
  at::set_num_threads(threads);
  if (absl::GetFlag(FLAGS_train_steps) > 0) {
    RETURN_IF_ERROR(BenchTraining(threads, absl::GetFlag(FLAGS_train_steps)));
  }
  at::set_num_threads(threads);
  ASSIGN_OR_RETURN(std::unique_ptr<Supernet> supernet,
                   Supernet::Create(apq::oface::FashionMnistSpec(), 1));
  if (!absl::GetFlag(FLAGS_weights).empty()) {
    RETURN_IF_ERROR(supernet->LoadWeights(absl::GetFlag(FLAGS_weights)));
  }
  ASSIGN_OR_RETURN(apq::oface::EvaluationImages images,
                   apq::oface::LoadEvaluationImages(absl::GetFlag(FLAGS_data_dir), 2000, 0, 1,
                                                    apq::oface::DataSplit::kValidation));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "largest", supernet->LargestGenotype(), false, images));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "largest", supernet->LargestGenotype(8), true, images));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "largest", supernet->LargestGenotype(4), true, images));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "smallest", supernet->SmallestGenotype(), false, images));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "smallest", supernet->SmallestGenotype(8), true, images));
  RETURN_IF_ERROR(BenchSubnet(*supernet, "smallest", supernet->SmallestGenotype(4), true, images));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("supernet_bench", argc, argv, Run); }
