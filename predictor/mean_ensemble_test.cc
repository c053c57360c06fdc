#include "predictor/mean_ensemble.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "predictor/ranking_metrics.h"
#include "predictor/training_testing.h"
#include "predictor/xgb_predictor.h"

namespace apq::predictor {
namespace {

std::unique_ptr<XgbPredictor> TrainedXgb(uint64_t seed, int input_size) {
  XgbTrainingOptions options;
  options.input_size = input_size;
  options.seed = seed;
  options.max_rounds = 30;
  absl::StatusOr<std::unique_ptr<XgbPredictor>> trained =
      XgbPredictor::Train(SyntheticSamples(80, false, seed), options, nullptr);
  EXPECT_TRUE(trained.ok()) << trained.status();
  return trained.ok() ? *std::move(trained) : nullptr;
}

TEST(MeanEnsembleTest, PredictsTheMeanOfItsMembersAndClonesAlike) {
  const std::vector<TrainingSample> samples = SyntheticSamples(20, false, 9);
  const int input_size = 12;
  std::unique_ptr<XgbPredictor> first = TrainedXgb(1, input_size);
  std::unique_ptr<XgbPredictor> second = TrainedXgb(2, input_size);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  absl::StatusOr<std::vector<double>> a = PredictSamples(*first, samples);
  absl::StatusOr<std::vector<double>> b = PredictSamples(*second, samples);
  ASSERT_TRUE(a.ok() && b.ok());

  std::vector<std::unique_ptr<AccuracyPredictor>> members;
  members.push_back(std::move(first));
  members.push_back(std::move(second));
  absl::StatusOr<std::unique_ptr<MeanEnsemble>> ensemble = MeanEnsemble::Create(std::move(members));
  ASSERT_TRUE(ensemble.ok()) << ensemble.status();
  absl::StatusOr<std::vector<double>> mean = PredictSamples(**ensemble, samples);
  ASSERT_TRUE(mean.ok());
  std::unique_ptr<AccuracyPredictor> clone = (*ensemble)->Clone();
  absl::StatusOr<std::vector<double>> cloned = PredictSamples(*clone, samples);
  ASSERT_TRUE(cloned.ok());
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_NEAR((*mean)[i], 0.5 * ((*a)[i] + (*b)[i]), 1e-6) << i;
    EXPECT_EQ((*cloned)[i], (*mean)[i]) << i;
  }
}

TEST(MeanEnsembleTest, ASpreadPenaltyScoresTheMeanMinusKTimesTheMembersSpread) {
  const std::vector<TrainingSample> samples = SyntheticSamples(20, false, 9);
  std::unique_ptr<XgbPredictor> first = TrainedXgb(1, 12);
  std::unique_ptr<XgbPredictor> second = TrainedXgb(2, 12);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const std::vector<double> a = PredictSamples(*first, samples).value();
  const std::vector<double> b = PredictSamples(*second, samples).value();
  std::vector<std::unique_ptr<AccuracyPredictor>> members;
  members.push_back(std::move(first));
  members.push_back(std::move(second));
  std::unique_ptr<MeanEnsemble> ensemble = MeanEnsemble::Create(std::move(members)).value();
  int disagreements = 0;
  for (const double k : {1.0, 0.5}) {
    ensemble->set_spread_penalty(k);
    const std::vector<double> scored = PredictSamples(*ensemble, samples).value();
    const std::vector<double> cloned = PredictSamples(*ensemble->Clone(), samples).value();
    for (size_t i = 0; i < samples.size(); ++i) {
      // Two members: the spread is half their difference; k = 1 gives the lower of the two.
      const double mean = 0.5 * (a[i] + b[i]);
      EXPECT_NEAR(scored[i], mean - k * 0.5 * std::fabs(a[i] - b[i]), 1e-6) << i;
      if (k == 1.0) {
        EXPECT_NEAR(scored[i], std::min(a[i], b[i]), 1e-6) << i;
      }
      EXPECT_EQ(cloned[i], scored[i]) << i;
      disagreements += std::fabs(a[i] - b[i]) > 1e-4;
    }
  }
  EXPECT_GT(disagreements, 0) << "the members must disagree for the penalty to show";
}

TEST(MeanEnsembleTest, RefusesMismatchedOrTooFewMembers) {
  std::vector<std::unique_ptr<AccuracyPredictor>> one;
  one.push_back(TrainedXgb(1, 12));
  EXPECT_EQ(MeanEnsemble::Create(std::move(one)).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<std::unique_ptr<AccuracyPredictor>> mismatched;
  mismatched.push_back(TrainedXgb(1, 12));
  mismatched.push_back(TrainedXgb(2, 12 + 5));
  EXPECT_EQ(MeanEnsemble::Create(std::move(mismatched)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::predictor
