// A MobileNetV2-style joint search space (architecture + channel pruning + per-layer mixed
// precision) described as data, so a new backbone (ImageNet, Fashion-MNIST, ...) is a new
// spec, not new code. `NewMbConvQuantSpace` (oface/mbconv_quant_space.h) builds the space.
//
// The network: a fixed stem (a k x k conv, then a first MBConv block of expand ratio 1:
// k x k depthwise + 1x1 projection), then the stages of searchable MBConv layers, then a
// fixed tail (1x1 feature-mix conv, global average pooling, linear classifier). Stem and tail
// run at `fixed_bits` and are priced as `fixed_layer_costs` says.
//
// Stage s has max_depth layer slots; its depth d[s] is in [min_depth, max_depth] and slot j
// is active iff j < d[s]. Layer slots are numbered across stages in order. The first slot of
// a stage maps in_channels -> out_channels with the stage's stride; the others map
// out_channels -> out_channels with stride 1.
//
// Per layer: kernel size (one of kernel_sizes), mid (hidden) width, and four bitwidths: the
// weights and activations of the two 1x1 convs (shared) and of the depthwise conv. The mid
// width of a layer with c input channels takes every value of Python's
// range(min_expand * c, max_expand * c + width_step, width_step).
#ifndef APQ_OFACE_MBCONV_SPEC_H_
#define APQ_OFACE_MBCONV_SPEC_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace apq::oface {

// A layer's bit choice that keeps it in float (W32A32): a space whose bit choices include it
// lets each layer stay in float (e.g. fmnist_int8float).
inline constexpr int kFloatBits = 32;

struct MbConvStageSpec {
  int in_channels = 0;   // Input width of the stage's first layer.
  int out_channels = 0;  // Output width of every layer of the stage.
  int stride = 1;        // Stride of the first layer; the others have stride 1.
  int min_depth = 1;     // Depth choices are min_depth..max_depth.
  int max_depth = 1;     // Layer slots of the stage.
};

// How a cost table prices the fixed stem and tail.
enum class FixedLayerCosts {
  // Two opaque entries, "head" and "tail": APQ's BitFusion table prices its ImageNet network's
  // stem and tail so, and such entries describe that network only.
  kHeadTailEntries,
  // One conv key per fixed layer, at fixed_bits: the stem conv, the first block's depthwise
  // and projection convs, the feature-mix conv and the classifier as a 1x1 conv on a 1x1
  // input. Any network's fixed layers, priced like the searched ones (looked up or modelled).
  kConvKeys,
};

struct MbConvSpec {
  std::string name;  // Registry name, e.g. "apq_mbv2".

  int input_size = 0;      // Height (= width) of the input image.
  int input_channels = 0;  // 3 for RGB, 1 for grayscale.

  // Fixed stem.
  int first_conv_channels = 0;
  int first_conv_kernel = 3;
  int first_conv_stride = 1;
  int first_block_channels = 0;  // Output of the first block; stages[0].in_channels.
  int first_block_kernel = 3;
  int first_block_stride = 1;

  std::vector<MbConvStageSpec> stages;

  // Fixed tail.
  int feature_mix_channels = 0;  // 1x1 conv from the last stage's width.
  int num_classes = 0;

  std::vector<int> kernel_sizes;  // Odd, ascending.
  int min_expand = 4;
  int max_expand = 6;
  int width_step = 8;
  std::vector<int> bit_choices;  // Ascending, each in 1..32; 32 is kFloatBits.
  int fixed_bits = 8;            // Bitwidth of the stem and the tail (weights and activations).

  // (kernel size, depthwise activation bits) pairs no layer may take, active or not (the
  // reference's validity test looks at every slot).
  std::vector<std::pair<int, int>> banned_kernel_dw_a_bits;

  // Pricing only: not part of the network (nor of SpecFingerprint, oface/supernet.h).
  FixedLayerCosts fixed_layer_costs = FixedLayerCosts::kHeadTailEntries;

  // The largest d[s] the reference's arch JSON may give a stage of fixed depth
  // (min_depth == max_depth): the reference samples every d[s] from one range even where it
  // has no effect, and such a value reads as the stage's depth. 0: only the depth itself.
  int arch_json_max_depth = 0;
};

// INVALID_ARGUMENT naming the field when `spec` does not describe a buildable space: empty
// name or choice lists, non-positive sizes, channels that do not chain from stage to stage,
// unsorted or repeated choices, even kernel sizes, depths out of order, bans naming values
// outside the choices.
absl::Status ValidateMbConvSpec(const MbConvSpec& spec);

// APQ's joint space ("apq_mbv2", mit-han-lab/apq @ 428190a6): the ProxylessNAS backbone at
// 224 px, 3 -> 32 (3x3, s2) -> first block 16; stages 16/24 s2, 24/40 s2, 40/80 s2, 80/96 s1,
// 96/192 s2 of depth 2..4, then 192/320 s1 of exactly 1 layer; feature mix 1280, 1000
// classes; kernels {3, 5, 7}; mid widths range(4c, 6c + 8, 8); bits {4, 6, 8}, stem and tail at
// 8; kernel 7 with 4-bit depthwise activations banned; arch JSON depths up to 4.
MbConvSpec ApqMbv2Spec();

// The Fashion-MNIST joint space ("fmnist_mbv2") of the LibTorch supernet (oface/supernet.h),
// sized so that training and measuring thousands of subnets fit in a few hours on 2 CPU cores:
// 28x28x1 -> 16 (3x3, s2: 14x14) -> first block 16 (3x3); stages 16/24 s2 (7x7), 24/32 s2
// (4x4), 32/48 s1 (4x4) of depth 2..4; feature mix 128, 10 classes; kernels {3, 5, 7}; mid
// widths range(3c, 6c + 8, 8); bits {4, 6, 8}, stem and tail at 8; no banned pairs; stem
// and tail priced per conv (FixedLayerCosts::kConvKeys: the BitFusion table's "head" and
// "tail" are ImageNet's).
// The stride-2 stem keeps the large depthwise kernels (the cost that dominates on CPU) at
// 7x7 and 4x4 maps.
MbConvSpec FashionMnistSpec();

// The low-bit Fashion-MNIST space ("fmnist_lowbit"): FashionMnistSpec's network (stem, stages,
// kernels, widths, depths; stem and tail at 8 bits) with weight and activation bits
// {2, 3, 4, 6, 8} for every searched pointwise and depthwise conv. With {4, 6, 8} the whole
// fmnist_mbv2 space lies within 1.4 accuracy points; 2 and 3 bits make the precision matter.
// Its supernet has the same tensors as fmnist_mbv2's but for the per-bit-choice clipping
// ranges, so it can start from fmnist_mbv2's weights (Supernet::LoadWeightsOfSameNetwork).
MbConvSpec FashionMnistLowBitSpec();

// The int8-or-float Fashion-MNIST space ("fmnist_int8float"): FashionMnistSpec's network with
// each searched pointwise and depthwise conv at 8 bits or in float (bit choice 32: its
// quantizers pass values through), what a CPU with LibTorch's int8 kernels deploys layer by
// layer (devices run W8A8 and W32A32; the device's view drops the mixed W8A32 / W32A8 pairs).
// The stem and the tail stay at 8 bits. Its supernet starts from fmnist_mbv2's
// quantization-aware weights (Supernet::LoadWeightsOfSameNetwork).
MbConvSpec FashionMnistInt8FloatSpec();

// The specs of the Fashion-MNIST supernet (oface/supernet.h), in registration order:
// fmnist_mbv2, fmnist_lowbit, fmnist_int8float.
std::vector<MbConvSpec> FashionMnistSpecs();

// The spec of FashionMnistSpecs() named `name`; INVALID_ARGUMENT naming the known ones (the
// caller prefixes the flag or field).
absl::StatusOr<MbConvSpec> FindFashionMnistSpec(std::string_view name);

}  // namespace apq::oface

#endif  // APQ_OFACE_MBCONV_SPEC_H_
