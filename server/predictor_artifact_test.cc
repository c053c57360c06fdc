#include "server/predictor_artifact.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "predictor/mlp_testing.h"
#include "predictor/training_testing.h"

namespace apq::server {
namespace {

std::vector<float> PredictOrDie(predictor::AccuracyPredictor& model,
                                const predictor::FeatureBatch& batch) {
  std::vector<float> out;
  EXPECT_TRUE(model.Predict(batch, &out).ok());
  return out;
}

TEST(PredictorArtifactTest, MlpRoundTrip) {
  std::unique_ptr<predictor::MlpPredictor> mlp =
      predictor::MlpPredictor::Create(predictor::mlp_testing::RandomApqWeights(5), {}).value();
  const std::string artifact = MlpArtifact(*mlp).value();
  absl::StatusOr<LoadedPredictor> loaded =
      LoadPredictorArtifact(kMlpRawF32Kind, artifact, "apq_predictor", "predictor v1", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->input_size, mlp->input_size());
  std::mt19937 rng(1);
  const predictor::FeatureBatch batch = predictor::mlp_testing::RandomApqBatch(20, &rng);
  EXPECT_EQ(PredictOrDie(*loaded->predictor, batch), PredictOrDie(*mlp, batch));

  for (const std::string& broken :
       {std::string("garbage"), artifact.substr(0, artifact.size() - 4), std::string("99\n{}")}) {
    const absl::Status status =
        LoadPredictorArtifact(kMlpRawF32Kind, broken, "apq_predictor", "predictor v1", 1).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_NE(status.message().find("predictor v1"), std::string::npos) << status;
  }
  EXPECT_EQ(LoadPredictorArtifact("onnx", artifact, "x", "predictor v1", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PredictorArtifactTest, XgboostRoundTrip) {
  predictor::XgbTrainingOptions options;
  options.input_size = 18;
  options.max_rounds = 50;
  std::unique_ptr<predictor::XgbPredictor> xgb =
      predictor::XgbPredictor::Train(predictor::SyntheticSamples(100, true, 1), options, nullptr)
          .value();
  absl::StatusOr<LoadedPredictor> loaded =
      LoadPredictorArtifact(kXgboostJsonKind, XgbArtifact(*xgb), "xgb", "predictor v2", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->input_size, 18);
  predictor::FeatureBatch batch;
  *batch.mutable_indices() = {0, 5, 9, 12, 16};
  batch.EndSample();
  EXPECT_EQ(PredictOrDie(*loaded->predictor, batch), PredictOrDie(*xgb, batch));
  EXPECT_EQ(LoadPredictorArtifact(kXgboostJsonKind, "18\nnot json", "xgb", "predictor v2", 1)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(PredictorArtifactTest, MeanEnsembleRoundTrip) {
  predictor::XgbTrainingOptions options;
  options.input_size = 18;
  options.max_rounds = 40;
  std::unique_ptr<predictor::XgbPredictor> first =
      predictor::XgbPredictor::Train(predictor::SyntheticSamples(100, true, 1), options, nullptr)
          .value();
  options.seed = 2;
  std::unique_ptr<predictor::XgbPredictor> second =
      predictor::XgbPredictor::Train(predictor::SyntheticSamples(100, true, 2), options, nullptr)
          .value();
  const std::string artifact = MeanEnsembleArtifact(
      {{kXgboostJsonKind, XgbArtifact(*first)}, {kXgboostJsonKind, XgbArtifact(*second)}});
  absl::StatusOr<LoadedPredictor> loaded =
      LoadPredictorArtifact(kMeanEnsembleKind, artifact, "ensemble", "predictor v3", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->input_size, 18);
  predictor::FeatureBatch batch;
  *batch.mutable_indices() = {1, 6, 10, 13, 17};
  batch.EndSample();
  const float expected = 0.5f * (PredictOrDie(*first, batch)[0] + PredictOrDie(*second, batch)[0]);
  EXPECT_NEAR(PredictOrDie(*loaded->predictor, batch)[0], expected, 1e-6);

  for (const std::string& broken :
       {artifact.substr(0, artifact.size() - 10), artifact + "x",
        std::string("1\nxgboost-json\n0\n"), std::string("2\nonnx\n3\nabc"),
        MeanEnsembleArtifact(
            {{kMeanEnsembleKind, artifact}, {kXgboostJsonKind, XgbArtifact(*first)}})}) {
    const absl::Status status =
        LoadPredictorArtifact(kMeanEnsembleKind, broken, "ensemble", "predictor v3", 1).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_NE(status.message().find("predictor v3"), std::string::npos) << status;
  }
}

// The shipped file's header round-trips any artifact bytes (binary included); a header that
// is not the format is DATA_LOSS naming the file and the line.
TEST(PredictorArtifactTest, ShippedFileRoundTripAndBadHeaders) {
  const std::string bytes = std::string("3\nab\0c\n\xff", 8);
  const std::string encoded = EncodeShippedArtifact({kXgboostJsonKind, "space-xgb-1", bytes});
  absl::StatusOr<ShippedArtifact> decoded = DecodeShippedArtifact(encoded, "qa.artifact");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->kind, kXgboostJsonKind);
  EXPECT_EQ(decoded->version, "space-xgb-1");
  EXPECT_EQ(decoded->artifact, bytes);

  const struct {
    std::string bytes, mention;
  } broken[] = {
      {"", "line 1"},
      {"apq-predictor-artifact 2\nkind a\nversion b\n", "line 1"},
      {"apq-predictor-artifact 1 \nkind a\nversion b\n", "line 1"},
      {"apq-predictor-artifact 1\nkinda\nversion b\n", "line 2"},
      {"apq-predictor-artifact 1\nkind \nversion b\n", "line 2"},
      {"apq-predictor-artifact 1\nkind a\nversion b", "line 3"},
      {"apq-predictor-artifact 1\nkind a\nversion " + std::string(300, 'v') + "\n", "line 3"},
  };
  for (const auto& test_case : broken) {
    const absl::Status status = DecodeShippedArtifact(test_case.bytes, "qa.artifact").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << test_case.bytes;
    EXPECT_NE(status.message().find("qa.artifact"), std::string::npos) << status;
    EXPECT_NE(status.message().find(test_case.mention), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace apq::server
