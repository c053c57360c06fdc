// Sweeps (JobManager::SubmitSweep): each scenario's job leaves exactly the record the same
// request leaves as a separate job (the shared predictions change no result), on every
// searchable space (apq_mbv2 ships no predictor) and default device; a restart in the middle of a
// sweep resumes every scenario to that record; bad sweeps are refused naming the field, storing
// nothing.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

struct SweepCase {
  std::string name;
  std::string space;
  std::vector<apq::v1::SweepScenario> scenarios;
};

apq::v1::SweepScenario LatencyScenario(const std::string& device, double max_latency_ms) {
  apq::v1::SweepScenario scenario;
  scenario.set_device(device);
  scenario.mutable_budgets()->set_max_latency_ms(max_latency_ms);
  scenario.set_label(absl::StrCat(device, "@", max_latency_ms));
  return scenario;
}

std::vector<SweepCase> Cases() {
  apq::v1::SweepScenario energy;
  energy.set_device("bitfusion");
  energy.mutable_budgets()->set_max_energy_mj(0.5);
  apq::v1::SweepScenario bitops;
  bitops.set_device("local-cpu");
  bitops.mutable_budgets()->set_max_bitops(2e8);
  return {
      {"ofa_mbv3_note10",
       "ofa_mbv3",
       {LatencyScenario("note10", 18), LatencyScenario("note10", 25),
        LatencyScenario("note10", 40)}},
      {"fmnist_mbv2_two_devices",
       "fmnist_mbv2",
       {LatencyScenario("local-cpu", 0.5), LatencyScenario("bitfusion", 0.3), energy, bitops}},
      {"fmnist_lowbit_two_devices",
       "fmnist_lowbit",
       {LatencyScenario("bitfusion", 0.2), LatencyScenario("local-cpu", 0.6)}},
  };
}

class SweepTest : public ::testing::TestWithParam<SweepCase> {
 protected:
  apq::v1::SubmitSweepRequest Request() const {
    apq::v1::SubmitSweepRequest request;
    apq::v1::SubmitSearchRequest& common = *request.mutable_common();
    common.set_space(GetParam().space);
    common.set_seed(5);
    common.set_objective(apq::v1::OBJECTIVE_MAX_ACCURACY);
    common.mutable_evolution()->set_population_size(16);
    common.mutable_evolution()->set_generations(8);
    for (const apq::v1::SweepScenario& scenario : GetParam().scenarios) {
      *request.add_scenarios() = scenario;
    }
    return request;
  }

  // The scenario's record, ids left out (a sweep's rows and a separate job's differ in ids).
  std::vector<std::string> Record(const std::string& job_id) {
    absl::StatusOr<JobRecord> job = bed_.store().jobs().GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    std::vector<std::string> record = {
        absl::StrCat(static_cast<int>(job->state), "|", job->error, "|", job->generations_done, "|",
                     job->candidates_evaluated, "|", job->rejected_draws, "|",
                     job->pareto_front_size),
        job->best ? Describe(*job->best, /*with_id=*/false) : "no best"};
    for (const CandidateRecord& candidate : AllCandidates(bed_.store().jobs(), job_id)) {
      record.push_back(Describe(candidate, /*with_id=*/false));
    }
    return record;
  }

  // The record of each scenario run as a separate job, one after the other.
  std::vector<std::vector<std::string>> SeparateRecords() {
    bed_.Open();
    std::vector<std::vector<std::string>> records;
    const apq::v1::SubmitSweepRequest sweep = Request();
    for (const apq::v1::SweepScenario& scenario : sweep.scenarios()) {
      apq::v1::SubmitSearchRequest request = sweep.common();
      request.set_device(scenario.device());
      *request.mutable_budgets() = scenario.budgets();
      request.set_label(scenario.label());
      absl::StatusOr<apq::v1::Job> job = bed_.manager().Submit(request);
      EXPECT_TRUE(job.ok()) << job.status();
      if (!job.ok()) return records;
      bed_.AwaitEnd(job->id());
      records.push_back(Record(job->id()));
      EXPECT_EQ(records.back()[0].substr(0, 2), "3|")
          << scenario.label() << ": " << records.back()[0];
    }
    return records;
  }

  std::unique_ptr<SupernetHost> supernets_ = NewHostWithoutSupernets();
  JobTestBed bed_{*supernets_};
};

TEST_P(SweepTest, EachScenarioAnswersAsASeparateJobWithTheSameSeed) {
  const std::vector<std::vector<std::string>> expected = SeparateRecords();
  bed_.Open();
  absl::StatusOr<apq::v1::Sweep> sweep = bed_.manager().SubmitSweep(Request());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->scenarios_size(), static_cast<int>(expected.size()));
  EXPECT_EQ(sweep->steps_total(), 8 * sweep->scenarios_size());
  for (const apq::v1::SweepScenarioResult& result : sweep->scenarios()) {
    bed_.AwaitEnd(result.job().id());
  }
  absl::StatusOr<apq::v1::Sweep> ended = bed_.manager().GetSweep(sweep->sweep_id());
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->scenarios_ended(), ended->scenarios_size());
  EXPECT_EQ(ended->steps_done(), ended->steps_total());
  absl::StatusOr<apq::v1::Sweep> progress =
      bed_.manager().GetSweep(sweep->sweep_id(), /*with_fronts=*/false);
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->scenarios_ended(), ended->scenarios_ended());
  for (const apq::v1::SweepScenarioResult& result : progress->scenarios()) {
    EXPECT_EQ(result.pareto_front_size(), 0);
    EXPECT_GT(result.job().pareto_front_size(), 0);
  }
  for (int i = 0; i < ended->scenarios_size(); ++i) {
    const apq::v1::SweepScenarioResult& result = ended->scenarios(i);
    SCOPED_TRACE(result.scenario().label());
    EXPECT_EQ(result.job().sweep_id(), sweep->sweep_id());
    EXPECT_EQ(result.scenario().device(), GetParam().scenarios[i].device());
    EXPECT_EQ(result.scenario().label(), GetParam().scenarios[i].label());
    EXPECT_EQ(Record(result.job().id()), expected[i]);
    // The front: the job's front rows, by ascending cost (latency, the default front cost),
    // each more accurate than the one before.
    EXPECT_EQ(result.pareto_front_size(), result.job().pareto_front_size());
    for (int p = 1; p < result.pareto_front_size(); ++p) {
      const apq::v1::Metrics& before = result.pareto_front(p - 1).metrics();
      const apq::v1::Metrics& after = result.pareto_front(p).metrics();
      EXPECT_LE(before.latency_ms(), after.latency_ms());
      EXPECT_LT(before.accuracy(), after.accuracy());
    }
  }
}

// Stopped before its scenarios ran, the sweep's jobs resume on restart (sharing predictions
// again) to the records of separate jobs.
TEST_P(SweepTest, ASweepStoppedMidwayResumesEveryScenarioToTheSameRecord) {
  const std::vector<std::vector<std::string>> expected = SeparateRecords();
  bed_.Open();
  absl::StatusOr<apq::v1::Sweep> sweep = bed_.manager().SubmitSweep(Request());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  bed_.StopManager();
  bed_.StartManager();
  for (int i = 0; i < sweep->scenarios_size(); ++i) {
    const std::string& job_id = sweep->scenarios(i).job().id();
    bed_.AwaitEnd(job_id);
    EXPECT_EQ(Record(job_id), expected[i]) << sweep->scenarios(i).scenario().label();
  }
}

INSTANTIATE_TEST_SUITE_P(Spaces, SweepTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<SweepCase>& info) {
                           return info.param.name;
                         });

class SweepRequestTest : public ::testing::Test {
 protected:
  void SetUp() override { bed_.Open(); }

  static apq::v1::SubmitSweepRequest Valid(int scenarios = 2) {
    apq::v1::SubmitSweepRequest request;
    request.mutable_common()->set_space("ofa_mbv3");
    request.mutable_common()->mutable_evolution()->set_generations(2);
    for (int i = 0; i < scenarios; ++i)
      *request.add_scenarios() = LatencyScenario("note10", 20 + i);
    return request;
  }

  std::unique_ptr<SupernetHost> supernets_ = NewHostWithoutSupernets();
  JobTestBed bed_{*supernets_};
};

TEST_F(SweepRequestTest, BadSweepsAreRefusedNamingTheFieldAndStoreNothing) {
  struct Bad {
    std::string name;
    apq::v1::SubmitSweepRequest request;
    absl::StatusCode code;
    std::string mention;
  };
  std::vector<Bad> cases;
  cases.push_back({"no scenarios", Valid(0), absl::StatusCode::kInvalidArgument, "scenarios:"});
  cases.push_back({"too many", Valid(JobManager::kMaxSweepScenarios + 1),
                   absl::StatusCode::kInvalidArgument, "at most 256"});
  // The default queue holds 64 jobs.
  cases.push_back({"beyond the queue", Valid(65), absl::StatusCode::kResourceExhausted,
                   "the sweep's 65 scenarios do not fit"});
  Bad device{"common device", Valid(), absl::StatusCode::kInvalidArgument, "common.device"};
  device.request.mutable_common()->set_device("note10");
  cases.push_back(device);
  Bad budgets{"common budgets", Valid(), absl::StatusCode::kInvalidArgument, "common.budgets"};
  budgets.request.mutable_common()->mutable_budgets()->set_max_latency_ms(20);
  cases.push_back(budgets);
  Bad label{"common label", Valid(), absl::StatusCode::kInvalidArgument, "common.label"};
  label.request.mutable_common()->set_label("x");
  cases.push_back(label);
  Bad negative{"negative budget", Valid(3), absl::StatusCode::kInvalidArgument,
               "scenarios[2].budgets.max_latency_ms"};
  negative.request.mutable_scenarios(2)->mutable_budgets()->set_max_latency_ms(-1);
  cases.push_back(negative);
  Bad unknown{"unknown device", Valid(2), absl::StatusCode::kNotFound, "scenarios[1]: "};
  unknown.request.mutable_scenarios(1)->set_device("nowhere");
  cases.push_back(unknown);
  Bad uncovered{"device that does not cover the space", Valid(2),
                absl::StatusCode::kFailedPrecondition, "scenarios[0]: "};
  uncovered.request.mutable_scenarios(0)->set_device("bitfusion");
  cases.push_back(uncovered);
  Bad no_space{"no space", Valid(), absl::StatusCode::kInvalidArgument, "space"};
  no_space.request.mutable_common()->clear_space();
  cases.push_back(no_space);
  Bad engine{"bad engine option", Valid(), absl::StatusCode::kInvalidArgument,
             "scenarios[0].evolution.population_size"};
  engine.request.mutable_common()->mutable_evolution()->set_population_size(1);
  cases.push_back(engine);

  for (const Bad& bad : cases) {
    const absl::Status status = bed_.manager().SubmitSweep(bad.request).status();
    EXPECT_EQ(status.code(), bad.code) << bad.name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(bad.mention)) << bad.name;
  }
  EXPECT_TRUE(bed_.store().jobs().ListJobs(std::nullopt, std::nullopt, 0, 10)->empty());
  EXPECT_EQ(bed_.manager().GetSweep("sweep-1").status().code(), absl::StatusCode::kNotFound);
  // A valid one is taken after all that.
  absl::StatusOr<apq::v1::Sweep> sweep = bed_.manager().SubmitSweep(Valid());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->sweep_id(), "sweep-1");
}

}  // namespace
}  // namespace apq::server
