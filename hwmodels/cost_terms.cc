#include "hwmodels/cost_terms.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "hwmodels/precision_support.h"

namespace apq::hwmodels {
namespace {

const char* SplitName(oface::CostSplit split) {
  switch (split) {
    case oface::CostSplit::kBitwidths:
      return "bitwidths";
    case oface::CostSplit::kBlocks:
      return "blocks";
  }
  return "unknown";
}

NetworkCost PricePart(const LutCostModel& model, absl::Span<const int32_t> terms,
                      const oface::StaticCost& static_cost) {
  NetworkCost cost = model.PriceTerms(terms);
  if (model.has_size_and_bitops()) SetSizeAndBitops(static_cost, &cost);
  return cost;
}

}  // namespace

absl::StatusOr<CostTermView> DecomposeCost(const LutCostModel& model,
                                           const oface::Genotype& genotype,
                                           oface::CostSplit split) {
  const oface::SearchSpace& space = model.space();
  RETURN_IF_ERROR(space.Validate(genotype));
  std::optional<oface::CostDecomposition> decomposition = space.DecomposeCosts(genotype, split);
  if (!decomposition.has_value()) {
    return absl::UnimplementedError(
        absl::StrCat("space ", space.name(), " has no ", SplitName(split), " split of its costs"));
  }
  CostTermView view;
  view.genotype = genotype;
  view.split = split;
  view.fixed = PricePart(model, decomposition->fixed_terms, decomposition->fixed_static_cost);
  view.slots.reserve(decomposition->slots.size());
  for (oface::CostSlot& slot : decomposition->slots) {
    PricedSlot priced;
    priced.name = std::move(slot.name);
    priced.genes = std::move(slot.genes);
    priced.choices.reserve(slot.choices.size());
    // Settings the device does not execute are no choice; the genotype's own must be one.
    for (size_t c = 0; c < slot.choices.size(); ++c) {
      oface::CostSlotChoice& choice = slot.choices[c];
      NetworkCost cost = PricePart(model, choice.terms, choice.static_cost);
      if (!cost.executable) {
        if (static_cast<int>(c) == slot.selected) {
          return absl::InvalidArgumentError(
              absl::StrCat(priced.name, ": the device does not execute this setting (it runs ",
                           DescribePrecisions(model.precisions()), ")"));
        }
        continue;
      }
      if (static_cast<int>(c) == slot.selected) {
        priced.selected = static_cast<int>(priced.choices.size());
      }
      priced.choices.push_back({std::move(choice.values), cost});
    }
    view.slots.push_back(std::move(priced));
  }
  const auto position_of = [&](int slot, int gene) {
    const std::vector<int>& genes = view.slots[slot].genes;
    return static_cast<int>(std::find(genes.begin(), genes.end(), gene) - genes.begin());
  };
  view.couplings.reserve(decomposition->couplings.size());
  for (const oface::CostCoupling& coupling : decomposition->couplings) {
    PricedCoupling priced{coupling.first_slot,
                          position_of(coupling.first_slot, coupling.first_gene),
                          coupling.second_slot,
                          position_of(coupling.second_slot, coupling.second_gene),
                          {}};
    for (const oface::CostCouplingCase& one : coupling.cases) {
      NetworkCost cost = model.PriceTerms(one.terms);
      // A change the device does not execute joins layers it does not execute either: no
      // choice left in the view matches the case.
      if (!cost.executable) continue;
      priced.cases.push_back({one.first_value, one.second_value, cost});
    }
    view.couplings.push_back(std::move(priced));
  }
  return view;
}

std::vector<int> SelectedChoices(const CostTermView& view) {
  std::vector<int> choices;
  choices.reserve(view.slots.size());
  for (const PricedSlot& slot : view.slots) choices.push_back(slot.selected);
  return choices;
}

NetworkCost TotalCost(const CostTermView& view, absl::Span<const int> choices) {
  assert(choices.size() == view.slots.size());
  NetworkCost total = view.fixed;
  for (size_t s = 0; s < view.slots.size(); ++s) {
    const NetworkCost& part = view.slots[s].choices[choices[s]].cost;
    total.latency_ms += part.latency_ms;
    total.energy_mj += part.energy_mj;
    total.size_mb += part.size_mb;
    total.bitops += part.bitops;
    total.modelled = total.modelled || part.modelled;
  }
  for (const PricedCoupling& coupling : view.couplings) {
    const int first = view.slots[coupling.first_slot]
                          .choices[choices[coupling.first_slot]]
                          .values[coupling.first_position];
    const int second = view.slots[coupling.second_slot]
                           .choices[choices[coupling.second_slot]]
                           .values[coupling.second_position];
    for (const PricedCouplingCase& one : coupling.cases) {
      if (one.first_value != first || one.second_value != second) continue;
      total.latency_ms += one.cost.latency_ms;
      total.energy_mj += one.cost.energy_mj;
      total.modelled = total.modelled || one.cost.modelled;
      break;
    }
  }
  return total;
}

CostTermView SeparableUpperBound(CostTermView view) {
  const std::vector<PricedCoupling> couplings = std::move(view.couplings);
  view.couplings.clear();
  CostTermView& bound = view;
  for (const PricedCoupling& coupling : couplings) {
    PricedSlot& second = bound.slots[coupling.second_slot];
    for (PricedChoice& choice : second.choices) {
      const int value = choice.values[coupling.second_position];
      double latency_ms = 0.0;
      double energy_mj = 0.0;
      bool modelled = false;
      for (const PricedCouplingCase& one : coupling.cases) {
        if (one.second_value != value) continue;
        latency_ms = std::max(latency_ms, one.cost.latency_ms);
        energy_mj = std::max(energy_mj, one.cost.energy_mj);
        modelled = modelled || one.cost.modelled;
      }
      choice.cost.latency_ms += latency_ms;
      choice.cost.energy_mj += energy_mj;
      choice.cost.modelled = choice.cost.modelled || modelled;
    }
  }
  return bound;
}

oface::Genotype ApplyChoices(const CostTermView& view, absl::Span<const int> choices) {
  assert(choices.size() == view.slots.size());
  oface::Genotype genotype = view.genotype;
  for (size_t s = 0; s < view.slots.size(); ++s) {
    const PricedSlot& slot = view.slots[s];
    const auto& values = slot.choices[choices[s]].values;
    for (size_t g = 0; g < slot.genes.size(); ++g) genotype[slot.genes[g]] = values[g];
  }
  return genotype;
}

}  // namespace apq::hwmodels
