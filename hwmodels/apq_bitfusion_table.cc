#include "hwmodels/apq_bitfusion_table.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "hwmodels/bitfusion_key.h"
#include "hwmodels/json_table.h"
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
// No bit for an index outside kBits (BitIndex's -1).
uint32_t PairBit(int w_index, int a_index) {
  const int size = static_cast<int>(kBits.size());
  if (w_index < 0 || w_index >= size || a_index < 0 || a_index >= size) return 0;
  return 1u << (w_index * size + a_index);
}

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

absl::StatusOr<CostTable> Load(std::string_view content, const std::function<bool()>& cancelled) {
  ASSIGN_OR_RETURN(const nlohmann::json doc,
                   table_internal::ParseJsonWithoutDuplicates(content, cancelled));
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
    ASSIGN_OR_RETURN(const CostEntry entry,
                     table_internal::ParseCostEntry(key, item.value(), /*energy_required=*/true));
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
                                                std::string_view source_name,
                                                const std::function<bool()>& cancelled) {
  absl::StatusOr<CostTable> table = Load(content, cancelled);
  if (!table.ok()) return table_internal::WithSource(table.status(), source_name);
  return table;
}

absl::StatusOr<CostTable> LoadApqBitFusionFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string content, table_internal::ReadTableFile(path));
  return LoadApqBitFusionTable(content, path);
}

}  // namespace apq::hwmodels
