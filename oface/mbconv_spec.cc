#include "oface/mbconv_spec.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace apq::oface {
namespace {

absl::Status Invalid(const std::string& spec_name, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("spec ", spec_name, ": ", message));
}

absl::Status CheckPositive(const std::string& spec_name, const char* field, int value) {
  if (value > 0) return absl::OkStatus();
  return Invalid(spec_name, absl::StrCat(field, ": ", value, " is not positive"));
}

// Non-empty, strictly ascending, each value in [low, high].
absl::Status CheckChoices(const std::string& spec_name, const char* field,
                          const std::vector<int>& values, int low, int high) {
  if (values.empty()) return Invalid(spec_name, absl::StrCat(field, ": empty"));
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < low || values[i] > high) {
      return Invalid(spec_name, absl::StrCat(field, "[", i, "]: ", values[i], " is outside [", low,
                                             ", ", high, "]"));
    }
    if (i > 0 && values[i] <= values[i - 1]) {
      return Invalid(spec_name, absl::StrCat(field, ": not strictly ascending at [", i, "]"));
    }
  }
  return absl::OkStatus();
}

bool Contains(const std::vector<int>& values, int value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

}  // namespace

absl::Status ValidateMbConvSpec(const MbConvSpec& spec) {
  const std::string& n = spec.name;
  if (n.empty()) return absl::InvalidArgumentError("spec: name is empty");
  RETURN_IF_ERROR(CheckPositive(n, "input_size", spec.input_size));
  RETURN_IF_ERROR(CheckPositive(n, "input_channels", spec.input_channels));
  RETURN_IF_ERROR(CheckPositive(n, "first_conv_channels", spec.first_conv_channels));
  RETURN_IF_ERROR(CheckPositive(n, "first_conv_stride", spec.first_conv_stride));
  RETURN_IF_ERROR(CheckPositive(n, "first_block_channels", spec.first_block_channels));
  RETURN_IF_ERROR(CheckPositive(n, "first_block_stride", spec.first_block_stride));
  RETURN_IF_ERROR(CheckPositive(n, "feature_mix_channels", spec.feature_mix_channels));
  RETURN_IF_ERROR(CheckPositive(n, "num_classes", spec.num_classes));
  for (const auto& [field, kernel] : {std::pair{"first_conv_kernel", spec.first_conv_kernel},
                                      std::pair{"first_block_kernel", spec.first_block_kernel}}) {
    if (kernel <= 0 || kernel % 2 == 0) {
      return Invalid(n, absl::StrCat(field, ": ", kernel, " is not a positive odd number"));
    }
  }

  if (spec.arch_json_max_depth < 0) {
    return Invalid(n,
                   absl::StrCat("arch_json_max_depth: ", spec.arch_json_max_depth, " is negative"));
  }
  if (spec.stages.empty()) return Invalid(n, "stages: empty");
  int previous_out = spec.first_block_channels;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const MbConvStageSpec& stage = spec.stages[s];
    const std::string at = absl::StrCat("stages[", s, "].");
    if (stage.in_channels != previous_out) {
      return Invalid(n, absl::StrCat(at, "in_channels: ", stage.in_channels, " differs from the ",
                                     s == 0 ? "first block's" : "previous stage's",
                                     " output width ", previous_out));
    }
    if (stage.out_channels <= 0) {
      return Invalid(n, absl::StrCat(at, "out_channels: ", stage.out_channels, " is not positive"));
    }
    if (stage.stride <= 0) {
      return Invalid(n, absl::StrCat(at, "stride: ", stage.stride, " is not positive"));
    }
    if (stage.min_depth < 1 || stage.max_depth < stage.min_depth) {
      return Invalid(n, absl::StrCat(at, "depth: need 1 <= min_depth <= max_depth, got ",
                                     stage.min_depth, " and ", stage.max_depth));
    }
    if (stage.min_depth == stage.max_depth && spec.arch_json_max_depth != 0 &&
        spec.arch_json_max_depth < stage.max_depth) {
      return Invalid(n, absl::StrCat("arch_json_max_depth: ", spec.arch_json_max_depth,
                                     " is below stage ", s, "'s depth ", stage.max_depth));
    }
    previous_out = stage.out_channels;
  }

  RETURN_IF_ERROR(CheckChoices(n, "kernel_sizes", spec.kernel_sizes, 1, 99));
  for (const int kernel : spec.kernel_sizes) {
    if (kernel % 2 == 0) return Invalid(n, absl::StrCat("kernel_sizes: ", kernel, " is even"));
  }
  if (spec.min_expand <= 0 || spec.max_expand < spec.min_expand) {
    return Invalid(n, absl::StrCat("expand: need 0 < min_expand <= max_expand, got ",
                                   spec.min_expand, " and ", spec.max_expand));
  }
  RETURN_IF_ERROR(CheckPositive(n, "width_step", spec.width_step));
  RETURN_IF_ERROR(CheckChoices(n, "bit_choices", spec.bit_choices, 1, 32));
  if (spec.fixed_bits < 1 || spec.fixed_bits > 32) {
    return Invalid(n, absl::StrCat("fixed_bits: ", spec.fixed_bits, " is outside [1, 32]"));
  }
  for (const auto& [kernel, bits] : spec.banned_kernel_dw_a_bits) {
    if (!Contains(spec.kernel_sizes, kernel) || !Contains(spec.bit_choices, bits)) {
      return Invalid(n, absl::StrCat("banned_kernel_dw_a_bits: (", kernel, ", ", bits,
                                     ") is not a (kernel size, bits) pair of the space"));
    }
  }
  return absl::OkStatus();
}

MbConvSpec ApqMbv2Spec() {
  MbConvSpec spec;
  spec.name = "apq_mbv2";
  spec.input_size = 224;
  spec.input_channels = 3;
  // ProxylessNAS widths [32, 16, 24, 40, 80, 96, 192, 320, 1280]
  // (elastic_nn/networks/dynamic_quantized_proxyless.py).
  spec.first_conv_channels = 32;
  spec.first_conv_kernel = 3;
  spec.first_conv_stride = 2;
  spec.first_block_channels = 16;
  spec.first_block_kernel = 3;
  spec.first_block_stride = 1;
  spec.stages = {
      {16, 24, 2, 2, 4}, {24, 40, 2, 2, 4},  {40, 80, 2, 2, 4},
      {80, 96, 1, 2, 4}, {96, 192, 2, 2, 4}, {192, 320, 1, 1, 1},
  };
  spec.feature_mix_channels = 1280;
  spec.num_classes = 1000;
  spec.kernel_sizes = {3, 5, 7};
  spec.min_expand = 4;
  spec.max_expand = 6;
  spec.width_step = 8;
  spec.bit_choices = {4, 6, 8};
  spec.fixed_bits = 8;
  // utils/converter.py is_valid; BitFusion_new.b1.dict has no 7x7 depthwise entry at A4.
  spec.banned_kernel_dw_a_bits = {{7, 4}};
  // Converter.random_spec draws every d[s], the last stage's too, as randint(3) + 2.
  spec.arch_json_max_depth = 4;
  return spec;
}

MbConvSpec FashionMnistSpec() {
  MbConvSpec spec;
  spec.name = "fmnist_mbv2";
  spec.input_size = 28;
  spec.input_channels = 1;
  spec.first_conv_channels = 16;
  spec.first_conv_kernel = 3;
  spec.first_conv_stride = 2;
  spec.first_block_channels = 16;
  spec.first_block_kernel = 3;
  spec.first_block_stride = 1;
  spec.stages = {{16, 24, 2, 2, 4}, {24, 32, 2, 2, 4}, {32, 48, 1, 2, 4}};
  spec.feature_mix_channels = 128;
  spec.num_classes = 10;
  spec.kernel_sizes = {3, 5, 7};
  spec.min_expand = 3;
  spec.max_expand = 6;
  spec.width_step = 8;
  spec.bit_choices = {4, 6, 8};
  spec.fixed_bits = 8;
  spec.fixed_layer_costs = FixedLayerCosts::kConvKeys;
  return spec;
}

MbConvSpec FashionMnistLowBitSpec() {
  MbConvSpec spec = FashionMnistSpec();
  spec.name = "fmnist_lowbit";
  spec.bit_choices = {2, 3, 4, 6, 8};
  return spec;
}

MbConvSpec FashionMnistInt8FloatSpec() {
  MbConvSpec spec = FashionMnistSpec();
  spec.name = "fmnist_int8float";
  spec.bit_choices = {8, 32};
  return spec;
}

std::vector<MbConvSpec> FashionMnistSpecs() {
  return {FashionMnistSpec(), FashionMnistLowBitSpec(), FashionMnistInt8FloatSpec()};
}

absl::StatusOr<MbConvSpec> FindFashionMnistSpec(std::string_view name) {
  std::vector<std::string> names;
  for (MbConvSpec& spec : FashionMnistSpecs()) {
    if (spec.name == name) return std::move(spec);
    names.push_back(spec.name);
  }
  // Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
  return absl::InvalidArgumentError(absl::StrCat("unknown Fashion-MNIST space '", std::string(name),
                                                 "'; known: ", absl::StrJoin(names, ", ")));
}

}  // namespace apq::oface
