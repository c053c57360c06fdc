// Search jobs against a store that fails: over the in-memory store wrapped in the
// fault-injecting one, a refused write, a write whose acknowledgement is lost, a store that
// keeps failing, and a restart in the middle of a job (between two group commits too), for
// every searchable space, device and objective. Each must leave exactly the record an
// undisturbed run leaves (or, for a store that keeps failing, a failed job with every step
// stored before the failure intact). And a job's rows count every network it met.
#include "server/job_manager.h"

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/engine_registry.h"
#include "search/pareto.h"
#include "server/candidate_metrics.h"
#include "server/catalog.h"
#include "server/job_manager_testing.h"
#include "server/store/faulty_store.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

struct Scenario {
  std::string name;
  std::string space;
  std::string device;
  apq::v1::Objective objective;
  apq::v1::CostMetric pareto_cost;
  double max_latency_ms;  // 0: none.
};

// Everything a job leaves in the store, comparable field by field.
struct JobSnapshot {
  JobState state = JobState::kQueued;
  std::string error;
  int generations_done = 0;
  int64_t candidates_evaluated = 0;
  int64_t rejected_draws = 0;
  int64_t pareto_front_size = 0;
  std::string best;
  std::vector<std::string> candidates;  // Described.
  std::vector<CandidateRecord> rows;
};

class JobFaultTest : public ::testing::TestWithParam<Scenario> {
 protected:
  void Open() { bed_.Open(); }
  void StartManager() { bed_.StartManager(); }
  apq::v1::JobProgress AwaitEnd(const std::string& job_id) { return bed_.AwaitEnd(job_id); }

  apq::v1::SubmitSearchRequest Request() const {
    const Scenario& scenario = GetParam();
    apq::v1::SubmitSearchRequest request;
    request.set_space(scenario.space);
    request.set_device(scenario.device);
    request.set_objective(scenario.objective);
    request.set_pareto_cost(scenario.pareto_cost);
    if (scenario.max_latency_ms > 0) {
      request.mutable_budgets()->set_max_latency_ms(scenario.max_latency_ms);
    }
    request.set_seed(7);
    request.mutable_evolution()->set_population_size(12);
    request.mutable_evolution()->set_generations(6);
    return request;
  }

  std::string RunToEnd() { return RunToEnd(Request()); }
  std::string RunToEnd(const apq::v1::SubmitSearchRequest& request) {
    auto job = bed_.manager().Submit(request);
    EXPECT_TRUE(job.ok()) << job.status();
    const apq::v1::JobProgress last = AwaitEnd(job->id());
    JobSnapshot stored = Snapshot(job->id());
    EXPECT_EQ(static_cast<int>(last.state()), static_cast<int>(stored.state))
        << "watchers are told what the store holds";
    return job->id();
  }

  JobSnapshot Snapshot(const std::string& job_id) {
    JobSnapshot snapshot;
    auto job = bed_.store().jobs().GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    snapshot.state = job->state;
    snapshot.error = job->error;
    snapshot.generations_done = job->generations_done;
    snapshot.candidates_evaluated = job->candidates_evaluated;
    snapshot.rejected_draws = job->rejected_draws;
    snapshot.pareto_front_size = job->pareto_front_size;
    snapshot.rows = AllCandidates(bed_.store().jobs(), job_id);
    // Ids counted from the job's first row: jobs stored after others compare the same.
    const int64_t first_id = snapshot.rows.empty() ? 1 : snapshot.rows.front().id;
    const auto describe = [first_id](CandidateRecord candidate) {
      candidate.id -= first_id - 1;
      return Describe(candidate);
    };
    if (job->best) snapshot.best = describe(*job->best);
    for (const CandidateRecord& candidate : snapshot.rows) {
      snapshot.candidates.push_back(describe(candidate));
    }
    return snapshot;
  }

  // The record of an undisturbed run of the scenario (of `request`), every step in its own
  // transaction.
  JobSnapshot Reference() { return Reference(Request()); }
  JobSnapshot Reference(const apq::v1::SubmitSearchRequest& request) {
    bed_.SetCommitInterval(absl::ZeroDuration());
    Open();
    const std::string job_id = RunToEnd(request);
    JobSnapshot reference = Snapshot(job_id);
    EXPECT_EQ(reference.state, JobState::kSucceeded) << reference.error;
    EXPECT_GT(reference.pareto_front_size, 0);
    ExpectFrontOfStoredRows(reference);
    return reference;
  }

  // The rows marked on the front are the front of every stored feasible row in id order (a
  // job keeps the front as its groups are stored; a resumed one reads its rows back).
  void ExpectFrontOfStoredRows(const JobSnapshot& snapshot) const {
    const search::CostMetric cost =
        CostMetricFromProto(GetParam().pareto_cost, "pareto_cost").value();
    std::vector<search::FrontPoint> points;
    std::vector<int64_t> ids;
    std::set<int64_t> marked;
    for (const CandidateRecord& row : snapshot.rows) {
      if (row.on_pareto_front) marked.insert(row.id);
      const std::optional<double> value = CandidateCost(row, cost);
      if (!row.feasible || !row.accuracy || !value) continue;
      points.push_back({*value, *row.accuracy});
      ids.push_back(row.id);
    }
    std::set<int64_t> expected;
    for (const size_t index : search::ParetoFront(points)) expected.insert(ids[index]);
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(marked, expected);
    EXPECT_EQ(snapshot.pareto_front_size, static_cast<int64_t>(expected.size()));
  }

  static void ExpectSameRecord(const JobSnapshot& actual, const JobSnapshot& expected) {
    EXPECT_EQ(actual.state, expected.state) << actual.error;
    EXPECT_EQ(actual.generations_done, expected.generations_done);
    EXPECT_EQ(actual.candidates_evaluated, expected.candidates_evaluated);
    EXPECT_EQ(actual.rejected_draws, expected.rejected_draws);
    EXPECT_EQ(actual.pareto_front_size, expected.pareto_front_size);
    EXPECT_EQ(actual.best, expected.best);
    EXPECT_EQ(actual.candidates, expected.candidates);
  }

  // No supernet: these jobs verify nothing (job_verification_test.cc covers verification).
  std::unique_ptr<SupernetHost> supernets_ = NewHostWithoutSupernets();
  JobTestBed bed_{*supernets_};
};

TEST_P(JobFaultTest, RefusedAndUnacknowledgedWritesLeaveTheSameRecord) {
  const JobSnapshot reference = Reference();
  const InjectedFault faults[] = {
      {"MarkRunning", 1, FaultPlan::Mode::kBeforeWrite},
      {"AppendGenerations", 1, FaultPlan::Mode::kBeforeWrite},
      {"AppendGenerations", 3, FaultPlan::Mode::kBeforeWrite},
      {"AppendGenerations", 1, FaultPlan::Mode::kAfterCommit},
      {"AppendGenerations", 4, FaultPlan::Mode::kAfterCommit},
      {"FinishJob", 1, FaultPlan::Mode::kBeforeWrite},
      {"FinishJob", 1, FaultPlan::Mode::kAfterCommit},
  };
  for (const InjectedFault& fault : faults) {
    SCOPED_TRACE(FaultName(fault));
    Open();
    bed_.plan().FailNthWrite(fault.nth, fault.mode, fault.method);
    const std::string job_id = RunToEnd();
    EXPECT_EQ(bed_.plan().faults_injected(), 1);
    ExpectSameRecord(Snapshot(job_id), reference);
  }
}

TEST_P(JobFaultTest, AStoreThatKeepsFailingFailsTheJobAndKeepsEveryEarlierStep) {
  const JobSnapshot reference = Reference();
  Open();
  // The third step's write and every retry of it fail.
  for (int i = 0; i < 8; ++i) {
    bed_.plan().FailNthWrite(3 + i, FaultPlan::Mode::kBeforeWrite, "AppendGenerations");
  }
  const std::string job_id = RunToEnd();
  const JobSnapshot failed = Snapshot(job_id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_THAT(failed.error, HasSubstr("storing step 2 of the search"));
  EXPECT_EQ(failed.generations_done, 1);
  ASSERT_LT(failed.rows.size(), reference.rows.size());
  int64_t seen = 0;
  for (size_t i = 0; i < failed.rows.size(); ++i) {
    // The networks of steps 0 and 1 as the undisturbed run stored them, counted over those
    // steps only (and the front is not marked).
    CandidateRecord expected = reference.rows[i];
    expected.on_pareto_front = false;
    EXPECT_LE(failed.rows[i].times_seen, expected.times_seen);
    expected.times_seen = failed.rows[i].times_seen;
    EXPECT_EQ(Describe(failed.rows[i]), Describe(expected));
    seen += failed.rows[i].times_seen;
  }
  EXPECT_EQ(seen, failed.candidates_evaluated);
}

TEST_P(JobFaultTest, ARestartInTheMiddleResumesToTheSameRecord) {
  const JobSnapshot reference = Reference();
  Open();
  auto job = bed_.manager().Submit(Request());
  ASSERT_TRUE(job.ok()) << job.status();
  // Stop the server once step 2 is stored: the job stays running in the store.
  absl::Notification step_two;
  auto subscription = bed_.manager().Watch(job->id(), [&](const apq::v1::JobProgress& progress) {
    if (progress.generation() >= 2 && !step_two.HasBeenNotified()) step_two.Notify();
  });
  ASSERT_TRUE(subscription.ok());
  ASSERT_TRUE(step_two.WaitForNotificationWithTimeout(absl::Seconds(60)));
  bed_.StopManager();
  const JobSnapshot interrupted = Snapshot(job->id());
  if (interrupted.state == JobState::kSucceeded) {
    GTEST_SKIP() << "the job ended before the restart; nothing to resume";
  }
  EXPECT_EQ(interrupted.state, JobState::kRunning);
  // While the server is down, the space gets another default predictor and the device a
  // table with every figure x0.1: the job resumes on what it was submitted with.
  const oface::SearchSpace& space = *bed_.catalog().FindSpace(GetParam().space).value();
  EXPECT_FALSE(AddRandomDefaultPredictor(bed_.store(), space, 11).empty());
  EXPECT_GT(UploadScaledTable(bed_.catalog(), GetParam().device, 0.1), 1);
  StartManager();
  AwaitEnd(job->id());
  const JobSnapshot resumed = Snapshot(job->id());
  ExpectSameRecord(resumed, reference);
  ExpectFrontOfStoredRows(resumed);
}

// A queued job keeps the predictor and table version current at its submission: another
// default predictor and a new table, set while it waits, change nothing in its record.
TEST_P(JobFaultTest, AQueuedJobRunsOnThePredictorAndTableItWasSubmittedWith) {
  const JobSnapshot reference = Reference();
  Open();
  // The one worker is busy with a long job, so the next one waits in the queue.
  apq::v1::SubmitSearchRequest long_request = Request();
  long_request.mutable_evolution()->set_generations(100000);
  auto blocker = bed_.manager().Submit(long_request);
  ASSERT_TRUE(blocker.ok()) << blocker.status();
  auto job = bed_.manager().Submit(Request());
  ASSERT_TRUE(job.ok()) << job.status();
  const oface::SearchSpace& space = *bed_.catalog().FindSpace(GetParam().space).value();
  const std::string other_predictor = AddRandomDefaultPredictor(bed_.store(), space, 12);
  EXPECT_NE(other_predictor, job->predictor_version());
  EXPECT_GT(UploadScaledTable(bed_.catalog(), GetParam().device, 0.1), job->table_version());
  EXPECT_EQ(bed_.store().jobs().GetJob(job->id())->state, JobState::kQueued);
  ASSERT_TRUE(bed_.manager().Cancel(blocker->id()).ok());
  AwaitEnd(job->id());
  ExpectSameRecord(Snapshot(job->id()), reference);

  // A job submitted now takes the new defaults, and its record differs.
  auto later = bed_.manager().Submit(Request());
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->predictor_version(), other_predictor);
  AwaitEnd(later->id());
  EXPECT_NE(Snapshot(later->id()).candidates, reference.candidates);
}

// Group commits by time: the first step is stored at once and the next group not for an
// hour, so a stop right after the first commit abandons the steps run since, as a crash
// would. The resumed job runs them again to the record of a run that stored every step.
TEST_P(JobFaultTest, AJobStoppedBetweenGroupCommitsResumesToTheSameRecord) {
  apq::v1::SubmitSearchRequest request = Request();
  request.mutable_evolution()->set_generations(1000);
  const JobSnapshot reference = Reference(request);

  bed_.SetCommitInterval(absl::Hours(1));
  Open();
  auto job = bed_.manager().Submit(request);
  ASSERT_TRUE(job.ok()) << job.status();
  absl::Notification first_commit;
  auto subscription = bed_.manager().Watch(job->id(), [&](const apq::v1::JobProgress& progress) {
    if (progress.candidates_evaluated() > 0 && !first_commit.HasBeenNotified()) {
      first_commit.Notify();
    }
  });
  ASSERT_TRUE(subscription.ok());
  ASSERT_TRUE(first_commit.WaitForNotificationWithTimeout(absl::Seconds(60)));
  bed_.StopManager();
  const JobSnapshot interrupted = Snapshot(job->id());
  if (interrupted.state == JobState::kSucceeded) {
    GTEST_SKIP() << "the job ended before the stop; nothing to resume";
  }
  EXPECT_EQ(interrupted.state, JobState::kRunning);
  EXPECT_EQ(interrupted.generations_done, 0) << "only the first step was stored";
  EXPECT_LT(interrupted.candidates.size(), reference.candidates.size());

  StartManager();
  AwaitEnd(job->id());
  ExpectSameRecord(Snapshot(job->id()), reference);
}

// A job stores each network it met once, with its count: the counts of its feasible rows add
// up to the candidates it evaluated. Its rejected draws are counted, and stored as
// infeasible rows (whose counts add up to them) only when the request keeps every draw,
// which changes nothing else.
TEST_P(JobFaultTest, RowCountsAddUpToTheJobsTotalsAndKeepingEveryDrawChangesNoResult) {
  bed_.SetCommitInterval(absl::Milliseconds(5));
  Open();
  struct Stored {
    JobRecord job;
    std::vector<std::string> feasible;  // Described without ids.
    int64_t feasible_seen = 0;
    int64_t infeasible_rows = 0;
    int64_t infeasible_seen = 0;
  };
  const auto run = [&](bool keep_all_draws) {
    apq::v1::SubmitSearchRequest request = Request();
    request.mutable_evolution()->set_generations(60);
    request.set_keep_all_draws(keep_all_draws);
    const std::string job_id = RunToEnd(request);
    ExpectFrontOfStoredRows(Snapshot(job_id));  // Groups of a few steps, rejected rows too.
    Stored stored;
    stored.job = *bed_.store().jobs().GetJob(job_id);
    std::set<std::string> configs;
    for (const CandidateRecord& row : AllCandidates(bed_.store().jobs(), job_id)) {
      EXPECT_TRUE(configs.insert(row.config_json).second) << "one row per network";
      EXPECT_GE(row.times_seen, 1);
      if (row.feasible) {
        stored.feasible.push_back(Describe(row, /*with_id=*/false));
        stored.feasible_seen += row.times_seen;
      } else {
        ++stored.infeasible_rows;
        stored.infeasible_seen += row.times_seen;
      }
    }
    return stored;
  };
  const Stored counted = run(/*keep_all_draws=*/false);
  EXPECT_EQ(counted.job.state, JobState::kSucceeded) << counted.job.error;
  EXPECT_EQ(counted.job.candidates_evaluated, 61 * 12);
  EXPECT_EQ(counted.feasible_seen, counted.job.candidates_evaluated);
  EXPECT_LT(static_cast<int64_t>(counted.feasible.size()), counted.job.candidates_evaluated)
      << "the population converges: networks repeat";
  EXPECT_EQ(counted.infeasible_rows, 0);
  if (GetParam().max_latency_ms > 0) {
    EXPECT_GT(counted.job.rejected_draws, 0) << "the budget rejects some draws";
  }

  const Stored kept = run(/*keep_all_draws=*/true);
  EXPECT_EQ(kept.feasible_seen + kept.infeasible_seen,
            kept.job.candidates_evaluated + kept.job.rejected_draws);
  EXPECT_EQ(kept.infeasible_seen, kept.job.rejected_draws);
  EXPECT_EQ(kept.job.rejected_draws, counted.job.rejected_draws);
  EXPECT_EQ(kept.job.candidates_evaluated, counted.job.candidates_evaluated);
  EXPECT_EQ(kept.feasible, counted.feasible);
  ASSERT_TRUE(kept.job.best.has_value());
  ASSERT_TRUE(counted.job.best.has_value());
  EXPECT_EQ(Describe(*kept.job.best, false), Describe(*counted.job.best, false));
  EXPECT_EQ(kept.job.pareto_front_size, counted.job.pareto_front_size);
}

// The server's caps on one job and on one owner's jobs, each answered RESOURCE_EXHAUSTED
// naming its quota, nothing stored; a job over its wall time stops and fails, keeping its
// rows.
TEST(JobQuotaTest, CapsOnWorkWallTimeAndActiveJobs) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.manager_options().max_candidates_per_job = 100000;
  bed.manager_options().max_job_duration = absl::Milliseconds(300);
  bed.Open();
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.mutable_budgets()->set_max_latency_ms(25);
  request.mutable_evolution()->set_population_size(1000);
  request.mutable_evolution()->set_generations(100);  // 101,000 candidates.
  absl::Status refused = bed.manager().Submit(request, "tok-a").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("quota max_candidates_per_job"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("101000"));
  EXPECT_TRUE(bed.store().jobs().ListJobs(std::nullopt, std::nullopt, 0, 10)->empty());

  // Within the cap, but longer than the wall-time limit.
  request.mutable_evolution()->set_population_size(10);
  request.mutable_evolution()->set_generations(9999);
  auto long_job = bed.manager().Submit(request, "tok-a", /*max_active_jobs=*/2);
  ASSERT_TRUE(long_job.ok()) << long_job.status();
  // Owner tok-a may have 2 active jobs: a second one passes, a third does not; tok-b is apart.
  auto second = bed.manager().Submit(request, "tok-a", 2);
  ASSERT_TRUE(second.ok()) << second.status();
  refused = bed.manager().Submit(request, "tok-a", 2).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("quota max_active_jobs"));
  EXPECT_TRUE(bed.manager().Submit(request, "tok-b", 2).ok());
  EXPECT_EQ(bed.store().jobs().ListJobs(std::nullopt, std::nullopt, 0, 10)->size(), 3u);

  const apq::v1::JobProgress ended = bed.AwaitEnd(long_job->id());
  EXPECT_EQ(ended.state(), apq::v1::JOB_STATE_FAILED);
  const JobRecord stored = bed.store().jobs().GetJob(long_job->id()).value();
  EXPECT_THAT(stored.error, HasSubstr("this server's limit per job"));
  EXPECT_GT(stored.generations_done, 0);
  EXPECT_LT(stored.generations_done, 9999) << "stopped before its end";
  EXPECT_FALSE(AllCandidates(bed.store().jobs(), long_job->id()).empty()) << "rows are kept";
  EXPECT_GT(stored.pareto_front_size, 0);
  // Its end frees a place for tok-a.
  bed.AwaitEnd(second->id());
  EXPECT_TRUE(bed.manager().Submit(request, "tok-a", 2).ok());
}

// The rows cap stops a job that keeps every infeasible draw (which the candidates cap does not
// bound) and fails it, keeping its rows.
TEST(JobQuotaTest, AJobThatReachesTheRowsCapStopsKeepingItsRows) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.manager_options().max_rows_per_job = 3000;
  bed.Open();
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.mutable_budgets()->set_max_latency_ms(16);  // Most random draws are over it.
  request.mutable_evolution()->set_population_size(50);
  request.mutable_evolution()->set_generations(1000);
  request.set_keep_all_draws(true);
  auto job = bed.manager().Submit(request);
  ASSERT_TRUE(job.ok()) << job.status();
  const apq::v1::JobProgress ended = bed.AwaitEnd(job->id());
  EXPECT_EQ(ended.state(), apq::v1::JOB_STATE_FAILED);
  const JobRecord stored = bed.store().jobs().GetJob(job->id()).value();
  EXPECT_THAT(stored.error, HasSubstr("apqd --max_rows_per_job"));
  EXPECT_LT(stored.generations_done, 1000);
  const std::vector<CandidateRecord> rows = AllCandidates(bed.store().jobs(), job->id());
  EXPECT_FALSE(rows.empty());
  // Stopped at the first check past the cap: the generations before the last one stored
  // held fewer rows than the cap.
  int last_generation = 0;
  for (const CandidateRecord& row : rows)
    last_generation = std::max(last_generation, row.generation);
  int64_t before_last = 0;
  for (const CandidateRecord& row : rows) before_last += row.generation < last_generation ? 1 : 0;
  EXPECT_LT(before_last, 3000);
}

// Retention: ended jobs older than the age are deleted with their rows; younger ones and
// unfinished ones stay.
TEST(JobRetentionTest, EndedJobsOlderThanTheAgeAreDeleted) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.Open();
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.mutable_evolution()->set_population_size(8);
  request.mutable_evolution()->set_generations(2);
  auto ended = bed.manager().Submit(request);
  ASSERT_TRUE(ended.ok()) << ended.status();
  bed.AwaitEnd(ended->id());
  EXPECT_EQ(bed.manager().DeleteFinishedBefore(absl::Hours(1)).value(), 0);
  EXPECT_TRUE(bed.store().jobs().GetJob(ended->id()).ok());
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(bed.manager().DeleteFinishedBefore(absl::Milliseconds(10)).value(), 1);
  EXPECT_EQ(bed.store().jobs().GetJob(ended->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(bed.manager().Delete(ended->id()).code(), absl::StatusCode::kNotFound);
}

TEST(JobManagerOptionsTest, ANegativeCommitIntervalIsRefusedNamingTheOption) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.Open();
  JobManager::Options options;
  options.commit_interval = absl::Milliseconds(-1);
  absl::StatusOr<std::unique_ptr<JobManager>> manager =
      JobManager::Create(options, bed.catalog(), bed.store().jobs(), bed.store().datasets(),
                         *supernets, bed.engines());
  EXPECT_EQ(manager.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(manager.status().message()), HasSubstr("commit_interval"));
}

INSTANTIATE_TEST_SUITE_P(
    EverySearchableSpaceDeviceAndObjective, JobFaultTest,
    ::testing::Values(Scenario{"OfaNote10Accuracy", "ofa_mbv3", "note10",
                               apq::v1::OBJECTIVE_MAX_ACCURACY, apq::v1::COST_METRIC_LATENCY, 25.0},
                      Scenario{"OfaNote10Pareto", "ofa_mbv3", "note10", apq::v1::OBJECTIVE_PARETO,
                               apq::v1::COST_METRIC_LATENCY, 25.0},
                      Scenario{"FmnistLocalCpuAccuracy", "fmnist_mbv2", "local-cpu",
                               apq::v1::OBJECTIVE_MAX_ACCURACY, apq::v1::COST_METRIC_SIZE, 0},
                      Scenario{"FmnistBitfusionParetoEnergy", "fmnist_mbv2", "bitfusion",
                               apq::v1::OBJECTIVE_PARETO, apq::v1::COST_METRIC_ENERGY, 0},
                      Scenario{"FmnistBitfusionParetoBitops", "fmnist_mbv2", "bitfusion",
                               apq::v1::OBJECTIVE_PARETO, apq::v1::COST_METRIC_BITOPS, 0},
                      Scenario{"LowbitBitfusionParetoSize", "fmnist_lowbit", "bitfusion",
                               apq::v1::OBJECTIVE_PARETO, apq::v1::COST_METRIC_SIZE, 0},
                      Scenario{"LowbitLocalCpuParetoLatency", "fmnist_lowbit", "local-cpu",
                               apq::v1::OBJECTIVE_PARETO, apq::v1::COST_METRIC_LATENCY, 0}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; });

}  // namespace
}  // namespace apq::server
