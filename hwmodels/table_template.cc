#include "hwmodels/table_template.h"

#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "hwmodels/bitfusion_key.h"
#include "oface/conv_key.h"

namespace apq::hwmodels {
namespace {

// APQ's BitFusion table prices these widths; every conv shape it lists carries all nine pairs.
constexpr int kBitFusionTableBits[] = {4, 6, 8};

bool IsBitFusionTableWidth(int bits) {
  for (const int allowed : kBitFusionTableBits) {
    if (bits == allowed) return true;
  }
  return false;
}

// "(Cin, Cout, H_in, K, stride, pad, groups)" of a conv key.
std::string ShapeOf(const std::string& key) { return key.substr(0, key.rfind("-W")); }

std::string JsonString(const std::string& text) {
  // Keys are ASCII without quotes or backslashes (conv keys, "head", "tail").
  return absl::StrCat("\"", text, "\"");
}

// One JSON object, a key per line in `keys`' order, each with `placeholder` as its value.
std::string JsonTemplate(const std::set<std::string>& keys, const std::string& placeholder) {
  std::string text = "{\n";
  size_t written = 0;
  for (const std::string& key : keys) {
    absl::StrAppend(&text, "  ", JsonString(key), ": ", placeholder,
                    ++written < keys.size() ? ",\n" : "\n");
  }
  return text + "}\n";
}

absl::StatusOr<TableTemplate> OfaYamlTemplate(const oface::SearchSpace& space) {
  TableTemplate result;
  std::map<int, std::set<std::string>> keys_by_resolution;
  for (int term = 0; term < space.num_cost_terms(); ++term) {
    const std::string key = space.CostTermKey(term);
    const size_t slash = key.find('/');
    int resolution = 0;
    if (slash == std::string::npos || !absl::SimpleAtoi(key.substr(0, slash), &resolution) ||
        resolution <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("format: space ", space.name(),
                                                     " is not priced by OFA yaml tables (its key '",
                                                     key, "' is not <resolution>/<layer>)"));
    }
    keys_by_resolution[resolution].insert(key.substr(slash + 1));
  }
  for (const auto& [resolution, keys] : keys_by_resolution) {
    std::string text = absl::StrCat(
        "# ", space.name(), " at resolution ", resolution,
        ": each layer's latency in ms at batch 1; replace every TODO with the mean of your "
        "measurements (count and std are optional).\n");
    for (const std::string& key : keys) {
      absl::StrAppend(&text, key, ":\n  count: 0\n  mean: TODO\n");
    }
    result.files.emplace_back(absl::StrCat(resolution, "_lookup_table.yaml"), std::move(text));
    result.entries += static_cast<int64_t>(keys.size());
    result.shapes += static_cast<int64_t>(keys.size());
  }
  return result;
}

absl::StatusOr<TableTemplate> ConvTemplate(const oface::SearchSpace& space, TableFormat format) {
  TableTemplate result;
  std::set<std::string> keys;
  std::set<std::string> shapes;
  for (int term = 0; term < space.num_cost_terms(); ++term) {
    const std::string key = space.CostTermKey(term);
    // Keys that are their own shape: BitFusion's fixed "head" and "tail", and a change of
    // precision between an int8 and a float layer (a conv table's; BitFusion runs no float).
    const bool fixed_entry = key == "head" || key == "tail";
    if (fixed_entry || oface::ParsePrecisionChangeKey(key).ok()) {
      if (format == (fixed_entry ? TableFormat::kApqBitFusion : TableFormat::kConvJson)) {
        keys.insert(key);
        shapes.insert(key);
      } else {
        result.unrepresentable.push_back(key);
      }
      continue;
    }
    const absl::StatusOr<BitFusionConv> conv = ParseBitFusionKeyFields(key);
    if (!conv.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("format: space ", space.name(),
                                                     " is not priced by conv-keyed tables (",
                                                     conv.status().message(), ")"));
    }
    if (format == TableFormat::kApqBitFusion &&
        !(IsBitFusionTableWidth(conv->w_bits) && IsBitFusionTableWidth(conv->a_bits))) {
      result.unrepresentable.push_back(key);
      continue;
    }
    keys.insert(key);
    shapes.insert(ShapeOf(key));
  }
  if (format == TableFormat::kApqBitFusion) {
    // The format always has the fixed stem and tail entries, whether or not the space prices
    // its stem and tail by them.
    keys.insert("head");
    keys.insert("tail");
    // The format's loader wants all nine W/A pairs of every conv shape it lists.
    for (const std::string& shape : shapes) {
      if (shape == "head" || shape == "tail") continue;
      for (const int w : kBitFusionTableBits) {
        for (const int a : kBitFusionTableBits) keys.insert(absl::StrCat(shape, "-W", w, "A", a));
      }
    }
  }
  const std::string placeholder = format == TableFormat::kApqBitFusion
                                      ? "{\"latency\": null, \"energy\": null}"
                                      : "{\"latency\": null}";
  result.files.emplace_back(format == TableFormat::kApqBitFusion
                                ? absl::StrCat(space.name(), "_bitfusion.json")
                                : absl::StrCat(space.name(), "_conv_table.json"),
                            JsonTemplate(keys, placeholder));
  result.entries = static_cast<int64_t>(keys.size());
  result.shapes = static_cast<int64_t>(shapes.size());
  return result;
}

}  // namespace

absl::StatusOr<TableTemplate> MakeTableTemplate(const oface::SearchSpace& space,
                                                TableFormat format) {
  switch (format) {
    case TableFormat::kOfaYaml:
      return OfaYamlTemplate(space);
    case TableFormat::kApqBitFusion:
    case TableFormat::kConvJson:
      return ConvTemplate(space, format);
  }
  return absl::InvalidArgumentError("format: unknown table format");
}

}  // namespace apq::hwmodels
