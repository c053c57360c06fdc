// The qbitopt engine (search/qbitopt_engine.h) through the job manager, on fmnist_lowbit's real
// quantization-aware supernet, its shipped predictor and the bitfusion table: every update's
// policy meets the budget, the job's output is the fine-tuned TorchScript module, a job stopped
// in the middle of its training resumes to the same policies, and requests it cannot serve are
// refused naming the field before anything is stored.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/qbitopt_engine.h"
#include "server/catalog.h"
#include "server/job_artifacts.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

class JobQbitoptTest : public LowBitJobTest {
 protected:
  apq::v1::SubmitSearchRequest Request(double max_bitops) const {
    apq::v1::SubmitSearchRequest request = EngineRequest(search::kQbitoptEngineName, max_bitops, 5);
    // 8 steps in updates of 2 (4 updates and the final step) of 32 images.
    auto& options = *request.mutable_engine_request()->mutable_options();
    options["steps"].set_int_value(8);
    options["update_every"].set_int_value(2);
    options["batch_size"].set_int_value(32);
    options["gradient_batches"].set_int_value(2);
    options["learning_rate"].set_double_value(0.05);
    return request;
  }

  double MiddleBudget() const { return (Bitops(Smallest(2, 8)) + Bitops(Smallest(8, 8))) / 2; }
};

TEST_F(JobQbitoptTest, EveryUpdateMeetsTheBudgetAndTheJobKeepsItsModule) {
  const double budget = MiddleBudget();
  auto job = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(job.ok()) << job.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(job->id(), absl::Seconds(600));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  EXPECT_EQ(last.generation(), 4);
  const std::vector<CandidateRecord> candidates = Candidates(job->id());
  ASSERT_FALSE(candidates.empty());
  for (const CandidateRecord& candidate : candidates) {
    ASSERT_TRUE(candidate.bitops.has_value());
    EXPECT_LE(*candidate.bitops, budget) << candidate.config_json;
    EXPECT_TRUE(candidate.feasible);
  }
  auto stored = bed_.store().jobs().GetJob(job->id());
  ASSERT_TRUE(stored.ok() && stored->best.has_value());
  // The budget binds: weights go below 8 bits.
  EXPECT_LT(*stored->best->bitops, Bitops(Smallest(8, 8)));

  auto artifacts = bed_.store().artifacts().ListJobArtifacts(job->id());
  ASSERT_TRUE(artifacts.ok());
  ASSERT_EQ(artifacts->size(), 1u);
  EXPECT_EQ(artifacts->front().kind, search::kQbitoptModuleKind);
  EXPECT_EQ(artifacts->front().key, JobOutputKey(job->id(), search::kQbitoptModuleName));
  EXPECT_EQ(artifacts->front().content_type, "application/x-torchscript");
  EXPECT_THAT(artifacts->front().provenance, HasSubstr("\"steps\":8"));
  auto module =
      bed_.store().artifacts().GetArtifact(artifacts->front().kind, artifacts->front().key);
  ASSERT_TRUE(module.ok());
  EXPECT_GT(module->bytes.size(), 10000u);
  EXPECT_EQ(module->bytes.substr(0, 2), "PK");  // TorchScript files are zip archives.
  // The module is of the job's best policy.
  EXPECT_THAT(artifacts->front().provenance, HasSubstr(stored->best->config_json));
}

TEST_F(JobQbitoptTest, AJobStoppedInItsTrainingResumesToTheSamePolicies) {
  const double budget = MiddleBudget();
  auto whole = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(bed_.AwaitEnd(whole->id(), absl::Seconds(600)).state(), apq::v1::JOB_STATE_SUCCEEDED);

  auto again = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(StopAfter(again->id(), 2));
  auto interrupted = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(interrupted.ok());
  EXPECT_LT(interrupted->generations_done, 5);
  bed_.StartManager();
  const apq::v1::JobProgress resumed = bed_.AwaitEnd(again->id(), absl::Seconds(600));
  ASSERT_EQ(resumed.state(), apq::v1::JOB_STATE_SUCCEEDED) << resumed.error();

  const auto configs = [&](const std::string& job_id) {
    std::vector<std::string> found;
    for (const CandidateRecord& candidate : Candidates(job_id)) {
      found.push_back(absl::StrCat(candidate.generation, " ", candidate.config_json));
    }
    return found;
  };
  EXPECT_EQ(configs(again->id()), configs(whole->id()));
  auto first = bed_.store().jobs().GetJob(whole->id());
  auto second = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->best->config_json, second->best->config_json);
}

TEST_F(JobQbitoptTest, RequestsItCannotServeAreRefusedNamingTheField) {
  std::vector<Refusal> cases;
  cases.push_back({"below the cheapest", Request(Bitops(Smallest(2, 8)) * 0.9),
                   absl::StatusCode::kFailedPrecondition, "below the cheapest bit policy"});
  cases.push_back({"no fixed architecture", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "fixed_architecture"});
  cases.back().request.clear_fixed_architecture();
  cases.push_back({"update_every above steps", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.update_every"});
  OptionsOf(cases.back())["update_every"].set_int_value(9);
  cases.push_back({"zero steps", Request(MiddleBudget()), absl::StatusCode::kInvalidArgument,
                   "engine.options.steps"});
  OptionsOf(cases.back())["steps"].set_int_value(0);
  cases.push_back({"gradient batches beyond the split", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.gradient_batches"});
  OptionsOf(cases.back())["gradient_batches"].set_int_value(390);
  OptionsOf(cases.back())["batch_size"].set_int_value(1000);
  cases.push_back({"learning rate 0", Request(MiddleBudget()), absl::StatusCode::kInvalidArgument,
                   "engine.options.learning_rate"});
  OptionsOf(cases.back())["learning_rate"].set_double_value(0);
  cases.push_back({"searched activations", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.activations"});
  OptionsOf(cases.back())["activations"].set_choice_value("searched");
  cases.push_back({"pareto objective", Request(MiddleBudget()), absl::StatusCode::kInvalidArgument,
                   "objective"});
  cases.back().request.set_objective(apq::v1::OBJECTIVE_PARETO);
  cases.push_back({"a space without a supernet", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "has none"});
  cases.back().request.set_space("ofa_mbv3");
  cases.back().request.set_device("note10");
  cases.back().request.mutable_budgets()->clear_max_bitops();
  cases.back().request.mutable_budgets()->set_max_latency_ms(100);
  cases.back().request.clear_fixed_architecture();
  ExpectRefusedBeforeStoring(cases);
}

}  // namespace
}  // namespace apq::server
