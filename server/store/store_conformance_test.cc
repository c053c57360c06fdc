// The contracts of store.h and the per-kind interfaces, checked against every backend (a new
// one joins by one entry in store_testing.cc's Backends()).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/faulty_store.h"
#include "server/store/memory_store.h"
#include "server/store/store.h"
#include "server/store/store_testing.h"

namespace apq::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace ::apq::server::store_testing;  // NOLINT(google-build-using-namespace): the test
                                               // records.

// Every backend, and the fault-injecting wrapper with no fault armed, which must pass every
// call through unchanged.
std::vector<Backend> BackendsAndAWrapper() {
  std::vector<Backend> backends = Backends();
  backends.push_back({"FaultyMemoryWithoutFaults", []() -> absl::StatusOr<std::unique_ptr<Store>> {
                        return NewFaultyStore(NewMemoryStore(), std::make_shared<FaultPlan>());
                      }});
  return backends;
}

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = GetParam().open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  JobStore& jobs() { return store_->jobs(); }
  DeviceStore& devices() { return store_->devices(); }
  DatasetStore& datasets() { return store_->datasets(); }
  PredictorStore& predictors() { return store_->predictors(); }
  TrainingJobStore& training_jobs() { return store_->training_jobs(); }
  TokenStore& tokens() { return store_->tokens(); }
  ArtifactStore& artifacts() { return store_->artifacts(); }
  MeasurementRunStore& runs() { return store_->measurement_runs(); }

  std::unique_ptr<Store> store_;
};

TokenRecord MakeToken(const std::string& id, Role role) {
  TokenRecord token;
  token.id = id;
  token.name = absl::StrCat("holder of ", id, " \xce\xbb");
  token.role = role;
  token.secret_sha256 = std::string(64, 'a');
  token.secret_sha256[3] = '7';
  token.created_unix_s = 1700000000.25;
  token.created_by = "bootstrap";
  return token;
}

void ExpectTokenEq(const TokenRecord& actual, const TokenRecord& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.role, expected.role);
  EXPECT_EQ(actual.secret_sha256, expected.secret_sha256);
  EXPECT_EQ(actual.created_unix_s, expected.created_unix_s);
  EXPECT_EQ(actual.created_by, expected.created_by);
  EXPECT_EQ(actual.revoked_unix_s, expected.revoked_unix_s);
}

TEST_P(StoreConformanceTest, TokensRoundTripListInOrderAndRevokeOnce) {
  const TokenRecord admin = MakeToken("tok-b", Role::kAdmin);
  TokenRecord viewer = MakeToken("tok-a", Role::kViewer);
  viewer.created_by = "tok-b";
  ASSERT_TRUE(tokens().AddToken(admin).ok());
  ASSERT_TRUE(tokens().AddToken(viewer).ok());
  ExpectTokenEq(*tokens().GetToken("tok-b"), admin);
  ExpectTokenEq(*tokens().GetToken("tok-a"), viewer);
  absl::StatusOr<std::vector<TokenRecord>> listed = tokens().ListTokens();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "tok-b");  // In the order added, not by id.
  EXPECT_EQ((*listed)[1].id, "tok-a");

  EXPECT_EQ(tokens().AddToken(admin).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(tokens().GetToken("tok-c").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(tokens().RevokeToken("tok-a", 1700000100.5).ok());
  EXPECT_EQ(tokens().GetToken("tok-a")->revoked_unix_s, 1700000100.5);
  EXPECT_EQ(tokens().RevokeToken("tok-a", 1700000200).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(tokens().GetToken("tok-a")->revoked_unix_s, 1700000100.5);
  EXPECT_EQ(tokens().RevokeToken("tok-c", 1700000200).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(tokens().RevokeToken("tok-b", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokens().GetToken("tok-b")->revoked_unix_s, 0);
}

// Servers bootstrapping one empty store at once: exactly one first token is stored.
TEST_P(StoreConformanceTest, OnlyOneOfConcurrentFirstTokensIsStored) {
  constexpr int kClaimers = 4;
  std::vector<absl::StatusOr<bool>> results(kClaimers, false);
  {
    std::vector<std::thread> threads;
    threads.reserve(kClaimers);
    for (int i = 0; i < kClaimers; ++i) {
      threads.emplace_back([this, i, &results] {
        results[i] = tokens().AddFirstToken(MakeToken(absl::StrCat("tok-", i), Role::kAdmin));
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  int stored = 0;
  for (const absl::StatusOr<bool>& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    stored += *result ? 1 : 0;
  }
  EXPECT_EQ(stored, 1);
  absl::StatusOr<std::vector<TokenRecord>> listed = tokens().ListTokens();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  // Later first tokens are not stored; ordinary ones are; a bad one is refused.
  EXPECT_FALSE(*tokens().AddFirstToken(MakeToken("tok-late", Role::kAdmin)));
  EXPECT_TRUE(tokens().AddToken(MakeToken("tok-more", Role::kViewer)).ok());
  TokenRecord bad = MakeToken("tok-bad", Role::kAdmin);
  bad.name = "";
  EXPECT_EQ(tokens().AddFirstToken(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokens().ListTokens()->size(), 2u);
}

TEST_P(StoreConformanceTest, BadTokensAreRefusedAndNothingIsStored) {
  std::vector<TokenRecord> bad(7, MakeToken("tok-x", Role::kSubmitter));
  bad[0].id = "";
  bad[1].name = "";
  bad[2].role = static_cast<Role>(0);
  bad[3].role = static_cast<Role>(5);
  bad[4].secret_sha256 = std::string(63, 'a');
  bad[5].secret_sha256 = std::string(64, 'A');
  bad[6].created_unix_s = std::numeric_limits<double>::quiet_NaN();
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(tokens().AddToken(bad[i]).code(), absl::StatusCode::kInvalidArgument) << i;
  }
  EXPECT_TRUE(tokens().ListTokens()->empty());
}

// Jobs carry their owner, and a listing can keep one owner's.
// Deleting an ended job removes it and its rows everywhere and never frees its id; a queued
// or running one is refused; pruning deletes the ended jobs finished before a time.
TEST_P(StoreConformanceTest, DeletedJobsAreGoneAndTheirIdsStayTaken) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  ASSERT_TRUE(jobs().MarkRunning("job-2", 10).ok());
  ASSERT_TRUE(jobs().AppendGenerations("job-2", MakeBatch(0, 5)).ok());
  ASSERT_TRUE(jobs().FinishJob("job-2", JobState::kSucceeded, "", 100, 90, {}).ok());
  ASSERT_TRUE(jobs().MarkRunning("job-3", 10).ok());
  ASSERT_TRUE(jobs().FinishJob("job-3", JobState::kFailed, "x", 200, 190, {}).ok());
  ASSERT_TRUE(jobs().MarkRunning("job-4", 10).ok());
  ASSERT_TRUE(jobs().FinishJob("job-4", JobState::kCancelled, "", 300, 290, {}).ok());

  EXPECT_EQ(jobs().DeleteJob("job-1", 400).code(), absl::StatusCode::kFailedPrecondition)
      << "queued: cancel first";
  EXPECT_EQ(jobs().DeleteJob("job-9", 400).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().DeleteJob("job-4", 400).ok());
  EXPECT_EQ(jobs().GetJob("job-4").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs().DeleteJob("job-4", 401).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs().ListCandidates(Query("job-4", 10)).status().code(), absl::StatusCode::kNotFound);
  // The newest job deleted: the next one still gets a new id.
  EXPECT_EQ(*jobs().CreateJob(MakeJob()), "job-5");

  // Pruning: ended before 250 (job-2 at 100, job-3 at 200), oldest first, at most one a call.
  EXPECT_THAT(*jobs().DeleteJobsFinishedBefore(250, 500, 1), ElementsAre("job-2"));
  EXPECT_THAT(*jobs().DeleteJobsFinishedBefore(250, 500, 10), ElementsAre("job-3"));
  EXPECT_THAT(*jobs().DeleteJobsFinishedBefore(250, 500, 10), IsEmpty());
  EXPECT_EQ(jobs().ListCandidates(Query("job-2", 10)).status().code(), absl::StatusCode::kNotFound);
  const std::vector<JobRecord> listed = *jobs().ListJobs(std::nullopt, std::nullopt, 0, 10);
  std::vector<std::string> left;
  left.reserve(listed.size());
  for (const JobRecord& job : listed) left.push_back(job.id);
  EXPECT_THAT(left, ElementsAre("job-5", "job-1"));
  EXPECT_EQ(jobs().DeleteJobsFinishedBefore(250, 500, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, JobsCarryTheirOwnerAndListByOwner) {
  for (const char* owner : {"tok-a", "", "tok-b", "tok-a"}) {
    JobRecord job = MakeJob();
    job.owner = owner;
    ASSERT_TRUE(jobs().CreateJob(job).ok());
  }
  EXPECT_EQ(jobs().GetJob("job-3")->owner, "tok-b");
  auto ids = [](const absl::StatusOr<std::vector<JobRecord>>& listed) {
    std::vector<std::string> result;
    for (const JobRecord& job : *listed) result.push_back(job.id);
    return result;
  };
  EXPECT_THAT(ids(jobs().ListJobs(std::nullopt, "tok-a", 0, 10)), ElementsAre("job-4", "job-1"));
  EXPECT_THAT(ids(jobs().ListJobs(std::nullopt, "tok-a", 1, 10)), ElementsAre("job-1"));
  EXPECT_THAT(ids(jobs().ListJobs(std::nullopt, "", 0, 10)), ElementsAre("job-2"));
  EXPECT_THAT(ids(jobs().ListJobs(std::nullopt, "tok-c", 0, 10)), IsEmpty());
  EXPECT_THAT(ids(jobs().ListJobs(JobState::kQueued, "tok-b", 0, 10)), ElementsAre("job-3"));
  EXPECT_THAT(ids(jobs().ListJobs(JobState::kRunning, "tok-b", 0, 10)), IsEmpty());
  EXPECT_EQ(ids(jobs().ListJobs(std::nullopt, std::nullopt, 0, 10)).size(), 4u);
}

TEST_P(StoreConformanceTest, JobsListBySpaceAndDeviceWithTheOtherFilters) {
  const struct {
    const char* space;
    const char* device;
    const char* owner;
  } made[] = {{"fmnist_lowbit", "bitfusion", "tok-a"},
              {"fmnist_lowbit", "local-cpu", "tok-a"},
              {"ofa_mbv3", "note10", "tok-b"},
              {"fmnist_lowbit", "bitfusion", "tok-b"}};
  for (const auto& m : made) {
    JobRecord job = MakeJob(m.space);
    job.device = m.device;
    job.owner = m.owner;
    ASSERT_TRUE(jobs().CreateJob(job).ok());
  }
  const auto ids = [&](std::optional<std::string> space, std::optional<std::string> device,
                       std::optional<std::string> owner = std::nullopt, std::string after = "") {
    JobQuery query;
    query.space = std::move(space);
    query.device = std::move(device);
    query.owner = std::move(owner);
    query.after_job = std::move(after);
    std::vector<std::string> result;
    const absl::StatusOr<std::vector<JobRecord>> listed = jobs().ListJobsPage(query);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const JobRecord& job : *listed) result.push_back(job.id);
    }
    return result;
  };
  EXPECT_THAT(ids("fmnist_lowbit", std::nullopt), ElementsAre("job-4", "job-2", "job-1"));
  EXPECT_THAT(ids(std::nullopt, "bitfusion"), ElementsAre("job-4", "job-1"));
  EXPECT_THAT(ids("fmnist_lowbit", "bitfusion", "tok-a"), ElementsAre("job-1"));
  EXPECT_THAT(ids("fmnist_lowbit", std::nullopt, std::nullopt, "job-4"),
              ElementsAre("job-2", "job-1"));
  EXPECT_THAT(ids("ofa_mbv3", "bitfusion"), IsEmpty());
  EXPECT_THAT(ids("apq_mbv2", std::nullopt), IsEmpty());
}

TEST_P(StoreConformanceTest, JobsListByLabelAndTheLabelCanBeSet) {
  for (const char* label : {"nightly", "", "nightly", "ablation"}) {
    JobRecord job = MakeJob();
    job.label = label;
    ASSERT_TRUE(jobs().CreateJob(job).ok());
  }
  const auto ids = [&](const std::string& label) {
    JobQuery query;
    query.label = label;
    std::vector<std::string> result;
    const absl::StatusOr<std::vector<JobRecord>> listed = jobs().ListJobsPage(query);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const JobRecord& job : *listed) result.push_back(job.id);
    }
    return result;
  };
  EXPECT_THAT(ids("nightly"), ElementsAre("job-3", "job-1"));
  EXPECT_THAT(ids(""), ElementsAre("job-2"));
  EXPECT_THAT(ids("night"), IsEmpty());
  EXPECT_EQ(jobs().GetJob("job-4")->label, "ablation");
  // Every job was stored with its label: none needs one from its request.
  const absl::StatusOr<std::vector<JobRecord>> unknown = jobs().JobsWithoutLabel(10);
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  EXPECT_THAT(*unknown, IsEmpty());
  EXPECT_EQ(jobs().JobsWithoutLabel(0).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(jobs().SetJobLabel("job-2", "nightly").ok());
  EXPECT_THAT(ids("nightly"), ElementsAre("job-3", "job-2", "job-1"));
  EXPECT_EQ(jobs().SetJobLabel("job-99", "x").code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, CountsJobsByStateWithoutDeletedOnes) {
  EXPECT_THAT(*jobs().CountJobsByState(), IsEmpty());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  ASSERT_TRUE(jobs().MarkRunning("job-1", 1700000001).ok());
  ASSERT_TRUE(jobs().MarkRunning("job-2", 1700000001).ok());
  ASSERT_TRUE(jobs().FinishJob("job-2", JobState::kSucceeded, "", 1700000002, 1, {}).ok());
  ASSERT_TRUE(jobs().FinishJob("job-3", JobState::kCancelled, "", 1700000002, 0, {}).ok());
  ASSERT_TRUE(jobs().FinishJob("job-4", JobState::kCancelled, "", 1700000002, 0, {}).ok());
  ASSERT_TRUE(jobs().DeleteJob("job-4", 1700000003).ok());
  const absl::StatusOr<std::map<JobState, int64_t>> counts = jobs().CountJobsByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_THAT(*counts, ElementsAre(std::make_pair(JobState::kRunning, 1),
                                   std::make_pair(JobState::kSucceeded, 1),
                                   std::make_pair(JobState::kCancelled, 1)));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest, ::testing::ValuesIn(BackendsAndAWrapper()),
                         BackendName);

TEST_P(StoreConformanceTest, CreateJobRoundTrip) {
  JobRecord job = MakeJob();
  // Progress fields of the record are not stored by CreateJob.
  job.state = JobState::kFailed;
  job.generations_done = 7;
  job.checkpoint = "ignored";
  job.pareto_front_size = 3;
  absl::StatusOr<std::string> id = jobs().CreateJob(job);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "job-1");
  EXPECT_EQ(*jobs().CreateJob(MakeJob()), "job-2");

  absl::StatusOr<JobRecord> loaded = jobs().GetJob("job-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  JobRecord expected = MakeJob();
  expected.id = "job-1";
  ExpectJobEq(*loaded, expected);
  EXPECT_EQ(loaded->request.size(), kBinary.size());

  EXPECT_EQ(jobs().GetJob("job-3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs().GetJob("").status().code(), absl::StatusCode::kNotFound);
}

// A sweep's jobs are created at once with consecutive ids, named after the first; a lone job
// has no sweep; a sweep with a bad job stores nothing.
TEST_P(StoreConformanceTest, CreateSweepStoresItsJobsTogether) {
  EXPECT_EQ(*jobs().CreateJob(MakeJob()), "job-1");
  std::vector<JobRecord> scenarios = {MakeJob("a"), MakeJob("b"), MakeJob("c")};
  scenarios[1].sweep_id = "ignored";
  absl::StatusOr<SweepIds> sweep = jobs().CreateSweep(scenarios);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->sweep_id, "sweep-2");
  EXPECT_EQ(sweep->job_ids, (std::vector<std::string>{"job-2", "job-3", "job-4"}));
  EXPECT_EQ(*jobs().CreateJob(MakeJob()), "job-5");

  absl::StatusOr<std::vector<JobRecord>> listed = jobs().ListSweepJobs("sweep-2");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    JobRecord expected = MakeJob(std::string(1, static_cast<char>('a' + i)));
    expected.id = sweep->job_ids[i];
    expected.sweep_id = "sweep-2";
    ExpectJobEq((*listed)[i], expected, /*with_checkpoint=*/false);
    ExpectJobEq(*jobs().GetJob(expected.id), expected);
  }
  EXPECT_EQ(jobs().GetJob("job-1")->sweep_id, "");
  EXPECT_EQ(jobs().GetJob("job-5")->sweep_id, "");

  // A job's progress shows in the sweep's listing.
  GenerationBatch batch;
  batch.candidates.push_back(CandidateRecord{});
  batch.candidates_evaluated = 1;
  ASSERT_TRUE(jobs().AppendGenerations("job-3", batch).ok());
  EXPECT_EQ(jobs().ListSweepJobs("sweep-2")->at(1).candidates_evaluated, 1);

  for (const char* unknown : {"sweep-3", "sweep-1", "", "job-2"}) {
    EXPECT_EQ(jobs().ListSweepJobs(unknown).status().code(), absl::StatusCode::kNotFound)
        << unknown;
  }
  EXPECT_EQ(jobs().CreateSweep({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<JobRecord> broken = {MakeJob("x"),
                                   MakeJob("y", std::numeric_limits<double>::quiet_NaN())};
  EXPECT_EQ(jobs().CreateSweep(broken).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*jobs().CreateJob(MakeJob()), "job-6");  // Nothing of the broken sweep stayed.
  EXPECT_EQ(jobs().ListJobs(std::nullopt, std::nullopt, 0, 100)->size(), 6u);
}

TEST_P(StoreConformanceTest, EmptyStringsAndBlobsRoundTrip) {
  const std::string id = *jobs().CreateJob(JobRecord{});
  GenerationBatch batch;
  batch.candidates.push_back(CandidateRecord{});
  ASSERT_TRUE(jobs().AppendGenerations(id, batch).ok());
  JobRecord loaded = *jobs().GetJob(id);
  EXPECT_EQ(loaded.request, "");
  EXPECT_EQ(loaded.checkpoint, "");
  EXPECT_FALSE(loaded.best.has_value());
  CandidatePage page = AllCandidates(jobs(), id);
  ASSERT_EQ(page.candidates.size(), 1u);
  ExpectCandidateEq(page.candidates[0], CandidateRecord{});
}

TEST_P(StoreConformanceTest, CandidateRoundTripKeepsEveryFieldExactly) {
  const std::string id = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().MarkRunning(id, 1700000001.125).ok());

  GenerationBatch batch;
  batch.first_generation = 0;
  batch.last_generation = 2;
  CandidateRecord all_set;
  all_set.config_json = "{\"ks\":[3,5,7],\"e\":[4,6]}";
  all_set.accuracy = 0.1 + 0.2;  // Not representable exactly in decimal.
  all_set.latency_ms = std::numeric_limits<double>::denorm_min();
  all_set.energy_mj = std::numeric_limits<double>::max();
  all_set.size_mb = -1e-310;
  all_set.bitops = std::numeric_limits<double>::infinity();
  all_set.feasible = true;
  CandidateRecord none_set;
  none_set.config_json = "{}";
  none_set.feasible = false;
  none_set.generation = 1;
  none_set.times_seen = 3;
  CandidateRecord some_set;
  some_set.config_json = "{\"x\":1}";
  some_set.accuracy = 1.0 / 3.0;
  some_set.bitops = 123456789012345.0;
  some_set.feasible = false;
  some_set.id = 999;  // Ignored, as is its front flag.
  some_set.generation = 2;
  some_set.times_seen = int64_t{1} << 40;
  some_set.on_pareto_front = true;
  batch.candidates = {all_set, none_set, some_set};
  batch.candidates_evaluated = 3;
  batch.rejected_draws = 12345678901;
  batch.best = all_set;
  batch.best_batch_index = 0;
  batch.checkpoint = std::string("\0\x01\x02\0end", 7);
  batch.elapsed_s = 0.1 + 0.7;
  // Values that need every digit, in the engine's order (not sorted).
  batch.engine_metrics = {{"weight_loss", 0.1 + 0.2}, {"arch_loss", -1e-300}, {"layers", 24}};
  absl::StatusOr<std::vector<int64_t>> ids = jobs().AppendGenerations(id, batch);
  ASSERT_TRUE(ids.ok()) << ids.status();

  CandidatePage page = AllCandidates(jobs(), id);
  EXPECT_EQ(page.total, 3);
  ASSERT_EQ(page.candidates.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ExpectCandidateEq(page.candidates[i], batch.candidates[i]);
    EXPECT_EQ(page.candidates[i].id, (*ids)[i]);
    EXPECT_FALSE(page.candidates[i].on_pareto_front);
  }
  EXPECT_LT((*ids)[0], (*ids)[1]);
  EXPECT_LT((*ids)[1], (*ids)[2]);

  JobRecord expected = MakeJob();
  expected.id = id;
  expected.state = JobState::kRunning;
  expected.started_unix_s = 1700000001.125;
  expected.generations_done = 2;
  expected.candidates_evaluated = 3;
  expected.rejected_draws = 12345678901;
  expected.best = all_set;
  expected.best->id = (*ids)[0];
  expected.checkpoint = batch.checkpoint;
  expected.elapsed_s = batch.elapsed_s;
  expected.engine_metrics = batch.engine_metrics;
  ExpectJobEq(*jobs().GetJob(id), expected);
}

TEST_P(StoreConformanceTest, NegativeZeroReadsBackAsZero) {
  const std::string id = *jobs().CreateJob(MakeJob("s", -0.0));
  GenerationBatch batch = MakeBatch(0, 1);
  batch.candidates[0].latency_ms = -0.0;
  batch.best->latency_ms = -0.0;
  batch.elapsed_s = -0.0;
  ASSERT_TRUE(jobs().AppendGenerations(id, batch).ok());
  const JobRecord job = *jobs().GetJob(id);
  EXPECT_FALSE(std::signbit(job.created_unix_s));
  EXPECT_FALSE(std::signbit(job.elapsed_s));
  EXPECT_FALSE(std::signbit(*job.best->latency_ms));
  EXPECT_FALSE(std::signbit(*AllCandidates(jobs(), id).candidates[0].latency_ms));

  MeasurementRow row = Measurement("[1]", -0.0, "fp32");
  row.seconds = -0.0;
  ASSERT_TRUE(datasets().CreateDataset({"fm", "fmnist_mbv2", "", -0.0, 0}, {row}).ok());
  EXPECT_FALSE(std::signbit(datasets().GetDataset("fm")->created_unix_s));
  const MeasurementRow stored = datasets().ListMeasurements("fm", std::nullopt)->at(0);
  EXPECT_FALSE(std::signbit(stored.accuracy));
  EXPECT_FALSE(std::signbit(stored.seconds));
}

TEST_P(StoreConformanceTest, AppendGenerationReturnsIdsAndTheBestGetsTheIndexedOne) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const std::string other = *jobs().CreateJob(MakeJob());
  GenerationBatch first = MakeBatch(0, 5);
  first.best = first.candidates[3];
  first.best_batch_index = 3;
  absl::StatusOr<std::vector<int64_t>> first_ids = jobs().AppendGenerations(id, first);
  ASSERT_TRUE(first_ids.ok()) << first_ids.status();
  ASSERT_EQ(first_ids->size(), 5u);
  EXPECT_TRUE(std::is_sorted(first_ids->begin(), first_ids->end()));
  std::vector<int64_t> stored_ids;
  for (const CandidateRecord& c : AllCandidates(jobs(), id).candidates) stored_ids.push_back(c.id);
  EXPECT_EQ(stored_ids, *first_ids);
  EXPECT_EQ(jobs().GetJob(id)->best->id, (*first_ids)[3]);

  // Another job's candidates get ids above every earlier one.
  absl::StatusOr<std::vector<int64_t>> other_ids = jobs().AppendGenerations(other, MakeBatch(0, 2));
  ASSERT_TRUE(other_ids.ok());
  EXPECT_GT(other_ids->front(), first_ids->back());

  // A best stored earlier keeps the id the caller gives (no index).
  GenerationBatch second = MakeBatch(1, 5, 5);
  second.best = first.candidates[3];
  second.best->id = (*first_ids)[3];
  second.best->generation = 0;
  second.best_batch_index = -1;
  absl::StatusOr<std::vector<int64_t>> second_ids = jobs().AppendGenerations(id, second);
  ASSERT_TRUE(second_ids.ok());
  EXPECT_GT(second_ids->front(), other_ids->back());
  EXPECT_EQ(jobs().GetJob(id)->best->id, (*first_ids)[3]);
  EXPECT_EQ(jobs().GetJob(id)->best->generation, 0);

  // Any caller-given id is kept as is.
  GenerationBatch third = MakeBatch(2, 5, 10);
  third.best = MakeCandidate(999999);
  third.best->id = 424242;
  third.best_batch_index = -1;
  ASSERT_TRUE(jobs().AppendGenerations(id, third).ok());
  EXPECT_EQ(jobs().GetJob(id)->best->id, 424242);

  // An index out of range, or without a best, is refused and stores nothing.
  const JobRecord before = *jobs().GetJob(id);
  GenerationBatch bad = MakeBatch(3, 5, 15);
  bad.best_batch_index = 5;
  EXPECT_EQ(jobs().AppendGenerations(id, bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.best_batch_index = 0;
  bad.best.reset();
  EXPECT_EQ(jobs().AppendGenerations(id, bad).status().code(), absl::StatusCode::kInvalidArgument);
  ExpectJobEq(*jobs().GetJob(id), before);
  EXPECT_EQ(AllCandidates(jobs(), id).total, 15);

  // No best clears it; an empty batch gets no ids.
  absl::StatusOr<std::vector<int64_t>> empty = jobs().AppendGenerations(id, MakeBatch(3, 0, 15));
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
  EXPECT_FALSE(jobs().GetJob(id)->best.has_value());
}

TEST_P(StoreConformanceTest, GenerationsMustComeInOrder) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const JobRecord initial = *jobs().GetJob(id);

  auto expect_rejected = [&](int generation, const JobRecord& before, int64_t rows_before) {
    absl::Status status = jobs().AppendGenerations(id, MakeBatch(generation, 4, 1000)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    ExpectJobEq(*jobs().GetJob(id), before);
    EXPECT_EQ(AllCandidates(jobs(), id).total, rows_before);
  };
  expect_rejected(1, initial, 0);  // The first batch must be generation 0.
  expect_rejected(-1, initial, 0);

  ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(0, 4)).ok());
  JobRecord after_zero = *jobs().GetJob(id);
  EXPECT_EQ(after_zero.generations_done, 0);
  EXPECT_EQ(after_zero.candidates_evaluated, 4);
  expect_rejected(0, after_zero, 4);  // Generation 0 only once.
  expect_rejected(2, after_zero, 4);

  ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(1, 4, 4)).ok());
  ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(2, 4, 8)).ok());
  JobRecord after_two = *jobs().GetJob(id);
  EXPECT_EQ(after_two.generations_done, 2);
  EXPECT_EQ(after_two.candidates_evaluated, 12);
  EXPECT_EQ(after_two.checkpoint, MakeBatch(2, 4).checkpoint);
  expect_rejected(2, after_two, 12);
  expect_rejected(4, after_two, 12);

  CandidatePage page = AllCandidates(jobs(), id);
  ASSERT_EQ(page.candidates.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(page.candidates[i].generation, i / 4);

  EXPECT_EQ(jobs().AppendGenerations("job-99", MakeBatch(0, 1)).status().code(),
            absl::StatusCode::kNotFound);
}

// The record of one batch of generations first..last of MakeBatch's candidates.
GenerationBatch GroupBatch(int first, int last, std::vector<CandidateRecord> candidates,
                           int64_t evaluated, int64_t rejected) {
  GenerationBatch batch;
  batch.first_generation = first;
  batch.last_generation = last;
  batch.candidates = std::move(candidates);
  batch.candidates_evaluated = evaluated;
  batch.rejected_draws = rejected;
  batch.checkpoint = absl::StrCat("after ", last);
  batch.elapsed_s = last;
  return batch;
}

// MakeCandidate(i, feasible) met first in `generation`, `times` times.
CandidateRecord Met(int i, int generation, int64_t times, bool feasible = true) {
  CandidateRecord candidate = MakeCandidate(i, feasible);
  if (!feasible) candidate.accuracy.reset();
  candidate.generation = generation;
  candidate.times_seen = times;
  return candidate;
}

TEST_P(StoreConformanceTest, ANetworkIsOneRowOfItsJobCountingEveryTimeItWasMet) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const std::string other = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().MarkRunning(id, 1).ok());

  // Generations 0 and 1 in one batch: network 1 twice (the later report's figures are not
  // stored), network 2, and the infeasible network 3.
  CandidateRecord one_again = Met(1, 1, 2);
  one_again.accuracy = 0.25;
  GenerationBatch first =
      GroupBatch(0, 1, {Met(1, 0, 1), Met(2, 1, 5), one_again, Met(3, 0, 4, false)},
                 /*evaluated=*/8, /*rejected=*/4);
  first.best = first.candidates[1];
  first.best_batch_index = 1;
  absl::StatusOr<std::vector<int64_t>> first_ids = jobs().AppendGenerations(id, first);
  ASSERT_TRUE(first_ids.ok()) << first_ids.status();
  ASSERT_EQ(first_ids->size(), 4u);
  EXPECT_EQ((*first_ids)[2], (*first_ids)[0]) << "one row per network";
  EXPECT_LT((*first_ids)[0], (*first_ids)[1]);
  EXPECT_LT((*first_ids)[1], (*first_ids)[3]);

  // Another job's row of the same network is its own.
  absl::StatusOr<std::vector<int64_t>> other_ids =
      jobs().AppendGenerations(other, GroupBatch(0, 0, {Met(1, 0, 1)}, 1, 0));
  ASSERT_TRUE(other_ids.ok()) << other_ids.status();
  EXPECT_GT((*other_ids)[0], (*first_ids)[3]);

  // A later batch counts the stored networks and adds a new one; the best stays.
  GenerationBatch second =
      GroupBatch(2, 2, {Met(1, 2, 3), Met(4, 2, 1), Met(3, 2, 2, false)}, 12, 6);
  second.best = first.candidates[1];
  second.best->id = (*first_ids)[1];
  absl::StatusOr<std::vector<int64_t>> second_ids = jobs().AppendGenerations(id, second);
  ASSERT_TRUE(second_ids.ok()) << second_ids.status();
  EXPECT_EQ((*second_ids)[0], (*first_ids)[0]);
  EXPECT_GT((*second_ids)[1], (*other_ids)[0]);
  EXPECT_EQ((*second_ids)[2], (*first_ids)[3]);

  const std::vector<CandidateRecord> rows = AllCandidates(jobs(), id).candidates;
  ASSERT_EQ(rows.size(), 4u);
  ExpectCandidateEq(rows[0], Met(1, 0, 6));
  ExpectCandidateEq(rows[1], Met(2, 1, 5));
  ExpectCandidateEq(rows[2], Met(3, 0, 6, false));
  ExpectCandidateEq(rows[3], Met(4, 2, 1));
  EXPECT_EQ(ListOrDie(jobs(), Query(id, 10, CandidateOrder::kId, true)).total, 3);
  EXPECT_EQ(ListOrDie(jobs(), Query(id, 10, CandidateOrder::kId, false)).total, 1);

  // The counts add up to the job's running totals.
  const JobRecord job = *jobs().GetJob(id);
  EXPECT_EQ(job.generations_done, 2);
  EXPECT_EQ(job.candidates_evaluated, 12);
  EXPECT_EQ(job.rejected_draws, 6);
  int64_t feasible_seen = 0;
  int64_t infeasible_seen = 0;
  for (const CandidateRecord& row : rows) {
    (row.feasible ? feasible_seen : infeasible_seen) += row.times_seen;
  }
  EXPECT_EQ(feasible_seen, job.candidates_evaluated);
  EXPECT_EQ(infeasible_seen, job.rejected_draws);
  ASSERT_TRUE(job.best.has_value());
  EXPECT_EQ(job.best->id, (*first_ids)[1]);
  EXPECT_EQ(job.best->times_seen, 5) << "the count of the best's row";
  const std::vector<CandidateRecord> other_rows = AllCandidates(jobs(), other).candidates;
  ASSERT_EQ(other_rows.size(), 1u);
  EXPECT_EQ(other_rows[0].times_seen, 1);

  // A NaN in the report of a stored network is refused like any, and nothing changes.
  GenerationBatch bad = GroupBatch(3, 3, {Met(4, 3, 1), Met(1, 3, 1)}, 14, 6);
  bad.candidates[1].latency_ms = std::nan("");
  const absl::Status refused = jobs().AppendGenerations(id, bad).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("candidate latency_ms is NaN"));
  ExpectJobEq(*jobs().GetJob(id), job);
  EXPECT_EQ(AllCandidates(jobs(), id).candidates[3].times_seen, 1);
}

TEST_P(StoreConformanceTest, ABatchOfGenerationsIsCheckedWholeAndStoredAtOnce) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const JobRecord before = *jobs().GetJob(id);
  const auto expect_invalid = [&](const GenerationBatch& batch, const std::string& field) {
    const absl::Status status = jobs().AppendGenerations(id, batch).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(field));
    ExpectJobEq(*jobs().GetJob(id), before);
    EXPECT_EQ(AllCandidates(jobs(), id).total, 0);
  };
  expect_invalid(GroupBatch(1, 0, {}, 0, 0), "last_generation");
  expect_invalid(GroupBatch(0, 3, {Met(1, 0, 1), Met(2, 4, 1)}, 2, 0), "candidates[1].generation");
  expect_invalid(GroupBatch(0, 3, {Met(1, 0, 1), Met(2, 3, 0)}, 2, 0), "candidates[1].times_seen");
  expect_invalid(GroupBatch(0, 3, {Met(1, 0, 1)}, -1, 0), "candidates_evaluated");
  expect_invalid(GroupBatch(0, 3, {Met(1, 0, 1)}, 1, -1), "rejected_draws");
  const auto with_metrics = [&](std::vector<std::pair<std::string, double>> metrics) {
    GenerationBatch batch = GroupBatch(0, 3, {Met(1, 0, 1)}, 1, 0);
    batch.engine_metrics = std::move(metrics);
    return batch;
  };
  expect_invalid(with_metrics({{"Loss", 1}}), "engine_metrics[0]");
  expect_invalid(with_metrics({{"", 1}}), "engine_metrics[0]");
  expect_invalid(with_metrics({{"a=b", 1}}), "engine_metrics[0]");
  expect_invalid(with_metrics({{"loss", 1}, {"cost", std::nan("")}}), "engine_metrics[1] (cost)");
  expect_invalid(with_metrics({{"loss", 1}, {"loss", 2}}), "appears twice");
  expect_invalid(with_metrics(std::vector<std::pair<std::string, double>>(kMaxEngineMetrics + 1,
                                                                          {"loss", 1.0})),
                 "at most 16");

  // Generations 0..3 at once, then 4..4: the next batch starts after the last one stored.
  ASSERT_TRUE(
      jobs().AppendGenerations(id, GroupBatch(0, 3, {Met(1, 0, 1), Met(2, 3, 1)}, 2, 0)).ok());
  JobRecord stored = *jobs().GetJob(id);
  EXPECT_EQ(stored.generations_done, 3);
  EXPECT_EQ(stored.checkpoint, "after 3");
  for (const int first : {0, 3, 5}) {
    EXPECT_EQ(jobs().AppendGenerations(id, GroupBatch(first, 5, {}, 2, 0)).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << first;
  }
  ExpectJobEq(*jobs().GetJob(id), stored);
  ASSERT_TRUE(jobs().AppendGenerations(id, GroupBatch(4, 4, {Met(1, 4, 1)}, 3, 0)).ok());
  EXPECT_EQ(jobs().GetJob(id)->generations_done, 4);
}

TEST_P(StoreConformanceTest, NanIsRejectedNamingTheFieldAndNothingIsStored) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const JobRecord before = *jobs().GetJob(id);
  const double nan = std::nan("");
  const auto expect_nan = [&](const GenerationBatch& batch, const std::string& field) {
    absl::Status status = jobs().AppendGenerations(id, batch).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(field));
    ExpectJobEq(*jobs().GetJob(id), before);
    EXPECT_EQ(AllCandidates(jobs(), id).total, 0);
  };
  GenerationBatch batch = MakeBatch(0, 100);
  batch.candidates[57].latency_ms = nan;
  expect_nan(batch, "candidate latency_ms");
  batch = MakeBatch(0, 100);
  batch.best->energy_mj = nan;
  expect_nan(batch, "best energy_mj");
  batch = MakeBatch(0, 100);
  batch.elapsed_s = nan;
  expect_nan(batch, "elapsed_s");

  // The job still takes generation 0, and later ids stay ascending.
  ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(0, 100)).ok());
  EXPECT_EQ(AllCandidates(jobs(), id).total, 100);

  EXPECT_EQ(jobs().CreateJob(MakeJob("s", nan)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().MarkRunning(id, nan).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().FinishJob(id, JobState::kFailed, "", nan, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().GetJob(id)->state, JobState::kQueued);
  EXPECT_THAT(*jobs().ListJobs(std::nullopt, std::nullopt, 0, 10), ::testing::SizeIs(1));
  TableVersionRecord table = MakeTable("note10", "1");
  table.uploaded_unix_s = nan;
  EXPECT_EQ(devices().AddTableVersion(table).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*devices().ListDevices(), IsEmpty());
  MeasurementRow row = Measurement("[1]", 0.5, "fp32");
  row.created_unix_s = nan;
  EXPECT_EQ(datasets().CreateDataset({"fm", "fmnist_mbv2", "", 1, 0}, {row}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(datasets().GetDataset("fm").status().code(), absl::StatusCode::kNotFound);
  PredictorRecord predictor = Predictor("v1", true);
  predictor.created_unix_s = nan;
  EXPECT_EQ(predictors().AddPredictor(predictor).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*predictors().ListPredictors("fmnist_mbv2"), IsEmpty());
  const std::string training = *training_jobs().CreateTrainingJob({});
  EXPECT_EQ(training_jobs().UpdateTrainingProgress(training, "fp32", 1, 2, nan).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(training_jobs().GetTrainingJob(training)->stage, "");
}

TEST_P(StoreConformanceTest, JobLifecycle) {
  const std::string id = *jobs().CreateJob(MakeJob());
  EXPECT_EQ(jobs().MarkRunning("job-9", 1.0).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().MarkRunning(id, 100.0).ok());
  ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(0, 3)).ok());
  // A resumed job is marked running again.
  ASSERT_TRUE(jobs().MarkRunning(id, 100.0).ok());
  EXPECT_EQ(jobs().GetJob(id)->state, JobState::kRunning);

  EXPECT_EQ(jobs().FinishJob(id, JobState::kRunning, "", 1, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().FinishJob(id, static_cast<JobState>(42), "", 1, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().FinishJob("job-9", JobState::kFailed, "", 1, 1, {}).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().FinishJob(id, JobState::kFailed, "predictor exploded", 200.5, 99.25, {}).ok());

  JobRecord job = *jobs().GetJob(id);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.error, "predictor exploded");
  EXPECT_EQ(job.started_unix_s, 100.0);
  EXPECT_EQ(job.finished_unix_s, 200.5);
  EXPECT_EQ(job.elapsed_s, 99.25);
  EXPECT_EQ(job.pareto_front_size, 0);
  EXPECT_EQ(job.checkpoint, MakeBatch(0, 3).checkpoint);  // Kept.

  EXPECT_EQ(jobs().FinishJob(id, JobState::kCancelled, "", 300, 1, {}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().MarkRunning(id, 300).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().AppendGenerations(id, MakeBatch(1, 3, 3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AllCandidates(jobs(), id).total, 3);
  ExpectJobEq(*jobs().GetJob(id), job);

  // A queued job can be cancelled directly.
  const std::string queued = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().FinishJob(queued, JobState::kCancelled, "by request", 5, 0, {}).ok());
  EXPECT_EQ(jobs().GetJob(queued)->state, JobState::kCancelled);
}

TEST_P(StoreConformanceTest, VerificationStoresMeasurementsBesideThePredictions) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const std::string other = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().MarkRunning(id, 100.0).ok());
  GenerationBatch batch = MakeBatch(0, 4);
  batch.candidates[3].feasible = false;
  batch.candidates[3].accuracy.reset();
  const std::vector<int64_t> ids = *jobs().AppendGenerations(id, batch);
  const std::vector<int64_t> other_ids = *jobs().AppendGenerations(other, MakeBatch(0, 1));
  const CandidateMeasurement first = MakeMeasurement(0.875);
  const CandidateMeasurement second = MakeMeasurement(0.9);

  // Measurements belong to the verification stage only.
  EXPECT_EQ(jobs().RecordVerification(id, ids[1], first, ids[1]).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().BeginVerification(id, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().BeginVerification("job-9", 2).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().BeginVerification(id, 2).ok());
  ASSERT_TRUE(jobs().BeginVerification(id, 2).ok()) << "the same count again is a no-op";
  EXPECT_EQ(jobs().BeginVerification(id, 3).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().AppendGenerations(id, MakeBatch(1, 2, 4)).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "the search stage has ended";
  JobRecord job = *jobs().GetJob(id);
  EXPECT_EQ(job.stage, JobStage::kVerification);
  EXPECT_EQ(job.verification_finalists, 2);
  EXPECT_EQ(job.verification_measured, 0);
  EXPECT_FALSE(job.verified_best.has_value());
  EXPECT_EQ(jobs().GetJob(other)->stage, JobStage::kSearch);

  ASSERT_TRUE(jobs().RecordVerification(id, ids[1], first, ids[1]).ok());
  job = *jobs().GetJob(id);
  EXPECT_EQ(job.verification_measured, 1);
  ASSERT_TRUE(job.verified_best.has_value());
  EXPECT_EQ(job.verified_best->id, ids[1]);
  CandidateRecord expected_best = batch.candidates[1];
  expected_best.measured = first;
  ExpectCandidateEq(*job.verified_best, expected_best);
  ASSERT_TRUE(job.best.has_value());
  EXPECT_EQ(job.best->id, ids[0]);
  EXPECT_FALSE(job.best->measured.has_value()) << "the predicted best is not measured yet";

  // Refused: nothing changes.
  const struct {
    int64_t candidate;
    CandidateMeasurement measurement;
    int64_t best;
    absl::StatusCode code;
  } refused[] = {
      {ids[0], second, ids[2], absl::StatusCode::kInvalidArgument},        // Best not measured.
      {ids[3], second, ids[1], absl::StatusCode::kInvalidArgument},        // Infeasible.
      {other_ids[0], second, ids[1], absl::StatusCode::kInvalidArgument},  // Another job's.
      {ids[0], second, other_ids[0], absl::StatusCode::kInvalidArgument},
      {12345, second, ids[1], absl::StatusCode::kInvalidArgument},
      {ids[0], MakeMeasurement(std::nan("")), ids[0], absl::StatusCode::kInvalidArgument},
      {ids[0], MakeMeasurement(1.5), ids[0], absl::StatusCode::kInvalidArgument},
      {ids[0], MakeMeasurement(-0.5), ids[0], absl::StatusCode::kInvalidArgument},
      {ids[0],
       [] {
         auto m = MakeMeasurement(0.5);
         m.seconds = -1;
         return m;
       }(),
       ids[0], absl::StatusCode::kInvalidArgument},
      {ids[0],
       [] {
         auto m = MakeMeasurement(0.5);
         m.method = "";
         return m;
       }(),
       ids[0], absl::StatusCode::kInvalidArgument},
      {ids[0],
       [] {
         auto m = MakeMeasurement(0.5);
         m.split = "";
         return m;
       }(),
       ids[0], absl::StatusCode::kInvalidArgument},
      {ids[1], second, ids[1], absl::StatusCode::kFailedPrecondition},  // Measured otherwise.
  };
  for (const auto& r : refused) {
    SCOPED_TRACE(absl::StrCat("candidate ", r.candidate, " best ", r.best));
    EXPECT_EQ(jobs().RecordVerification(id, r.candidate, r.measurement, r.best).code(), r.code);
  }
  EXPECT_EQ(jobs().RecordVerification("job-9", ids[0], second, ids[0]).code(),
            absl::StatusCode::kNotFound);
  ExpectJobEq(*jobs().GetJob(id), job);

  ASSERT_TRUE(jobs().RecordVerification(id, ids[0], second, ids[1]).ok());
  job = *jobs().GetJob(id);
  EXPECT_EQ(job.verification_measured, 2);
  EXPECT_EQ(job.verified_best->id, ids[1]) << "the caller names the best";
  ASSERT_TRUE(job.best->measured.has_value());
  ExpectMeasurementEq(*job.best->measured, second);
  // Idempotent per candidate: the same measurement again counts once and may name the best.
  ASSERT_TRUE(jobs().RecordVerification(id, ids[0], second, ids[0]).ok());
  job = *jobs().GetJob(id);
  EXPECT_EQ(job.verification_measured, 2);
  EXPECT_EQ(job.verified_best->id, ids[0]);
  // Every finalist is measured: a third candidate is refused.
  EXPECT_EQ(jobs().RecordVerification(id, ids[2], first, ids[0]).code(),
            absl::StatusCode::kFailedPrecondition);

  const CandidatePage page = AllCandidates(jobs(), id);
  ASSERT_EQ(page.candidates.size(), 4u);
  ExpectMeasurementEq(page.candidates[0].measured.value_or(CandidateMeasurement{}), second);
  ExpectMeasurementEq(page.candidates[1].measured.value_or(CandidateMeasurement{}), first);
  EXPECT_FALSE(page.candidates[2].measured.has_value());
  EXPECT_FALSE(page.candidates[3].measured.has_value());
  EXPECT_EQ(page.candidates[0].accuracy, batch.candidates[0].accuracy) << "predicted, beside";
  const std::vector<JobRecord> listed = *jobs().ListJobs(std::nullopt, std::nullopt, 0, 10);
  ASSERT_EQ(listed.size(), 2u);
  ExpectJobEq(listed[1], job, /*with_checkpoint=*/false);

  // The end keeps the stage and the measurements, and takes no more.
  ASSERT_TRUE(jobs().FinishJob(id, JobState::kSucceeded, "", 200, 10, {ids[0]}).ok());
  job.state = JobState::kSucceeded;
  job.finished_unix_s = 200;
  job.elapsed_s = 10;
  job.pareto_front_size = 1;
  ExpectJobEq(*jobs().GetJob(id), job);
  EXPECT_EQ(jobs().RecordVerification(id, ids[0], second, ids[0]).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().BeginVerification(id, 2).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, NewCandidatesAreNotMeasured) {
  const std::string id = *jobs().CreateJob(MakeJob());
  GenerationBatch batch = MakeBatch(0, 2);
  batch.candidates[0].measured = MakeMeasurement(0.5);  // Ignored.
  batch.best->measured = MakeMeasurement(0.5);
  ASSERT_TRUE(jobs().AppendGenerations(id, batch).ok());
  for (const CandidateRecord& candidate : AllCandidates(jobs(), id).candidates) {
    EXPECT_FALSE(candidate.measured.has_value());
  }
  const JobRecord job = *jobs().GetJob(id);
  EXPECT_FALSE(job.best->measured.has_value());
  EXPECT_EQ(job.stage, JobStage::kSearch);
  EXPECT_EQ(job.verification_finalists, 0);
  EXPECT_FALSE(job.verified_best.has_value());
}

// Candidates with spread, tied and missing metrics, some infeasible.
std::vector<CandidateRecord> OrderingCandidates() {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> value(0, 9);  // Few values: many ties.
  std::vector<CandidateRecord> candidates;
  for (int i = 0; i < 120; ++i) {
    CandidateRecord candidate;
    candidate.config_json = absl::StrCat("{\"i\":", i, "}");
    auto metric = [&](double scale) -> std::optional<double> {
      if (value(rng) == 0) return std::nullopt;
      return scale * value(rng) - scale;  // Includes negatives and zero.
    };
    candidate.accuracy = metric(0.1);
    candidate.latency_ms = metric(3);
    candidate.energy_mj = metric(0.5);
    candidate.size_mb = metric(2);
    candidate.bitops = metric(1e9);
    candidate.feasible = value(rng) < 6;
    candidates.push_back(candidate);
  }
  return candidates;
}

// Whether `a` comes strictly before `b` in `order` (unset figures last, ties by id).
bool SortsBefore(CandidateOrder order, const CandidateRecord& a, const CandidateRecord& b) {
  std::optional<double> CandidateRecord::*metric = CandidateOrderMetric(order);
  if (metric != nullptr) {
    const std::optional<double>& x = a.*metric;
    const std::optional<double>& y = b.*metric;
    if (x.has_value() != y.has_value()) return x.has_value();
    if (x.has_value() && *x != *y) {
      return order == CandidateOrder::kAccuracyDesc ? *x > *y : *x < *y;
    }
  }
  return a.id < b.id;
}

TEST_P(StoreConformanceTest, ListCandidatesOrdersFiltersAndPages) {
  const std::string id = *jobs().CreateJob(MakeJob());
  const std::string other = *jobs().CreateJob(MakeJob());
  std::vector<CandidateRecord> all = OrderingCandidates();
  // Interleave generations with another job's so that ids are not contiguous per job.
  for (int g = 0; g < 4; ++g) {
    GenerationBatch batch;
    batch.first_generation = g;
    batch.last_generation = g;
    batch.candidates.assign(all.begin() + int64_t{g} * 30, all.begin() + (int64_t{g} + 1) * 30);
    for (CandidateRecord& candidate : batch.candidates) candidate.generation = g;
    ASSERT_TRUE(jobs().AppendGenerations(id, batch).ok());
    ASSERT_TRUE(jobs().AppendGenerations(other, MakeBatch(g, 7)).ok());
  }
  // The stored rows with their ids, in id order.
  std::vector<CandidateRecord> stored = AllCandidates(jobs(), id).candidates;
  ASSERT_EQ(stored.size(), all.size());

  struct Order {
    CandidateOrder order;
    bool descending;
    std::optional<double> CandidateRecord::*metric;  // Null for id order.
  };
  const Order orders[] = {
      {CandidateOrder::kId, false, nullptr},
      {CandidateOrder::kAccuracyDesc, true, &CandidateRecord::accuracy},
      {CandidateOrder::kLatencyAsc, false, &CandidateRecord::latency_ms},
      {CandidateOrder::kEnergyAsc, false, &CandidateRecord::energy_mj},
      {CandidateOrder::kSizeAsc, false, &CandidateRecord::size_mb},
      {CandidateOrder::kBitopsAsc, false, &CandidateRecord::bitops},
  };
  const std::optional<bool> filters[] = {std::nullopt, true, false};
  for (const Order& order : orders) {
    for (const std::optional<bool>& feasible : filters) {
      SCOPED_TRACE(absl::StrCat("order ", static_cast<int>(order.order), " feasible ",
                                feasible ? static_cast<int>(*feasible) : -1));
      std::vector<CandidateRecord> expected;
      for (const CandidateRecord& c : stored) {
        if (!feasible || c.feasible == *feasible) expected.push_back(c);
      }
      std::sort(expected.begin(), expected.end(),
                [&](const CandidateRecord& a, const CandidateRecord& b) {
                  if (order.metric != nullptr) {
                    const std::optional<double>& x = a.*order.metric;
                    const std::optional<double>& y = b.*order.metric;
                    if (x.has_value() != y.has_value()) return x.has_value();  // Unset last.
                    if (x && *x != *y) return order.descending ? *x > *y : *x < *y;
                  }
                  return a.id < b.id;
                });

      // Pages of 7 reassemble the whole order.
      std::vector<int64_t> paged_ids;
      for (int64_t offset = 0;; offset += 7) {
        CandidatePage page = ListOrDie(jobs(), Query(id, 7, order.order, feasible, offset));
        EXPECT_EQ(page.total, static_cast<int64_t>(expected.size()));
        if (page.candidates.empty()) break;
        EXPECT_LE(page.candidates.size(), 7u);
        for (const CandidateRecord& c : page.candidates) paged_ids.push_back(c.id);
      }
      std::vector<int64_t> expected_ids;
      expected_ids.reserve(expected.size());
      for (const CandidateRecord& c : expected) expected_ids.push_back(c.id);
      EXPECT_EQ(paged_ids, expected_ids);

      CandidatePage whole = ListOrDie(jobs(), Query(id, 1000, order.order, feasible));
      ASSERT_EQ(whole.candidates.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        ExpectCandidateEq(whole.candidates[i], expected[i]);
      }
    }
  }

  // Past the end: no rows, the total still counts.
  CandidatePage beyond = ListOrDie(jobs(), Query(id, 10, CandidateOrder::kId, std::nullopt, 500));
  EXPECT_THAT(beyond.candidates, IsEmpty());
  EXPECT_EQ(beyond.total, 120);
  EXPECT_EQ(ListOrDie(jobs(), Query(other, 10)).total, 28);
}

// Every page of every order and filter of a job's candidates, each row with all its fields
// but the front flag.
std::vector<std::string> EveryPage(JobStore& jobs, const std::string& job_id) {
  const CandidateOrder orders[] = {CandidateOrder::kId,         CandidateOrder::kAccuracyDesc,
                                   CandidateOrder::kLatencyAsc, CandidateOrder::kEnergyAsc,
                                   CandidateOrder::kSizeAsc,    CandidateOrder::kBitopsAsc};
  const std::optional<bool> filters[] = {std::nullopt, true, false};
  const auto figure = [](const std::optional<double>& value) {
    return value ? absl::StrCat(*value) : std::string("-");
  };
  std::vector<std::string> pages;
  for (const CandidateOrder order : orders) {
    for (const std::optional<bool>& feasible : filters) {
      for (const int limit : {7, 1000}) {
        for (int64_t offset = 0;; offset += limit) {
          const CandidatePage page = ListOrDie(jobs, Query(job_id, limit, order, feasible, offset));
          std::string text = absl::StrCat("order ", static_cast<int>(order), " feasible ",
                                          feasible ? static_cast<int>(*feasible) : -1, " limit ",
                                          limit, " offset ", offset, " total ", page.total, ":");
          for (const CandidateRecord& c : page.candidates) {
            absl::StrAppend(&text, " [", c.id, "|", c.generation, "|", c.times_seen, "|",
                            c.config_json, "|", figure(c.accuracy), "|", figure(c.latency_ms), "|",
                            figure(c.energy_mj), "|", figure(c.size_mb), "|", figure(c.bitops), "|",
                            c.feasible, "|", c.modelled, "]");
          }
          pages.push_back(std::move(text));
          if (page.candidates.empty()) break;
        }
      }
    }
  }
  return pages;
}

// Keyset paging while the job adds rows between pages: in every order and filter, each row
// stored before the listing began is listed exactly once, no row twice, in the order; a
// listing by offsets in the same situation repeats rows (what the cursor is for).
TEST_P(StoreConformanceTest, ACursorListsEveryRowOnceWhileRowsAreAdded) {
  const std::vector<CandidateRecord> all = OrderingCandidates();
  const CandidateOrder orders[] = {CandidateOrder::kId,         CandidateOrder::kAccuracyDesc,
                                   CandidateOrder::kLatencyAsc, CandidateOrder::kEnergyAsc,
                                   CandidateOrder::kSizeAsc,    CandidateOrder::kBitopsAsc};
  for (const CandidateOrder order : orders) {
    for (const std::optional<bool> feasible : {std::optional<bool>(), std::optional<bool>(true)}) {
      SCOPED_TRACE(absl::StrCat("order ", static_cast<int>(order), " feasible ",
                                feasible.has_value() ? (*feasible ? "1" : "0") : "-"));
      const std::string id = *jobs().CreateJob(MakeJob());
      GenerationBatch first;
      first.first_generation = first.last_generation = 0;
      first.candidates.assign(all.begin(), all.begin() + 60);
      ASSERT_TRUE(jobs().AppendGenerations(id, first).ok());
      std::set<int64_t> before_listing;
      for (const CandidateRecord& row : AllCandidates(jobs(), id).candidates) {
        if (!feasible.has_value() || row.feasible == *feasible) before_listing.insert(row.id);
      }
      std::vector<CandidateRecord> listed;
      CandidateQuery query = Query(id, 7, order, feasible);
      for (int page = 0; page < 100; ++page) {
        const CandidatePage got = ListOrDie(jobs(), query);
        if (got.candidates.empty()) break;
        listed.insert(listed.end(), got.candidates.begin(), got.candidates.end());
        const CandidateRecord& last = got.candidates.back();
        CandidateCursor cursor;
        cursor.id = last.id;
        if (std::optional<double> CandidateRecord::*metric = CandidateOrderMetric(order)) {
          cursor.key = last.*metric;
        }
        query.after = cursor;
        if (page < 8) {  // The job goes on: 7 more rows, anywhere in the order.
          GenerationBatch more;
          more.first_generation = more.last_generation = page + 1;
          more.candidates.assign(all.begin() + 60 + ptrdiff_t{7} * page,
                                 all.begin() + 67 + ptrdiff_t{7} * page);
          for (CandidateRecord& row : more.candidates) row.generation = page + 1;
          const absl::Status appended = jobs().AppendGenerations(id, more).status();
          ASSERT_TRUE(appended.ok()) << appended;
        }
      }
      std::set<int64_t> seen;
      for (const CandidateRecord& row : listed) {
        EXPECT_TRUE(seen.insert(row.id).second) << "row " << row.id << " listed twice";
      }
      for (const int64_t row : before_listing) EXPECT_TRUE(seen.count(row)) << "row " << row;
      // In the order: each row sorts after the one before.
      for (size_t i = 1; i < listed.size(); ++i) {
        EXPECT_TRUE(SortsBefore(order, listed[i - 1], listed[i])) << i;
      }
    }
  }
  // A cursor with an offset, or a NaN key, is refused.
  const std::string id = *jobs().CreateJob(MakeJob());
  CandidateQuery bad = Query(id, 5, CandidateOrder::kAccuracyDesc);
  bad.after = CandidateCursor{1, 0.5};
  bad.offset = 3;
  EXPECT_EQ(jobs().ListCandidates(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.offset = 0;
  bad.after->key = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(jobs().ListCandidates(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ListCandidatesIsTheSameWhetherOrNotTheJobHasEnded) {
  const std::vector<CandidateRecord> all = OrderingCandidates();
  // A job that meets networks again in later generations, interleaved with another so that
  // its ids are not contiguous.
  const std::string ended = *jobs().CreateJob(MakeJob());
  const std::string other = *jobs().CreateJob(MakeJob());
  for (int g = 0; g < 4; ++g) {
    GenerationBatch batch = GroupBatch(g, g, {}, 0, 0);
    for (int i = 0; i < 40; ++i) {
      CandidateRecord candidate = all[(g * 29 + i * 3) % all.size()];
      candidate.generation = g;
      candidate.times_seen = 1 + i % 3;
      batch.candidates.push_back(candidate);
    }
    ASSERT_TRUE(jobs().AppendGenerations(ended, batch).ok());
    ASSERT_TRUE(jobs().AppendGenerations(other, MakeBatch(g, 5)).ok());
  }
  const std::vector<std::string> while_running = EveryPage(jobs(), ended);

  // The front flags aside, an ended job lists exactly what it listed while it ran.
  std::vector<int64_t> front;
  for (const CandidateRecord& c :
       ListOrDie(jobs(), Query(ended, 3, CandidateOrder::kLatencyAsc, true)).candidates) {
    front.push_back(c.id);
  }
  ASSERT_TRUE(jobs().FinishJob(ended, JobState::kSucceeded, "", 2, 1, front).ok());
  EXPECT_EQ(EveryPage(jobs(), ended), while_running);
  CandidateQuery front_query = Query(ended, 100, CandidateOrder::kLatencyAsc);
  front_query.pareto_front_only = true;
  std::vector<int64_t> listed_front;
  for (const CandidateRecord& c : ListOrDie(jobs(), front_query).candidates) {
    listed_front.push_back(c.id);
  }
  EXPECT_EQ(listed_front, front);
}

TEST_P(StoreConformanceTest, ListCandidatesValidatesArguments) {
  const std::string id = *jobs().CreateJob(MakeJob());
  EXPECT_EQ(jobs().ListCandidates(Query("job-7", 100)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs().ListCandidates(Query(id, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListCandidates(Query(id, kMaxPageSize + 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      jobs().ListCandidates(Query(id, 100, CandidateOrder::kId, std::nullopt, -1)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListCandidates(Query(id, 10, static_cast<CandidateOrder>(17))).status().code(),
            absl::StatusCode::kInvalidArgument);
  CandidatePage empty = ListOrDie(jobs(), Query(id, kMaxPageSize));
  EXPECT_THAT(empty.candidates, IsEmpty());
  EXPECT_EQ(empty.total, 0);
}

// A job of nine candidates (ids 1..9 in a fresh store), the fifth infeasible.
std::string JobWithNineCandidates(JobStore& jobs) {
  std::string id = *jobs.CreateJob(MakeJob());
  EXPECT_TRUE(jobs.MarkRunning(id, 1).ok());
  GenerationBatch batch = MakeBatch(0, 0);
  const double latencies[] = {10, 12, 12, 15, 9, 20, 20, 18, 30};
  const double accuracies[] = {0.70, 0.69, 0.75, 0.75, 0.99, 0.80, 0.80, 0.78, 0.79};
  for (int i = 0; i < 9; ++i) {
    CandidateRecord candidate = MakeCandidate(i, /*feasible=*/i != 4);
    candidate.latency_ms = latencies[i];
    candidate.accuracy = accuracies[i];
    batch.candidates.push_back(candidate);
  }
  batch.candidates_evaluated = 8;
  EXPECT_TRUE(jobs.AppendGenerations(id, batch).ok());
  return id;
}

TEST_P(StoreConformanceTest, FinishJobMarksExactlyTheGivenFront) {
  const std::string id = JobWithNineCandidates(jobs());
  ASSERT_TRUE(jobs().FinishJob(id, JobState::kSucceeded, "", 2, 1, {1, 3, 8, 6}).ok());
  EXPECT_EQ(jobs().GetJob(id)->pareto_front_size, 4);

  CandidateQuery query = Query(id, 100);
  query.pareto_front_only = true;
  query.order = CandidateOrder::kLatencyAsc;
  CandidatePage front = ListOrDie(jobs(), query);
  EXPECT_EQ(front.total, 4);
  std::vector<int64_t> front_ids;
  for (const CandidateRecord& candidate : front.candidates) {
    front_ids.push_back(candidate.id);
    EXPECT_TRUE(candidate.on_pareto_front);
  }
  EXPECT_THAT(front_ids, ElementsAre(1, 3, 8, 6));

  query.order = CandidateOrder::kAccuracyDesc;
  query.limit = 2;
  query.offset = 1;
  front_ids.clear();
  for (const CandidateRecord& candidate : ListOrDie(jobs(), query).candidates) {
    front_ids.push_back(candidate.id);
  }
  EXPECT_THAT(front_ids, ElementsAre(8, 3));
  query.feasible = false;
  EXPECT_EQ(ListOrDie(jobs(), query).total, 0);
  query.feasible = true;
  EXPECT_EQ(ListOrDie(jobs(), query).total, 4);

  // The flag shows in ordinary listings too.
  CandidatePage all = ListOrDie(jobs(), Query(id, 100));
  ASSERT_EQ(all.candidates.size(), 9u);
  for (const CandidateRecord& candidate : all.candidates) {
    const bool on_front =
        candidate.id == 1 || candidate.id == 3 || candidate.id == 6 || candidate.id == 8;
    EXPECT_EQ(candidate.on_pareto_front, on_front) << candidate.id;
  }
}

TEST_P(StoreConformanceTest, AnEmptyFrontMarksNothing) {
  const std::string id = JobWithNineCandidates(jobs());
  ASSERT_TRUE(jobs().FinishJob(id, JobState::kCancelled, "by request", 2, 1, {}).ok());
  EXPECT_EQ(jobs().GetJob(id)->pareto_front_size, 0);
  CandidateQuery query = Query(id, 100);
  query.pareto_front_only = true;
  EXPECT_EQ(ListOrDie(jobs(), query).total, 0);
  for (const CandidateRecord& c : AllCandidates(jobs(), id).candidates) {
    EXPECT_FALSE(c.on_pareto_front);
  }
}

TEST_P(StoreConformanceTest, ABadFrontIsRefusedAndTheJobDoesNotEnd) {
  const std::string id = JobWithNineCandidates(jobs());
  const std::string other = *jobs().CreateJob(MakeJob());
  absl::StatusOr<std::vector<int64_t>> other_ids = jobs().AppendGenerations(other, MakeBatch(0, 1));
  ASSERT_TRUE(other_ids.ok());
  const JobRecord before = *jobs().GetJob(id);
  const std::vector<int64_t> bad_fronts[] = {
      {1, 5},                // 5 is infeasible.
      {1, (*other_ids)[0]},  // Another job's candidate.
      {1, 999},              // Unknown.
      {3, 1, 3},             // Repeated.
  };
  for (const std::vector<int64_t>& front : bad_fronts) {
    SCOPED_TRACE(absl::StrCat("front of ", front.size(), " ending in ", front.back()));
    const absl::Status status = jobs().FinishJob(id, JobState::kSucceeded, "", 2, 1, front);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    ExpectJobEq(*jobs().GetJob(id), before);
    for (const CandidateRecord& c : AllCandidates(jobs(), id).candidates) {
      EXPECT_FALSE(c.on_pareto_front) << c.id;
    }
  }
  EXPECT_TRUE(jobs().FinishJob(id, JobState::kSucceeded, "", 2, 1, {1}).ok());
}

// Which metrics an analytic model priced survives the round trip, for rows and the best.
TEST_P(StoreConformanceTest, ModelledMetricsRoundTrip) {
  const std::string id = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().MarkRunning(id, 1).ok());
  GenerationBatch batch = MakeBatch(0, 2);
  batch.candidates[0].modelled = "latency_ms,energy_mj";
  batch.best = batch.candidates[0];
  ASSERT_TRUE(jobs().AppendGenerations(id, batch).ok());
  CandidatePage page = ListOrDie(jobs(), Query(id, 10));
  ASSERT_EQ(page.candidates.size(), 2u);
  EXPECT_EQ(page.candidates[0].modelled, "latency_ms,energy_mj");
  EXPECT_EQ(page.candidates[1].modelled, "");
  EXPECT_EQ(jobs().GetJob(id)->best->modelled, "latency_ms,energy_mj");
}

TEST_P(StoreConformanceTest, ListJobsNewestFirstWithStateFilter) {
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob("s", i)).ok());
  for (const char* id : {"job-2", "job-5", "job-9"}) {
    ASSERT_TRUE(jobs().MarkRunning(id, 1).ok());
    ASSERT_TRUE(jobs().AppendGenerations(id, MakeBatch(0, 2)).ok());
  }
  ASSERT_TRUE(jobs().FinishJob("job-5", JobState::kSucceeded, "", 2, 1, {}).ok());

  auto ids = [](const std::vector<JobRecord>& listed) {
    std::vector<std::string> result;
    result.reserve(listed.size());
    for (const JobRecord& job : listed) result.push_back(job.id);
    return result;
  };
  std::vector<JobRecord> all = *jobs().ListJobs(std::nullopt, std::nullopt, 0, 100);
  ASSERT_EQ(all.size(), 12u);
  EXPECT_EQ(all.front().id, "job-12");  // Sorted by number, not as text.
  EXPECT_EQ(all[2].id, "job-10");
  EXPECT_EQ(all.back().id, "job-1");
  for (const JobRecord& job : all) EXPECT_EQ(job.checkpoint, "") << job.id;
  EXPECT_EQ(all[3].id, "job-9");
  EXPECT_EQ(all[3].candidates_evaluated, 2);
  EXPECT_TRUE(all[3].best.has_value());
  EXPECT_EQ(all[3].request, kBinary);

  EXPECT_THAT(ids(*jobs().ListJobs(std::nullopt, std::nullopt, 3, 4)),
              ElementsAre("job-9", "job-8", "job-7", "job-6"));
  EXPECT_THAT(ids(*jobs().ListJobs(JobState::kRunning, std::nullopt, 0, 100)),
              ElementsAre("job-9", "job-2"));
  EXPECT_THAT(ids(*jobs().ListJobs(JobState::kRunning, std::nullopt, 1, 1)), ElementsAre("job-2"));
  EXPECT_THAT(ids(*jobs().ListJobs(JobState::kSucceeded, std::nullopt, 0, 100)),
              ElementsAre("job-5"));
  EXPECT_THAT(*jobs().ListJobs(JobState::kFailed, std::nullopt, 0, 100), IsEmpty());
  EXPECT_EQ(jobs().ListJobs(JobState::kQueued, std::nullopt, 0, 100)->size(), 9u);
  EXPECT_THAT(*jobs().ListJobs(std::nullopt, std::nullopt, 12, 5), IsEmpty());

  EXPECT_EQ(jobs().ListJobs(std::nullopt, std::nullopt, -1, 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListJobs(std::nullopt, std::nullopt, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListJobs(std::nullopt, std::nullopt, 0, kMaxPageSize + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListJobs(static_cast<JobState>(0), std::nullopt, 0, 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs().ListJobs(std::nullopt, std::nullopt, 0, kMaxPageSize)->size(), 12u);
}

TEST_P(StoreConformanceTest, ListJobsPagesByKeysetWhileJobsAreAddedAndDeleted) {
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob("s", i)).ok());
  auto page = [&](const std::string& after, int limit,
                  std::optional<JobState> state = std::nullopt) {
    JobQuery query;
    query.state = state;
    query.after_job = after;
    query.limit = limit;
    std::vector<std::string> ids;
    const absl::StatusOr<std::vector<JobRecord>> listed = jobs().ListJobsPage(query);
    EXPECT_TRUE(listed.ok()) << "after " << after << ": " << listed.status();
    if (!listed.ok()) return ids;
    for (const JobRecord& job : *listed) ids.push_back(job.id);
    return ids;
  };
  EXPECT_THAT(page("", 2), ElementsAre("job-6", "job-5"));
  // Jobs added after the first page do not shift the next one.
  ASSERT_TRUE(jobs().CreateJob(MakeJob("s", 7)).ok());
  ASSERT_TRUE(jobs().CreateJob(MakeJob("s", 8)).ok());
  EXPECT_THAT(page("job-5", 2), ElementsAre("job-4", "job-3"));
  // Nor does deleting the job a page ended at (its tombstone keeps its place).
  ASSERT_TRUE(jobs().MarkRunning("job-3", 1).ok());
  ASSERT_TRUE(jobs().FinishJob("job-3", JobState::kSucceeded, "", 2, 1, {}).ok());
  ASSERT_TRUE(jobs().DeleteJob("job-3", 3).ok());
  EXPECT_THAT(page("job-3", 5), ElementsAre("job-2", "job-1"));
  EXPECT_THAT(page("job-4", 5), ElementsAre("job-2", "job-1"));
  EXPECT_THAT(page("job-1", 5), IsEmpty());
  EXPECT_THAT(page("job-6", 5, JobState::kQueued), ElementsAre("job-5", "job-4", "job-2", "job-1"));
  JobQuery unknown;
  unknown.after_job = "job-99";
  EXPECT_EQ(jobs().ListJobsPage(unknown).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ConcurrentWritersAndReaders) {
  const std::string a = *jobs().CreateJob(MakeJob());
  const std::string b = *jobs().CreateJob(MakeJob());
  constexpr int kGenerations = 40;
  constexpr int kPerGeneration = 25;
  std::atomic<int> writers_done{0};
  std::atomic<int> errors{0};
  auto write = [&](const std::string& id) {
    if (!jobs().MarkRunning(id, 1).ok()) ++errors;
    for (int g = 0; g < kGenerations; ++g) {
      absl::Status status =
          jobs()
              .AppendGenerations(id, MakeBatch(g, kPerGeneration, int64_t{g} * kPerGeneration))
              .status();
      if (!status.ok()) {
        ADD_FAILURE() << status;
        ++errors;
      }
    }
    ++writers_done;
  };
  auto read = [&] {
    while (writers_done.load() < 2) {
      for (const std::string& id : {a, b}) {
        absl::StatusOr<JobRecord> job = jobs().GetJob(id);
        absl::StatusOr<CandidatePage> page =
            jobs().ListCandidates(Query(id, 50, CandidateOrder::kAccuracyDesc, true));
        absl::StatusOr<std::vector<JobRecord>> listed =
            jobs().ListJobs(std::nullopt, std::nullopt, 0, 10);
        if (!job.ok() || !page.ok() || !listed.ok()) {
          ADD_FAILURE() << job.status() << page.status() << listed.status();
          ++errors;
          continue;
        }
        // Progress and rows are written together, and the page was read after the job.
        if (page->total < job->candidates_evaluated) {
          ADD_FAILURE() << "progress ahead of rows";
          ++errors;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(write, a);
  threads.emplace_back(write, b);
  threads.emplace_back(read);
  threads.emplace_back(read);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  for (const std::string& id : {a, b}) {
    JobRecord job = *jobs().GetJob(id);
    EXPECT_EQ(job.generations_done, kGenerations - 1);
    EXPECT_EQ(job.candidates_evaluated, kGenerations * kPerGeneration);
    EXPECT_EQ(AllCandidates(jobs(), id).total, kGenerations * kPerGeneration);
  }
}

TEST_P(StoreConformanceTest, TableVersions) {
  EXPECT_THAT(*devices().ListDevices(), IsEmpty());
  EXPECT_EQ(*devices().AddTableVersion(MakeTable("note10", "1")), 1);
  EXPECT_EQ(*devices().AddTableVersion(MakeTable("note10", "2")), 2);
  EXPECT_EQ(*devices().AddTableVersion(MakeTable("bitfusion", "1")), 1);
  EXPECT_EQ(*devices().AddTableVersion(MakeTable("note10", "3")), 3);
  EXPECT_THAT(*devices().ListDevices(), ElementsAre("bitfusion", "note10"));

  std::vector<TableVersionRecord> versions = *devices().ListTableVersions("note10");
  ASSERT_EQ(versions.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const TableVersionRecord expected = MakeTable("note10", std::to_string(i + 1));
    EXPECT_EQ(versions[i].device, "note10");
    EXPECT_EQ(versions[i].version, i + 1);
    EXPECT_EQ(versions[i].format, expected.format);
    EXPECT_EQ(versions[i].entries, expected.entries);
    EXPECT_EQ(versions[i].uploaded_unix_s, expected.uploaded_unix_s);
    EXPECT_EQ(versions[i].sha256, expected.sha256);
    EXPECT_EQ(versions[i].description, expected.description);
    EXPECT_THAT(versions[i].files, IsEmpty());
  }

  for (int64_t asked : {0, 3, 2}) {
    SCOPED_TRACE(asked);
    TableVersionRecord table = *devices().GetTableVersion("note10", asked);
    const int64_t version = asked == 0 ? 3 : asked;
    const TableVersionRecord expected = MakeTable("note10", std::to_string(version));
    EXPECT_EQ(table.version, version);
    EXPECT_EQ(table.sha256, expected.sha256);
    ASSERT_EQ(table.files.size(), 3u);
    for (int f = 0; f < 3; ++f) {  // In the order given.
      EXPECT_EQ(table.files[f].name, expected.files[f].name);
      EXPECT_EQ(table.files[f].content, expected.files[f].content);
    }
  }
  EXPECT_EQ(devices().GetTableVersion("bitfusion", 0)->version, 1);

  absl::Status unknown_device = devices().GetTableVersion("gpu", 2).status();
  EXPECT_EQ(unknown_device.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown_device.message()), HasSubstr("gpu"));
  EXPECT_THAT(std::string(unknown_device.message()), HasSubstr("2"));
  EXPECT_EQ(devices().GetTableVersion("gpu", 0).status().code(), absl::StatusCode::kNotFound);
  absl::Status unknown_version = devices().GetTableVersion("note10", 4).status();
  EXPECT_EQ(unknown_version.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown_version.message()), HasSubstr("note10"));
  EXPECT_THAT(std::string(unknown_version.message()), HasSubstr("4"));
  EXPECT_EQ(devices().GetTableVersion("note10", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(devices().ListTableVersions("gpu").status().code(), absl::StatusCode::kNotFound);

  TableVersionRecord duplicate = MakeTable("note10", "dup");
  duplicate.files.push_back({"empty.yaml", "again"});
  EXPECT_EQ(devices().AddTableVersion(duplicate).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(devices().AddTableVersion(MakeTable("", "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(devices().ListTableVersions("note10")->size(), 3u);
}

TEST_P(StoreConformanceTest, MeasurementsRoundTrip) {
  ASSERT_TRUE(datasets()
                  .CreateDataset({"fm", "fmnist_mbv2", "supernet v1", 1.7e9, 99, 99},
                                 {Measurement("[1]", 0.875, "fp32"),
                                  Measurement("[1]", 0.5, "quant-from-supernet"),
                                  Measurement("[2]", 1.0, "fp32")})
                  .ok());
  ASSERT_TRUE(datasets().AddMeasurements("fm", {Measurement("[3]", 0.0, "fp32")}).ok());
  ASSERT_TRUE(datasets().CreateDataset({"another", "ofa_mbv3", "", 1.8e9, 0}, {}).ok());
  const DatasetRecord dataset = *datasets().GetDataset("fm");
  EXPECT_EQ(dataset.space, "fmnist_mbv2");
  EXPECT_EQ(dataset.description, "supernet v1");
  EXPECT_EQ(dataset.created_unix_s, 1.7e9);
  EXPECT_EQ(dataset.records, 4);
  EXPECT_EQ(dataset.fp32_records, 3);
  const std::vector<MeasurementRow> all = *datasets().ListMeasurements("fm", std::nullopt);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].config_json, "[1]");
  EXPECT_EQ(all[0].accuracy, 0.875);
  EXPECT_EQ(all[0].method, "fp32");
  EXPECT_EQ(all[0].seconds, 1.25);
  EXPECT_EQ(all[0].seed, 0xfedcba9876543210ULL);
  EXPECT_EQ(all[0].created_unix_s, 1.7e9 + 0.5);
  EXPECT_LT(all[0].id, all[1].id);
  EXPECT_LT(all[2].id, all[3].id);
  EXPECT_EQ(all[3].config_json, "[3]");
  const std::vector<MeasurementRow> fp32 = *datasets().ListMeasurements("fm", std::string("fp32"));
  ASSERT_EQ(fp32.size(), 3u);
  EXPECT_EQ(fp32[1].config_json, "[2]");
  EXPECT_THAT(*datasets().ListMeasurements("fm", std::string("none")), IsEmpty());

  const std::vector<DatasetRecord> listed = *datasets().ListDatasets();  // By name.
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].name, "another");
  EXPECT_EQ(listed[0].records, 0);
  EXPECT_EQ(listed[1].name, "fm");
  EXPECT_EQ(listed[1].records, 4);
}

TEST_P(StoreConformanceTest, MeasurementsKeepTheirSplitAndADatasetMixesNone) {
  const auto on = [](MeasurementRow row, const std::string& split) {
    row.split = split;
    return row;
  };
  ASSERT_TRUE(datasets()
                  .CreateDataset({"val", "fmnist_lowbit", "", 1.7e9},
                                 {on(Measurement("[1]", 0.9, "fp32"), "validation"),
                                  on(Measurement("[2]", 0.8, "fp32"), "validation")})
                  .ok());
  EXPECT_EQ(datasets().GetDataset("val")->split, "validation");
  EXPECT_EQ(datasets().ListMeasurements("val", std::nullopt)->at(1).split, "validation");
  // A test-split record joins no validation dataset, and nothing of the call is stored.
  const absl::Status mixed =
      datasets().AddMeasurements("val", {on(Measurement("[3]", 0.7, "fp32"), "validation"),
                                         on(Measurement("[4]", 0.7, "fp32"), "test")});
  EXPECT_EQ(mixed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(mixed.message(), HasSubstr("dataset val: measurement 1 was measured on \"test\""));
  EXPECT_EQ(datasets().GetDataset("val")->records, 2);
  // Nor does one call create a mixed dataset.
  const absl::Status created = datasets().CreateDataset(
      {"mixed", "fmnist_lowbit", "", 1.7e9},
      {on(Measurement("[1]", 0.9, "fp32"), "test"), on(Measurement("[2]", 0.9, "fp32"), "")});
  EXPECT_EQ(created.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(datasets().GetDataset("mixed").status().code(), absl::StatusCode::kNotFound);
  // A name that is no split is refused naming the row.
  const absl::Status unknown =
      datasets().AddMeasurements("val", {on(Measurement("[5]", 0.7, "fp32"), "dev")});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("measurement 0: split \"dev\""));
  // Rows that do not say (stored before splits were recorded) form a dataset of their own.
  ASSERT_TRUE(
      datasets()
          .CreateDataset({"old", "fmnist_mbv2", "", 1.7e9}, {Measurement("[1]", 0.9, "fp32")})
          .ok());
  EXPECT_EQ(datasets().GetDataset("old")->split, "");
  EXPECT_EQ(
      datasets().AddMeasurements("old", {on(Measurement("[2]", 0.9, "fp32"), "validation")}).code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, BadMeasurementsNameTheRowAndStoreNothing) {
  // A bad row creates nothing, not even the dataset.
  EXPECT_EQ(datasets()
                .CreateDataset({"fm", "fmnist_mbv2", "", 0, 0},
                               {Measurement("[1]", 0.5, "fp32"), Measurement("[2]", 2, "fp32")})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(datasets().GetDataset("fm").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(datasets().CreateDataset({"fm", "fmnist_mbv2", "", 0, 0}, {}).ok());
  EXPECT_EQ(datasets().CreateDataset({"fm", "other", "", 0, 0}, {}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(datasets().CreateDataset({"", "other", "", 0, 0}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(datasets().CreateDataset({"x", "", "", 0, 0}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(datasets().AddMeasurements("fm", {Measurement("[1]", 0.5, "fp32")}).ok());

  const auto expect_rejected = [&](const std::vector<MeasurementRow>& rows,
                                   const std::string& message) {
    const absl::Status status = datasets().AddMeasurements("fm", rows);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(message));
  };
  const MeasurementRow good = Measurement("[9]", 0.5, "fp32");
  expect_rejected({good, Measurement("[2]", 1.5, "fp32")}, "measurement 1: accuracy 1.5");
  expect_rejected({good, Measurement("[2]", std::nan(""), "fp32")}, "measurement 1: accuracy");
  expect_rejected({good, Measurement("[2]", -0.1, "fp32")}, "measurement 1: accuracy");
  MeasurementRow slow = Measurement("[2]", 0.5, "fp32");
  slow.seconds = -1;
  expect_rejected({good, slow}, "measurement 1: seconds");
  expect_rejected({good, Measurement("", 0.5, "fp32")}, "measurement 1: config_json is empty");
  expect_rejected({good, Measurement("[2]", 0.5, "")}, "measurement 1: method is empty");
  expect_rejected({good, Measurement("[9]", 0.6, "fp32")}, "measurement 1: repeats");
  // A row the dataset holds is no bad argument: a retried write finds its own row.
  const absl::Status stored =
      datasets().AddMeasurements("fm", {good, Measurement("[1]", 0.6, "fp32")});
  EXPECT_EQ(stored.code(), absl::StatusCode::kAlreadyExists) << stored;
  EXPECT_THAT(stored.message(), HasSubstr("measurement 1: dataset fm already holds"));
  EXPECT_EQ(datasets().ListMeasurements("fm", std::nullopt)->size(), 1u);
  // The same config under another method is another record.
  EXPECT_TRUE(
      datasets().AddMeasurements("fm", {Measurement("[1]", 0.4, "quant-from-supernet")}).ok());
  EXPECT_EQ(datasets().AddMeasurements("nope", {good}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(datasets().ListMeasurements("nope", std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(datasets().GetDataset("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, PredictorsKeepOneDefaultPerSpace) {
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(predictors().GetDefaultPredictorVersion("fmnist_mbv2").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(predictors().AddPredictor(Predictor("v1", true)).ok());
  ASSERT_TRUE(predictors().AddPredictor(Predictor("v2", false)).ok());
  EXPECT_EQ(predictors().AddPredictor(Predictor("v1", false)).code(),
            absl::StatusCode::kAlreadyExists);
  for (std::string PredictorRecord::*field :
       {&PredictorRecord::space, &PredictorRecord::version, &PredictorRecord::kind}) {
    PredictorRecord nameless = Predictor("v9", false);
    nameless.*field = "";
    EXPECT_EQ(predictors().AddPredictor(nameless).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2")->version, "v1");
  EXPECT_EQ(*predictors().GetDefaultPredictorVersion("fmnist_mbv2"), "v1");
  ASSERT_TRUE(predictors().SetDefaultPredictor("fmnist_mbv2", "v2").ok());
  EXPECT_EQ(predictors().SetDefaultPredictor("fmnist_mbv2", "v9").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2")->version, "v2");
  // A new default replaces the old one in the same transaction.
  ASSERT_TRUE(predictors().AddPredictor(Predictor("v3", true)).ok());
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2")->version, "v3");
  EXPECT_EQ(*predictors().GetDefaultPredictorVersion("fmnist_mbv2"), "v3");
  ASSERT_TRUE(predictors().SetDefaultPredictor("fmnist_mbv2", "v2").ok());
  PredictorRecord elsewhere = Predictor("v1", true);
  elsewhere.space = "ofa_mbv3";
  ASSERT_TRUE(predictors().AddPredictor(elsewhere).ok());  // Versions are per space.

  const PredictorRecord current = *predictors().GetDefaultPredictor("fmnist_mbv2");
  EXPECT_EQ(current.version, "v2");
  EXPECT_EQ(*predictors().GetDefaultPredictorVersion("fmnist_mbv2"), "v2");
  EXPECT_EQ(*predictors().GetDefaultPredictorVersion("ofa_mbv3"), "v1") << "per space";
  EXPECT_EQ(current.artifact, std::string("\0weights\xff", 9));
  EXPECT_EQ(current.kind, "mlp-raw-f32");
  EXPECT_EQ(current.metrics_json, R"({"rmse": 0.01})");
  EXPECT_EQ(current.dataset, "fm");
  EXPECT_EQ(current.created_unix_s, 1.7e9);
  const std::vector<PredictorRecord> listed = *predictors().ListPredictors("fmnist_mbv2");
  ASSERT_EQ(listed.size(), 3u);  // Oldest first.
  EXPECT_EQ(listed[0].version, "v1");
  EXPECT_EQ(listed[1].version, "v2");
  EXPECT_EQ(listed[2].version, "v3");
  EXPECT_FALSE(listed[0].is_default);
  EXPECT_TRUE(listed[1].is_default);
  EXPECT_FALSE(listed[2].is_default);
  EXPECT_TRUE(listed[1].artifact.empty()) << "listings leave the artifacts out";
  EXPECT_EQ(predictors().GetPredictor("fmnist_mbv2", "v3")->version, "v3");
  EXPECT_EQ(predictors().GetPredictor("fmnist_mbv2", "v3")->artifact, current.artifact);
  EXPECT_EQ(predictors().GetPredictor("fmnist_mbv2", "v7").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(predictors().ListPredictors("other")->empty());
  EXPECT_TRUE(predictors().GetDefaultPredictor("ofa_mbv3")->is_default);

  ASSERT_TRUE(predictors().ClearDefaultPredictor("fmnist_mbv2").ok());
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(predictors().GetDefaultPredictorVersion("fmnist_mbv2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(predictors().ClearDefaultPredictor("fmnist_mbv2").ok());
  EXPECT_TRUE(predictors().ClearDefaultPredictor("unknown").ok());
  EXPECT_EQ(predictors().GetDefaultPredictor("ofa_mbv3")->version, "v1");
}

TEST_P(StoreConformanceTest, TrainingJobsEndWithTheirPredictorInOneTransaction) {
  ASSERT_TRUE(predictors().AddPredictor(Predictor("v1", true)).ok());
  TrainingJobRecord job;
  job.space = "fmnist_mbv2";
  job.dataset = "fm";
  job.request = std::string("\x08\x01", 2);
  job.created_unix_s = 1.7e9;
  job.state = JobState::kFailed;  // Ignored.
  absl::StatusOr<std::string> first = training_jobs().CreateTrainingJob(job);
  absl::StatusOr<std::string> second = training_jobs().CreateTrainingJob(job);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, "train-1");
  EXPECT_EQ(*second, "train-2");
  EXPECT_EQ(training_jobs().GetTrainingJob(*first)->state, JobState::kQueued);

  ASSERT_TRUE(training_jobs().MarkTrainingRunning(*first, 1.7e9 + 1).ok());
  ASSERT_TRUE(training_jobs().UpdateTrainingProgress(*first, "quantized", 7, 400, 0.0021).ok());
  absl::StatusOr<TrainingJobRecord> running = training_jobs().GetTrainingJob(*first);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, JobState::kRunning);
  EXPECT_EQ(running->stage, "quantized");
  EXPECT_EQ(running->epoch, 7);
  EXPECT_EQ(running->max_epochs, 400);
  EXPECT_EQ(running->validation_rmse, 0.0021);
  EXPECT_EQ(running->request, job.request);
  EXPECT_EQ(running->started_unix_s, 1.7e9 + 1);
  // Run again (after a restart): the progress starts over.
  ASSERT_TRUE(training_jobs().MarkTrainingRunning(*first, 1.7e9 + 1).ok());
  EXPECT_EQ(training_jobs().GetTrainingJob(*first)->epoch, 0);
  EXPECT_EQ(training_jobs().GetTrainingJob(*first)->stage, "");

  // Refused ends change nothing.
  PredictorRecord trained = Predictor("v2", true);
  EXPECT_EQ(
      training_jobs().FinishTrainingJob(*first, JobState::kRunning, "", 1.7e9 + 3, nullptr).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      training_jobs().FinishTrainingJob(*first, JobState::kFailed, "", 1.7e9 + 3, &trained).code(),
      absl::StatusCode::kInvalidArgument);
  PredictorRecord kindless = trained;
  kindless.kind = "";
  EXPECT_EQ(training_jobs()
                .FinishTrainingJob(*first, JobState::kSucceeded, "", 1.7e9 + 3, &kindless)
                .code(),
            absl::StatusCode::kInvalidArgument);
  // The predictor would be valid, the job's end is not: neither is stored.
  EXPECT_EQ(training_jobs()
                .FinishTrainingJob(*first, JobState::kSucceeded, "", std::nan(""), &trained)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(training_jobs().GetTrainingJob(*first)->state, JobState::kRunning);
  EXPECT_EQ(predictors().GetPredictor("fmnist_mbv2", "v2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(predictors().GetDefaultPredictor("fmnist_mbv2")->version, "v1");
  EXPECT_EQ(training_jobs().FinishTrainingJob("train-9", JobState::kFailed, "", 1, nullptr).code(),
            absl::StatusCode::kNotFound);

  // A failed job stores no predictor: v1 stays the default.
  ASSERT_TRUE(training_jobs()
                  .FinishTrainingJob(*second, JobState::kFailed, "diverged", 1.7e9 + 2, nullptr)
                  .ok());
  EXPECT_EQ(training_jobs().GetTrainingJob(*second)->error, "diverged");
  EXPECT_EQ(training_jobs().GetTrainingJob(*second)->predictor_version, "");
  ASSERT_TRUE(training_jobs()
                  .FinishTrainingJob(*first, JobState::kSucceeded, "", 1.7e9 + 3, &trained)
                  .ok());
  absl::StatusOr<PredictorRecord> default_predictor =
      predictors().GetDefaultPredictor("fmnist_mbv2");
  ASSERT_TRUE(default_predictor.ok());
  EXPECT_EQ(default_predictor->version, "v2");
  EXPECT_EQ(default_predictor->artifact, trained.artifact);
  absl::StatusOr<TrainingJobRecord> done = training_jobs().GetTrainingJob(*first);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->finished_unix_s, 1.7e9 + 3);
  EXPECT_EQ(done->predictor_version, "v2");
  EXPECT_EQ(done->metrics_json, trained.metrics_json);

  // Ended jobs take no more progress and cannot end twice.
  EXPECT_EQ(training_jobs().UpdateTrainingProgress(*first, "quantized", 8, 400, 0.002).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(training_jobs().FinishTrainingJob(*first, JobState::kFailed, "", 0, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(training_jobs().MarkTrainingRunning(*second, 0).code(),
            absl::StatusCode::kFailedPrecondition);

  // A job that trains a predictor already stored (same content, same version) succeeds and
  // makes it the default without storing it twice.
  absl::StatusOr<std::string> third = training_jobs().CreateTrainingJob(job);
  ASSERT_TRUE(third.ok());
  PredictorRecord again = Predictor("v1", true);
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob(*third, JobState::kSucceeded, "", 1.7e9 + 4, &again).ok());
  default_predictor = predictors().GetDefaultPredictor("fmnist_mbv2");
  ASSERT_TRUE(default_predictor.ok());
  EXPECT_EQ(default_predictor->version, "v1");
  absl::StatusOr<std::vector<PredictorRecord>> stored = predictors().ListPredictors("fmnist_mbv2");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 2u);

  absl::StatusOr<std::vector<TrainingJobRecord>> unfinished =
      training_jobs().ListTrainingJobs(/*unfinished_only=*/true, 0, 10);
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  const std::string fourth = *training_jobs().CreateTrainingJob(job);
  unfinished = training_jobs().ListTrainingJobs(/*unfinished_only=*/true, 0, 10);
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].id, fourth);
  absl::StatusOr<std::vector<TrainingJobRecord>> all =
      training_jobs().ListTrainingJobs(false, 0, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].id, "train-4");  // Newest first.
  EXPECT_EQ((*all)[3].id, "train-1");
  all = training_jobs().ListTrainingJobs(false, 1, 2);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "train-3");
  EXPECT_EQ(training_jobs().ListTrainingJobs(false, -1, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(training_jobs().ListTrainingJobs(false, 0, kMaxPageSize + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-9").status().code(), absl::StatusCode::kNotFound);
}

// Listings' records: the stored fields of `artifact` with its size, without its bytes.
ArtifactRecord Listed(ArtifactRecord artifact) {
  artifact.size_bytes = static_cast<int64_t>(artifact.bytes.size());
  artifact.bytes.clear();
  return artifact;
}

// (kind, key) of each listed artifact, checking that each carries no bytes.
std::vector<std::string> Names(const absl::StatusOr<std::vector<ArtifactRecord>>& listed) {
  std::vector<std::string> names;
  EXPECT_TRUE(listed.ok()) << listed.status();
  if (!listed.ok()) return names;
  for (const ArtifactRecord& artifact : *listed) {
    EXPECT_TRUE(artifact.bytes.empty()) << artifact.key << ": listings leave the bytes out";
    names.push_back(absl::StrCat(artifact.kind, "/", artifact.key));
  }
  return names;
}

// A job that has ended, so that it can be deleted.
std::string EndedJob(JobStore& jobs, double finished_unix_s) {
  std::string id = *jobs.CreateJob(MakeJob());
  EXPECT_TRUE(jobs.MarkRunning(id, 1).ok());
  EXPECT_TRUE(jobs.FinishJob(id, JobState::kSucceeded, "", finished_unix_s, 1, {}).ok());
  return id;
}

TEST_P(StoreConformanceTest, ArtifactsRoundTripByteForByte) {
  const std::string job = *jobs().CreateJob(MakeJob());
  ArtifactRecord module = Artifact("finetuned_module", "fmnist_mbv2/arch-3/bits-4", job);
  module.bytes = kBinary + std::string(3, '\0');  // Embedded and trailing NULs, not UTF-8.
  module.content_type = "application/x-torchscript";
  module.size_bytes = 12345;  // Ignored: the store fills it.
  ArtifactRecord empty;       // A shared, empty blob with every optional field empty.
  empty.kind = "iqp_sensitivity";
  empty.key = "k";
  empty.created_unix_s = -0.0;  // Reads back as 0.0.
  ASSERT_TRUE(artifacts().PutArtifact(module).ok());
  ASSERT_TRUE(artifacts().PutArtifact(empty).ok());
  // One key under two kinds is two artifacts.
  ASSERT_TRUE(artifacts().PutArtifact(Artifact("solver_report", module.key)).ok());

  absl::StatusOr<ArtifactRecord> loaded = artifacts().GetArtifact(module.kind, module.key);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  module.size_bytes = static_cast<int64_t>(module.bytes.size());
  ExpectArtifactEq(*loaded, module);
  EXPECT_EQ(loaded->bytes.size(), kBinary.size() + 3);

  loaded = artifacts().GetArtifact("iqp_sensitivity", "k");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectArtifactEq(*loaded, empty);
  EXPECT_FALSE(std::signbit(loaded->created_unix_s));
  EXPECT_EQ(loaded->size_bytes, 0);
  ExpectArtifactEq(*artifacts().GetArtifact("solver_report", module.key),
                   Artifact("solver_report", module.key));

  EXPECT_EQ(artifacts().GetArtifact("solver_report", "k").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().GetArtifact("unknown", module.key).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().GetArtifact("", "").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ArtifactListingsAreOrderedAndCarrySizesWithoutBytes) {
  const std::string first = *jobs().CreateJob(MakeJob());
  const std::string second = *jobs().CreateJob(MakeJob());
  const std::string idle = *jobs().CreateJob(MakeJob());
  ArtifactRecord other_space = Artifact("iqp_sensitivity", "c");
  other_space.space = "apq_mbv2";
  ArtifactRecord no_space = Artifact("iqp_sensitivity", "n");
  no_space.space = "";
  ArtifactRecord big = Artifact("solver_report", "b", first);
  big.bytes = std::string(100000, '\0');
  // Stored out of order; keys sort by their bytes ("B" < "a" < "\xc3\xa9").
  const std::vector<ArtifactRecord> stored = {
      big,
      Artifact("iqp_sensitivity", "z", first),
      Artifact("iqp_sensitivity", "\xc3\xa9t\xc3\xa9", first),
      Artifact("iqp_sensitivity", "a", first),
      Artifact("solver_report", "a", second),
      Artifact("iqp_sensitivity", "m"),
      other_space,
      no_space,
      Artifact("iqp_sensitivity", "B", second),
  };
  for (const ArtifactRecord& artifact : stored) {
    ASSERT_TRUE(artifacts().PutArtifact(artifact).ok()) << artifact.key;
  }

  EXPECT_THAT(Names(artifacts().ListJobArtifacts(first)),
              ElementsAre("iqp_sensitivity/a", "iqp_sensitivity/z",
                          "iqp_sensitivity/\xc3\xa9t\xc3\xa9", "solver_report/b"));
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(second)),
              ElementsAre("iqp_sensitivity/B", "solver_report/a"));
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(idle)), IsEmpty());
  EXPECT_EQ(artifacts().ListJobArtifacts("job-9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().ListJobArtifacts("").status().code(), absl::StatusCode::kNotFound)
      << "shared artifacts are no job's";

  // Listed records carry every field but the bytes, and the size of the bytes.
  const std::vector<ArtifactRecord> listed = *artifacts().ListJobArtifacts(first);
  ASSERT_EQ(listed.size(), 4u);
  ExpectArtifactEq(listed[3], Listed(big));
  EXPECT_EQ(listed[3].size_bytes, 100000);
  ExpectArtifactEq(listed[0], Listed(Artifact("iqp_sensitivity", "a", first)));

  EXPECT_THAT(Names(artifacts().ListArtifacts("iqp_sensitivity", "", 100)),
              ElementsAre("iqp_sensitivity/B", "iqp_sensitivity/a", "iqp_sensitivity/c",
                          "iqp_sensitivity/m", "iqp_sensitivity/n", "iqp_sensitivity/z",
                          "iqp_sensitivity/\xc3\xa9t\xc3\xa9"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("iqp_sensitivity", "", 3)),
              ElementsAre("iqp_sensitivity/B", "iqp_sensitivity/a", "iqp_sensitivity/c"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("iqp_sensitivity", "fmnist_mbv2", 3)),
              ElementsAre("iqp_sensitivity/B", "iqp_sensitivity/a", "iqp_sensitivity/m"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("iqp_sensitivity", "apq_mbv2", kMaxPageSize)),
              ElementsAre("iqp_sensitivity/c"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("solver_report", "", 1)),
              ElementsAre("solver_report/a"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("solver_report", "other", 10)), IsEmpty());
  EXPECT_THAT(Names(artifacts().ListArtifacts("unknown", "", 10)), IsEmpty());
  const std::vector<ArtifactRecord> shared = *artifacts().ListArtifacts("iqp_sensitivity", "", 100);
  ExpectArtifactEq(shared[2], Listed(other_space));

  for (const int limit : {0, -1, kMaxPageSize + 1}) {
    const absl::Status status = artifacts().ListArtifacts("iqp_sensitivity", "", limit).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << limit;
    EXPECT_THAT(std::string(status.message()), HasSubstr("limit")) << limit;
  }
}

TEST_P(StoreConformanceTest, AnArtifactIsStoredOnceAndNeverChanges) {
  const std::string job = *jobs().CreateJob(MakeJob());
  const ArtifactRecord original = Artifact("solver_report", "job-1/final", job);
  ASSERT_TRUE(artifacts().PutArtifact(original).ok());
  ArtifactRecord changed = original;
  changed.bytes = "other bytes";
  changed.provenance = "{}";
  ArtifactRecord shared = changed;
  shared.job_id = "";
  for (const ArtifactRecord& again : {original, changed, shared}) {
    const absl::Status status = artifacts().PutArtifact(again);
    EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  }
  ExpectArtifactEq(*artifacts().GetArtifact(original.kind, original.key), original);
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(job)), ElementsAre("solver_report/job-1/final"));
  EXPECT_THAT(Names(artifacts().ListArtifacts("solver_report", "", 10)),
              ElementsAre("solver_report/job-1/final"));
}

TEST_P(StoreConformanceTest, BadArtifactsNameTheFieldAndStoreNothing) {
  const std::string job = *jobs().CreateJob(MakeJob());
  ASSERT_EQ(job, "job-1");
  struct Case {
    std::string field;
    std::function<void(ArtifactRecord&)> spoil;
  };
  const std::vector<Case> cases = {
      {"kind", [](ArtifactRecord& a) { a.kind = ""; }},
      {"kind", [](ArtifactRecord& a) { a.kind = "Solver_report"; }},
      {"kind", [](ArtifactRecord& a) { a.kind = "solver-report"; }},
      {"kind", [](ArtifactRecord& a) { a.kind = "solver report"; }},
      {"kind", [](ArtifactRecord& a) { a.kind = std::string(kMaxArtifactKindBytes + 1, 'k'); }},
      {"key", [](ArtifactRecord& a) { a.key = ""; }},
      {"key", [](ArtifactRecord& a) { a.key = std::string(kMaxArtifactKeyBytes + 1, 'k'); }},
      {"key", [](ArtifactRecord& a) { a.key = "line\nbreak"; }},
      {"key", [](ArtifactRecord& a) { a.key = std::string("nul\0", 4); }},
      {"key", [](ArtifactRecord& a) { a.key = "tab\t"; }},
      {"key", [](ArtifactRecord& a) { a.key = "del\x7f"; }},
      {"created_unix_s",
       [](ArtifactRecord& a) { a.created_unix_s = std::numeric_limits<double>::quiet_NaN(); }},
      {"created_unix_s",
       [](ArtifactRecord& a) { a.created_unix_s = std::numeric_limits<double>::infinity(); }},
      {"created_unix_s", [](ArtifactRecord& a) { a.created_unix_s = -1; }},
      {"provenance",
       [](ArtifactRecord& a) { a.provenance = std::string(kMaxArtifactProvenanceBytes + 1, ' '); }},
      {"content_type",
       [](ArtifactRecord& a) {
         a.content_type = std::string(kMaxArtifactContentTypeBytes + 1, 'a');
       }},
      {"bytes", [](ArtifactRecord& a) { a.bytes.resize(kMaxArtifactBytes + 1); }},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    // Shared, a job's, and an unknown job's: the record's fields are checked first.
    const char* owners[] = {"", "job-1", "job-9"};
    ArtifactRecord bad = Artifact("solver_report", absl::StrCat("bad-", i), owners[i % 3]);
    cases[i].spoil(bad);
    const absl::Status status = artifacts().PutArtifact(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << i << ": " << status;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(absl::StrCat("artifact ", cases[i].field, ":")))
        << i;
  }
  EXPECT_THAT(Names(artifacts().ListArtifacts("solver_report", "", kMaxPageSize)), IsEmpty());
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(job)), IsEmpty());

  // The bounds themselves are in range.
  ArtifactRecord widest = Artifact(std::string(kMaxArtifactKindBytes, 'z'),
                                   std::string(kMaxArtifactKeyBytes, '~'), job);
  widest.provenance = std::string(kMaxArtifactProvenanceBytes, ' ');
  widest.content_type = std::string(kMaxArtifactContentTypeBytes, 'a');
  widest.created_unix_s = 0;
  ASSERT_TRUE(artifacts().PutArtifact(widest).ok());
  ExpectArtifactEq(*artifacts().GetArtifact(widest.kind, widest.key), widest);
  ArtifactRecord unicode =
      Artifact("a_0_z_9", "\xce\xbb \xe2\x80\x94 key with spaces/and:punctuation");
  ASSERT_TRUE(artifacts().PutArtifact(unicode).ok());
  ExpectArtifactEq(*artifacts().GetArtifact(unicode.kind, unicode.key), unicode);
}

TEST_P(StoreConformanceTest, ArtifactsOfAnUnknownJobAreRefused) {
  const absl::Status status = artifacts().PutArtifact(Artifact("solver_report", "r", "job-1"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("job-1"));
  EXPECT_EQ(artifacts().GetArtifact("solver_report", "r").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().ListJobArtifacts("job-1").status().code(), absl::StatusCode::kNotFound);
  // The job exists now: the same artifact is taken.
  const std::string job = *jobs().CreateJob(MakeJob());
  ASSERT_EQ(job, "job-1");
  ASSERT_TRUE(artifacts().PutArtifact(Artifact("solver_report", "r", job)).ok());
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(job)), ElementsAre("solver_report/r"));
}

// A job's artifacts go with it, in DeleteJob and in pruning; shared ones and other jobs'
// stay; a deleted job takes no new ones, and its artifacts' names are free again.
TEST_P(StoreConformanceTest, DeletingAJobDeletesItsArtifactsButNotSharedOnes) {
  const std::string deleted = EndedJob(jobs(), 100);
  const std::string pruned = EndedJob(jobs(), 200);
  const std::string kept = EndedJob(jobs(), 300);
  const std::string running = *jobs().CreateJob(MakeJob());
  ASSERT_TRUE(jobs().MarkRunning(running, 1).ok());
  for (const std::string& job : {deleted, pruned, kept, running}) {
    ASSERT_TRUE(artifacts().PutArtifact(Artifact("solver_report", job, job)).ok());
    ASSERT_TRUE(artifacts().PutArtifact(Artifact("finetuned_module", job, job)).ok());
  }
  ASSERT_TRUE(artifacts().PutArtifact(Artifact("iqp_sensitivity", deleted)).ok());  // Shared.

  // A refused deletion keeps them.
  EXPECT_EQ(jobs().DeleteJob(running, 400).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Names(artifacts().ListJobArtifacts(running)),
              ElementsAre(absl::StrCat("finetuned_module/", running),
                          absl::StrCat("solver_report/", running)));

  ASSERT_TRUE(jobs().DeleteJob(deleted, 400).ok());
  for (const char* kind : {"solver_report", "finetuned_module"}) {
    EXPECT_EQ(artifacts().GetArtifact(kind, deleted).status().code(), absl::StatusCode::kNotFound)
        << kind;
  }
  EXPECT_EQ(artifacts().ListJobArtifacts(deleted).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().PutArtifact(Artifact("solver_report", "late", deleted)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(artifacts().GetArtifact("iqp_sensitivity", deleted).ok());
  EXPECT_THAT(
      Names(artifacts().ListArtifacts("solver_report", "", 10)),
      ElementsAre(absl::StrCat("solver_report/", pruned), absl::StrCat("solver_report/", kept),
                  absl::StrCat("solver_report/", running)));

  EXPECT_THAT(*jobs().DeleteJobsFinishedBefore(250, 500, 10), ElementsAre(pruned));
  EXPECT_EQ(artifacts().GetArtifact("solver_report", pruned).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts().GetArtifact("finetuned_module", pruned).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(
      Names(artifacts().ListJobArtifacts(kept)),
      ElementsAre(absl::StrCat("finetuned_module/", kept), absl::StrCat("solver_report/", kept)));
  EXPECT_THAT(Names(artifacts().ListArtifacts("iqp_sensitivity", "", 10)),
              ElementsAre(absl::StrCat("iqp_sensitivity/", deleted)));

  // A deleted artifact's name may be taken again (the artifact it named is gone).
  ASSERT_TRUE(artifacts().PutArtifact(Artifact("solver_report", deleted)).ok());
  ExpectArtifactEq(*artifacts().GetArtifact("solver_report", deleted),
                   Artifact("solver_report", deleted));
}

TEST_P(StoreConformanceTest, ConcurrentArtifactPutsOfDistinctKeysAllLand) {
  const std::string job = *jobs().CreateJob(MakeJob());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::atomic<int> errors{0};
  auto put = [&](int thread) {
    for (int i = 0; i < kPerThread; ++i) {
      const absl::Status status = artifacts().PutArtifact(
          Artifact("iqp_sensitivity", absl::StrCat("t", thread, "-", i), i % 2 == 0 ? job : ""));
      if (!status.ok()) {
        ADD_FAILURE() << status;
        ++errors;
      }
    }
  };
  auto read = [&] {
    // Listings see each put whole: a listed artifact reads back with its bytes.
    for (int round = 0; round < 20; ++round) {
      absl::StatusOr<std::vector<ArtifactRecord>> listed =
          artifacts().ListArtifacts("iqp_sensitivity", "", kMaxPageSize);
      if (!listed.ok()) {
        ADD_FAILURE() << listed.status();
        ++errors;
        continue;
      }
      for (const ArtifactRecord& artifact : *listed) {
        absl::StatusOr<ArtifactRecord> loaded =
            artifacts().GetArtifact(artifact.kind, artifact.key);
        if (!loaded.ok() || static_cast<int64_t>(loaded->bytes.size()) != artifact.size_bytes) {
          ADD_FAILURE() << artifact.key;
          ++errors;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(put, t);
  threads.emplace_back(read);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(artifacts().ListArtifacts("iqp_sensitivity", "", kMaxPageSize)->size(),
            static_cast<size_t>(kThreads * kPerThread));
  constexpr int kOwnedPerThread = (kPerThread + 1) / 2;  // Those of even i.
  EXPECT_EQ(artifacts().ListJobArtifacts(job)->size(),
            static_cast<size_t>(kThreads * kOwnedPerThread));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string key = absl::StrCat("t", t, "-", i);
      ExpectArtifactEq(*artifacts().GetArtifact("iqp_sensitivity", key),
                       Artifact("iqp_sensitivity", key, i % 2 == 0 ? job : ""));
    }
  }
}

// Leases (JobStore::ClaimJob and the rest). Times are small numbers of seconds: only their
// order matters.

// The claimed job's id, or "<none>" / the error.
std::string ClaimedId(JobStore& jobs, const std::string& holder, double now, double expires) {
  absl::StatusOr<std::optional<ClaimedJob>> claimed = jobs.ClaimJob(holder, now, expires);
  if (!claimed.ok()) return claimed.status().ToString();
  return claimed->has_value() ? (*claimed)->job_id : "<none>";
}

TEST_P(StoreConformanceTest, ClaimsGoOldestFirstAndAHeldLeaseIsNotClaimedAgain) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  absl::StatusOr<std::optional<ClaimedJob>> first = jobs().ClaimJob("replica-a", 100, 130);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->job_id, "job-1");
  EXPECT_EQ((*first)->state, JobState::kQueued);
  EXPECT_FALSE((*first)->cancel_requested);
  // Held leases are passed over, by another holder and by the holder itself.
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 100, 200), "job-2");
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 129.5, 200), "job-3");
  EXPECT_EQ(ClaimedId(jobs(), "replica-c", 129.5, 200), "<none>");
  // Claiming changes nothing else about the job.
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kQueued);

  // replica-a dies with job-1 running; at its lease's expiry (expires <= now: free) the
  // oldest free job is job-1, though job-4 is queued and free.
  ASSERT_TRUE(jobs().MarkRunning("job-1", 110).ok());
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  absl::StatusOr<std::optional<ClaimedJob>> taken_over = jobs().ClaimJob("replica-c", 130, 160);
  ASSERT_TRUE(taken_over.ok()) << taken_over.status();
  ASSERT_TRUE(taken_over->has_value());
  EXPECT_EQ((*taken_over)->job_id, "job-1");
  EXPECT_EQ((*taken_over)->state, JobState::kRunning);
  EXPECT_FALSE((*taken_over)->cancel_requested);
  // The old holder learns that it lost the job; the new one holds it.
  EXPECT_EQ(jobs().RenewLease("job-1", "replica-a", 190).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(jobs().RenewLease("job-1", "replica-c", 190).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-d", 131, 200), "job-4");
  EXPECT_EQ(ClaimedId(jobs(), "replica-d", 131, 200), "<none>");
}

TEST_P(StoreConformanceTest, EndedAndDeletedJobsAreNeverClaimed) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  // job-1 ends while its holder holds it, job-2 ends unclaimed and is deleted.
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 100, 1000), "job-1");
  ASSERT_TRUE(jobs().FinishJob("job-1", JobState::kSucceeded, "", 110, 10, {}).ok());
  ASSERT_TRUE(jobs().FinishJob("job-2", JobState::kFailed, "x", 110, 0, {}).ok());
  ASSERT_TRUE(jobs().DeleteJob("job-2", 120).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 100, 1000), "job-3");
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 2000, 3000), "job-3") << "its own lease expired";
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 2000, 3000), "<none>");
  EXPECT_EQ(ClaimedId(jobs(), "replica-c", 5000, 6000), "job-3");
  ASSERT_TRUE(jobs().FinishJob("job-3", JobState::kCancelled, "", 5001, 0, {}).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-c", 9000, 9500), "<none>");
  // A job stored later is claimed.
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-c", 9000, 9500), "job-4");
}

TEST_P(StoreConformanceTest, TheHolderRenewsItsLeaseAndNoOneElseCan) {
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(jobs().RenewLease("job-1", "replica-a", 130).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "not claimed yet";
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 100, 130), "job-1");
  absl::StatusOr<LeaseRenewal> renewed = jobs().RenewLease("job-1", "replica-a", 200);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(renewed->cancel_requested);
  // Past the first expiry, before the renewed one: still held.
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 150, 300), "<none>");

  const absl::Status stranger = jobs().RenewLease("job-1", "replica-b", 500).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kFailedPrecondition) << stranger;
  EXPECT_THAT(std::string(stranger.message()), HasSubstr("job-1"));
  // The stranger's renewal changed nothing: the lease still ends at 200.
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 199, 300), "<none>");
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 200, 300), "job-1");
  EXPECT_EQ(jobs().RenewLease("job-1", "replica-a", 400).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(jobs().RenewLease("job-1", "replica-b", 400).ok());

  EXPECT_EQ(jobs().RenewLease("job-9", "replica-b", 400).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().FinishJob("job-1", JobState::kSucceeded, "", 300, 10, {}).ok());
  EXPECT_EQ(jobs().RenewLease("job-1", "replica-b", 500).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, AReleasedLeaseIsFreeAtOnceAndOnlyItsHolderReleasesIt) {
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 100, 1000), "job-1");
  ASSERT_TRUE(jobs().MarkRunning("job-1", 101).ok());
  // Another holder's release is OK and changes nothing.
  EXPECT_TRUE(jobs().ReleaseLease("job-1", "replica-b").ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 200, 1000), "<none>");
  EXPECT_TRUE(jobs().RenewLease("job-1", "replica-a", 1000).ok());

  EXPECT_TRUE(jobs().ReleaseLease("job-1", "replica-a").ok());
  EXPECT_EQ(jobs().RenewLease("job-1", "replica-a", 1000).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kRunning) << "the job stays unfinished";
  absl::StatusOr<std::optional<ClaimedJob>> next = jobs().ClaimJob("replica-b", 200, 1000);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->job_id, "job-1");
  EXPECT_EQ((*next)->state, JobState::kRunning);

  EXPECT_TRUE(jobs().ReleaseLease("job-1", "replica-a").ok()) << "released already";
  EXPECT_EQ(jobs().ReleaseLease("job-9", "replica-a").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().FinishJob("job-1", JobState::kSucceeded, "", 300, 10, {}).ok());
  EXPECT_TRUE(jobs().ReleaseLease("job-1", "replica-b").ok()) << "an ended job";
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kSucceeded);
}

TEST_P(StoreConformanceTest, CancellingAQueuedUnclaimedJobEndsItAtOnce) {
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  absl::StatusOr<CancelRequestOutcome> outcome = jobs().RequestCancel("job-1", 150.5);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(*outcome, CancelRequestOutcome::kEnded);
  const JobRecord job = *jobs().GetJob("job-1");
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.finished_unix_s, 150.5);
  EXPECT_EQ(job.elapsed_s, 0);
  EXPECT_EQ(job.pareto_front_size, 0);
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 200, 300), "job-2");
  EXPECT_EQ(ClaimedId(jobs(), "replica-b", 300, 400), "job-2") << "job-1 is never claimed";

  EXPECT_EQ(jobs().RequestCancel("job-1", 160).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs().RequestCancel("job-9", 160).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(jobs().FinishJob("job-2", JobState::kSucceeded, "", 350, 10, {}).ok());
  EXPECT_EQ(jobs().RequestCancel("job-2", 360).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // A queued job whose holder's lease expired is free: it ends too.
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 400, 500), "job-3");
  EXPECT_EQ(*jobs().RequestCancel("job-3", 500), CancelRequestOutcome::kEnded);
  EXPECT_EQ(jobs().GetJob("job-3")->state, JobState::kCancelled);
  EXPECT_EQ(jobs().RenewLease("job-3", "replica-a", 600).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, CancellingAClaimedJobAsksItsHolderAndLaterClaimers) {
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 100, 200), "job-1");
  // Claimed but not yet running: its holder stops it.
  absl::StatusOr<CancelRequestOutcome> outcome = jobs().RequestCancel("job-1", 150);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(*outcome, CancelRequestOutcome::kRequested);
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kQueued);
  absl::StatusOr<LeaseRenewal> renewed = jobs().RenewLease("job-1", "replica-a", 250);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_TRUE(renewed->cancel_requested);
  // Asked again: still a request.
  EXPECT_EQ(*jobs().RequestCancel("job-1", 160), CancelRequestOutcome::kRequested);

  // The holder dies before stopping it: the next claimer is told at once.
  absl::StatusOr<std::optional<ClaimedJob>> claimed = jobs().ClaimJob("replica-b", 250, 300);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->job_id, "job-1");
  EXPECT_TRUE((*claimed)->cancel_requested);
  EXPECT_TRUE(jobs().RenewLease("job-1", "replica-b", 350)->cancel_requested);
  ASSERT_TRUE(jobs().FinishJob("job-1", JobState::kCancelled, "", 260, 0, {}).ok());
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kCancelled);

  // A running job whose holder died is not ended by the request (it may have rows to
  // finish): its next claimer stops it. Other jobs are not asked.
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 400, 500), "job-2");
  ASSERT_TRUE(jobs().MarkRunning("job-2", 401).ok());
  EXPECT_EQ(*jobs().RequestCancel("job-2", 600), CancelRequestOutcome::kRequested);
  EXPECT_EQ(jobs().GetJob("job-2")->state, JobState::kRunning);
  claimed = jobs().ClaimJob("replica-b", 600, 700);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job_id, "job-2");
  EXPECT_EQ((*claimed)->state, JobState::kRunning);
  EXPECT_TRUE((*claimed)->cancel_requested);
  claimed = jobs().ClaimJob("replica-b", 600, 700);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job_id, "job-3");
  EXPECT_FALSE((*claimed)->cancel_requested);
  EXPECT_FALSE(jobs().RenewLease("job-3", "replica-b", 800)->cancel_requested);
}

TEST_P(StoreConformanceTest, BadLeaseArgumentsAreRefusedNamingTheFieldAndChangeNothing) {
  ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::string too_long(257, 'h');
  const auto expect_refused = [](const absl::Status& status, const std::string& field) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(field));
  };
  expect_refused(jobs().ClaimJob("", 100, 200).status(), "holder");
  expect_refused(jobs().ClaimJob(too_long, 100, 200).status(), "holder");
  expect_refused(jobs().ClaimJob("replica-a", 100, 100).status(), "expires_unix_s");
  expect_refused(jobs().ClaimJob("replica-a", 100, 50).status(), "expires_unix_s");
  expect_refused(jobs().ClaimJob("replica-a", nan, 200).status(), "now_unix_s");
  expect_refused(jobs().ClaimJob("replica-a", 100, nan).status(), "expires_unix_s");
  expect_refused(jobs().RequestCancel("job-1", nan).status(), "now_unix_s");
  EXPECT_EQ(jobs().GetJob("job-1")->state, JobState::kQueued);

  // The longest holder is taken; nothing refused above was claimed or cancelled.
  const std::string longest(256, 'h');
  absl::StatusOr<std::optional<ClaimedJob>> claimed = jobs().ClaimJob(longest, 100, 200);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->job_id, "job-1");
  EXPECT_FALSE((*claimed)->cancel_requested);

  expect_refused(jobs().RenewLease("job-1", "", 300).status(), "holder");
  expect_refused(jobs().RenewLease("job-1", too_long, 300).status(), "holder");
  expect_refused(jobs().RenewLease("job-1", longest, nan).status(), "expires_unix_s");
  expect_refused(jobs().ReleaseLease("job-1", ""), "holder");
  expect_refused(jobs().ReleaseLease("job-1", too_long), "holder");
  // The lease still ends at 200, held by `longest`.
  EXPECT_EQ(ClaimedId(jobs(), "replica-a", 199, 300), "<none>");
  EXPECT_TRUE(jobs().RenewLease("job-1", longest, 300).ok());
}

// Replicas claiming at once get every job exactly once.
TEST_P(StoreConformanceTest, ConcurrentClaimersGetEveryJobExactlyOnce) {
  constexpr int kJobs = 20;
  constexpr int kClaimers = 4;
  for (int i = 0; i < kJobs; ++i) ASSERT_TRUE(jobs().CreateJob(MakeJob()).ok());
  std::vector<std::vector<std::string>> claimed(kClaimers);
  std::atomic<int> errors{0};
  auto claim = [&](int claimer) {
    const std::string holder = absl::StrCat("replica-", claimer);
    // More claims than jobs: some job was claimed twice (and the loop would not end).
    for (int claims = 0; claims <= kJobs; ++claims) {
      absl::StatusOr<std::optional<ClaimedJob>> job = jobs().ClaimJob(holder, 100, 1000);
      if (!job.ok()) {
        ADD_FAILURE() << holder << ": " << job.status();
        ++errors;
        return;
      }
      if (!job->has_value()) return;
      claimed[claimer].push_back((*job)->job_id);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(kClaimers);
  for (int t = 0; t < kClaimers; ++t) threads.emplace_back(claim, t);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);

  std::vector<std::string> all;
  for (int t = 0; t < kClaimers; ++t) {
    all.insert(all.end(), claimed[t].begin(), claimed[t].end());
    // Each claimer got its jobs oldest first, and holds them: it renews, others cannot.
    for (size_t i = 1; i < claimed[t].size(); ++i) {
      EXPECT_LT(std::stoi(claimed[t][i - 1].substr(4)), std::stoi(claimed[t][i].substr(4)));
    }
    for (const std::string& id : claimed[t]) {
      EXPECT_TRUE(jobs().RenewLease(id, absl::StrCat("replica-", t), 1000).ok()) << id;
      EXPECT_EQ(jobs()
                    .RenewLease(id, absl::StrCat("replica-", (t + 1) % kClaimers), 1000)
                    .status()
                    .code(),
                absl::StatusCode::kFailedPrecondition)
          << id;
    }
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected;
  for (int i = 1; i <= kJobs; ++i) expected.push_back(absl::StrCat("job-", i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected) << "every job claimed exactly once";
}

// Training job leases (TrainingJobStore::ClaimTrainingJob and the rest), as the jobs' above.

// A queued training job's record as CreateTrainingJob takes it.
TrainingJobRecord MakeTrainingJob() {
  TrainingJobRecord job;
  job.space = "fmnist_mbv2";
  job.dataset = "fm";
  job.request = absl::StrCat("\x08\x01", kBinary);
  job.created_unix_s = 1.7e9;
  return job;
}

// The claimed training job's id, or "<none>" / the error.
std::string ClaimedTrainingId(TrainingJobStore& training_jobs, const std::string& holder,
                              double now, double expires) {
  absl::StatusOr<std::optional<ClaimedTrainingJob>> claimed =
      training_jobs.ClaimTrainingJob(holder, now, expires);
  if (!claimed.ok()) return claimed.status().ToString();
  return claimed->has_value() ? (*claimed)->job.id : "<none>";
}

TEST_P(StoreConformanceTest, TrainingClaimsGoOldestFirstAndAHeldLeaseIsNotClaimedAgain) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 100, 1000), "train-1")
      << "claimed when all are free";
  // The job as stored comes with the claim.
  ASSERT_TRUE(training_jobs().MarkTrainingRunning("train-2", 50).ok());
  absl::StatusOr<std::optional<ClaimedTrainingJob>> second =
      training_jobs().ClaimTrainingJob("replica-b", 100, 200);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->has_value());
  const TrainingJobRecord& job = (*second)->job;
  EXPECT_EQ(job.id, "train-2");
  EXPECT_EQ(job.space, "fmnist_mbv2");
  EXPECT_EQ(job.dataset, "fm");
  EXPECT_EQ(job.request, MakeTrainingJob().request);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.started_unix_s, 50);
  EXPECT_EQ(job.created_unix_s, 1.7e9);
  EXPECT_FALSE((*second)->cancel_requested);
  // Held leases are passed over, by another holder and by the holder itself.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 150, 300), "train-3");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 150, 300), "<none>");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-c", 199.5, 300), "<none>");
  // Claiming changes nothing else about the job.
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kQueued);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-2")->state, JobState::kRunning);

  // replica-b dies with train-2 running; at its lease's expiry (expires <= now: free) the
  // oldest free job is train-2, though train-4 is queued and free.
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  absl::StatusOr<std::optional<ClaimedTrainingJob>> taken_over =
      training_jobs().ClaimTrainingJob("replica-c", 200, 260);
  ASSERT_TRUE(taken_over.ok()) << taken_over.status();
  ASSERT_TRUE(taken_over->has_value());
  EXPECT_EQ((*taken_over)->job.id, "train-2");
  EXPECT_EQ((*taken_over)->job.state, JobState::kRunning);
  EXPECT_FALSE((*taken_over)->cancel_requested);
  // The old holder learns that it lost the job; the new one holds it.
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-2", "replica-b", 290).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(training_jobs().RenewTrainingLease("train-2", "replica-c", 290).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-d", 201, 400), "train-4");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-d", 201, 400), "<none>");
  // Search jobs and training jobs are claimed apart.
  EXPECT_EQ(ClaimedId(jobs(), "replica-d", 201, 400), "<none>");
}

TEST_P(StoreConformanceTest, FinishingATrainingJobEndsItsLease) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  // train-1 ends while its holder holds it, train-2 ends unclaimed.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 100, 1000), "train-1");
  ASSERT_TRUE(training_jobs().MarkTrainingRunning("train-1", 101).ok());
  PredictorRecord trained = Predictor("v1", true);
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-1", JobState::kSucceeded, "", 110, &trained).ok());
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-2", JobState::kFailed, "x", 110, nullptr).ok());
  // The ended job's holder holds nothing: renewing is refused, releasing changes nothing.
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-1", "replica-a", 2000).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(training_jobs().ReleaseTrainingLease("train-1", "replica-a").ok());
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kSucceeded);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->predictor_version, "v1");
  // Ended jobs are never claimed, before or after their lease would have expired.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 100, 1000), "train-3");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 2000, 3000), "train-3")
      << "its own lease expired";
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 2000, 3000), "<none>");
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-3", JobState::kCancelled, "", 2001, nullptr).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-c", 9000, 9500), "<none>");
  // A job stored later is claimed.
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-c", 9000, 9500), "train-4");
}

TEST_P(StoreConformanceTest, TheHolderRenewsItsTrainingLeaseAndNoOneElseCan) {
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-1", "replica-a", 130).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "not claimed yet";
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 100, 130), "train-1");
  absl::StatusOr<LeaseRenewal> renewed =
      training_jobs().RenewTrainingLease("train-1", "replica-a", 200);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(renewed->cancel_requested);
  // Past the first expiry, before the renewed one: still held.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 150, 300), "<none>");

  const absl::Status stranger =
      training_jobs().RenewTrainingLease("train-1", "replica-b", 500).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kFailedPrecondition) << stranger;
  EXPECT_THAT(std::string(stranger.message()), HasSubstr("train-1"));
  // The stranger's renewal changed nothing: the lease still ends at 200.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 199, 300), "<none>");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 200, 300), "train-1");
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-1", "replica-a", 400).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(training_jobs().RenewTrainingLease("train-1", "replica-b", 400).ok());

  EXPECT_EQ(training_jobs().RenewTrainingLease("train-9", "replica-b", 400).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-1", JobState::kFailed, "x", 300, nullptr).ok());
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-1", "replica-b", 500).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, AReleasedTrainingLeaseIsFreeAtOnceAndOnlyItsHolderReleasesIt) {
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 100, 1000), "train-1");
  ASSERT_TRUE(training_jobs().MarkTrainingRunning("train-1", 101).ok());
  // Another holder's release is OK and changes nothing.
  EXPECT_TRUE(training_jobs().ReleaseTrainingLease("train-1", "replica-b").ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 200, 1000), "<none>");
  EXPECT_TRUE(training_jobs().RenewTrainingLease("train-1", "replica-a", 1000).ok());

  EXPECT_TRUE(training_jobs().ReleaseTrainingLease("train-1", "replica-a").ok());
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-1", "replica-a", 1000).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kRunning)
      << "the job stays unfinished";
  absl::StatusOr<std::optional<ClaimedTrainingJob>> next =
      training_jobs().ClaimTrainingJob("replica-b", 200, 1000);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->job.id, "train-1");
  EXPECT_EQ((*next)->job.state, JobState::kRunning);

  EXPECT_TRUE(training_jobs().ReleaseTrainingLease("train-1", "replica-a").ok())
      << "released already";
  EXPECT_EQ(training_jobs().ReleaseTrainingLease("train-9", "replica-a").code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-1", JobState::kFailed, "x", 300, nullptr).ok());
  EXPECT_TRUE(training_jobs().ReleaseTrainingLease("train-1", "replica-b").ok()) << "an ended job";
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kFailed);
}

TEST_P(StoreConformanceTest, CancellingAQueuedUnclaimedTrainingJobEndsItAtOnce) {
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  absl::StatusOr<CancelRequestOutcome> outcome =
      training_jobs().RequestTrainingCancel("train-1", 150.5);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(*outcome, CancelRequestOutcome::kEnded);
  const TrainingJobRecord job = *training_jobs().GetTrainingJob("train-1");
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.finished_unix_s, 150.5);
  EXPECT_EQ(job.error, "cancelled by request");
  EXPECT_EQ(job.predictor_version, "");
  EXPECT_EQ(job.metrics_json, "{}");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 200, 300), "train-2");
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-b", 300, 400), "train-2")
      << "train-1 is never claimed";

  EXPECT_EQ(training_jobs().RequestTrainingCancel("train-1", 160).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(training_jobs().RequestTrainingCancel("train-9", 160).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      training_jobs().FinishTrainingJob("train-2", JobState::kFailed, "x", 350, nullptr).ok());
  EXPECT_EQ(training_jobs().RequestTrainingCancel("train-2", 360).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-2")->error, "x");

  // A queued job whose holder's lease expired is free: it ends too.
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 400, 500), "train-3");
  EXPECT_EQ(*training_jobs().RequestTrainingCancel("train-3", 500), CancelRequestOutcome::kEnded);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-3")->state, JobState::kCancelled);
  EXPECT_EQ(training_jobs().RenewTrainingLease("train-3", "replica-a", 600).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, CancellingAClaimedTrainingJobAsksItsHolderAndLaterClaimers) {
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 100, 200), "train-1");
  // Claimed but not yet running: its holder stops it.
  absl::StatusOr<CancelRequestOutcome> outcome =
      training_jobs().RequestTrainingCancel("train-1", 150);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(*outcome, CancelRequestOutcome::kRequested);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kQueued);
  absl::StatusOr<LeaseRenewal> renewed =
      training_jobs().RenewTrainingLease("train-1", "replica-a", 250);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_TRUE(renewed->cancel_requested);
  // Asked again: still a request.
  EXPECT_EQ(*training_jobs().RequestTrainingCancel("train-1", 160),
            CancelRequestOutcome::kRequested);

  // The holder dies before stopping it: the next claimer is told at once.
  absl::StatusOr<std::optional<ClaimedTrainingJob>> claimed =
      training_jobs().ClaimTrainingJob("replica-b", 250, 300);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->job.id, "train-1");
  EXPECT_TRUE((*claimed)->cancel_requested);
  EXPECT_TRUE(training_jobs().RenewTrainingLease("train-1", "replica-b", 350)->cancel_requested);
  ASSERT_TRUE(
      training_jobs()
          .FinishTrainingJob("train-1", JobState::kCancelled, "cancelled by request", 260, nullptr)
          .ok());
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kCancelled);

  // A running job whose holder died is not ended by the request: its next claimer stops it.
  // Other jobs are not asked.
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 400, 500), "train-2");
  ASSERT_TRUE(training_jobs().MarkTrainingRunning("train-2", 401).ok());
  EXPECT_EQ(*training_jobs().RequestTrainingCancel("train-2", 600),
            CancelRequestOutcome::kRequested);
  EXPECT_EQ(training_jobs().GetTrainingJob("train-2")->state, JobState::kRunning);
  claimed = training_jobs().ClaimTrainingJob("replica-b", 600, 700);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job.id, "train-2");
  EXPECT_EQ((*claimed)->job.state, JobState::kRunning);
  EXPECT_TRUE((*claimed)->cancel_requested);
  claimed = training_jobs().ClaimTrainingJob("replica-b", 600, 700);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job.id, "train-3");
  EXPECT_FALSE((*claimed)->cancel_requested);
  EXPECT_FALSE(training_jobs().RenewTrainingLease("train-3", "replica-b", 800)->cancel_requested);
}

TEST_P(StoreConformanceTest, BadTrainingLeaseArgumentsAreRefusedNamingTheFieldAndChangeNothing) {
  ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::string too_long(257, 'h');
  const auto expect_refused = [](const absl::Status& status, const std::string& field) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(field));
  };
  expect_refused(training_jobs().ClaimTrainingJob("", 100, 200).status(), "holder");
  expect_refused(training_jobs().ClaimTrainingJob(too_long, 100, 200).status(), "holder");
  expect_refused(training_jobs().ClaimTrainingJob("replica-a", 100, 100).status(),
                 "expires_unix_s");
  expect_refused(training_jobs().ClaimTrainingJob("replica-a", 100, 50).status(), "expires_unix_s");
  expect_refused(training_jobs().ClaimTrainingJob("replica-a", nan, 200).status(), "now_unix_s");
  expect_refused(training_jobs().ClaimTrainingJob("replica-a", 100, nan).status(),
                 "expires_unix_s");
  expect_refused(training_jobs().RequestTrainingCancel("train-1", nan).status(), "now_unix_s");
  EXPECT_EQ(training_jobs().GetTrainingJob("train-1")->state, JobState::kQueued);

  // The longest holder is taken; nothing refused above was claimed or cancelled.
  const std::string longest(256, 'h');
  absl::StatusOr<std::optional<ClaimedTrainingJob>> claimed =
      training_jobs().ClaimTrainingJob(longest, 100, 200);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->job.id, "train-1");
  EXPECT_FALSE((*claimed)->cancel_requested);

  expect_refused(training_jobs().RenewTrainingLease("train-1", "", 300).status(), "holder");
  expect_refused(training_jobs().RenewTrainingLease("train-1", too_long, 300).status(), "holder");
  expect_refused(training_jobs().RenewTrainingLease("train-1", longest, nan).status(),
                 "expires_unix_s");
  expect_refused(training_jobs().ReleaseTrainingLease("train-1", ""), "holder");
  expect_refused(training_jobs().ReleaseTrainingLease("train-1", too_long), "holder");
  // The lease still ends at 200, held by `longest`.
  EXPECT_EQ(ClaimedTrainingId(training_jobs(), "replica-a", 199, 300), "<none>");
  EXPECT_TRUE(training_jobs().RenewTrainingLease("train-1", longest, 300).ok());
}

// Replicas claiming training jobs at once get every one exactly once.
TEST_P(StoreConformanceTest, ConcurrentClaimersGetEveryTrainingJobExactlyOnce) {
  constexpr int kJobs = 12;
  constexpr int kClaimers = 4;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(training_jobs().CreateTrainingJob(MakeTrainingJob()).ok());
  }
  std::vector<std::vector<std::string>> claimed(kClaimers);
  std::atomic<int> errors{0};
  auto claim = [&](int claimer) {
    const std::string holder = absl::StrCat("replica-", claimer);
    // More claims than jobs: some job was claimed twice (and the loop would not end).
    for (int claims = 0; claims <= kJobs; ++claims) {
      absl::StatusOr<std::optional<ClaimedTrainingJob>> job =
          training_jobs().ClaimTrainingJob(holder, 100, 1000);
      if (!job.ok()) {
        ADD_FAILURE() << holder << ": " << job.status();
        ++errors;
        return;
      }
      if (!job->has_value()) return;
      claimed[claimer].push_back((*job)->job.id);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(kClaimers);
  for (int t = 0; t < kClaimers; ++t) threads.emplace_back(claim, t);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);

  std::vector<std::string> all;
  for (int t = 0; t < kClaimers; ++t) {
    all.insert(all.end(), claimed[t].begin(), claimed[t].end());
    // Each claimer got its jobs oldest first, and holds them: it renews, others cannot.
    for (size_t i = 1; i < claimed[t].size(); ++i) {
      EXPECT_LT(std::stoi(claimed[t][i - 1].substr(6)), std::stoi(claimed[t][i].substr(6)));
    }
    for (const std::string& id : claimed[t]) {
      EXPECT_TRUE(training_jobs().RenewTrainingLease(id, absl::StrCat("replica-", t), 1000).ok())
          << id;
      EXPECT_EQ(training_jobs()
                    .RenewTrainingLease(id, absl::StrCat("replica-", (t + 1) % kClaimers), 1000)
                    .status()
                    .code(),
                absl::StatusCode::kFailedPrecondition)
          << id;
    }
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected;
  expected.reserve(kJobs);
  for (int i = 1; i <= kJobs; ++i) expected.push_back(absl::StrCat("train-", i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected) << "every training job claimed exactly once";
}

// Measurement runs. Their dataset "fm" holds space fmnist_mbv2; a run measures "fp32" on the
// validation split with the seed of store_testing's Measurement rows.
constexpr double kRunCreated = 1700000000.25;

MeasurementRunRecord MakeRun(const std::string& dataset = "fm") {
  MeasurementRunRecord run;
  run.dataset = dataset;
  run.space = "fmnist_mbv2";
  run.method = "fp32";
  run.split = "validation";
  run.seed = 0xfedcba9876543210ULL;  // Above INT64_MAX: stored by its bits.
  run.settings = absl::StrCat("{\"images\": 500}", kBinary);
  run.created_unix_s = kRunCreated;
  return run;
}

// `count` distinct configs, "[<first>]", "[<first + 1>]", ...
std::vector<std::string> Configs(int count, int first = 0) {
  std::vector<std::string> configs;
  configs.reserve(count);
  for (int i = 0; i < count; ++i) configs.push_back(absl::StrCat("[", first + i, "]"));
  return configs;
}

// The record a worker measured for `task` of a MakeRun run.
MeasurementRow RowOf(const MeasurementTask& task, double accuracy, double created = 1.7e9 + 60) {
  MeasurementRow row = Measurement(task.config_json, accuracy, "fp32");
  row.split = "validation";
  row.created_unix_s = created;
  return row;
}

std::vector<int64_t> Indexes(const std::vector<MeasurementTask>& tasks) {
  std::vector<int64_t> indexes;
  indexes.reserve(tasks.size());
  for (const MeasurementTask& task : tasks) indexes.push_back(task.index);
  return indexes;
}

class MeasurementRunTest : public StoreConformanceTest {
 protected:
  void SetUp() override {
    StoreConformanceTest::SetUp();
    if (store_ == nullptr) return;
    ASSERT_TRUE(datasets().CreateDataset({"fm", "fmnist_mbv2", "", 1.7e9}, {}).ok());
  }

  // A new run of `configs` on "fm"; its id.
  std::string CreateRun(const std::vector<std::string>& configs) {
    absl::StatusOr<std::string> id = runs().CreateMeasurementRun(MakeRun(), configs);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }

  // `holder`'s claim of up to `max_tasks` tasks at `now`, held for 100 s; none on error.
  std::vector<MeasurementTask> Claim(const std::string& run_id, const std::string& holder,
                                     int max_tasks, double now = 100) {
    absl::StatusOr<std::vector<MeasurementTask>> claimed =
        runs().ClaimMeasurementTasks(run_id, holder, now, now + 100, max_tasks);
    EXPECT_TRUE(claimed.ok()) << claimed.status();
    return claimed.value_or(std::vector<MeasurementTask>());
  }

  MeasurementRunRecord Run(const std::string& run_id) {
    absl::StatusOr<MeasurementRunRecord> run = runs().GetMeasurementRun(run_id);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.value_or(MeasurementRunRecord());
  }

  std::vector<MeasurementRow> Rows() { return *datasets().ListMeasurements("fm", std::nullopt); }
};

INSTANTIATE_TEST_SUITE_P(Backends, MeasurementRunTest, ::testing::ValuesIn(BackendsAndAWrapper()),
                         BackendName);

TEST_P(MeasurementRunTest, RunsGetIdsInCreationOrderAndReadBackWhatWasGiven) {
  // Only the identity, settings and creation time are taken from the record.
  MeasurementRunRecord given = MakeRun();
  given.id = "measure-77";
  given.launcher = "ignored";
  given.state = JobState::kSucceeded;
  given.tasks_total = 9;
  given.tasks_done = 9;
  given.tasks_held = 2;
  given.finished_unix_s = 5;
  given.error = "ignored";
  given.max_attempts = 7;
  EXPECT_EQ(*runs().CreateMeasurementRun(given, Configs(3)), "measure-1");
  EXPECT_EQ(*runs().CreateMeasurementRun(MakeRun(), Configs(1)), "measure-2");

  const MeasurementRunRecord run = Run("measure-1");
  EXPECT_EQ(run.id, "measure-1");
  EXPECT_EQ(run.dataset, "fm");
  EXPECT_EQ(run.space, "fmnist_mbv2");
  EXPECT_EQ(run.method, "fp32");
  EXPECT_EQ(run.split, "validation");
  EXPECT_EQ(run.seed, 0xfedcba9876543210ULL);
  EXPECT_EQ(run.settings, MakeRun().settings);  // Byte for byte, NULs included.
  EXPECT_EQ(run.launcher, "");
  EXPECT_EQ(run.state, JobState::kQueued);
  EXPECT_EQ(run.tasks_total, 3);
  EXPECT_EQ(run.tasks_done, 0);
  EXPECT_EQ(run.tasks_failed, 0);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_EQ(run.created_unix_s, kRunCreated);
  EXPECT_EQ(run.finished_unix_s, 0);
  EXPECT_EQ(run.error, "");
  EXPECT_EQ(run.max_attempts, 7);
  EXPECT_EQ(Run("measure-2").tasks_total, 1);
  EXPECT_EQ(Run("measure-2").max_attempts, 3) << "the record's default";
  EXPECT_EQ((*runs().ListMeasurementRuns(0, 10)).back().max_attempts, 7);
  EXPECT_EQ(runs().GetMeasurementRun("measure-3").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(runs().SetMeasurementRunLauncher("measure-1", "slurm 42 (array of 4)").ok());
  EXPECT_EQ(Run("measure-1").launcher, "slurm 42 (array of 4)");
  EXPECT_TRUE(runs().SetMeasurementRunLauncher("measure-1", std::string(256, 'l')).ok());
  const absl::Status long_launcher =
      runs().SetMeasurementRunLauncher("measure-1", std::string(257, 'l'));
  EXPECT_EQ(long_launcher.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(long_launcher.message(), HasSubstr("launcher"));
  EXPECT_EQ(Run("measure-1").launcher, std::string(256, 'l'));
  EXPECT_EQ(runs().SetMeasurementRunLauncher("measure-9", "local 2").code(),
            absl::StatusCode::kNotFound);
  // The dataset is unchanged by a run.
  EXPECT_THAT(Rows(), IsEmpty());
}

TEST_P(MeasurementRunTest, BadRunsAreRefusedNamingTheFieldAndStoreNothing) {
  const auto expect_refused = [&](const MeasurementRunRecord& run,
                                  const std::vector<std::string>& configs,
                                  const std::string& field) {
    const absl::StatusOr<std::string> created = runs().CreateMeasurementRun(run, configs);
    EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument)
        << field << ": " << created.status();
    EXPECT_THAT(created.status().message(), HasSubstr(field));
  };
  for (const auto& [field, member] : {std::pair<std::string, std::string MeasurementRunRecord::*>{
                                          "dataset", &MeasurementRunRecord::dataset},
                                      {"space", &MeasurementRunRecord::space},
                                      {"method", &MeasurementRunRecord::method},
                                      {"split", &MeasurementRunRecord::split}}) {
    MeasurementRunRecord run = MakeRun();
    run.*member = "";
    expect_refused(run, Configs(2), field);
  }
  expect_refused(MakeRun(), {}, "configs");
  expect_refused(MakeRun(), Configs(static_cast<int>(kMaxMeasurementTasks) + 1), "configs");
  expect_refused(MakeRun(), {"[0]", "", "[2]"}, "configs[1]");
  expect_refused(MakeRun(), {"[0]", "[1]", "[0]"}, "configs[2]");
  MeasurementRunRecord big = MakeRun();
  big.settings = std::string((1 << 20) + 1, 's');
  expect_refused(big, Configs(1), "settings");
  MeasurementRunRecord nan = MakeRun();
  nan.created_unix_s = std::nan("");
  expect_refused(nan, Configs(1), "created_unix_s");
  for (const int max_attempts : {0, -1, 101}) {
    MeasurementRunRecord run = MakeRun();
    run.max_attempts = max_attempts;
    expect_refused(run, Configs(1), "max_attempts");
  }

  EXPECT_EQ(runs().CreateMeasurementRun(MakeRun("nope"), Configs(1)).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(datasets().CreateDataset({"other", "ofa_mbv3", "", 1.7e9}, {}).ok());
  EXPECT_EQ(runs().CreateMeasurementRun(MakeRun("other"), Configs(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A dataset of test-split records takes no validation run (an empty one takes any).
  MeasurementRow on_test = Measurement("[7]", 0.5, "fp32");
  on_test.split = "test";
  ASSERT_TRUE(datasets().CreateDataset({"tested", "fmnist_mbv2", "", 1.7e9}, {on_test}).ok());
  const absl::Status mixed = runs().CreateMeasurementRun(MakeRun("tested"), Configs(1)).status();
  EXPECT_EQ(mixed.code(), absl::StatusCode::kFailedPrecondition) << mixed;
  EXPECT_THAT(std::string(mixed.message()), HasSubstr("split \"test\""));

  EXPECT_THAT(*runs().ListMeasurementRuns(0, 10), IsEmpty());
  // The most tasks are accepted, and the first run stored is the first id.
  EXPECT_EQ(
      *runs().CreateMeasurementRun(MakeRun(), Configs(static_cast<int>(kMaxMeasurementTasks))),
      "measure-1");
  EXPECT_EQ(Run("measure-1").tasks_total, kMaxMeasurementTasks);
}

TEST_P(MeasurementRunTest, ClaimsTakeTheLowestIndexesFirstUpToMaxTasks) {
  const std::string id = CreateRun(Configs(5));
  const std::string other = CreateRun(Configs(2, 10));
  const std::vector<MeasurementTask> first = Claim(id, "worker-a", 2);
  EXPECT_THAT(Indexes(first), ElementsAre(0, 1));
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].run_id, id);
  EXPECT_EQ(first[0].config_json, "[0]");
  EXPECT_EQ(first[1].config_json, "[1]");
  EXPECT_EQ(first[0].attempts, 1);
  EXPECT_NE(first[0].id, first[1].id);
  // The first claim moves the run to kRunning; the other run is untouched.
  MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.state, JobState::kRunning);
  EXPECT_EQ(run.tasks_held, 2);
  EXPECT_EQ(Run(other).state, JobState::kQueued);

  EXPECT_THAT(Indexes(Claim(id, "worker-b", 10)), ElementsAre(2, 3, 4));
  EXPECT_THAT(Claim(id, "worker-c", 10), IsEmpty());
  EXPECT_THAT(Claim(id, "worker-a", 10), IsEmpty()) << "its own tasks are held too";
  EXPECT_EQ(Run(id).tasks_held, 5);

  // Task ids are unique in the store.
  const std::vector<MeasurementTask> others = Claim(other, "worker-a", 1000);
  ASSERT_EQ(others.size(), 2u);
  EXPECT_EQ(others[0].config_json, "[10]");
  for (const MeasurementTask& task : others) {
    EXPECT_NE(task.id, first[0].id);
    EXPECT_NE(task.id, first[1].id);
  }

  const auto claim_code = [&](const std::string& run_id, const std::string& holder, double now,
                              double expires, int max_tasks) {
    return runs().ClaimMeasurementTasks(run_id, holder, now, expires, max_tasks).status().code();
  };
  const std::string fresh = CreateRun(Configs(1));
  EXPECT_EQ(claim_code(fresh, "w", 100, 200, 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code(fresh, "w", 100, 200, 1001), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code(fresh, "", 100, 200, 1), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code(fresh, std::string(257, 'h'), 100, 200, 1),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code(fresh, "w", 100, 100, 1), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code(fresh, "w", std::nan(""), 200, 1), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(claim_code("measure-99", "w", 100, 200, 1), absl::StatusCode::kNotFound);
  // None of them claimed anything.
  EXPECT_EQ(Run(fresh).state, JobState::kQueued);
  EXPECT_EQ(Run(fresh).tasks_held, 0);
  EXPECT_THAT(Indexes(Claim(fresh, "w", 1000)), ElementsAre(0));
}

TEST_P(MeasurementRunTest, AHeldTaskIsClaimedAgainOnlyOnceItsLeaseExpires) {
  const std::string id = CreateRun(Configs(2));
  const std::vector<MeasurementTask> lost = Claim(id, "worker-a", 1, /*now=*/100);  // Until 200.
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_THAT(Indexes(Claim(id, "worker-b", 2, /*now=*/199.5)), ElementsAre(1));
  // At the expiry (expires <= now: free) worker-c takes the task over: its second attempt.
  const std::vector<MeasurementTask> taken = Claim(id, "worker-c", 2, /*now=*/200);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id, lost[0].id);
  EXPECT_EQ(taken[0].index, 0);
  EXPECT_EQ(taken[0].attempts, 2);
  EXPECT_EQ(Run(id).tasks_held, 2) << "a task taken over is counted once";

  // worker-a lost it: it renews nothing, and its completion stores no record.
  EXPECT_THAT(*runs().RenewMeasurementTasks(id, "worker-a", {lost[0].id}, 400), IsEmpty());
  const absl::Status late =
      runs().CompleteMeasurementTask(id, lost[0].id, "worker-a", RowOf(lost[0], 0.5));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_THAT(Rows(), IsEmpty());
  EXPECT_EQ(Run(id).tasks_done, 0);
  EXPECT_TRUE(
      runs().CompleteMeasurementTask(id, taken[0].id, "worker-c", RowOf(taken[0], 0.5)).ok());
  EXPECT_THAT(Rows(), ::testing::SizeIs(1));
}

TEST_P(MeasurementRunTest, RenewingKeepsOnlyTheTasksStillHeld) {
  const std::string id = CreateRun(Configs(4));
  const std::vector<MeasurementTask> held = Claim(id, "worker-a", 3, /*now=*/100);  // Until 200.
  ASSERT_EQ(held.size(), 3u);
  const std::string other = CreateRun(Configs(1, 10));
  const std::vector<MeasurementTask> elsewhere = Claim(other, "worker-a", 1);
  ASSERT_EQ(elsewhere.size(), 1u);
  ASSERT_TRUE(runs().CompleteMeasurementTask(id, held[0].id, "worker-a", RowOf(held[0], 0.5)).ok());

  // Settled, of another run, unknown or listed twice: only held[1] and held[2] are renewed.
  absl::StatusOr<std::vector<int64_t>> renewed = runs().RenewMeasurementTasks(
      id, "worker-a", {held[2].id, held[0].id, held[1].id, elsewhere[0].id, held[2].id, 987654},
      500);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  std::vector<int64_t> sorted = *renewed;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> expected = {held[1].id, held[2].id};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(sorted, expected);
  EXPECT_THAT(*runs().RenewMeasurementTasks(id, "worker-b", {held[1].id}, 500), IsEmpty());
  // Renewed until 500: not free at 300 (claimed until 200), and free at 500 (as task 3,
  // claimed at 300 until 400).
  EXPECT_THAT(Indexes(Claim(id, "worker-b", 10, /*now=*/300)), ElementsAre(3));
  EXPECT_THAT(Indexes(Claim(id, "worker-c", 10, /*now=*/500)), ElementsAre(1, 2, 3));

  EXPECT_EQ(
      runs().RenewMeasurementTasks("measure-9", "worker-a", {held[1].id}, 600).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(runs().RenewMeasurementTasks(id, "", {held[1].id}, 600).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      runs().RenewMeasurementTasks(id, "worker-b", {held[1].id}, std::nan("")).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*runs().RenewMeasurementTasks(id, "worker-b", {}, 600), IsEmpty());
}

TEST_P(MeasurementRunTest, CompletingATaskStoresItsRecordInTheDatasetAndCountsIt) {
  const std::string id = CreateRun(Configs(3));
  const std::vector<MeasurementTask> tasks = Claim(id, "worker-a", 3);
  ASSERT_EQ(tasks.size(), 3u);
  MeasurementRow row = RowOf(tasks[1], 0.75, 1.7e9 + 61.5);
  row.seconds = 2.5;
  ASSERT_TRUE(runs().CompleteMeasurementTask(id, tasks[1].id, "worker-a", row).ok());
  std::vector<MeasurementRow> rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].config_json, "[1]");
  EXPECT_EQ(rows[0].accuracy, 0.75);
  EXPECT_EQ(rows[0].method, "fp32");
  EXPECT_EQ(rows[0].split, "validation");
  EXPECT_EQ(rows[0].seed, 0xfedcba9876543210ULL);
  EXPECT_EQ(rows[0].seconds, 2.5);
  EXPECT_EQ(rows[0].created_unix_s, 1.7e9 + 61.5);
  EXPECT_EQ(datasets().GetDataset("fm")->split, "validation");
  MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.state, JobState::kRunning);
  EXPECT_EQ(run.tasks_done, 1);
  EXPECT_EQ(run.tasks_held, 2);
  EXPECT_EQ(run.finished_unix_s, 0);

  // A settled task is no one's; a holder completes only its own; ids are the run's.
  EXPECT_EQ(runs().CompleteMeasurementTask(id, tasks[1].id, "worker-a", row).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      runs().CompleteMeasurementTask(id, tasks[0].id, "worker-b", RowOf(tasks[0], 0.5)).code(),
      absl::StatusCode::kFailedPrecondition);
  const std::string other = CreateRun(Configs(1, 10));
  const std::vector<MeasurementTask> elsewhere = Claim(other, "worker-a", 1);
  ASSERT_EQ(elsewhere.size(), 1u);
  EXPECT_EQ(runs()
                .CompleteMeasurementTask(id, elsewhere[0].id, "worker-a", RowOf(elsewhere[0], 0.5))
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runs().CompleteMeasurementTask(id, 987654, "worker-a", RowOf(tasks[0], 0.5)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runs()
                .CompleteMeasurementTask("measure-9", tasks[0].id, "worker-a", RowOf(tasks[0], 0.5))
                .code(),
            absl::StatusCode::kNotFound);

  // A row that is not the task's, or one AddMeasurements refuses, names the field.
  const auto expect_refused = [&](const MeasurementRow& bad, const std::string& field) {
    const absl::Status status = runs().CompleteMeasurementTask(id, tasks[0].id, "worker-a", bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(field));
  };
  MeasurementRow bad = RowOf(tasks[0], 0.5);
  bad.config_json = "[2]";
  expect_refused(bad, "config_json");
  bad = RowOf(tasks[0], 0.5);
  bad.method = "quant-from-supernet";
  expect_refused(bad, "method");
  bad = RowOf(tasks[0], 0.5);
  bad.split = "test";
  expect_refused(bad, "split");
  expect_refused(RowOf(tasks[0], 1.5), "accuracy");
  expect_refused(RowOf(tasks[0], std::nan("")), "accuracy");
  bad = RowOf(tasks[0], 0.5);
  bad.seconds = -1;
  expect_refused(bad, "seconds");
  expect_refused(RowOf(tasks[0], 0.5, std::nan("")), "created_unix_s");
  EXPECT_THAT(Rows(), ::testing::SizeIs(1));
  EXPECT_EQ(Run(id).tasks_done, 1);

  // The last task to settle ends the run at its record's time.
  ASSERT_TRUE(
      runs().CompleteMeasurementTask(id, tasks[0].id, "worker-a", RowOf(tasks[0], 0.5)).ok());
  EXPECT_EQ(Run(id).state, JobState::kRunning);
  ASSERT_TRUE(runs()
                  .CompleteMeasurementTask(id, tasks[2].id, "worker-a",
                                           RowOf(tasks[2], 0.25, 1.7e9 + 99.75))
                  .ok());
  run = Run(id);
  EXPECT_EQ(run.state, JobState::kSucceeded);
  EXPECT_EQ(run.finished_unix_s, 1.7e9 + 99.75);
  EXPECT_EQ(run.tasks_done, 3);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_EQ(run.tasks_failed, 0);
  EXPECT_EQ(run.error, "");
  EXPECT_EQ(datasets().GetDataset("fm")->records, 3);
  EXPECT_THAT(Claim(id, "worker-b", 10), IsEmpty());
}

TEST_P(MeasurementRunTest, ARecordTheDatasetHoldsSettlesTheTaskWithoutASecondRow) {
  MeasurementRow held = Measurement("[1]", 0.5, "fp32");
  held.split = "validation";
  ASSERT_TRUE(datasets().AddMeasurements("fm", {held}).ok());
  const std::string id = CreateRun(Configs(2));
  const std::vector<MeasurementTask> tasks = Claim(id, "worker-a", 2);
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_TRUE(
      runs().CompleteMeasurementTask(id, tasks[1].id, "worker-a", RowOf(tasks[1], 0.9)).ok());
  std::vector<MeasurementRow> rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].accuracy, 0.5) << "the record held is kept";
  EXPECT_EQ(Run(id).tasks_done, 1);
  EXPECT_EQ(Run(id).tasks_held, 1);
  ASSERT_TRUE(
      runs().CompleteMeasurementTask(id, tasks[0].id, "worker-a", RowOf(tasks[0], 0.9)).ok());
  EXPECT_EQ(Rows().size(), 2u);
  EXPECT_EQ(Run(id).state, JobState::kSucceeded);
}

// A record the dataset refuses as AddMeasurements would (a split it does not hold: another
// writer added records of another split after the run was created, which creating it would
// have refused) settles nothing: the task stays held.
TEST_P(MeasurementRunTest, ARecordOfAnotherSplitThanTheDatasetsIsRefused) {
  const std::string id = CreateRun(Configs(1));
  MeasurementRow test_row = Measurement("[7]", 0.5, "fp32");
  test_row.split = "test";
  ASSERT_TRUE(datasets().AddMeasurements("fm", {test_row}).ok());
  const std::vector<MeasurementTask> tasks = Claim(id, "worker-a", 1);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(
      runs().CompleteMeasurementTask(id, tasks[0].id, "worker-a", RowOf(tasks[0], 0.9)).code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Rows().size(), 1u);
  EXPECT_EQ(Run(id).tasks_held, 1);
  EXPECT_EQ(Run(id).tasks_done, 0);
  EXPECT_THAT(*runs().RenewMeasurementTasks(id, "worker-a", {tasks[0].id}, 300),
              ElementsAre(tasks[0].id));
}

TEST_P(MeasurementRunTest, AFailedTaskIsPendingAgainUntilItsLastAttemptThenFailsTheRun) {
  const std::string id = CreateRun(Configs(2));
  std::vector<MeasurementTask> tasks = Claim(id, "worker-a", 1);
  ASSERT_EQ(tasks.size(), 1u);
  ASSERT_TRUE(runs().FailMeasurementTask(id, tasks[0].id, "worker-a", "boom 1", 2, 150).ok());
  MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_EQ(run.tasks_failed, 0);
  EXPECT_EQ(run.error, "");
  // Pending again: the lowest free index, on its second attempt.
  tasks = Claim(id, "worker-b", 1);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].index, 0);
  EXPECT_EQ(tasks[0].attempts, 2);

  // Refused failures change nothing.
  EXPECT_EQ(runs().FailMeasurementTask(id, tasks[0].id, "worker-a", "x", 2, 160).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(runs().FailMeasurementTask(id, tasks[0].id, "worker-b", "x", 0, 160).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().FailMeasurementTask(id, tasks[0].id, "worker-b", "x", 101, 160).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().FailMeasurementTask(id, tasks[0].id, "worker-b", "x", 2, std::nan("")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().FailMeasurementTask(id, 987654, "worker-b", "x", 2, 160).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runs().FailMeasurementTask("measure-9", tasks[0].id, "worker-b", "x", 2, 160).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(id).tasks_held, 1);

  // The last attempt settles it as failed, its error (4096 bytes kept) the run's.
  const std::string long_error = absl::StrCat("boom 2 ", std::string(5000, 'e'));
  ASSERT_TRUE(runs().FailMeasurementTask(id, tasks[0].id, "worker-b", long_error, 2, 170).ok());
  run = Run(id);
  EXPECT_EQ(run.tasks_failed, 1);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_EQ(run.error, absl::StrCat("task 0: ", long_error.substr(0, 4096)));
  EXPECT_EQ(run.state, JobState::kRunning) << "task 1 is unsettled";
  EXPECT_EQ(runs().FailMeasurementTask(id, tasks[0].id, "worker-b", "x", 2, 175).code(),
            absl::StatusCode::kFailedPrecondition);

  // The other task succeeds; the run ends kFailed at its record's time.
  tasks = Claim(id, "worker-b", 10);
  EXPECT_THAT(Indexes(tasks), ElementsAre(1));
  ASSERT_EQ(tasks.size(), 1u);
  ASSERT_TRUE(
      runs()
          .CompleteMeasurementTask(id, tasks[0].id, "worker-b", RowOf(tasks[0], 0.5, 1.7e9 + 180))
          .ok());
  run = Run(id);
  EXPECT_EQ(run.state, JobState::kFailed);
  EXPECT_EQ(run.finished_unix_s, 1.7e9 + 180);
  EXPECT_EQ(run.tasks_done, 1);
  EXPECT_EQ(run.tasks_failed, 1);
  EXPECT_THAT(run.error, ::testing::StartsWith("task 0: boom 2"));
  EXPECT_EQ(Rows().size(), 1u);

  // A run whose last task fails ends at the failure's time; the first failure is its error.
  const std::string single = CreateRun(Configs(2, 20));
  tasks = Claim(single, "worker-c", 2);
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_TRUE(runs().FailMeasurementTask(single, tasks[1].id, "worker-c", "first", 1, 300).ok());
  ASSERT_TRUE(runs().FailMeasurementTask(single, tasks[0].id, "worker-c", "second", 1, 310).ok());
  run = Run(single);
  EXPECT_EQ(run.state, JobState::kFailed);
  EXPECT_EQ(run.finished_unix_s, 310);
  EXPECT_EQ(run.tasks_failed, 2);
  EXPECT_EQ(run.error, "task 1: first");
}

// A worker that dies (killed, out of memory) renews nothing and fails nothing: its task's
// expired leases count as attempts, and a claim settles it as failed after the run's last.
TEST_P(MeasurementRunTest, ATaskWhoseWorkerDiesOnItsLastAttemptFailsAtTheNextClaim) {
  MeasurementRunRecord given = MakeRun();
  given.max_attempts = 2;
  absl::StatusOr<std::string> created = runs().CreateMeasurementRun(given, Configs(2));
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string id = *created;
  std::vector<MeasurementTask> tasks = Claim(id, "worker-a", 1, /*now=*/100);  // Until 200.
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].index, 0);
  // worker-a died; worker-b takes it over at the expiry, its second (last) attempt.
  tasks = Claim(id, "worker-b", 1, /*now=*/200);  // Until 300.
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].index, 0);
  EXPECT_EQ(tasks[0].attempts, 2);
  const MeasurementTask task0 = tasks[0];
  // Not before its lease expired: worker-c gets task 1 only, and task 0 stays held.
  tasks = Claim(id, "worker-x", 2, /*now=*/299);
  EXPECT_THAT(Indexes(tasks), ElementsAre(1));
  ASSERT_TRUE(runs().FailMeasurementTask(id, tasks[0].id, "worker-x", "gone", 3, 299).ok());
  MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.tasks_failed, 0);
  EXPECT_EQ(run.tasks_held, 1);

  // worker-b died too: worker-c's claim does not take task 0 a third time, it fails it.
  tasks = Claim(id, "worker-c", 2, /*now=*/300);
  EXPECT_THAT(Indexes(tasks), ElementsAre(1));
  ASSERT_EQ(tasks.size(), 1u);
  run = Run(id);
  EXPECT_EQ(run.state, JobState::kRunning) << "task 1 is unsettled";
  EXPECT_EQ(run.tasks_failed, 1);
  EXPECT_EQ(run.tasks_held, 1);
  EXPECT_EQ(run.tasks_done, 0);
  EXPECT_THAT(run.error, ::testing::StartsWith("task 0: "));
  EXPECT_THAT(run.error, HasSubstr("2 times"));
  // It stays failed: no later claim takes it (task 1 is held until 400), and worker-b cannot
  // settle it.
  EXPECT_THAT(Claim(id, "worker-d", 2, /*now=*/350), IsEmpty());
  EXPECT_EQ(runs().CompleteMeasurementTask(id, task0.id, "worker-b", RowOf(task0, 0.5)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Run(id).tasks_failed, 1);

  ASSERT_TRUE(
      runs()
          .CompleteMeasurementTask(id, tasks[0].id, "worker-c", RowOf(tasks[0], 0.5, 1.7e9 + 400))
          .ok());
  run = Run(id);
  EXPECT_EQ(run.state, JobState::kFailed);
  EXPECT_EQ(run.finished_unix_s, 1.7e9 + 400);
  EXPECT_EQ(run.tasks_done, 1);
  EXPECT_EQ(run.tasks_failed, 1);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_THAT(run.error, ::testing::StartsWith("task 0: "));
  EXPECT_EQ(Rows().size(), 1u);

  // A run whose last task dies on its last attempt ends at that claim's time.
  MeasurementRunRecord once = MakeRun();
  once.max_attempts = 1;
  created = runs().CreateMeasurementRun(once, Configs(1, 30));
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_EQ(Claim(*created, "worker-e", 1, /*now=*/500).size(), 1u);  // Until 600.
  EXPECT_THAT(Claim(*created, "worker-f", 1, /*now=*/650), IsEmpty());
  run = Run(*created);
  EXPECT_EQ(run.state, JobState::kFailed);
  EXPECT_EQ(run.finished_unix_s, 650);
  EXPECT_EQ(run.tasks_failed, 1);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_THAT(run.error, ::testing::StartsWith("task 0: "));
}

TEST_P(MeasurementRunTest, CancellingARunEndsItAndStopsClaimsAndCompletions) {
  const std::string id = CreateRun(Configs(4));
  const std::vector<MeasurementTask> a = Claim(id, "worker-a", 1);
  const std::vector<MeasurementTask> b = Claim(id, "worker-b", 1);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_TRUE(runs().CompleteMeasurementTask(id, b[0].id, "worker-b", RowOf(b[0], 0.5)).ok());
  ASSERT_TRUE(runs().CancelMeasurementRun(id, 500.5).ok());
  MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.state, JobState::kCancelled);
  EXPECT_EQ(run.finished_unix_s, 500.5);
  EXPECT_EQ(run.tasks_done, 1);
  EXPECT_EQ(run.tasks_held, 0);
  EXPECT_EQ(run.tasks_failed, 0);

  EXPECT_THAT(Claim(id, "worker-c", 10, /*now=*/10000), IsEmpty());
  EXPECT_EQ(runs().CompleteMeasurementTask(id, a[0].id, "worker-a", RowOf(a[0], 0.5)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(runs().FailMeasurementTask(id, a[0].id, "worker-a", "x", 3, 600).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(*runs().RenewMeasurementTasks(id, "worker-a", {a[0].id}, 700), IsEmpty());
  EXPECT_EQ(Rows().size(), 1u) << "the record stored before stays";
  EXPECT_EQ(runs().CancelMeasurementRun(id, 600).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Run(id).finished_unix_s, 500.5);
  EXPECT_EQ(runs().CancelMeasurementRun("measure-9", 600).code(), absl::StatusCode::kNotFound);

  // A queued run is cancelled as well; one that ended is not; NaN is refused.
  const std::string queued = CreateRun(Configs(1, 10));
  EXPECT_EQ(runs().CancelMeasurementRun(queued, std::nan("")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(queued).state, JobState::kQueued);
  ASSERT_TRUE(runs().CancelMeasurementRun(queued, 700).ok());
  EXPECT_EQ(Run(queued).state, JobState::kCancelled);
  const std::string done = CreateRun(Configs(1, 20));
  const std::vector<MeasurementTask> last = Claim(done, "worker-a", 1);
  ASSERT_EQ(last.size(), 1u);
  ASSERT_TRUE(
      runs().CompleteMeasurementTask(done, last[0].id, "worker-a", RowOf(last[0], 0.5)).ok());
  EXPECT_EQ(runs().CancelMeasurementRun(done, 800).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Run(done).state, JobState::kSucceeded);
}

TEST_P(MeasurementRunTest, RunsListNewestFirstAndPage) {
  for (int i = 0; i < 5; ++i) CreateRun(Configs(i + 1));
  ASSERT_EQ(Claim("measure-2", "worker-a", 1).size(), 1u);
  const std::vector<MeasurementRunRecord> all = *runs().ListMeasurementRuns(0, 10);
  std::vector<std::string> ids;
  ids.reserve(all.size());
  for (const MeasurementRunRecord& run : all) ids.push_back(run.id);
  EXPECT_THAT(ids, ElementsAre("measure-5", "measure-4", "measure-3", "measure-2", "measure-1"));
  ASSERT_EQ(all.size(), 5u);
  // Listed with their counts and settings.
  EXPECT_EQ(all[3].tasks_total, 2);
  EXPECT_EQ(all[3].tasks_held, 1);
  EXPECT_EQ(all[3].state, JobState::kRunning);
  EXPECT_EQ(all[0].settings, MakeRun().settings);
  const std::vector<MeasurementRunRecord> page = *runs().ListMeasurementRuns(1, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "measure-4");
  EXPECT_EQ(page[1].id, "measure-3");
  EXPECT_EQ(runs().ListMeasurementRuns(4, 10)->size(), 1u);
  EXPECT_THAT(*runs().ListMeasurementRuns(5, 10), IsEmpty());
  EXPECT_EQ(runs().ListMeasurementRuns(-1, 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().ListMeasurementRuns(0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().ListMeasurementRuns(0, kMaxPageSize + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runs().ListMeasurementRuns(0, kMaxPageSize)->size(), 5u);
}

// Workers claiming and completing at once measure every task exactly once.
TEST_P(MeasurementRunTest, ConcurrentWorkersMeasureEveryTaskExactlyOnce) {
  constexpr int kTasks = 60;
  constexpr int kWorkers = 4;
  constexpr int kBatch = 3;
  const std::string id = CreateRun(Configs(kTasks));
  std::vector<std::vector<int64_t>> completed(kWorkers);
  std::vector<std::vector<int64_t>> claimed_ids(kWorkers);
  std::atomic<bool> start{false};
  auto work = [&](int worker) {
    const std::string holder = absl::StrCat("worker-", worker);
    // All at once, so that claims interleave with others' claims and completions.
    while (!start.load()) std::this_thread::yield();
    // More claims than tasks: a task was claimed twice (and the loop would not end).
    for (int claims = 0; claims <= kTasks; ++claims) {
      absl::StatusOr<std::vector<MeasurementTask>> tasks =
          runs().ClaimMeasurementTasks(id, holder, 100, 1e9, kBatch);
      if (!tasks.ok()) {
        ADD_FAILURE() << holder << ": " << tasks.status();
        return;
      }
      if (tasks->empty()) return;
      EXPECT_LE(tasks->size(), static_cast<size_t>(kBatch));
      for (const MeasurementTask& task : *tasks) {
        claimed_ids[worker].push_back(task.id);
        std::this_thread::yield();  // Others claim while this task is held.
        const absl::Status done =
            runs().CompleteMeasurementTask(id, task.id, holder, RowOf(task, 0.5));
        if (!done.ok()) {
          ADD_FAILURE() << holder << " task " << task.index << ": " << done;
          continue;
        }
        completed[worker].push_back(task.index);
      }
    }
    ADD_FAILURE() << holder << " claimed more batches than there are tasks";
  };
  std::vector<std::thread> threads;
  threads.reserve(kWorkers);
  for (int w = 0; w < kWorkers; ++w) threads.emplace_back(work, w);
  start.store(true);
  for (std::thread& thread : threads) thread.join();

  std::vector<int64_t> all;
  std::vector<int64_t> all_ids;
  for (int w = 0; w < kWorkers; ++w) {
    all.insert(all.end(), completed[w].begin(), completed[w].end());
    all_ids.insert(all_ids.end(), claimed_ids[w].begin(), claimed_ids[w].end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(kTasks);
  for (int i = 0; i < kTasks; ++i) expected[i] = i;
  EXPECT_EQ(all, expected) << "every task completed exactly once";
  std::sort(all_ids.begin(), all_ids.end());
  EXPECT_EQ(std::adjacent_find(all_ids.begin(), all_ids.end()), all_ids.end())
      << "a task was claimed twice";
  EXPECT_EQ(all_ids.size(), static_cast<size_t>(kTasks));

  const std::vector<MeasurementRow> rows = Rows();
  EXPECT_EQ(rows.size(), static_cast<size_t>(kTasks));
  std::vector<std::string> configs;
  configs.reserve(rows.size());
  for (const MeasurementRow& row : rows) configs.push_back(row.config_json);
  std::sort(configs.begin(), configs.end());
  std::vector<std::string> expected_configs = Configs(kTasks);
  std::sort(expected_configs.begin(), expected_configs.end());
  EXPECT_EQ(configs, expected_configs);
  const MeasurementRunRecord run = Run(id);
  EXPECT_EQ(run.state, JobState::kSucceeded);
  EXPECT_EQ(run.tasks_done, kTasks);
  EXPECT_EQ(run.tasks_held, 0);
}

}  // namespace
}  // namespace apq::server
