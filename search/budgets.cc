#include "search/budgets.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::search {
namespace {

absl::Status CheckPositiveFinite(const std::optional<double>& value, const char* field) {
  if (value.has_value() && !(std::isfinite(*value) && *value > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a finite number > 0, got ", *value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBudgets(const Budgets& budgets) {
  RETURN_IF_ERROR(CheckPositiveFinite(budgets.max_latency_ms, "budgets.max_latency_ms"));
  RETURN_IF_ERROR(CheckPositiveFinite(budgets.max_energy_mj, "budgets.max_energy_mj"));
  RETURN_IF_ERROR(CheckPositiveFinite(budgets.max_size_mb, "budgets.max_size_mb"));
  RETURN_IF_ERROR(CheckPositiveFinite(budgets.max_bitops, "budgets.max_bitops"));
  return absl::OkStatus();
}

absl::Status CheckBudgetsPriceable(const Budgets& budgets, const hwmodels::LutCostModel& model,
                                   const std::string& device) {
  if (budgets.max_energy_mj && !model.has_energy()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "budgets.max_energy_mj: the cost table of device ", device, " has no energy figures"));
  }
  if ((budgets.max_size_mb || budgets.max_bitops) && !model.has_size_and_bitops()) {
    return absl::FailedPreconditionError(
        absl::StrCat(budgets.max_size_mb ? "budgets.max_size_mb" : "budgets.max_bitops", ": space ",
                     model.space().name(),
                     " has no bitwidths, so no model-size or BitOps figure; these budgets apply to "
                     "quantized spaces"));
  }
  return absl::OkStatus();
}

bool MeetsBudgets(const hwmodels::NetworkCost& cost, const Budgets& budgets) {
  if (!cost.executable) return false;  // The device cannot run it: no budget makes it fit.
  if (budgets.max_latency_ms && !(cost.latency_ms <= *budgets.max_latency_ms)) return false;
  if (budgets.max_energy_mj && !(cost.has_energy && cost.energy_mj <= *budgets.max_energy_mj)) {
    return false;
  }
  if (budgets.max_size_mb && !(cost.has_size_and_bitops && cost.size_mb <= *budgets.max_size_mb)) {
    return false;
  }
  if (budgets.max_bitops && !(cost.has_size_and_bitops && cost.bitops <= *budgets.max_bitops)) {
    return false;
  }
  return true;
}

const char* CostMetricName(CostMetric metric) {
  switch (metric) {
    case CostMetric::kLatency:
      return "latency_ms";
    case CostMetric::kEnergy:
      return "energy_mj";
    case CostMetric::kSize:
      return "size_mb";
    case CostMetric::kBitops:
      return "bitops";
  }
  return "unknown";
}

double CostValue(const hwmodels::NetworkCost& cost, CostMetric metric) {
  constexpr double kMissing = std::numeric_limits<double>::infinity();
  switch (metric) {
    case CostMetric::kLatency:
      return cost.latency_ms;
    case CostMetric::kEnergy:
      return cost.has_energy ? cost.energy_mj : kMissing;
    case CostMetric::kSize:
      return cost.has_size_and_bitops ? cost.size_mb : kMissing;
    case CostMetric::kBitops:
      return cost.has_size_and_bitops ? cost.bitops : kMissing;
  }
  return kMissing;
}

}  // namespace apq::search
