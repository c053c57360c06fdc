// Loads APQ's BitFusion per-layer cost table (mit-han-lab/apq, lut/BitFusion_new.b1.dict).
//
// The file is one JSON object. Keys: "head" and "tail" (the fixed stem and tail of the
// network) and, per conv shape and bit pair, "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}"
// (hwmodels/bitfusion_key.h): Python's str() of the 7-tuple (decimals without sign or leading
// zeros, ", " between them; pad and nothing else may be 0) with w, a in {4, 6, 8}. Values:
// {"latency": ms, "energy": mJ}, both finite, non-negative numbers, no other fields. Every conv
// shape carries all nine W/A pairs, except that a depthwise 7x7 shape (K = 7,
// groups = Cin = Cout > 1) may lack its three A4 pairs: the real table has none (APQ bans
// kernel 7 with 4-bit depthwise activations).
// Table keys are the file's keys; every entry has an energy.
#ifndef APQ_HWMODELS_APQ_BITFUSION_TABLE_H_
#define APQ_HWMODELS_APQ_BITFUSION_TABLE_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"

namespace apq::hwmodels {

// INVALID_ARGUMENT starting with "<source_name>: " when the content breaks the format above:
// malformed JSON (the parser's message with line and column), a top level that is not an
// object, a duplicate key (at any level), a malformed key, a value that is not an object of
// exactly latency and energy, a latency or energy that is not a finite non-negative number,
// a missing "head" or "tail", or a conv shape lacking one of its required W/A pairs. The
// message names the offending key (or shape). Time is linear in the size of `content`;
// CANCELLED when `cancelled` (optional, asked every few thousand values) says so.
absl::StatusOr<CostTable> LoadApqBitFusionTable(std::string_view content,
                                                std::string_view source_name,
                                                const std::function<bool()>& cancelled = nullptr);

// Reads `path` and loads it as above (source name = path). NOT_FOUND when the file does not
// exist, INVALID_ARGUMENT when it cannot be read.
absl::StatusOr<CostTable> LoadApqBitFusionFile(const std::string& path);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_APQ_BITFUSION_TABLE_H_
