#include "search/evolution_engine.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::search {
namespace {

std::vector<OptionSpec> EvolutionOptionSpecs() {
  const EvolutionParams defaults;
  std::vector<OptionSpec> specs;
  const auto add_int = [&](const char* name, int64_t value, double min, double max,
                           const char* description) {
    specs.push_back(IntOptionSpec(name, value, min, max, description));
  };
  const auto add_fraction = [&](const char* name, double value, bool zero_allowed,
                                const char* description) {
    OptionSpec spec;
    spec.name = name;
    spec.type = OptionSpec::Type::kDouble;
    spec.default_value = value;
    spec.min = 0.0;
    spec.min_exclusive = !zero_allowed;
    spec.max = 1.0;
    spec.description = description;
    specs.push_back(std::move(spec));
  };
  add_int("population_size", defaults.population_size, 2, kMaxPopulationSize,
          "networks in each generation");
  add_int("generations", defaults.generations, 1, kMaxGenerations,
          "generations after the initial random population");
  add_fraction("parent_ratio", defaults.parent_ratio, false,
               "share of the population kept as parents");
  add_fraction("mutation_ratio", defaults.mutation_ratio, true,
               "share of each generation bred by mutation (the rest by crossover)");
  add_fraction("mutate_probability", defaults.mutate_probability, true,
               "probability of mutating each block and each stage depth");
  add_fraction("resolution_mutate_probability", defaults.resolution_mutate_probability, true,
               "probability of mutating the input resolution; follows mutate_probability");
  specs.back().default_from = "mutate_probability";
  add_int("max_resample_attempts", defaults.max_resample_attempts, 1, kMaxResampleAttempts,
          "draws allowed for one feasible child before the job fails (budgets tighter than "
          "anything in the space)");
  OptionSpec lower_bits;
  lower_bits.name = "lower_bits_of_infeasible_draws";
  lower_bits.type = OptionSpec::Type::kBool;
  lower_bits.default_value = defaults.lower_bits_of_infeasible_draws;
  lower_bits.description =
      "lower the bitwidths of a random draw that breaks the budgets until it meets them, instead "
      "of drawing again (budgets near a large network's low-bit cost)";
  specs.push_back(std::move(lower_bits));
  return specs;
}

class EvolutionEngine final : public Engine {
 public:
  EvolutionEngine() : specs_(EvolutionOptionSpecs()) {}

  std::string name() const override { return kEvolutionEngineName; }
  std::string description() const override {
    return "evolutionary search with a predictor and hard budgets (once-for-all, APQ); "
           "NSGA-II selection for the Pareto objective";
  }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }

  absl::Status ValidateOptions(const EngineOptions& options,
                               absl::string_view field_prefix) const override {
    SearchProblem problem;
    const EvolutionParams params = EvolutionParamsFromOptions(options, problem);
    absl::Status valid = ValidateParams(params);
    if (valid.ok() || field_prefix == "evolution.") return valid;
    // ValidateParams names the fields of the `evolution` message; name them as given.
    std::string message(valid.message());
    if (absl::StartsWith(message, "evolution.")) {
      message = absl::StrCat(field_prefix, message.substr(sizeof("evolution.") - 1));
    }
    return absl::Status(valid.code(), message);
  }

  int TotalSteps(const EngineOptions& options) const override {
    // The initial population is step 0, so a run of G generations reports step G last.
    return static_cast<int>(IntOption(options, "generations"));
  }

  std::optional<int64_t> PlannedCandidates(const EngineOptions& options) const override {
    return IntOption(options, "population_size") * (IntOption(options, "generations") + 1);
  }

  absl::StatusOr<EngineResult> Run(const SearchProblem& problem, const EngineOptions& options,
                                   uint64_t seed, const StepCallback& on_step,
                                   const CancelCheck& cancelled,
                                   absl::string_view resume_checkpoint) const override {
    std::optional<Checkpoint> checkpoint;
    if (!resume_checkpoint.empty()) {
      ASSIGN_OR_RETURN(checkpoint, ParseCheckpoint(resume_checkpoint));
    }
    EvolutionSearch search(*problem.space, *problem.cost_model, *problem.predictor, problem.budgets,
                           EvolutionParamsFromOptions(options, problem), seed);
    const auto on_generation = [&](const GenerationReport& generation,
                                   const Checkpoint& state) -> absl::Status {
      if (!on_step) return absl::OkStatus();
      StepReport report;
      report.step = generation.generation;
      report.scored = generation.children;
      report.rejected = generation.rejected;
      report.rejected_total = generation.rejected_total;
      report.candidates_evaluated = generation.candidates_evaluated;
      report.best = generation.best;
      report.best_index_in_step = generation.best_index;
      report.write_checkpoint = [&state] { return SerializeCheckpoint(state); };
      report.final_step = generation.generation == TotalSteps(options);
      return on_step(report);
    };
    ASSIGN_OR_RETURN(SearchResult searched,
                     search.Run(on_generation, cancelled, checkpoint ? &*checkpoint : nullptr));
    EngineResult result;
    result.best = std::move(searched.best);
    result.last_step = searched.generations_done;
    result.candidates_evaluated = searched.candidates_evaluated;
    result.predictions = searched.predictions;
    result.cancelled = searched.cancelled;
    return result;
  }

 private:
  const std::vector<OptionSpec> specs_;
};

}  // namespace

EvolutionParams EvolutionParamsFromOptions(const EngineOptions& options,
                                           const SearchProblem& problem) {
  EvolutionParams params;
  params.population_size = static_cast<int>(IntOption(options, "population_size"));
  params.generations = static_cast<int>(IntOption(options, "generations"));
  params.parent_ratio = DoubleOption(options, "parent_ratio");
  params.mutation_ratio = DoubleOption(options, "mutation_ratio");
  params.mutate_probability = DoubleOption(options, "mutate_probability");
  params.resolution_mutate_probability = DoubleOption(options, "resolution_mutate_probability");
  params.max_resample_attempts = static_cast<int>(IntOption(options, "max_resample_attempts"));
  params.lower_bits_of_infeasible_draws = BoolOption(options, "lower_bits_of_infeasible_draws");
  params.objective = problem.objective;
  params.pareto_cost = problem.pareto_cost;
  params.keep_every_rejected = problem.report_every_rejected_draw;
  return params;
}

std::unique_ptr<Engine> NewEvolutionEngine() { return std::make_unique<EvolutionEngine>(); }

}  // namespace apq::search
