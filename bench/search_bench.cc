// One evolutionary search at the reference settings (ofa_mbv3, Note10, 25 ms, population 100,
// 500 generations), per seed: wall time, candidates scored per second, best predicted
// accuracy, and the process's peak memory.
//
//   bazel run //bench:search_bench -- [--threads N] [--repeats R]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/ofa_mbv3_space.h"
#include "predictor/mlp_predictor.h"
#include "search/evolution.h"

namespace {

int Run(int threads, int repeats, const std::string& data_dir) {
  auto space = apq::oface::NewOfaMbv3Space();
  auto table = apq::hwmodels::LoadOfaYamlDirectory(data_dir + "/ofa_mbv3/note10_lut");
  if (!table.ok()) {
    std::fprintf(stderr, "%s\n", table.status().ToString().c_str());
    return 1;
  }
  auto cost_model = apq::hwmodels::LutCostModel::Create(*space, *table);
  if (!cost_model.ok()) {
    std::fprintf(stderr, "%s\n", cost_model.status().ToString().c_str());
    return 1;
  }
  apq::predictor::MlpPredictor::Options options;
  options.num_threads = threads;
  auto predictor = apq::predictor::MlpPredictor::LoadRawFloat32(
      data_dir + "/ofa_mbv3/acc_predictor.f32", data_dir + "/ofa_mbv3/acc_predictor.manifest.json",
      options);
  if (!predictor.ok()) {
    std::fprintf(stderr, "%s\n", predictor.status().ToString().c_str());
    return 1;
  }
  apq::search::Budgets budgets;
  budgets.max_latency_ms = 25.0;
  const apq::search::EvolutionParams params;  // The reference defaults.

  std::printf("ofa_mbv3 / note10 / 25 ms, population %d, %d generations, %d predictor threads\n",
              params.population_size, params.generations, threads);
  std::printf("%-6s %12s %12s %16s %14s\n", "seed", "median_s", "min_s", "candidates/s",
              "best_accuracy");
  double accuracy_sum = 0;
  std::vector<double> all_times;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<double> times;
    double best = 0;
    int64_t candidates = 0;
    for (int r = 0; r < repeats; ++r) {
      auto instance = (*predictor)->Clone();
      apq::search::EvolutionSearch search(*space, **cost_model, *instance, budgets, params, seed);
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
    }
    std::sort(times.begin(), times.end());
    all_times.insert(all_times.end(), times.begin(), times.end());
    const double median = times[times.size() / 2];
    accuracy_sum += best;
    std::printf("%-6llu %12.3f %12.3f %16.0f %14.5f\n", static_cast<unsigned long long>(seed),
                median, times.front(), candidates / median, best);
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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--repeats") == 0) {
      repeats = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--data_dir") == 0) {
      data_dir = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || repeats < 1) {
    std::fprintf(stderr, "--threads and --repeats must be >= 1\n");
    return 2;
  }
  return Run(threads, repeats, data_dir);
}
