// The problem of OFA's tutorial search, the reference of the search benchmarks: ofa_mbv3 on
// Note10 under 25 ms with OFA's own accuracy predictor, from the embedded data.
#ifndef APQ_BENCH_OFA_REFERENCE_SEARCH_H_
#define APQ_BENCH_OFA_REFERENCE_SEARCH_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/search_space.h"
#include "predictor/mlp_predictor.h"
#include "search/budgets.h"

namespace apq::bench {

struct OfaReferenceSearch {
  std::unique_ptr<oface::SearchSpace> space;
  std::unique_ptr<hwmodels::LutCostModel> cost_model;
  std::unique_ptr<predictor::MlpPredictor> predictor;
  search::Budgets budgets;  // Latency <= 25 ms.
};

// Loads it from `data_dir` (the repository's data/), the predictor on `threads` threads.
absl::StatusOr<OfaReferenceSearch> LoadOfaReferenceSearch(const std::string& data_dir, int threads);

}  // namespace apq::bench

#endif  // APQ_BENCH_OFA_REFERENCE_SEARCH_H_
