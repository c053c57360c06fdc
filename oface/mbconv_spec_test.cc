#include "oface/mbconv_spec.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

TEST(MbConvSpecTest, ApqMbv2SpecIsValidAndMatchesTheReference) {
  const MbConvSpec spec = ApqMbv2Spec();
  EXPECT_TRUE(ValidateMbConvSpec(spec).ok()) << ValidateMbConvSpec(spec);
  EXPECT_EQ(spec.name, "apq_mbv2");
  EXPECT_EQ(spec.input_size, 224);
  ASSERT_EQ(spec.stages.size(), 6);
  // Golden README "Block geometry": widths 16/24, 24/40, 40/80, 80/96, 96/192, 192/320 and
  // strides 2, 2, 2, 1, 2, 1; depth 2..4 except the last stage (exactly 1).
  const std::vector<std::vector<int>> expected = {{16, 24, 2, 2, 4},  {24, 40, 2, 2, 4},
                                                  {40, 80, 2, 2, 4},  {80, 96, 1, 2, 4},
                                                  {96, 192, 2, 2, 4}, {192, 320, 1, 1, 1}};
  for (size_t s = 0; s < expected.size(); ++s) {
    const MbConvStageSpec& stage = spec.stages[s];
    EXPECT_EQ((std::vector<int>{stage.in_channels, stage.out_channels, stage.stride,
                                stage.min_depth, stage.max_depth}),
              expected[s])
        << s;
  }
  EXPECT_EQ(spec.kernel_sizes, (std::vector<int>{3, 5, 7}));
  EXPECT_EQ(spec.bit_choices, (std::vector<int>{4, 6, 8}));
  EXPECT_EQ(spec.banned_kernel_dw_a_bits, (std::vector<std::pair<int, int>>{{7, 4}}));
}

TEST(MbConvSpecTest, FashionMnistLowBitSpecIsFmnistMbv2WithLowerBits) {
  const MbConvSpec low_bit = FashionMnistLowBitSpec();
  EXPECT_TRUE(ValidateMbConvSpec(low_bit).ok()) << ValidateMbConvSpec(low_bit);
  EXPECT_EQ(low_bit.name, "fmnist_lowbit");
  EXPECT_EQ(low_bit.bit_choices, (std::vector<int>{2, 3, 4, 6, 8}));
  EXPECT_EQ(low_bit.fixed_bits, 8);
  EXPECT_TRUE(low_bit.banned_kernel_dw_a_bits.empty());
  // Everything else is fmnist_mbv2's.
  MbConvSpec same = low_bit;
  same.name = "fmnist_mbv2";
  same.bit_choices = {4, 6, 8};
  const MbConvSpec mbv2 = FashionMnistSpec();
  EXPECT_EQ(same.input_size, mbv2.input_size);
  EXPECT_EQ(same.first_conv_channels, mbv2.first_conv_channels);
  ASSERT_EQ(same.stages.size(), mbv2.stages.size());
  for (size_t s = 0; s < mbv2.stages.size(); ++s) {
    EXPECT_EQ(same.stages[s].in_channels, mbv2.stages[s].in_channels);
    EXPECT_EQ(same.stages[s].out_channels, mbv2.stages[s].out_channels);
    EXPECT_EQ(same.stages[s].stride, mbv2.stages[s].stride);
    EXPECT_EQ(same.stages[s].min_depth, mbv2.stages[s].min_depth);
    EXPECT_EQ(same.stages[s].max_depth, mbv2.stages[s].max_depth);
  }
  EXPECT_EQ(same.kernel_sizes, mbv2.kernel_sizes);
  EXPECT_EQ(same.min_expand, mbv2.min_expand);
  EXPECT_EQ(same.max_expand, mbv2.max_expand);
  EXPECT_EQ(same.feature_mix_channels, mbv2.feature_mix_channels);
  EXPECT_EQ(same.fixed_layer_costs, mbv2.fixed_layer_costs);
  EXPECT_EQ(mbv2.bit_choices, (std::vector<int>{4, 6, 8}));
}

TEST(MbConvSpecTest, FindsTheFashionMnistSpecsByName) {
  std::vector<std::string> names;
  for (const MbConvSpec& spec : FashionMnistSpecs()) names.push_back(spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"}));
  EXPECT_EQ(FindFashionMnistSpec("fmnist_lowbit")->bit_choices, (std::vector<int>{2, 3, 4, 6, 8}));
  EXPECT_EQ(FindFashionMnistSpec("fmnist_int8float")->bit_choices, (std::vector<int>{8, 32}));
  EXPECT_EQ(FindFashionMnistSpec("fmnist_mbv2")->name, "fmnist_mbv2");
  const absl::Status unknown = FindFashionMnistSpec("apq_mbv2").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(),
              HasSubstr("'apq_mbv2'; known: fmnist_mbv2, fmnist_lowbit, fmnist_int8float"));
}

// One broken field at a time, each named in the message.
TEST(MbConvSpecTest, RejectsBrokenSpecs) {
  const std::vector<std::pair<std::function<void(MbConvSpec&)>, std::string>> cases = {
      {[](MbConvSpec& s) { s.name.clear(); }, "spec: name is empty"},
      {[](MbConvSpec& s) { s.input_size = 0; }, "spec apq_mbv2: input_size: 0 is not positive"},
      {[](MbConvSpec& s) { s.input_channels = -3; }, "input_channels: -3 is not positive"},
      {[](MbConvSpec& s) { s.first_conv_kernel = 4; },
       "first_conv_kernel: 4 is not a positive odd"},
      {[](MbConvSpec& s) { s.num_classes = 0; }, "num_classes: 0 is not positive"},
      {[](MbConvSpec& s) { s.stages.clear(); }, "stages: empty"},
      {[](MbConvSpec& s) { s.stages[0].in_channels = 32; },
       "stages[0].in_channels: 32 differs from the first block's output width 16"},
      {[](MbConvSpec& s) { s.stages[3].in_channels = 96; },
       "stages[3].in_channels: 96 differs from the previous stage's output width 80"},
      {[](MbConvSpec& s) { s.stages[2].stride = 0; }, "stages[2].stride: 0 is not positive"},
      {[](MbConvSpec& s) { s.stages[1].min_depth = 5; },
       "stages[1].depth: need 1 <= min_depth <= max_depth, got 5 and 4"},
      {[](MbConvSpec& s) { s.stages[1].min_depth = 0; }, "stages[1].depth"},
      {[](MbConvSpec& s) {
         s.kernel_sizes = {3, 4};
       },
       "kernel_sizes: 4 is even"},
      {[](MbConvSpec& s) {
         s.kernel_sizes = {5, 3};
       },
       "kernel_sizes: not strictly ascending"},
      {[](MbConvSpec& s) { s.kernel_sizes.clear(); }, "kernel_sizes: empty"},
      {[](MbConvSpec& s) { s.max_expand = 3; }, "expand: need 0 < min_expand <= max_expand"},
      {[](MbConvSpec& s) { s.width_step = 0; }, "width_step: 0 is not positive"},
      {[](MbConvSpec& s) {
         s.bit_choices = {4, 64};
       },
       "bit_choices[1]: 64 is outside [1, 32]"},
      {[](MbConvSpec& s) { s.fixed_bits = 0; }, "fixed_bits: 0 is outside [1, 32]"},
      {[](MbConvSpec& s) {
         s.banned_kernel_dw_a_bits = {{9, 4}};
       },
       "banned_kernel_dw_a_bits: (9, 4) is not a (kernel size, bits) pair of the space"},
      {[](MbConvSpec& s) { s.arch_json_max_depth = -1; }, "arch_json_max_depth: -1 is negative"},
  };
  for (const auto& [breakage, message] : cases) {
    MbConvSpec spec = ApqMbv2Spec();
    breakage(spec);
    const absl::Status status = ValidateMbConvSpec(spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(status.message(), HasSubstr(message));
  }
}

}  // namespace
}  // namespace apq::oface
