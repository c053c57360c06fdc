#include "hwmodels/lut_cost_model.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hwmodels/bitfusion_key.h"
#include "hwmodels/precision_support.h"

namespace apq::hwmodels {
namespace {

constexpr size_t kMaxKeysListed = 20;

}  // namespace

void SetSizeAndBitops(const oface::StaticCost& static_cost, NetworkCost* cost) {
  cost->size_mb = static_cost.size_bytes / 1e6;
  cost->bitops = static_cast<double>(static_cost.bitops);
  cost->has_size_and_bitops = true;
}

std::vector<std::string> MissingKeys(const oface::SearchSpace& space, const CostTable& table) {
  std::vector<std::string> missing;
  const int num_terms = space.num_cost_terms();
  for (int term = 0; term < num_terms; ++term) {
    std::string key = space.CostTermKey(term);
    if (!table.entries.contains(key)) missing.push_back(std::move(key));
  }
  return missing;
}

absl::StatusOr<std::unique_ptr<LutCostModel>> LutCostModel::Create(
    const oface::SearchSpace& space, const CostTable& table, const TermEstimator* fallback,
    const PrecisionSupport* precisions) {
  const PrecisionSupport& support = precisions != nullptr ? *precisions : table.precisions;
  const int num_terms = space.num_cost_terms();
  std::vector<std::optional<CostEntry>> estimated(num_terms);
  std::vector<uint8_t> unexecutable;
  std::vector<std::string> missing;
  for (int term = 0; term < num_terms; ++term) {
    std::string key = space.CostTermKey(term);
    if (!KeyExecutes(support, key)) {
      if (unexecutable.empty()) unexecutable.assign(num_terms, 0);
      unexecutable[term] = 1;
      continue;
    }
    if (table.entries.contains(key)) continue;
    if (fallback != nullptr) estimated[term] = fallback->Estimate(key);
    if (!estimated[term].has_value()) missing.push_back(std::move(key));
  }
  // The stem and tail (what every network runs): the terms of the network of every gene's
  // first choice that no slot of its decomposition decides.
  if (!unexecutable.empty()) {
    oface::Genotype first_choices;
    for (const oface::GeneSpec& gene : space.genes()) first_choices.push_back(gene.choices.front());
    first_choices = space.Canonical(first_choices);
    if (const std::optional<oface::CostDecomposition> decomposition =
            space.DecomposeCosts(first_choices, oface::CostSplit::kBitwidths)) {
      for (const int32_t term : decomposition->fixed_terms) {
        if (unexecutable[term] != 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "space ", space.name(), " runs its fixed layers at ", space.CostTermKey(term),
              "'s precision, which the device does not execute (it runs ",
              DescribePrecisions(support), ")"));
        }
      }
    }
  }
  if (!missing.empty()) {
    const bool truncated = missing.size() > kMaxKeysListed;
    return absl::FailedPreconditionError(absl::StrCat(
        "cost table lacks ", missing.size(), " keys the space ", space.name(), " needs: ",
        absl::StrJoin(missing.begin(), truncated ? missing.begin() + kMaxKeysListed : missing.end(),
                      ", "),
        truncated ? ", ..." : ""));
  }
  std::vector<double> latency_ms(num_terms);
  std::vector<double> energy_mj(num_terms);
  std::vector<uint8_t> modelled;
  bool has_energy = true;
  for (int term = 0; term < num_terms; ++term) {
    if (!unexecutable.empty() && unexecutable[term] != 0) continue;  // Priced 0, never run.
    const CostEntry* found = nullptr;
    if (estimated[term].has_value()) {
      found = &*estimated[term];
      if (modelled.empty()) modelled.assign(num_terms, 0);
      modelled[term] = 1;
    } else {
      found = &table.entries.find(space.CostTermKey(term))->second;
    }
    const CostEntry& entry = *found;
    latency_ms[term] = entry.latency_ms;
    if (entry.energy_mj.has_value()) {
      energy_mj[term] = *entry.energy_mj;
    } else {
      has_energy = false;
    }
  }
  if (!has_energy) energy_mj.clear();
  return absl::WrapUnique(new LutCostModel(space, std::move(latency_ms), std::move(energy_mj),
                                           has_energy, std::move(modelled), std::move(unexecutable),
                                           support));
}

LutCostModel::LutCostModel(const oface::SearchSpace& space, std::vector<double> latency_ms,
                           std::vector<double> energy_mj, bool has_energy,
                           std::vector<uint8_t> modelled, std::vector<uint8_t> unexecutable,
                           PrecisionSupport precisions)
    : space_(space),
      latency_ms_(std::move(latency_ms)),
      energy_mj_(std::move(energy_mj)),
      has_energy_(has_energy),
      modelled_(std::move(modelled)),
      unexecutable_(std::move(unexecutable)),
      precisions_(std::move(precisions)) {
  for (const uint8_t flag : modelled_) modelled_terms_ += flag;
  // Asked once, of the network of every gene's first choice: a space either has bitwidths
  // or not.
  oface::Genotype first_choices;
  for (const oface::GeneSpec& gene : space_.genes()) first_choices.push_back(gene.choices.front());
  has_size_and_bitops_ = space_.StaticCosts(first_choices).has_value();
}

NetworkCost LutCostModel::Evaluate(const oface::Genotype& genotype) const {
  // Per thread, reused across calls (and models): no allocation once it has grown.
  thread_local std::vector<int32_t> terms;
  terms.clear();
  space_.CostTerms(genotype, &terms);
  NetworkCost cost = PriceTerms(terms);
  if (has_size_and_bitops_) SetSizeAndBitops(*space_.StaticCosts(genotype), &cost);
  return cost;
}

absl::Status LutCostModel::CheckExecutable(const oface::Genotype& genotype) const {
  if (unexecutable_.empty()) return absl::OkStatus();
  thread_local std::vector<int32_t> terms;
  terms.clear();
  space_.CostTerms(genotype, &terms);
  const auto found = std::find_if(terms.begin(), terms.end(),
                                  [this](int32_t term) { return !TermExecutable(term); });
  if (found == terms.end()) return absl::OkStatus();
  // Only for the message: the layer's name, from the slot that holds the term.
  const auto pair_of = [this](int32_t term) {
    const std::string key = space_.CostTermKey(term);
    absl::StatusOr<BitFusionConv> conv = ParseBitFusionKeyFields(key);
    return conv.ok() ? PairName({conv->w_bits, conv->a_bits}) : key;
  };
  if (const std::optional<oface::CostDecomposition> decomposition =
          space_.DecomposeCosts(genotype, oface::CostSplit::kBitwidths)) {
    for (const oface::CostSlot& slot : decomposition->slots) {
      for (const int32_t term : slot.choices[slot.selected].terms) {
        if (!TermExecutable(term)) {
          return absl::InvalidArgumentError(absl::StrCat(slot.name, " runs at ", pair_of(term)));
        }
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("layer ", space_.CostTermKey(*found), " runs at ", pair_of(*found)));
}

NetworkCost LutCostModel::PriceTerms(absl::Span<const int32_t> terms) const {
  NetworkCost cost;
  // Strictly left to right from 0.0, as the reference sums: pre-summing changes the ulps.
  double latency_ms = 0.0;
  for (const int32_t term : terms) latency_ms += latency_ms_[term];
  cost.latency_ms = latency_ms;
  if (has_energy_) {
    double energy_mj = 0.0;
    for (const int32_t term : terms) energy_mj += energy_mj_[term];
    cost.energy_mj = energy_mj;
    cost.has_energy = true;
  }
  if (!modelled_.empty()) {
    for (const int32_t term : terms) {
      if (modelled_[term] != 0) {
        cost.modelled = true;
        break;
      }
    }
  }
  if (!unexecutable_.empty()) {
    for (const int32_t term : terms) {
      if (unexecutable_[term] != 0) {
        cost.executable = false;
        break;
      }
    }
  }
  return cost;
}

}  // namespace apq::hwmodels
