#include "hwmodels/bitfusion_key.h"

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::hwmodels {
namespace {

// BitFusion fuses 2-bit bricks up to 8-bit operands.
constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;

}  // namespace

absl::StatusOr<BitFusionConv> ParseBitFusionKeyFields(std::string_view key) {
  return oface::ParseConvLayerKey(key);
}

absl::StatusOr<BitFusionConv> ParseBitFusionKey(std::string_view key) {
  ASSIGN_OR_RETURN(const BitFusionConv conv, oface::ParseConvLayerKey(key));
  if (conv.in_channels % conv.groups != 0 || conv.out_channels % conv.groups != 0) {
    return oface::ConvKeyError(key, "groups does not divide Cin and Cout");
  }
  if (conv.kernel_size > conv.input_size + 2 * conv.padding) {
    return oface::ConvKeyError(key, "kernel larger than the padded input");
  }
  for (const int bits : {conv.w_bits, conv.a_bits}) {
    if (bits < kMinBits || bits > kMaxBits) {
      return oface::ConvKeyError(
          key, absl::StrCat("bit width ", bits, " outside ", kMinBits, "..", kMaxBits));
    }
  }
  return conv;
}

}  // namespace apq::hwmodels
