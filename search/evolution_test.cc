#include "search/evolution.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/mbconv_quant_space.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/restricted_space.h"
#include "oface/rng.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"

namespace apq::search {
namespace {

class EvolutionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    space_ = oface::NewOfaMbv3Space().release();
    auto table = hwmodels::LoadOfaYamlDirectory("data/ofa_mbv3/note10_lut");
    ASSERT_TRUE(table.ok()) << table.status();
    auto model = hwmodels::LutCostModel::Create(*space_, *table);
    ASSERT_TRUE(model.ok()) << model.status();
    cost_model_ = model->release();
    predictor::MlpPredictor::Options options;
    options.num_threads = 2;
    auto loaded = predictor::MlpPredictor::LoadRawFloat32(
        "data/ofa_mbv3/acc_predictor.f32", "data/ofa_mbv3/acc_predictor.manifest.json", options);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    predictor_ = loaded->release();
  }

  static EvolutionParams SmallParams() {
    EvolutionParams params;
    params.population_size = 40;
    params.generations = 25;
    return params;
  }

  static Budgets LatencyBudget(double ms) {
    Budgets budgets;
    budgets.max_latency_ms = ms;
    return budgets;
  }

  // Runs a search and records every generation's children.
  static absl::StatusOr<SearchResult> RunRecording(const EvolutionParams& params,
                                                   const Budgets& budgets, uint64_t seed,
                                                   std::vector<GenerationReport>* reports,
                                                   std::vector<Checkpoint>* checkpoints = nullptr,
                                                   const Checkpoint* resume_from = nullptr) {
    EvolutionSearch search(*space_, *cost_model_, *predictor_, budgets, params, seed);
    return search.Run(
        [&](const GenerationReport& report, const Checkpoint& checkpoint) {
          GenerationReport copy = report;
          copy.best = nullptr;
          reports->push_back(std::move(copy));
          if (checkpoints != nullptr) checkpoints->push_back(checkpoint);
          return absl::OkStatus();
        },
        nullptr, resume_from);
  }

  static const oface::SearchSpace* space_;
  static const hwmodels::LutCostModel* cost_model_;
  static predictor::MlpPredictor* predictor_;
};

const oface::SearchSpace* EvolutionTest::space_ = nullptr;
const hwmodels::LutCostModel* EvolutionTest::cost_model_ = nullptr;
predictor::MlpPredictor* EvolutionTest::predictor_ = nullptr;

TEST_F(EvolutionTest, EveryScoredChildMeetsTheBudgetAndEveryRejectedOneBreaksIt) {
  std::vector<GenerationReport> reports;
  auto result = RunRecording(SmallParams(), LatencyBudget(22.0), 7, &reports);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(reports.size(), 26u);
  int64_t rejected = 0;
  for (const GenerationReport& report : reports) {
    EXPECT_EQ(report.children.size(), 40u);
    for (const Individual& child : report.children) {
      EXPECT_TRUE(space_->Validate(child.genotype).ok());
      EXPECT_LE(child.cost.latency_ms, 22.0);
      // The cost stored with a child is the cost model's figure for it.
      EXPECT_EQ(child.cost.latency_ms, cost_model_->Evaluate(child.genotype).latency_ms);
    }
    for (const Individual& child : report.rejected) EXPECT_GT(child.cost.latency_ms, 22.0);
    EXPECT_LE(report.rejected.size(), 40u);
    EXPECT_GE(report.rejected_total, static_cast<int64_t>(report.rejected.size()));
    rejected += report.rejected_total;
  }
  EXPECT_GT(rejected, 0) << "a 22 ms budget must reject some random Note10 networks";
  ASSERT_TRUE(result->best.has_value());
  EXPECT_LE(result->best->cost.latency_ms, 22.0);
  EXPECT_EQ(result->candidates_evaluated, 26 * 40);
}

TEST_F(EvolutionTest, KeepingEveryRejectedDrawChangesTheReportOnly) {
  // A budget tight enough that some generation redraws more children than its population.
  const Budgets budgets = LatencyBudget(17.0);
  std::vector<GenerationReport> sampled;
  auto sampled_result = RunRecording(SmallParams(), budgets, 5, &sampled);
  ASSERT_TRUE(sampled_result.ok()) << sampled_result.status();
  EvolutionParams keep_all = SmallParams();
  keep_all.keep_every_rejected = true;
  std::vector<GenerationReport> kept;
  auto kept_result = RunRecording(keep_all, budgets, 5, &kept);
  ASSERT_TRUE(kept_result.ok()) << kept_result.status();

  ASSERT_EQ(kept.size(), sampled.size());
  int64_t most_redrawn = 0;
  for (size_t g = 0; g < kept.size(); ++g) {
    SCOPED_TRACE(g);
    ASSERT_EQ(kept[g].children.size(), sampled[g].children.size());
    for (size_t i = 0; i < kept[g].children.size(); ++i) {
      EXPECT_EQ(kept[g].children[i].genotype, sampled[g].children[i].genotype);
    }
    EXPECT_EQ(kept[g].rejected_total, sampled[g].rejected_total);
    EXPECT_EQ(static_cast<int64_t>(kept[g].rejected.size()), kept[g].rejected_total);
    // The sample is the first of them.
    ASSERT_LE(sampled[g].rejected.size(), kept[g].rejected.size());
    for (size_t i = 0; i < sampled[g].rejected.size(); ++i) {
      EXPECT_EQ(kept[g].rejected[i].genotype, sampled[g].rejected[i].genotype);
    }
    most_redrawn = std::max(most_redrawn, kept[g].rejected_total);
  }
  EXPECT_GT(most_redrawn, SmallParams().population_size) << "the sample must have been cut";
  ASSERT_TRUE(kept_result->best.has_value());
  EXPECT_EQ(kept_result->best->genotype, sampled_result->best->genotype);
}

TEST_F(EvolutionTest, BestIsTheMaximumOfEveryScoredChildAndImprovesOverRandom) {
  std::vector<GenerationReport> reports;
  auto result = RunRecording(SmallParams(), LatencyBudget(25.0), 3, &reports);
  ASSERT_TRUE(result.ok()) << result.status();
  double best_seen = 0;
  double best_random = 0;
  for (const GenerationReport& report : reports) {
    for (const Individual& child : report.children) {
      best_seen = std::max(best_seen, child.accuracy);
      if (report.generation == 0) best_random = std::max(best_random, child.accuracy);
    }
  }
  EXPECT_EQ(result->best->accuracy, best_seen);
  EXPECT_GT(best_seen, best_random) << "evolution should beat the initial random population";
}

TEST_F(EvolutionTest, SameSeedSameSearchDifferentSeedDifferentSearch) {
  std::vector<GenerationReport> first;
  std::vector<GenerationReport> second;
  std::vector<GenerationReport> other;
  auto a = RunRecording(SmallParams(), LatencyBudget(25.0), 11, &first);
  auto b = RunRecording(SmallParams(), LatencyBudget(25.0), 11, &second);
  auto c = RunRecording(SmallParams(), LatencyBudget(25.0), 12, &other);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(first.size(), second.size());
  for (size_t g = 0; g < first.size(); ++g) {
    ASSERT_EQ(first[g].children.size(), second[g].children.size());
    for (size_t i = 0; i < first[g].children.size(); ++i) {
      EXPECT_EQ(first[g].children[i].genotype, second[g].children[i].genotype);
      EXPECT_EQ(first[g].children[i].accuracy, second[g].children[i].accuracy);
    }
  }
  EXPECT_EQ(a->best->genotype, b->best->genotype);
  EXPECT_NE(first[0].children[0].genotype, other[0].children[0].genotype);
}

// Hypervolume of the non-dominated set of `children` (accuracy up, latency down) over the
// box from (0.7, budget) : how much of the accuracy/latency trade-off they cover.
double Hypervolume(std::vector<Individual> children, double budget_ms) {
  std::sort(children.begin(), children.end(), [](const Individual& a, const Individual& b) {
    return a.cost.latency_ms < b.cost.latency_ms;
  });
  double volume = 0;
  double best_accuracy = 0.7;
  for (size_t i = 0; i < children.size(); ++i) {
    best_accuracy = std::max(best_accuracy, children[i].accuracy);
    const double next = i + 1 < children.size() ? children[i + 1].cost.latency_ms : budget_ms;
    volume += (best_accuracy - 0.7) * (next - children[i].cost.latency_ms);
  }
  return volume;
}

TEST_F(EvolutionTest, ParetoObjectiveSpreadsAlongTheFrontWithinTheBudget) {
  EvolutionParams pareto = SmallParams();
  pareto.objective = Objective::kPareto;
  pareto.pareto_cost = CostMetric::kLatency;
  std::vector<GenerationReport> front_reports;
  std::vector<GenerationReport> accuracy_reports;
  auto front = RunRecording(pareto, LatencyBudget(25.0), 5, &front_reports);
  auto accuracy = RunRecording(SmallParams(), LatencyBudget(25.0), 5, &accuracy_reports);
  ASSERT_TRUE(front.ok()) << front.status();
  ASSERT_TRUE(accuracy.ok()) << accuracy.status();
  const auto last_latency_range = [](const std::vector<GenerationReport>& reports) {
    double low = 1e9, high = 0;
    for (const Individual& child : reports.back().children) {
      low = std::min(low, child.cost.latency_ms);
      high = std::max(high, child.cost.latency_ms);
    }
    return high - low;
  };
  for (const GenerationReport& report : front_reports) {
    for (const Individual& child : report.children) EXPECT_LE(child.cost.latency_ms, 25.0);
  }
  const double front_range = last_latency_range(front_reports);
  const double accuracy_range = last_latency_range(accuracy_reports);
  EXPECT_GT(front_range, 2 * accuracy_range)
      << "a Pareto search keeps cheap networks that an accuracy search drops";
  std::vector<Individual> front_children = front_reports.back().children;
  std::vector<Individual> accuracy_children = accuracy_reports.back().children;
  EXPECT_GT(Hypervolume(front_children, 25.0), Hypervolume(accuracy_children, 25.0));
  // Still deterministic for a seed.
  std::vector<GenerationReport> again;
  auto repeated = RunRecording(pareto, LatencyBudget(25.0), 5, &again);
  ASSERT_TRUE(repeated.ok());
  EXPECT_EQ(repeated->best->genotype, front->best->genotype);
  EXPECT_EQ(again.back().children.front().genotype, front_reports.back().children.front().genotype);
}

// APQ's joint space on the real BitFusion table under four budgets at once (about 6% of
// random networks meet all four). APQ never
// published its predictor, so one of its shape with seeded random weights scores the networks:
// the budgets, not the scores, are under test.
TEST(JointSpaceSearchTest, EveryChildMeetsAllFourBudgetsAndTheBitPolicyReachesThePredictor) {
  const std::unique_ptr<oface::SearchSpace> space = oface::NewApqMbv2Space();
  auto table = hwmodels::LoadApqBitFusionFile("data/apq_bitfusion/BitFusion_new.b1.dict");
  ASSERT_TRUE(table.ok()) << table.status();
  auto model = hwmodels::LutCostModel::Create(*space, *table);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->has_energy());
  ASSERT_TRUE((*model)->has_size_and_bitops());
  predictor::MlpPredictor::Options options;
  options.num_threads = 1;
  auto predictor =
      predictor::MlpPredictor::Create(predictor::mlp_testing::RandomApqWeights(7), options);
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  ASSERT_EQ((*predictor)->input_size(), space->feature_size());

  Budgets budgets;
  budgets.max_latency_ms = 11.0;
  budgets.max_energy_mj = 13.0;
  budgets.max_size_mb = 3.0;
  budgets.max_bitops = 1.2e10;
  ASSERT_TRUE(CheckBudgetsPriceable(budgets, **model, "bitfusion").ok());
  EvolutionParams params;
  params.population_size = 40;
  params.generations = 15;
  EvolutionSearch search(*space, **model, **predictor, budgets, params, 3);
  int64_t scored = 0;
  int64_t rejected = 0;
  auto result = search.Run(
      [&](const GenerationReport& report, const Checkpoint&) {
        for (const Individual& child : report.children) {
          EXPECT_TRUE(MeetsBudgets(child.cost, budgets));
          EXPECT_LE(child.cost.latency_ms, 11.0);
          EXPECT_LE(child.cost.energy_mj, 13.0);
          EXPECT_LE(child.cost.size_mb, 3.0);
          EXPECT_LE(child.cost.bitops, 1.2e10);
          EXPECT_TRUE(space->Validate(child.genotype).ok());
          ++scored;
        }
        rejected += report.rejected_total;
        return absl::OkStatus();
      },
      nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(scored, 16 * 40);
  EXPECT_GT(rejected, 0) << "the budgets must bind";
  ASSERT_TRUE(result->best.has_value());
  EXPECT_TRUE(MeetsBudgets(result->best->cost, budgets));

  // The search scores the bit policy it chooses: the same architecture at other bits is
  // another input to the predictor, with another score.
  oface::Genotype genotype = space->Canonical(result->best->genotype);
  std::vector<int32_t> with_policy;
  space->ActiveFeatures(genotype, &with_policy);
  for (size_t gene = 0; gene < space->genes().size(); ++gene) {
    const std::string& name = space->genes()[gene].name;
    if (name.find("bits_setting") != std::string::npos) genotype[gene] = 8;
  }
  std::vector<int32_t> all_eight;
  space->ActiveFeatures(genotype, &all_eight);
  EXPECT_NE(with_policy, all_eight);
  predictor::FeatureBatch batch;
  batch.mutable_indices()->assign(with_policy.begin(), with_policy.end());
  batch.EndSample();
  batch.mutable_indices()->insert(batch.mutable_indices()->end(), all_eight.begin(),
                                  all_eight.end());
  batch.EndSample();
  std::vector<float> scores;
  ASSERT_TRUE((*predictor)->Predict(batch, &scores).ok());
  EXPECT_NE(scores[0], scores[1]);
  EXPECT_FLOAT_EQ(scores[0], static_cast<float>(result->best->accuracy));
}

// A budget just above an architecture's all-lowest-bits cost: uniform draws of its bits almost
// never meet it, lowering the bits of each draw does, and every child still meets it.
TEST(JointSpaceSearchTest, ABudgetNearALowBitCostIsMetByLoweringTheBitsOfDraws) {
  const std::unique_ptr<oface::SearchSpace> space = oface::NewApqMbv2Space();
  auto table = hwmodels::LoadApqBitFusionFile("data/apq_bitfusion/BitFusion_new.b1.dict");
  ASSERT_TRUE(table.ok()) << table.status();
  auto model = hwmodels::LutCostModel::Create(*space, *table);
  ASSERT_TRUE(model.ok()) << model.status();
  oface::Rng rng(11);
  oface::Genotype architecture = space->Sample(rng);
  for (size_t g = 0; g < architecture.size(); ++g) {
    const oface::GeneSpec& gene = space->genes()[g];
    // Kernel 5 everywhere keeps clear of apq_mbv2's ban on kernel 7 with 4-bit activations.
    if (gene.name.rfind("ks[", 0) == 0) architecture[g] = 5;
    if (oface::IsBitsGene(gene)) architecture[g] = gene.choices.front();
  }
  architecture = space->Canonical(architecture);
  ASSERT_TRUE(space->Validate(architecture).ok());
  const std::unique_ptr<oface::SearchSpace> bits_only =
      oface::NewFixedArchitectureSpace(*space, architecture).value();
  Budgets budgets;
  budgets.max_latency_ms = (*model)->Evaluate(architecture).latency_ms * 1.05;
  auto predictor = predictor::MlpPredictor::Create(predictor::mlp_testing::RandomApqWeights(7), {});
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  EvolutionParams params;
  params.population_size = 20;
  params.generations = 5;
  params.max_resample_attempts = 2000;

  params.lower_bits_of_infeasible_draws = false;
  const absl::Status redrawn =
      EvolutionSearch(*bits_only, **model, **predictor, budgets, params, 3)
          .Run([](const GenerationReport&, const Checkpoint&) { return absl::OkStatus(); }, nullptr)
          .status();
  EXPECT_EQ(redrawn.code(), absl::StatusCode::kFailedPrecondition) << redrawn;

  params.lower_bits_of_infeasible_draws = true;
  int64_t scored = 0;
  std::set<oface::Genotype> distinct;
  EvolutionSearch search(*bits_only, **model, **predictor, budgets, params, 3);
  const absl::StatusOr<SearchResult> result = search.Run(
      [&](const GenerationReport& report, const Checkpoint&) {
        for (const Individual& child : report.children) {
          EXPECT_TRUE(MeetsBudgets(child.cost, budgets));
          EXPECT_TRUE(bits_only->Validate(child.genotype).ok());
          distinct.insert(bits_only->Canonical(child.genotype));
          ++scored;
        }
        return absl::OkStatus();
      },
      nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(scored, 6 * 20);
  // Lowering random layers leaves policies of their own, not one cheapest network.
  EXPECT_GT(distinct.size(), 10u);
}

TEST(CostMetricTest, ValuesAndMissingFigures) {
  hwmodels::NetworkCost cost;
  cost.latency_ms = 3;
  EXPECT_EQ(CostValue(cost, CostMetric::kLatency), 3);
  EXPECT_TRUE(std::isinf(CostValue(cost, CostMetric::kEnergy)));
  EXPECT_TRUE(std::isinf(CostValue(cost, CostMetric::kSize)));
  cost.has_energy = true;
  cost.energy_mj = 2;
  cost.has_size_and_bitops = true;
  cost.size_mb = 1.5;
  cost.bitops = 4e9;
  EXPECT_EQ(CostValue(cost, CostMetric::kEnergy), 2);
  EXPECT_EQ(CostValue(cost, CostMetric::kSize), 1.5);
  EXPECT_EQ(CostValue(cost, CostMetric::kBitops), 4e9);
  EXPECT_STREQ(CostMetricName(CostMetric::kBitops), "bitops");

  Budgets budgets;
  budgets.max_size_mb = 1.5;
  budgets.max_bitops = 4e9;
  EXPECT_TRUE(MeetsBudgets(cost, budgets));
  budgets.max_bitops = 3.9e9;
  EXPECT_FALSE(MeetsBudgets(cost, budgets));
  cost.has_size_and_bitops = false;
  budgets.max_bitops.reset();
  EXPECT_FALSE(MeetsBudgets(cost, budgets)) << "a budget without a figure is not met";
}

TEST_F(EvolutionTest, ResumingFromACheckpointContinuesTheSameSearch) {
  std::vector<GenerationReport> full;
  std::vector<Checkpoint> checkpoints;
  auto uninterrupted = RunRecording(SmallParams(), LatencyBudget(25.0), 5, &full, &checkpoints);
  ASSERT_TRUE(uninterrupted.ok());

  // The checkpoint after generation 10 goes through its byte form, as it does in the store.
  auto restored = ParseCheckpoint(SerializeCheckpoint(checkpoints[10]));
  ASSERT_TRUE(restored.ok()) << restored.status();
  std::vector<GenerationReport> rest;
  auto resumed = RunRecording(SmallParams(), LatencyBudget(25.0), 5, &rest, nullptr, &*restored);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(rest.size(), full.size() - 11);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].generation, full[i + 11].generation);
    for (size_t c = 0; c < rest[i].children.size(); ++c) {
      EXPECT_EQ(rest[i].children[c].genotype, full[i + 11].children[c].genotype);
    }
  }
  EXPECT_EQ(resumed->best->genotype, uninterrupted->best->genotype);
  EXPECT_EQ(resumed->candidates_evaluated, uninterrupted->candidates_evaluated);
}

TEST_F(EvolutionTest, CancellationStopsBetweenGenerations) {
  EvolutionSearch search(*space_, *cost_model_, *predictor_, LatencyBudget(25.0), SmallParams(), 1);
  int generations_seen = 0;
  auto result = search.Run(
      [&](const GenerationReport&, const Checkpoint&) {
        ++generations_seen;
        return absl::OkStatus();
      },
      [&] { return generations_seen == 4; });
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(generations_seen, 4);
  EXPECT_EQ(result->generations_done, 3);
}

// A budget nothing meets, with ten million draws allowed per child: without checks between
// draws the first generation would run for seconds; the search stops within a few thousand
// draws of the cancellation instead, reporting no generation.
TEST_F(EvolutionTest, CancellationStopsWithinAGenerationOfEndlessRedraws) {
  EvolutionParams params = SmallParams();
  params.max_resample_attempts = kMaxResampleAttempts;
  EvolutionSearch search(*space_, *cost_model_, *predictor_, LatencyBudget(1.0), params, 1);
  int checks = 0;
  int generations_seen = 0;
  auto result = search.Run(
      [&](const GenerationReport&, const Checkpoint&) {
        ++generations_seen;
        return absl::OkStatus();
      },
      [&] { return ++checks >= 3; });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(checks, 3) << "asked before the generation and then every few thousand draws";
  EXPECT_EQ(generations_seen, 0);
  EXPECT_EQ(result->generations_done, -1);
  EXPECT_FALSE(result->best.has_value());
}

TEST_F(EvolutionTest, CallbackErrorStopsTheSearchAndIsReturned) {
  EvolutionSearch search(*space_, *cost_model_, *predictor_, LatencyBudget(25.0), SmallParams(), 1);
  auto result = search.Run(
      [&](const GenerationReport& report, const Checkpoint&) {
        return report.generation == 2 ? absl::UnavailableError("disk full") : absl::OkStatus();
      },
      nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(EvolutionTest, UnreachableBudgetFailsWithFailedPrecondition) {
  EvolutionParams params = SmallParams();
  params.max_resample_attempts = 2000;
  EvolutionSearch search(*space_, *cost_model_, *predictor_, LatencyBudget(1.0), params, 1);
  auto result = search.Run(nullptr, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("max_latency_ms=1"), std::string::npos)
      << result.status();
}

TEST(EvolutionParamsTest, AbsurdParametersAreRejectedNamingTheField) {
  EXPECT_TRUE(ValidateParams(EvolutionParams()).ok());
  struct Case {
    void (*mutate)(EvolutionParams&);
    const char* field;
  };
  const Case cases[] = {
      {[](EvolutionParams& p) { p.population_size = 0; }, "evolution.population_size"},
      {[](EvolutionParams& p) { p.generations = 1000000000; }, "evolution.generations"},
      {[](EvolutionParams& p) { p.generations = 0; }, "evolution.generations"},
      {[](EvolutionParams& p) { p.parent_ratio = 0; }, "evolution.parent_ratio"},
      {[](EvolutionParams& p) { p.parent_ratio = 0.001; }, "evolution.parent_ratio"},
      {[](EvolutionParams& p) { p.mutation_ratio = 1.5; }, "evolution.mutation_ratio"},
      {[](EvolutionParams& p) { p.mutate_probability = std::nan(""); },
       "evolution.mutate_probability"},
      {[](EvolutionParams& p) { p.resolution_mutate_probability = -0.1; },
       "evolution.resolution_mutate_probability"},
      {[](EvolutionParams& p) { p.max_resample_attempts = 0; }, "evolution.max_resample_attempts"},
  };
  for (const Case& c : cases) {
    EvolutionParams params;
    c.mutate(params);
    absl::Status status = ValidateParams(params);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(status.message().find(c.field), std::string::npos) << status;
  }
}

TEST(BudgetsTest, NegativeNanOrInfiniteBudgetsAreRejectedNamingTheField) {
  Budgets budgets;
  EXPECT_TRUE(ValidateBudgets(budgets).ok());
  for (double bad : {-1.0, 0.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    budgets.max_latency_ms = bad;
    absl::Status status = ValidateBudgets(budgets);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("max_latency_ms"), std::string::npos);
  }
  budgets.max_latency_ms = 25;
  budgets.max_energy_mj = -3;
  EXPECT_NE(ValidateBudgets(budgets).message().find("max_energy_mj"), std::string::npos);
  budgets.max_energy_mj = 3;
  budgets.max_size_mb = std::nan("");
  EXPECT_NE(ValidateBudgets(budgets).message().find("max_size_mb"), std::string::npos);
  budgets.max_size_mb = 2;
  budgets.max_bitops = -1e9;
  EXPECT_NE(ValidateBudgets(budgets).message().find("max_bitops"), std::string::npos);
  budgets.max_bitops = 1e9;
  EXPECT_TRUE(ValidateBudgets(budgets).ok());
}

TEST_F(EvolutionTest, BudgetsTheCostModelCannotPriceAreAFailedPrecondition) {
  Budgets budgets = LatencyBudget(25);
  EXPECT_TRUE(CheckBudgetsPriceable(budgets, *cost_model_, "note10").ok());
  budgets.max_energy_mj = 5;
  absl::Status energy = CheckBudgetsPriceable(budgets, *cost_model_, "note10");
  EXPECT_EQ(energy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(energy.message().find("max_energy_mj"), std::string::npos) << energy;
  budgets.max_energy_mj.reset();
  budgets.max_bitops = 1e9;
  absl::Status bitops = CheckBudgetsPriceable(budgets, *cost_model_, "note10");
  EXPECT_EQ(bitops.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(bitops.message().find("max_bitops"), std::string::npos) << bitops;
}

TEST(BudgetsTest, EnergyBudgetNeedsACostWithEnergy) {
  Budgets budgets;
  budgets.max_energy_mj = 10;
  hwmodels::NetworkCost cost;
  cost.latency_ms = 1;
  EXPECT_FALSE(MeetsBudgets(cost, budgets));
  cost.has_energy = true;
  cost.energy_mj = 9;
  EXPECT_TRUE(MeetsBudgets(cost, budgets));
  cost.energy_mj = 11;
  EXPECT_FALSE(MeetsBudgets(cost, budgets));
}

TEST(CheckpointTest, RoundTripsAndRejectsCorruptBytes) {
  Checkpoint checkpoint;
  checkpoint.generations_done = 4;
  checkpoint.rng_state = {1, 2, 3, 0xFFFFFFFFFFFFFFFFULL};
  checkpoint.candidates_evaluated = 500;
  Individual individual;
  individual.genotype = {3, 5, 7, 0, -1};
  individual.accuracy = 0.8125;
  individual.cost.latency_ms = 24.5;
  individual.cost.energy_mj = 3.25;
  individual.cost.has_energy = true;
  checkpoint.population = {individual, individual};
  checkpoint.best = individual;
  const std::string bytes = SerializeCheckpoint(checkpoint);
  auto parsed = ParseCheckpoint(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->generations_done, 4);
  EXPECT_EQ(parsed->rng_state, checkpoint.rng_state);
  EXPECT_EQ(parsed->candidates_evaluated, 500);
  ASSERT_EQ(parsed->population.size(), 2u);
  EXPECT_EQ(parsed->population[1].genotype, individual.genotype);
  EXPECT_EQ(parsed->best->cost.energy_mj, 3.25);
  EXPECT_TRUE(parsed->best->cost.has_energy);

  EXPECT_EQ(ParseCheckpoint(bytes.substr(0, bytes.size() - 1)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCheckpoint(bytes + "x").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCheckpoint("not a checkpoint").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace apq::search
