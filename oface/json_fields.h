// Reading the fields of a reference-format arch JSON, with errors that name the field.
// Shared by the spaces' FromJson; every error is INVALID_ARGUMENT.
#ifndef APQ_OFACE_JSON_FIELDS_H_
#define APQ_OFACE_JSON_FIELDS_H_

#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace apq::oface {

// A network's config is a few hundred bytes, two or three levels deep; anything far beyond is
// refused before it is built (bounded memory for every config an RPC carries).
inline constexpr size_t kMaxArchJsonBytes = size_t{64} << 10;
inline constexpr int kMaxArchJsonDepth = 4;

// Parses `json` with common/strict_json.h under the limits above: a syntax error, a repeated
// key, a deeper nesting or a larger text becomes INVALID_ARGUMENT "arch JSON: <why, where>".
absl::StatusOr<nlohmann::json> ParseArchJson(std::string_view json);

// The first key of `object` (an object) not in `allowed`, as
// "<context>unknown key "<key>" (expected <expected>)"; OK when there is none.
absl::Status CheckKnownKeys(const nlohmann::json& object,
                            std::initializer_list<std::string_view> allowed,
                            std::string_view context, std::string_view expected);

// `value` must be a list of `count` entries: "<field>: expected a list of <count> <what>, got
// <type>" or "<field>: expected <count> entries, got <size>".
absl::Status CheckJsonList(std::string_view field, const nlohmann::json& value, size_t count,
                           std::string_view what);

// Reads an integer gene value: "<field>: expected an integer, got <value or type>", and, for
// integers outside int's range, "<field>: <value> is not one of {<choices>}" (the words of
// SearchSpace::Validate, which checks the choices of in-range values).
absl::StatusOr<int> ReadIntegerGene(std::string_view field, const nlohmann::json& value,
                                    const std::vector<int>& choices);

}  // namespace apq::oface

#endif  // APQ_OFACE_JSON_FIELDS_H_
