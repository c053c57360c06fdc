// Prices networks of one search space on one device by summing per-layer table entries.
//
// Construction resolves every cost term of the space against the table once, so pricing a
// network is a handful of array reads, with no string building or hashing.
// Thread safety: immutable after Create; Evaluate may be called concurrently.
#ifndef APQ_HWMODELS_LUT_COST_MODEL_H_
#define APQ_HWMODELS_LUT_COST_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"
#include "oface/search_space.h"

namespace apq::hwmodels {

struct NetworkCost {
  double latency_ms = 0.0;
  double energy_mj = 0.0;  // Meaningful only when has_energy.
  bool has_energy = false;
};

// Every key the space can need that the table lacks, in catalogue order.
std::vector<std::string> MissingKeys(const oface::SearchSpace& space, const CostTable& table);

class LutCostModel {
 public:
  // FAILED_PRECONDITION listing the missing keys (the first 20 and how many in all) when the
  // table does not cover the space. `space` must outlive the model.
  static absl::StatusOr<std::unique_ptr<LutCostModel>> Create(const oface::SearchSpace& space,
                                                              const CostTable& table);

  // Precondition: `genotype` is valid for the space. Terms are added one at a time into a
  // double accumulator in the order CostTerms returns them (the reference's order).
  NetworkCost Evaluate(const oface::Genotype& genotype) const;

  const oface::SearchSpace& space() const { return space_; }
  // True when every term of the space has an energy figure.
  bool has_energy() const { return has_energy_; }

 private:
  LutCostModel(const oface::SearchSpace& space, std::vector<double> latency_ms,
               std::vector<double> energy_mj, bool has_energy);

  const oface::SearchSpace& space_;
  std::vector<double> latency_ms_;  // Indexed by cost term.
  std::vector<double> energy_mj_;   // Indexed by cost term; empty without energy.
  bool has_energy_;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_LUT_COST_MODEL_H_
