#include "oface/restricted_space.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace apq::oface {
namespace {

// The base with each gene's choices replaced by a non-empty subset of them.
class RestrictedSpace : public SearchSpace {
 public:
  RestrictedSpace(const SearchSpace& base, std::string name, std::vector<GeneSpec> genes)
      : base_(base), name_(std::move(name)), genes_(std::move(genes)) {}
  // With a rule of its own: each (weight gene, activation gene) of `pair_genes` takes a pair
  // `allowed` accepts.
  RestrictedSpace(const SearchSpace& base, std::string name, std::vector<GeneSpec> genes,
                  std::vector<std::pair<int, int>> pair_genes,
                  std::function<bool(int, int)> allowed)
      : base_(base),
        name_(std::move(name)),
        genes_(std::move(genes)),
        pair_genes_(std::move(pair_genes)),
        allowed_(std::move(allowed)) {
    for (const auto& [w, a] : pair_genes_) {
      std::vector<std::pair<int, int>>& pairs = allowed_pairs_.emplace_back();
      for (const int weight : genes_[w].choices) {
        for (const int activation : genes_[a].choices) {
          if (allowed_(weight, activation)) pairs.emplace_back(weight, activation);
        }
      }
    }
  }

  const std::string& name() const override { return name_; }
  const std::vector<GeneSpec>& genes() const override { return genes_; }
  const std::vector<MutationGroup>& mutation_groups() const override {
    return base_.mutation_groups();
  }
  // A layer's broken pair is redrawn among the allowed ones: with a rule per layer, independent
  // draws would satisfy all of them with a probability that vanishes with the depth.
  void RepairDraw(Genotype& genotype, Rng& rng) const override {
    base_.RepairDraw(genotype, rng);
    for (size_t p = 0; p < pair_genes_.size(); ++p) {
      const auto [w, a] = pair_genes_[p];
      if (allowed_(genotype[w], genotype[a])) continue;
      const std::vector<std::pair<int, int>>& allowed = allowed_pairs_[p];
      const std::pair<int, int> drawn = allowed[rng.Uniform(static_cast<uint32_t>(allowed.size()))];
      genotype[w] = drawn.first;
      genotype[a] = drawn.second;
    }
  }
  bool SatisfiesRules(const Genotype& genotype) const override {
    for (const auto& [w, a] : pair_genes_) {
      if (!allowed_(genotype[w], genotype[a])) return false;
    }
    return base_.SatisfiesRules(genotype);
  }
  absl::Status CheckRules(const Genotype& genotype) const override {
    for (const auto& [w, a] : pair_genes_) {
      if (!allowed_(genotype[w], genotype[a])) {
        return absl::InvalidArgumentError(absl::StrCat(genes_[w].name, ", ", genes_[a].name, ": W",
                                                       genotype[w], "A", genotype[a],
                                                       " is not a pair of ", name_));
      }
    }
    return base_.CheckRules(genotype);
  }
  // The base's canonical form, with the genes it resets (inactive layers) kept inside this
  // view's choices, so that a canonical genotype is a genotype of the view.
  Genotype Canonical(const Genotype& genotype) const override {
    Genotype canonical = base_.Canonical(genotype);
    for (size_t i = 0; i < genes_.size(); ++i) {
      const std::vector<int>& choices = genes_[i].choices;
      if (!std::binary_search(choices.begin(), choices.end(), canonical[i])) {
        canonical[i] = choices.front();
      }
    }
    return canonical;
  }
  int feature_size() const override { return base_.feature_size(); }
  void ActiveFeatures(const Genotype& genotype, std::vector<int32_t>* indices) const override {
    base_.ActiveFeatures(genotype, indices);
  }
  int arch_feature_size() const override { return base_.arch_feature_size(); }
  int num_cost_terms() const override { return base_.num_cost_terms(); }
  std::string CostTermKey(int term) const override { return base_.CostTermKey(term); }
  void CostTerms(const Genotype& genotype, std::vector<int32_t>* terms) const override {
    base_.CostTerms(genotype, terms);
  }
  std::optional<StaticCost> StaticCosts(const Genotype& genotype) const override {
    return base_.StaticCosts(genotype);
  }
  // The base's decomposition without the choices that leave this view's gene choices.
  std::optional<CostDecomposition> DecomposeCosts(const Genotype& genotype,
                                                  CostSplit split) const override {
    std::optional<CostDecomposition> decomposition = base_.DecomposeCosts(genotype, split);
    if (!decomposition.has_value()) return std::nullopt;
    for (CostSlot& slot : decomposition->slots) {
      const auto value_of = [&](const CostSlotChoice& choice, int gene) -> std::optional<int> {
        for (size_t g = 0; g < slot.genes.size(); ++g) {
          if (slot.genes[g] == gene) return choice.values[g];
        }
        return std::nullopt;
      };
      const auto outside = [&](const CostSlotChoice& choice) {
        for (size_t g = 0; g < slot.genes.size(); ++g) {
          const std::vector<int>& choices = genes_[slot.genes[g]].choices;
          if (!std::binary_search(choices.begin(), choices.end(), choice.values[g])) return true;
        }
        for (const auto& [w, a] : pair_genes_) {
          const std::optional<int> weight = value_of(choice, w);
          const std::optional<int> activation = value_of(choice, a);
          if (weight && activation && !allowed_(*weight, *activation)) return true;
        }
        return false;
      };
      slot.choices.erase(std::remove_if(slot.choices.begin(), slot.choices.end(), outside),
                         slot.choices.end());
      SelectCostSlotChoice(genotype, &slot);
    }
    return decomposition;
  }
  std::string ToJson(const Genotype& genotype) const override { return base_.ToJson(genotype); }
  std::string ConfigFormat() const override { return base_.ConfigFormat(); }
  std::vector<std::string> RuleDescriptions() const override { return base_.RuleDescriptions(); }
  // The base's reading, then this view's choices: a config with other bits is outside it.
  absl::StatusOr<Genotype> FromJson(std::string_view json) const override {
    ASSIGN_OR_RETURN(Genotype genotype, base_.FromJson(json));
    RETURN_IF_ERROR(Validate(genotype));
    return genotype;
  }

 private:
  const SearchSpace& base_;
  const std::string name_;
  std::vector<GeneSpec> genes_;
  std::vector<std::pair<int, int>> pair_genes_;  // Empty: no pair rule.
  std::function<bool(int, int)> allowed_;
  std::vector<std::vector<std::pair<int, int>>> allowed_pairs_;  // Per pair_genes_ entry.
};

}  // namespace

absl::StatusOr<std::unique_ptr<SearchSpace>> NewUniformBitsSpace(const SearchSpace& base,
                                                                 int bits) {
  bool has_bits = false;
  for (const GeneSpec& gene : base.genes()) {
    if (!IsBitsGene(gene)) continue;
    has_bits = true;
    if (!std::binary_search(gene.choices.begin(), gene.choices.end(), bits)) {
      return absl::InvalidArgumentError(absl::StrCat("uniform_bits: ", bits, " is not a choice of ",
                                                     gene.name, " {",
                                                     absl::StrJoin(gene.choices, ", "), "}"));
    }
  }
  if (!has_bits) {
    return absl::InvalidArgumentError(
        absl::StrCat("uniform_bits: space ", base.name(), " has no bitwidths to fix"));
  }
  std::vector<GeneSpec> genes = base.genes();
  for (GeneSpec& gene : genes) {
    if (IsBitsGene(gene)) gene.choices = {bits};
  }
  return std::make_unique<RestrictedSpace>(base, absl::StrCat(base.name(), "@w", bits, "a", bits),
                                           std::move(genes));
}

absl::StatusOr<std::unique_ptr<SearchSpace>> NewFixedArchitectureSpace(
    const SearchSpace& base, const Genotype& architecture) {
  std::vector<GeneSpec> genes = base.genes();
  if (std::none_of(genes.begin(), genes.end(), IsBitsGene)) {
    return absl::InvalidArgumentError(absl::StrCat("fixed_architecture: space ", base.name(),
                                                   " has no bitwidths to search alone"));
  }
  if (absl::Status status = base.Validate(architecture); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("fixed_architecture: ", status.message()));
  }
  const Genotype canonical = base.Canonical(architecture);
  for (size_t g = 0; g < genes.size(); ++g) {
    if (!IsBitsGene(genes[g])) genes[g].choices = {canonical[g]};
  }
  return std::make_unique<RestrictedSpace>(base, absl::StrCat(base.name(), "@fixed-arch"),
                                           std::move(genes));
}

std::vector<std::pair<int, int>> BitsGenePairs(const SearchSpace& base) {
  constexpr std::string_view kWeight = "_w_bits_setting[";
  constexpr std::string_view kActivation = "_a_bits_setting[";
  const std::vector<GeneSpec>& genes = base.genes();
  std::vector<std::pair<int, int>> pairs;
  for (size_t w = 0; w < genes.size(); ++w) {
    const size_t at = genes[w].name.find(kWeight);
    if (at == std::string::npos) continue;
    std::string partner = genes[w].name;
    partner.replace(at, kWeight.size(), kActivation);
    for (size_t a = 0; a < genes.size(); ++a) {
      if (genes[a].name == partner) {
        pairs.emplace_back(static_cast<int>(w), static_cast<int>(a));
        break;
      }
    }
  }
  return pairs;
}

absl::StatusOr<std::unique_ptr<SearchSpace>> NewBitPairsSpace(
    const SearchSpace& base, const std::function<bool(int, int)>& allowed,
    absl::string_view label) {
  std::vector<std::pair<int, int>> pair_genes = BitsGenePairs(base);
  std::vector<GeneSpec> genes = base.genes();
  bool narrowed = false;
  bool product = true;  // The allowed pairs are every combination of the values kept.
  for (const auto& [w, a] : pair_genes) {
    std::vector<int> weights;
    std::vector<int> activations;
    int allowed_pairs = 0;
    for (const int weight : genes[w].choices) {
      for (const int activation : genes[a].choices) {
        if (!allowed(weight, activation)) continue;
        ++allowed_pairs;
        if (std::find(weights.begin(), weights.end(), weight) == weights.end()) {
          weights.push_back(weight);
        }
        if (std::find(activations.begin(), activations.end(), activation) == activations.end()) {
          activations.push_back(activation);
        }
      }
    }
    if (allowed_pairs == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(genes[w].name, ", ", genes[a].name, ": no pair of W{",
                       absl::StrJoin(genes[w].choices, ", "), "} and A{",
                       absl::StrJoin(genes[a].choices, ", "), "} runs on ", label));
    }
    std::sort(activations.begin(), activations.end());
    product = product && allowed_pairs == static_cast<int>(weights.size() * activations.size());
    narrowed = narrowed || weights.size() != genes[w].choices.size() ||
               activations.size() != genes[a].choices.size() || !product;
    genes[w].choices = std::move(weights);
    genes[a].choices = std::move(activations);
  }
  if (!narrowed) return nullptr;
  std::string name = absl::StrCat(base.name(), "@", label);
  if (product) {
    return std::make_unique<RestrictedSpace>(base, std::move(name), std::move(genes));
  }
  return std::make_unique<RestrictedSpace>(base, std::move(name), std::move(genes),
                                           std::move(pair_genes), allowed);
}

}  // namespace apq::oface
