// An accuracy predictor that averages the predictions of its members (e.g. the transferred MLP
// and XGBoost, whose errors differ: bench/RESULTS.md measures their mean ranking held-out
// records better than either from about 200 quantized records on). With a spread penalty k it
// scores mean - k x spread (the members' population standard deviation): an uncertainty-aware
// objective, so that a search does not climb where the members disagree (with two members and
// k = 1 the score is the lower of the two).
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
  // k >= 0 (finite); 0, the default, scores the plain mean. Clones keep it.
  void set_spread_penalty(double k) { spread_penalty_ = k; }
  double spread_penalty() const { return spread_penalty_; }
  // The members' first error, if any.
  absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) override;
  std::unique_ptr<AccuracyPredictor> Clone() const override;

 private:
  explicit MeanEnsemble(std::vector<std::unique_ptr<AccuracyPredictor>> members)
      : members_(std::move(members)) {}

  std::vector<std::unique_ptr<AccuracyPredictor>> members_;
  double spread_penalty_ = 0.0;
  std::vector<float> member_output_;        // Reused between calls.
  std::vector<double> member_predictions_;  // [sample][member], reused between calls.
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_MEAN_ENSEMBLE_H_
