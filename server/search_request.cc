#include "server/search_request.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "hwmodels/precision_support.h"
#include "oface/fashion_mnist.h"
#include "oface/restricted_space.h"
#include "predictor/mean_ensemble.h"
#include "search/evolution_engine.h"
#include "server/candidate_metrics.h"

namespace apq::server {
namespace {

// A config's JSON is about 1 KB in every space; this bounds what a request makes us parse.
constexpr size_t kMaxConfigJsonBytes = size_t{64} * 1024;
// Ten spreads below the mean is already "trust only where the members agree".
constexpr double kMaxUncertaintyPenalty = 10.0;
constexpr char kEvolutionPrefix[] = "evolution.";
constexpr char kEngineOptionsPrefix[] = "engine.options.";

// The options set in the `evolution` message, by the engine's option names.
search::EngineOptions EvolutionOptionsFromProto(const apq::v1::EvolutionParams& evolution) {
  search::EngineOptions options;
  if (evolution.has_population_size())
    options["population_size"] = int64_t{evolution.population_size()};
  if (evolution.has_generations()) options["generations"] = int64_t{evolution.generations()};
  if (evolution.has_parent_ratio()) options["parent_ratio"] = evolution.parent_ratio();
  if (evolution.has_mutation_ratio()) options["mutation_ratio"] = evolution.mutation_ratio();
  if (evolution.has_mutate_probability()) {
    options["mutate_probability"] = evolution.mutate_probability();
  }
  if (evolution.has_resolution_mutate_probability()) {
    options["resolution_mutate_probability"] = evolution.resolution_mutate_probability();
  }
  if (evolution.has_max_resample_attempts()) {
    options["max_resample_attempts"] = int64_t{evolution.max_resample_attempts()};
  }
  if (evolution.has_lower_bits_of_infeasible_draws()) {
    options["lower_bits_of_infeasible_draws"] = evolution.lower_bits_of_infeasible_draws();
  }
  return options;
}

apq::v1::EngineOptionValue OptionValueToProto(const search::OptionValue& value) {
  apq::v1::EngineOptionValue proto;
  if (const int64_t* integer = std::get_if<int64_t>(&value)) {
    proto.set_int_value(*integer);
  } else if (const double* real = std::get_if<double>(&value)) {
    proto.set_double_value(*real);
  } else if (const bool* flag = std::get_if<bool>(&value)) {
    proto.set_bool_value(*flag);
  } else {
    proto.set_choice_value(std::get<std::string>(value));
  }
  return proto;
}

absl::StatusOr<search::OptionValue> OptionValueFromProto(const apq::v1::EngineOptionValue& value,
                                                         const std::string& field) {
  switch (value.value_case()) {
    case apq::v1::EngineOptionValue::kIntValue:
      return search::OptionValue(value.int_value());
    case apq::v1::EngineOptionValue::kDoubleValue:
      return search::OptionValue(value.double_value());
    case apq::v1::EngineOptionValue::kBoolValue:
      return search::OptionValue(value.bool_value());
    case apq::v1::EngineOptionValue::kChoiceValue:
      return search::OptionValue(value.choice_value());
    case apq::v1::EngineOptionValue::VALUE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": no value set"));
}

// The engine a request names and the options it gives, with the prefix its errors use.
struct EngineChoice {
  std::string name;
  search::EngineOptions options;
  const char* field_prefix = kEvolutionPrefix;
};

absl::StatusOr<EngineChoice> EngineChoiceOf(const apq::v1::SubmitSearchRequest& request) {
  EngineChoice choice;
  switch (request.engine_case()) {
    case apq::v1::SubmitSearchRequest::kEngineRequest: {
      const apq::v1::EngineRequest& engine = request.engine_request();
      if (engine.name().empty()) return absl::InvalidArgumentError("engine.name: required");
      choice.name = engine.name();
      choice.field_prefix = kEngineOptionsPrefix;
      for (const auto& [name, value] : engine.options()) {
        ASSIGN_OR_RETURN(choice.options[name],
                         OptionValueFromProto(value, absl::StrCat(kEngineOptionsPrefix, name)));
      }
      return choice;
    }
    case apq::v1::SubmitSearchRequest::kEvolution:
      choice.options = EvolutionOptionsFromProto(request.evolution());
      [[fallthrough]];
    case apq::v1::SubmitSearchRequest::ENGINE_NOT_SET:
      choice.name = search::kEvolutionEngineName;
      return choice;
  }
  return absl::InvalidArgumentError("engine: unknown member");
}

}  // namespace

search::SearchProblem ResolvedSearch::problem() const {
  search::SearchProblem problem;
  problem.space = space;
  problem.cost_model = cost.model.get();
  problem.predictor = predictor.predictor.get();
  problem.budgets = budgets;
  problem.objective = objective;
  problem.pareto_cost = pareto_cost;
  problem.report_every_rejected_draw = keep_all_draws;
  problem.policy_losses = policy_losses.get();
  problem.subnet_training = subnet_training.get();
  problem.supernet_version = supernet_version;
  return problem;
}

absl::Status ValidateVerification(const apq::v1::Verification& verification) {
  if (verification.top_k() == 0) {
    if (!verification.dataset().empty() || verification.images() != 0 ||
        verification.workers() != 0) {
      return absl::InvalidArgumentError(
          "verification.top_k: required (in [1, 50]) when verification.dataset, "
          "verification.images or verification.workers is set");
    }
    return absl::OkStatus();
  }
  if (verification.top_k() < 1 || verification.top_k() > kMaxVerificationTopK) {
    return absl::InvalidArgumentError(
        absl::StrCat("verification.top_k: must be 0 (no verification) or in [1, ",
                     kMaxVerificationTopK, "], got ", verification.top_k()));
  }
  if (verification.images() < 0 || verification.images() > oface::kValidationImages) {
    return absl::InvalidArgumentError(absl::StrCat("verification.images: must be in [0, ",
                                                   oface::kValidationImages, "] (0: all), got ",
                                                   verification.images()));
  }
  if (!verification.dataset().empty()) {
    RETURN_IF_ERROR(ValidateResourceName("verification.dataset", verification.dataset()));
  }
  if (verification.workers() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("verification.workers: must be >= 0 (0: in the job's process), got ",
                     verification.workers()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedSearch> ResolveSearch(Catalog& catalog,
                                             const search::EngineRegistry& engines,
                                             const apq::v1::SubmitSearchRequest& request,
                                             int64_t table_version,
                                             const std::string& predictor_version,
                                             SupernetHost* supernets) {
  ResolvedSearch job;
  if (request.space().empty()) return absl::InvalidArgumentError("space: required");
  if (request.device().empty()) return absl::InvalidArgumentError("device: required");
  RETURN_IF_ERROR(ValidateUserText("label", request.label(), kMaxLabelBytes, /*multiline=*/false));
  if (request.fixed_architecture().size() > kMaxConfigJsonBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("fixed_architecture: longer than ", kMaxConfigJsonBytes, " bytes"));
  }
  if (!(request.uncertainty_penalty() >= 0.0 &&
        request.uncertainty_penalty() <= kMaxUncertaintyPenalty)) {
    return absl::InvalidArgumentError(absl::StrCat("uncertainty_penalty: must be in [0, ",
                                                   kMaxUncertaintyPenalty, "], got ",
                                                   request.uncertainty_penalty()));
  }
  if (table_version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table_version: must be 0 (latest) or a version, got ", table_version));
  }
  const apq::v1::Budgets& budgets = request.budgets();
  if (budgets.has_max_latency_ms()) job.budgets.max_latency_ms = budgets.max_latency_ms();
  if (budgets.has_max_energy_mj()) job.budgets.max_energy_mj = budgets.max_energy_mj();
  if (budgets.has_max_size_mb()) job.budgets.max_size_mb = budgets.max_size_mb();
  if (budgets.has_max_bitops()) job.budgets.max_bitops = budgets.max_bitops();
  RETURN_IF_ERROR(search::ValidateBudgets(job.budgets));
  switch (request.objective()) {
    case apq::v1::OBJECTIVE_UNSPECIFIED:
    case apq::v1::OBJECTIVE_MAX_ACCURACY:
      job.objective = search::Objective::kMaxAccuracy;
      break;
    case apq::v1::OBJECTIVE_PARETO:
      job.objective = search::Objective::kPareto;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("objective: unknown value ", static_cast<int>(request.objective())));
  }
  ASSIGN_OR_RETURN(job.pareto_cost, CostMetricFromProto(request.pareto_cost(), "pareto_cost"));
  job.keep_all_draws = request.keep_all_draws();
  RETURN_IF_ERROR(ValidateVerification(request.verification()));
  ASSIGN_OR_RETURN(EngineChoice choice, EngineChoiceOf(request));
  ASSIGN_OR_RETURN(job.engine, engines.Find(choice.name));
  ASSIGN_OR_RETURN(job.options,
                   search::ResolveOptions(*job.engine, choice.options, choice.field_prefix));

  ASSIGN_OR_RETURN(const oface::SearchSpace* base, catalog.FindSpace(request.space()));
  ASSIGN_OR_RETURN(job.cost, catalog.CostModel(request.space(), request.device(), table_version));
  // What the device executes first: every other view narrows that one.
  job.space = job.cost.executable_view != nullptr ? job.cost.executable_view.get() : base;
  const auto on_device = [&](const absl::Status& status) {
    if (status.ok() || job.cost.executable_view == nullptr) return status;
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (", job.cost.device_label, " runs ",
                                     hwmodels::DescribePrecisions(job.cost.precisions), ")"));
  };
  if (!request.fixed_architecture().empty()) {
    absl::StatusOr<oface::Genotype> architecture = base->FromJson(request.fixed_architecture());
    if (!architecture.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("fixed_architecture: ", architecture.status().message()));
    }
    // The architecture is its genes but the bitwidths: those start inside the device's view.
    for (size_t g = 0; g < architecture->size(); ++g) {
      const std::vector<int>& choices = job.space->genes()[g].choices;
      if (oface::IsBitsGene(job.space->genes()[g]) &&
          !std::binary_search(choices.begin(), choices.end(), (*architecture)[g])) {
        (*architecture)[g] = choices.back();
      }
    }
    absl::StatusOr<std::unique_ptr<oface::SearchSpace>> view =
        oface::NewFixedArchitectureSpace(*job.space, *architecture);
    RETURN_IF_ERROR(on_device(view.status()));
    job.fixed_architecture_view = *std::move(view);
    job.space = job.fixed_architecture_view.get();
  }
  if (request.uniform_bits() != 0) {
    absl::StatusOr<std::unique_ptr<oface::SearchSpace>> view =
        oface::NewUniformBitsSpace(*job.space, request.uniform_bits());
    RETURN_IF_ERROR(on_device(view.status()));
    job.uniform_bits_view = *std::move(view);
    job.space = job.uniform_bits_view.get();
  }
  RETURN_IF_ERROR(search::CheckBudgetsPriceable(
      job.budgets, *job.cost.model,
      absl::StrCat(request.device(), " (table v", job.cost.table_version, ")")));
  hwmodels::NetworkCost probe;
  probe.has_energy = job.cost.model->has_energy();
  probe.has_size_and_bitops = job.cost.model->has_size_and_bitops();
  if (std::isinf(search::CostValue(probe, job.pareto_cost))) {
    return absl::FailedPreconditionError(
        absl::StrCat("pareto_cost: ", search::CostMetricName(job.pareto_cost),
                     " is not available for ", request.space(), " on device ", request.device()));
  }
  ASSIGN_OR_RETURN(job.predictor, predictor_version.empty()
                                      ? catalog.NewPredictor(request.space())
                                      : catalog.NewPredictor(request.space(), predictor_version));
  if (request.uncertainty_penalty() > 0.0) {
    auto* ensemble = dynamic_cast<predictor::MeanEnsemble*>(job.predictor.predictor.get());
    if (ensemble == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "uncertainty_penalty: the predictor of space ", request.space(), " (",
          job.predictor.version,
          ") is a single model; make an ensemble the default (TrainPredictor with kind "
          "ensemble) to penalise its members' disagreement"));
    }
    ensemble->set_spread_penalty(request.uncertainty_penalty());
  }
  if (supernets != nullptr) {
    job.policy_losses = supernets->PolicyLosses(request.space());
    job.subnet_training = supernets->SubnetTraining(request.space());
    job.supernet_version = supernets->Version(request.space());
  }
  RETURN_IF_ERROR(job.engine->CheckProblem(job.problem(), job.options));
  return job;
}

void WriteResolvedEngine(const ResolvedSearch& resolved, apq::v1::SubmitSearchRequest* request) {
  if (request->engine_case() == apq::v1::SubmitSearchRequest::kEngineRequest) {
    apq::v1::EngineRequest* engine = request->mutable_engine_request();
    engine->clear_options();
    for (const auto& [name, value] : resolved.options) {
      (*engine->mutable_options())[name] = OptionValueToProto(value);
    }
    return;
  }
  const search::EngineOptions& options = resolved.options;
  apq::v1::EvolutionParams* evolution = request->mutable_evolution();
  evolution->set_population_size(
      static_cast<int32_t>(search::IntOption(options, "population_size")));
  evolution->set_generations(static_cast<int32_t>(search::IntOption(options, "generations")));
  evolution->set_parent_ratio(search::DoubleOption(options, "parent_ratio"));
  evolution->set_mutation_ratio(search::DoubleOption(options, "mutation_ratio"));
  evolution->set_mutate_probability(search::DoubleOption(options, "mutate_probability"));
  evolution->set_resolution_mutate_probability(
      search::DoubleOption(options, "resolution_mutate_probability"));
  evolution->set_max_resample_attempts(
      static_cast<int32_t>(search::IntOption(options, "max_resample_attempts")));
  evolution->set_lower_bits_of_infeasible_draws(
      search::BoolOption(options, "lower_bits_of_infeasible_draws"));
}

std::string EngineName(const apq::v1::SubmitSearchRequest& request) {
  return request.engine_case() == apq::v1::SubmitSearchRequest::kEngineRequest
             ? request.engine_request().name()
             : search::kEvolutionEngineName;
}

int TotalSteps(const search::EngineRegistry& engines, const apq::v1::SubmitSearchRequest& request) {
  absl::StatusOr<EngineChoice> choice = EngineChoiceOf(request);
  if (!choice.ok()) return 0;
  absl::StatusOr<const search::Engine*> engine = engines.Find(choice->name);
  if (!engine.ok()) return 0;
  absl::StatusOr<search::EngineOptions> options =
      search::ResolveOptions(**engine, choice->options, choice->field_prefix);
  return options.ok() ? (*engine)->TotalSteps(*options) : 0;
}

apq::v1::Engine EngineToProto(const search::Engine& engine) {
  apq::v1::Engine proto;
  proto.set_name(engine.name());
  proto.set_description(engine.description());
  for (const search::OptionSpec& spec : engine.option_specs()) {
    apq::v1::EngineOption* option = proto.add_options();
    option->set_name(spec.name);
    switch (spec.type) {
      case search::OptionSpec::Type::kInt:
        option->set_type(apq::v1::EngineOption::TYPE_INT);
        break;
      case search::OptionSpec::Type::kDouble:
        option->set_type(apq::v1::EngineOption::TYPE_DOUBLE);
        break;
      case search::OptionSpec::Type::kBool:
        option->set_type(apq::v1::EngineOption::TYPE_BOOL);
        break;
      case search::OptionSpec::Type::kChoice:
        option->set_type(apq::v1::EngineOption::TYPE_CHOICE);
        break;
    }
    option->set_description(spec.description);
    *option->mutable_default_value() = OptionValueToProto(spec.default_value);
    option->set_default_from(spec.default_from);
    if (spec.type == search::OptionSpec::Type::kInt ||
        spec.type == search::OptionSpec::Type::kDouble) {
      if (spec.min > -search::kNoBound) option->set_min(spec.min);
      if (spec.max < search::kNoBound) option->set_max(spec.max);
      option->set_min_exclusive(spec.min_exclusive);
    }
    for (const std::string& choice : spec.choices) option->add_choices(choice);
  }
  return proto;
}

}  // namespace apq::server
