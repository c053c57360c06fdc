// Batch-1 latency of networks as they deploy on a CPU with LibTorch's int8 kernels: each
// network of a quantization-aware Fashion-MNIST supernet exported by ExtractInt8Subnet (W8A8
// layers in int8, W32A32 layers in float, quantize / dequantize where they meet) and timed,
// the networks interleaved round by round so that a change of the machine's load touches all
// of them alike (a shared 2-core machine):
//
//   bazel-bin/bench/deployed_latency --space fmnist_int8float
//       --checkpoint data/fmnist_int8float/supernet_quant.pt --networks networks.json
//       [--engine qnnpack] [--rounds 7] [--repeats 51] [--threads 1]
//
// networks.json is the list final_accuracy reads: {"name": "...", "config": <a config>}. Per
// network: one line "name<TAB>median ms<TAB>lowest round<TAB>highest round" (the median over
// rounds of each round's median of --repeats runs), to stdout.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/network_list.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

ABSL_FLAG(std::string, space, "fmnist_int8float", "The supernet's space.");
ABSL_FLAG(std::string, checkpoint, "", "The quantization-aware supernet's weights (required).");
ABSL_FLAG(std::string, networks, "", "JSON list of {\"name\", \"config\"} (required).");
ABSL_FLAG(std::string, engine, "qnnpack", "LibTorch's quantized engine: qnnpack or onednn.");
ABSL_FLAG(int, rounds, 7, "Rounds over all networks (1..100).");
ABSL_FLAG(int, repeats, 51, "Timed runs per network and round (1..10000).");
ABSL_FLAG(int, warmup, 10, "Untimed runs per network and round (0..1000).");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(int, calibration_images, 2000, "Train-split images for BN recalibration.");

namespace {

using apq::bench::Network;
using apq::bench::ReadNetworks;

absl::Status CheckRange(const char* flag, int value, int low, int high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": ", low, " to ", high, ", got ", value));
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

absl::Status Run() {
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  RETURN_IF_ERROR(CheckRange("rounds", rounds, 1, 100));
  RETURN_IF_ERROR(CheckRange("repeats", repeats, 1, 10000));
  RETURN_IF_ERROR(CheckRange("warmup", warmup, 0, 1000));
  RETURN_IF_ERROR(CheckRange("threads", absl::GetFlag(FLAGS_threads), 1, 64));
  if (absl::GetFlag(FLAGS_checkpoint).empty()) {
    return absl::InvalidArgumentError("--checkpoint is required");
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const absl::StatusOr<apq::oface::QuantizedEngine> engine =
      apq::oface::QuantizedEngineFromName(absl::GetFlag(FLAGS_engine));
  if (!engine.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--engine: ", engine.status().message()));
  }
  absl::StatusOr<apq::oface::MbConvSpec> spec =
      apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space));
  if (!spec.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--space: ", spec.status().message()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> supernet,
                   apq::oface::Supernet::Create(*spec, 1));
  RETURN_IF_ERROR(supernet->LoadWeights(absl::GetFlag(FLAGS_checkpoint)));
  ASSIGN_OR_RETURN(const std::vector<Network> networks,
                   ReadNetworks(absl::GetFlag(FLAGS_networks), supernet->space()));
  ASSIGN_OR_RETURN(const apq::oface::EvaluationImages images,
                   apq::oface::LoadEvaluationImages(
                       apq::oface::kDefaultFashionMnistDir, absl::GetFlag(FLAGS_calibration_images),
                       /*eval_images=*/1, /*seed=*/1, apq::oface::DataSplit::kValidation));
  std::vector<apq::oface::ExtractedSubnet> modules;
  for (const Network& network : networks) {
    absl::StatusOr<apq::oface::ExtractedSubnet> exported =
        apq::oface::ExtractInt8Subnet(*supernet, network.genotype, images.calibration, *engine);
    if (!exported.ok()) {
      return absl::Status(exported.status().code(),
                          absl::StrCat(network.name, ": ", exported.status().message()));
    }
    modules.push_back(*std::move(exported));
  }
  std::vector<std::vector<double>> round_ms(networks.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t n = 0; n < networks.size(); ++n) {
      ASSIGN_OR_RETURN(const double ms, modules[n].MedianLatencyMs(warmup, repeats));
      round_ms[n].push_back(ms);
    }
  }
  std::printf("name\tmedian_ms\tlowest_round_ms\thighest_round_ms\n");
  for (size_t n = 0; n < networks.size(); ++n) {
    const auto [low, high] = std::minmax_element(round_ms[n].begin(), round_ms[n].end());
    std::printf("%s\t%.4f\t%.4f\t%.4f\n", networks[n].name.c_str(), Median(round_ms[n]), *low,
                *high);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("deployed_latency", argc, argv, Run); }
