// A per-layer cost lookup table for one device, in memory.
//
// Keys are the table format's own layer keys (see the loaders); values are the measured
// or simulated cost of that layer at batch 1. Immutable after loading.
#ifndef APQ_HWMODELS_COST_TABLE_H_
#define APQ_HWMODELS_COST_TABLE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

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

// A bits gene's value, and a key's W/A figure, for a layer left in float: W32A32.
inline constexpr int kFloatBits = 32;

struct BitPair {
  int weight_bits = 0;
  int activation_bits = 0;
  friend bool operator==(const BitPair& a, const BitPair& b) {
    return a.weight_bits == b.weight_bits && a.activation_bits == b.activation_bits;
  }
  friend bool operator<(const BitPair& a, const BitPair& b) {
    return a.weight_bits != b.weight_bits ? a.weight_bits < b.weight_bits
                                          : a.activation_bits < b.activation_bits;
  }
};

// "W8A8", or "float" for W32A32.
inline std::string PairName(const BitPair& pair) {
  if (pair.weight_bits == kFloatBits && pair.activation_bits == kFloatBits) return "float";
  return absl::StrCat("W", pair.weight_bits, "A", pair.activation_bits);
}

// What a device executes (hwmodels/precision_support.h reads and checks it): the
// (weight, activation) bit pairs of its layers and whether a layer may stay in float. A policy
// with another pair is one the device cannot run: searches treat it as infeasible, Evaluate
// refuses it.
struct PrecisionSupport {
  // False for a table that declares nothing (a conv table without "precisions"): every pair
  // its entries or its estimator price runs.
  bool declared = false;
  std::vector<BitPair> pairs;           // Executed and priced by the table; sorted, distinct.
  std::vector<BitPair> modelled_pairs;  // Executed, priced only by a model fitted to the table.
  bool float_layers = false;            // A layer may run in float (the pair W32A32).
  // The LibTorch quantized engine its int8 (W8A8) layers run on ("qnnpack", "onednn"); empty
  // when the device has no integer path in LibTorch.
  std::string int8_engine;
};

struct CostTable {
  TableFormat format = TableFormat::kOfaYaml;
  absl::flat_hash_map<std::string, CostEntry> entries;
  PrecisionSupport precisions;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_COST_TABLE_H_
