#include "bench/ofa_reference_search.h"

#include <utility>

#include "common/status_macros.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/ofa_mbv3_space.h"

namespace apq::bench {

absl::StatusOr<OfaReferenceSearch> LoadOfaReferenceSearch(const std::string& data_dir,
                                                          int threads) {
  OfaReferenceSearch search;
  search.space = oface::NewOfaMbv3Space();
  ASSIGN_OR_RETURN(auto table, hwmodels::LoadOfaYamlDirectory(data_dir + "/ofa_mbv3/note10_lut"));
  ASSIGN_OR_RETURN(search.cost_model, hwmodels::LutCostModel::Create(*search.space, table));
  predictor::MlpPredictor::Options options;
  options.num_threads = threads;
  ASSIGN_OR_RETURN(search.predictor,
                   predictor::MlpPredictor::LoadRawFloat32(
                       data_dir + "/ofa_mbv3/acc_predictor.f32",
                       data_dir + "/ofa_mbv3/acc_predictor.manifest.json", options));
  search.budgets.max_latency_ms = 25.0;
  return search;
}

}  // namespace apq::bench
