// The "conv table JSON" format: a per-layer cost table of a measured device (e.g. the
// `local-cpu` device, oface/layer_profiler.h), keyed by conv layer.
//
// The file is one non-empty JSON object. Keys are conv layers in APQ's BitFusion key syntax
// (hwmodels/bitfusion_key.h), "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}", where
// groups divides Cin and Cout, the kernel fits the padded input, and w, a are in 1..32 (a CPU
// table is not limited to BitFusion's 1..8). Values: {"latency": ms} or
// {"latency": ms, "energy": mJ}, finite non-negative numbers, no other fields; energy is on
// every entry or on none. A table may also price the change of precision of a tensor between
// an int8 layer and a float one, "(C, H)-quantize" and "(C, H)-dequantize" (oface/conv_key.h),
// unless it declares that its device runs no float layer. There are no fixed "head"/"tail"
// entries: a space priced by such a
// table lists its stem and tail as conv keys too (FixedLayerCosts::kConvKeys,
// oface/mbconv_spec.h).
// Table keys are the file's keys.
#ifndef APQ_HWMODELS_CONV_LATENCY_TABLE_H_
#define APQ_HWMODELS_CONV_LATENCY_TABLE_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"

namespace apq::hwmodels {

// INVALID_ARGUMENT starting with "<source_name>: " when the content breaks the format above:
// malformed JSON (the parser's message with line and column), a top level that is not an
// object or is empty, a duplicate key (at any level), a malformed key or one whose fields do
// not describe a conv, a value that is not an object of latency and optional energy, a number
// that is not finite and non-negative, or energy on some entries only (naming the first key, in
// key order, whose energy presence differs from the first key's). The message names the
// offending key. The table's format is TableFormat::kConvJson. Time is linear in the size of
// `content`; CANCELLED when `cancelled` (optional, asked every few thousand values) says so.
absl::StatusOr<CostTable> LoadConvTable(std::string_view content, std::string_view source_name,
                                        const std::function<bool()>& cancelled = nullptr);

// Reads `path` and loads it as above (source name = path). NOT_FOUND when the file does not
// exist, INVALID_ARGUMENT when it cannot be read.
absl::StatusOr<CostTable> LoadConvTableFile(const std::string& path);

// The table in the format above: one entry per line, keys in ascending order, numbers in the
// shortest form that reads back to the same double. Precondition: LoadConvTable would accept
// the result (conv keys, finite non-negative numbers, energy on every entry or none); then it
// loads back to an equal table.
std::string ConvTableToJson(const CostTable& table);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_CONV_LATENCY_TABLE_H_
