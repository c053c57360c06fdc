// Evolutionary search under hard budgets (the once-for-all / APQ evolution).
//
// Each generation keeps the top `parent_ratio` of the population as parents and adds
// `mutation_ratio * population_size` mutants and the rest as uniform crossovers of two
// random parents. A child is priced first; a child that breaks a budget is redrawn and
// never enters the population; only feasible children are sent to the accuracy predictor,
// in one batch per generation, with predictions memoised per network within the search.
//
// Deterministic for a seed: the same space, cost model, predictor, budgets, parameters and
// seed give the same generations. Not thread-safe; one search per object.
#ifndef APQ_SEARCH_EVOLUTION_H_
#define APQ_SEARCH_EVOLUTION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "predictor/accuracy_predictor.h"
#include "search/budgets.h"
#include "search/engine.h"

namespace apq::search {

struct EvolutionParams {
  int population_size = 100;
  int generations = 500;
  double parent_ratio = 0.25;
  double mutation_ratio = 0.5;
  // OFA's tutorial uses one probability for each block, each stage depth and the resolution.
  double mutate_probability = 0.1;
  double resolution_mutate_probability = 0.1;
  // Draws allowed for one feasible child before the search fails (budgets below anything
  // the space can reach must not spin forever).
  int max_resample_attempts = 100000;
  // A random draw that breaks the budgets has its bitwidths lowered, one random bits gene one
  // step at a time, until it meets them (or every bits gene is at its lowest: then it is
  // redrawn). Without it a budget near the uniform low-bit cost of a large architecture is
  // met by almost no uniform draw of the bits. No effect in spaces without bits genes.
  bool lower_bits_of_infeasible_draws = true;
  Objective objective = Objective::kMaxAccuracy;
  CostMetric pareto_cost = CostMetric::kLatency;  // With Objective::kPareto.
  // GenerationReport::rejected keeps every redrawn child, not only the first
  // population_size (SearchProblem::report_every_rejected_draw).
  bool keep_every_rejected = false;
};

// Limits that keep one job's memory and time bounded; INVALID_ARGUMENT names the field.
inline constexpr int kMaxPopulationSize = 10000;
inline constexpr int kMaxGenerations = 100000;
inline constexpr int kMaxResampleAttempts = 10000000;
absl::Status ValidateParams(const EvolutionParams& params);

// What one generation produced; generation 0 is the initial population.
struct GenerationReport {
  int generation = 0;
  std::vector<Individual> children;  // Feasible children scored this generation.
  // Redrawn (infeasible) children of this generation, priced but not scored: the first
  // population_size of them, so a hopeless budget cannot flood the record (all of them with
  // EvolutionParams::keep_every_rejected).
  std::vector<Individual> rejected;
  int64_t rejected_total = 0;        // All redraws of this generation.
  int64_t candidates_evaluated = 0;  // Feasible children scored so far, all generations.
  const Individual* best = nullptr;  // Best so far; valid during the callback only.
  int best_index = -1;  // Index in `children` of the best when this generation bred it.
};

// The whole state between generations, enough to resume a search exactly where it was.
struct Checkpoint {
  int generations_done = -1;  // -1: nothing done yet; 0: initial population done.
  oface::Rng::State rng_state{};
  std::vector<Individual> population;
  std::optional<Individual> best;
  int64_t candidates_evaluated = 0;
  // Read from a checkpoint of an older format that kept only latency and energy: Run prices
  // the population and the best again with its cost model.
  bool costs_missing = false;
};

std::string SerializeCheckpoint(const Checkpoint& checkpoint);
// DATA_LOSS when the bytes are truncated or not a checkpoint.
absl::StatusOr<Checkpoint> ParseCheckpoint(absl::string_view bytes);

struct SearchResult {
  std::optional<Individual> best;  // Unset only when cancelled before generation 0 finished.
  int generations_done = 0;
  int64_t candidates_evaluated = 0;
  // Distinct networks this Run sent to the predictor: the rest of the scored candidates were
  // networks already scored (the population converges, so most children repeat one).
  int64_t predictions = 0;
  bool cancelled = false;
};

class EvolutionSearch {
 public:
  // Called after every generation with its report and the checkpoint that resumes after it.
  // A non-OK status stops the search and is returned by Run.
  using GenerationCallback =
      std::function<absl::Status(const GenerationReport& report, const Checkpoint& checkpoint)>;
  // Polled between generations; true stops the search (the result says cancelled).
  using CancelCheck = std::function<bool()>;

  // All references must outlive the search. `params` and `budgets` must be valid.
  EvolutionSearch(const oface::SearchSpace& space, const hwmodels::LutCostModel& cost_model,
                  predictor::AccuracyPredictor& predictor, Budgets budgets, EvolutionParams params,
                  uint64_t seed);

  // Runs from the start, or from `resume_from` when given. FAILED_PRECONDITION when no
  // feasible child is found within max_resample_attempts draws (the message names the
  // budgets); errors of the predictor and the callback are passed through. `cancelled` is
  // asked before each generation and every kDrawsPerCancelCheck draws within one (a
  // generation whose draws are rejected by the million stops within a second); a
  // generation stopped midway is not reported, so a resume starts it again.
  absl::StatusOr<SearchResult> Run(const GenerationCallback& on_generation,
                                   const CancelCheck& cancelled,
                                   const Checkpoint* resume_from = nullptr);

 private:
  enum class ChildKind { kRandom, kMutant, kCrossover };

  // The best `count` of `population` by the objective, best first; ties keep population order.
  std::vector<Individual> SelectParents(std::vector<Individual> population, int count) const;
  // Lowers `child`'s bitwidths (EvolutionParams::lower_bits_of_infeasible_draws) until it
  // meets the budgets, pricing it after each step; false when no lowering does.
  bool LowerBitsUntilFeasible(Individual* child);
  // Draws children of one kind until feasible; appends the child (unscored) to `pending`.
  absl::Status DrawFeasibleChild(ChildKind kind, const std::vector<Individual>& parents,
                                 GenerationReport* report, std::vector<Individual>* pending);
  // Scores `pending` with the predictor (memoised) and moves them into `report->children`.
  absl::Status Score(std::vector<Individual>* pending, GenerationReport* report);
  std::string DescribeBudgets() const;

  static constexpr int kDrawsPerCancelCheck = 4096;

  const oface::SearchSpace& space_;
  const hwmodels::LutCostModel& cost_model_;
  const CancelCheck* cancelled_ = nullptr;  // Run's, while it runs.
  predictor::AccuracyPredictor& predictor_;
  const Budgets budgets_;
  const EvolutionParams params_;
  oface::Rng rng_;
  std::vector<int> bits_genes_;  // Indices of the space's bits genes with more than one choice.

  absl::flat_hash_map<oface::Genotype, float> accuracy_memo_;
  predictor::FeatureBatch feature_batch_;
  std::vector<float> predictions_;
  std::vector<int> pending_to_batch_;
};

}  // namespace apq::search

#endif  // APQ_SEARCH_EVOLUTION_H_
