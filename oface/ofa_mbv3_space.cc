#include "oface/ofa_mbv3_space.h"

#include <array>
#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "oface/json_fields.h"

namespace apq::oface {
namespace {

constexpr int kNumStages = 5;
constexpr int kBlocksPerStage = 4;
constexpr int kNumBlocks = kNumStages * kBlocksPerStage;
constexpr int kKsOffset = 0;
constexpr int kEOffset = kKsOffset + kNumBlocks;
constexpr int kDOffset = kEOffset + kNumBlocks;
constexpr int kROffset = kDOffset + kNumStages;
constexpr int kNumGenes = kROffset + 1;

constexpr std::array<int, 3> kKernelSizes = {3, 5, 7};
constexpr std::array<int, 3> kExpandRatios = {3, 4, 6};
constexpr std::array<int, 3> kDepths = {2, 3, 4};
constexpr std::array<int, 5> kResolutions = {160, 176, 192, 208, 224};
constexpr int kNumResolutions = static_cast<int>(kResolutions.size());
constexpr int kBlockVariants = 9;  // kernel size x expand ratio.

// OFA MobileNetV3 w1.2 stage geometry (ofa/imagenet_classification/elastic_nn/networks).
constexpr std::array<int, kNumStages> kStageWidth = {32, 48, 96, 136, 192};
constexpr std::array<int, kNumStages> kStageStride = {2, 2, 2, 1, 2};
constexpr std::array<int, kNumStages> kStageSe = {0, 1, 0, 1, 1};
constexpr std::array<int, kNumStages> kStageHs = {0, 0, 1, 1, 1};
constexpr int kStemChannels = 24;

constexpr int kFeatureSize = 128;
constexpr int kExpandFeatureOffset = 3 * kNumBlocks;
constexpr int kResolutionFeatureOffset = 6 * kNumBlocks;

// Preconditions of the helpers below: the values are valid choices.
int KernelIndex(int ks) { return (ks - 3) >> 1; }
int ExpandIndex(int e) { return e == 6 ? 2 : e - 3; }
int ResolutionIndex(int r) { return (r - 160) >> 4; }
bool IsActive(const Genotype& genotype, int block) {
  return block % kBlocksPerStage < genotype[kDOffset + block / kBlocksPerStage];
}

class OfaMbv3Space final : public SearchSpace {
 public:
  OfaMbv3Space();

  const std::string& name() const override { return name_; }
  const std::vector<GeneSpec>& genes() const override { return genes_; }
  const std::vector<MutationGroup>& mutation_groups() const override { return groups_; }

  Genotype Canonical(const Genotype& genotype) const override;

  int feature_size() const override { return kFeatureSize; }
  void ActiveFeatures(const Genotype& genotype, std::vector<int32_t>* indices) const override;

  int num_cost_terms() const override { return static_cast<int>(term_keys_.size()); }
  std::string CostTermKey(int term) const override { return term_keys_[term]; }
  void CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const override;
  std::optional<CostDecomposition> DecomposeCosts(const Genotype& genotype,
                                                  CostSplit split) const override;

  std::string ToJson(const Genotype& genotype) const override;
  std::string ConfigFormat() const override {
    return "once-for-all's arch dict: {\"ks\": [20 kernel sizes], \"e\": [20 expansion ratios], "
           "\"d\": [5 stage depths], \"r\": input resolution (an integer or a one-element "
           "list)}, \"wid\" optional; a block beyond its stage's depth is ignored (any valid "
           "value)";
  }
  absl::StatusOr<Genotype> FromJson(std::string_view json) const override;

 private:
  // The catalogue index of `key`, adding it when new.
  int32_t Term(std::string key, absl::flat_hash_map<std::string, int32_t>* index);
  static size_t BlockTermSlot(int resolution_index, int block, int ks, int e) {
    return (static_cast<size_t>(resolution_index) * kNumBlocks + block) * kBlockVariants +
           static_cast<size_t>(KernelIndex(ks)) * 3 + ExpandIndex(e);
  }
  // Reads one integer of gene `gene` from `value`; `field` names it in errors.
  absl::Status ReadGene(const std::string& field, const nlohmann::json& value, int gene,
                        Genotype* genotype) const {
    ASSIGN_OR_RETURN((*genotype)[gene], ReadIntegerGene(field, value, genes_[gene].choices));
    return absl::OkStatus();
  }
  absl::Status ReadList(const std::string& field, const nlohmann::json& value, int first_gene,
                        int count, Genotype* genotype) const;
  absl::StatusOr<Genotype> ParseArch(const nlohmann::json& arch) const;

  const std::string name_ = "ofa_mbv3";
  std::vector<GeneSpec> genes_;
  std::vector<MutationGroup> groups_;
  std::vector<std::string> term_keys_;
  // Per resolution: first conv, first block; Conv_1, AvgPool2D, Conv_2, Logits.
  std::array<std::array<int32_t, 2>, kNumResolutions> head_terms_{};
  std::array<std::array<int32_t, 4>, kNumResolutions> tail_terms_{};
  // Indexed by BlockTermSlot.
  std::array<int32_t, size_t{kNumResolutions} * kNumBlocks * kBlockVariants> block_terms_{};
};

OfaMbv3Space::OfaMbv3Space() {
  genes_.reserve(kNumGenes);
  for (int i = 0; i < kNumBlocks; ++i) {
    genes_.push_back({absl::StrCat("ks[", i, "]"), {kKernelSizes.begin(), kKernelSizes.end()}});
  }
  for (int i = 0; i < kNumBlocks; ++i) {
    genes_.push_back({absl::StrCat("e[", i, "]"), {kExpandRatios.begin(), kExpandRatios.end()}});
  }
  for (int s = 0; s < kNumStages; ++s) {
    genes_.push_back({absl::StrCat("d[", s, "]"), {kDepths.begin(), kDepths.end()}});
  }
  genes_.push_back({"r", {kResolutions.begin(), kResolutions.end()}});

  groups_.push_back({MutationKind::kResolution, {kROffset}});
  for (int i = 0; i < kNumBlocks; ++i) {
    groups_.push_back({MutationKind::kBlock, {kKsOffset + i, kEOffset + i}});
  }
  for (int s = 0; s < kNumStages; ++s) {
    groups_.push_back({MutationKind::kDepth, {kDOffset + s}});
  }

  // The keys follow OFA's LatencyTable (tutorial/latency_table.py): the blocks after the
  // first of a stage all see the stage's output size and width, and the first two blocks
  // of a stage are always active, so each key depends on (r, block, ks, e) only.
  absl::flat_hash_map<std::string, int32_t> index;
  for (int ri = 0; ri < kNumResolutions; ++ri) {
    const int r = kResolutions[ri];
    const std::string prefix = absl::StrCat(r, "/");
    int f = (r + 1) / 2;
    head_terms_[ri][0] = Term(
        absl::StrCat(prefix, "Conv-input:", r, "x", r, "x3-output:", f, "x", f, "x24"), &index);
    head_terms_[ri][1] =
        Term(absl::StrCat(prefix, "expanded_conv-input:", f, "x", f, "x24-output:", f, "x", f,
                          "x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"),
             &index);
    int stage_in_channels = kStemChannels;
    for (int s = 0; s < kNumStages; ++s) {
      const int width = kStageWidth[s];
      const int stage_in_f = f;
      const int stage_out_f = (stage_in_f - 1) / kStageStride[s] + 1;
      for (int j = 0; j < kBlocksPerStage; ++j) {
        const int block = s * kBlocksPerStage + j;
        const bool first = j == 0;
        const int in_channels = first ? stage_in_channels : width;
        const int in_f = first ? stage_in_f : stage_out_f;
        const int stride = first ? kStageStride[s] : 1;
        for (const int ks : kKernelSizes) {
          for (const int e : kExpandRatios) {
            block_terms_[BlockTermSlot(ri, block, ks, e)] = Term(
                absl::StrCat(prefix, "expanded_conv-input:", in_f, "x", in_f, "x", in_channels,
                             "-output:", stage_out_f, "x", stage_out_f, "x", width,
                             "-expand:", in_channels * e, "-kernel:", ks, "-stride:", stride,
                             "-idskip:", first ? 0 : 1, "-se:", kStageSe[s], "-hs:", kStageHs[s]),
                &index);
          }
        }
      }
      f = stage_out_f;
      stage_in_channels = width;
    }
    tail_terms_[ri][0] =
        Term(absl::StrCat(prefix, "Conv_1-input:", f, "x", f, "x192-output:", f, "x", f, "x1152"),
             &index);
    tail_terms_[ri][1] =
        Term(absl::StrCat(prefix, "AvgPool2D-input:", f, "x", f, "x1152-output:1x1x1152"), &index);
    tail_terms_[ri][2] =
        Term(absl::StrCat(prefix, "Conv_2-input:1x1x1152-output:1x1x1536"), &index);
    tail_terms_[ri][3] = Term(absl::StrCat(prefix, "Logits-input:1x1x1536-output:1000"), &index);
  }
}

int32_t OfaMbv3Space::Term(std::string key, absl::flat_hash_map<std::string, int32_t>* index) {
  const auto [it, inserted] = index->try_emplace(key, static_cast<int32_t>(term_keys_.size()));
  if (inserted) term_keys_.push_back(std::move(key));
  return it->second;
}

Genotype OfaMbv3Space::Canonical(const Genotype& genotype) const {
  assert(genotype.size() == kNumGenes);
  Genotype canonical = genotype;
  for (int i = 0; i < kNumBlocks; ++i) {
    if (!IsActive(genotype, i)) {
      canonical[kKsOffset + i] = genes_[kKsOffset + i].choices.front();
      canonical[kEOffset + i] = genes_[kEOffset + i].choices.front();
    }
  }
  return canonical;
}

void OfaMbv3Space::ActiveFeatures(const Genotype& genotype, std::vector<int32_t>* indices) const {
  assert(genotype.size() == kNumGenes);
  for (int i = 0; i < kNumBlocks; ++i) {
    if (IsActive(genotype, i)) indices->push_back(3 * i + KernelIndex(genotype[kKsOffset + i]));
  }
  for (int i = 0; i < kNumBlocks; ++i) {
    if (IsActive(genotype, i)) {
      indices->push_back(kExpandFeatureOffset + 3 * i + ExpandIndex(genotype[kEOffset + i]));
    }
  }
  // OFA: slot 120 + (r - 112) // 16, so slots 120..122 are never used.
  indices->push_back(kResolutionFeatureOffset + (genotype[kROffset] - 112) / 16);
}

void OfaMbv3Space::CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const {
  assert(genotype.size() == kNumGenes);
  const int ri = ResolutionIndex(genotype[kROffset]);
  terms->push_back(head_terms_[ri][0]);
  terms->push_back(head_terms_[ri][1]);
  for (int i = 0; i < kNumBlocks; ++i) {
    if (IsActive(genotype, i)) {
      terms->push_back(
          block_terms_[BlockTermSlot(ri, i, genotype[kKsOffset + i], genotype[kEOffset + i])]);
    }
  }
  for (const int32_t term : tail_terms_[ri]) terms->push_back(term);
}

// A block's key depends on (r, block, ks, e) only (see the constructor), so given r and the
// depths every active block is one independent term.
std::optional<CostDecomposition> OfaMbv3Space::DecomposeCosts(const Genotype& genotype,
                                                              CostSplit split) const {
  assert(genotype.size() == kNumGenes);
  if (split != CostSplit::kBlocks) return std::nullopt;
  const int ri = ResolutionIndex(genotype[kROffset]);
  CostDecomposition decomposition;
  decomposition.fixed_terms.assign(head_terms_[ri].begin(), head_terms_[ri].end());
  decomposition.fixed_terms.insert(decomposition.fixed_terms.end(), tail_terms_[ri].begin(),
                                   tail_terms_[ri].end());
  for (int i = 0; i < kNumBlocks; ++i) {
    if (!IsActive(genotype, i)) continue;
    CostSlot slot{absl::StrCat("block ", i), {kKsOffset + i, kEOffset + i}, {}, 0};
    for (const int ks : kKernelSizes) {
      for (const int e : kExpandRatios) {
        slot.choices.push_back({{ks, e}, {block_terms_[BlockTermSlot(ri, i, ks, e)]}, {}});
      }
    }
    SelectCostSlotChoice(genotype, &slot);
    decomposition.slots.push_back(std::move(slot));
  }
  return decomposition;
}

std::string OfaMbv3Space::ToJson(const Genotype& genotype) const {
  assert(genotype.size() == kNumGenes);
  const auto list = [&genotype](int first, int count) {
    return absl::StrJoin(genotype.begin() + first, genotype.begin() + first + count, ",");
  };
  return absl::StrCat("{\"ks\":[", list(kKsOffset, kNumBlocks), "],\"e\":[",
                      list(kEOffset, kNumBlocks), "],\"d\":[", list(kDOffset, kNumStages),
                      "],\"r\":", genotype[kROffset], "}");
}

absl::Status OfaMbv3Space::ReadList(const std::string& field, const nlohmann::json& value,
                                    int first_gene, int count, Genotype* genotype) const {
  RETURN_IF_ERROR(CheckJsonList(field, value, count, "integers"));
  for (int i = 0; i < count; ++i) {
    RETURN_IF_ERROR(ReadGene(absl::StrCat(field, "[", i, "]"), value[i], first_gene + i, genotype));
  }
  return absl::OkStatus();
}

absl::StatusOr<Genotype> OfaMbv3Space::ParseArch(const nlohmann::json& arch) const {
  if (!arch.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("arch: expected an object with keys ks, e, d, r, got ", arch.type_name()));
  }
  // Unknown keys first: a misspelt key explains the errors that would follow from it.
  RETURN_IF_ERROR(
      CheckKnownKeys(arch, {"ks", "e", "d", "r", "wid"}, "", "ks, e, d, r and optionally wid"));
  Genotype genotype(kNumGenes, 0);
  bool has_ks = false, has_e = false, has_d = false, has_r = false;
  for (const auto& item : arch.items()) {
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    if (key == "ks") {
      RETURN_IF_ERROR(ReadList("ks", value, kKsOffset, kNumBlocks, &genotype));
      has_ks = true;
    } else if (key == "e") {
      RETURN_IF_ERROR(ReadList("e", value, kEOffset, kNumBlocks, &genotype));
      has_e = true;
    } else if (key == "d") {
      RETURN_IF_ERROR(ReadList("d", value, kDOffset, kNumStages, &genotype));
      has_d = true;
    } else if (key == "r") {
      // OFA stores the resolution as a one-element list.
      if (value.is_array()) {
        if (value.size() != 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("r: expected an integer or a one-element list, got a list of ",
                           value.size(), " entries"));
        }
        RETURN_IF_ERROR(ReadGene("r", value[0], kROffset, &genotype));
      } else {
        RETURN_IF_ERROR(ReadGene("r", value, kROffset, &genotype));
      }
      has_r = true;
    } else if (key == "wid") {
      // OFA's arch dicts carry "wid": None (no elastic width in this space).
      if (!value.is_null()) {
        return absl::InvalidArgumentError(absl::StrCat("wid: expected null, got ", value.dump()));
      }
    }
  }
  for (const auto& [present, field] : {std::pair{has_ks, "ks"}, std::pair{has_e, "e"},
                                       std::pair{has_d, "d"}, std::pair{has_r, "r"}}) {
    if (!present) return absl::InvalidArgumentError(absl::StrCat(field, ": missing"));
  }
  RETURN_IF_ERROR(Validate(genotype));
  return genotype;
}

absl::StatusOr<Genotype> OfaMbv3Space::FromJson(std::string_view json) const {
  ASSIGN_OR_RETURN(const nlohmann::json arch, ParseArchJson(json));
  return ParseArch(arch);
}

}  // namespace

std::unique_ptr<SearchSpace> NewOfaMbv3Space() { return std::make_unique<OfaMbv3Space>(); }

}  // namespace apq::oface
