// Parsing JSON that comes from outside (RPC fields, uploaded files) with bounded work:
// a size and a nesting limit checked while reading (never a document deeper or larger than
// allowed is built), repeated keys rejected (nlohmann::json would keep the last one
// silently), time linear in the input, and a cancellation check between values.
#ifndef APQ_COMMON_STRICT_JSON_H_
#define APQ_COMMON_STRICT_JSON_H_

#include <cstddef>
#include <functional>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace apq {

struct JsonLimits {
  // Longest accepted input in bytes.
  size_t max_bytes = size_t{64} << 20;
  // Deepest accepted nesting of arrays and objects (the top-level value is depth 1).
  int max_depth = 16;
};

// Parses `content` under `limits`. `cancelled`, when set, is asked every few thousand values
// and stops the parse with CANCELLED. Errors (INVALID_ARGUMENT) name where they are:
// `duplicate key "<key>"` for the top-level object, `key "<entry>": duplicate field
// "<field>"` (the path of keys and `item <i>` for array positions before the colon) deeper,
// `nesting deeper than <n> levels`, `<n> bytes, more than the limit of <m>`, or
// the parser's message with the byte offset for malformed JSON.
absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view content, const JsonLimits& limits,
                                               const std::function<bool()>& cancelled = nullptr);

}  // namespace apq

#endif  // APQ_COMMON_STRICT_JSON_H_
