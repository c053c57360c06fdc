// The key a per-layer cost table gives a conv layer of an MBConv space
// (oface/mbconv_quant_space.h): "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}", Python's
// str() of the 7-tuple (decimals without sign or leading zeros, ", " between them) and the
// weight and activation bit widths. APQ's BitFusion table introduced the syntax; the spaces
// write it, the table loaders (hwmodels/) and the layer profiler read it.
//
// A layer kept in float next to one in int8 also costs a change of precision of the tensor
// between them (oface/int8_export.h): "(C, H)-quantize" converts a float [1, C, H, H] tensor to
// uint8 (quantize_per_tensor), "(C, H)-dequantize" converts a uint8 one back to float. Spaces
// with a float choice per layer write these keys too (oface/mbconv_quant_space.h).
//
// Error messages start with `key "<key>": `, so that every rejection names the key.
#ifndef APQ_OFACE_CONV_KEY_H_
#define APQ_OFACE_CONV_KEY_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace apq::oface {

// One conv layer as its key names it.
struct ConvLayerKey {
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
// nothing else. INVALID_ARGUMENT `key "<key>": malformed (...)` when the syntax differs ("head"
// and "tail" included), `key "<key>": <field> is 0` (field: Cin, Cout, H_in, K, stride or
// groups).
absl::StatusOr<ConvLayerKey> ParseConvLayerKey(std::string_view key);

// A change of precision as its key names it.
struct PrecisionChangeKey {
  int channels = 0;
  int size = 0;          // Square tensor: H = W.
  bool to_int8 = false;  // Float to uint8 ("quantize"); else uint8 to float ("dequantize").
};

// "(C, H)-quantize" or "(C, H)-dequantize".
std::string PrecisionChangeKeyText(const PrecisionChangeKey& change);

// Reads `key` as the syntax above with C and H > 0. INVALID_ARGUMENT `key "<key>": ...` when it
// is not one ("head" and conv keys included).
absl::StatusOr<PrecisionChangeKey> ParsePrecisionChangeKey(std::string_view key);

// INVALID_ARGUMENT `key "<key>": <why>`.
absl::Status ConvKeyError(std::string_view key, std::string_view why);

}  // namespace apq::oface

#endif  // APQ_OFACE_CONV_KEY_H_
