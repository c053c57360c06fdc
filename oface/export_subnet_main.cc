// Extracts one subnet of a trained Fashion-MNIST supernet, exports it as TorchScript
// (oface/subnet_export.h) and checks that the exported file reproduces the accuracy the
// supernet measures (exit status 1 when the two differ by more than one test image):
//   bazel-bin/oface/export_subnet --checkpoint W.pt --config largest --out subnet.pt
//   bazel-bin/oface/export_subnet --checkpoint W.pt --quantized --out subnet_q.pt --config JSON
// where JSON is a config in the reference format, e.g. '[{"wid":null,...},{...}]'.
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tensor_memory.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

ABSL_FLAG(std::string, checkpoint, "", "Supernet weights (SaveWeights or checkpoint.pt).");
ABSL_FLAG(std::string, config, "largest",
          "The subnet: its arch JSON (the space's ToJson format), 'largest' or 'smallest'.");
ABSL_FLAG(bool, quantized, false, "Bake in the config's bit policy (fake quantization).");
ABSL_FLAG(std::string, out, "", "TorchScript file to write.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the calibration subset.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, calibration_images, 2000, "Train-split images for BN recalibration.");
ABSL_FLAG(std::string, split, "test",
          "Images the export is scored on: test (a final report) or validation.");
ABSL_FLAG(int, eval_images, 0, "First N images of the split to evaluate on (0: all).");
ABSL_FLAG(std::string, int8_engine, "",
          "With --quantized: export a true int8 module for this LibTorch engine (qnnpack or "
          "onednn); every layer of the config must be at W8A8.");
ABSL_FLAG(int, verify_batch, 250, "Images per forward call of --verify.");
ABSL_FLAG(std::string, verify, "",
          "Only load this TorchScript file (as a plain LibTorch program would, an int8 module's "
          "engine set from its quantized_engine attribute) and print its accuracy on --split.");

namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --verify: the accuracy of a written module, in a process of its own.
absl::Status Verify(const std::string& path) {
  if (absl::GetFlag(FLAGS_threads) <= 0) {
    return absl::InvalidArgumentError("--threads must be > 0");
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<apq::oface::DataSplit> split =
      apq::oface::DataSplitFromName(absl::GetFlag(FLAGS_split));
  if (!split.ok()) return split.status();
  absl::StatusOr<apq::oface::EvaluationImages> images = apq::oface::LoadEvaluationImages(
      absl::GetFlag(FLAGS_data_dir), 1, absl::GetFlag(FLAGS_eval_images), absl::GetFlag(FLAGS_seed),
      *split);
  if (!images.ok()) return images.status();
  absl::StatusOr<double> accuracy =
      apq::oface::VerifyExport(path, images->evaluated, absl::GetFlag(FLAGS_verify_batch));
  if (!accuracy.ok()) return accuracy.status();
  std::printf("%s: accuracy=%.6f images=%lld split=%s\n", path.c_str(), *accuracy,
              static_cast<long long>(images->evaluated.count), absl::GetFlag(FLAGS_split).c_str());
  return absl::OkStatus();
}

absl::Status Run() {
  if (const std::string verify = absl::GetFlag(FLAGS_verify); !verify.empty()) {
    return Verify(verify);
  }
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (checkpoint.empty()) return absl::InvalidArgumentError("--checkpoint is required");
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_threads) <= 0) {
    return absl::InvalidArgumentError("--threads must be > 0");
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const bool quantized = absl::GetFlag(FLAGS_quantized);

  absl::StatusOr<std::unique_ptr<apq::oface::Supernet>> created =
      apq::oface::Supernet::Create(apq::oface::FashionMnistSpec(), absl::GetFlag(FLAGS_seed));
  if (!created.ok()) return created.status();
  apq::oface::Supernet& supernet = **created;
  // The config before any expensive step: a config outside the spec fails naming the field.
  const std::string config = absl::GetFlag(FLAGS_config);
  apq::oface::Genotype genotype;
  if (config == "largest") {
    genotype = supernet.LargestGenotype();
  } else if (config == "smallest") {
    genotype = supernet.SmallestGenotype();
  } else {
    absl::StatusOr<apq::oface::Genotype> parsed = supernet.space().FromJson(config);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--config: ", parsed.status().message()));
    }
    genotype = *std::move(parsed);
  }
  if (absl::Status status = supernet.LoadWeights(checkpoint); !status.ok()) return status;

  absl::StatusOr<apq::oface::DataSplit> split =
      apq::oface::DataSplitFromName(absl::GetFlag(FLAGS_split));
  if (!split.ok()) return split.status();
  absl::StatusOr<apq::oface::EvaluationImages> images = apq::oface::LoadEvaluationImages(
      absl::GetFlag(FLAGS_data_dir), absl::GetFlag(FLAGS_calibration_images),
      absl::GetFlag(FLAGS_eval_images), absl::GetFlag(FLAGS_seed), *split);
  if (!images.ok()) return images.status();
  const apq::oface::LabeledImages& calibration = images->calibration;
  const apq::oface::LabeledImages& test = images->evaluated;

  if (absl::Status status = supernet.SetActiveSubnet(genotype); !status.ok()) return status;
  supernet.SetQuantized(quantized);
  apq::oface::EvalOptions eval_options;
  eval_options.eval_batch_size = 250;  // The measurement CLI's default.
  absl::StatusOr<apq::oface::EvalResult> measured =
      supernet.Evaluate(calibration, test, eval_options);
  if (!measured.ok()) return measured.status();

  auto start = std::chrono::steady_clock::now();
  std::optional<apq::oface::QuantizedEngine> engine;
  if (const std::string name = absl::GetFlag(FLAGS_int8_engine); !name.empty()) {
    absl::StatusOr<apq::oface::QuantizedEngine> parsed = apq::oface::QuantizedEngineFromName(name);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--int8_engine: ", parsed.status().message()));
    }
    if (!quantized) return absl::InvalidArgumentError("--int8_engine needs --quantized");
    engine = *parsed;
  }
  absl::StatusOr<apq::oface::ExtractedSubnet> extracted =
      engine.has_value()
          ? apq::oface::ExtractInt8Subnet(supernet, genotype, calibration, *engine, eval_options)
          : apq::oface::ExtractSubnet(supernet, genotype, quantized, calibration, eval_options);
  if (!extracted.ok()) return extracted.status();
  const double extract_seconds = SecondsSince(start);
  if (absl::Status status = extracted->Save(out); !status.ok()) return status;

  start = std::chrono::steady_clock::now();
  absl::StatusOr<double> verified = apq::oface::VerifyExport(out, test);
  if (!verified.ok()) return verified.status();
  const double verify_seconds = SecondsSince(start);

  std::printf(
      "config=%s quantized=%d stored_elements=%lld\n"
      "supernet: accuracy=%.4f seconds=%.2f (BN recalibration + evaluation)\n"
      "extraction: seconds=%.2f (BN recalibration + copy + TorchScript compile)\n"
      "export %s: accuracy=%.4f seconds=%.2f (load + evaluation)\n",
      supernet.space().ToJson(genotype).c_str(), quantized,
      static_cast<long long>(extracted->num_stored_elements()), measured->accuracy,
      measured->seconds, extract_seconds, out.c_str(), *verified, verify_seconds);
  // An int8 module computes the fake-quantized network up to int8 roundings (a few images in
  // 10,000 change class, bench/RESULTS.md): the exact check is for the fake-quantized export.
  if (!engine.has_value() && std::fabs(*verified - measured->accuracy) > 1.0 / test.count + 1e-12) {
    return absl::InternalError(absl::StrCat("the exported subnet's accuracy ", *verified,
                                            " does not reproduce the measured ",
                                            measured->accuracy));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  apq::KeepTensorMemoryForReuse();
  return apq::RunTool("export_subnet", argc, argv, Run);
}
