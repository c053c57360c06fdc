// Prices networks of one search space on one device by summing per-layer table entries.
//
// Construction resolves every cost term of the space against the table once, so pricing a
// network is a handful of array reads, with no string building or hashing.
// Thread safety: immutable after Create; Evaluate may be called concurrently.
#ifndef APQ_HWMODELS_LUT_COST_MODEL_H_
#define APQ_HWMODELS_LUT_COST_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "hwmodels/cost_table.h"
#include "oface/search_space.h"

namespace apq::hwmodels {

struct NetworkCost {
  double latency_ms = 0.0;
  double energy_mj = 0.0;  // Meaningful only when has_energy.
  bool has_energy = false;
  // From the space alone (SearchSpace::StaticCosts), for spaces with bitwidths.
  double size_mb = 0.0;  // Weight bytes at their bitwidths / 10^6.
  double bitops = 0.0;   // Sum over layers of MACs x weight bits x activation bits.
  bool has_size_and_bitops = false;
  // True when a term of this network was priced by the table's fallback estimator
  // (an analytic model) rather than looked up.
  bool modelled = false;
  // False when a layer runs at a precision the device does not execute (its table's
  // PrecisionSupport): the network cannot run there, whatever its figures (which leave such
  // layers out). Searches treat it as infeasible (search::MeetsBudgets).
  bool executable = true;
};

// Sets `cost`'s size (MB = bytes / 10^6) and BitOps from a space's static costs.
void SetSizeAndBitops(const oface::StaticCost& static_cost, NetworkCost* cost);

// Prices a table key the table lacks (e.g. an analytic model fitted to the table), so a
// space can be priced on a table that does not list every layer shape.
class TermEstimator {
 public:
  virtual ~TermEstimator() = default;
  // The estimated entry for `key` (the table format's own key), or nullopt when this
  // estimator cannot price it.
  virtual std::optional<CostEntry> Estimate(const std::string& key) const = 0;
  // Shown in errors and metadata, e.g. "bitfusion-analytic(v1)".
  virtual std::string name() const = 0;
};

// Every key the space can need that the table lacks, in catalogue order.
std::vector<std::string> MissingKeys(const oface::SearchSpace& space, const CostTable& table);

class LutCostModel {
 public:
  // FAILED_PRECONDITION listing the missing keys (the first 20 and how many in all) when the
  // table does not cover the space. `space` must outlive the model.
  // With `fallback`, keys the table lacks are priced by it instead (those terms make a
  // network's cost `modelled`); only keys neither can price are missing.
  // A conv key at a pair `precisions` (default: the table's own declaration) does not execute
  // is not needed: such a term makes a network's cost not `executable`. FAILED_PRECONDITION
  // when a term every network has (the stem, the tail) is such a term.
  static absl::StatusOr<std::unique_ptr<LutCostModel>> Create(
      const oface::SearchSpace& space, const CostTable& table,
      const TermEstimator* fallback = nullptr, const PrecisionSupport* precisions = nullptr);

  // Precondition: `genotype` is valid for the space. Terms are added one at a time into a
  // double accumulator in the order CostTerms returns them (the reference's order).
  NetworkCost Evaluate(const oface::Genotype& genotype) const;

  // OK when the device executes every layer `genotype` runs; else INVALID_ARGUMENT naming the
  // first layer it does not (its cost slot, e.g. "layer 3 pw", or the fixed layer's key) and
  // that layer's pair, e.g. "layer 3 pw runs at W4A4". Precondition: `genotype` is valid.
  absl::Status CheckExecutable(const oface::Genotype& genotype) const;

  // The latency, energy (when has_energy) and modelled flag of the network part made of
  // `terms` (catalogue indices of the space), added one at a time into double accumulators
  // from 0.0 in the given order, as Evaluate adds a network's terms. Size and BitOps are left
  // unset. Precondition: 0 <= term < space().num_cost_terms() for each term.
  NetworkCost PriceTerms(absl::Span<const int32_t> terms) const;

  const oface::SearchSpace& space() const { return space_; }
  // True when every term of the space has an energy figure.
  bool has_energy() const { return has_energy_; }
  // True when the space reports model size and BitOps (it has bitwidths).
  bool has_size_and_bitops() const { return has_size_and_bitops_; }
  // Terms of the space's catalogue priced by the fallback estimator.
  int modelled_terms() const { return modelled_terms_; }
  // Whether the device executes the term's layer (its pair is declared, or it is no conv key).
  bool TermExecutable(int32_t term) const {
    return unexecutable_.empty() || unexecutable_[term] == 0;
  }
  // What the model was created with: the table's declaration, or the one passed to Create.
  const PrecisionSupport& precisions() const { return precisions_; }

 private:
  LutCostModel(const oface::SearchSpace& space, std::vector<double> latency_ms,
               std::vector<double> energy_mj, bool has_energy, std::vector<uint8_t> modelled,
               std::vector<uint8_t> unexecutable, PrecisionSupport precisions);

  const oface::SearchSpace& space_;
  std::vector<double> latency_ms_;  // Indexed by cost term.
  std::vector<double> energy_mj_;   // Indexed by cost term; empty without energy.
  bool has_energy_;
  std::vector<uint8_t> modelled_;  // Indexed by cost term; empty when nothing is modelled.
  int modelled_terms_ = 0;
  // Indexed by cost term; empty when the device executes every term.
  std::vector<uint8_t> unexecutable_;
  PrecisionSupport precisions_;
  bool has_size_and_bitops_ = false;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_LUT_COST_MODEL_H_
