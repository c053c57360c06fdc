// Search jobs against a store that fails: over the in-memory store wrapped in the
// fault-injecting one, a refused write, a write whose acknowledgement is lost, a store that
// keeps failing, and a restart in the middle of a job, for every searchable space, device and
// objective. Each must leave exactly the record an undisturbed run leaves (or, for a store
// that keeps failing, a failed job with every step stored before the failure intact).
#include "server/job_manager.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/engine_registry.h"
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
  int64_t pareto_front_size = 0;
  std::string best;
  std::vector<std::string> candidates;
};

std::string Describe(const CandidateRecord& c) {
  const auto figure = [](const std::optional<double>& value) {
    return value ? absl::StrCat(*value) : std::string("-");
  };
  return absl::StrCat(c.id, "|", c.generation, "|", c.config_json, "|", figure(c.accuracy), "|",
                      figure(c.latency_ms), "|", figure(c.energy_mj), "|", figure(c.size_mb), "|",
                      figure(c.bitops), "|", c.feasible ? "1" : "0", "|", c.modelled, "|",
                      c.on_pareto_front ? "1" : "0");
}

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

  std::string RunToEnd() {
    auto job = bed_.manager().Submit(Request());
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
    snapshot.pareto_front_size = job->pareto_front_size;
    if (job->best) snapshot.best = Describe(*job->best);
    CandidateQuery query;
    query.job_id = job_id;
    query.limit = kMaxPageSize;
    auto page = bed_.store().jobs().ListCandidates(query);
    EXPECT_TRUE(page.ok()) << page.status();
    for (const CandidateRecord& candidate : page->candidates) {
      snapshot.candidates.push_back(Describe(candidate));
    }
    return snapshot;
  }

  // The record of an undisturbed run of the scenario.
  JobSnapshot Reference() {
    Open();
    const std::string job_id = RunToEnd();
    JobSnapshot reference = Snapshot(job_id);
    EXPECT_EQ(reference.state, JobState::kSucceeded) << reference.error;
    EXPECT_GT(reference.pareto_front_size, 0);
    return reference;
  }

  static void ExpectSameRecord(const JobSnapshot& actual, const JobSnapshot& expected) {
    EXPECT_EQ(actual.state, expected.state) << actual.error;
    EXPECT_EQ(actual.generations_done, expected.generations_done);
    EXPECT_EQ(actual.candidates_evaluated, expected.candidates_evaluated);
    EXPECT_EQ(actual.pareto_front_size, expected.pareto_front_size);
    EXPECT_EQ(actual.best, expected.best);
    EXPECT_EQ(actual.candidates, expected.candidates);
  }

  // No supernet: these jobs verify nothing (job_verification_test.cc covers verification).
  std::unique_ptr<SupernetHost> supernets_ = [] {
    SupernetHost::Options options;
    options.data_dir = "no-supernets";
    return *SupernetHost::Create(options);
  }();
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
  ASSERT_LT(failed.candidates.size(), reference.candidates.size());
  for (size_t i = 0; i < failed.candidates.size(); ++i) {
    // Steps 0 and 1, as the undisturbed run stored them (the front is not marked).
    std::string expected = reference.candidates[i];
    expected.back() = '0';
    EXPECT_EQ(failed.candidates[i], expected);
  }
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
  StartManager();
  AwaitEnd(job->id());
  ExpectSameRecord(Snapshot(job->id()), reference);
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
                               apq::v1::OBJECTIVE_PARETO, apq::v1::COST_METRIC_BITOPS, 0}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; });

}  // namespace
}  // namespace apq::server
