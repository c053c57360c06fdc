// A per-term view of a LutCostModel: the cost of a network as a fixed part plus one independent
// term per decision slot, with the cost of every alternative of every slot. For allocators that
// choose slot by slot: an integer program over per-layer bitwidths (as in CLADO), a Lagrangian
// allocator.
//
// A view is made for one genotype g and one oface::CostSplit (SearchSpace::DecomposeCosts):
//   kBitwidths  given g's architecture, the bitwidth pairs of each active layer are the slots
//               (MBConv spaces: "layer i pw" prices both 1x1 convs, "layer i dw" the depthwise
//               conv); the fixed part is the stem's and the tail's terms.
//   kBlocks     given g's depths (and OFA's resolution), the active blocks are the slots, and a
//               choice is any setting of a block's genes (kernel, width, bitwidths).
// The networks a view covers are ApplyChoices(view, c) for every c (one choice index per slot,
// slots chosen independently); each is valid, and ApplyChoices(view, SelectedChoices(view)) is
// g. For each, with n = model.Evaluate(ApplyChoices(view, c)) and t = TotalCost(view, c):
//   - t.latency_ms and t.energy_mj are n's up to summation order. Both add the same
//     non-negative table entries; Evaluate adds them one by one in the reference's order, the
//     view sums each part (the fixed part, each choice, each coupling case) on its own and then
//     the parts in slot order, then the couplings. For N terms they differ by at most 2 N 2^-53
//     relative: below 1e-13 here.
//   - t.bitops is n.bitops exactly (integers); t.size_mb is n.size_mb up to the rounding of
//     dividing each part's bytes by 10^6.
//   - t.modelled is n.modelled; has_energy and has_size_and_bitops are the model's.
// `fixed` and each choice's `cost` are the costs of that part of the network alone.
//
// Couplings: in a space with a float choice per layer, a change of precision between two
// layers depends on two slots (oface::CostCoupling); the view prices them apart and TotalCost
// adds them, so the equalities above hold with them.
//
// What a view cannot express: decisions that change which terms exist. The stage depths (and
// OFA's resolution, which changes every key) are the condition of a view; an allocator
// enumerates them outside (apq_mbv2 has 3^5 depth vectors). Within a kBlocks view the choices of
// an apq_mbv2 layer are its kernel x width x bits settings, 216 per mid width (98,712 when every
// layer runs; some 10 ms to build): fine for an offline solver, too many to build per search
// candidate. A kBitwidths view of apq_mbv2 takes some 25 us.
//
// Thread safety: DecomposeCost may be called concurrently; a view is a plain value.
#ifndef APQ_HWMODELS_COST_TERMS_H_
#define APQ_HWMODELS_COST_TERMS_H_

#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/search_space.h"

namespace apq::hwmodels {

struct PricedChoice {
  // The slot's gene values, in the slot's gene order (inline, as oface::CostSlotChoice's).
  absl::InlinedVector<int, 6> values;
  NetworkCost cost;  // Of the part of the network this choice decides, alone.
};

struct PricedSlot {
  std::string name;        // E.g. "layer 3 pw", "block 7".
  std::vector<int> genes;  // Indices into the space's genes(), ascending; in no other slot.
  // Every setting the space's rules allow, in lexicographic order of values.
  std::vector<PricedChoice> choices;
  int selected = 0;  // The view's genotype's choice.
};

// What a network pays where two slots meet (oface::CostCoupling), priced: a network whose slot
// first_slot's gene at first_position takes first_value, and whose second slot's takes
// second_value, pays the case's cost; a network matching no case pays nothing. Latency and
// energy only (size and BitOps are zero: a change of precision has no weights).
struct PricedCouplingCase {
  int first_value = 0;
  int second_value = 0;
  NetworkCost cost;
};

struct PricedCoupling {
  int first_slot = 0;
  int first_position = 0;  // Index into the first slot's genes (and its choices' values).
  int second_slot = 0;
  int second_position = 0;
  std::vector<PricedCouplingCase> cases;
};

struct CostTermView {
  oface::Genotype genotype;  // The genotype the view was made for.
  oface::CostSplit split = oface::CostSplit::kBitwidths;
  NetworkCost fixed;  // What every network of the view pays.
  std::vector<PricedSlot> slots;
  // Costs two slots decide together (the changes of precision of a space with a float choice
  // per layer); empty for every other space. Slot-by-slot allocators take
  // SeparableUpperBound(view).
  std::vector<PricedCoupling> couplings;
};

// The view of `genotype` under `split`, priced by `model` (table entries, or the model's
// fallback estimator, which makes a part `modelled`). INVALID_ARGUMENT (naming the gene) when
// `genotype` is not valid for the model's space; UNIMPLEMENTED when the space has no such split
// (kBitwidths of a space without bitwidths).
absl::StatusOr<CostTermView> DecomposeCost(const LutCostModel& model,
                                           const oface::Genotype& genotype, oface::CostSplit split);

// Each slot's `selected` choice.
std::vector<int> SelectedChoices(const CostTermView& view);

// `view.fixed` plus the cost of choices[s] of slot s, added in slot order, plus the case of
// each coupling that the choices match, in coupling order.
// Precondition: one index per slot, each within its slot's choices.
NetworkCost TotalCost(const CostTermView& view, absl::Span<const int> choices);

// `view` without couplings, each charged to its second slot's choices at the most any choice
// of its first slot can make it cost with them (latency and energy each at its own maximum).
// For every choice vector c: TotalCost(bound, c) >= TotalCost(view, c) in latency and energy
// (equal when `view` has no couplings), and size and BitOps are equal. So a slot-by-slot
// allocator that keeps the bound within a budget keeps the network within it; it may miss
// networks that fit only because neighbouring layers share a precision.
CostTermView SeparableUpperBound(CostTermView view);

// The view's genotype with each slot's genes set to the values of its chosen choice.
// Precondition: as TotalCost.
oface::Genotype ApplyChoices(const CostTermView& view, absl::Span<const int> choices);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_COST_TERMS_H_
