// Properties every cost-table loader keeps, whatever bytes it is given: it answers OK or
// INVALID_ARGUMENT naming its source, and a loaded table holds only finite, non-negative
// figures of the loader's format.
#ifndef APQ_TESTS_FUZZ_COST_TABLE_CHECKS_H_
#define APQ_TESTS_FUZZ_COST_TABLE_CHECKS_H_

#include <cmath>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "hwmodels/cost_table.h"
#include "tests/fuzz/fuzz_check.h"

namespace apq::fuzz {

inline void CheckLoadedTable(const absl::StatusOr<hwmodels::CostTable>& table,
                             hwmodels::TableFormat format, const std::string& source_name) {
  if (!table.ok()) {
    FUZZ_CHECK(table.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StrContains(table.status().message(), source_name));
    return;
  }
  FUZZ_CHECK(table->format == format);
  FUZZ_CHECK(!table->entries.empty());
  for (const auto& [key, entry] : table->entries) {
    FUZZ_CHECK(!key.empty());
    FUZZ_CHECK(std::isfinite(entry.latency_ms) && entry.latency_ms >= 0.0);
    if (entry.energy_mj.has_value()) {
      FUZZ_CHECK(std::isfinite(*entry.energy_mj) && *entry.energy_mj >= 0.0);
    }
  }
}

}  // namespace apq::fuzz

#endif  // APQ_TESTS_FUZZ_COST_TABLE_CHECKS_H_
