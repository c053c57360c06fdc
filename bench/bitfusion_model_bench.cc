// Fits the analytic BitFusion model (hwmodels/bitfusion_analytic.h) to a BitFusion table and
// prints its fit report: per op kind, training / held-out rows, and on the held-out shapes the
// latency and energy MAPE, median and worst APE (with the worst key); the fitted constants; the
// estimates of a few layers on a 28x28 input next to the table's 224x224 ones; the fit time
// (best of several fits); and, for comparison, the held-out error of the same model with
// ceil(bits / 2) bricks per operand instead of power-of-two brick groups.
//
// Usage: bazel run //bench:bitfusion_model_bench [-- <fits> [<table.dict>]]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/bitfusion_analytic.h"
#include "hwmodels/cost_table.h"

namespace {

using apq::hwmodels::BitFusionAnalyticModel;
using apq::hwmodels::BitFusionAnalyticOptions;
using apq::hwmodels::BitFusionKindParams;
using apq::hwmodels::BitFusionOpKind;

void PrintParams(const BitFusionAnalyticModel& model) {
  for (const BitFusionOpKind kind : {BitFusionOpKind::kPointwise, BitFusionOpKind::kDepthwise}) {
    const BitFusionKindParams& p = model.params(kind);
    std::printf(
        "%-10s latency: t0 %.4g us, tc %.4g ns/step, tm %.4g ps/DRAM bit, gamma %.3f, "
        "ts %.4g ns/input channel\n",
        apq::hwmodels::OpKindName(kind), p.overhead_ms * 1e3, p.ms_per_step * 1e6,
        p.ms_per_dram_bit * 1e9, p.exposed_dram_fraction, p.ms_per_input_channel * 1e6);
    std::printf(
        "%-10s energy:  e0 %.4g uJ, e1 %.4g pJ/step, e2 %.4g pJ/DRAM bit, e3 %.4g pJ/operand bit, "
        "e4 %.4g W static\n",
        "", p.energy_fixed_mj * 1e3, p.mj_per_step * 1e9, p.mj_per_dram_bit * 1e9,
        p.mj_per_operand_bit * 1e9, p.static_power_w);
  }
}

// Shapes of the table (224x224 input) next to the same layers on a 28x28 input, which the table
// lacks (a Fashion-MNIST supernet), and odd widths.
void PrintSampleEstimates(const BitFusionAnalyticModel& model,
                          const apq::hwmodels::CostTable& table) {
  std::printf("\n%-36s %12s %12s %12s %12s\n", "key", "table ms", "model ms", "table mJ",
              "model mJ");
  for (const char* key : {
           "(16, 96, 112, 1, 1, 0, 1)-W8A8",
           "(16, 96, 14, 1, 1, 0, 1)-W8A8",
           "(96, 96, 112, 3, 2, 1, 96)-W8A8",
           "(96, 96, 14, 3, 2, 1, 96)-W8A8",
           "(96, 24, 56, 1, 1, 0, 1)-W4A4",
           "(96, 24, 7, 1, 1, 0, 1)-W4A4",
           "(192, 192, 28, 7, 1, 3, 192)-W6A8",
           "(192, 192, 4, 7, 1, 3, 192)-W6A8",
           "(1152, 320, 7, 1, 1, 0, 1)-W8A8",
           "(1152, 320, 1, 1, 1, 0, 1)-W8A8",
           "(77, 77, 14, 3, 1, 1, 77)-W8A8",
           "(13, 77, 14, 1, 1, 0, 1)-W8A8",
       }) {
    const auto found = table.entries.find(key);
    const std::optional<apq::hwmodels::CostEntry> estimate = model.Estimate(key);
    if (!estimate.has_value()) continue;
    if (found != table.entries.end()) {
      std::printf("%-36s %12.5f %12.5f %12.5f %12.5f\n", key, found->second.latency_ms,
                  estimate->latency_ms, found->second.energy_mj.value_or(0.0),
                  estimate->energy_mj.value_or(0.0));
    } else {
      std::printf("%-36s %12s %12.5f %12s %12.5f\n", key, "-", estimate->latency_ms, "-",
                  estimate->energy_mj.value_or(0.0));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int fits = argc > 1 ? std::atoi(argv[1]) : 5;
  const std::string path = argc > 2 ? argv[2] : "data/apq_bitfusion/BitFusion_new.b1.dict";
  if (fits <= 0) {
    std::fprintf(stderr, "fits must be positive\n");
    return 2;
  }
  const absl::StatusOr<apq::hwmodels::CostTable> table = apq::hwmodels::LoadApqBitFusionFile(path);
  if (!table.ok()) {
    std::fprintf(stderr, "%s\n", table.status().ToString().c_str());
    return 1;
  }

  std::unique_ptr<BitFusionAnalyticModel> model;
  double best_seconds = 1e30;
  for (int i = 0; i < fits; ++i) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::unique_ptr<BitFusionAnalyticModel>> fitted =
        BitFusionAnalyticModel::Fit(*table);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!fitted.ok()) {
      std::fprintf(stderr, "%s\n", fitted.status().ToString().c_str());
      return 1;
    }
    best_seconds = std::min(best_seconds, seconds);
    model = *std::move(fitted);
  }
  std::printf("%s: %zu entries\n", path.c_str(), table->entries.size());
  std::printf("%s", model->report().ToString().c_str());
  for (const auto& kind : model->report().kinds) {
    std::printf(
        "%-10s latency objective evaluations %d; train latency MAPE %.2f%%, energy %.2f%%\n",
        apq::hwmodels::OpKindName(kind.kind), kind.objective_evaluations,
        100 * kind.train_latency.mape, 100 * kind.train_energy.mape);
  }
  PrintParams(*model);
  PrintSampleEstimates(*model, *table);
  std::printf("fit time: best %.1f ms of %d fits\n", best_seconds * 1e3, fits);

  BitFusionAnalyticOptions linear_bricks;
  linear_bricks.power_of_two_fusion = false;
  const absl::StatusOr<std::unique_ptr<BitFusionAnalyticModel>> linear =
      BitFusionAnalyticModel::Fit(*table, linear_bricks);
  if (linear.ok()) {
    std::printf("\nfor comparison, ceil(bits / 2) bricks per operand:\n%s",
                (*linear)->report().ToString().c_str());
  }
  return 0;
}
