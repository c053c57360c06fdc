#include "search/pareto.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::search {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ParetoFrontTest, EmptyInputHasEmptyFront) { EXPECT_THAT(ParetoFront({}), IsEmpty()); }

TEST(ParetoFrontTest, KeepsOnlyPointsThatBeatEveryCheaperOne) {
  const std::vector<FrontPoint> points = {
      {3.0, 0.70}, {1.0, 0.60}, {2.0, 0.55}, {4.0, 0.80}, {2.5, 0.65},
  };
  // By cost: 1.0/0.60 (front), 2.0/0.55 (dominated), 2.5/0.65, 3.0/0.70, 4.0/0.80.
  EXPECT_THAT(ParetoFront(points), ElementsAre(1, 4, 0, 3));
}

TEST(ParetoFrontTest, EqualCostTakesTheMostAccurate) {
  const std::vector<FrontPoint> points = {{1.0, 0.5}, {1.0, 0.7}, {1.0, 0.6}};
  EXPECT_THAT(ParetoFront(points), ElementsAre(1));
}

TEST(ParetoFrontTest, DuplicatePointsKeepTheFirstStored) {
  const std::vector<FrontPoint> points = {{2.0, 0.9}, {1.0, 0.5}, {2.0, 0.9}, {1.0, 0.5}};
  EXPECT_THAT(ParetoFront(points), ElementsAre(1, 0));
}

TEST(ParetoFrontTest, EqualAccuracyAtHigherCostIsDominated) {
  const std::vector<FrontPoint> points = {{1.0, 0.5}, {2.0, 0.5}};
  EXPECT_THAT(ParetoFront(points), ElementsAre(0));
}

TEST(ParetoFrontTest, SkipsUnpricedAndNanPoints) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<FrontPoint> points = {{inf, 0.99}, {nan, 0.98}, {1.0, nan}, {3.0, 0.4}};
  EXPECT_THAT(ParetoFront(points), ElementsAre(3));
}

TEST(ParetoFrontTest, NoFrontPointIsDominated) {
  std::vector<FrontPoint> points;
  for (int i = 0; i < 200; ++i) {
    points.push_back({static_cast<double>((i * 37) % 23), static_cast<double>((i * 53) % 31)});
  }
  const std::vector<size_t> front = ParetoFront(points);
  ASSERT_FALSE(front.empty());
  for (const size_t f : front) {
    for (const FrontPoint& other : points) {
      const bool dominates = other.cost <= points[f].cost && other.accuracy >= points[f].accuracy &&
                             (other.cost < points[f].cost || other.accuracy > points[f].accuracy);
      EXPECT_FALSE(dominates) << "front point " << f << " is dominated";
    }
  }
  for (size_t i = 1; i < front.size(); ++i) {
    EXPECT_LT(points[front[i - 1]].cost, points[front[i]].cost);
    EXPECT_LT(points[front[i - 1]].accuracy, points[front[i]].accuracy);
  }
}

TEST(ReplacesBestTest, OnlyStrictlyHigherAccuracyReplaces) {
  EXPECT_TRUE(ReplacesBest(0.1, std::nullopt));
  EXPECT_TRUE(ReplacesBest(0.6, 0.5));
  EXPECT_FALSE(ReplacesBest(0.5, 0.5));
  EXPECT_FALSE(ReplacesBest(0.4, 0.5));
}

TEST(VerifiedBestTest, TheHighestMeasuredWinsThenTheHigherPredictedThenTheEarlierId) {
  EXPECT_FALSE(VerifiedBest({}).has_value());
  EXPECT_EQ(VerifiedBest({{0.8, 0.9, 3}, {0.85, 0.7, 4}, {0.84, 0.95, 1}}), 1u);
  // Equal measured: the higher predicted.
  EXPECT_EQ(VerifiedBest({{0.85, 0.7, 4}, {0.85, 0.75, 9}, {0.5, 0.99, 1}}), 1u);
  // Equal measured and predicted: the earlier id, wherever it is listed.
  EXPECT_EQ(VerifiedBest({{0.85, 0.7, 9}, {0.85, 0.7, 4}, {0.85, 0.7, 6}}), 1u);
  EXPECT_EQ(VerifiedBest({{0.6, 0.7, 2}}), 0u);
}

}  // namespace
}  // namespace apq::search
