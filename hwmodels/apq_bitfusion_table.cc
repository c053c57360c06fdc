#include "hwmodels/apq_bitfusion_table.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "hwmodels/bitfusion_key.h"
#include "nlohmann/json.hpp"

namespace apq::hwmodels {
namespace {

constexpr std::array<int, 3> kBits = {4, 6, 8};
constexpr int kNumPairs = 9;
constexpr uint32_t kAllPairs = (1u << kNumPairs) - 1;
constexpr int kDepthwiseA4Kernel = 7;

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
absl::string_view Sv(std::string_view text) { return {text.data(), text.size()}; }

int BitIndex(int bits) {
  for (int i = 0; i < static_cast<int>(kBits.size()); ++i) {
    if (kBits[i] == bits) return i;
  }
  return -1;
}
uint32_t PairBit(int w_index, int a_index) { return 1u << (w_index * kBits.size() + a_index); }

// A conv key of the table: ParseBitFusionKeyFields, and both bit widths in kBits.
absl::StatusOr<BitFusionConv> ParseConvKey(std::string_view key) {
  ASSIGN_OR_RETURN(const BitFusionConv conv, ParseBitFusionKeyFields(key));
  for (const auto& [letter, bits] : {std::pair{"W", conv.w_bits}, std::pair{"A", conv.a_bits}}) {
    if (BitIndex(bits) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", Sv(key), "\": ", letter, bits, " is not one of {4, 6, 8}"));
    }
  }
  return conv;
}

absl::StatusOr<CostEntry> ParseEntry(const std::string& key, const nlohmann::json& value) {
  const std::string at = absl::StrCat("key \"", key, "\": ");
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        at, "expected an object {\"latency\": ms, \"energy\": mJ}, got ", value.type_name()));
  }
  for (const auto& item : value.items()) {
    if (item.key() != "latency" && item.key() != "energy") {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "unknown field \"", item.key(), "\" (expected latency, energy)"));
    }
  }
  std::array<double, 2> numbers{};
  const std::array<const char*, 2> fields = {"latency", "energy"};
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto it = value.find(fields[i]);
    if (it == value.end())
      return absl::InvalidArgumentError(absl::StrCat(at, fields[i], ": missing"));
    if (!it->is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": expected a number, got ", it->type_name()));
    }
    numbers[i] = it->get<double>();
    if (!std::isfinite(numbers[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": ", it->dump(), " is not finite"));
    }
    if (numbers[i] < 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, fields[i], ": ", it->dump(), " is negative"));
    }
  }
  CostEntry entry;
  entry.latency_ms = numbers[0];
  entry.energy_mj = numbers[1];
  return entry;
}

// Parses `content`, reporting the first repeated key of any object (nlohmann::json would keep
// the last one silently).
absl::StatusOr<nlohmann::json> ParseWithoutDuplicates(std::string_view content) {
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::string entry_key;  // The latest key of the top-level object.
  std::optional<std::string> duplicate;
  const nlohmann::json::parser_callback_t callback =
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) {
          open_objects.emplace_back();
        } else if (event == Event::object_end) {
          open_objects.pop_back();
        } else if (event == Event::key) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(key).second && !duplicate.has_value()) {
            duplicate =
                depth == 1 ? absl::StrCat("duplicate key \"", key, "\"")
                           : absl::StrCat("key \"", entry_key, "\": duplicate field \"", key, "\"");
          }
          if (depth == 1) entry_key = key;
        }
        return true;
      };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(content.begin(), content.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (duplicate.has_value()) return absl::InvalidArgumentError(*duplicate);
  return doc;
}

absl::StatusOr<CostTable> Load(std::string_view content) {
  ASSIGN_OR_RETURN(const nlohmann::json doc, ParseWithoutDuplicates(content));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON object of layer keys, got ", doc.type_name()));
  }
  CostTable table;
  table.format = TableFormat::kApqBitFusion;
  table.entries.reserve(doc.size());
  // Shape text (the key before "-W") -> the W/A pairs seen, in a deterministic order.
  absl::flat_hash_map<std::string, size_t> shape_index;
  std::vector<std::pair<std::string, BitFusionConv>> shapes;
  std::vector<uint32_t> pairs_seen;
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    if (key != "head" && key != "tail") {
      ASSIGN_OR_RETURN(const BitFusionConv conv, ParseConvKey(key));
      std::string shape = key.substr(0, key.rfind("-W"));
      const auto [it, inserted] = shape_index.try_emplace(shape, shapes.size());
      if (inserted) {
        shapes.emplace_back(std::move(shape), conv);
        pairs_seen.push_back(0);
      }
      pairs_seen[it->second] |= PairBit(BitIndex(conv.w_bits), BitIndex(conv.a_bits));
    }
    ASSIGN_OR_RETURN(const CostEntry entry, ParseEntry(key, item.value()));
    table.entries.emplace(key, entry);
  }
  for (const char* fixed : {"head", "tail"}) {
    if (!table.entries.contains(fixed)) {
      return absl::InvalidArgumentError(absl::StrCat("missing key \"", fixed, "\""));
    }
  }
  for (size_t s = 0; s < shapes.size(); ++s) {
    const auto& [text, conv] = shapes[s];
    const bool depthwise_7x7 = conv.kernel_size == kDepthwiseA4Kernel && conv.groups > 1 &&
                               conv.groups == conv.in_channels && conv.groups == conv.out_channels;
    uint32_t optional = 0;
    if (depthwise_7x7) {
      for (size_t w = 0; w < kBits.size(); ++w) optional |= PairBit(w, BitIndex(4));
    }
    const uint32_t missing = kAllPairs & ~optional & ~pairs_seen[s];
    if (missing == 0) continue;
    std::vector<std::string> names;
    for (size_t w = 0; w < kBits.size(); ++w) {
      for (size_t a = 0; a < kBits.size(); ++a) {
        if (missing & PairBit(w, a)) names.push_back(absl::StrCat("W", kBits[w], "A", kBits[a]));
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "shape ", text, " lacks ", absl::StrJoin(names, ", "),
        " (every conv shape needs W{4,6,8}A{4,6,8}; only depthwise 7x7 shapes may lack A4)"));
  }
  return table;
}

}  // namespace

absl::StatusOr<CostTable> LoadApqBitFusionTable(std::string_view content,
                                                std::string_view source_name) {
  absl::StatusOr<CostTable> table = Load(content);
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat(Sv(source_name), ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<CostTable> LoadApqBitFusionFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  if (in) content << in.rdbuf();
  if (!in || in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  return LoadApqBitFusionTable(content.str(), path);
}

}  // namespace apq::hwmodels
