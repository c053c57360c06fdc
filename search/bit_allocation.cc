#include "search/bit_allocation.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace apq::search {
namespace {

bool IsActivationBitsGene(const oface::GeneSpec& gene) {
  return oface::IsBitsGene(gene) && gene.name.find("_a_bits_setting[") != std::string::npos;
}

}  // namespace

std::vector<int> BitAllocation::choices_per_slot() const {
  std::vector<int> counts;
  counts.reserve(kept.size());
  for (const std::vector<int>& slot : kept) counts.push_back(static_cast<int>(slot.size()));
  return counts;
}

oface::Genotype BitAllocation::Network(const std::vector<int>& policy) const {
  std::vector<int> choices(policy.size());
  for (size_t s = 0; s < policy.size(); ++s) choices[s] = kept[s][policy[s]];
  return hwmodels::ApplyChoices(view, choices);
}

int BitAllocation::GeneValue(int slot, int k, int gene) const {
  const hwmodels::PricedSlot& priced = view.slots[slot];
  for (size_t g = 0; g < priced.genes.size(); ++g) {
    if (priced.genes[g] == gene) return priced.choices[kept[slot][k]].values[g];
  }
  return -1;
}

absl::StatusOr<BitAllocation> BuildBitAllocation(const SearchProblem& problem,
                                                 const std::string& activations,
                                                 const std::string& engine) {
  const oface::SearchSpace& space = *problem.space;
  oface::Genotype reference(space.genes().size());
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const oface::GeneSpec& gene = space.genes()[g];
    if (!oface::IsBitsGene(gene) && gene.choices.size() != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("fixed_architecture: engine ", engine,
                       " allocates the bitwidths of one architecture (gene ", gene.name,
                       " is free); set fixed_architecture"));
    }
    reference[g] = gene.choices.back();
  }
  reference = space.Canonical(reference);
  BitAllocation allocation;
  // Slot by slot: changes of precision between layers are charged at their worst
  // (SeparableUpperBound), so a policy within the budgets here is within them whole.
  ASSIGN_OR_RETURN(
      hwmodels::CostTermView view,
      hwmodels::DecomposeCost(*problem.cost_model, reference, oface::CostSplit::kBitwidths));
  allocation.view = hwmodels::SeparableUpperBound(std::move(view));
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
    int weight_gene = -1;
    for (size_t g = 0; g < slot.genes.size(); ++g) {
      if (oface::IsBitsGene(space.genes()[slot.genes[g]]) && !is_activation(g)) {
        weight_gene = slot.genes[g];
      }
    }
    allocation.kept.push_back(std::move(kept));
    allocation.reference.push_back(reference);
    allocation.weight_gene.push_back(weight_gene);
  }
  return allocation;
}

std::vector<AllocationBudget> AllocationBudgets(const SearchProblem& problem,
                                                const BitAllocation& allocation) {
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

absl::Status CheckOneNetworkWithSupernet(const SearchProblem& problem, bool has_supernet,
                                         const std::string& engine, const std::string& uses) {
  if (problem.objective != Objective::kMaxAccuracy) {
    return absl::InvalidArgumentError(absl::StrCat(
        "objective: engine ", engine, " returns one network; use OBJECTIVE_MAX_ACCURACY"));
  }
  if (!has_supernet) {
    return absl::FailedPreconditionError(absl::StrCat("space: engine ", engine, " ", uses,
                                                      " on the space's trained supernet; ",
                                                      problem.space->name(), " has none"));
  }
  return absl::OkStatus();
}

absl::Status CheckCheapestPolicyFits(const BitAllocation& allocation,
                                     const std::vector<AllocationBudget>& budgets) {
  const std::vector<int> choices_per_slot = allocation.choices_per_slot();
  for (const AllocationBudget& budget : budgets) {
    double cheapest = budget.fixed;
    size_t offset = 0;
    for (const int choices : choices_per_slot) {
      cheapest +=
          *std::min_element(budget.costs.begin() + offset, budget.costs.begin() + offset + choices);
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

absl::StatusOr<Individual> PriceAndScore(const SearchProblem& problem,
                                         const oface::Genotype& genotype, int step,
                                         const std::string& engine) {
  Individual individual;
  individual.genotype = problem.space->Canonical(genotype);
  individual.cost = problem.cost_model->Evaluate(individual.genotype);
  individual.generation = step;
  if (!MeetsBudgets(individual.cost, problem.budgets)) {
    return absl::InternalError(absl::StrCat(
        "engine ", engine,
        ": the allocated network breaks a budget when priced whole (the per-term costs and "
        "the cost model disagree)"));
  }
  predictor::FeatureBatch batch;
  problem.space->ActiveFeatures(individual.genotype, batch.mutable_indices());
  batch.EndSample();
  std::vector<float> accuracy;
  RETURN_IF_ERROR(problem.predictor->Predict(batch, &accuracy));
  individual.accuracy = accuracy.at(0);
  return individual;
}

}  // namespace apq::search
