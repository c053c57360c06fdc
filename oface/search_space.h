// The search-space interface shared by every space (ofa_mbv3, apq_mbv2, ...).
//
// A point of a space is a Genotype: one integer value per gene, in the space's gene
// order. Values are the real quantities (kernel size 5, expand ratio 4, resolution 192,
// mid channels 96, bits 6), never indices into the choice lists, so a genotype reads the
// same in logs, JSON and the database.
//
// Thread safety: a SearchSpace is immutable after construction; every const method may be
// called concurrently.
#ifndef APQ_OFACE_SEARCH_SPACE_H_
#define APQ_OFACE_SEARCH_SPACE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "oface/rng.h"

namespace apq::oface {

using Genotype = std::vector<int>;

struct GeneSpec {
  std::string name;          // As it appears in errors and JSON paths, e.g. "ks[3]", "d[1]", "r".
  std::vector<int> choices;  // Allowed values, ascending, never empty.
};

// Whether a gene is a bitwidth of a quantized space (APQ's "*_bits_setting[i]" genes).
bool IsBitsGene(const GeneSpec& gene);

// Mutation resamples each group's genes together with the group's probability.
enum class MutationKind {
  kResolution,  // The input resolution (OFA mutates it with its own probability).
  kBlock,       // Per-block genes (kernel, width, bits of one block).
  kDepth,       // One stage's depth.
};

struct MutationGroup {
  MutationKind kind;
  std::vector<int> genes;  // Indices into genes().
};

// Costs that follow from a quantized network's shape and bitwidths alone (no device table).
struct StaticCost {
  // Sum over weight tensors of parameters x weight bits / 8 (see each space for what counts).
  double size_bytes = 0.0;
  // Multiply-accumulates of one inference at batch 1.
  int64_t macs = 0;
  // Sum over layers of MACs x weight bits x activation bits.
  int64_t bitops = 0;
};

// How SearchSpace::DecomposeCosts splits a network's cost into independent decisions.
enum class CostSplit {
  // Given the architecture: one slot per group of an active layer's bitwidth genes that
  // selects terms of its own (apq_mbv2: the pw_w/pw_a pair prices both 1x1 convs, the dw_w/dw_a
  // pair the depthwise conv). Everything else is fixed. What a bit allocator needs.
  kBitwidths,
  // Given the genes that decide which blocks run and at what input size (the depths; OFA's
  // resolution): one slot per active block, whose choices are every rule-abiding setting of
  // the block's own genes (kernel, width and, in a quantized space, its bitwidths).
  kBlocks,
};

// One setting of a cost slot's genes and the part of the network's cost it decides. Stored
// inline up to a block's six genes and three terms: a kBlocks decomposition of apq_mbv2 has up
// to 98,712 choices, and two heap allocations each made it four times slower.
struct CostSlotChoice {
  absl::InlinedVector<int, 6> values;     // One per gene of the slot, in the slot's gene order.
  absl::InlinedVector<int32_t, 3> terms;  // Catalogue indices, in CostTerms's relative order.
  StaticCost static_cost;                 // All zero for spaces without StaticCosts.
};

struct CostSlot {
  std::string name;        // Shown in reports, e.g. "layer 3 pw", "block 7".
  std::vector<int> genes;  // Indices into SearchSpace::genes(), ascending.
  // Every setting of the genes that the space's rules allow, in lexicographic order of values.
  std::vector<CostSlotChoice> choices;
  int selected = 0;  // The choice of the genotype the decomposition was made for.
};

// Terms that two slots decide together: what a network pays where two layers meet, e.g. the
// change of precision between an int8 layer and a float one. Each case names one value of a
// gene of each slot; a network whose two slots take those values pays the case's terms. A
// network matches at most one case; matching none, it pays nothing here. Keyed by gene values
// rather than choice indices, so that a view that drops choices (oface/restricted_space.h)
// keeps it unchanged.
struct CostCouplingCase {
  int first_value = 0;
  int second_value = 0;
  std::vector<int32_t> terms;  // Catalogue indices; no static cost (no weights, no MACs).
};

struct CostCoupling {
  int first_slot = 0;   // Index into CostDecomposition::slots; first_slot < second_slot.
  int first_gene = 0;   // One of the first slot's genes.
  int second_slot = 0;  // Index into CostDecomposition::slots.
  int second_gene = 0;  // One of the second slot's genes.
  std::vector<CostCouplingCase> cases;  // Distinct (first_value, second_value) pairs.
};

struct CostDecomposition {
  std::vector<int32_t> fixed_terms;  // Paid by every network of the decomposition.
  StaticCost fixed_static_cost;
  std::vector<CostSlot> slots;
  // Empty for spaces whose every term depends on one slot (every space without a float choice
  // per layer).
  std::vector<CostCoupling> couplings;
};

// For SearchSpace implementations: sets `slot->selected` to the choice whose values are
// `genotype`'s values of the slot's genes. Precondition: exactly one choice has them.
void SelectCostSlotChoice(const Genotype& genotype, CostSlot* slot);

class SearchSpace {
 public:
  virtual ~SearchSpace() = default;

  // Registry name, e.g. "ofa_mbv3".
  virtual const std::string& name() const = 0;
  virtual const std::vector<GeneSpec>& genes() const = 0;
  virtual const std::vector<MutationGroup>& mutation_groups() const = 0;

  // Cross-gene rules beyond per-gene choices (e.g. apq_mbv2's kernel-7 / dw_a=4 ban).
  // Precondition: every value is one of its gene's choices. Cheap; used in sampling loops.
  virtual bool SatisfiesRules(const Genotype& /*genotype*/) const { return true; }
  // Called on every draw of Sample, Mutate and Crossover before SatisfiesRules: a space whose
  // rules couple genes so tightly that independent draws almost never satisfy them may redraw
  // the coupled genes here. Default: nothing (and no draw from `rng`).
  virtual void RepairDraw(Genotype& /*genotype*/, Rng& /*rng*/) const {}
  // Like SatisfiesRules, but returns INVALID_ARGUMENT naming the offending layer and field.
  virtual absl::Status CheckRules(const Genotype& /*genotype*/) const { return absl::OkStatus(); }

  // Full validation of a genotype from outside: length, each value in its choices, the
  // rules. INVALID_ARGUMENT naming the gene (e.g. "ks[3]: 4 is not one of {3, 5, 7}").
  absl::Status Validate(const Genotype& genotype) const;

  // The same network with every gene that has no effect (blocks beyond a stage's depth)
  // set to its first choice, so two genotypes of the same network compare equal.
  virtual Genotype Canonical(const Genotype& genotype) const = 0;

  // Accuracy-predictor encoding: the input is a 0/1 vector of feature_size() entries;
  // `ActiveFeatures` appends the indices of its ones in ascending order.
  virtual int feature_size() const = 0;
  virtual void ActiveFeatures(const Genotype& genotype, std::vector<int32_t>* indices) const = 0;
  // The architecture-only prefix of the encoding: features [0, arch_feature_size()) describe
  // the network without its quantization policy (what a full-precision predictor reads).
  virtual int arch_feature_size() const { return feature_size(); }

  // Cost decomposition: a network's cost is the sum, in the returned order, of cost terms
  // taken from a finite catalogue of num_cost_terms() entries, each named by the key a
  // per-layer lookup table stores it under (the table format is the space's own, e.g. OFA's
  // yaml keys prefixed with the resolution). `CostTerms` appends the catalogue indices for
  // one network, in the reference implementation's summation order.
  virtual int num_cost_terms() const = 0;
  virtual std::string CostTermKey(int term) const = 0;
  virtual void CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const = 0;

  // Model size, MACs and BitOps for spaces whose genotypes carry bitwidths; nullopt otherwise.
  // Precondition: `genotype` is valid.
  virtual std::optional<StaticCost> StaticCosts(const Genotype& /*genotype*/) const {
    return std::nullopt;
  }

  // The cost of the networks around `genotype` as a fixed part plus one term per slot (and
  // one per coupling of two slots). The networks of the decomposition are `genotype` with each
  // slot's genes set to the values of any one of its choices, slots chosen independently;
  // `genotype` itself takes each slot's `selected` choice. No gene is in two slots. For every
  // such network n:
  //   - n is valid (the space's rules never bind genes of two slots together);
  //   - CostTerms(n) is, as a multiset, fixed_terms plus the chosen choices' terms plus the
  //     terms of each coupling's case that n matches (only the order differs: CostTerms keeps
  //     the reference's summation order);
  //   - StaticCosts(n) is fixed_static_cost plus the chosen choices' static costs, exactly
  //     (integers; size_bytes in eighths of a byte, far below 2^53).
  // nullopt when the space has no such split (kBitwidths of a space without bitwidths; spaces
  // that do not implement it). Precondition: `genotype` is valid.
  virtual std::optional<CostDecomposition> DecomposeCosts(const Genotype& /*genotype*/,
                                                          CostSplit /*split*/) const {
    return std::nullopt;
  }

  // JSON in the reference implementation's own arch format (OFA: {"ks","e","d","r"}).
  // FromJson validates fully: unknown keys, wrong lengths and values outside the space are
  // INVALID_ARGUMENT naming the field.
  virtual std::string ToJson(const Genotype& genotype) const = 0;
  virtual absl::StatusOr<Genotype> FromJson(std::string_view json) const = 0;
  // That format in words, for clients writing configs (the server's DescribeSpace).
  virtual std::string ConfigFormat() const { return "JSON as the space writes it"; }
  // The rules between genes beyond each gene's choices (CheckRules), in words; none by default.
  virtual std::vector<std::string> RuleDescriptions() const { return {}; }

  // Uniform sample over each gene's choices, redrawn until the rules hold.
  Genotype Sample(Rng& rng) const;
  // Each mutation group is resampled with its probability (`resolution_probability` for
  // kResolution groups, `probability` for the others); redrawn until the rules hold.
  Genotype Mutate(const Genotype& parent, double probability, double resolution_probability,
                  Rng& rng) const;
  // Uniform per-gene crossover; redrawn until the rules hold.
  Genotype Crossover(const Genotype& first, const Genotype& second, Rng& rng) const;
};

}  // namespace apq::oface

#endif  // APQ_OFACE_SEARCH_SPACE_H_
