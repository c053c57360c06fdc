#include "common/paired_comparison.h"

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq {
namespace {

using ::testing::DoubleNear;
using ::testing::HasSubstr;

TEST(ExactMcNemarTest, MatchesTheBinomialTailByHand) {
  EXPECT_EQ(ExactMcNemarP(0, 0), 1.0);
  // n = 5, k = 0: 2 * (1/32).
  EXPECT_THAT(ExactMcNemarP(5, 0), DoubleNear(2.0 / 32.0, 1e-12));
  EXPECT_THAT(ExactMcNemarP(0, 5), DoubleNear(2.0 / 32.0, 1e-12));
  // n = 10, k = 2: 2 * (1 + 10 + 45) / 1024.
  EXPECT_THAT(ExactMcNemarP(2, 8), DoubleNear(2.0 * 56.0 / 1024.0, 1e-12));
  // A balanced split is as likely as can be.
  EXPECT_EQ(ExactMcNemarP(7, 7), 1.0);
  // Large counts stay finite and ordered: 60 against 40 of 100 is p ~ 0.057 (the
  // exact binomial sum is 0.05689), 600 against 400 is far below 0.001.
  EXPECT_THAT(ExactMcNemarP(60, 40), DoubleNear(0.0569, 5e-4));
  EXPECT_LT(ExactMcNemarP(600, 400), 1e-9);
  EXPECT_GT(ExactMcNemarP(600, 400), 0.0);
}

TEST(ComparePairedTest, CountsDiscordantImagesAndBoundsTheDifference) {
  // 1,000 images: both right on 800, only the first on 60, only the second on 40.
  std::vector<uint8_t> first(1000, 0);
  std::vector<uint8_t> second(1000, 0);
  for (int i = 0; i < 800; ++i) first[i] = second[i] = 1;
  for (int i = 800; i < 860; ++i) first[i] = 1;
  for (int i = 860; i < 900; ++i) second[i] = 1;
  const PairedComparison result = ComparePaired(first, second, 2000, 1).value();
  EXPECT_EQ(result.images, 1000);
  EXPECT_EQ(result.only_first, 60);
  EXPECT_EQ(result.only_second, 40);
  EXPECT_DOUBLE_EQ(result.first_accuracy, 0.86);
  EXPECT_DOUBLE_EQ(result.second_accuracy, 0.84);
  EXPECT_NEAR(result.difference, 0.02, 1e-12);
  EXPECT_THAT(result.mcnemar_p, DoubleNear(0.0569, 5e-4));
  // The bootstrap interval holds the difference and is about +- 2 standard errors
  // (sqrt(100) / 1000 = 0.01 per standard error).
  EXPECT_LT(result.bootstrap_low, 0.02);
  EXPECT_GT(result.bootstrap_high, 0.02);
  EXPECT_NEAR(result.bootstrap_high - result.bootstrap_low, 0.04, 0.01);
  // Swapping the networks flips the sign and keeps the p-value.
  const PairedComparison swapped = ComparePaired(second, first, 2000, 1).value();
  EXPECT_NEAR(swapped.difference, -0.02, 1e-12);
  EXPECT_EQ(swapped.mcnemar_p, result.mcnemar_p);
}

TEST(ComparePairedTest, IdenticalClassifiersAreNotDifferent) {
  std::mt19937 rng(3);
  std::vector<uint8_t> correct(500);
  for (uint8_t& value : correct) value = static_cast<uint8_t>(rng() % 2);
  const PairedComparison result = ComparePaired(correct, correct, 500, 2).value();
  EXPECT_EQ(result.only_first + result.only_second, 0);
  EXPECT_EQ(result.mcnemar_p, 1.0);
  EXPECT_EQ(result.bootstrap_low, 0.0);
  EXPECT_EQ(result.bootstrap_high, 0.0);
}

TEST(ComparePairedTest, RefusesMismatchedOrMalformedInput) {
  EXPECT_EQ(ComparePaired({1, 0}, {1}, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComparePaired({}, {}, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status bad = ComparePaired({1, 2}, {1, 0}, 0, 1).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("image 1"));
  EXPECT_THAT(ComparePaired({1}, {0}, -1, 1).status().message(), HasSubstr("bootstrap_samples"));
}

}  // namespace
}  // namespace apq
