#include "hwmodels/conv_latency_table.h"

#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "hwmodels/bitfusion_key.h"
#include "hwmodels/json_table.h"
#include "nlohmann/json.hpp"

namespace apq::hwmodels {
namespace {

// Bit widths a CPU table may name (BitFusion's own keys stop at 8).
constexpr int kMinBits = 1;
constexpr int kMaxBits = 32;

absl::Status KeyError(const std::string& key, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("key \"", key, "\": ", absl::string_view(why.data(), why.size())));
}

// ParseBitFusionKeyFields, then the conv must exist: groups divide both widths, the kernel
// fits the padded input, bit widths in kMinBits..kMaxBits.
absl::Status CheckConvKey(const std::string& key) {
  ASSIGN_OR_RETURN(const BitFusionConv conv, ParseBitFusionKeyFields(key));
  if (conv.in_channels % conv.groups != 0 || conv.out_channels % conv.groups != 0) {
    return KeyError(key, "groups does not divide Cin and Cout");
  }
  if (conv.kernel_size > conv.input_size + 2 * conv.padding) {
    return KeyError(key, "kernel larger than the padded input");
  }
  for (const auto& [letter, bits] : {std::pair{"W", conv.w_bits}, std::pair{"A", conv.a_bits}}) {
    if (bits < kMinBits || bits > kMaxBits) {
      return KeyError(key, absl::StrCat(letter, bits, " is outside ", kMinBits, "..", kMaxBits));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CostTable> Load(std::string_view content, const std::function<bool()>& cancelled) {
  ASSIGN_OR_RETURN(const nlohmann::json doc,
                   table_internal::ParseJsonWithoutDuplicates(content, cancelled));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON object of conv keys, got ", doc.type_name()));
  }
  if (doc.empty()) return absl::InvalidArgumentError("no entries (an empty table prices nothing)");
  CostTable table;
  table.format = TableFormat::kConvJson;
  table.entries.reserve(doc.size());
  // nlohmann::json keeps an object's keys sorted: "first" is in key order.
  const std::string* first_key = nullptr;
  bool first_has_energy = false;
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    RETURN_IF_ERROR(CheckConvKey(key));
    ASSIGN_OR_RETURN(const CostEntry entry,
                     table_internal::ParseCostEntry(key, item.value(), /*energy_required=*/false));
    const bool has_energy = entry.energy_mj.has_value();
    if (first_key == nullptr) {
      first_key = &key;
      first_has_energy = has_energy;
    } else if (has_energy != first_has_energy) {
      return KeyError(
          key, absl::StrCat(has_energy ? "has an energy" : "has no energy", " but the first key \"",
                            *first_key, "\" has ", has_energy ? "none" : "one",
                            " (energy must be on every entry or on none)"));
    }
    table.entries.emplace(key, entry);
  }
  return table;
}

}  // namespace

absl::StatusOr<CostTable> LoadConvTable(std::string_view content, std::string_view source_name,
                                        const std::function<bool()>& cancelled) {
  absl::StatusOr<CostTable> table = Load(content, cancelled);
  if (!table.ok()) return table_internal::WithSource(table.status(), source_name);
  return table;
}

absl::StatusOr<CostTable> LoadConvTableFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string content, table_internal::ReadTableFile(path));
  return LoadConvTable(content, path);
}

std::string ConvTableToJson(const CostTable& table) {
  std::vector<const std::pair<const std::string, CostEntry>*> entries;
  entries.reserve(table.entries.size());
  for (const auto& entry : table.entries) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  // nlohmann::json writes a double in its shortest round-trip form.
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [key, cost] = *entries[i];
    absl::StrAppend(&out, i == 0 ? "\n  " : ",\n  ", nlohmann::json(key).dump(),
                    ": {\"latency\": ", nlohmann::json(cost.latency_ms).dump());
    if (cost.energy_mj.has_value()) {
      absl::StrAppend(&out, ", \"energy\": ", nlohmann::json(*cost.energy_mj).dump());
    }
    out += "}";
  }
  out += "\n}\n";
  return out;
}

}  // namespace apq::hwmodels
