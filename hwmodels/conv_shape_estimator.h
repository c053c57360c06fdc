// The fallback estimator (LutCostModel's TermEstimator) of a conv table JSON
// (hwmodels/conv_latency_table.h) whose figures do not depend on the bit widths: a float CPU
// table measured by profile_device (oface/layer_profiler.h) times each conv shape once and
// writes the figure under every W/A key of the space it profiled. Such a table prices any
// bit pair of a shape it has: a key "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}" that
// it lacks takes the figure of the same 7-tuple. So local-cpu's table of fmnist_mbv2 (bits
// {4, 6, 8}) prices fmnist_lowbit (the same shapes at bits {2, 3, 4, 6, 8}); those terms count
// as modelled (LutCostModel::modelled_terms), as every estimator's do.
//
// Thread safety: immutable after Create; Estimate may be called concurrently.
#ifndef APQ_HWMODELS_CONV_SHAPE_ESTIMATOR_H_
#define APQ_HWMODELS_CONV_SHAPE_ESTIMATOR_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/lut_cost_model.h"

namespace apq::hwmodels {

class ConvShapeEstimator final : public TermEstimator {
 public:
  // INVALID_ARGUMENT when `table` is not of the conv JSON format. FAILED_PRECONDITION when its
  // figures may depend on the bit widths: two keys of one shape differ in latency or energy
  // (naming both keys), or no shape has keys of two bit pairs (nothing shows that they do
  // not).
  static absl::StatusOr<std::unique_ptr<ConvShapeEstimator>> Create(const CostTable& table);

  // The table's figure of the conv shape `key` names, whatever its bit widths; nullopt when
  // `key` is not a conv key (oface/conv_key.h) or the table has no key of its shape.
  std::optional<CostEntry> Estimate(const std::string& key) const override;
  // "conv-shape(bits ignored)".
  std::string name() const override;

 private:
  explicit ConvShapeEstimator(absl::flat_hash_map<std::string, CostEntry> by_shape)
      : by_shape_(std::move(by_shape)) {}

  // The 7-tuple text (the key before "-W") -> the shape's figure.
  absl::flat_hash_map<std::string, CostEntry> by_shape_;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_CONV_SHAPE_ESTIMATOR_H_
