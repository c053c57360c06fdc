#include "server/job_manager_testing.h"

#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "predictor/mlp_testing.h"
#include "server/predictor_artifact.h"
#include "server/store/memory_store.h"

namespace apq::server {

std::unique_ptr<predictor::MlpPredictor> RandomMlpFor(const oface::SearchSpace& space,
                                                      uint32_t seed) {
  return RandomMlp(space.arch_feature_size(), space.feature_size() - space.arch_feature_size(),
                   seed);
}

std::unique_ptr<predictor::MlpPredictor> RandomMlp(int arch_inputs, int bit_inputs, uint32_t seed) {
  std::mt19937 rng(seed);
  predictor::MlpWeights weights;
  weights.name = absl::StrCat("random-", seed);
  weights.layers = {predictor::mlp_testing::RandomLinear(arch_inputs, 16, &rng),
                    predictor::mlp_testing::RandomLinear(16, 1, &rng)};
  if (bit_inputs > 0) {
    weights.bits = predictor::mlp_testing::RandomLinear(bit_inputs, 16, &rng);
    weights.bits->name = "bits";
  }
  absl::StatusOr<std::unique_ptr<predictor::MlpPredictor>> mlp =
      predictor::MlpPredictor::Create(weights, {});
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return mlp.ok() ? *std::move(mlp) : nullptr;
}

std::string AddRandomDefaultPredictor(Store& store, const oface::SearchSpace& space,
                                      uint32_t seed) {
  const std::unique_ptr<predictor::MlpPredictor> mlp = RandomMlpFor(space, seed);
  if (mlp == nullptr) return "";
  PredictorRecord record;
  record.space = space.name();
  record.version = mlp->version();
  record.kind = kMlpRawF32Kind;
  record.artifact = MlpArtifact(*mlp).value();
  record.is_default = true;
  EXPECT_TRUE(store.predictors().AddPredictor(record).ok());
  return record.version;
}

int64_t UploadScaledTable(Catalog& catalog, const std::string& device, double factor) {
  absl::StatusOr<TableVersionRecord> latest = catalog.store().devices().GetTableVersion(device, 0);
  EXPECT_TRUE(latest.ok()) << latest.status();
  if (!latest.ok()) return 0;
  std::vector<TableFileRecord> files = latest->files;
  for (TableFileRecord& file : files) {
    if (latest->format == kTableFormatOfaYaml) {
      // "  mean: <ms>" lines hold the figures; counts and spreads stay.
      std::string scaled;
      for (const absl::string_view line : absl::StrSplit(file.content, '\n')) {
        double mean = 0.0;
        if (absl::StartsWith(line, "  mean: ") &&
            absl::SimpleAtod(line.substr(std::strlen("  mean: ")), &mean)) {
          absl::StrAppend(&scaled, "  mean: ", mean * factor, "\n");
        } else if (!line.empty()) {
          absl::StrAppend(&scaled, line, "\n");
        }
      }
      file.content = std::move(scaled);
    } else {
      nlohmann::json table = nlohmann::json::parse(file.content);
      for (auto& entry : table.items()) {
        for (const char* figure : {"latency", "energy"}) {
          if (entry.value().contains(figure)) {
            entry.value()[figure] = entry.value()[figure].get<double>() * factor;
          }
        }
      }
      file.content = table.dump();
    }
  }
  absl::StatusOr<TableVersionRecord> uploaded =
      catalog.UploadTable(device, latest->format, files, absl::StrCat("scaled x", factor));
  EXPECT_TRUE(uploaded.ok()) << uploaded.status();
  return uploaded.ok() ? uploaded->version : 0;
}

std::vector<CandidateRecord> AllCandidates(JobStore& jobs, const std::string& job_id) {
  std::vector<CandidateRecord> all;
  CandidateQuery query;
  query.job_id = job_id;
  query.limit = kMaxPageSize;
  for (;; query.offset += query.limit) {
    absl::StatusOr<CandidatePage> page = jobs.ListCandidates(query);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok() || page->candidates.empty()) break;
    all.insert(all.end(), page->candidates.begin(), page->candidates.end());
  }
  return all;
}

std::string Describe(const CandidateRecord& c, bool with_id) {
  const auto figure = [](const std::optional<double>& value) {
    return value ? absl::StrCat(*value) : std::string("-");
  };
  return absl::StrCat(with_id ? absl::StrCat(c.id) : "", "|", c.generation, "|", c.times_seen, "|",
                      c.config_json, "|", figure(c.accuracy), "|", figure(c.latency_ms), "|",
                      figure(c.energy_mj), "|", figure(c.size_mb), "|", figure(c.bitops), "|",
                      c.feasible ? "1" : "0", "|", c.modelled, "|", c.on_pareto_front ? "1" : "0");
}

std::unique_ptr<SupernetHost> NewHostWithoutSupernets() {
  SupernetHost::Options options;
  options.data_dir = "no-supernets";
  absl::StatusOr<std::unique_ptr<SupernetHost>> host = SupernetHost::Create(options);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? *std::move(host) : nullptr;
}

std::unique_ptr<SupernetHost> NewHostWithShippedSupernets(int calibration_images) {
  SupernetHost::Options options;
  options.data_dir = "data";
  options.calibration_images = calibration_images;
  absl::StatusOr<std::unique_ptr<SupernetHost>> host = SupernetHost::Create(options);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? *std::move(host) : nullptr;
}

std::string FaultName(const InjectedFault& fault) {
  return absl::StrCat(
      fault.method, " #", fault.nth,
      fault.mode == FaultPlan::Mode::kAfterCommit ? " after commit" : " before write");
}

oface::Genotype SmallestAtBits(const oface::SearchSpace& space, int weight_bits,
                               int activation_bits) {
  oface::Genotype genotype(space.genes().size());
  for (size_t g = 0; g < genotype.size(); ++g) {
    const oface::GeneSpec& gene = space.genes()[g];
    genotype[g] = gene.choices.front();
    if (oface::IsBitsGene(gene)) {
      genotype[g] = gene.name.find("_a_bits") != std::string::npos ? activation_bits : weight_bits;
    }
  }
  return space.Canonical(genotype);
}

double StaticBitops(const oface::SearchSpace& space, const oface::Genotype& genotype) {
  return static_cast<double>(space.StaticCosts(genotype)->bitops);
}

void JobTestBed::Open() {
  manager_.reset();
  plan_ = std::make_shared<FaultPlan>();
  store_ = NewFaultyStore(NewMemoryStore(), plan_);
  options_.artifacts = &store_->artifacts();  // As the server: engines keep their artifacts.
  Catalog::Options options;
  options.data_dir = "data";
  options.predictor_threads = 1;
  auto catalog = Catalog::Create(options, *store_);
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  catalog_ = *std::move(catalog);
  StartManager();
}

void JobTestBed::StartManager() {
  auto manager = JobManager::Create(options_, *catalog_, store_->jobs(), store_->datasets(),
                                    supernets_, *engines_);
  ASSERT_TRUE(manager.ok()) << manager.status();
  manager_ = *std::move(manager);
}

apq::v1::JobProgress JobTestBed::AwaitEnd(const std::string& job_id, absl::Duration timeout) {
  absl::Notification ended;
  apq::v1::JobProgress last;
  auto subscription = manager_->Watch(job_id, [&](const apq::v1::JobProgress& progress) {
    if (progress.state() >= apq::v1::JOB_STATE_SUCCEEDED && !ended.HasBeenNotified()) {
      last = progress;
      ended.Notify();
    }
  });
  EXPECT_TRUE(subscription.ok()) << subscription.status();
  if (!subscription.ok()) return last;
  EXPECT_TRUE(ended.WaitForNotificationWithTimeout(timeout)) << job_id << " did not end";
  manager_->Unwatch(job_id, *subscription);
  return last;
}

SupernetHost* LowBitJobTest::supernets_ = nullptr;

void LowBitJobTest::SetUpTestSuite() {
  supernets_ = NewHostWithShippedSupernets(250).release();
  ASSERT_TRUE(supernets_ != nullptr && supernets_->Has("fmnist_lowbit"));
}

void LowBitJobTest::TearDownTestSuite() {
  delete supernets_;
  supernets_ = nullptr;
}

void LowBitJobTest::SetUp() {
  bed_.Open();
  bed_.SetCommitInterval(absl::ZeroDuration());
  bed_.StartManager();
  auto space = bed_.catalog().FindSpace("fmnist_lowbit");
  ASSERT_TRUE(space.ok());
  space_ = *space;
}

apq::v1::SubmitSearchRequest LowBitJobTest::EngineRequest(const std::string& engine,
                                                          double max_bitops, uint64_t seed,
                                                          const std::string& device) const {
  apq::v1::SubmitSearchRequest request;
  request.set_space("fmnist_lowbit");
  request.set_device(device);
  request.set_seed(seed);
  request.set_fixed_architecture(space_->ToJson(Smallest(8, 8)));
  request.mutable_budgets()->set_max_bitops(max_bitops);
  request.mutable_engine_request()->set_name(engine);
  return request;
}

std::vector<CandidateRecord> LowBitJobTest::Candidates(const std::string& job_id) {
  CandidateQuery query;
  query.job_id = job_id;
  query.limit = 100;
  auto page = bed_.store().jobs().ListCandidates(query);
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? page->candidates : std::vector<CandidateRecord>{};
}

bool LowBitJobTest::StopAfter(const std::string& job_id, int generations) {
  for (int i = 0; i < 60000; ++i) {
    auto running = bed_.store().jobs().GetJob(job_id);
    if (running.ok() && running->generations_done >= generations) {
      bed_.StopManager();
      return true;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  return false;
}

void LowBitJobTest::ExpectRefusedBeforeStoring(const std::vector<Refusal>& refusals) {
  for (const Refusal& refusal : refusals) {
    const auto job = bed_.manager().Submit(refusal.request);
    EXPECT_EQ(job.status().code(), refusal.code) << refusal.what << ": " << job.status();
    EXPECT_TRUE(absl::StrContains(job.status().message(), refusal.says))
        << refusal.what << ": " << job.status();
  }
  EXPECT_TRUE(bed_.store().jobs().ListJobs(std::nullopt, std::nullopt, 0, 10)->empty());
}

}  // namespace apq::server
