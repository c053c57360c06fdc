#include "predictor/mlp_training.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "predictor/ranking_metrics.h"
#include "predictor/training_testing.h"

namespace apq::predictor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RankingMetricsTest, PerfectReversedAndTiedRankings) {
  const std::vector<double> measured = {0.1, 0.2, 0.3, 0.4};
  RankingMetrics same = ComputeRankingMetrics({1, 2, 3, 4}, measured).value();
  EXPECT_DOUBLE_EQ(same.kendall_tau, 1.0);
  EXPECT_DOUBLE_EQ(same.pairwise_accuracy, 1.0);
  EXPECT_NEAR(same.rmse, std::sqrt((0.81 + 3.24 + 7.29 + 12.96) / 4), 1e-12);
  RankingMetrics reversed = ComputeRankingMetrics({4, 3, 2, 1}, measured).value();
  EXPECT_DOUBLE_EQ(reversed.kendall_tau, -1.0);
  EXPECT_DOUBLE_EQ(reversed.pairwise_accuracy, 0.0);
  // One predicted tie (pair 0-1) among 6 pairs: 5 concordant; tau-b = 5 / sqrt(5 * 6).
  RankingMetrics tied = ComputeRankingMetrics({1, 1, 3, 4}, measured).value();
  EXPECT_NEAR(tied.kendall_tau, 5.0 / std::sqrt(30.0), 1e-12);
  EXPECT_NEAR(tied.pairwise_accuracy, 5.5 / 6.0, 1e-12);
  EXPECT_EQ(ComputeRankingMetrics({1}, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeRankingMetrics({1, 2}, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeRankingMetrics({1, NAN}, {1, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidationSplitTest, DeterministicSizedAndSorted) {
  const std::vector<int> split = ValidationSplit(100, 0.2, 7);
  EXPECT_EQ(split.size(), 20u);
  EXPECT_TRUE(std::is_sorted(split.begin(), split.end()));
  EXPECT_EQ(split, ValidationSplit(100, 0.2, 7));
  EXPECT_NE(split, ValidationSplit(100, 0.2, 8));
  EXPECT_EQ(ValidationSplit(4, 0.01, 1).size(), 1u);
  EXPECT_EQ(ValidationSplit(4, 0.99, 1).size(), 3u);
}

MlpTrainingOptions SmallOptions(bool with_bits) {
  MlpTrainingOptions options;
  options.arch_inputs = 12;
  options.bit_inputs = with_bits ? 6 : 0;
  options.hidden = {32, 32};
  options.max_epochs = 200;
  options.patience = 20;
  options.batch_size = 32;
  return options;
}

TEST(GroupedValidationSplitTest, NeverSeparatesAGroupAndReducesToTheRecordSplit) {
  // 40 architectures, each at 1 to 4 records (bit policies, fp32 and quantized).
  std::vector<std::string> groups;
  for (int arch = 0; arch < 40; ++arch) {
    for (int r = 0; r <= arch % 4; ++r) groups.push_back(absl::StrCat("arch", arch));
  }
  for (const uint64_t seed : {1, 2, 3}) {
    const std::vector<int> held = GroupedValidationSplit(groups, 0.2, seed);
    EXPECT_EQ(held, GroupedValidationSplit(groups, 0.2, seed)) << "deterministic";
    EXPECT_TRUE(std::is_sorted(held.begin(), held.end()));
    std::set<std::string> held_groups;
    for (const int i : held) held_groups.insert(groups[i]);
    for (size_t i = 0; i < groups.size(); ++i) {
      const bool is_held = std::binary_search(held.begin(), held.end(), static_cast<int>(i));
      EXPECT_EQ(is_held, held_groups.count(groups[i]) > 0) << "group " << groups[i] << " split";
    }
    const double share = static_cast<double>(held.size()) / groups.size();
    EXPECT_GE(share, 0.2 - 1e-9);
    EXPECT_LT(share, 0.2 + 4.0 / groups.size()) << "at most one group past the target";
  }
  std::vector<std::string> singletons;
  for (int i = 0; i < 57; ++i) singletons.push_back(absl::StrCat(i));
  EXPECT_EQ(GroupedValidationSplit(singletons, 0.25, 9), ValidationSplit(57, 0.25, 9));
  // Two groups: one is held and one trains, whatever the fraction.
  const std::vector<int> two = GroupedValidationSplit({"a", "a", "b"}, 0.9, 1);
  EXPECT_TRUE(two == std::vector<int>({0, 1}) || two == std::vector<int>({2}));
}

TEST(ArchitectureKeyTest, IgnoresBitFeatures) {
  const TrainingSample quantized{{1, 5, 12, 20}, 0.5};
  const TrainingSample full_precision{{1, 5, 12}, 0.6};
  EXPECT_EQ(ArchitectureKey(quantized, 15), ArchitectureKey(full_precision, 15));
  EXPECT_NE(ArchitectureKey(quantized, 15), ArchitectureKey({{1, 6, 12}, 0.5}, 15));
}

TEST(TrainMlpTest, LearnsAnAdditiveTaskAndKeepsTheBestEpoch) {
  const std::vector<TrainingSample> samples = SyntheticSamples(400, /*with_bits=*/false, 1);
  MlpTrainingReport report;
  absl::StatusOr<MlpWeights> weights = TrainMlp(samples, SmallOptions(false), &report);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(report.train_samples, 320);
  EXPECT_EQ(report.validation_samples, 80);
  // The spread of the targets is about 0.02; the mean predictor's RMSE is about that.
  EXPECT_GT(report.initial_validation_rmse, 0.01);
  EXPECT_LT(report.validation_rmse, 0.5 * report.initial_validation_rmse);
  EXPECT_GT(report.best_epoch, 0);
  EXPECT_LE(report.best_epoch, report.epochs_run);
  ASSERT_EQ(weights->layers.size(), 3u);
  EXPECT_FALSE(weights->bits.has_value());

  // The weights predict what the report says through the product's predictor.
  std::unique_ptr<MlpPredictor> predictor = MlpPredictor::Create(*weights, {}).value();
  FeatureBatch batch;
  std::vector<double> measured;
  for (const int index : report.validation_indices) {
    batch.mutable_indices()->insert(batch.mutable_indices()->end(), samples[index].features.begin(),
                                    samples[index].features.end());
    batch.EndSample();
    measured.push_back(samples[index].accuracy);
  }
  std::vector<float> predicted;
  ASSERT_TRUE(predictor->Predict(batch, &predicted).ok());
  const RankingMetrics metrics =
      ComputeRankingMetrics(std::vector<double>(predicted.begin(), predicted.end()), measured)
          .value();
  EXPECT_NEAR(metrics.rmse, report.validation_rmse, 1e-5);
  EXPECT_GT(metrics.kendall_tau, 0.6);
}

TEST(TrainMlpTest, TransferCopiesExactlyTheSharedLayers) {
  const MlpWeights fp32 =
      TrainMlp(SyntheticSamples(200, false, 2), SmallOptions(false), nullptr).value();
  MlpTrainingOptions options = SmallOptions(true);
  options.init = fp32;
  options.max_epochs = 0;
  MlpTrainingReport report;
  const MlpWeights start = TrainMlp(SyntheticSamples(60, true, 3), options, &report).value();
  EXPECT_THAT(report.transferred_layers, ElementsAre("0", "2", "4"));
  ASSERT_EQ(start.layers.size(), fp32.layers.size());
  for (size_t i = 0; i + 1 < fp32.layers.size(); ++i) {
    EXPECT_EQ(start.layers[i].weight, fp32.layers[i].weight) << i;
    EXPECT_EQ(start.layers[i].bias, fp32.layers[i].bias) << i;
  }
  // The output layer went through the standardisation and back: equal up to rounding.
  const MlpWeights::Linear& output = start.layers.back();
  for (size_t j = 0; j < output.weight.size(); ++j) {
    EXPECT_NEAR(output.weight[j], fp32.layers.back().weight[j], 1e-6) << j;
  }
  EXPECT_NEAR(output.bias[0], fp32.layers.back().bias[0], 1e-6);
  // The new branch adds nothing yet: the start is the fp32 predictor.
  ASSERT_TRUE(start.bits.has_value());
  EXPECT_EQ(start.bits->in, 6);
  EXPECT_EQ(start.bits->out, 32);
  EXPECT_EQ(start.bits->weight, std::vector<float>(size_t{6} * 32, 0.0f));

  // Fine-tuning from the transfer beats the transferred start on quantized records.
  options.max_epochs = 200;
  absl::StatusOr<MlpWeights> tuned = TrainMlp(SyntheticSamples(60, true, 3), options, &report);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_LT(report.validation_rmse, report.initial_validation_rmse);
}

TEST(TrainMlpByTransferTest, IsTheTwoStageRecipeAndReportsEachStage) {
  const std::vector<TrainingSample> fp32 = SyntheticSamples(200, false, 2);
  const std::vector<TrainingSample> quantized = SyntheticSamples(60, true, 3);
  MlpTrainingOptions options = SmallOptions(true);
  options.max_epochs = 50;
  MlpTrainingOptions by_hand = options;
  by_hand.bit_inputs = 0;
  const MlpWeights fp32_weights = TrainMlp(fp32, by_hand, nullptr).value();
  MlpTrainingOptions second = options;
  second.init = fp32_weights;
  const MlpWeights expected = TrainMlp(quantized, second, nullptr).value();

  int fp32_epochs = 0;
  MlpTrainingReport fp32_report;
  MlpTrainingReport quantized_report;
  const MlpWeights transferred = TrainMlpByTransfer(
                                     fp32, quantized, options,
                                     [&](int, double, double) {
                                       ++fp32_epochs;
                                       return true;
                                     },
                                     &fp32_report, &quantized_report)
                                     .value();
  EXPECT_EQ(fp32_epochs, fp32_report.epochs_run);
  EXPECT_GT(fp32_epochs, 0);
  EXPECT_EQ(transferred.name, options.name);
  EXPECT_EQ(transferred.bits->weight, expected.bits->weight);
  for (size_t i = 0; i < expected.layers.size(); ++i) {
    EXPECT_EQ(transferred.layers[i].weight, expected.layers[i].weight) << i;
  }
  EXPECT_THAT(quantized_report.transferred_layers, ElementsAre("0", "2", "4"));

  options.bit_inputs = 0;
  EXPECT_EQ(TrainMlpByTransfer(fp32, quantized, options, nullptr, nullptr, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainMlpTest, BadRecordsAndOptionsAreNamed) {
  std::vector<TrainingSample> samples = SyntheticSamples(10, false, 4);
  const auto expect_invalid = [](const absl::Status& status, const std::string& message) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(message));
  };
  samples[3].accuracy = NAN;
  expect_invalid(TrainMlp(samples, SmallOptions(false), nullptr).status(), "record 3: accuracy");
  samples[3].accuracy = 1.5;
  expect_invalid(TrainMlp(samples, SmallOptions(false), nullptr).status(), "record 3: accuracy");
  samples[3].accuracy = 0.5;
  samples[5].features.push_back(12);  // Beyond the 12 architecture inputs, no branch.
  expect_invalid(TrainMlp(samples, SmallOptions(false), nullptr).status(),
                 "record 5: feature 12 is outside [0, 12)");
  samples[5].features.back() = samples[5].features.front();
  expect_invalid(
      TrainMlp(samples, SmallOptions(false), nullptr).status(),
      "record 5: feature " + std::to_string(samples[5].features.front()) + " is listed twice");
  expect_invalid(TrainMlp({}, SmallOptions(false), nullptr).status(), "too few");
  MlpTrainingOptions options = SmallOptions(false);
  options.validation_fraction = 1.0;
  expect_invalid(TrainMlp(SyntheticSamples(10, false, 4), options, nullptr).status(),
                 "validation_fraction");
  options = SmallOptions(false);
  options.init = MlpWeights{"other", {{"x", 3, 1, {0, 0, 0}, {0}}}, std::nullopt};
  expect_invalid(TrainMlp(SyntheticSamples(10, false, 4), options, nullptr).status(), "init");
}

TEST(TrainMlpTest, DivergenceAbortsWithAReason) {
  MlpTrainingOptions options = SmallOptions(false);
  options.learning_rate = 1e30;
  const absl::Status status = TrainMlp(SyntheticSamples(100, false, 5), options, nullptr).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(), HasSubstr("diverged"));
}

}  // namespace
}  // namespace apq::predictor
