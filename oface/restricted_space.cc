#include "oface/restricted_space.h"

#include <algorithm>
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

  const std::string& name() const override { return name_; }
  const std::vector<GeneSpec>& genes() const override { return genes_; }
  const std::vector<MutationGroup>& mutation_groups() const override {
    return base_.mutation_groups();
  }
  bool SatisfiesRules(const Genotype& genotype) const override {
    return base_.SatisfiesRules(genotype);
  }
  absl::Status CheckRules(const Genotype& genotype) const override {
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
      const auto outside = [&](const CostSlotChoice& choice) {
        for (size_t g = 0; g < slot.genes.size(); ++g) {
          const std::vector<int>& choices = genes_[slot.genes[g]].choices;
          if (!std::binary_search(choices.begin(), choices.end(), choice.values[g])) return true;
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

}  // namespace apq::oface
