#include "predictor/xgb_predictor.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "predictor/ranking_metrics.h"
#include "predictor/training_testing.h"

namespace apq::predictor {
namespace {

using ::testing::HasSubstr;

XgbTrainingOptions SmallOptions() {
  XgbTrainingOptions options;
  options.input_size = 18;
  options.max_rounds = 400;
  options.patience = 30;
  options.max_depth = 3;
  options.learning_rate = 0.1;
  return options;
}

FeatureBatch BatchOf(const std::vector<TrainingSample>& samples, const std::vector<int>& rows) {
  FeatureBatch batch;
  for (const int row : rows) {
    batch.mutable_indices()->insert(batch.mutable_indices()->end(), samples[row].features.begin(),
                                    samples[row].features.end());
    batch.EndSample();
  }
  return batch;
}

TEST(XgbPredictorTest, LearnsAndRoundTripsThroughItsSerializedModel) {
  const std::vector<TrainingSample> samples = SyntheticSamples(400, /*with_bits=*/true, 1);
  XgbTrainingReport report;
  absl::StatusOr<std::unique_ptr<XgbPredictor>> trained =
      XgbPredictor::Train(samples, SmallOptions(), &report);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(report.validation_samples, 80);
  EXPECT_GT(report.best_rounds, 0);
  EXPECT_LE(report.best_rounds, report.rounds_run);
  // Targets spread about 0.03 with noise 0.002.
  EXPECT_LT(report.validation_rmse, 0.01);

  const FeatureBatch batch = BatchOf(samples, report.validation_indices);
  std::vector<float> predicted;
  ASSERT_TRUE((*trained)->Predict(batch, &predicted).ok());
  std::vector<double> measured;
  for (const int row : report.validation_indices) measured.push_back(samples[row].accuracy);
  const RankingMetrics metrics =
      ComputeRankingMetrics(std::vector<double>(predicted.begin(), predicted.end()), measured)
          .value();
  EXPECT_NEAR(metrics.rmse, report.validation_rmse, 1e-6);
  EXPECT_GT(metrics.kendall_tau, 0.6);

  absl::StatusOr<std::unique_ptr<XgbPredictor>> loaded =
      XgbPredictor::Deserialize((*trained)->Serialize(), 18);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::vector<float> reloaded;
  ASSERT_TRUE((*loaded)->Predict(batch, &reloaded).ok());
  EXPECT_EQ(reloaded, predicted);
  std::unique_ptr<AccuracyPredictor> clone = (*trained)->Clone();
  ASSERT_NE(clone, nullptr);
  std::vector<float> cloned;
  ASSERT_TRUE(clone->Predict(batch, &cloned).ok());
  EXPECT_EQ(cloned, predicted);
}

TEST(XgbPredictorTest, RejectsBadInputsNamingThem) {
  std::vector<TrainingSample> samples = SyntheticSamples(20, true, 2);
  samples[7].accuracy = -0.5;
  absl::Status status = XgbPredictor::Train(samples, SmallOptions(), nullptr).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("record 7: accuracy"));
  XgbTrainingOptions options = SmallOptions();
  options.max_depth = 0;
  EXPECT_EQ(XgbPredictor::Train(SyntheticSamples(20, true, 2), options, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(XgbPredictor::Deserialize("not a model", 18).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::unique_ptr<XgbPredictor> trained =
      XgbPredictor::Train(SyntheticSamples(40, true, 3), SmallOptions(), nullptr).value();
  FeatureBatch batch;
  batch.mutable_indices()->push_back(18);
  batch.EndSample();
  std::vector<float> out;
  EXPECT_EQ(trained->Predict(batch, &out).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::predictor
