#include "hwmodels/conv_shape_estimator.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "oface/conv_key.h"

namespace apq::hwmodels {
namespace {

constexpr char kName[] = "conv-shape(bits ignored)";

// The 7-tuple text of a conv key, or nullopt for another key. A key that parses is canonical,
// so its text before "-W" names the shape exactly.
std::optional<std::string> ShapeOf(const std::string& key) {
  if (!oface::ParseConvLayerKey(key).ok()) return std::nullopt;
  return key.substr(0, key.rfind("-W"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConvShapeEstimator>> ConvShapeEstimator::Create(
    const CostTable& table) {
  if (table.format != TableFormat::kConvJson) {
    return absl::InvalidArgumentError("conv-shape estimator: the table is not a conv table JSON");
  }
  // In key order, so that the first disagreement named is the same on every run.
  std::vector<const std::pair<const std::string, CostEntry>*> entries;
  entries.reserve(table.entries.size());
  for (const auto& entry : table.entries) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });

  absl::flat_hash_map<std::string, CostEntry> by_shape;
  absl::flat_hash_map<std::string, const std::string*> first_key;
  bool some_shape_has_two_pairs = false;
  for (const auto* entry : entries) {
    const std::optional<std::string> shape = ShapeOf(entry->first);
    if (!shape.has_value()) continue;
    const auto [it, inserted] = by_shape.try_emplace(*shape, entry->second);
    if (inserted) {
      first_key[*shape] = &entry->first;
      continue;
    }
    some_shape_has_two_pairs = true;
    const CostEntry& seen = it->second;
    if (seen.latency_ms != entry->second.latency_ms || seen.energy_mj != entry->second.energy_mj) {
      return absl::FailedPreconditionError(
          absl::StrCat("conv-shape estimator: the table's figures depend on the bit widths (",
                       *first_key[*shape], " and ", entry->first, " differ)"));
    }
  }
  if (!some_shape_has_two_pairs) {
    return absl::FailedPreconditionError(
        "conv-shape estimator: no conv shape of the table has two bit pairs, so nothing shows "
        "that its figures do not depend on the bit widths");
  }
  return absl::WrapUnique(new ConvShapeEstimator(std::move(by_shape)));
}

std::optional<CostEntry> ConvShapeEstimator::Estimate(const std::string& key) const {
  const std::optional<std::string> shape = ShapeOf(key);
  if (!shape.has_value()) return std::nullopt;
  const auto found = by_shape_.find(*shape);
  if (found == by_shape_.end()) return std::nullopt;
  return found->second;
}

std::string ConvShapeEstimator::name() const { return kName; }

}  // namespace apq::hwmodels
