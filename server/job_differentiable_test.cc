// The dnas and ssps engines (search/differentiable_engines.h) through the job manager, on
// fmnist_lowbit's real quantization-aware supernet, its shipped predictor and the bitfusion
// table: every result meets the budget (repaired when a policy misses it), the progress carries
// the search's figures, a job stopped in the middle resumes to the same policies, and requests
// an engine cannot serve are refused naming the field before anything is stored.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/differentiable_engines.h"
#include "server/catalog.h"
#include "server/job_artifacts.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// The parameter: the engine's name.
class JobDifferentiableTest : public LowBitJobTest,
                              public ::testing::WithParamInterface<std::string> {
 protected:
  bool ssps() const { return GetParam() == search::kSspsEngineName; }

  apq::v1::SubmitSearchRequest Request(double max_bitops) const {
    apq::v1::SubmitSearchRequest request = EngineRequest(GetParam(), max_bitops, 5);
    // 6 steps reported every 2 (3 reports and the final step) of 16 images.
    auto& options = *request.mutable_engine_request()->mutable_options();
    options["steps"].set_int_value(6);
    options["report_every"].set_int_value(2);
    options["batch_size"].set_int_value(16);
    options["arch_lr"].set_double_value(0.1);
    options["samples"].set_int_value(3);
    // ssps: a layer fixed after every step from the first (6 of the network's layers).
    if (ssps()) options["warmup_steps"].set_int_value(0);
    return request;
  }

  double MiddleBudget() const { return (Bitops(Smallest(2, 2)) + Bitops(Smallest(8, 8))) / 2; }
};

TEST_P(JobDifferentiableTest, TheResultsMeetTheBudgetRepairedIfNeededAndAResumedJobEndsTheSame) {
  // Tight: a quarter of the way from the cheapest policy to 8 bits everywhere, below what the
  // uniform distributions expect, so the most likely policy may need repair.
  const double budget =
      Bitops(Smallest(2, 2)) + (Bitops(Smallest(8, 8)) - Bitops(Smallest(2, 2))) / 4;
  auto whole = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(whole.ok()) << whole.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(whole->id(), absl::Seconds(600));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  EXPECT_EQ(last.generation(), 3);
  auto stored = bed_.store().jobs().GetJob(whole->id());
  ASSERT_TRUE(stored.ok() && stored->best.has_value());
  EXPECT_LE(*stored->best->bitops, budget);
  for (const CandidateRecord& candidate : Candidates(whole->id())) {
    if (candidate.feasible) {
      EXPECT_LE(*candidate.bitops, budget);
    }
  }
  // The most likely policy and up to 3 sampled ones (fewer when two are the same network).
  int finals = 0;
  for (const CandidateRecord& candidate : Candidates(whole->id())) {
    finals += candidate.generation == 3 ? 1 : 0;
  }
  EXPECT_GE(finals, 1);
  EXPECT_LE(finals, 4);
  auto result = bed_.store().artifacts().GetArtifact(
      ssps() ? search::kSspsResultKind : search::kDnasResultKind,
      JobOutputKey(whole->id(), search::kDifferentiableResultName));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->bytes, HasSubstr("\"repaired\":"));
  EXPECT_THAT(result->bytes, HasSubstr(stored->best->config_json));
  // The search's figures reach the progress; ssps fixed one layer per step.
  std::map<std::string, double> metrics(last.engine_metrics().begin(), last.engine_metrics().end());
  EXPECT_GT(metrics["expected_cost"], 0.0);
  EXPECT_GT(metrics["temperature"], 0.0);
  EXPECT_EQ(metrics.count("arch_loss"), 1);
  if (ssps()) {
    EXPECT_EQ(metrics["layers_fixed"], 6);
    EXPECT_GE(metrics["layers"], 6);  // Two per slot the architecture uses.
    EXPECT_THAT(result->bytes, HasSubstr("\"fixed_layers\":[{\"layer\""));
  } else {
    EXPECT_EQ(metrics.count("layers_fixed"), 0);
  }

  auto again = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(StopAfter(again->id(), 1));
  bed_.StartManager();
  const apq::v1::JobProgress resumed = bed_.AwaitEnd(again->id(), absl::Seconds(600));
  ASSERT_EQ(resumed.state(), apq::v1::JOB_STATE_SUCCEEDED) << resumed.error();
  auto second = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(second.ok() && second->best.has_value());
  EXPECT_EQ(second->best->config_json, stored->best->config_json);
}

TEST_P(JobDifferentiableTest, RequestsItCannotServeAreRefusedNamingTheField) {
  std::vector<Refusal> cases;
  cases.push_back({"below the cheapest", Request(Bitops(Smallest(2, 2)) * 0.9),
                   absl::StatusCode::kFailedPrecondition, "below the cheapest bit policy"});
  cases.push_back({"no fixed architecture", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "fixed_architecture"});
  cases.back().request.clear_fixed_architecture();
  cases.push_back({"a temperature rising", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.temperature_end"});
  OptionsOf(cases.back())["temperature_end"].set_double_value(9);
  cases.push_back({"a temperature of 0", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.temperature_start"});
  OptionsOf(cases.back())["temperature_start"].set_double_value(0);
  cases.push_back({"report_every above steps", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.report_every"});
  OptionsOf(cases.back())["report_every"].set_int_value(7);
  cases.push_back({"warmup above steps", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.warmup_steps"});
  OptionsOf(cases.back())["warmup_steps"].set_int_value(7);
  cases.push_back({"an arch learning rate above 1", Request(MiddleBudget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.arch_lr"});
  OptionsOf(cases.back())["arch_lr"].set_double_value(2);
  cases.push_back({"samples above 64", Request(MiddleBudget()), absl::StatusCode::kInvalidArgument,
                   "engine.options.samples"});
  OptionsOf(cases.back())["samples"].set_int_value(65);
  if (ssps()) {
    cases.push_back({"fix_every above steps", Request(MiddleBudget()),
                     absl::StatusCode::kInvalidArgument, "engine.options.fix_every"});
    OptionsOf(cases.back())["fix_every"].set_int_value(7);
    cases.push_back({"an unknown certainty", Request(MiddleBudget()),
                     absl::StatusCode::kInvalidArgument, "engine.options.certainty"});
    OptionsOf(cases.back())["certainty"].set_choice_value("confidence");
  } else {
    cases.push_back({"fixing asked of dnas", Request(MiddleBudget()),
                     absl::StatusCode::kInvalidArgument, "engine.options.fix_every"});
    OptionsOf(cases.back())["fix_every"].set_int_value(2);
  }
  cases.push_back({"energy on a device without it", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "engine.options.cost"});
  OptionsOf(cases.back())["cost"].set_choice_value("energy");
  // A latency-only table (bitfusion's has energy); local-cpu runs this space's W8A8 networks.
  cases.back().request.set_device("local-cpu");
  cases.back().request.mutable_budgets()->set_max_bitops(1e12);
  cases.push_back({"a space without a supernet", Request(MiddleBudget()),
                   absl::StatusCode::kFailedPrecondition, "has none"});
  cases.back().request.set_space("ofa_mbv3");
  cases.back().request.set_device("note10");
  cases.back().request.clear_fixed_architecture();
  cases.back().request.mutable_budgets()->clear_max_bitops();
  cases.back().request.mutable_budgets()->set_max_latency_ms(100);
  ExpectRefusedBeforeStoring(cases);
}

// dnas with architecture=searched: kernels, widths, depths and bits over the whole space.
class JobDnasArchitectureTest : public LowBitJobTest {
 protected:
  apq::v1::SubmitSearchRequest Request(double max_bitops) const {
    apq::v1::SubmitSearchRequest request = EngineRequest(search::kDnasEngineName, max_bitops, 7);
    request.clear_fixed_architecture();
    auto& options = *request.mutable_engine_request()->mutable_options();
    options["architecture"].set_choice_value("searched");
    options["steps"].set_int_value(6);
    options["report_every"].set_int_value(2);
    options["batch_size"].set_int_value(16);
    options["arch_lr"].set_double_value(0.1);
    options["samples"].set_int_value(2);
    return request;
  }
  // Every gene at its last choice: the deepest, widest network at 8 bits.
  oface::Genotype Largest() const {
    oface::Genotype genotype(space_->genes().size());
    for (size_t g = 0; g < genotype.size(); ++g) genotype[g] = space_->genes()[g].choices.back();
    return space_->Canonical(genotype);
  }
  double Budget() const {
    const double cheapest = Bitops(Smallest(2, 2));
    return cheapest + (Bitops(Largest()) - cheapest) / 4;
  }
};

TEST_F(JobDnasArchitectureTest, SearchesTheArchitectureWithinTheBudgetAndAResumedJobEndsTheSame) {
  const double budget = Budget();
  auto whole = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(whole.ok()) << whole.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(whole->id(), absl::Seconds(900));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  auto stored = bed_.store().jobs().GetJob(whole->id());
  ASSERT_TRUE(stored.ok() && stored->best.has_value());
  EXPECT_LE(*stored->best->bitops, budget);
  // The architecture was searched: some stored network's kernel, width or depth genes differ
  // from the smallest architecture's (where uniform distributions' argmax starts).
  const oface::Genotype smallest = Smallest(2, 2);
  bool architecture_moved = false;
  for (const CandidateRecord& candidate : Candidates(whole->id())) {
    if (candidate.feasible) {
      EXPECT_LE(*candidate.bitops, budget);
    }
    auto genotype = space_->FromJson(candidate.config_json);
    ASSERT_TRUE(genotype.ok()) << genotype.status();
    for (size_t g = 0; g < genotype->size(); ++g) {
      if (!oface::IsBitsGene(space_->genes()[g]) && (*genotype)[g] != smallest[g]) {
        architecture_moved = true;
      }
    }
  }
  EXPECT_TRUE(architecture_moved);
  auto result = bed_.store().artifacts().GetArtifact(
      search::kDnasResultKind, JobOutputKey(whole->id(), search::kDifferentiableResultName));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->bytes, HasSubstr("\"architecture\":\"searched\""));
  EXPECT_THAT(result->bytes, HasSubstr(stored->best->config_json));

  auto again = bed_.manager().Submit(Request(budget));
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(StopAfter(again->id(), 1));
  bed_.StartManager();
  const apq::v1::JobProgress resumed = bed_.AwaitEnd(again->id(), absl::Seconds(900));
  ASSERT_EQ(resumed.state(), apq::v1::JOB_STATE_SUCCEEDED) << resumed.error();
  auto second = bed_.store().jobs().GetJob(again->id());
  ASSERT_TRUE(second.ok() && second->best.has_value());
  EXPECT_EQ(second->best->config_json, stored->best->config_json);
}

TEST_F(JobDnasArchitectureTest, RequestsItCannotServeAreRefusedNamingTheField) {
  std::vector<Refusal> cases;
  cases.push_back({"a fixed architecture", Request(Budget()), absl::StatusCode::kInvalidArgument,
                   "engine.options.architecture"});
  cases.back().request = EngineRequest(search::kDnasEngineName, Budget(), 7);
  OptionsOf(cases.back())["architecture"].set_choice_value("searched");
  cases.push_back({"uniform bits", Request(Budget()), absl::StatusCode::kInvalidArgument,
                   "engine.options.architecture"});
  cases.back().request.set_uniform_bits(4);
  cases.push_back({"below the cheapest network", Request(Bitops(Smallest(2, 2)) * 0.9),
                   absl::StatusCode::kFailedPrecondition, "cheapest network"});
  cases.push_back({"an unknown architecture mode", Request(Budget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.architecture"});
  OptionsOf(cases.back())["architecture"].set_choice_value("depths");
  cases.push_back({"architecture asked of ssps", Request(Budget()),
                   absl::StatusCode::kInvalidArgument, "engine.options.architecture"});
  cases.back().request.mutable_engine_request()->set_name(search::kSspsEngineName);
  OptionsOf(cases.back()).erase("samples");
  ExpectRefusedBeforeStoring(cases);
}

INSTANTIATE_TEST_SUITE_P(Engines, JobDifferentiableTest,
                         ::testing::Values(search::kDnasEngineName, search::kSspsEngineName),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace apq::server
