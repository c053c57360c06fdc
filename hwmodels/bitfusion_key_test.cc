#include "hwmodels/bitfusion_key.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table_testing.h"
#include "hwmodels/cost_table.h"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;

TEST(ParseBitFusionKeyTest, ParsesEveryField) {
  const absl::StatusOr<BitFusionConv> conv = ParseBitFusionKey("(96, 576, 14, 5, 2, 2, 96)-W6A4");
  ASSERT_TRUE(conv.ok()) << conv.status();
  EXPECT_EQ(conv->in_channels, 96);
  EXPECT_EQ(conv->out_channels, 576);
  EXPECT_EQ(conv->input_size, 14);
  EXPECT_EQ(conv->kernel_size, 5);
  EXPECT_EQ(conv->stride, 2);
  EXPECT_EQ(conv->padding, 2);
  EXPECT_EQ(conv->groups, 96);
  EXPECT_EQ(conv->w_bits, 6);
  EXPECT_EQ(conv->a_bits, 4);
  EXPECT_EQ(conv->OutputSize(), 7);
}

TEST(ParseBitFusionKeyTest, EveryKeyOfTheRealTableParsesButHeadAndTail) {
  int conv_keys = 0;
  for (const auto& [key, entry] : ShippedBitFusionTable().entries) {
    const absl::StatusOr<BitFusionConv> conv = ParseBitFusionKey(key);
    if (key == "head" || key == "tail") {
      EXPECT_FALSE(conv.ok());
      continue;
    }
    ASSERT_TRUE(conv.ok()) << conv.status();
    ++conv_keys;
  }
  EXPECT_EQ(conv_keys, 6567);
}

TEST(ParseBitFusionKeyTest, RejectsMalformedKeys) {
  for (const char* key : {
           "head",
           "tail",
           "",
           "(96, 576, 14, 1, 1, 0, 1)",
           "(96, 576, 14, 1, 1, 0)-W8A8",
           "(96, 576, 14, 1, 1, 0, 1, 1)-W8A8",
           "(96,576, 14, 1, 1, 0, 1)-W8A8",
           "(096, 576, 14, 1, 1, 0, 1)-W8A8",
           "(-96, 576, 14, 1, 1, 0, 1)-W8A8",
           "(+96, 576, 14, 1, 1, 0, 1)-W8A8",
           "(96, 576, 14, 1, 1, 0, 1)-W8A8 ",
           "(96, 576, 14, 1, 1, 0, 1)-w8a8",
           "(96, 576, 14, 1, 1, 0, 1)-A8W8",
           "(96, 576, 14, 1, 1, 0, 1)-W8",
           "(96, 576, 14, 1, 1, 0, 1)-W8A8x",
           "(1234567890, 576, 14, 1, 1, 0, 1)-W8A8",
           "(0, 576, 14, 1, 1, 0, 1)-W8A8",
           "(96, 576, 14, 1, 0, 0, 1)-W8A8",
           "(96, 576, 14, 1, 1, 0, 0)-W8A8",
           "(96, 576, 14, 1, 1, 0, 5)-W8A8",
           "(96, 576, 2, 5, 1, 1, 1)-W8A8",
           "(96, 576, 14, 1, 1, 0, 1)-W0A8",
           "(96, 576, 14, 1, 1, 0, 1)-W8A9",
           "(96, 576, 14, 1, 1, 0, 1)-W16A16",
       }) {
    const absl::StatusOr<BitFusionConv> conv = ParseBitFusionKey(key);
    ASSERT_FALSE(conv.ok()) << key;
    EXPECT_EQ(conv.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(conv.status().message(), HasSubstr(absl::StrCat("\"", key, "\""))) << key;
  }
  EXPECT_THAT(ParseBitFusionKey("(96, 576, 14, 1, 1, 0, 5)-W8A8").status().message(),
              HasSubstr("groups does not divide"));
  EXPECT_THAT(ParseBitFusionKey("(96, 576, 14, 1, 1, 0, 1)-W8A9").status().message(),
              HasSubstr("bit width 9 outside 1..8"));
}

// The fields parser checks syntax and zeros only: bit widths, groups and kernel size are left to
// the caller.
TEST(ParseBitFusionKeyFieldsTest, ChecksSyntaxAndZerosOnly) {
  for (const char* key : {"(96, 576, 14, 1, 1, 0, 5)-W8A8", "(96, 576, 2, 5, 1, 1, 1)-W8A8",
                          "(96, 576, 14, 1, 1, 0, 1)-W0A8", "(96, 576, 14, 1, 1, 0, 1)-W16A16"}) {
    EXPECT_TRUE(ParseBitFusionKeyFields(key).ok()) << key;
    EXPECT_FALSE(ParseBitFusionKey(key).ok()) << key;
  }
  EXPECT_EQ(ParseBitFusionKeyFields("(96, 576, 14, 1, 1, 0, 1)-W16A3")->w_bits, 16);
  EXPECT_EQ(ParseBitFusionKeyFields("(96, 576, 14, 1, 1, 0, 1)-W8A8")->padding, 0);
  EXPECT_THAT(ParseBitFusionKeyFields("(96, 576, 14, 1, 1, 0, 1)").status().message(),
              HasSubstr("key \"(96, 576, 14, 1, 1, 0, 1)\": malformed"));
  EXPECT_THAT(ParseBitFusionKeyFields("(96, 576, 0, 1, 1, 0, 1)-W8A8").status().message(),
              HasSubstr("key \"(96, 576, 0, 1, 1, 0, 1)-W8A8\": H_in is 0"));
}

}  // namespace
}  // namespace apq::hwmodels
