#include "clients/config_convert.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace apq::client {
namespace {

using nlohmann::json;

// The tutorial's Note10 network (tests/testdata/golden_values.json) as OFA's net.config writes
// a MobileNetV3 subnet of the w1.2 supernet: the fixed first block, then each stage's active
// blocks with their stage's output width. `conv_key` is "conv" (ResidualBlock) or
// "mobile_inverted_conv" (the older MobileInvertedResidualBlock).
json TutorialNetConfig(const std::string& conv_key) {
  const std::vector<int> ks = {5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3};
  const std::vector<int> e = {3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3};
  const std::vector<int> d = {2, 2, 3, 4, 3};
  const std::vector<int> widths = {32, 48, 96, 136, 192};
  const std::vector<int> strides = {2, 2, 2, 1, 2};
  const std::string block_name =
      conv_key == "conv" ? "ResidualBlock" : "MobileInvertedResidualBlock";
  json blocks = json::array();
  blocks.push_back({{"name", block_name},
                    {conv_key,
                     {{"name", "MBConvLayer"},
                      {"in_channels", 24},
                      {"out_channels", 24},
                      {"kernel_size", 3},
                      {"stride", 1},
                      {"expand_ratio", 1}}},
                    {"shortcut", {{"name", "IdentityLayer"}}}});
  int in_channels = 24;
  for (int stage = 0; stage < 5; ++stage) {
    for (int slot = 0; slot < d[stage]; ++slot) {
      const int i = stage * 4 + slot;
      blocks.push_back(
          {{"name", block_name},
           {conv_key,
            {{"name", "MBConvLayer"},
             {"in_channels", in_channels},
             {"out_channels", widths[stage]},
             {"kernel_size", ks[i]},
             {"stride", slot == 0 ? strides[stage] : 1},
             // OFA writes some expand ratios as floats.
             {"expand_ratio", i % 2 == 0 ? json(e[i]) : json(static_cast<double>(e[i]))},
             {"act_func", stage < 2 ? "relu" : "h_swish"}}},
           {"shortcut", nullptr}});
      in_channels = widths[stage];
    }
  }
  return {{"name", "MobileNetV3"},
          {"first_conv", {{"name", "ConvLayer"}, {"out_channels", 24}}},
          {"blocks", blocks},
          {"final_expand_layer", {{"name", "ConvLayer"}}},
          {"feature_mix_layer", {{"name", "ConvLayer"}}},
          {"classifier", {{"name", "LinearLayer"}}}};
}

TEST(ConfigConvertTest, NetConfigBecomesTheArchDictInEitherNaming) {
  for (const char* conv_key : {"conv", "mobile_inverted_conv"}) {
    SCOPED_TRACE(conv_key);
    const absl::StatusOr<json> arch = OfaArchFromNetConfig(TutorialNetConfig(conv_key), 192);
    ASSERT_TRUE(arch.ok()) << arch.status();
    EXPECT_EQ((*arch)["d"], json({2, 2, 3, 4, 3}));
    EXPECT_EQ((*arch)["r"], 192);
    // Active slots carry the network's values; unused ones kernel 3, expand 3.
    EXPECT_EQ((*arch)["ks"], json({5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3}));
    EXPECT_EQ((*arch)["e"], json({3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3}));
  }
}

TEST(ConfigConvertTest, WhatIsNotAnOfaMobileNetV3SubnetIsRefusedNamingThePath) {
  const auto refused = [](const json& config, int resolution, const std::string& expected) {
    const absl::StatusOr<json> arch = OfaArchFromNetConfig(config, resolution);
    ASSERT_FALSE(arch.ok()) << expected;
    EXPECT_EQ(arch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(arch.status().message(), expected)) << arch.status().message();
  };
  const json good = TutorialNetConfig("conv");
  refused(good, 200, "resolution: 200");
  refused(json::array(), 192, "top level is not an object");
  refused({{"blocks", json::array()}}, 192, "blocks: missing, or fewer than two");
  json kernel = good;
  kernel["blocks"][2]["conv"]["kernel_size"] = 9;
  refused(kernel, 192, "blocks[2].conv.kernel_size: 9 is not one of 3, 5, 7");
  json expand = good;
  expand["blocks"][1]["conv"]["expand_ratio"] = 2.5;
  refused(expand, 192, "blocks[1].conv.expand_ratio: not an integer");
  json no_conv = good;
  no_conv["blocks"][3].erase("conv");
  refused(no_conv, 192, "blocks[3]: has no \"conv\"");
  // Numbers beyond an int are refused, not cast (a fuzzer's find: 6.7e82 as a float width).
  for (const json& huge :
       {json(6.66667e82), json(int64_t{1} << 40), json(uint64_t{1} << 63), json(-3e9)}) {
    json wide = good;
    wide["blocks"][2]["conv"]["out_channels"] = huge;
    refused(wide, 192, "blocks[2].conv.out_channels: outside the range of an int");
  }
}

TEST(ConfigConvertTest, StagesAreCountedByWidthAndTheirDepthsChecked) {
  json deeper = TutorialNetConfig("conv");
  deeper["blocks"].push_back(deeper["blocks"].back());  // Stage 5: 3 -> 4 blocks.
  const absl::StatusOr<json> arch = OfaArchFromNetConfig(deeper, 224);
  ASSERT_TRUE(arch.ok()) << arch.status();
  EXPECT_EQ((*arch)["d"], json({2, 2, 3, 4, 4}));
  json too_deep = deeper;
  too_deep["blocks"].push_back(too_deep["blocks"].back());
  EXPECT_TRUE(absl::StrContains(OfaArchFromNetConfig(too_deep, 224).status().message(),
                                "stage 5 has 5 blocks"));
  json merged = TutorialNetConfig("conv");
  for (auto& block : merged["blocks"]) block["conv"]["out_channels"] = 48;
  EXPECT_TRUE(
      absl::StrContains(OfaArchFromNetConfig(merged, 224).status().message(), "form 1 stages"));
}

}  // namespace
}  // namespace apq::client
