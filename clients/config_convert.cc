#include "clients/config_convert.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace apq::client {
namespace {

using nlohmann::json;

constexpr int kStages = 5;
constexpr int kMaxDepth = 4;
const std::set<int>& Kernels() {
  static const auto* const kKernels = new std::set<int>{3, 5, 7};
  return *kKernels;
}
const std::set<int>& ExpandRatios() {
  static const auto* const kRatios = new std::set<int>{3, 4, 6};
  return *kRatios;
}
const std::set<int>& Resolutions() {
  static const auto* const kResolutions = new std::set<int>{160, 176, 192, 208, 224};
  return *kResolutions;
}

absl::Status PathError(const std::string& path, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("net.config ", path, ": ", why));
}

// The block's conv layer config: "conv" (ResidualBlock) or "mobile_inverted_conv" (the older
// MobileInvertedResidualBlock).
absl::StatusOr<const json*> BlockConv(const json& block, const std::string& path) {
  if (!block.is_object()) return PathError(path, "not an object");
  for (const char* key : {"conv", "mobile_inverted_conv"}) {
    const auto found = block.find(key);
    if (found != block.end() && found->is_object()) return &*found;
  }
  return PathError(path, "has no \"conv\" (or \"mobile_inverted_conv\") layer");
}

absl::StatusOr<int> IntField(const json& layer, const char* key, const std::string& path) {
  const auto found = layer.find(key);
  if (found == layer.end()) return PathError(absl::StrCat(path, ".", key), "missing");
  constexpr int64_t kLowest = std::numeric_limits<int>::min();
  constexpr int64_t kHighest = std::numeric_limits<int>::max();
  const auto out_of_range = [&] {
    return PathError(absl::StrCat(path, ".", key), "outside the range of an int");
  };
  if (found->is_number_unsigned()) {
    const uint64_t value = found->get<uint64_t>();
    if (value > static_cast<uint64_t>(kHighest)) return out_of_range();
    return static_cast<int>(value);
  }
  if (found->is_number_integer()) {
    const int64_t value = found->get<int64_t>();
    if (value < kLowest || value > kHighest) return out_of_range();
    return static_cast<int>(value);
  }
  // OFA writes expand ratios as floats (e.g. 4.0) in some versions. Range first: casting a
  // double outside int's range is undefined.
  if (found->is_number_float()) {
    const double value = found->get<double>();
    if (!(value >= static_cast<double>(kLowest) && value <= static_cast<double>(kHighest))) {
      return out_of_range();
    }
    if (value == std::floor(value)) return static_cast<int>(value);
  }
  return PathError(absl::StrCat(path, ".", key), "not an integer");
}

}  // namespace

absl::StatusOr<json> OfaArchFromNetConfig(const json& net_config, int resolution) {
  if (Resolutions().count(resolution) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resolution: ", resolution, " is not one of 160, 176, 192, 208, 224"));
  }
  if (!net_config.is_object()) return PathError("", "the top level is not an object");
  const auto blocks = net_config.find("blocks");
  if (blocks == net_config.end() || !blocks->is_array() || blocks->size() < 2) {
    return PathError("blocks", "missing, or fewer than two blocks");
  }
  std::vector<std::vector<std::pair<int, int>>> stages;  // (kernel, expand) per block.
  int stage_width = -1;
  for (size_t i = 1; i < blocks->size(); ++i) {  // blocks[0]: OFA's fixed first block.
    const std::string path = absl::StrCat("blocks[", i, "]");
    absl::StatusOr<const json*> conv = BlockConv((*blocks)[i], path);
    if (!conv.ok()) return conv.status();
    const std::string conv_path = absl::StrCat(path, ".conv");
    absl::StatusOr<int> width = IntField(**conv, "out_channels", conv_path);
    absl::StatusOr<int> kernel = IntField(**conv, "kernel_size", conv_path);
    absl::StatusOr<int> expand = IntField(**conv, "expand_ratio", conv_path);
    for (const auto* field : {&width, &kernel, &expand}) {
      if (!field->ok()) return field->status();
    }
    if (Kernels().count(*kernel) == 0) {
      return PathError(absl::StrCat(conv_path, ".kernel_size"),
                       absl::StrCat(*kernel, " is not one of 3, 5, 7"));
    }
    if (ExpandRatios().count(*expand) == 0) {
      return PathError(absl::StrCat(conv_path, ".expand_ratio"),
                       absl::StrCat(*expand, " is not one of 3, 4, 6"));
    }
    if (*width != stage_width) {
      stages.emplace_back();
      stage_width = *width;
    }
    stages.back().emplace_back(*kernel, *expand);
  }
  if (static_cast<int>(stages.size()) != kStages) {
    return PathError("blocks", absl::StrCat("the blocks after the first form ", stages.size(),
                                            " stages (by output width), not ", kStages));
  }
  json ks = json::array();
  json e = json::array();
  json d = json::array();
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    const int depth = static_cast<int>(stages[stage].size());
    if (depth < 2 || depth > kMaxDepth) {
      return PathError("blocks", absl::StrCat("stage ", stage + 1, " has ", depth,
                                              " blocks; a stage has 2 to 4"));
    }
    d.push_back(depth);
    for (int slot = 0; slot < kMaxDepth; ++slot) {
      ks.push_back(slot < depth ? stages[stage][slot].first : 3);
      e.push_back(slot < depth ? stages[stage][slot].second : 3);
    }
  }
  return json{{"ks", ks}, {"e", e}, {"d", d}, {"r", resolution}};
}

}  // namespace apq::client
