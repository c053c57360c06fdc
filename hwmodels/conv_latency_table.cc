#include "hwmodels/conv_latency_table.h"

#include <algorithm>
#include <cstdio>
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
#include "oface/conv_key.h"

namespace apq::hwmodels {
namespace {

// Bit widths a CPU table may name (BitFusion's own keys stop at 8).
constexpr int kMinBits = 1;
constexpr int kMaxBits = 32;
// An integer pair's bit widths in a declaration (32 is float, declared apart).
constexpr int kMaxIntegerBits = 16;
constexpr char kDeclarationKey[] = "precisions";

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

// Reads "W<w>A<a>" with both in kMinBits..kMaxIntegerBits.
absl::StatusOr<BitPair> ParsePairName(const std::string& text, const std::string& field) {
  BitPair pair;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "W%dA%d%n", &pair.weight_bits, &pair.activation_bits, &consumed) !=
          2 ||
      consumed != static_cast<int>(text.size()) ||
      text != absl::StrCat("W", pair.weight_bits, "A", pair.activation_bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text, "\" is not a pair like \"W8A8\""));
  }
  for (const int bits : {pair.weight_bits, pair.activation_bits}) {
    if (bits < kMinBits || bits > kMaxIntegerBits) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", text, "\": bit widths are ", kMinBits, "..", kMaxIntegerBits,
                       " (a layer in float is declared by \"float\": true)"));
    }
  }
  return pair;
}

// The "precisions" object (see the header).
absl::StatusOr<PrecisionSupport> ParseDeclaration(const nlohmann::json& value) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kDeclarationKey, ": expected an object, got ", value.type_name()));
  }
  PrecisionSupport support;
  support.declared = true;
  for (const auto& item : value.items()) {
    const std::string field = absl::StrCat(kDeclarationKey, ".", item.key());
    if (item.key() == "pairs") {
      if (!item.value().is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": expected an array of pairs"));
      }
      for (size_t i = 0; i < item.value().size(); ++i) {
        const nlohmann::json& text = item.value()[i];
        const std::string element = absl::StrCat(field, "[", i, "]");
        if (!text.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(element, ": expected a string"));
        }
        ASSIGN_OR_RETURN(const BitPair pair, ParsePairName(text.get<std::string>(), element));
        if (std::find(support.pairs.begin(), support.pairs.end(), pair) != support.pairs.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat(element, ": ", PairName(pair), " is listed twice"));
        }
        support.pairs.push_back(pair);
      }
    } else if (item.key() == "float") {
      if (!item.value().is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": expected true or false"));
      }
      support.float_layers = item.value().get<bool>();
    } else if (item.key() == "int8_engine") {
      if (!item.value().is_string() || (item.value() != "qnnpack" && item.value() != "onednn")) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": expected \"qnnpack\" or \"onednn\" (LibTorch's quantized CPU engines)"));
      }
      support.int8_engine = item.value().get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(kDeclarationKey, ": unknown field \"",
                                                     item.key(),
                                                     "\" (expected pairs, float, int8_engine)"));
    }
  }
  std::sort(support.pairs.begin(), support.pairs.end());
  if (support.pairs.empty() && !support.float_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        kDeclarationKey, ": declares nothing the device runs (no pairs and float not true)"));
  }
  const BitPair int8{8, 8};
  if (!support.int8_engine.empty() &&
      !std::binary_search(support.pairs.begin(), support.pairs.end(), int8)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kDeclarationKey, ".int8_engine: names an int8 engine but pairs lacks W8A8"));
  }
  return support;
}

// A key shaped like a change of precision, "(C, H)-..." with two fields: read by
// CheckPrecisionChange, whose errors name that syntax rather than the conv key's.
bool IsPrecisionChangeKey(const std::string& key) {
  return !key.empty() && key[0] == '(' && std::count(key.begin(), key.end(), ',') == 1;
}

// A change of precision (oface/conv_key.h) of a table whose device may keep a layer in float:
// it declares nothing, or declares float layers.
absl::Status CheckPrecisionChange(const std::string& key, const PrecisionSupport& support) {
  RETURN_IF_ERROR(oface::ParsePrecisionChangeKey(key).status());
  if (support.declared && !support.float_layers) {
    return KeyError(key, absl::StrCat("prices a change between int8 and float layers but ",
                                      kDeclarationKey, ".float is not true"));
  }
  return absl::OkStatus();
}

// A key of a declaring table prices a pair it declares.
absl::Status CheckDeclared(const std::string& key, const PrecisionSupport& support) {
  ASSIGN_OR_RETURN(const BitFusionConv conv, ParseBitFusionKeyFields(key));
  const BitPair pair{conv.w_bits, conv.a_bits};
  if (pair == BitPair{kFloatBits, kFloatBits}) {
    if (support.float_layers) return absl::OkStatus();
    return KeyError(
        key, absl::StrCat("prices a float layer but ", kDeclarationKey, ".float is not true"));
  }
  if (std::binary_search(support.pairs.begin(), support.pairs.end(), pair)) {
    return absl::OkStatus();
  }
  return KeyError(key, absl::StrCat("prices ", PairName(pair), ", which ", kDeclarationKey,
                                    ".pairs does not declare"));
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
  if (const auto declaration = doc.find(kDeclarationKey); declaration != doc.end()) {
    ASSIGN_OR_RETURN(table.precisions, ParseDeclaration(*declaration));
    if (doc.size() == 1) {
      return absl::InvalidArgumentError("no entries (an empty table prices nothing)");
    }
  }
  table.entries.reserve(doc.size());
  // nlohmann::json keeps an object's keys sorted: "first" is in key order.
  const std::string* first_key = nullptr;
  bool first_has_energy = false;
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    if (key == kDeclarationKey) continue;
    if (IsPrecisionChangeKey(key)) {
      RETURN_IF_ERROR(CheckPrecisionChange(key, table.precisions));
    } else {
      RETURN_IF_ERROR(CheckConvKey(key));
      if (table.precisions.declared) RETURN_IF_ERROR(CheckDeclared(key, table.precisions));
    }
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
  const PrecisionSupport& support = table.precisions;
  if (support.declared) {
    std::vector<std::string> pairs;
    pairs.reserve(support.pairs.size());
    for (const BitPair& pair : support.pairs) pairs.push_back(PairName(pair));
    nlohmann::json declaration = {{"pairs", pairs}, {"float", support.float_layers}};
    if (!support.int8_engine.empty()) declaration["int8_engine"] = support.int8_engine;
    absl::StrAppend(&out, "\n  \"", kDeclarationKey, "\": ", declaration.dump(), ",");
  }
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
