#include "oface/json_fields.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/strict_json.h"
#include "nlohmann/json.hpp"

namespace apq::oface {
namespace {

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
absl::string_view Sv(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace

absl::StatusOr<nlohmann::json> ParseArchJson(std::string_view json) {
  JsonLimits limits;
  limits.max_bytes = kMaxArchJsonBytes;
  limits.max_depth = kMaxArchJsonDepth;
  absl::StatusOr<nlohmann::json> parsed = ParseStrictJson(json, limits);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("arch JSON: ", parsed.status().message()));
  }
  return parsed;
}

absl::Status CheckKnownKeys(const nlohmann::json& object,
                            std::initializer_list<std::string_view> allowed,
                            std::string_view context, std::string_view expected) {
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(context), "unknown key \"", key, "\" (expected ", Sv(expected), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckJsonList(std::string_view field, const nlohmann::json& value, size_t count,
                           std::string_view what) {
  if (!value.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": expected a list of ", count, " ",
                                                   Sv(what), ", got ", value.type_name()));
  }
  if (value.size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(field), ": expected ", count, " entries, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ReadIntegerGene(std::string_view field, const nlohmann::json& value,
                                    const std::vector<int>& choices) {
  if (!value.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(field), ": expected an integer, got ",
                     value.is_number() ? value.dump() : value.type_name()));
  }
  const bool in_range = value.is_number_unsigned()
                            ? value.get<uint64_t>() <= static_cast<uint64_t>(INT_MAX)
                            : value.get<int64_t>() >= INT_MIN && value.get<int64_t>() <= INT_MAX;
  if (!in_range) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(field), ": ", value.dump(), " is not one of {", absl::StrJoin(choices, ", "), "}"));
  }
  return static_cast<int>(value.get<int64_t>());
}

}  // namespace apq::oface
