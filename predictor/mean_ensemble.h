// An accuracy predictor that averages the predictions of its members (e.g. the transferred MLP
// and XGBoost, whose errors differ: bench/RESULTS.md measures their mean ranking held-out
// records better than either from about 200 quantized records on).
//
// Thread safety: as AccuracyPredictor; Clone clones every member.
#ifndef APQ_PREDICTOR_MEAN_ENSEMBLE_H_
#define APQ_PREDICTOR_MEAN_ENSEMBLE_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"

namespace apq::predictor {

class MeanEnsemble : public AccuracyPredictor {
 public:
  // INVALID_ARGUMENT for fewer than two members, a null member or members whose input sizes
  // differ.
  static absl::StatusOr<std::unique_ptr<MeanEnsemble>> Create(
      std::vector<std::unique_ptr<AccuracyPredictor>> members);

  int input_size() const override { return members_.front()->input_size(); }
  // The members' first error, if any.
  absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) override;
  std::unique_ptr<AccuracyPredictor> Clone() const override;

 private:
  explicit MeanEnsemble(std::vector<std::unique_ptr<AccuracyPredictor>> members)
      : members_(std::move(members)) {}

  std::vector<std::unique_ptr<AccuracyPredictor>> members_;
  std::vector<float> member_output_;  // Reused between calls.
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_MEAN_ENSEMBLE_H_
