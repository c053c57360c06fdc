#include "server/predictor_training.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"
#include "predictor/mlp_training.h"
#include "predictor/ranking_metrics.h"
#include "server/measurement_samples.h"
#include "server/predictor_artifact.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// A slice of the shipped Fashion-MNIST measurements: the first `fp32` full-precision and the
// first `quantized` quantized records, as a dataset's rows.
std::vector<MeasurementRow> RealRows(int fp32, int quantized) {
  absl::StatusOr<std::vector<oface::MeasurementRecord>> records =
      oface::ReadMeasurementCsv("data/fmnist_mbv2/measurements.csv");
  EXPECT_TRUE(records.ok()) << records.status();
  std::vector<MeasurementRow> rows;
  if (!records.ok()) return rows;
  for (const oface::MeasurementRecord& record : *records) {
    int& left = record.method == oface::kMeasuredFp32 ? fp32 : quantized;
    if (left == 0) continue;
    --left;
    rows.push_back({0, record.config_json, record.accuracy, record.method, record.seconds,
                    record.seed, record.split, 0.0});
  }
  return rows;
}

class PredictorTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<oface::SearchSpace>> space =
        oface::NewMbConvQuantSpace(oface::FashionMnistSpec());
    ASSERT_TRUE(space.ok()) << space.status();
    space_ = *std::move(space);
  }

  PredictorTrainingOptions Options(PredictorTrainingKind kind) const {
    PredictorTrainingOptions options;
    options.kind = kind;
    options.name = "test";
    options.max_epochs = kind == PredictorTrainingKind::kXgboost ? 200 : 40;
    options.learning_rate = kind == PredictorTrainingKind::kXgboost ? 0.05 : 1e-3;
    return options;
  }

  std::unique_ptr<oface::SearchSpace> space_;
};

TEST_F(PredictorTrainingTest, TrainingOnATinyRealDatasetReducesValidationError) {
  absl::StatusOr<MeasurementSamples> samples = SamplesFromMeasurements(
      *space_,
      [] {
        std::vector<oface::MeasurementRecord> records;
        for (const MeasurementRow& row : RealRows(200, 0)) {
          records.push_back({row.config_json, row.accuracy, row.method, row.seconds, row.seed});
        }
        return records;
      }(),
      "slice");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->fp32.size(), 200U);
  predictor::MlpTrainingOptions options;
  options.arch_inputs = space_->arch_feature_size();
  options.max_epochs = 60;
  predictor::MlpTrainingReport report;
  ASSERT_TRUE(predictor::TrainMlp(samples->fp32, options, &report).ok());
  // The start is the mean predictor; real architecture features must beat it on the
  // validation records (shipped data: 0.14 against 0.22 points on all 1,000 records).
  EXPECT_LT(report.validation_rmse, 0.9 * report.initial_validation_rmse)
      << report.validation_rmse << " vs " << report.initial_validation_rmse;
}

TEST_F(PredictorTrainingTest, EachKindTrainsALoadableDeterministicPredictor) {
  const std::vector<MeasurementRow> rows = RealRows(120, 60);
  for (PredictorTrainingKind kind :
       {PredictorTrainingKind::kMlpTransfer, PredictorTrainingKind::kMlpScratch,
        PredictorTrainingKind::kXgboost, PredictorTrainingKind::kEnsemble}) {
    SCOPED_TRACE(static_cast<int>(kind));
    std::vector<std::string> stages;
    PredictorTrainingOptions options = Options(kind);
    options.on_progress = [&stages](const std::string& stage, int, int, double rmse) {
      if (stages.empty() || stages.back() != stage) stages.push_back(stage);
      EXPECT_GE(rmse, 0.0);
      return true;
    };
    absl::StatusOr<TrainedPredictor> trained = TrainPredictorFromRows(*space_, rows, options);
    ASSERT_TRUE(trained.ok()) << trained.status();
    // 20% of the 60 quantized records are held out; the trainer splits the other 48.
    EXPECT_EQ(trained->heldout.count, 12);
    EXPECT_EQ(trained->train_records + trained->validation_records, 48);
    EXPECT_EQ(trained->input_size, space_->feature_size());
    EXPECT_GT(trained->heldout.rmse, 0.0);
    EXPECT_LT(trained->heldout.rmse, 0.05);  // Accuracies lie within 1.5 points of each other.
    std::vector<std::string> expected_stages = {"quantized"};
    if (kind == PredictorTrainingKind::kMlpTransfer) expected_stages = {"fp32", "quantized"};
    if (kind == PredictorTrainingKind::kXgboost) expected_stages = {"xgboost"};
    if (kind == PredictorTrainingKind::kEnsemble) {
      expected_stages = {"fp32", "quantized", "xgboost"};
    }
    EXPECT_EQ(stages, expected_stages);

    absl::StatusOr<LoadedPredictor> loaded =
        LoadPredictorArtifact(trained->kind, trained->artifact, "test", "artifact", 1);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->input_size, space_->feature_size());

    options.on_progress = nullptr;
    absl::StatusOr<TrainedPredictor> again = TrainPredictorFromRows(*space_, rows, options);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->version, trained->version) << "same seed, same predictor";
    EXPECT_EQ(again->heldout.rmse, trained->heldout.rmse);
  }
}

TEST_F(PredictorTrainingTest, HeldOutArchitecturesStayOutOfBothStagesOfTheTransfer) {
  // The shipped quantized records share no architecture with the fp32 ones; here each of the
  // 300 quantized architectures also gets an fp32 record (its bits at the highest choice, as
  // fp32 records are written; labelled with the quantized accuracy: this test checks which
  // records each stage uses, not what it learns).
  std::vector<MeasurementRow> rows = RealRows(1000, 300);
  const std::vector<MeasurementRow> quantized(rows.begin() + 1000, rows.end());
  ASSERT_EQ(quantized.size(), 300u);
  for (const MeasurementRow& row : quantized) {
    oface::Genotype genotype = space_->FromJson(row.config_json).value();
    for (size_t g = 0; g < genotype.size(); ++g) {
      const oface::GeneSpec& gene = space_->genes()[g];
      if (oface::IsBitsGene(gene)) genotype[g] = gene.choices.back();
    }
    MeasurementRow fp32 = row;
    fp32.config_json = space_->ToJson(space_->Canonical(genotype));
    fp32.method = oface::kMeasuredFp32;
    rows.push_back(fp32);
  }
  PredictorTrainingOptions options = Options(PredictorTrainingKind::kMlpTransfer);
  options.max_epochs = 3;
  absl::StatusOr<TrainedPredictor> trained = TrainPredictorFromRows(*space_, rows, options);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->heldout.count, 60);
  EXPECT_GE(trained->heldout_architectures, 55) << "about one architecture per record";
  // Every held-out architecture's fp32 record left the first stage.
  EXPECT_LE(trained->fp32_records_used, 1300 - trained->heldout_architectures);
  EXPECT_GT(trained->fp32_records_used, 1200);
  const std::string metrics = PredictorMetricsJson(*trained, "train-1");
  EXPECT_THAT(metrics, HasSubstr("\"heldout_architectures\":"));
  EXPECT_THAT(metrics, HasSubstr("\"fp32_records_used\":"));
}

TEST_F(PredictorTrainingTest, RefusesTooFewRecordsNamingTheCounts) {
  const absl::Status too_few_quantized =
      CheckRecordsSuffice(*space_, PredictorTrainingKind::kMlpScratch, 100, 7, 0.2);
  EXPECT_EQ(too_few_quantized.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(too_few_quantized.message(), HasSubstr("7 quantized records"));
  EXPECT_TRUE(CheckRecordsSuffice(*space_, PredictorTrainingKind::kMlpScratch, 0, 8, 0.2).ok());
  const absl::Status no_fp32 =
      CheckRecordsSuffice(*space_, PredictorTrainingKind::kMlpTransfer, 3, 100, 0.2);
  EXPECT_EQ(no_fp32.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_fp32.message(), HasSubstr("3 fp32 records"));

  const absl::StatusOr<TrainedPredictor> trained = TrainPredictorFromRows(
      *space_, RealRows(3, 40), Options(PredictorTrainingKind::kMlpTransfer));
  EXPECT_EQ(trained.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(PredictorTrainingTest, BadOptionsAreRefusedNamingTheOption) {
  PredictorTrainingOptions options = Options(PredictorTrainingKind::kMlpScratch);
  options.holdout_fraction = 0.9;
  absl::Status status = TrainPredictorFromRows(*space_, RealRows(0, 40), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("holdout_fraction"));
  options = Options(PredictorTrainingKind::kMlpScratch);
  options.learning_rate = std::nan("");
  status = TrainPredictorFromRows(*space_, RealRows(0, 40), options).status();
  EXPECT_THAT(status.message(), HasSubstr("learning_rate"));
}

TEST_F(PredictorTrainingTest, DivergenceAndCancellationEndTrainingWithTheirCodes) {
  PredictorTrainingOptions options = Options(PredictorTrainingKind::kMlpScratch);
  options.learning_rate = 1e30;
  absl::Status status = TrainPredictorFromRows(*space_, RealRows(0, 60), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(), HasSubstr("diverged"));

  options = Options(PredictorTrainingKind::kMlpTransfer);
  int calls = 0;
  options.on_progress = [&calls](const std::string&, int epoch, int, double) {
    ++calls;
    return epoch < 3;
  };
  status = TrainPredictorFromRows(*space_, RealRows(60, 60), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_EQ(calls, 3);
}

TEST(PredictorTrainingWithoutBitsTest, TrainsOnFp32RecordsOfOnceForAllsSpace) {
  // A space without bitwidths (ofa_mbv3): the fp32 records are the target, every kind works on
  // the architecture encoding, and a quantized record has nowhere to go.
  const std::unique_ptr<oface::SearchSpace> space = oface::NewOfaMbv3Space();
  oface::Rng rng(7);
  std::vector<MeasurementRow> rows;
  std::vector<int32_t> features;
  for (int i = 0; i < 120; ++i) {
    const oface::Genotype genotype = space->Sample(rng);
    features.clear();
    space->ActiveFeatures(genotype, &features);
    // A learnable accuracy: more active features (deeper networks) are better.
    const double accuracy = 0.70 + 0.002 * static_cast<double>(features.size());
    rows.push_back({0, space->ToJson(genotype), accuracy, oface::kMeasuredFp32, 0.0, 7, "", 0.0});
  }
  for (PredictorTrainingKind kind :
       {PredictorTrainingKind::kMlpTransfer, PredictorTrainingKind::kXgboost,
        PredictorTrainingKind::kEnsemble}) {
    SCOPED_TRACE(static_cast<int>(kind));
    PredictorTrainingOptions options;
    options.kind = kind;
    options.name = "ofa";
    options.max_epochs = kind == PredictorTrainingKind::kXgboost ? 200 : 60;
    options.learning_rate = kind == PredictorTrainingKind::kXgboost ? 0.05 : 1e-3;
    absl::StatusOr<TrainedPredictor> trained = TrainPredictorFromRows(*space, rows, options);
    ASSERT_TRUE(trained.ok()) << trained.status();
    EXPECT_EQ(trained->input_size, space->feature_size());
    EXPECT_EQ(trained->heldout.count, 24);
    // Chance is 0; the held-out accuracies tie often (they depend on depth alone), which caps
    // tau-b well below 1 (measured here: 0.34-0.49).
    EXPECT_GT(trained->heldout.kendall_tau, 0.25);
  }
  EXPECT_EQ(CheckRecordsSuffice(*space, PredictorTrainingKind::kMlpTransfer, 5, 0, 0.2).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace apq::server
