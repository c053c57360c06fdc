// A per-layer cost lookup table for one device, in memory.
//
// Keys are the table format's own layer keys (see the loaders); values are the measured
// or simulated cost of that layer at batch 1. Immutable after loading.
#ifndef APQ_HWMODELS_COST_TABLE_H_
#define APQ_HWMODELS_COST_TABLE_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace apq::hwmodels {

struct CostEntry {
  double latency_ms = 0.0;
  std::optional<double> energy_mj;  // Absent when the table measures latency only.
};

enum class TableFormat {
  kOfaYaml,       // once-for-all's <r>_lookup_table.yaml files, one per resolution.
  kApqBitFusion,  // APQ's BitFusion_new.b1.dict JSON (hwmodels/apq_bitfusion_table.h).
  kConvJson,      // A measured device's conv table JSON (hwmodels/conv_latency_table.h).
};

struct CostTable {
  TableFormat format = TableFormat::kOfaYaml;
  absl::flat_hash_map<std::string, CostEntry> entries;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_COST_TABLE_H_
