#include "server/catalog.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"
#include "proto/apq/v1/apq.pb.h"
#include "search/engine_registry.h"
#include "server/job_manager_testing.h"
#include "server/predictor_artifact.h"
#include "server/search_request.h"
#include "server/store/sqlite_store.h"

namespace apq::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

struct Fixture {
  std::unique_ptr<Store> store;
  std::unique_ptr<Catalog> catalog;
};

Fixture Open(const std::string& name) {
  Fixture fixture;
  fixture.store = SqliteStore::Open({TempPath(name)}).value();
  Catalog::Options options;
  options.data_dir = "data";  // The runfiles' copy of the embedded defaults.
  options.predictor_threads = 1;
  absl::StatusOr<std::unique_ptr<Catalog>> catalog = Catalog::Create(options, *fixture.store);
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  if (catalog.ok()) fixture.catalog = *std::move(catalog);
  return fixture;
}

// The predictors of a store, counting the reads that return artifacts.
class ArtifactCountingPredictorStore final : public PredictorStore {
 public:
  explicit ArtifactCountingPredictorStore(PredictorStore& base) : base_(base) {}

  int artifact_reads() const { return artifact_reads_.load(); }

  absl::Status AddPredictor(const PredictorRecord& predictor) override {
    return base_.AddPredictor(predictor);
  }
  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override {
    return base_.ListPredictors(space);
  }
  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override {
    ++artifact_reads_;
    return base_.GetPredictor(space, version);
  }
  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override {
    ++artifact_reads_;
    return base_.GetDefaultPredictor(space);
  }
  absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) override {
    return base_.GetDefaultPredictorVersion(space);
  }
  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override {
    return base_.SetDefaultPredictor(space, version);
  }
  absl::Status ClearDefaultPredictor(const std::string& space) override {
    return base_.ClearDefaultPredictor(space);
  }

 private:
  PredictorStore& base_;
  std::atomic<int> artifact_reads_{0};
};

// `base` with its predictor store counting artifact reads.
class ArtifactCountingStore final : public Store {
 public:
  explicit ArtifactCountingStore(std::unique_ptr<Store> base)
      : base_(std::move(base)), predictors_(base_->predictors()) {}

  int artifact_reads() const { return predictors_.artifact_reads(); }

  JobStore& jobs() override { return base_->jobs(); }
  DeviceStore& devices() override { return base_->devices(); }
  DatasetStore& datasets() override { return base_->datasets(); }
  PredictorStore& predictors() override { return predictors_; }
  TrainingJobStore& training_jobs() override { return base_->training_jobs(); }
  TokenStore& tokens() override { return base_->tokens(); }
  ArtifactStore& artifacts() override { return base_->artifacts(); }
  MeasurementRunStore& measurement_runs() override { return base_->measurement_runs(); }

 private:
  std::unique_ptr<Store> base_;
  ArtifactCountingPredictorStore predictors_;
};

TEST(CatalogTest, ImportsTheShippedMeasurementsOnceAndRegistersLocalCpu) {
  Fixture fixture = Open("import.db");
  ASSERT_NE(fixture.catalog, nullptr);
  const absl::StatusOr<DatasetRecord> dataset =
      fixture.store->datasets().GetDataset(ShippedDatasetName("fmnist_mbv2"));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->space, "fmnist_mbv2");
  EXPECT_GE(dataset->records, 1600);  // At least 1,000 fp32 and 600 quantized records.
  EXPECT_GE(fixture.store->datasets().ListMeasurements(dataset->name, std::string("fp32"))->size(),
            1000u);
  const Catalog::Coverage coverage = fixture.catalog->SpaceCoverage("local-cpu", 0).value();
  // local-cpu runs W8A8 or float: of the Fashion-MNIST spaces it needs only the W8A8 keys
  // (and fmnist_int8float's float keys), which it measured.
  EXPECT_THAT(coverage.covered, ElementsAre("fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"));
  EXPECT_THAT(coverage.modelled, IsEmpty());
  const hwmodels::PrecisionSupport precisions = fixture.catalog->Precisions("local-cpu", 0).value();
  EXPECT_TRUE(precisions.declared);
  EXPECT_EQ(precisions.pairs, (std::vector<hwmodels::BitPair>{{8, 8}}));
  EXPECT_TRUE(precisions.float_layers);
  EXPECT_EQ(precisions.int8_engine, "qnnpack");
  const hwmodels::PrecisionSupport bitfusion = fixture.catalog->Precisions("bitfusion", 0).value();
  EXPECT_EQ(bitfusion.pairs.size(), 9);                   // W{4,6,8}A{4,6,8}, priced.
  EXPECT_EQ(bitfusion.modelled_pairs.size(), 7 * 7 - 9);  // The other 2-8 bit pairs.
  EXPECT_FALSE(bitfusion.float_layers);
  EXPECT_TRUE(fixture.catalog->Precisions("note10", 0)->float_layers);
  EXPECT_EQ(fixture.catalog->Precisions("nowhere", 0).status().code(), absl::StatusCode::kNotFound);
  // A second start imports nothing twice.
  fixture.catalog.reset();
  Catalog::Options options;
  options.data_dir = "data";
  ASSERT_TRUE(Catalog::Create(options, *fixture.store).ok());
  EXPECT_EQ(fixture.store->datasets().GetDataset(dataset->name)->records, dataset->records);
}

// A store made by an older build keeps local-cpu's embedded table of then; this build ships
// another (re-profiled), which becomes the device's next version, once. A table a user
// uploaded after it stays the latest.
TEST(CatalogTest, AChangedEmbeddedDefaultBecomesTheNextVersionUnlessAUserUploadedOne) {
  std::unique_ptr<Store> store = SqliteStore::Open({TempPath("embedded.db")}).value();
  TableVersionRecord old_default;
  old_default.device = "local-cpu";
  old_default.format = kTableFormatConvJson;
  old_default.files = {{"fmnist_mbv2_conv_table.json",
                        ReadFileToString("data/local_cpu/fmnist_mbv2_conv_table.json").value()}};
  old_default.entries = 1;
  old_default.sha256 = "an older build's";
  old_default.description = "This machine's CPU, float (embedded default)";
  ASSERT_TRUE(store->devices().AddTableVersion(old_default).ok());
  Catalog::Options options;
  options.data_dir = "data";
  options.predictor_threads = 1;
  const auto versions = [&] { return store->devices().ListTableVersions("local-cpu").value(); };
  {
    absl::StatusOr<std::unique_ptr<Catalog>> catalog = Catalog::Create(options, *store);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    ASSERT_EQ(versions().size(), 2u);
    EXPECT_THAT(versions().back().description, HasSubstr("changes of precision"));
    // The new version prices fmnist_int8float's changes of precision; the old one cannot.
    EXPECT_TRUE((*catalog)->CostModel("fmnist_int8float", "local-cpu", 2).ok());
    const auto old = (*catalog)->CostModel("fmnist_int8float", "local-cpu", 1);
    EXPECT_EQ(old.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(old.status().message(), HasSubstr("-quantize"));
  }
  // A second start adds nothing.
  ASSERT_TRUE(Catalog::Create(options, *store).ok());
  EXPECT_EQ(versions().size(), 2u);
  EXPECT_EQ(store->devices().ListTableVersions("note10")->size(), 1u);
  EXPECT_EQ(store->devices().ListTableVersions("bitfusion")->size(), 1u);
  // A user's upload is the latest, and stays so.
  {
    std::unique_ptr<Catalog> catalog = Catalog::Create(options, *store).value();
    ASSERT_TRUE(catalog
                    ->UploadTable("local-cpu", kTableFormatConvJson, old_default.files,
                                  "our own measurements")
                    .ok());
  }
  ASSERT_TRUE(Catalog::Create(options, *store).ok());
  ASSERT_EQ(versions().size(), 3u);
  EXPECT_EQ(versions().back().description, "our own measurements");
  // Users cannot mark a table as embedded.
  {
    std::unique_ptr<Catalog> catalog = Catalog::Create(options, *store).value();
    const auto refused = catalog->UploadTable("local-cpu", kTableFormatConvJson, old_default.files,
                                              "copied (embedded default)");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("description"));
  }
  EXPECT_EQ(versions().size(), 3u);
  // An older build sharing the store put its embedded table back on top: this build, whose
  // table the store already holds (v2), adds nothing, so two builds do not take turns.
  old_default.description = "This machine's CPU, float (embedded default)";
  ASSERT_TRUE(store->devices().AddTableVersion(old_default).ok());
  ASSERT_TRUE(Catalog::Create(options, *store).ok());
  EXPECT_EQ(versions().size(), 4u);
}

// fmnist_lowbit: registered, priced on the default devices, with its shipped measurements and
// its shipped predictor (an ensemble, loaded from qa_predictor.artifact), so a search on it
// resolves, mixed precision or at uniform 2 bits.
TEST(CatalogTest, TheLowBitSpaceShipsAnEnsemblePredictorAndItsMeasurements) {
  Fixture fixture = Open("low_bit.db");
  ASSERT_NE(fixture.catalog, nullptr);
  EXPECT_THAT(fixture.catalog->SpaceNames(), ElementsAre("ofa_mbv3", "apq_mbv2", "fmnist_mbv2",
                                                         "fmnist_lowbit", "fmnist_int8float"));
  const absl::StatusOr<const oface::SearchSpace*> space =
      fixture.catalog->FindSpace("fmnist_lowbit");
  ASSERT_TRUE(space.ok()) << space.status();
  for (const oface::GeneSpec& gene : (*space)->genes()) {
    if (oface::IsBitsGene(gene)) {
      EXPECT_THAT(gene.choices, ElementsAre(2, 3, 4, 6, 8));
    }
  }

  const absl::StatusOr<Catalog::PredictorInstance> predictor =
      fixture.catalog->NewPredictor("fmnist_lowbit");
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  EXPECT_THAT(predictor->version, HasSubstr("fmnist_lowbit-ensemble-"));
  EXPECT_EQ(predictor->predictor->input_size(), (*space)->feature_size());
  const absl::StatusOr<Catalog::ShippedPredictorInfo> shipped =
      fixture.catalog->ShippedPredictor("fmnist_lowbit");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  EXPECT_EQ(shipped->version, predictor->version);
  // Its predictions are accuracies of the low-bit regime: the largest network at 8 bits
  // above the same network at 2 bits (measured 91.7 and 52.5 % on validation).
  oface::Genotype high(space.value()->genes().size());
  oface::Genotype low(high.size());
  for (size_t g = 0; g < high.size(); ++g) {
    const oface::GeneSpec& gene = (*space)->genes()[g];
    high[g] = oface::IsBitsGene(gene) ? 8 : gene.choices.back();
    low[g] = oface::IsBitsGene(gene) ? 2 : gene.choices.back();
  }
  predictor::FeatureBatch batch;
  for (const oface::Genotype* genotype : {&high, &low}) {
    (*space)->ActiveFeatures(*genotype, batch.mutable_indices());
    batch.EndSample();
  }
  std::vector<float> predicted;
  ASSERT_TRUE(predictor->predictor->Predict(batch, &predicted).ok());
  ASSERT_EQ(predicted.size(), 2u);
  EXPECT_GT(predicted[0], 0.85);
  EXPECT_LT(predicted[0], 0.95);
  EXPECT_GT(predicted[0], predicted[1] + 0.05);

  const absl::StatusOr<DatasetRecord> dataset =
      fixture.store->datasets().GetDataset(ShippedDatasetName("fmnist_lowbit"));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  // 1,000 fp32 and 1,050 quantized (600 random policies, 150 uniform, 300 near-uniform), all on
  // validation.
  EXPECT_EQ(dataset->records, 2050);
  // fmnist_mbv2 keeps its shipped predictor.
  EXPECT_THAT(fixture.catalog->NewPredictor("fmnist_mbv2")->version, HasSubstr("qa_predictor-"));

  // BitFusion prices the 2- and 3-bit pairs by its fitted analytic model; local-cpu runs none
  // of them, and searches there explore the space's W8A8 networks.
  absl::StatusOr<Catalog::CostModelHandle> cost =
      fixture.catalog->CostModel("fmnist_lowbit", "bitfusion", 0);
  ASSERT_TRUE(cost.ok()) << cost.status();
  EXPECT_GT(cost->model->modelled_terms(), 0);
  ASSERT_NE(cost->estimator, nullptr);
  EXPECT_EQ(cost->executable_view, nullptr);
  for (const char* space : {"fmnist_lowbit", "fmnist_mbv2"}) {
    cost = fixture.catalog->CostModel(space, "local-cpu", 0);
    ASSERT_TRUE(cost.ok()) << cost.status();
    EXPECT_EQ(cost->model->modelled_terms(), 0);
    EXPECT_EQ(cost->estimator, nullptr);
    ASSERT_NE(cost->executable_view, nullptr);
    EXPECT_EQ(cost->executable_view->name(), absl::StrCat(space, "@local-cpu"));
    EXPECT_EQ(cost->device_label, "local-cpu (table v1)");
  }

  const std::unique_ptr<search::EngineRegistry> engines = search::EngineRegistry::WithBuiltIns();
  for (const int uniform_bits : {0, 2}) {
    apq::v1::SubmitSearchRequest request;
    request.set_space("fmnist_lowbit");
    request.set_device("bitfusion");
    request.set_uniform_bits(uniform_bits);
    request.mutable_budgets()->set_max_latency_ms(1.0);
    const absl::StatusOr<ResolvedSearch> resolved =
        ResolveSearch(*fixture.catalog, *engines, request, 0);
    EXPECT_TRUE(resolved.ok()) << uniform_bits << ": " << resolved.status();
  }
}

// A data folder like the embedded one whose fmnist_lowbit/ holds `files` (name -> bytes)
// beside links to the shipped supernet weights.
std::string DataFolderWithLowBitFiles(const std::string& name,
                                      const std::map<std::string, std::string>& files) {
  namespace fs = std::filesystem;
  const fs::path root = TempPath(name);
  fs::remove_all(root);
  fs::create_directories(root / "fmnist_lowbit");
  for (const auto& item : fs::directory_iterator("data")) {
    if (item.path().filename() == "fmnist_lowbit") continue;
    fs::create_directory_symlink(fs::absolute(item.path()), root / item.path().filename());
  }
  for (const char* weights : {"supernet_fp32.pt", "supernet_quant.pt"}) {
    fs::create_symlink(fs::absolute(fs::path("data/fmnist_lowbit") / weights),
                       root / "fmnist_lowbit" / weights);
  }
  for (const auto& [file, bytes] : files) {
    std::ofstream(root / "fmnist_lowbit" / file, std::ios::binary) << bytes;
  }
  return root.string();
}

// A shipped predictor that does not load stops the server's start with FAILED_PRECONDITION
// naming the file, as does a folder shipping two predictors.
TEST(CatalogTest, RefusesAShippedPredictorThatDoesNotLoad) {
  const std::string shipped = ReadFileToString("data/fmnist_lowbit/qa_predictor.artifact").value();
  const struct {
    std::string case_name;
    std::map<std::string, std::string> files;
    std::string mention;
  } cases[] = {
      {"bad_magic", {{"qa_predictor.artifact", "not a predictor\n"}}, "line 1 must be"},
      {"no_version",
       {{"qa_predictor.artifact", "apq-predictor-artifact 1\nkind xgboost-json\n"}},
       "line 3 must be"},
      {"unknown_kind",
       {{"qa_predictor.artifact", "apq-predictor-artifact 1\nkind forest\nversion v\n1\n"}},
       "unknown predictor kind 'forest'"},
      {"truncated", {{"qa_predictor.artifact", shipped.substr(0, shipped.size() / 2)}}, "member"},
      {"two_predictors",
       {{"qa_predictor.artifact", shipped},
        {"qa_predictor.f32", "0000"},
        {"qa_predictor.manifest.json", "{}"}},
       "two shipped predictors"},
  };
  for (const auto& test_case : cases) {
    const std::unique_ptr<Store> store =
        SqliteStore::Open({TempPath(test_case.case_name + ".db")}).value();
    Catalog::Options options;
    options.data_dir = DataFolderWithLowBitFiles(test_case.case_name, test_case.files);
    const absl::Status status = Catalog::Create(options, *store).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition)
        << test_case.case_name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(test_case.mention)) << test_case.case_name;
    EXPECT_THAT(status.message(), HasSubstr("fmnist_lowbit/qa_predictor")) << test_case.case_name;
  }
}

// A request that holds an architecture resolves to a view searching bits alone (with
// uniform_bits: one network); a config outside the space or a space without bitwidths is
// INVALID_ARGUMENT naming the field.
TEST(CatalogTest, ResolvesAFixedArchitectureIntoABitsOnlyView) {
  Fixture fixture = Open("fixed_architecture.db");
  ASSERT_NE(fixture.catalog, nullptr);
  const std::unique_ptr<search::EngineRegistry> engines = search::EngineRegistry::WithBuiltIns();
  const oface::SearchSpace& space = *fixture.catalog->FindSpace("fmnist_mbv2").value();
  oface::Rng sampler(7);
  const oface::Genotype architecture = space.Canonical(space.Sample(sampler));
  apq::v1::SubmitSearchRequest request;
  request.set_space("fmnist_mbv2");
  request.set_device("local-cpu");
  request.mutable_budgets()->set_max_latency_ms(1.0);
  request.set_fixed_architecture(space.ToJson(architecture));
  // On local-cpu the view is inside what the device runs: W8A8 only, so a uniform 4 is refused.
  absl::StatusOr<ResolvedSearch> resolved = ResolveSearch(*fixture.catalog, *engines, request, 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->space->name(), "fmnist_mbv2@local-cpu@fixed-arch");
  request.set_uniform_bits(4);
  const absl::Status four = ResolveSearch(*fixture.catalog, *engines, request, 0).status();
  EXPECT_EQ(four.code(), absl::StatusCode::kInvalidArgument) << four;
  EXPECT_THAT(four.message(), HasSubstr("uniform_bits: 4 is not a choice"));
  EXPECT_THAT(four.message(), HasSubstr("local-cpu (table v1) runs W8A8 or float"));
  request.set_uniform_bits(0);
  request.set_device("bitfusion");
  resolved = ResolveSearch(*fixture.catalog, *engines, request, 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->space->name(), "fmnist_mbv2@fixed-arch");
  request.set_uniform_bits(4);
  resolved = ResolveSearch(*fixture.catalog, *engines, request, 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->space->name(), "fmnist_mbv2@fixed-arch@w4a4");
  // Sampling the view keeps the architecture's genes.
  const oface::Genotype sampled = resolved->space->Canonical(resolved->space->Sample(sampler));
  for (size_t g = 0; g < sampled.size(); ++g) {
    EXPECT_EQ(sampled[g], oface::IsBitsGene(space.genes()[g]) ? 4 : architecture[g])
        << space.genes()[g].name;
  }

  const struct {
    std::string space, device, config, mention;
  } refused[] = {
      {"fmnist_mbv2", "local-cpu", "[{\"ks\": [3]}]", "fixed_architecture: "},
      {"fmnist_mbv2", "local-cpu", "not json", "fixed_architecture: "},
      {"fmnist_mbv2", "local-cpu", std::string(70000, ' '), "fixed_architecture: longer than"},
      {"ofa_mbv3", "note10",
       fixture.catalog->FindSpace("ofa_mbv3")
           .value()
           ->ToJson(fixture.catalog->FindSpace("ofa_mbv3").value()->Sample(sampler)),
       "fixed_architecture: space ofa_mbv3 has no bitwidths"},
  };
  for (const auto& bad : refused) {
    apq::v1::SubmitSearchRequest request;
    request.set_space(bad.space);
    request.set_device(bad.device);
    request.mutable_budgets()->set_max_latency_ms(30.0);
    request.set_fixed_architecture(bad.config);
    const absl::Status status = ResolveSearch(*fixture.catalog, *engines, request, 0).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(bad.mention));
  }
}

// An uncertainty penalty scores by an ensemble's mean minus k spreads: refused (naming the
// field) out of range or for a single-model predictor; with an ensemble default at k = 1 the
// job's predictor scores the lower of its two members.
TEST(CatalogTest, AnUncertaintyPenaltyNeedsAnEnsembleAndScoresMeanMinusKSpreads) {
  Fixture fixture = Open("uncertainty.db");
  ASSERT_NE(fixture.catalog, nullptr);
  const std::unique_ptr<search::EngineRegistry> engines = search::EngineRegistry::WithBuiltIns();
  apq::v1::SubmitSearchRequest request;
  request.set_space("fmnist_mbv2");
  request.set_device("local-cpu");
  request.mutable_budgets()->set_max_latency_ms(1.0);
  for (const double bad : {-0.5, 10.5, std::nan("")}) {
    request.set_uncertainty_penalty(bad);
    const absl::Status status = ResolveSearch(*fixture.catalog, *engines, request, 0).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("uncertainty_penalty"));
  }
  request.set_uncertainty_penalty(1.0);
  const absl::Status single = ResolveSearch(*fixture.catalog, *engines, request, 0).status();
  EXPECT_EQ(single.code(), absl::StatusCode::kFailedPrecondition) << single;
  EXPECT_THAT(single.message(), HasSubstr("uncertainty_penalty: the predictor of space"));

  const oface::SearchSpace& space = *fixture.catalog->FindSpace("fmnist_mbv2").value();
  const int arch_inputs = space.arch_feature_size();
  const int bit_inputs = space.feature_size() - arch_inputs;
  const std::unique_ptr<predictor::MlpPredictor> first = RandomMlp(arch_inputs, bit_inputs, 5);
  const std::unique_ptr<predictor::MlpPredictor> second = RandomMlp(arch_inputs, bit_inputs, 6);
  PredictorRecord record;
  record.space = "fmnist_mbv2";
  record.version = "ensemble-of-two";
  record.kind = kMeanEnsembleKind;
  record.artifact = MeanEnsembleArtifact({{kMlpRawF32Kind, MlpArtifact(*first).value()},
                                          {kMlpRawF32Kind, MlpArtifact(*second).value()}});
  record.is_default = true;
  ASSERT_TRUE(fixture.store->predictors().AddPredictor(record).ok());
  absl::StatusOr<ResolvedSearch> resolved = ResolveSearch(*fixture.catalog, *engines, request, 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  oface::Rng sampler(8);
  int differing = 0;
  for (int i = 0; i < 20; ++i) {
    predictor::FeatureBatch batch;
    space.ActiveFeatures(space.Sample(sampler), batch.mutable_indices());
    batch.EndSample();
    std::vector<float> a;
    std::vector<float> b;
    std::vector<float> scored;
    ASSERT_TRUE(first->Predict(batch, &a).ok());
    ASSERT_TRUE(second->Predict(batch, &b).ok());
    ASSERT_TRUE(resolved->predictor.predictor->Predict(batch, &scored).ok());
    EXPECT_NEAR(scored[0], std::min(a[0], b[0]), 1e-5);
    differing += std::fabs(a[0] - b[0]) > 1e-4;
  }
  EXPECT_GT(differing, 0);
}

TEST(CatalogTest, AStoredDefaultPredictorReplacesTheShippedOne) {
  Fixture fixture = Open("predictors.db");
  ASSERT_NE(fixture.catalog, nullptr);
  // The shipped predictor first; apq_mbv2 ships none.
  EXPECT_THAT(fixture.catalog->NewPredictor("fmnist_mbv2")->version, HasSubstr("qa_predictor-"));
  const absl::Status missing = fixture.catalog->NewPredictor("apq_mbv2").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("no accuracy predictor"));

  const oface::SearchSpace& space = *fixture.catalog->FindSpace("fmnist_mbv2").value();
  const std::unique_ptr<predictor::MlpPredictor> mlp =
      RandomMlp(space.arch_feature_size(), space.feature_size() - space.arch_feature_size());
  PredictorRecord record;
  record.space = "fmnist_mbv2";
  record.version = mlp->version();
  record.kind = kMlpRawF32Kind;
  record.artifact = MlpArtifact(*mlp).value();
  record.is_default = true;
  ASSERT_TRUE(fixture.store->predictors().AddPredictor(record).ok());
  absl::StatusOr<Catalog::PredictorInstance> instance =
      fixture.catalog->NewPredictor("fmnist_mbv2");
  ASSERT_TRUE(instance.ok()) << instance.status();
  EXPECT_EQ(instance->version, mlp->version());
  predictor::FeatureBatch batch;
  oface::Rng sampler(5);
  space.ActiveFeatures(space.Sample(sampler), batch.mutable_indices());
  batch.EndSample();
  std::vector<float> expected;
  std::vector<float> actual;
  ASSERT_TRUE(mlp->Predict(batch, &expected).ok());
  ASSERT_TRUE(instance->predictor->Predict(batch, &actual).ok());
  EXPECT_EQ(actual, expected);

  // A default that does not take the space's encoding is refused when a job needs it.
  const std::unique_ptr<predictor::MlpPredictor> narrow = RandomMlp(10, 4);
  record.version = narrow->version();
  record.artifact = MlpArtifact(*narrow).value();
  ASSERT_TRUE(fixture.store->predictors().AddPredictor(record).ok());
  const absl::Status refused = fixture.catalog->NewPredictor("fmnist_mbv2").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("takes 14 inputs"));
  // The shipped predictor of another space is untouched.
  EXPECT_TRUE(fixture.catalog->NewPredictor("ofa_mbv3").ok());
}

TEST(CatalogTest, UserTextAndFileNamesAreChecked) {
  EXPECT_TRUE(ValidateUserText("label", "sweep 3: 25 ms, note10", 64, false).ok());
  EXPECT_TRUE(ValidateUserText("description", "line one\n\tline two", 64, true).ok());
  EXPECT_FALSE(ValidateUserText("label", "line one\nline two", 64, false).ok());
  EXPECT_FALSE(ValidateUserText("description", "bell\a", 64, true).ok());
  EXPECT_FALSE(ValidateUserText("description", "del\x7f", 64, true).ok());
  const absl::Status long_text = ValidateUserText("label", std::string(65, 'a'), 64, false);
  EXPECT_THAT(std::string(long_text.message()), HasSubstr("label: longer than 64 bytes"));
  EXPECT_TRUE(ValidateFileName("files[0].name", "160_lookup_table.yaml").ok());
  for (const std::string name : {"", ".", "..", "../../etc/passwd", "a/b.json", "x\ny"}) {
    const absl::Status status = ValidateFileName("files[0].name", name);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(status.message()), HasSubstr("files[0].name")) << name;
  }
  // Nothing is stored for an upload with such a name.
  Fixture fixture = Open("file_names.db");
  const std::vector<TableVersionRecord> before =
      fixture.store->devices().ListTableVersions("local-cpu").value();
  const TableVersionRecord latest =
      fixture.store->devices().GetTableVersion("local-cpu", 0).value();
  std::vector<TableFileRecord> files = latest.files;
  files[0].name = "../local-cpu.json";
  const absl::Status refused =
      fixture.catalog->UploadTable("local-cpu", latest.format, files, "renamed").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fixture.store->devices().ListTableVersions("local-cpu")->size(), before.size());
}

// Loaded tables and cost models stay bounded however many versions are uploaded, and an
// evicted version is loaded again when asked.
TEST(CatalogTest, CachesOfTableVersionsStayBoundedAndEvictedVersionsReload) {
  Fixture fixture = Open("bounded_caches.db");
  const TableVersionRecord shipped =
      fixture.store->devices().GetTableVersion("local-cpu", 0).value();
  const size_t uploads = Catalog::kCachedTableVersions * 2;
  std::vector<int64_t> versions;
  for (size_t i = 0; i < uploads; ++i) {
    auto uploaded = fixture.catalog->UploadTable("chip", shipped.format, shipped.files, "copy");
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    versions.push_back(uploaded->version);
    ASSERT_TRUE(fixture.catalog->CostModel("fmnist_mbv2", "chip", uploaded->version).ok());
  }
  auto [tables, models] = fixture.catalog->CachedTablesAndCostModels();
  EXPECT_LE(tables, Catalog::kCachedTableVersions);
  EXPECT_LE(models, Catalog::kCachedTableVersions * 4);
  // The first versions were evicted; they price the same network as the latest.
  const oface::SearchSpace& space = *fixture.catalog->FindSpace("fmnist_mbv2").value();
  oface::Rng rng(3);
  const oface::Genotype network = space.Canonical(space.Sample(rng));
  const auto first = fixture.catalog->CostModel("fmnist_mbv2", "chip", versions.front());
  const auto last = fixture.catalog->CostModel("fmnist_mbv2", "chip", versions.back());
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_EQ(first->model->Evaluate(network).latency_ms, last->model->Evaluate(network).latency_ms);
  std::tie(tables, models) = fixture.catalog->CachedTablesAndCostModels();
  EXPECT_LE(tables, Catalog::kCachedTableVersions);
}

// A job names the version it was submitted with: that one loads, default or not.
TEST(CatalogTest, APinnedPredictorVersionLoadsWhateverTheDefault) {
  Fixture fixture = Open("pinned.db");
  const oface::SearchSpace& space = *fixture.catalog->FindSpace("fmnist_mbv2").value();
  const std::string shipped = fixture.catalog->NewPredictor("fmnist_mbv2")->version;
  const std::string first = AddRandomDefaultPredictor(*fixture.store, space, 21);
  const std::string second = AddRandomDefaultPredictor(*fixture.store, space, 22);
  ASSERT_NE(first, second);
  EXPECT_EQ(fixture.catalog->NewPredictor("fmnist_mbv2")->version, second);
  for (const std::string& version : {shipped, first, second}) {
    absl::StatusOr<Catalog::PredictorInstance> pinned =
        fixture.catalog->NewPredictor("fmnist_mbv2", version);
    ASSERT_TRUE(pinned.ok()) << version << ": " << pinned.status();
    EXPECT_EQ(pinned->version, version);
  }
  // The pinned first predictor predicts as the first MLP does, not as the default.
  predictor::FeatureBatch batch;
  oface::Rng sampler(5);
  space.ActiveFeatures(space.Sample(sampler), batch.mutable_indices());
  batch.EndSample();
  std::vector<float> expected;
  std::vector<float> actual;
  ASSERT_TRUE(RandomMlpFor(space, 21)->Predict(batch, &expected).ok());
  ASSERT_TRUE(
      fixture.catalog->NewPredictor("fmnist_mbv2", first)->predictor->Predict(batch, &actual).ok());
  EXPECT_EQ(actual, expected);

  const absl::Status unknown = fixture.catalog->NewPredictor("fmnist_mbv2", "no-such").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  // Another space's version is not this space's.
  EXPECT_EQ(fixture.catalog->NewPredictor("ofa_mbv3", first).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CatalogTest, AStoredDefaultPredictorsArtifactIsReadOncePerVersion) {
  ArtifactCountingStore store(SqliteStore::Open({TempPath("artifact_reads.db")}).value());
  Catalog::Options options;
  options.data_dir = "data";
  options.predictor_threads = 1;
  absl::StatusOr<std::unique_ptr<Catalog>> catalog = Catalog::Create(options, store);
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  const oface::SearchSpace& space = *(*catalog)->FindSpace("fmnist_mbv2").value();
  const auto add_default = [&](uint32_t seed) {
    return AddRandomDefaultPredictor(store, space, seed);
  };
  const auto new_predictor_version = [&] {
    absl::StatusOr<Catalog::PredictorInstance> instance = (*catalog)->NewPredictor("fmnist_mbv2");
    EXPECT_TRUE(instance.ok()) << instance.status();
    return instance.ok() ? instance->version : std::string();
  };

  const std::string first = add_default(3);
  const int reads_before = store.artifact_reads();
  for (int search = 0; search < 3; ++search) EXPECT_EQ(new_predictor_version(), first);
  EXPECT_EQ(store.artifact_reads() - reads_before, 1) << "one read for the version's first load";

  // A new default is read once when a search first needs it.
  const std::string second = add_default(4);
  ASSERT_NE(second, first);
  for (int search = 0; search < 3; ++search) EXPECT_EQ(new_predictor_version(), second);
  EXPECT_EQ(store.artifact_reads() - reads_before, 2);
}

}  // namespace
}  // namespace apq::server
