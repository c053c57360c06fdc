#include "search/iqp_engine.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "hwmodels/cost_terms.h"
#include "search/cross_layer_sensitivity.h"
#include "search/quadratic_allocation.h"

namespace apq::search {
namespace {

constexpr char kCheckpointTag[] = "iqp1";

bool IsActivationBitsGene(const oface::GeneSpec& gene) {
  return oface::IsBitsGene(gene) && gene.name.find("_a_bits_setting[") != std::string::npos;
}

// The allocation problem of the architecture the space is held to.
struct Allocation {
  hwmodels::CostTermView view;
  // Per slot, the view's choices the allocation picks from (indices into the slot's choices).
  std::vector<std::vector<int>> kept;
  std::vector<int> reference;  // Per slot: the index into kept[s] of every width at its highest.
  std::vector<int> choices_per_slot() const {
    std::vector<int> counts;
    counts.reserve(kept.size());
    for (const std::vector<int>& slot : kept) counts.push_back(static_cast<int>(slot.size()));
    return counts;
  }
  // The network of one kept choice per slot.
  oface::Genotype Network(const std::vector<int>& policy) const {
    std::vector<int> choices(policy.size());
    for (size_t s = 0; s < policy.size(); ++s) choices[s] = kept[s][policy[s]];
    return hwmodels::ApplyChoices(view, choices);
  }
};

absl::StatusOr<Allocation> BuildAllocation(const SearchProblem& problem,
                                           const std::string& activations) {
  const oface::SearchSpace& space = *problem.space;
  oface::Genotype reference(space.genes().size());
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const oface::GeneSpec& gene = space.genes()[g];
    if (!oface::IsBitsGene(gene) && gene.choices.size() != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fixed_architecture: engine iqp allocates the bitwidths of one architecture (gene ",
          gene.name, " is free); set fixed_architecture"));
    }
    reference[g] = gene.choices.back();
  }
  reference = space.Canonical(reference);
  Allocation allocation;
  ASSIGN_OR_RETURN(allocation.view, hwmodels::DecomposeCost(*problem.cost_model, reference,
                                                            oface::CostSplit::kBitwidths));
  if (allocation.view.slots.empty()) {
    return absl::FailedPreconditionError(
        "fixed_architecture: the network has no bitwidths to allocate");
  }
  // "highest": activations at their highest; a width: every activation at it; "searched":
  // every setting.
  int activation_width = 0;
  if (activations != "highest" && activations != "searched") {
    activation_width = std::stoi(activations);
  }
  for (const hwmodels::PricedSlot& slot : allocation.view.slots) {
    const auto is_activation = [&](size_t g) {
      return IsActivationBitsGene(space.genes()[slot.genes[g]]);
    };
    // The highest value of each of the slot's genes among its choices.
    std::vector<int> highest(slot.genes.size(), 0);
    for (const hwmodels::PricedChoice& choice : slot.choices) {
      for (size_t g = 0; g < slot.genes.size(); ++g) {
        highest[g] = std::max(highest[g], choice.values[g]);
      }
    }
    std::vector<int> kept;
    for (size_t c = 0; c < slot.choices.size(); ++c) {
      bool keep = true;
      for (size_t g = 0; g < slot.genes.size(); ++g) {
        if (!is_activation(g)) continue;
        const int value = slot.choices[c].values[g];
        if (activations == "highest") keep = keep && value == highest[g];
        if (activation_width > 0) keep = keep && value == activation_width;
      }
      if (keep) kept.push_back(static_cast<int>(c));
    }
    if (kept.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("engine.options.activations: slot ", slot.name,
                                                     " has no activation width ", activations));
    }
    // The reference: the kept setting with every gene at its highest among the kept ones.
    std::vector<int> top(slot.genes.size(), 0);
    for (const int c : kept) {
      for (size_t g = 0; g < slot.genes.size(); ++g) {
        top[g] = std::max(top[g], slot.choices[c].values[g]);
      }
    }
    int reference = -1;
    for (size_t k = 0; k < kept.size(); ++k) {
      bool all_top = true;
      for (size_t g = 0; g < slot.genes.size(); ++g) {
        all_top = all_top && slot.choices[kept[k]].values[g] == top[g];
      }
      if (all_top) reference = static_cast<int>(k);
    }
    if (reference < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "slot ", slot.name, ": no setting has every width at its highest to measure against"));
    }
    allocation.kept.push_back(std::move(kept));
    allocation.reference.push_back(reference);
  }
  return allocation;
}

// One budget row per budget the problem sets.
std::vector<AllocationBudget> AllocationBudgets(const SearchProblem& problem,
                                                const Allocation& allocation) {
  struct Metric {
    const char* name;
    std::optional<double> limit;
    double (*cost)(const hwmodels::NetworkCost&);
  };
  const Metric metrics[] = {
      {"max_latency_ms", problem.budgets.max_latency_ms,
       [](const hwmodels::NetworkCost& c) { return c.latency_ms; }},
      {"max_energy_mj", problem.budgets.max_energy_mj,
       [](const hwmodels::NetworkCost& c) { return c.energy_mj; }},
      {"max_size_mb", problem.budgets.max_size_mb,
       [](const hwmodels::NetworkCost& c) { return c.size_mb; }},
      {"max_bitops", problem.budgets.max_bitops,
       [](const hwmodels::NetworkCost& c) { return c.bitops; }},
  };
  std::vector<AllocationBudget> budgets;
  for (const Metric& metric : metrics) {
    if (!metric.limit.has_value()) continue;
    AllocationBudget budget;
    budget.name = metric.name;
    budget.limit = *metric.limit;
    budget.fixed = metric.cost(allocation.view.fixed);
    for (size_t s = 0; s < allocation.kept.size(); ++s) {
      for (const int c : allocation.kept[s]) {
        budget.costs.push_back(metric.cost(allocation.view.slots[s].choices[c].cost));
      }
    }
    budgets.push_back(std::move(budget));
  }
  return budgets;
}

std::string SerializeLosses(const std::vector<double>& losses, size_t total) {
  std::string text = absl::StrCat(kCheckpointTag, "\n", total, "\n");
  for (const double loss : losses) absl::StrAppend(&text, absl::StrFormat("%.17g", loss), "\n");
  return text;
}

absl::StatusOr<std::vector<double>> ParseLosses(absl::string_view checkpoint, size_t total) {
  const std::vector<absl::string_view> lines = absl::StrSplit(checkpoint, '\n', absl::SkipEmpty());
  size_t stored_total = 0;
  if (lines.size() < 2 || lines[0] != kCheckpointTag ||
      !absl::SimpleAtoi(lines[1], &stored_total) || stored_total != total ||
      lines.size() - 2 > total) {
    return absl::DataLossError("iqp checkpoint: not one of this allocation's measurements");
  }
  std::vector<double> losses;
  for (size_t i = 2; i < lines.size(); ++i) {
    double loss = 0;
    if (!absl::SimpleAtod(lines[i], &loss) || !std::isfinite(loss)) {
      return absl::DataLossError("iqp checkpoint: a loss is corrupt");
    }
    losses.push_back(loss);
  }
  return losses;
}

// Evaluations done after measurement step `step` (0-based) of `total`.
size_t EndOfStep(int step, size_t total) {
  return total * static_cast<size_t>(step + 1) / kIqpMeasurementSteps;
}

class IqpEngine final : public Engine {
 public:
  IqpEngine() : specs_(Specs()) {}

  std::string name() const override { return kIqpEngineName; }
  std::string description() const override {
    return "bit allocation of one architecture (fixed_architecture) as CLADO: measured "
           "single and pairwise loss changes on the supernet, then an integer quadratic "
           "program solved by CBC under the budgets";
  }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }
  int TotalSteps(const EngineOptions& /*options*/) const override { return kIqpMeasurementSteps; }
  std::optional<int64_t> PlannedCandidates(const EngineOptions& /*options*/) const override {
    return 1;
  }

  absl::Status CheckProblem(const SearchProblem& problem,
                            const EngineOptions& options) const override {
    if (problem.objective != Objective::kMaxAccuracy) {
      return absl::InvalidArgumentError(
          "objective: engine iqp returns one network; use OBJECTIVE_MAX_ACCURACY");
    }
    if (problem.policy_losses == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("space: engine iqp measures networks on the space's trained supernet; ",
                       problem.space->name(), " has none"));
    }
    ASSIGN_OR_RETURN(const Allocation allocation,
                     BuildAllocation(problem, ChoiceOption(options, "activations")));
    const int evaluations =
        SensitivityEvaluations(allocation.choices_per_slot(), BoolOption(options, "cross_layer"));
    if (evaluations > IntOption(options, "max_evaluations")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "engine.options.max_evaluations: the sensitivity of this architecture takes ",
          evaluations, " loss evaluations, more than ", IntOption(options, "max_evaluations"),
          " (activations \"highest\" or cross_layer false take fewer)"));
    }
    QuadraticAllocation shape;
    shape.choices_per_slot = allocation.choices_per_slot();
    shape.budgets = AllocationBudgets(problem, allocation);
    for (const AllocationBudget& budget : shape.budgets) {
      double cheapest = budget.fixed;
      size_t offset = 0;
      for (const int choices : shape.choices_per_slot) {
        cheapest += *std::min_element(budget.costs.begin() + offset,
                                      budget.costs.begin() + offset + choices);
        offset += choices;
      }
      if (cheapest > budget.limit) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "budgets.%s: %.6g is below the cheapest bit policy of this architecture (%.6g)",
            budget.name, budget.limit, cheapest));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<EngineResult> Run(const SearchProblem& problem, const EngineOptions& options,
                                   uint64_t seed, const StepCallback& on_step,
                                   const CancelCheck& cancelled,
                                   absl::string_view resume_checkpoint) const override {
    RETURN_IF_ERROR(CheckProblem(problem, options));
    const bool cross_layer = BoolOption(options, "cross_layer");
    ASSIGN_OR_RETURN(const Allocation allocation,
                     BuildAllocation(problem, ChoiceOption(options, "activations")));
    const std::vector<int> choices = allocation.choices_per_slot();
    const std::vector<std::vector<int>> policies =
        SensitivityPolicies(choices, allocation.reference, cross_layer);
    std::vector<double> losses;
    if (!resume_checkpoint.empty()) {
      ASSIGN_OR_RETURN(losses, ParseLosses(resume_checkpoint, policies.size()));
    }
    EngineResult result;
    int step = 0;
    while (step < kIqpMeasurementSteps && EndOfStep(step, policies.size()) <= losses.size()) {
      result.last_step = step++;
    }
    if (step < kIqpMeasurementSteps) {
      ASSIGN_OR_RETURN(std::unique_ptr<PolicyLossSession> session,
                       problem.policy_losses->Open(
                           allocation.Network(allocation.reference),
                           static_cast<int>(IntOption(options, "calibration_images")), seed));
      for (; step < kIqpMeasurementSteps; ++step) {
        const size_t end = EndOfStep(step, policies.size());
        while (losses.size() < end) {
          if (cancelled && cancelled()) {
            result.cancelled = true;
            return result;
          }
          ASSIGN_OR_RETURN(const double loss,
                           session->Loss(allocation.Network(policies[losses.size()])));
          losses.push_back(loss);
        }
        if (on_step) {
          StepReport report;
          report.step = step;
          report.write_checkpoint = [&] { return SerializeLosses(losses, policies.size()); };
          RETURN_IF_ERROR(on_step(report));
        }
        result.last_step = step;
      }
    }
    if (cancelled && cancelled()) {
      result.cancelled = true;
      return result;
    }

    // The allocation: G from the measurements, the budgets, CBC.
    ASSIGN_OR_RETURN(std::vector<double> g,
                     AssembleSensitivity(choices, allocation.reference, cross_layer, losses));
    QuadraticAllocation program;
    program.choices_per_slot = choices;
    if (BoolOption(options, "clip_to_psd")) {
      ASSIGN_OR_RETURN(g, ClipToPositiveSemidefinite(g, program.num_choices()));
    }
    program.g = std::move(g);
    program.budgets = AllocationBudgets(problem, allocation);
    ASSIGN_OR_RETURN(const AllocationResult solved,
                     SolveQuadraticAllocation(
                         program, absl::Seconds(DoubleOption(options, "time_limit_s")), cancelled));
    Individual best;
    best.genotype = problem.space->Canonical(allocation.Network(solved.choice));
    best.cost = problem.cost_model->Evaluate(best.genotype);
    best.generation = kIqpMeasurementSteps;
    if (!MeetsBudgets(best.cost, problem.budgets)) {
      return absl::InternalError(
          "engine iqp: the allocated network breaks a budget when priced whole (the per-term "
          "costs and the cost model disagree)");
    }
    predictor::FeatureBatch batch;
    problem.space->ActiveFeatures(best.genotype, batch.mutable_indices());
    batch.EndSample();
    std::vector<float> accuracy;
    RETURN_IF_ERROR(problem.predictor->Predict(batch, &accuracy));
    best.accuracy = accuracy.at(0);
    if (on_step) {
      StepReport report;
      report.step = kIqpMeasurementSteps;
      report.scored = absl::MakeConstSpan(&best, 1);
      report.candidates_evaluated = 1;
      report.best = &best;
      report.best_index_in_step = 0;
      report.write_checkpoint = [&] { return SerializeLosses(losses, policies.size()); };
      report.final_step = true;
      RETURN_IF_ERROR(on_step(report));
    }
    result.best = best;
    result.last_step = kIqpMeasurementSteps;
    result.candidates_evaluated = 1;
    result.predictions = 1;
    return result;
  }

 private:
  static std::vector<OptionSpec> Specs() {
    std::vector<OptionSpec> specs;
    OptionSpec images;
    images.name = "calibration_images";
    images.type = OptionSpec::Type::kInt;
    images.default_value = int64_t{512};
    images.min = 1;
    images.max = 50000;  // The train split (oface/fashion_mnist.h).
    images.description = "train-split images the losses are measured on";
    specs.push_back(images);
    OptionSpec cross;
    cross.name = "cross_layer";
    cross.type = OptionSpec::Type::kBool;
    cross.default_value = true;
    cross.description =
        "measure every pair of changes (CLADO); false: single changes only, the "
        "independent-sensitivity baseline";
    specs.push_back(cross);
    OptionSpec activations;
    activations.name = "activations";
    activations.type = OptionSpec::Type::kChoice;
    activations.default_value = std::string("highest");
    activations.choices = {"highest", "searched", "2", "3", "4", "6", "8"};
    activations.description =
        "highest: allocate weight widths with activations at their highest (as CLADO); a "
        "width: with every activation at it (a slot without it is refused); searched: every "
        "(weight, activation) setting";
    specs.push_back(activations);
    OptionSpec time_limit;
    time_limit.name = "time_limit_s";
    time_limit.type = OptionSpec::Type::kDouble;
    time_limit.default_value = 60.0;
    time_limit.min = 0;
    time_limit.min_exclusive = true;
    time_limit.max = 3600;
    time_limit.description = "the solver's time limit; the best policy found by then is returned";
    specs.push_back(time_limit);
    OptionSpec evaluations;
    evaluations.name = "max_evaluations";
    evaluations.type = OptionSpec::Type::kInt;
    evaluations.default_value = int64_t{20000};
    evaluations.min = 1;
    evaluations.max = 1000000;
    evaluations.description =
        "loss evaluations the sensitivity may take (the job is refused above)";
    specs.push_back(evaluations);
    OptionSpec clip;
    clip.name = "clip_to_psd";
    clip.type = OptionSpec::Type::kBool;
    clip.default_value = true;
    clip.description = "clip G's negative eigenvalues (positive semi-definite, as CLADO)";
    specs.push_back(clip);
    return specs;
  }

  const std::vector<OptionSpec> specs_;
};

}  // namespace

std::unique_ptr<Engine> NewIqpEngine() { return std::make_unique<IqpEngine>(); }

}  // namespace apq::search
