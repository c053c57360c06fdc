// The joint architecture + channel-pruning + mixed-precision space of an MbConvSpec
// (oface/mbconv_spec.h), after APQ (mit-han-lab/apq @ 428190a6). "apq_mbv2" is
// NewApqMbv2Space(); any other backbone is another spec.
//
// With L layer slots and S stages, genes (6L + S), each block in slot order:
//   ks[i]                  kernel size, one of spec.kernel_sizes
//   mid[i]                 mid (hidden) channels, on slot i's width grid
//   pw_w_bits_setting[i]   weight / activation bits of both 1x1 convs,
//   pw_a_bits_setting[i]   and of the depthwise conv, each one of spec.bit_choices
//   dw_w_bits_setting[i]
//   dw_a_bits_setting[i]
//   d[s]                   depth of stage s, min_depth..max_depth (one choice for a fixed stage)
// Rule: no slot (active or not, as APQ's Converter.is_valid) may take a banned
// (ks, dw_a_bits_setting) pair; apq_mbv2 bans (7, 4).
// Mutation groups, in APQ's mutate_spec order: {ks, mid, pw_w, pw_a, dw_w, dw_a} of slot i for
// i = 0..L-1 (kBlock; APQ's change_spec resamples them together), then {d[s]} for each stage
// of variable depth (kDepth). APQ's own mutate_spec never changes a depth: its loop
// `d[stg] = max(d[stg], depth)` only sees depths of blocks that are already active, so it is
// a no-op, and depth moves only through its crossover. Here depth mutates per stage, as in
// once-for-all, with the block probability.
//
// Predictor encoding: APQ's Converter.spec2feature(spec, quantize=True) one-hot, for
// apq_mbv2 772 = ks 63 + mid 457 (arch_feature_size() = 520) + bits 252; see ActiveFeatures in
// the .cc for the index blocks. Inactive slots contribute no ones at all.
//
// Cost terms: keys of APQ's BitFusion table, "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}"
// for the three convs of each active slot, plus the stem's and tail's terms ("head" and "tail",
// or with FixedLayerCosts::kConvKeys the stem conv, first-block depthwise and projection,
// feature mix and classifier convs at fixed_bits), summed in utils/latency_predictor.py
// predict_lat's order: head, tail, then per active slot pw1, dw, pw2.
//
// Changes of precision (a spec whose bit_choices include kFloatBits, e.g. fmnist_int8float):
// a layer at 32 weight bits runs in float, any other in int8, and the stem and tail in int8.
// Where the int8 export (oface/int8_export.h) converts a tensor between them the network also
// pays "(C, H)-quantize" or "(C, H)-dequantize" (oface/conv_key.h): inside a layer whose 1x1
// convs and depthwise conv differ (the expand conv's output, mid x H_in, and the depthwise
// conv's, mid x H_out), and between consecutive blocks whose 1x1 convs differ (the block's
// output, Cin x H_in of the next; twice when the earlier block adds its input to its output,
// whose residual input is converted too), counting the stem's first block and the feature mix
// as int8. Each is appended after the terms of the layer it follows or precedes; apq_mbv2 and
// the other specs without a float choice have none.
//
// DecomposeCosts: the fixed part is the stem's and tail's terms. kBitwidths: per active slot i,
// "layer i pw" (genes pw_w[i], pw_a[i]; both 1x1 convs) then "layer i dw" (dw_w[i], dw_a[i];
// the depthwise conv, without pairs banned with ks[i]). kBlocks: per active slot i, "layer i"
// (ks, mid and the four bits of slot i; its three convs). Exact because a slot's convs depend
// on its own genes only: its input channels, input size and stride are fixed by the slot.
// With a float choice, the changes of precision inside a layer are a coupling of its "pw" and
// "dw" slots (kBitwidths) or part of its choice (kBlocks); those between consecutive layers a
// coupling of their pw_w genes; those where the first and last active layers meet the stem and
// the feature mix part of those layers' pw choices.
//
// JSON: APQ's exps/<name>/arch format, a two-element list
//   [{"wid": null, "ks": [L], "e": [L], "d": [S]},
//    {"pw_w_bits_setting": [L], "pw_a_bits_setting": [L],
//     "dw_w_bits_setting": [L], "dw_a_bits_setting": [L]}]
// where e[i] = mid[i] / Cin[i] as a double (Python's float division). FromJson reads an e whose
// e * Cin is within 1e-6 of a grid width; a fixed-depth stage's d may be anything from its
// depth to spec.arch_json_max_depth (APQ samples d[5] in 2..4; it reads as 1).
//
// StaticCosts: size_bytes = sum over conv and classifier weight tensors of parameters x weight
// bits / 8 (stem and tail at spec.fixed_bits). Batch-norm parameters and the classifier bias
// are not counted: at deployment BN folds into the preceding conv, and HAQ/APQ-style model
// sizes count quantized weights only. macs = multiply-accumulates at batch 1 (average pooling
// and residual additions excluded); bitops = sum over convs and the classifier of
// MACs x weight bits x activation bits.
#ifndef APQ_OFACE_MBCONV_QUANT_SPACE_H_
#define APQ_OFACE_MBCONV_QUANT_SPACE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "oface/mbconv_spec.h"
#include "oface/search_space.h"

namespace apq::oface {

// INVALID_ARGUMENT (from ValidateMbConvSpec) when `spec` is not buildable.
absl::StatusOr<std::unique_ptr<SearchSpace>> NewMbConvQuantSpace(const MbConvSpec& spec);

// NewMbConvQuantSpace(ApqMbv2Spec()).
std::unique_ptr<SearchSpace> NewApqMbv2Space();

}  // namespace apq::oface

#endif  // APQ_OFACE_MBCONV_QUANT_SPACE_H_
