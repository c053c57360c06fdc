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

namespace apq::hwmodels {

// One conv layer as a BitFusion table key names it.
struct BitFusionConv {
  int in_channels = 0;
  int out_channels = 0;
  int input_size = 0;  // Square input: H_in = W_in.
  int kernel_size = 0;
  int stride = 0;
  int padding = 0;
  int groups = 0;
  int w_bits = 0;
  int a_bits = 0;

  int OutputSize() const { return (input_size + 2 * padding - kernel_size) / stride + 1; }
};

// Reads the fields of `key`, checking the syntax above and that no field other than pad is 0;
// nothing else (bit widths are the caller's: a table allows fewer than the hardware).
// INVALID_ARGUMENT `key "<key>": malformed (...)` when the syntax differs ("head" and "tail"
// included), `key "<key>": <field> is 0` (field: Cin, Cout, H_in, K, stride or groups).
absl::StatusOr<BitFusionConv> ParseBitFusionKeyFields(std::string_view key);

// ParseBitFusionKeyFields, then requires a conv BitFusion computes. INVALID_ARGUMENT naming the
// key as above, or when groups does not divide Cin and Cout, the kernel is larger than the
// padded input, or a bit width is outside 1..8 (BitFusion's fused range; a 1-bit operand
// computes as a 2-bit one).
absl::StatusOr<BitFusionConv> ParseBitFusionKey(std::string_view key);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_BITFUSION_KEY_H_
