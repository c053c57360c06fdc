// The key a BitFusion per-layer table (APQ's BitFusion_new.b1.dict, hwmodels/apq_bitfusion_table.h)
// gives a conv layer: "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}", Python's str() of the
// 7-tuple (decimals without sign or leading zeros, ", " between them) and the weight and
// activation bit widths.
//
// Error messages start with `key "<key>": `, so that every rejection names the key.
#ifndef APQ_HWMODELS_BITFUSION_KEY_H_
#define APQ_HWMODELS_BITFUSION_KEY_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "oface/conv_key.h"

namespace apq::hwmodels {

// One conv layer as a BitFusion table key names it (the key syntax is oface/conv_key.h).
using BitFusionConv = oface::ConvLayerKey;

// oface::ParseConvLayerKey: the syntax and non-zero fields only (bit widths are the caller's:
// a table allows fewer than the hardware).
absl::StatusOr<BitFusionConv> ParseBitFusionKeyFields(std::string_view key);

// ParseBitFusionKeyFields, then requires a conv BitFusion computes. INVALID_ARGUMENT naming the
// key as above, or when groups does not divide Cin and Cout, the kernel is larger than the
// padded input, or a bit width is outside 1..8 (BitFusion's fused range; a 1-bit operand
// computes as a 2-bit one).
absl::StatusOr<BitFusionConv> ParseBitFusionKey(std::string_view key);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_BITFUSION_KEY_H_
