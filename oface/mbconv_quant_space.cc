#include "oface/mbconv_quant_space.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "oface/conv_key.h"
#include "oface/json_fields.h"

namespace apq::oface {
namespace {

// The four bitwidth genes of a layer, in APQ's Converter.num2qname order.
enum BitField { kPwW = 0, kPwA = 1, kDwW = 2, kDwA = 3, kNumBitFields = 4 };
constexpr std::array<const char*, kNumBitFields> kBitFieldNames = {
    "pw_w_bits_setting", "pw_a_bits_setting", "dw_w_bits_setting", "dw_a_bits_setting"};

// How far e * Cin may be from a grid width: e is the double nearest mid / Cin, so the product
// is within a few ulps of the integer.
constexpr double kWidthTolerance = 1e-6;

// Output size of a k x k conv (k odd) with padding k / 2.
int ConvOutSize(int size, int stride) { return (size - 1) / stride + 1; }

std::string ConvKey(int in_channels, int out_channels, int input_size, int kernel, int stride,
                    int groups, int w_bits, int a_bits) {
  // Python's str() of the 7-tuple (in, out, input_size, kernel, stride, padding, groups).
  return absl::StrCat("(", in_channels, ", ", out_channels, ", ", input_size, ", ", kernel, ", ",
                      stride, ", ", kernel / 2, ", ", groups, ")-W", w_bits, "A", a_bits);
}

// One layer slot's fixed geometry.
struct Layer {
  int stage = 0;
  int slot = 0;  // Within the stage; active iff slot < d[stage].
  int in_channels = 0;
  int out_channels = 0;
  int stride = 1;
  int in_size = 0;   // Input height of the expand conv and the depthwise conv.
  int out_size = 0;  // Output height of the depthwise conv, input of the projection.
  int min_mid = 0;
  int num_mids = 0;
  int mid_feature_offset = 0;
  size_t pw_term_offset = 0;  // Into pw1_terms_ / pw2_terms_: [mid][w][a].
  size_t dw_term_offset = 0;  // Into dw_terms_: [kernel][mid][w][a].
  // Stride 1 and as many output channels as input ones: the block adds its input to its output.
  bool residual = false;
  // Spaces with a float choice: changes of precision, indexed [to_int8] (0: to float, 1: to
  // int8), of the block's input (Cin, H_in) and output (Cout, H_out), and [mid][to_int8] of the
  // expand conv's output (mid, H_in) and the depthwise conv's output (mid, H_out).
  std::array<int32_t, 2> input_change = {-1, -1};
  std::array<int32_t, 2> output_change = {-1, -1};
  std::vector<std::array<int32_t, 2>> expanded_change;
  std::vector<std::array<int32_t, 2>> depthwise_change;
};

bool IsFloat(int bits) { return bits == kFloatBits; }

// Size, MACs and BitOps accumulated over layers.
struct CostSum {
  int64_t weight_bits = 0;
  int64_t macs = 0;
  int64_t bitops = 0;

  void Add(int64_t params, int64_t macs_of_layer, int w_bits, int a_bits) {
    weight_bits += params * w_bits;
    macs += macs_of_layer;
    bitops += macs_of_layer * w_bits * a_bits;
  }
  CostSum& operator+=(const CostSum& other) {
    weight_bits += other.weight_bits;
    macs += other.macs;
    bitops += other.bitops;
    return *this;
  }
  StaticCost ToStaticCost() const {
    StaticCost cost;
    // Exact: the bit count is far below 2^53 and dividing by 8 only shifts the exponent.
    cost.size_bytes = static_cast<double>(weight_bits) / 8.0;
    cost.macs = macs;
    cost.bitops = bitops;
    return cost;
  }
};

class MbConvQuantSpace final : public SearchSpace {
 public:
  explicit MbConvQuantSpace(MbConvSpec spec);

  const std::string& name() const override { return spec_.name; }
  const std::vector<GeneSpec>& genes() const override { return genes_; }
  const std::vector<MutationGroup>& mutation_groups() const override { return groups_; }

  bool SatisfiesRules(const Genotype& genotype) const override;
  absl::Status CheckRules(const Genotype& genotype) const override;

  Genotype Canonical(const Genotype& genotype) const override;

  int feature_size() const override { return feature_size_; }
  int arch_feature_size() const override { return arch_feature_size_; }
  void ActiveFeatures(const Genotype& genotype, std::vector<int32_t>* indices) const override;

  int num_cost_terms() const override { return static_cast<int>(term_keys_.size()); }
  std::string CostTermKey(int term) const override { return term_keys_[term]; }
  void CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const override;

  std::optional<StaticCost> StaticCosts(const Genotype& genotype) const override;
  std::optional<CostDecomposition> DecomposeCosts(const Genotype& genotype,
                                                  CostSplit split) const override;

  std::string ToJson(const Genotype& genotype) const override;
  std::string ConfigFormat() const override;
  std::vector<std::string> RuleDescriptions() const override;
  absl::StatusOr<Genotype> FromJson(std::string_view json) const override;

 private:
  int num_layers() const { return static_cast<int>(layers_.size()); }
  int KsGene(int layer) const { return layer; }
  int MidGene(int layer) const { return num_layers() + layer; }
  int BitGene(int field, int layer) const { return (2 + field) * num_layers() + layer; }
  int DepthGene(int stage) const { return (2 + kNumBitFields) * num_layers() + stage; }

  bool IsActive(const Genotype& genotype, int layer) const {
    return layers_[layer].slot < genotype[DepthGene(layers_[layer].stage)];
  }
  // Preconditions: the values are choices of the space.
  int KernelIndex(int ks) const { return kernel_index_[ks]; }
  int BitIndex(int bits) const { return bit_index_[bits]; }
  int MidIndex(const Layer& layer, int mid) const {
    return (mid - layer.min_mid) / spec_.width_step;
  }
  bool Banned(int ks, int dw_a_bits) const {
    return banned_[KernelIndex(ks) * spec_.bit_choices.size() + BitIndex(dw_a_bits)];
  }

  // Where a layer's 1x1 convs are in pw1_terms_ and pw2_terms_, and the catalogue index of its
  // depthwise conv. Preconditions: the values are choices of the space and (ks, dw_a_bits) is
  // not banned.
  size_t PointwiseIndex(const Layer& layer, int mid, int w_bits, int a_bits) const {
    const size_t nb = spec_.bit_choices.size();
    return layer.pw_term_offset + (MidIndex(layer, mid) * nb + BitIndex(w_bits)) * nb +
           BitIndex(a_bits);
  }
  int32_t DepthwiseTerm(const Layer& layer, int ks, int mid, int w_bits, int a_bits) const {
    const size_t nb = spec_.bit_choices.size();
    return dw_terms_[layer.dw_term_offset +
                     ((KernelIndex(ks) * layer.num_mids + MidIndex(layer, mid)) * nb +
                      BitIndex(w_bits)) *
                         nb +
                     BitIndex(a_bits)];
  }
  // Size, MACs and BitOps of a layer's two 1x1 convs (they share the pw bits) and of its
  // depthwise conv.
  static CostSum PointwiseCost(const Layer& layer, int64_t mid, int w_bits, int a_bits);
  static CostSum DepthwiseCost(const Layer& layer, int64_t mid, int64_t ks, int w_bits, int a_bits);

  // Spaces with a float choice: appends the changes of precision inside layer i (between its
  // 1x1 convs at pw_w bits and its depthwise conv at dw_w bits), and those where a block whose
  // output is held as `from_float` says feeds layer i's 1x1 conv at pw_w bits: the block's
  // output and, when `producer_residual`, the residual input the sum reads.
  void AppendInnerChanges(const Layer& layer, int mid, int pw_w, int dw_w,
                          absl::InlinedVector<int32_t, 3>* terms) const;
  void AppendBoundaryChanges(const std::array<int32_t, 2>& change, bool from_float, bool to_float,
                             bool producer_residual, absl::InlinedVector<int32_t, 3>* terms) const;
  // The coupling of two slots' bits genes whose values' float-ness decides `terms_of(first,
  // second)`: one case per pair of bit choices that differ in it.
  CostCoupling Coupling(
      int first_slot, int first_gene, int second_slot, int second_gene,
      const std::function<void(int, int, absl::InlinedVector<int32_t, 3>*)>& terms_of) const;
  // The catalogue index of `key`, adding it when new.
  int32_t Term(std::string key, absl::flat_hash_map<std::string, int32_t>* index);
  void BuildCatalogue();

  absl::StatusOr<int> ReadMid(int layer, const nlohmann::json& value) const;
  absl::StatusOr<int> ReadDepth(int stage, const nlohmann::json& value) const;
  absl::Status ReadGeneList(const char* field, const nlohmann::json& value, int first_gene,
                            Genotype* genotype) const;
  absl::StatusOr<Genotype> ParseArch(const nlohmann::json& doc) const;

  const MbConvSpec spec_;
  std::vector<Layer> layers_;
  std::vector<GeneSpec> genes_;
  std::vector<MutationGroup> groups_;
  std::vector<int> kernel_index_;  // By kernel size; -1 for non-choices.
  std::vector<int> bit_index_;     // By bitwidth; -1 for non-choices.
  std::vector<bool> banned_;       // [kernel index][dw_a bits index].
  int arch_feature_size_ = 0;
  int feature_size_ = 0;

  std::vector<std::string> term_keys_;
  // The stem's then the tail's terms ("head", "tail" or one conv key per fixed layer).
  std::vector<int32_t> fixed_terms_;
  std::vector<int32_t> pw1_terms_;
  std::vector<int32_t> pw2_terms_;
  std::vector<int32_t> dw_terms_;  // -1 for banned (kernel, dw_a) pairs.

  CostSum fixed_cost_;  // Stem and tail.
  // A bit choice keeps a layer in float: a float layer next to an int8 one (the stem and tail
  // are int8) pays the change of precision between them (terms "(C, H)-quantize" /
  // "(C, H)-dequantize", oface/conv_key.h), as the int8 export computes it.
  bool float_choice_ = false;
  bool first_block_residual_ = false;  // The stem's first block adds its input to its output.

  // ToJson's text of each layer's expand ratio mid / in_channels, by mid index: written once
  // here by the JSON library, so that ToJson, on the search's hot path, only joins pieces.
  std::vector<std::vector<std::string>> expand_text_;
};

MbConvQuantSpace::MbConvQuantSpace(MbConvSpec spec) : spec_(std::move(spec)) {
  const int num_kernels = static_cast<int>(spec_.kernel_sizes.size());
  const int num_bits = static_cast<int>(spec_.bit_choices.size());

  // Geometry: stem, then the stages slot by slot.
  const int stem_conv_size = ConvOutSize(spec_.input_size, spec_.first_conv_stride);
  int size = ConvOutSize(stem_conv_size, spec_.first_block_stride);
  int ks_features = 0;
  for (size_t s = 0; s < spec_.stages.size(); ++s) {
    const MbConvStageSpec& stage = spec_.stages[s];
    for (int j = 0; j < stage.max_depth; ++j) {
      Layer layer;
      layer.stage = static_cast<int>(s);
      layer.slot = j;
      layer.in_channels = j == 0 ? stage.in_channels : stage.out_channels;
      layer.out_channels = stage.out_channels;
      layer.stride = j == 0 ? stage.stride : 1;
      layer.in_size = size;
      layer.out_size = ConvOutSize(size, layer.stride);
      // Python's range(min_expand * c, max_expand * c + step, step).
      layer.residual = layer.stride == 1 && layer.in_channels == layer.out_channels;
      layer.min_mid = spec_.min_expand * layer.in_channels;
      const int end = spec_.max_expand * layer.in_channels + spec_.width_step;
      layer.num_mids = (end - layer.min_mid + spec_.width_step - 1) / spec_.width_step;
      size = layer.out_size;
      ks_features += num_kernels;
      layers_.push_back(layer);
    }
  }
  arch_feature_size_ = ks_features;
  for (Layer& layer : layers_) {
    layer.mid_feature_offset = arch_feature_size_;
    arch_feature_size_ += layer.num_mids;
    std::vector<std::string>& texts = expand_text_.emplace_back();
    for (int m = 0; m < layer.num_mids; ++m) {
      // Python's k / in_ch: both sides round the exact quotient to the nearest double.
      const int mid = layer.min_mid + m * spec_.width_step;
      texts.push_back(nlohmann::ordered_json(static_cast<double>(mid) / layer.in_channels).dump());
    }
  }
  feature_size_ = arch_feature_size_ + kNumBitFields * num_layers() * num_bits;

  // Genes, in the order of the header.
  const int num_stages = static_cast<int>(spec_.stages.size());
  genes_.reserve((2 + kNumBitFields) * num_layers() + num_stages);
  for (int i = 0; i < num_layers(); ++i) {
    genes_.push_back({absl::StrCat("ks[", i, "]"), spec_.kernel_sizes});
  }
  for (int i = 0; i < num_layers(); ++i) {
    std::vector<int> mids;
    mids.reserve(layers_[i].num_mids);
    for (int m = 0; m < layers_[i].num_mids; ++m) {
      mids.push_back(layers_[i].min_mid + m * spec_.width_step);
    }
    genes_.push_back({absl::StrCat("mid[", i, "]"), std::move(mids)});
  }
  for (const char* field : kBitFieldNames) {
    for (int i = 0; i < num_layers(); ++i) {
      genes_.push_back({absl::StrCat(field, "[", i, "]"), spec_.bit_choices});
    }
  }
  for (int s = 0; s < num_stages; ++s) {
    std::vector<int> depths;
    for (int d = spec_.stages[s].min_depth; d <= spec_.stages[s].max_depth; ++d) {
      depths.push_back(d);
    }
    genes_.push_back({absl::StrCat("d[", s, "]"), std::move(depths)});
  }

  for (int i = 0; i < num_layers(); ++i) {
    groups_.push_back({MutationKind::kBlock,
                       {KsGene(i), MidGene(i), BitGene(kPwW, i), BitGene(kPwA, i), BitGene(kDwW, i),
                        BitGene(kDwA, i)}});
  }
  for (int s = 0; s < num_stages; ++s) {
    if (spec_.stages[s].min_depth < spec_.stages[s].max_depth) {
      groups_.push_back({MutationKind::kDepth, {DepthGene(s)}});
    }
  }

  kernel_index_.assign(spec_.kernel_sizes.back() + 1, -1);
  for (int k = 0; k < num_kernels; ++k) kernel_index_[spec_.kernel_sizes[k]] = k;
  bit_index_.assign(spec_.bit_choices.back() + 1, -1);
  for (int b = 0; b < num_bits; ++b) bit_index_[spec_.bit_choices[b]] = b;
  banned_.assign(static_cast<size_t>(num_kernels) * num_bits, false);
  for (const auto& [ks, bits] : spec_.banned_kernel_dw_a_bits) {
    banned_[KernelIndex(ks) * num_bits + BitIndex(bits)] = true;
  }

  float_choice_ = std::find(spec_.bit_choices.begin(), spec_.bit_choices.end(), kFloatBits) !=
                  spec_.bit_choices.end();
  first_block_residual_ =
      spec_.first_block_stride == 1 && spec_.first_conv_channels == spec_.first_block_channels;
  BuildCatalogue();

  // Stem: k x k conv, then the first block's depthwise conv and projection; tail: feature
  // mix and classifier. All at fixed_bits.
  const int fixed = spec_.fixed_bits;
  const int64_t k0 = spec_.first_conv_kernel;
  const int64_t k1 = spec_.first_block_kernel;
  const int64_t c0 = spec_.first_conv_channels;
  const int64_t c1 = spec_.first_block_channels;
  const int64_t s0 = stem_conv_size;
  const int64_t s1 = layers_.front().in_size;
  const int64_t s_last = layers_.back().out_size;
  const int64_t c_last = spec_.stages.back().out_channels;
  const int64_t mix = spec_.feature_mix_channels;
  const int64_t first_conv_params = spec_.input_channels * c0 * k0 * k0;
  fixed_cost_.Add(first_conv_params, s0 * s0 * first_conv_params, fixed, fixed);
  fixed_cost_.Add(c0 * k1 * k1, s1 * s1 * c0 * k1 * k1, fixed, fixed);
  fixed_cost_.Add(c0 * c1, s1 * s1 * c0 * c1, fixed, fixed);
  fixed_cost_.Add(c_last * mix, s_last * s_last * c_last * mix, fixed, fixed);
  fixed_cost_.Add(mix * spec_.num_classes, mix * spec_.num_classes, fixed, fixed);
}

int32_t MbConvQuantSpace::Term(std::string key, absl::flat_hash_map<std::string, int32_t>* index) {
  const auto [it, inserted] = index->try_emplace(key, static_cast<int32_t>(term_keys_.size()));
  if (inserted) term_keys_.push_back(std::move(key));
  return it->second;
}

// Every (shape, bits) pair a valid genotype can price, as utils/latency_predictor.py
// build_table enumerates the shapes: per slot, kernel and mid width, the expand conv
// (Cin -> mid at H_in), the depthwise conv (mid, k, stride at H_in) and the projection
// (mid -> Cout at H_out). Slots after the first of a stage share their keys.
void MbConvQuantSpace::BuildCatalogue() {
  const std::vector<int>& bits = spec_.bit_choices;
  const size_t nb = bits.size();
  absl::flat_hash_map<std::string, int32_t> index;
  if (spec_.fixed_layer_costs == FixedLayerCosts::kHeadTailEntries) {
    fixed_terms_ = {Term("head", &index), Term("tail", &index)};
  } else {
    const int fixed = spec_.fixed_bits;
    const int c0 = spec_.first_conv_channels;
    const int stem_size = ConvOutSize(spec_.input_size, spec_.first_conv_stride);
    const int mix = spec_.feature_mix_channels;
    fixed_terms_ = {
        Term(ConvKey(spec_.input_channels, c0, spec_.input_size, spec_.first_conv_kernel,
                     spec_.first_conv_stride, 1, fixed, fixed),
             &index),
        Term(ConvKey(c0, c0, stem_size, spec_.first_block_kernel, spec_.first_block_stride, c0,
                     fixed, fixed),
             &index),
        Term(
            ConvKey(c0, spec_.first_block_channels, layers_.front().in_size, 1, 1, 1, fixed, fixed),
            &index),
        Term(ConvKey(spec_.stages.back().out_channels, mix, layers_.back().out_size, 1, 1, 1, fixed,
                     fixed),
             &index),
        Term(ConvKey(mix, spec_.num_classes, 1, 1, 1, 1, fixed, fixed), &index),
    };
  }
  for (Layer& layer : layers_) {
    layer.pw_term_offset = pw1_terms_.size();
    layer.dw_term_offset = dw_terms_.size();
    pw1_terms_.resize(pw1_terms_.size() + layer.num_mids * nb * nb);
    pw2_terms_.resize(pw1_terms_.size());
    dw_terms_.resize(dw_terms_.size() + spec_.kernel_sizes.size() * layer.num_mids * nb * nb, -1);
    for (int m = 0; m < layer.num_mids; ++m) {
      const int mid = layer.min_mid + m * spec_.width_step;
      for (size_t w = 0; w < nb; ++w) {
        for (size_t a = 0; a < nb; ++a) {
          const size_t slot = layer.pw_term_offset + (m * nb + w) * nb + a;
          pw1_terms_[slot] = Term(
              ConvKey(layer.in_channels, mid, layer.in_size, 1, 1, 1, bits[w], bits[a]), &index);
          pw2_terms_[slot] = Term(
              ConvKey(mid, layer.out_channels, layer.out_size, 1, 1, 1, bits[w], bits[a]), &index);
        }
      }
      for (size_t k = 0; k < spec_.kernel_sizes.size(); ++k) {
        const int ks = spec_.kernel_sizes[k];
        for (size_t w = 0; w < nb; ++w) {
          for (size_t a = 0; a < nb; ++a) {
            if (Banned(ks, bits[a])) continue;
            dw_terms_[layer.dw_term_offset + ((k * layer.num_mids + m) * nb + w) * nb + a] = Term(
                ConvKey(mid, mid, layer.in_size, ks, layer.stride, mid, bits[w], bits[a]), &index);
          }
        }
      }
    }
  }
  if (!float_choice_) return;
  // After the conv keys, so that a space's conv terms keep their indices whether or not it has
  // a float choice.
  const auto changes = [&](int channels, int size) {
    return std::array<int32_t, 2>{Term(PrecisionChangeKeyText({channels, size, false}), &index),
                                  Term(PrecisionChangeKeyText({channels, size, true}), &index)};
  };
  for (Layer& layer : layers_) {
    layer.input_change = changes(layer.in_channels, layer.in_size);
    layer.output_change = changes(layer.out_channels, layer.out_size);
    for (int m = 0; m < layer.num_mids; ++m) {
      const int mid = layer.min_mid + m * spec_.width_step;
      layer.expanded_change.push_back(changes(mid, layer.in_size));
      layer.depthwise_change.push_back(changes(mid, layer.out_size));
    }
  }
}

void MbConvQuantSpace::AppendInnerChanges(const Layer& layer, int mid, int pw_w, int dw_w,
                                          absl::InlinedVector<int32_t, 3>* terms) const {
  if (IsFloat(pw_w) == IsFloat(dw_w)) return;
  const int m = MidIndex(layer, mid);
  // The expand conv's output, held as the depthwise conv runs; the depthwise conv's output,
  // held as the projection runs.
  terms->push_back(layer.expanded_change[m][IsFloat(dw_w) ? 0 : 1]);
  terms->push_back(layer.depthwise_change[m][IsFloat(pw_w) ? 0 : 1]);
}

void MbConvQuantSpace::AppendBoundaryChanges(const std::array<int32_t, 2>& change, bool from_float,
                                             bool to_float, bool producer_residual,
                                             absl::InlinedVector<int32_t, 3>* terms) const {
  if (from_float == to_float) return;
  const int32_t term = change[to_float ? 0 : 1];
  terms->push_back(term);
  if (producer_residual) terms->push_back(term);
}

bool MbConvQuantSpace::SatisfiesRules(const Genotype& genotype) const {
  for (int i = 0; i < num_layers(); ++i) {
    if (Banned(genotype[KsGene(i)], genotype[BitGene(kDwA, i)])) return false;
  }
  return true;
}

absl::Status MbConvQuantSpace::CheckRules(const Genotype& genotype) const {
  for (int i = 0; i < num_layers(); ++i) {
    const int ks = genotype[KsGene(i)];
    const int dw_a = genotype[BitGene(kDwA, i)];
    if (Banned(ks, dw_a)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", i, ": ks[", i, "] = ", ks, " with ", kBitFieldNames[kDwA], "[", i, "] = ", dw_a,
          " is not allowed (no ", ks, "x", ks, " depthwise conv with ", dw_a, "-bit activations)"));
    }
  }
  return absl::OkStatus();
}

Genotype MbConvQuantSpace::Canonical(const Genotype& genotype) const {
  assert(genotype.size() == genes_.size());
  Genotype canonical = genotype;
  for (int i = 0; i < num_layers(); ++i) {
    if (IsActive(genotype, i)) continue;
    // groups_[i] is slot i's kBlock group: its six genes.
    for (const int gene : groups_[i].genes) canonical[gene] = genes_[gene].choices.front();
  }
  return canonical;
}

// The index blocks follow utils/converter.py (Converter.build and spec2feature with
// quantize=True); for apq_mbv2:
//   [0, 63)     ks:  slot i at 3i + kernel index (k_info, built first)
//   [63, 520)   mid: slot i at its own range start_i + (mid - 4 Cin) / 8, ranges of 5, 7 x 4,
//               11 x 4, 21 x 4, 25 x 4, 49 x 4 entries (e_info, built second; half_dim = 520)
//   [520, 772)  bits: field f (pw_w, pw_a, dw_w, dw_a = q_info[0..3]) of slot i at
//               520 + 63 f + 3i + bits index
// spec2feature sets a slot's ones only when i % 4 < d[i // 4], so an inactive slot has none at
// all. (During search APQ calls spec2feature with quantize=False, which puts every active
// slot's bits at 8; that is this encoding of the genotype with all bits set to 8.)
void MbConvQuantSpace::ActiveFeatures(const Genotype& genotype,
                                      std::vector<int32_t>* indices) const {
  assert(genotype.size() == genes_.size());
  const int num_kernels = static_cast<int>(spec_.kernel_sizes.size());
  const int num_bits = static_cast<int>(spec_.bit_choices.size());
  for (int i = 0; i < num_layers(); ++i) {
    if (IsActive(genotype, i)) indices->push_back(num_kernels * i + KernelIndex(genotype[i]));
  }
  for (int i = 0; i < num_layers(); ++i) {
    if (IsActive(genotype, i)) {
      const Layer& layer = layers_[i];
      indices->push_back(layer.mid_feature_offset + MidIndex(layer, genotype[MidGene(i)]));
    }
  }
  for (int field = 0; field < kNumBitFields; ++field) {
    const int offset = arch_feature_size_ + field * num_layers() * num_bits;
    for (int i = 0; i < num_layers(); ++i) {
      if (IsActive(genotype, i)) {
        indices->push_back(offset + num_bits * i + BitIndex(genotype[BitGene(field, i)]));
      }
    }
  }
}

void MbConvQuantSpace::CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const {
  assert(genotype.size() == genes_.size());
  // predict_lat starts its float64 accumulator at head + tail.
  terms->insert(terms->end(), fixed_terms_.begin(), fixed_terms_.end());
  // The stream between blocks is held as its reader runs; the stem's first block and the
  // feature mix run in int8.
  bool stream_float = false;
  bool producer_residual = first_block_residual_;
  const Layer* last = nullptr;
  absl::InlinedVector<int32_t, 3> inner;
  for (int i = 0; i < num_layers(); ++i) {
    if (!IsActive(genotype, i)) continue;
    const Layer& layer = layers_[i];
    const int mid = genotype[MidGene(i)];
    const int pw_w = genotype[BitGene(kPwW, i)];
    const size_t pw = PointwiseIndex(layer, mid, pw_w, genotype[BitGene(kPwA, i)]);
    if (float_choice_) {
      inner.clear();
      AppendBoundaryChanges(layer.input_change, stream_float, IsFloat(pw_w), producer_residual,
                            &inner);
      terms->insert(terms->end(), inner.begin(), inner.end());
    }
    terms->push_back(pw1_terms_[pw]);
    terms->push_back(DepthwiseTerm(layer, genotype[KsGene(i)], mid, genotype[BitGene(kDwW, i)],
                                   genotype[BitGene(kDwA, i)]));
    terms->push_back(pw2_terms_[pw]);
    if (float_choice_) {
      inner.clear();
      AppendInnerChanges(layer, mid, pw_w, genotype[BitGene(kDwW, i)], &inner);
      terms->insert(terms->end(), inner.begin(), inner.end());
    }
    stream_float = IsFloat(pw_w);
    producer_residual = layer.residual;
    last = &layer;
  }
  if (float_choice_ && last != nullptr) {
    inner.clear();
    AppendBoundaryChanges(last->output_change, stream_float, false, producer_residual, &inner);
    terms->insert(terms->end(), inner.begin(), inner.end());
  }
}

CostSum MbConvQuantSpace::PointwiseCost(const Layer& layer, int64_t mid, int w_bits, int a_bits) {
  const int64_t in_area = static_cast<int64_t>(layer.in_size) * layer.in_size;
  const int64_t out_area = static_cast<int64_t>(layer.out_size) * layer.out_size;
  CostSum sum;
  sum.Add(layer.in_channels * mid, in_area * layer.in_channels * mid, w_bits, a_bits);
  sum.Add(mid * layer.out_channels, out_area * mid * layer.out_channels, w_bits, a_bits);
  return sum;
}

CostSum MbConvQuantSpace::DepthwiseCost(const Layer& layer, int64_t mid, int64_t ks, int w_bits,
                                        int a_bits) {
  const int64_t out_area = static_cast<int64_t>(layer.out_size) * layer.out_size;
  CostSum sum;
  sum.Add(mid * ks * ks, out_area * mid * ks * ks, w_bits, a_bits);
  return sum;
}

std::optional<StaticCost> MbConvQuantSpace::StaticCosts(const Genotype& genotype) const {
  assert(genotype.size() == genes_.size());
  CostSum sum = fixed_cost_;
  for (int i = 0; i < num_layers(); ++i) {
    if (!IsActive(genotype, i)) continue;
    const Layer& layer = layers_[i];
    const int mid = genotype[MidGene(i)];
    sum += PointwiseCost(layer, mid, genotype[BitGene(kPwW, i)], genotype[BitGene(kPwA, i)]);
    sum += DepthwiseCost(layer, mid, genotype[KsGene(i)], genotype[BitGene(kDwW, i)],
                         genotype[BitGene(kDwA, i)]);
  }
  return sum.ToStaticCost();
}

CostCoupling MbConvQuantSpace::Coupling(
    int first_slot, int first_gene, int second_slot, int second_gene,
    const std::function<void(int, int, absl::InlinedVector<int32_t, 3>*)>& terms_of) const {
  CostCoupling coupling{first_slot, first_gene, second_slot, second_gene, {}};
  absl::InlinedVector<int32_t, 3> terms;
  for (const int first : spec_.bit_choices) {
    for (const int second : spec_.bit_choices) {
      if (IsFloat(first) == IsFloat(second)) continue;
      terms.clear();
      terms_of(first, second, &terms);
      coupling.cases.push_back({first, second, {terms.begin(), terms.end()}});
    }
  }
  return coupling;
}

// Every conv term of an active layer depends on that layer's genes only: its input channels,
// input size and stride are fixed by its slot (the previous layer's mid width stays inside that
// layer), and the rule binds one layer's ks and dw_a. So a layer's conv terms split exactly by
// layer, and, given the layer's ks and mid, by the pw and dw bit pairs. In a space with a
// float choice, a change of precision depends on the float-ness of the two layers it joins:
// inside a layer (its pw and dw bits: a coupling of its two kBitwidths slots, part of its
// kBlocks choice) and between consecutive blocks (their pw bits: a coupling); the first block
// after the stem and the last before the feature mix meet int8 layers, fixed, so those changes
// are part of their own choices.
std::optional<CostDecomposition> MbConvQuantSpace::DecomposeCosts(const Genotype& genotype,
                                                                  CostSplit split) const {
  assert(genotype.size() == genes_.size());
  const std::vector<int>& bits = spec_.bit_choices;
  CostDecomposition decomposition;
  decomposition.fixed_terms = fixed_terms_;
  decomposition.fixed_static_cost = fixed_cost_.ToStaticCost();
  std::vector<int> active;
  for (int i = 0; i < num_layers(); ++i) {
    if (IsActive(genotype, i)) active.push_back(i);
  }
  // The changes where the stem's first block feeds layer i at pw_w bits (i first), and where
  // layer i at pw_w bits feeds the feature mix (i last).
  const auto append_end_changes = [&](size_t a, int pw_w, absl::InlinedVector<int32_t, 3>* terms) {
    if (!float_choice_) return;
    const Layer& layer = layers_[active[a]];
    if (a == 0) {
      AppendBoundaryChanges(layer.input_change, false, IsFloat(pw_w), first_block_residual_, terms);
    }
    if (a + 1 == active.size()) {
      AppendBoundaryChanges(layer.output_change, IsFloat(pw_w), false, layer.residual, terms);
    }
  };
  int previous_pw_slot = -1;  // The slot holding the previous active layer's pw_w gene.
  for (size_t a = 0; a < active.size(); ++a) {
    const int i = active[a];
    const Layer& layer = layers_[i];
    // The change where the previous active layer's output meets this layer's 1x1 conv.
    const auto boundary = [&](int from_bits, int to_bits, absl::InlinedVector<int32_t, 3>* terms) {
      AppendBoundaryChanges(layer.input_change, IsFloat(from_bits), IsFloat(to_bits),
                            layers_[active[a - 1]].residual, terms);
    };
    const int pw_slot = static_cast<int>(decomposition.slots.size());
    if (float_choice_ && a > 0) {
      decomposition.couplings.push_back(Coupling(previous_pw_slot, BitGene(kPwW, active[a - 1]),
                                                 pw_slot, BitGene(kPwW, i), boundary));
    }
    previous_pw_slot = pw_slot;
    if (split == CostSplit::kBitwidths) {
      const int ks = genotype[KsGene(i)];
      const int mid = genotype[MidGene(i)];
      CostSlot pw{absl::StrCat("layer ", i, " pw"), {BitGene(kPwW, i), BitGene(kPwA, i)}, {}, 0};
      CostSlot dw{absl::StrCat("layer ", i, " dw"), {BitGene(kDwW, i), BitGene(kDwA, i)}, {}, 0};
      for (const int w : bits) {
        for (const int a_bits : bits) {
          const size_t pw_index = PointwiseIndex(layer, mid, w, a_bits);
          CostSlotChoice& choice = pw.choices.emplace_back();
          choice.values = {w, a_bits};
          choice.terms = {pw1_terms_[pw_index], pw2_terms_[pw_index]};
          append_end_changes(a, w, &choice.terms);
          choice.static_cost = PointwiseCost(layer, mid, w, a_bits).ToStaticCost();
          if (Banned(ks, a_bits)) continue;
          dw.choices.push_back({{w, a_bits},
                                {DepthwiseTerm(layer, ks, mid, w, a_bits)},
                                DepthwiseCost(layer, mid, ks, w, a_bits).ToStaticCost()});
        }
      }
      SelectCostSlotChoice(genotype, &pw);
      SelectCostSlotChoice(genotype, &dw);
      decomposition.slots.push_back(std::move(pw));
      decomposition.slots.push_back(std::move(dw));
      if (float_choice_) {
        decomposition.couplings.push_back(
            Coupling(pw_slot, BitGene(kPwW, i), pw_slot + 1, BitGene(kDwW, i),
                     [&](int pw_w, int dw_w, absl::InlinedVector<int32_t, 3>* terms) {
                       AppendInnerChanges(layer, mid, pw_w, dw_w, terms);
                     }));
      }
      continue;
    }
    CostSlot slot{absl::StrCat("layer ", i),
                  {KsGene(i), MidGene(i), BitGene(kPwW, i), BitGene(kPwA, i), BitGene(kDwW, i),
                   BitGene(kDwA, i)},
                  {},
                  0};
    slot.choices.reserve(spec_.kernel_sizes.size() * layer.num_mids * bits.size() * bits.size() *
                         bits.size() * bits.size());
    for (const int ks : spec_.kernel_sizes) {
      for (const int mid : genes_[MidGene(i)].choices) {
        for (const int pw_w : bits) {
          for (const int pw_a : bits) {
            const CostSum pw_cost = PointwiseCost(layer, mid, pw_w, pw_a);
            const size_t pw_index = PointwiseIndex(layer, mid, pw_w, pw_a);
            const int32_t expand = pw1_terms_[pw_index];
            const int32_t project = pw2_terms_[pw_index];
            for (const int dw_w : bits) {
              for (const int dw_a : bits) {
                if (Banned(ks, dw_a)) continue;
                CostSum cost = pw_cost;
                cost += DepthwiseCost(layer, mid, ks, dw_w, dw_a);
                CostSlotChoice& choice = slot.choices.emplace_back();
                choice.values = {ks, mid, pw_w, pw_a, dw_w, dw_a};
                choice.terms = {expand, DepthwiseTerm(layer, ks, mid, dw_w, dw_a), project};
                if (float_choice_) AppendInnerChanges(layer, mid, pw_w, dw_w, &choice.terms);
                append_end_changes(a, pw_w, &choice.terms);
                choice.static_cost = cost.ToStaticCost();
              }
            }
          }
        }
      }
    }
    SelectCostSlotChoice(genotype, &slot);
    decomposition.slots.push_back(std::move(slot));
  }
  return decomposition;
}

std::string MbConvQuantSpace::ToJson(const Genotype& genotype) const {
  // The text nlohmann::ordered_json writes for [arch, policy] (compact, keys in this order),
  // joined directly: the arch test checks it against the library's own output.
  assert(genotype.size() == genes_.size());
  std::string json;
  json.reserve(64 + 16 * genotype.size());
  const auto append_list = [&genotype, &json](int first, int count) {
    json += '[';
    for (int i = 0; i < count; ++i) {
      if (i > 0) json += ',';
      absl::StrAppend(&json, genotype[first + i]);
    }
    json += ']';
  };
  json += R"([{"wid":null,"ks":)";
  append_list(KsGene(0), num_layers());
  json += R"(,"e":[)";
  for (int i = 0; i < num_layers(); ++i) {
    if (i > 0) json += ',';
    json += expand_text_[i][MidIndex(layers_[i], genotype[MidGene(i)])];
  }
  json += R"(],"d":)";
  append_list(DepthGene(0), static_cast<int>(spec_.stages.size()));
  json += "},{";
  for (int field = 0; field < kNumBitFields; ++field) {
    if (field > 0) json += ',';
    absl::StrAppend(&json, "\"", kBitFieldNames[field], "\":");
    append_list(BitGene(field, 0), num_layers());
  }
  json += "}]";
  return json;
}

std::string MbConvQuantSpace::ConfigFormat() const {
  const int layers = num_layers();
  return absl::StrCat(
      "APQ's [arch, quantization policy] pair: [{\"wid\": null, \"ks\": [", layers,
      " depthwise kernel sizes], \"e\": [", layers,
      " expansion ratios: each layer's middle width over its input channels], \"d\": [",
      spec_.stages.size(),
      " stage depths]}, {\"pw_w_bits_setting\", \"pw_a_bits_setting\", "
      "\"dw_w_bits_setting\", \"dw_a_bits_setting\": [",
      layers,
      " bitwidths] each: weights and input activations of each layer's pointwise and "
      "depthwise convolutions}]; a layer beyond its stage's depth is ignored (any valid value)");
}

std::vector<std::string> MbConvQuantSpace::RuleDescriptions() const {
  std::vector<std::string> rules;
  for (const auto& [ks, bits] : spec_.banned_kernel_dw_a_bits) {
    rules.push_back(absl::StrCat("no layer (run or not) has ks = ", ks,
                                 " with dw_a_bits_setting = ", bits, " (no ", ks, "x", ks,
                                 " depthwise conv with ", bits, "-bit activations)"));
  }
  return rules;
}

absl::StatusOr<int> MbConvQuantSpace::ReadMid(int layer_index, const nlohmann::json& value) const {
  const std::string field = absl::StrCat("e[", layer_index, "]");
  if (!value.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected a number, got ", value.type_name()));
  }
  const Layer& layer = layers_[layer_index];
  const double channels = value.get<double>() * layer.in_channels;
  const int max_mid = layer.min_mid + (layer.num_mids - 1) * spec_.width_step;
  if (channels > layer.min_mid - 1.0 && channels < max_mid + 1.0) {
    const int steps = static_cast<int>(std::lround((channels - layer.min_mid) / spec_.width_step));
    const int mid = layer.min_mid + steps * spec_.width_step;
    if (std::fabs(channels - mid) <= kWidthTolerance && mid >= layer.min_mid && mid <= max_mid) {
      return mid;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", value.dump(), " x ", layer.in_channels, " input channels = ", channels,
      " mid channels, not on the ", spec_.width_step, "-channel grid {", layer.min_mid, ", ",
      layer.min_mid + spec_.width_step, ", ..., ", max_mid, "}"));
}

absl::StatusOr<int> MbConvQuantSpace::ReadDepth(int stage, const nlohmann::json& value) const {
  const int gene = DepthGene(stage);
  const std::string field = absl::StrCat("d[", stage, "]");
  ASSIGN_OR_RETURN(const int depth, ReadIntegerGene(field, value, genes_[gene].choices));
  const MbConvStageSpec& spec = spec_.stages[stage];
  if (spec.min_depth < spec.max_depth) return depth;  // Validate checks the choices.
  const int json_max = std::max(spec.max_depth, spec_.arch_json_max_depth);
  if (depth >= spec.max_depth && depth <= json_max) return spec.max_depth;
  const std::string layers =
      absl::StrCat(spec.max_depth, spec.max_depth == 1 ? " layer" : " layers");
  if (json_max == spec.max_depth) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", depth, " is not one of {",
                                                   spec.max_depth, "} (stage ", stage,
                                                   " always has ", layers, ")"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", depth, " is not one of {", spec.max_depth, ", ..., ", json_max, "} (stage ",
      stage, " always has ", layers, "; the reference's arch JSON may hold up to ", json_max,
      " there, read as ", spec.max_depth, ")"));
}

absl::Status MbConvQuantSpace::ReadGeneList(const char* field, const nlohmann::json& value,
                                            int first_gene, Genotype* genotype) const {
  RETURN_IF_ERROR(CheckJsonList(field, value, num_layers(), "integers"));
  for (int i = 0; i < num_layers(); ++i) {
    ASSIGN_OR_RETURN((*genotype)[first_gene + i],
                     ReadIntegerGene(absl::StrCat(field, "[", i, "]"), value[i],
                                     genes_[first_gene + i].choices));
  }
  return absl::OkStatus();
}

absl::StatusOr<Genotype> MbConvQuantSpace::ParseArch(const nlohmann::json& doc) const {
  if (!doc.is_array() || doc.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arch: expected a two-element list [{wid, ks, e, d}, {pw_w_bits_setting, "
        "pw_a_bits_setting, dw_w_bits_setting, dw_a_bits_setting}], got ",
        doc.is_array() ? absl::StrCat("a list of ", doc.size(), " entries") : doc.type_name()));
  }
  const nlohmann::json& arch = doc[0];
  const nlohmann::json& policy = doc[1];
  if (!arch.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arch[0]: expected an object with keys wid, ks, e, d, got ", arch.type_name()));
  }
  if (!policy.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("arch[1]: expected an object with keys ",
                                                   absl::StrJoin(kBitFieldNames, ", "), ", got ",
                                                   policy.type_name()));
  }
  // Unknown keys first: a misspelt key explains the errors that would follow from it.
  RETURN_IF_ERROR(CheckKnownKeys(arch, {"wid", "ks", "e", "d"}, "arch[0]: ", "wid, ks, e, d"));
  RETURN_IF_ERROR(CheckKnownKeys(
      policy, {kBitFieldNames[0], kBitFieldNames[1], kBitFieldNames[2], kBitFieldNames[3]},
      "arch[1]: ", absl::StrJoin(kBitFieldNames, ", ")));
  for (const char* key : {"ks", "e", "d"}) {
    if (!arch.contains(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": missing"));
  }
  for (const char* key : kBitFieldNames) {
    if (!policy.contains(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": missing"));
  }
  if (const auto wid = arch.find("wid"); wid != arch.end() && !wid->is_null()) {
    // APQ writes "wid": None (no width multiplier in this space).
    return absl::InvalidArgumentError(absl::StrCat("wid: expected null, got ", wid->dump()));
  }

  Genotype genotype(genes_.size(), 0);
  RETURN_IF_ERROR(ReadGeneList("ks", arch.at("ks"), KsGene(0), &genotype));
  const nlohmann::json& expand = arch.at("e");
  RETURN_IF_ERROR(CheckJsonList("e", expand, num_layers(), "numbers"));
  for (int i = 0; i < num_layers(); ++i) {
    ASSIGN_OR_RETURN(genotype[MidGene(i)], ReadMid(i, expand[i]));
  }
  const nlohmann::json& depth = arch.at("d");
  const int num_stages = static_cast<int>(spec_.stages.size());
  RETURN_IF_ERROR(CheckJsonList("d", depth, num_stages, "integers"));
  for (int s = 0; s < num_stages; ++s) {
    ASSIGN_OR_RETURN(genotype[DepthGene(s)], ReadDepth(s, depth[s]));
  }
  for (int field = 0; field < kNumBitFields; ++field) {
    RETURN_IF_ERROR(ReadGeneList(kBitFieldNames[field], policy.at(kBitFieldNames[field]),
                                 BitGene(field, 0), &genotype));
  }
  RETURN_IF_ERROR(Validate(genotype));
  return genotype;
}

absl::StatusOr<Genotype> MbConvQuantSpace::FromJson(std::string_view json) const {
  ASSIGN_OR_RETURN(const nlohmann::json doc, ParseArchJson(json));
  return ParseArch(doc);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SearchSpace>> NewMbConvQuantSpace(const MbConvSpec& spec) {
  RETURN_IF_ERROR(ValidateMbConvSpec(spec));
  return std::make_unique<MbConvQuantSpace>(spec);
}

std::unique_ptr<SearchSpace> NewApqMbv2Space() {
  absl::StatusOr<std::unique_ptr<SearchSpace>> space = NewMbConvQuantSpace(ApqMbv2Spec());
  // ApqMbv2Spec is a constant; the space test builds it.
  assert(space.ok());
  return *std::move(space);
}

}  // namespace apq::oface
