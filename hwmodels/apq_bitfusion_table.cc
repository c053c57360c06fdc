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

bool Consume(std::string_view* text, std::string_view prefix) {
  if (text->substr(0, prefix.size()) != prefix) return false;
  text->remove_prefix(prefix.size());
  return true;
}

// A decimal without sign or leading zeros, as Python's str(int) writes it.
bool ConsumeInt(std::string_view* text, int* value) {
  size_t digits = 0;
  while (digits < text->size() && (*text)[digits] >= '0' && (*text)[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9 || (digits > 1 && (*text)[0] == '0')) return false;
  *value = 0;
  for (size_t i = 0; i < digits; ++i) *value = *value * 10 + ((*text)[i] - '0');
  text->remove_prefix(digits);
  return true;
}

struct ConvKey {
  // in_channels, out_channels, input_size, kernel_size, stride, padding, groups.
  std::array<int, 7> shape{};
  int w_bits = 0;
  int a_bits = 0;
};

absl::StatusOr<ConvKey> ParseConvKey(std::string_view key) {
  const absl::Status malformed = absl::InvalidArgumentError(absl::StrCat(
      "key \"", Sv(key),
      "\": malformed (expected \"(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}\", "
      "\"head\" or \"tail\")"));
  ConvKey parsed;
  std::string_view rest = key;
  if (!Consume(&rest, "(")) return malformed;
  for (size_t i = 0; i < parsed.shape.size(); ++i) {
    if (i > 0 && !Consume(&rest, ", ")) return malformed;
    if (!ConsumeInt(&rest, &parsed.shape[i])) return malformed;
  }
  if (!Consume(&rest, ")-W") || !ConsumeInt(&rest, &parsed.w_bits) || !Consume(&rest, "A") ||
      !ConsumeInt(&rest, &parsed.a_bits) || !rest.empty()) {
    return malformed;
  }
  static constexpr std::array<const char*, 7> kFields = {"Cin",    "Cout", "H_in",  "K",
                                                         "stride", "pad",  "groups"};
  for (size_t i = 0; i < parsed.shape.size(); ++i) {
    if (parsed.shape[i] == 0 && i != 5) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", Sv(key), "\": ", kFields[i], " is 0"));
    }
  }
  for (const auto& [letter, bits] :
       {std::pair{"W", parsed.w_bits}, std::pair{"A", parsed.a_bits}}) {
    if (BitIndex(bits) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", Sv(key), "\": ", letter, bits, " is not one of {4, 6, 8}"));
    }
  }
  return parsed;
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
  std::vector<std::pair<std::string, ConvKey>> shapes;
  std::vector<uint32_t> pairs_seen;
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    if (key != "head" && key != "tail") {
      ASSIGN_OR_RETURN(const ConvKey conv, ParseConvKey(key));
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
    const auto& shape = conv.shape;
    const bool depthwise_7x7 = shape[3] == kDepthwiseA4Kernel && shape[6] > 1 &&
                               shape[6] == shape[0] && shape[6] == shape[1];
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
