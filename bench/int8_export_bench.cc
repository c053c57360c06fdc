// True int8 against fake-quantized inference of W8A8 subnets of the shipped Fashion-MNIST
// supernet (oface/subnet_export.h, ExtractInt8Subnet): for each of N configs (architectures
// drawn with seed, every layer at 8 bits), the fake-quantized network's accuracy, the int8
// module's on each engine, their top-1 agreement, and the batch-1 latency of the int8 module
// against the float export of the same network (ExtractSubnet, unquantized: what the float
// path deploys), timed back to back:
//   bazel run -c opt //bench:int8_export_bench -- --configs 20 --split test
// Accuracy on the test split is a final report (nothing is selected on it); the configs are
// drawn, not chosen. One row per config and engine, then the means.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "hwmodels/conv_latency_table.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

ABSL_FLAG(int, configs, 20, "W8A8 configs drawn.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the draws and of the calibration subset.");
ABSL_FLAG(std::string, split, "test", "Images evaluated on: validation or test.");
ABSL_FLAG(int, images, 0, "First N images of the split (0: all 10,000).");
ABSL_FLAG(std::string, weights, "data/fmnist_mbv2/supernet_quant.pt",
          "The quantization-aware supernet's weights (empty: the seeded initialisation, for "
          "latencies only).");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(int, repeats, 201, "Timed runs per latency (median).");
ABSL_FLAG(std::string, table, "",
          "A conv table with W8A8 and W32A32 keys (e.g. data/local_cpu/"
          "fmnist_mbv2_int8_float_table.json): each config's predicted int8 and float latency "
          "is printed beside the measured ones.");
ABSL_FLAG(bool, accuracy, true, "Evaluate accuracies (false: latencies only).");

namespace {

// `logits` of `images` in batches of 250: a forward of all 10,000 test images at once holds
// more activations than this machine's memory.
absl::StatusOr<std::vector<float>> BatchedLogits(
    const std::function<absl::StatusOr<std::vector<float>>(const apq::oface::LabeledImages&)>&
        logits,
    const apq::oface::LabeledImages& images) {
  constexpr int kBatch = 250;
  std::vector<float> all;
  for (int begin = 0; begin < images.count; begin += kBatch) {
    std::vector<int> indices;
    for (int i = begin; i < std::min(images.count, begin + kBatch); ++i) indices.push_back(i);
    ASSIGN_OR_RETURN(const std::vector<float> batch,
                     logits(apq::oface::SelectImages(images, indices)));
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

absl::Status Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  ASSIGN_OR_RETURN(const apq::oface::DataSplit split,
                   apq::oface::DataSplitFromName(absl::GetFlag(FLAGS_split)));
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> supernet,
                   apq::oface::Supernet::Create(apq::oface::FashionMnistSpec(), seed));
  // Without weights the supernet keeps its seeded initialisation (what the table's
  // profiler times): for latencies alone.
  if (!absl::GetFlag(FLAGS_weights).empty()) {
    RETURN_IF_ERROR(supernet->LoadWeights(absl::GetFlag(FLAGS_weights)));
  }
  ASSIGN_OR_RETURN(const apq::oface::EvaluationImages images,
                   apq::oface::LoadEvaluationImages(apq::oface::kDefaultFashionMnistDir, 2000,
                                                    absl::GetFlag(FLAGS_images), seed, split));
  const apq::oface::SearchSpace& space = supernet->space();
  const apq::oface::Genotype all8 = supernet->LargestGenotype(8);
  apq::oface::Rng rng(seed);
  std::vector<apq::oface::Genotype> configs;
  while (static_cast<int>(configs.size()) < absl::GetFlag(FLAGS_configs)) {
    apq::oface::Genotype genotype = space.Canonical(space.Sample(rng));
    for (size_t g = 0; g < genotype.size(); ++g) {
      if (apq::oface::IsBitsGene(space.genes()[g])) genotype[g] = all8[g];
    }
    if (std::find(configs.begin(), configs.end(), genotype) == configs.end()) {
      configs.push_back(genotype);
    }
  }
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const bool accuracy = absl::GetFlag(FLAGS_accuracy);
  // The table's figure of each config with every layer at W8A8, and at W32A32 (the same
  // architecture in float): the sum of its terms' entries, as the cost model adds them.
  std::vector<double> predicted_int8(configs.size(), 0.0), predicted_float(configs.size(), 0.0);
  if (!absl::GetFlag(FLAGS_table).empty()) {
    ASSIGN_OR_RETURN(const apq::hwmodels::CostTable table,
                     apq::hwmodels::LoadConvTableFile(absl::GetFlag(FLAGS_table)));
    std::vector<int32_t> terms;
    for (size_t c = 0; c < configs.size(); ++c) {
      terms.clear();
      space.CostTerms(configs[c], &terms);
      for (const int32_t term : terms) {
        const std::string key = space.CostTermKey(term);
        const std::string float_key = absl::StrReplaceAll(key, {{"-W8A8", "-W32A32"}});
        const auto int8_entry = table.entries.find(key);
        const auto float_entry = table.entries.find(float_key);
        if (int8_entry == table.entries.end() || float_entry == table.entries.end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("--table has no entry for ", key, " or ", float_key));
        }
        predicted_int8[c] += int8_entry->second.latency_ms;
        predicted_float[c] += float_entry->second.latency_ms;
      }
    }
  }
  std::printf(
      "config\tengine\tfake_quant_accuracy\tint8_accuracy\tdifference_points\tagreement\t"
      "float_ms\tint8_ms\tspeedup\tint8_fresh_ms\tpredicted_float_ms\tpredicted_int8_ms\n");
  const std::vector<apq::oface::QuantizedEngine> engines = apq::oface::AvailableQuantizedEngines();
  std::vector<double> sum_difference(engines.size()), sum_agreement(engines.size()),
      sum_log_speedup(engines.size());
  for (size_t c = 0; c < configs.size(); ++c) {
    const apq::oface::Genotype& genotype = configs[c];
    ASSIGN_OR_RETURN(
        apq::oface::ExtractedSubnet fp32,
        apq::oface::ExtractSubnet(*supernet, genotype, /*quantized=*/false, images.calibration));
    // The fake-quantized network (the supernet at the config, recalibrated): its logits.
    RETURN_IF_ERROR(supernet->SetActiveSubnet(genotype));
    supernet->SetQuantized(true);
    RETURN_IF_ERROR(supernet->RecalibrateBatchNorm(images.calibration));
    std::vector<float> fake;
    if (accuracy) {
      ASSIGN_OR_RETURN(
          fake, BatchedLogits(
                    [&](const apq::oface::LabeledImages& batch) { return supernet->Logits(batch); },
                    images.evaluated));
    }
    for (size_t e = 0; e < engines.size(); ++e) {
      ASSIGN_OR_RETURN(
          apq::oface::ExtractedSubnet int8,
          apq::oface::ExtractInt8Subnet(*supernet, genotype, images.calibration, engines[e]));
      // Timed once more before any batch runs through it: the table's validation times
      // modules so.
      ASSIGN_OR_RETURN(const double int8_fresh_ms, int8.MedianLatencyMs(20, repeats));
      std::vector<float> real;
      if (accuracy) {
        ASSIGN_OR_RETURN(
            real, BatchedLogits(
                      [&](const apq::oface::LabeledImages& batch) { return int8.Logits(batch); },
                      images.evaluated));
      }
      const int n = accuracy ? images.evaluated.count : 1;
      int fake_correct = 0, int8_correct = 0, agree = 0;
      for (int i = 0; accuracy && i < n; ++i) {
        const auto argmax = [i](const std::vector<float>& v) {
          return static_cast<int>(
              std::max_element(v.begin() + int64_t{i} * 10, v.begin() + int64_t{i} * 10 + 10) -
              (v.begin() + int64_t{i} * 10));
        };
        const int label = images.evaluated.labels[i];
        fake_correct += argmax(fake) == label ? 1 : 0;
        int8_correct += argmax(real) == label ? 1 : 0;
        agree += argmax(fake) == argmax(real) ? 1 : 0;
      }
      // Float and int8 timed back to back (LibTorch's engine set for the int8 module).
      ASSIGN_OR_RETURN(const double float_ms, fp32.MedianLatencyMs(20, repeats));
      ASSIGN_OR_RETURN(const double int8_ms, int8.MedianLatencyMs(20, repeats));
      const double difference = 100.0 * (int8_correct - fake_correct) / n;
      sum_difference[e] += difference;
      sum_agreement[e] += static_cast<double>(agree) / n;
      sum_log_speedup[e] += std::log(float_ms / int8_ms);
      std::printf("%zu\t%s\t%.4f\t%.4f\t%+.2f\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.4f\t%.4f\n", c,
                  apq::oface::QuantizedEngineName(engines[e]),
                  static_cast<double>(fake_correct) / n, static_cast<double>(int8_correct) / n,
                  difference, static_cast<double>(agree) / n, float_ms, int8_ms, float_ms / int8_ms,
                  int8_fresh_ms, predicted_float[c], predicted_int8[c]);
      std::fflush(stdout);
    }
  }
  for (size_t e = 0; e < engines.size(); ++e) {
    const double count = static_cast<double>(configs.size());
    const std::string accuracies =
        accuracy ? absl::StrFormat("mean int8 - fake-quant %+.3f points, mean agreement %.4f, ",
                                   sum_difference[e] / count, sum_agreement[e] / count)
                 : std::string();
    std::printf("# %s: %sfloat / int8 latency %.3fx (geometric mean)\n",
                apq::oface::QuantizedEngineName(engines[e]), accuracies.c_str(),
                std::exp(sum_log_speedup[e] / count));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("int8_export_bench", argc, argv, Run); }
