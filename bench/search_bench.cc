// One evolutionary search at the reference settings (ofa_mbv3, Note10, 25 ms, population 100,
// 500 generations), per seed: wall time, candidates scored per second, the distinct networks
// sent to the predictor (repeats are memoised), best predicted accuracy, and the process's
// peak memory.
//
//   bazel run //bench:search_bench -- [--space ofa_mbv3|apq_mbv2|fmnist_mbv2] [--threads N]
//       [--repeats R]
//
// --space apq_mbv2: APQ's search instead (apq_mbv2, BitFusion, latency and energy budgets).
// --space fmnist_mbv2: the joint search the service runs by default on BitFusion (fmnist_mbv2,
// latency <= 0.3 ms, its shipped quantization-aware predictor of APQ's form, the table's gaps
// priced by the fitted analytic model as apqd prices them): the in-process side of the
// service bench's joint search.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/ofa_reference_search.h"
#include "common/status_macros.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/bitfusion_analytic.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"
#include "search/evolution.h"

namespace {

// What one benchmarked search runs on.
struct Setup {
  std::string description;
  std::unique_ptr<apq::oface::SearchSpace> space;
  std::unique_ptr<apq::hwmodels::TermEstimator> cost_fallback;  // Prices the table's gaps.
  std::unique_ptr<apq::hwmodels::LutCostModel> cost_model;
  std::unique_ptr<apq::predictor::MlpPredictor> predictor;
  apq::search::Budgets budgets;
};

// OFA's tutorial search: ofa_mbv3 on Note10 under 25 ms with OFA's own predictor.
absl::StatusOr<Setup> SetUpOfaMbv3(const std::string& data_dir, int threads) {
  ASSIGN_OR_RETURN(apq::bench::OfaReferenceSearch reference,
                   apq::bench::LoadOfaReferenceSearch(data_dir, threads));
  Setup setup;
  setup.space = std::move(reference.space);
  setup.cost_model = std::move(reference.cost_model);
  setup.predictor = std::move(reference.predictor);
  setup.budgets = reference.budgets;
  setup.description = "ofa_mbv3 / note10 / latency <= 25 ms";
  return setup;
}

// APQ's search: apq_mbv2 on BitFusion under latency and energy budgets together (about the
// 10th percentile of random networks on each). APQ never published its quantization-aware
// predictor, so this one has APQ's shape (520 + 252 -> 400 x 3 -> 1) and seeded random
// weights: the time per search does not depend on the weights' values, only the accuracy
// column is meaningless.
absl::StatusOr<Setup> SetUpApqMbv2(const std::string& data_dir, int threads) {
  Setup setup;
  setup.space = apq::oface::NewApqMbv2Space();
  ASSIGN_OR_RETURN(auto table, apq::hwmodels::LoadApqBitFusionFile(
                                   data_dir + "/apq_bitfusion/BitFusion_new.b1.dict"));
  ASSIGN_OR_RETURN(auto model, apq::hwmodels::LutCostModel::Create(*setup.space, table));
  setup.cost_model = std::move(model);
  apq::predictor::MlpWeights weights = apq::predictor::mlp_testing::RandomApqWeights(2026);
  apq::predictor::MlpPredictor::Options options;
  options.num_threads = threads;
  ASSIGN_OR_RETURN(auto predictor,
                   apq::predictor::MlpPredictor::Create(std::move(weights), options));
  setup.predictor = std::move(predictor);
  setup.budgets.max_latency_ms = 10.0;
  setup.budgets.max_energy_mj = 12.0;
  setup.description =
      "apq_mbv2 / bitfusion / latency <= 10 ms and energy <= 12 mJ (random-weight predictor)";
  return setup;
}

// fmnist_mbv2 on BitFusion under 0.3 ms with its shipped predictor, priced as apqd prices it.
absl::StatusOr<Setup> SetUpFmnistMbv2(const std::string& data_dir, int threads) {
  Setup setup;
  ASSIGN_OR_RETURN(setup.space, apq::oface::NewMbConvQuantSpace(apq::oface::FashionMnistSpec()));
  ASSIGN_OR_RETURN(auto table, apq::hwmodels::LoadApqBitFusionFile(
                                   data_dir + "/apq_bitfusion/BitFusion_new.b1.dict"));
  ASSIGN_OR_RETURN(setup.cost_fallback, apq::hwmodels::BitFusionAnalyticModel::Fit(table));
  ASSIGN_OR_RETURN(setup.cost_model, apq::hwmodels::LutCostModel::Create(
                                         *setup.space, table, setup.cost_fallback.get()));
  apq::predictor::MlpPredictor::Options options;
  options.num_threads = threads;
  ASSIGN_OR_RETURN(setup.predictor,
                   apq::predictor::MlpPredictor::LoadRawFloat32(
                       data_dir + "/fmnist_mbv2/qa_predictor.f32",
                       data_dir + "/fmnist_mbv2/qa_predictor.manifest.json", options));
  setup.budgets.max_latency_ms = 0.3;
  setup.description = "fmnist_mbv2 / bitfusion / latency <= 0.3 ms (shipped predictor)";
  return setup;
}

int Run(const Setup& setup, int threads, int repeats) {
  const apq::search::EvolutionParams params;  // The reference defaults.
  std::printf("%s, population %d, %d generations, %d predictor threads\n",
              setup.description.c_str(), params.population_size, params.generations, threads);
  std::printf("%-6s %12s %12s %16s %14s %14s\n", "seed", "median_s", "min_s", "candidates/s",
              "predictions", "best_accuracy");
  double accuracy_sum = 0;
  std::vector<double> all_times;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<double> times;
    double best = 0;
    int64_t candidates = 0;
    int64_t predictions = 0;
    for (int r = 0; r < repeats; ++r) {
      auto instance = setup.predictor->Clone();
      apq::search::EvolutionSearch search(*setup.space, *setup.cost_model, *instance, setup.budgets,
                                          params, seed);
      const auto start = std::chrono::steady_clock::now();
      auto result = search.Run(nullptr, nullptr);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!result.ok() || !result->best) {
        std::fprintf(stderr, "search failed: %s\n", result.status().ToString().c_str());
        return 1;
      }
      times.push_back(seconds);
      best = result->best->accuracy;
      candidates = result->candidates_evaluated;
      predictions = result->predictions;
    }
    std::sort(times.begin(), times.end());
    all_times.insert(all_times.end(), times.begin(), times.end());
    const double median = times[times.size() / 2];
    accuracy_sum += best;
    std::printf("%-6llu %12.3f %12.3f %16.0f %14lld %14.5f\n",
                static_cast<unsigned long long>(seed), median, times.front(), candidates / median,
                static_cast<long long>(predictions), best);
  }
  std::sort(all_times.begin(), all_times.end());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "median over all runs: %.3f s; mean best accuracy over seeds 1-3: %.5f; "
      "peak RSS %.1f MB\n",
      all_times[all_times.size() / 2], accuracy_sum / 3, usage.ru_maxrss / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  int repeats = 5;
  std::string data_dir = "data";
  std::string space = "ofa_mbv3";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--repeats") == 0) {
      repeats = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--data_dir") == 0) {
      data_dir = argv[i + 1];
    } else if (std::strcmp(argv[i], "--space") == 0) {
      space = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || repeats < 1) {
    std::fprintf(stderr, "--threads and --repeats must be >= 1\n");
    return 2;
  }
  absl::StatusOr<Setup> setup =
      space == "ofa_mbv3"   ? SetUpOfaMbv3(data_dir, threads)
      : space == "apq_mbv2" ? SetUpApqMbv2(data_dir, threads)
      : space == "fmnist_mbv2"
          ? SetUpFmnistMbv2(data_dir, threads)
          : absl::InvalidArgumentError("--space: ofa_mbv3, apq_mbv2 or fmnist_mbv2");
  if (!setup.ok()) {
    std::fprintf(stderr, "%s\n", setup.status().ToString().c_str());
    return 2;
  }
  return Run(*setup, threads, repeats);
}
