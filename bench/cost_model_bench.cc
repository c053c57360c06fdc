// Times the search inner loop's primitives on ofa_mbv3 with the Note10 table:
// LutCostModel::Evaluate and SearchSpace::Sample / Mutate / Crossover, in ns per call.
//
// Usage: bazel run //bench:cost_model_bench [-- <calls> [<note10 lut dir>]]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename Body>
void Time(const char* label, int64_t calls, Body body) {
  const Clock::time_point start = Clock::now();
  for (int64_t i = 0; i < calls; ++i) body(i);
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  std::printf("%-34s %10.1f ns/call  (%lld calls)\n", label, ns / static_cast<double>(calls),
              static_cast<long long>(calls));
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t calls = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const std::string dir = argc > 2 ? argv[2] : "data/ofa_mbv3/note10_lut";
  if (calls <= 0) {
    std::fprintf(stderr, "calls must be positive\n");
    return 2;
  }

  const std::unique_ptr<apq::oface::SearchSpace> space = apq::oface::NewOfaMbv3Space();
  absl::StatusOr<apq::hwmodels::CostTable> table = apq::hwmodels::LoadOfaYamlDirectory(dir);
  if (!table.ok()) {
    std::fprintf(stderr, "%s\n", table.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<apq::hwmodels::LutCostModel>> model =
      apq::hwmodels::LutCostModel::Create(*space, *table);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }

  // A fixed pool of networks, so Evaluate's timing excludes sampling.
  apq::oface::Rng rng(2026);
  constexpr int kPool = 1024;
  std::vector<apq::oface::Genotype> pool;
  pool.reserve(kPool);
  for (int i = 0; i < kPool; ++i) pool.push_back(space->Sample(rng));

  // Sinks keep the compiler from dropping the timed work.
  double latency_sum = 0.0;
  int64_t gene_sum = 0;
  Time("LutCostModel::Evaluate", calls,
       [&](int64_t i) { latency_sum += (*model)->Evaluate(pool[i & (kPool - 1)]).latency_ms; });
  Time("SearchSpace::Sample", calls, [&](int64_t) { gene_sum += space->Sample(rng).back(); });
  Time("SearchSpace::Mutate (p=0.1)", calls,
       [&](int64_t i) { gene_sum += space->Mutate(pool[i & (kPool - 1)], 0.1, 0.1, rng).back(); });
  Time("SearchSpace::Crossover", calls, [&](int64_t i) {
    gene_sum += space->Crossover(pool[i & (kPool - 1)], pool[(i + 1) & (kPool - 1)], rng).back();
  });
  Time("Sample + Evaluate", calls,
       [&](int64_t) { latency_sum += (*model)->Evaluate(space->Sample(rng)).latency_ms; });
  std::printf("(checksums: %.6f %lld)\n", latency_sum, static_cast<long long>(gene_sum));
  return 0;
}
