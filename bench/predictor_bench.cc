// Throughput of MlpPredictor on OFA's MobileNetV3 accuracy predictor (128-400-400-400-1):
// predictions per second for each kernel, thread count and batch size (best of several
// repeats), the dense LibTorch forward for comparison, and the time of a search-like load
// (500 calls at batch 100). Then the same at batch 100 for a predictor of APQ's
// quantization-aware shape (772 = 520 architecture + 252 bit inputs, the bits branch added
// after the first ReLU, 400 x 3, 1) with random weights: APQ never published trained ones.
//
// With --fmnist: the shipped Fashion-MNIST quantization-aware predictor (336 = 192 + 144 bit
// inputs, 400 x 3) on configs sampled from its space, at batches 100 and 1000, with the
// arithmetic of each row (GFLOP/s: the gather-and-sum first layer counted as its additions,
// the dense forward as its multiply-adds).
//
// Usage: bazel run //bench:predictor_bench [-- <weights.f32> <manifest.json> | -- --apq-only |
//        -- --fmnist]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "predictor/accuracy_predictor.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"

namespace {

using apq::predictor::FeatureBatch;
using apq::predictor::MlpPredictor;
using apq::predictor::MlpWeights;
using apq::predictor::mlp_testing::Densify;
using apq::predictor::mlp_testing::RandomApqBatch;
using apq::predictor::mlp_testing::RandomApqWeights;
using Clock = std::chrono::steady_clock;

constexpr int kRepeats = 7;
// Each repeat predicts about this many samples, so that every row takes similar time.
constexpr int64_t kSamplesPerRepeat = 100000;

// Random OFA MobileNetV3 networks in the predictor's encoding: per active block one
// kernel-size slot in [0, 60) and one expand-ratio slot in [60, 120), then a resolution slot.
FeatureBatch RandomNetworks(int size, std::mt19937* rng) {
  FeatureBatch batch;
  std::uniform_int_distribution<int> three(0, 2);
  std::uniform_int_distribution<int> resolution(0, 4);
  for (int s = 0; s < size; ++s) {
    int depth[5];
    for (int& d : depth) d = 2 + three(*rng);
    std::vector<int32_t>& indices = *batch.mutable_indices();
    std::vector<int32_t> expand;
    for (int i = 0; i < 20; ++i) {
      if (i % 4 >= depth[i / 4]) continue;
      indices.push_back(3 * i + three(*rng));
      expand.push_back(60 + 3 * i + three(*rng));
    }
    indices.insert(indices.end(), expand.begin(), expand.end());
    indices.push_back(123 + resolution(*rng));
    batch.EndSample();
  }
  return batch;
}

// Best seconds per call of `body` over kRepeats repeats of `calls` calls, after one warm-up.
double BestSecondsPerCall(int64_t calls, const std::function<bool()>& body) {
  if (!body()) return -1.0;
  double best = 1e30;
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    const Clock::time_point start = Clock::now();
    for (int64_t i = 0; i < calls; ++i) {
      if (!body()) return -1.0;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::min(best, seconds / static_cast<double>(calls));
  }
  return best;
}

// `flops_per_prediction` > 0 adds the achieved GFLOP/s.
void PrintRow(const std::string& kernel, int threads, int batch, double seconds_per_call,
              double flops_per_prediction = 0.0) {
  if (seconds_per_call < 0) {
    std::printf("%-18s %7d %6d   failed\n", kernel.c_str(), threads, batch);
    return;
  }
  std::printf("%-18s %7d %6d %12.1f %14.0f", kernel.c_str(), threads, batch, seconds_per_call * 1e6,
              batch / seconds_per_call);
  if (flops_per_prediction > 0) {
    std::printf(" %9.1f", flops_per_prediction * batch / seconds_per_call * 1e-9);
  }
  std::printf("\n");
  std::fflush(stdout);
}

// Floating-point operations of one prediction of an MLP with these layer widths: the dense
// forward (2 x in x out per layer, plus the bits branch) or, with `active_inputs` > 0, the
// gather-and-sum first layer (one addition per active input and output) instead of its
// dense product.
double FlopsPerPrediction(const MlpWeights& weights, double active_inputs) {
  double flops = 0.0;
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const double dense = 2.0 * weights.layers[i].in * weights.layers[i].out;
    flops += (i == 0 && active_inputs > 0) ? 0.0 : dense;
  }
  if (weights.bits.has_value())
    flops += active_inputs > 0 ? 0.0 : 2.0 * weights.bits->in * weights.bits->out;
  if (active_inputs > 0) flops += active_inputs * weights.layers[0].out;
  return flops;
}

using MakePredictor =
    std::function<absl::StatusOr<std::unique_ptr<MlpPredictor>>(const MlpPredictor::Options&)>;

// One predictor per kernel on `threads` threads; empty (after printing why) on error.
std::vector<std::unique_ptr<MlpPredictor>> PredictorsPerKernel(int threads,
                                                               const MakePredictor& make) {
  std::vector<std::unique_ptr<MlpPredictor>> predictors;
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    MlpPredictor::Options options;
    options.num_threads = threads;
    options.kernel = kernel;
    absl::StatusOr<std::unique_ptr<MlpPredictor>> made = make(options);
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return {};
    }
    predictors.push_back(*std::move(made));
  }
  return predictors;
}

// A row per predictor and batch, then per batch one for the first predictor's dense forward.
// With `weights`, each row also shows its GFLOP/s.
void PrintRows(const std::vector<std::unique_ptr<MlpPredictor>>& predictors,
               const std::vector<FeatureBatch>& batches, int threads,
               const MlpWeights* weights = nullptr) {
  std::vector<float> out;
  for (const std::unique_ptr<MlpPredictor>& predictor : predictors) {
    for (const FeatureBatch& batch : batches) {
      const double seconds =
          BestSecondsPerCall(std::max<int64_t>(1, kSamplesPerRepeat / batch.size()),
                             [&] { return predictor->Predict(batch, &out).ok(); });
      const double active = static_cast<double>(batch.indices().size()) / batch.size();
      PrintRow(predictor->kernel_name(), threads, batch.size(), seconds,
               weights != nullptr ? FlopsPerPrediction(*weights, active) : 0.0);
    }
  }
  for (const FeatureBatch& batch : batches) {
    const std::vector<float> dense = Densify(batch, predictors[0]->input_size());
    const double seconds = BestSecondsPerCall(
        std::max<int64_t>(1, kSamplesPerRepeat / batch.size()),
        [&] { return predictors[0]->PredictDense(dense.data(), batch.size(), &out).ok(); });
    PrintRow("libtorch-dense", threads, batch.size(), seconds,
             weights != nullptr ? FlopsPerPrediction(*weights, 0.0) : 0.0);
  }
}

// The shipped Fashion-MNIST predictor's rows; returns main's exit code.
int BenchFashionMnist() {
  absl::StatusOr<std::unique_ptr<apq::oface::SearchSpace>> space =
      apq::oface::NewMbConvQuantSpace(apq::oface::FashionMnistSpec());
  if (!space.ok()) {
    std::fprintf(stderr, "%s\n", space.status().ToString().c_str());
    return 1;
  }
  apq::oface::Rng rng(2026);
  std::vector<FeatureBatch> batches;
  for (int size : {100, 1000}) {
    FeatureBatch batch;
    for (int i = 0; i < size; ++i) {
      (*space)->ActiveFeatures((*space)->Sample(rng), batch.mutable_indices());
      batch.EndSample();
    }
    batches.push_back(std::move(batch));
  }
  const std::string stem = "data/fmnist_mbv2/qa_predictor";
  MlpWeights weights;
  std::printf("Fashion-MNIST quantization-aware predictor (%s, configs sampled from fmnist_mbv2)\n",
              stem.c_str());
  std::printf("%-18s %7s %6s %12s %14s %9s\n", "kernel", "threads", "batch", "us/call",
              "predictions/s", "GFLOP/s");
  for (int threads : {1, 2}) {
    const std::vector<std::unique_ptr<MlpPredictor>> predictors =
        PredictorsPerKernel(threads, [&](const MlpPredictor::Options& options) {
          return MlpPredictor::LoadRawFloat32(stem + ".f32", stem + ".manifest.json", options);
        });
    if (predictors.empty()) return 1;
    weights = predictors[0]->ExportWeights();
    PrintRows(predictors, batches, threads, &weights);
  }
  const double active = static_cast<double>(batches[1].indices().size()) / batches[1].size();
  std::printf("\n%.1f active inputs per config; %.0f FLOP per prediction gathered, %.0f dense\n",
              active, FlopsPerPrediction(weights, active), FlopsPerPrediction(weights, 0.0));
  return 0;
}

// The APQ-shaped predictor's rows at batch 100; returns main's exit code.
int BenchApqShape(std::mt19937* rng) {
  std::printf("APQ-shaped predictor (772 = 520 + 252 bits -> 400 x 3 -> 1, random weights)\n");
  std::printf("%-18s %7s %6s %12s %14s\n", "kernel", "threads", "batch", "us/call",
              "predictions/s");
  const MlpWeights weights = RandomApqWeights(2026);
  const std::vector<FeatureBatch> batches = {RandomApqBatch(100, rng)};
  for (int threads : {1, 2}) {
    const std::vector<std::unique_ptr<MlpPredictor>> predictors =
        PredictorsPerKernel(threads, [&](const MlpPredictor::Options& options) {
          return MlpPredictor::Create(weights, options);
        });
    if (predictors.empty()) return 1;
    PrintRows(predictors, batches, threads);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 rng(2026);
  if (argc > 1 && std::string(argv[1]) == "--apq-only") return BenchApqShape(&rng);
  if (argc > 1 && std::string(argv[1]) == "--fmnist") return BenchFashionMnist();
  const std::string weights = argc > 1 ? argv[1] : "data/ofa_mbv3/acc_predictor.f32";
  const std::string manifest = argc > 2 ? argv[2] : "data/ofa_mbv3/acc_predictor.manifest.json";
  const std::vector<int> batch_sizes = {1, 100, 1000};

  std::vector<FeatureBatch> batches;
  batches.reserve(batch_sizes.size());
  for (int size : batch_sizes) batches.push_back(RandomNetworks(size, &rng));

  std::printf("%-18s %7s %6s %12s %14s\n", "kernel", "threads", "batch", "us/call",
              "predictions/s");
  std::vector<std::string> search_lines;
  for (int threads : {1, 2}) {
    const std::vector<std::unique_ptr<MlpPredictor>> predictors =
        PredictorsPerKernel(threads, [&](const MlpPredictor::Options& options) {
          return MlpPredictor::LoadRawFloat32(weights, manifest, options);
        });
    if (predictors.empty()) return 1;
    PrintRows(predictors, batches, threads);
    std::vector<float> out;
    // A search's load: 500 generations of 100 children. Best and worst of the repeats show
    // how much sharing the cores with other processes costs.
    for (const std::unique_ptr<MlpPredictor>& predictor : predictors) {
      std::vector<double> seconds;
      for (int repeat = 0; repeat < kRepeats; ++repeat) {
        const Clock::time_point start = Clock::now();
        for (int call = 0; call < 500; ++call) {
          if (!predictor->Predict(batches[1], &out).ok()) return 1;
        }
        seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      }
      std::sort(seconds.begin(), seconds.end());
      char line[200];
      std::snprintf(line, sizeof(line),
                    "%-18s %7d   500 x batch 100: best %7.1f ms, median %7.1f ms, worst %7.1f ms",
                    predictor->kernel_name().c_str(), threads, seconds.front() * 1e3,
                    seconds[seconds.size() / 2] * 1e3, seconds.back() * 1e3);
      search_lines.push_back(line);
    }
  }
  std::printf("\n");
  for (const std::string& line : search_lines) std::printf("%s\n", line.c_str());
  std::printf("\n");
  return BenchApqShape(&rng);
}
