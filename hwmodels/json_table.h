// INTERNAL to hwmodels: the pieces the JSON cost-table loaders share
// (hwmodels/apq_bitfusion_table.h, hwmodels/conv_latency_table.h). Error messages follow
// their convention: every rejection names the offending key (`key "<key>": ...`), and the
// loaders prefix "<source_name>: ".
#ifndef APQ_HWMODELS_JSON_TABLE_H_
#define APQ_HWMODELS_JSON_TABLE_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"
#include "nlohmann/json.hpp"

namespace apq::hwmodels::table_internal {

// Parses `content` in time linear in its size (common/strict_json.h), rejecting the first
// repeated key of any object: INVALID_ARGUMENT `duplicate key "<key>"` at the top level,
// `key "<entry>": duplicate field "<field>"` inside an entry, nesting deeper than a table's,
// or the parser's message (with line and column) for malformed JSON. CANCELLED when
// `cancelled` (optional) says so.
absl::StatusOr<nlohmann::json> ParseJsonWithoutDuplicates(std::string_view content,
                                                          const std::function<bool()>& cancelled);

// Reads one entry's value: an object of "latency" (ms) and "energy" (mJ), no other field,
// both finite non-negative numbers; energy may be absent unless `energy_required`.
// INVALID_ARGUMENT starting with `key "<key>": ` otherwise.
absl::StatusOr<CostEntry> ParseCostEntry(const std::string& key, const nlohmann::json& value,
                                         bool energy_required);

// `status` with "<source_name>: " before its message (OK stays OK).
absl::Status WithSource(const absl::Status& status, std::string_view source_name);

// The bytes of the file at `path`. NOT_FOUND "<path>: no such file" when it does not exist,
// INVALID_ARGUMENT "<path>: cannot read" when it cannot be read.
absl::StatusOr<std::string> ReadTableFile(const std::string& path);

}  // namespace apq::hwmodels::table_internal

#endif  // APQ_HWMODELS_JSON_TABLE_H_
