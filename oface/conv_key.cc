#include "oface/conv_key.h"

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace apq::oface {
namespace {

bool Consume(std::string_view* text, std::string_view prefix) {
  if (text->substr(0, prefix.size()) != prefix) return false;
  text->remove_prefix(prefix.size());
  return true;
}

// A decimal without sign or leading zeros (Python's str(int)), at most 9 digits.
bool ConsumeDecimal(std::string_view* text, int* value) {
  size_t digits = 0;
  while (digits < text->size() && (*text)[digits] >= '0' && (*text)[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9 || (digits > 1 && (*text)[0] == '0')) return false;
  *value = 0;
  for (size_t i = 0; i < digits; ++i) *value = *value * 10 + ((*text)[i] - '0');
  text->remove_prefix(digits);
  return true;
}

}  // namespace

absl::Status ConvKeyError(std::string_view key, std::string_view why) {
  // Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
  return absl::InvalidArgumentError(
      absl::StrCat("key \"", absl::string_view(key.data(), key.size()),
                   "\": ", absl::string_view(why.data(), why.size())));
}

absl::StatusOr<ConvLayerKey> ParseConvLayerKey(std::string_view key) {
  ConvLayerKey conv;
  const std::array<int*, 7> fields = {&conv.in_channels, &conv.out_channels, &conv.input_size,
                                      &conv.kernel_size, &conv.stride,       &conv.padding,
                                      &conv.groups};
  std::string_view rest = key;
  bool ok = Consume(&rest, "(");
  for (size_t i = 0; ok && i < fields.size(); ++i) {
    ok = (i == 0 || Consume(&rest, ", ")) && ConsumeDecimal(&rest, fields[i]);
  }
  ok = ok && Consume(&rest, ")-W") && ConsumeDecimal(&rest, &conv.w_bits) && Consume(&rest, "A") &&
       ConsumeDecimal(&rest, &conv.a_bits) && rest.empty();
  if (!ok) {
    return ConvKeyError(
        key, "malformed (expected \"(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}\")");
  }
  static constexpr std::array<const char*, 7> kNames = {"Cin",    "Cout", "H_in",  "K",
                                                        "stride", "pad",  "groups"};
  for (size_t i = 0; i < fields.size(); ++i) {
    if (*fields[i] == 0 && fields[i] != &conv.padding) {
      return ConvKeyError(key, absl::StrCat(kNames[i], " is 0"));
    }
  }
  return conv;
}

std::string PrecisionChangeKeyText(const PrecisionChangeKey& change) {
  return absl::StrCat("(", change.channels, ", ", change.size, ")-",
                      change.to_int8 ? "quantize" : "dequantize");
}

absl::StatusOr<PrecisionChangeKey> ParsePrecisionChangeKey(std::string_view key) {
  PrecisionChangeKey change;
  std::string_view rest = key;
  bool ok = Consume(&rest, "(") && ConsumeDecimal(&rest, &change.channels) &&
            Consume(&rest, ", ") && ConsumeDecimal(&rest, &change.size) && Consume(&rest, ")-");
  if (ok && rest == "quantize") {
    change.to_int8 = true;
  } else if (!ok || rest != "dequantize") {
    return ConvKeyError(key, "malformed (expected \"(C, H)-quantize\" or \"(C, H)-dequantize\")");
  }
  if (change.channels == 0 || change.size == 0) {
    return ConvKeyError(key, change.channels == 0 ? "C is 0" : "H is 0");
  }
  return change;
}

}  // namespace apq::oface
