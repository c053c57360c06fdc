// The iqp engine (search/iqp_engine.h) through the job manager, on fmnist_lowbit's real
// quantization-aware supernet, its shipped predictor and the bitfusion table: the allocation
// meets its budget, the job resumes after a restart in the middle of its measurement to the
// same network, and requests it cannot serve are refused naming the field before anything is
// stored.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/iqp_engine.h"
#include "server/catalog.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

class JobIqpTest : public LowBitJobTest {
 protected:
  apq::v1::SubmitSearchRequest Request(double max_bitops) const {
    apq::v1::SubmitSearchRequest request = EngineRequest(search::kIqpEngineName, max_bitops, 3);
    auto& options = *request.mutable_engine_request()->mutable_options();
    options["calibration_images"].set_int_value(64);
    options["time_limit_s"].set_double_value(30);
    return request;
  }

  // A budget halfway between the cheapest weight allocation and every width at 8 bits.
  double MiddleBudget() const { return (Bitops(Smallest(2, 8)) + Bitops(Smallest(8, 8))) / 2; }
};

TEST_F(JobIqpTest, TheAllocationMeetsItsBudgetAndAResumedJobEndsTheSame) {
  // Without the cache: the second job measures again.
  bed_.manager_options().artifacts = nullptr;
  bed_.StartManager();
  const double budget = MiddleBudget();
  auto job = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(job.ok()) << job.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(job->id(), absl::Seconds(600));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  EXPECT_EQ(last.generation(), search::kIqpMeasurementSteps);
  auto stored = bed_.store().jobs().GetJob(job->id());
  ASSERT_TRUE(stored.ok() && stored->best.has_value());
  ASSERT_TRUE(stored->best->bitops.has_value());
  EXPECT_LE(*stored->best->bitops, budget);
  EXPECT_EQ(stored->candidates_evaluated, 1);
  const std::string allocated = stored->best->config_json;
  // Activations stay at their highest; some weights go below 8 bits to meet the budget.
  auto genotype = space_->FromJson(allocated);
  ASSERT_TRUE(genotype.ok());
  EXPECT_LT(Bitops(*genotype), Bitops(Smallest(8, 8)));

  // The same job stopped in the middle of its measurement and resumed ends on the same network.
  auto again = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(StopAfter(again->id(), 5));
  auto interrupted = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(interrupted.ok());
  EXPECT_LT(interrupted->generations_done, search::kIqpMeasurementSteps);
  bed_.StartManager();
  const apq::v1::JobProgress resumed = bed_.AwaitEnd(again->id(), absl::Seconds(600));
  ASSERT_EQ(resumed.state(), apq::v1::JOB_STATE_SUCCEEDED) << resumed.error();
  auto finished = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(finished.ok() && finished->best.has_value());
  EXPECT_EQ(finished->best->config_json, allocated);
}

TEST_F(JobIqpTest, LaterJobsReuseTheMeasuredLossesAndTheSolverReportsItsGap) {
  const double budget = MiddleBudget();
  auto first = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(bed_.AwaitEnd(first->id(), absl::Seconds(600)).state(), apq::v1::JOB_STATE_SUCCEEDED);
  auto cached = bed_.store().artifacts().ListArtifacts(search::kIqpSensitivityKind, "", 10);
  ASSERT_TRUE(cached.ok());
  ASSERT_EQ(cached->size(), 1u);
  EXPECT_TRUE(cached->front().job_id.empty());  // Shared: outlives the job.
  EXPECT_THAT(cached->front().provenance,
              HasSubstr(absl::StrCat("\"made_by_job\":\"", first->id())));
  EXPECT_THAT(cached->front().key, HasSubstr("|images=64|seed=3|pairs=1|"));

  const auto solution = [&](const std::string& job_id) {
    auto artifact = bed_.store().artifacts().GetArtifact(
        search::kIqpSolutionKind, absl::StrCat(job_id, "/", search::kIqpSolutionName));
    EXPECT_TRUE(artifact.ok()) << artifact.status();
    return artifact.ok() ? artifact->bytes : std::string();
  };
  EXPECT_THAT(solution(first->id()), HasSubstr("\"losses_from_cache\":false"));
  EXPECT_THAT(solution(first->id()), HasSubstr("\"relative_gap\":"));
  EXPECT_THAT(solution(first->id()), HasSubstr("\"best_bound\":"));

  // The same setting again, and the diagonal baseline: both read the stored losses.
  apq::v1::SubmitSearchRequest diagonal = Request(budget);
  (*diagonal.mutable_engine_request()->mutable_options())["cross_layer"].set_bool_value(false);
  for (const apq::v1::SubmitSearchRequest& request : {Request(budget), diagonal}) {
    auto job = bed_.manager().Submit(request);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_EQ(bed_.AwaitEnd(job->id(), absl::Seconds(60)).state(), apq::v1::JOB_STATE_SUCCEEDED);
    EXPECT_THAT(solution(job->id()), HasSubstr("\"losses_from_cache\":true"));
    auto stored = bed_.store().jobs().GetJob(job->id());
    ASSERT_TRUE(stored.ok() && stored->best.has_value());
    EXPECT_LE(*stored->best->bitops, budget);
  }
  auto again = bed_.store().jobs().ListJobs(std::nullopt, std::nullopt, 0, 10);
  ASSERT_TRUE(again.ok());
  auto first_stored = bed_.store().jobs().GetJob(first->id());
  auto repeated = bed_.store().jobs().GetJob(again->at(1).id);
  ASSERT_TRUE(first_stored.ok() && repeated.ok());
  EXPECT_EQ(first_stored->best->config_json, repeated->best->config_json);
  EXPECT_EQ(bed_.store().artifacts().ListArtifacts(search::kIqpSensitivityKind, "", 10)->size(),
            1u);
}

TEST_F(JobIqpTest, TwoJobsOfTheSameSettingAtOnceMeasureOnce) {
  bed_.manager_options().workers = 2;
  bed_.StartManager();
  apq::v1::SubmitSearchRequest request = Request(MiddleBudget());
  (*request.mutable_engine_request()->mutable_options())["cross_layer"].set_bool_value(false);
  auto first = bed_.manager().Submit(request);
  auto second = bed_.manager().Submit(request);
  ASSERT_TRUE(first.ok() && second.ok());
  int measured = 0;
  for (const std::string& id : {first->id(), second->id()}) {
    ASSERT_EQ(bed_.AwaitEnd(id, absl::Seconds(600)).state(), apq::v1::JOB_STATE_SUCCEEDED);
    auto solution = bed_.store().artifacts().GetArtifact(
        search::kIqpSolutionKind, absl::StrCat(id, "/", search::kIqpSolutionName));
    ASSERT_TRUE(solution.ok()) << solution.status();
    if (solution->bytes.find("\"losses_from_cache\":false") != std::string::npos) ++measured;
  }
  EXPECT_EQ(measured, 1);
}

TEST_F(JobIqpTest, ActivationsHeldAtAWidthStayThereAndTheBudgetHolds) {
  const double budget = (Bitops(Smallest(2, 4)) + Bitops(Smallest(8, 4))) / 2;
  apq::v1::SubmitSearchRequest request = Request(budget);
  auto& options = *request.mutable_engine_request()->mutable_options();
  options["activations"].set_choice_value("4");
  options["cross_layer"].set_bool_value(false);
  auto job = bed_.manager().Submit(request);
  ASSERT_TRUE(job.ok()) << job.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(job->id(), absl::Seconds(600));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  auto stored = bed_.store().jobs().GetJob(job->id());
  ASSERT_TRUE(stored.ok() && stored->best.has_value());
  EXPECT_LE(*stored->best->bitops, budget);
  auto genotype = space_->FromJson(stored->best->config_json);
  ASSERT_TRUE(genotype.ok());
  // Every activation width the network uses is 4 (unused layers keep their canonical value).
  const oface::Genotype at_four = Smallest(8, 4);
  for (size_t g = 0; g < genotype->size(); ++g) {
    if (space_->genes()[g].name.find("_a_bits") != std::string::npos) {
      EXPECT_EQ((*genotype)[g], at_four[g]) << space_->genes()[g].name;
    }
  }
}

TEST_F(JobIqpTest, RequestsItCannotServeAreRefusedNamingTheField) {
  std::vector<Refusal> cases;
  cases.push_back({"below the cheapest", Request(Bitops(Smallest(2, 8)) * 0.9),
                   absl::StatusCode::kFailedPrecondition, "below the cheapest bit policy"});
  cases.push_back({"no fixed architecture", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "fixed_architecture"});
  cases.back().request.clear_fixed_architecture();
  for (const int images : {0, 50001}) {
    cases.push_back({absl::StrCat(images, " images"), Request(MiddleBudget()),
                     absl::StatusCode::kInvalidArgument, "engine.options.calibration_images"});
    (*cases.back().request.mutable_engine_request()->mutable_options())["calibration_images"]
        .set_int_value(images);
  }
  cases.push_back({"an activation width outside the space", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.activations"});
  (*cases.back().request.mutable_engine_request()->mutable_options())["activations"]
      .set_choice_value("5");
  cases.push_back({"pareto objective", Request(MiddleBudget()), absl::StatusCode::kInvalidArgument,
                   "objective"});
  cases.back().request.set_objective(apq::v1::OBJECTIVE_PARETO);
  cases.push_back({"too many evaluations", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "engine.options.max_evaluations"});
  (*cases.back().request.mutable_engine_request()->mutable_options())["max_evaluations"]
      .set_int_value(10);
  ExpectRefusedBeforeStoring(cases);
}

}  // namespace
}  // namespace apq::server
