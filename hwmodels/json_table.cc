#include "hwmodels/json_table.h"

#include <array>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/strict_json.h"

namespace apq::hwmodels::table_internal {
namespace {

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
absl::string_view Sv(std::string_view text) { return {text.data(), text.size()}; }

// Far above any real table (APQ's BitFusion table is 0.6 MB); the server's message limit is
// lower still.
constexpr size_t kMaxTableBytes = size_t{1} << 30;

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonWithoutDuplicates(std::string_view content,
                                                          const std::function<bool()>& cancelled) {
  JsonLimits limits;
  limits.max_bytes = kMaxTableBytes;
  limits.max_depth = 4;  // An object of entries, each an object of numbers, with room to spare.
  return ParseStrictJson(content, limits, cancelled);
}

absl::StatusOr<CostEntry> ParseCostEntry(const std::string& key, const nlohmann::json& value,
                                         bool energy_required) {
  const std::string at = absl::StrCat("key \"", key, "\": ");
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(at, "expected an object ",
                     energy_required ? "{\"latency\": ms, \"energy\": mJ}"
                                     : "{\"latency\": ms} or {\"latency\": ms, \"energy\": mJ}",
                     ", got ", value.type_name()));
  }
  for (const auto& item : value.items()) {
    if (item.key() != "latency" && item.key() != "energy") {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "unknown field \"", item.key(), "\" (expected latency, energy)"));
    }
  }
  std::array<std::optional<double>, 2> numbers;
  const std::array<const char*, 2> fields = {"latency", "energy"};
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto it = value.find(fields[i]);
    if (it == value.end()) {
      if (i == 0 || energy_required) {
        return absl::InvalidArgumentError(absl::StrCat(at, fields[i], ": missing"));
      }
      continue;
    }
    if (!it->is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": expected a number, got ", it->type_name()));
    }
    const double number = it->get<double>();
    if (!std::isfinite(number)) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": ", it->dump(), " is not finite"));
    }
    if (number < 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": ", it->dump(), " is negative"));
    }
    numbers[i] = number;
  }
  CostEntry entry;
  entry.latency_ms = *numbers[0];
  entry.energy_mj = numbers[1];
  return entry;
}

absl::Status WithSource(const absl::Status& status, std::string_view source_name) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(Sv(source_name), ": ", status.message()));
}

absl::StatusOr<std::string> ReadTableFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  if (in) content << in.rdbuf();
  if (!in || in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  return content.str();
}

}  // namespace apq::hwmodels::table_internal
