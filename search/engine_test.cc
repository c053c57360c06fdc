// The engine seam: option resolution against an engine's specs, the registry, and the
// evolution engine's opaque checkpoints, which must resume a run to exactly the reports of an
// uninterrupted one on every kind of cost (latency, energy, size, BitOps, modelled figures).
#include "search/engine.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/bitfusion_analytic.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"
#include "search/engine_registry.h"
#include "search/evolution.h"
#include "search/evolution_engine.h"
#include "search/iqp_engine.h"

namespace apq::search {
namespace {

using ::testing::HasSubstr;

const Engine& Evolution() {
  static const Engine* engine = *EngineRegistry::BuiltIn()->Find(kEvolutionEngineName);
  return *engine;
}

TEST(ResolveOptionsTest, FillsEveryDefaultAndFollowsTheOptionADefaultNames) {
  auto resolved = ResolveOptions(Evolution(), {{"mutate_probability", 0.3}}, "engine.options.");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->size(), Evolution().option_specs().size());
  EXPECT_EQ(IntOption(*resolved, "population_size"), 100);
  EXPECT_EQ(IntOption(*resolved, "generations"), 500);
  EXPECT_EQ(DoubleOption(*resolved, "parent_ratio"), 0.25);
  EXPECT_EQ(DoubleOption(*resolved, "resolution_mutate_probability"), 0.3);
  // An integer is accepted for a number option and stored as a double.
  auto widened = ResolveOptions(Evolution(), {{"mutation_ratio", int64_t{1}}}, "e.");
  ASSERT_TRUE(widened.ok()) << widened.status();
  EXPECT_EQ(DoubleOption(*widened, "mutation_ratio"), 1.0);
}

TEST(ResolveOptionsTest, AChoiceThatReadsAsANumberIsTakenFromAnInteger) {
  const std::unique_ptr<Engine> iqp = NewIqpEngine();
  auto resolved = ResolveOptions(*iqp, {{"activations", int64_t{4}}}, "engine.options.");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(ChoiceOption(*resolved, "activations"), "4");
  auto refused = ResolveOptions(*iqp, {{"activations", int64_t{5}}}, "engine.options.");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("engine.options.activations: must be one of"));
  EXPECT_EQ(ResolveOptions(*iqp, {{"activations", 4.0}}, "e.").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResolveOptionsTest, BadOptionsAreInvalidArgumentNamingTheField) {
  const struct {
    EngineOptions options;
    std::string field;
    std::string reason;
  } cases[] = {
      {{{"populaton_size", int64_t{10}}}, "engine.options.populaton_size", "no such option"},
      {{{"population_size", 10.5}}, "engine.options.population_size", "must be an integer"},
      {{{"population_size", int64_t{1}}}, "engine.options.population_size", "[2, 10000]"},
      {{{"generations", std::string("many")}}, "engine.options.generations", "integer"},
      {{{"parent_ratio", 0.0}}, "engine.options.parent_ratio", "(0, 1]"},
      {{{"mutation_ratio", true}}, "engine.options.mutation_ratio", "a number"},
      {{{"mutate_probability", 1.5}}, "engine.options.mutate_probability", "[0, 1]"},
      {{{"parent_ratio", 0.001}}, "engine.options.parent_ratio", "leaves no parent"},
  };
  for (const auto& c : cases) {
    auto resolved = ResolveOptions(Evolution(), c.options, "engine.options.");
    ASSERT_FALSE(resolved.ok()) << c.field;
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(resolved.status().message(), HasSubstr(c.field));
    EXPECT_THAT(resolved.status().message(), HasSubstr(c.reason));
  }
  // The `evolution` message of the API keeps its own field names.
  auto legacy = ResolveOptions(Evolution(), {{"parent_ratio", 0.001}}, "evolution.");
  EXPECT_THAT(legacy.status().message(), HasSubstr("evolution.parent_ratio"));
}

class ToyEngine final : public Engine {
 public:
  explicit ToyEngine(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return "test"; }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }
  int TotalSteps(const EngineOptions&) const override { return 0; }
  absl::StatusOr<EngineResult> Run(const SearchProblem&, const EngineOptions&, uint64_t,
                                   const StepCallback&, const CancelCheck&,
                                   absl::string_view) const override {
    return EngineResult();
  }

 private:
  std::string name_;
  std::vector<OptionSpec> specs_;
};

TEST(EngineRegistryTest, FindsByNameAndRefusesBadOrTakenNames) {
  EngineRegistry registry;
  ASSERT_TRUE(registry.Register(NewEvolutionEngine()).ok());
  ASSERT_TRUE(registry.Register(std::make_unique<ToyEngine>("toy_2")).ok());
  EXPECT_EQ(registry.Register(std::make_unique<ToyEngine>("toy_2")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Register(std::make_unique<ToyEngine>("Toy")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register(std::make_unique<ToyEngine>("")).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(registry.engines().size(), 2u);
  EXPECT_EQ(registry.engines()[0]->name(), "evolution");
  EXPECT_EQ((*registry.Find("toy_2"))->name(), "toy_2");
  auto missing = registry.Find("dnas");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("evolution, toy_2"));
  EXPECT_FALSE(EngineRegistry::BuiltIn()->engines().empty());
}

// Every report of a run, with the costs in full, as comparable values.
struct RecordedStep {
  int step;
  std::vector<std::string> scored;
  std::vector<std::string> rejected;
  std::string best;
  int best_index;
  std::string checkpoint;
};

std::string Describe(const Individual& individual) {
  const hwmodels::NetworkCost& cost = individual.cost;
  return absl::StrCat(absl::StrJoin(individual.genotype, ","), "|", individual.accuracy, "|",
                      cost.latency_ms, "|", cost.energy_mj, "|", cost.has_energy, "|", cost.size_mb,
                      "|", cost.bitops, "|", cost.has_size_and_bitops, "|", cost.modelled, "|",
                      individual.generation);
}

absl::StatusOr<EngineResult> Record(const SearchProblem& problem, const EngineOptions& options,
                                    std::vector<RecordedStep>* steps, absl::string_view resume = "",
                                    int stop_after = -1) {
  return Evolution().Run(
      problem, options, 5,
      [&](const StepReport& report) {
        RecordedStep step{
            report.step, {}, {}, "", report.best_index_in_step, report.write_checkpoint()};
        EXPECT_EQ(report.final_step, report.step == Evolution().TotalSteps(options));
        for (const Individual& i : report.scored) step.scored.push_back(Describe(i));
        for (const Individual& i : report.rejected) step.rejected.push_back(Describe(i));
        if (report.best != nullptr) step.best = Describe(*report.best);
        if (report.best_index_in_step >= 0) {
          EXPECT_EQ(Describe(report.scored[report.best_index_in_step]), step.best);
        }
        steps->push_back(std::move(step));
        return absl::OkStatus();
      },
      [&] { return stop_after >= 0 && static_cast<int>(steps->size()) > stop_after; }, resume);
}

// Runs once straight through, then again stopped after each step and resumed from that
// step's checkpoint bytes, and compares every later report in full.
void ExpectResumeReproducesTheRun(const SearchProblem& problem) {
  auto options = ResolveOptions(
      Evolution(), {{"population_size", int64_t{16}}, {"generations", int64_t{6}}}, "");
  ASSERT_TRUE(options.ok()) << options.status();
  std::vector<RecordedStep> straight;
  auto full = Record(problem, *options, &straight);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(straight.size(), 7u);
  EXPECT_EQ(full->last_step, 6);
  for (int stop = 0; stop < 6; ++stop) {
    std::vector<RecordedStep> first;
    auto interrupted = Record(problem, *options, &first, "", stop);
    ASSERT_TRUE(interrupted.ok());
    ASSERT_TRUE(interrupted->cancelled);
    std::vector<RecordedStep> resumed;
    auto rest = Record(problem, *options, &resumed, first.back().checkpoint);
    ASSERT_TRUE(rest.ok()) << rest.status();
    ASSERT_EQ(first.size() + resumed.size(), straight.size()) << "stopped after " << stop;
    for (size_t i = 0; i < resumed.size(); ++i) {
      const RecordedStep& expected = straight[first.size() + i];
      EXPECT_EQ(resumed[i].step, expected.step);
      EXPECT_EQ(resumed[i].scored, expected.scored) << "step " << expected.step;
      EXPECT_EQ(resumed[i].rejected, expected.rejected);
      EXPECT_EQ(resumed[i].best, expected.best);
      EXPECT_EQ(resumed[i].best_index, expected.best_index);
      EXPECT_EQ(resumed[i].checkpoint, expected.checkpoint);
    }
    EXPECT_EQ(Describe(*rest->best), Describe(*full->best));
    EXPECT_EQ(rest->candidates_evaluated, full->candidates_evaluated);
  }
}

// APQ's joint space on the real BitFusion table, scored by an APQ-shaped predictor with
// seeded random weights (APQ never published its own), under an 11 ms budget.
struct JointSpace {
  JointSpace() {
    auto table = hwmodels::LoadApqBitFusionFile("data/apq_bitfusion/BitFusion_new.b1.dict");
    EXPECT_TRUE(table.ok()) << table.status();
    model = hwmodels::LutCostModel::Create(*space, *table).value();
    predictor = predictor::MlpPredictor::Create(predictor::mlp_testing::RandomApqWeights(3),
                                                predictor::MlpPredictor::Options())
                    .value();
  }
  SearchProblem Problem() const {
    SearchProblem problem{space.get(), model.get(), predictor.get()};
    problem.budgets.max_latency_ms = 11.0;
    return problem;
  }
  std::unique_ptr<oface::SearchSpace> space = oface::NewApqMbv2Space();
  std::unique_ptr<hwmodels::LutCostModel> model;
  std::unique_ptr<predictor::MlpPredictor> predictor;
};

TEST(EvolutionEngineTest, ResumeOnTheJointSpaceKeepsEnergySizeAndBitops) {
  const JointSpace joint;
  SearchProblem problem = joint.Problem();
  problem.budgets.max_bitops = 1.2e10;
  ExpectResumeReproducesTheRun(problem);
}

TEST(EvolutionEngineTest, ResumeOnAModelledTableKeepsTheModelledFlag) {
  auto spec = oface::FashionMnistSpec();
  auto space = oface::NewMbConvQuantSpace(spec);
  ASSERT_TRUE(space.ok()) << space.status();
  auto table = hwmodels::LoadApqBitFusionFile("data/apq_bitfusion/BitFusion_new.b1.dict");
  ASSERT_TRUE(table.ok()) << table.status();
  auto fallback = hwmodels::BitFusionAnalyticModel::Fit(*table);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  auto model = hwmodels::LutCostModel::Create(**space, *table, fallback->get());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_GT((*model)->modelled_terms(), 0);
  // A predictor of APQ's shape sized to this space, with seeded random weights.
  std::mt19937 rng(1);
  const int arch_inputs = (*space)->arch_feature_size();
  predictor::MlpWeights weights;
  weights.layers.push_back(predictor::mlp_testing::RandomLinear(arch_inputs, 32, &rng));
  weights.layers.push_back(predictor::mlp_testing::RandomLinear(32, 1, &rng));
  weights.bits =
      predictor::mlp_testing::RandomLinear((*space)->feature_size() - arch_inputs, 32, &rng);
  auto predictor =
      predictor::MlpPredictor::Create(std::move(weights), predictor::MlpPredictor::Options());
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  SearchProblem problem{space->get(), model->get(), predictor->get()};
  problem.objective = Objective::kPareto;
  problem.pareto_cost = CostMetric::kSize;
  ExpectResumeReproducesTheRun(problem);
}

TEST(EvolutionEngineTest, AnOldCheckpointWithoutSizeIsPricedAgainOnResume) {
  const JointSpace joint;
  const SearchProblem problem = joint.Problem();
  auto options = ResolveOptions(
      Evolution(), {{"population_size", int64_t{12}}, {"generations", int64_t{3}}}, "");
  ASSERT_TRUE(options.ok());
  std::vector<RecordedStep> straight;
  ASSERT_TRUE(Record(problem, *options, &straight).ok());
  std::vector<RecordedStep> first;
  ASSERT_TRUE(Record(problem, *options, &first, "", 1).ok());
  // The same state in the first format: costs reduced to latency and energy.
  auto checkpoint = ParseCheckpoint(first.back().checkpoint);
  ASSERT_TRUE(checkpoint.ok());
  std::string old_format = "APQEVO1";
  const auto put = [&](const auto& value) {
    old_format.append(reinterpret_cast<const char*>(&value), sizeof(value));
  };
  const auto put_individual = [&](const Individual& individual) {
    put(static_cast<uint32_t>(individual.genotype.size()));
    for (int gene : individual.genotype) put(static_cast<int32_t>(gene));
    put(individual.accuracy);
    put(individual.cost.latency_ms);
    put(individual.cost.energy_mj);
    put(static_cast<uint8_t>(individual.cost.has_energy));
    put(static_cast<int32_t>(individual.generation));
  };
  put(static_cast<int32_t>(checkpoint->generations_done));
  for (uint64_t word : checkpoint->rng_state) put(word);
  put(checkpoint->candidates_evaluated);
  put(static_cast<uint32_t>(checkpoint->population.size()));
  for (const Individual& individual : checkpoint->population) put_individual(individual);
  put(static_cast<uint8_t>(checkpoint->best.has_value()));
  if (checkpoint->best) put_individual(*checkpoint->best);
  auto legacy = ParseCheckpoint(old_format);
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_TRUE(legacy->costs_missing);
  EXPECT_FALSE(legacy->population[0].cost.has_size_and_bitops);

  std::vector<RecordedStep> resumed;
  auto rest = Record(problem, *options, &resumed, old_format);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(resumed.size(), straight.size() - first.size());
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i].scored, straight[first.size() + i].scored);
    EXPECT_EQ(resumed[i].best, straight[first.size() + i].best);
  }
}

TEST(EvolutionEngineTest, CorruptCheckpointIsDataLoss) {
  const std::unique_ptr<oface::SearchSpace> space = oface::NewApqMbv2Space();
  SearchProblem problem{space.get(), nullptr, nullptr};
  auto options = ResolveOptions(Evolution(), {}, "");
  ASSERT_TRUE(options.ok());
  auto result = Evolution().Run(problem, *options, 1, nullptr, nullptr, "APQEVO2 broken");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace apq::search
