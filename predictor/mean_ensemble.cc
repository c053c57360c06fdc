#include "predictor/mean_ensemble.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::predictor {

absl::StatusOr<std::unique_ptr<MeanEnsemble>> MeanEnsemble::Create(
    std::vector<std::unique_ptr<AccuracyPredictor>> members) {
  if (members.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("an ensemble needs at least 2 members, got ", members.size()));
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("ensemble member ", i, " is null"));
    }
    if (members[i]->input_size() != members[0]->input_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ensemble member ", i, " takes ", members[i]->input_size(),
                       " inputs, member 0 takes ", members[0]->input_size()));
    }
  }
  return std::unique_ptr<MeanEnsemble>(new MeanEnsemble(std::move(members)));
}

absl::Status MeanEnsemble::Predict(const FeatureBatch& batch, std::vector<float>* accuracies) {
  // Every member's predictions, in double: the spread of close predictions (about 1e-4 of
  // accuracies near 0.9) is computed from deviations, never as E[x^2] - mean^2.
  const size_t members = members_.size();
  for (size_t m = 0; m < members; ++m) {
    RETURN_IF_ERROR(members_[m]->Predict(batch, &member_output_));
    if (m == 0) member_predictions_.assign(members * member_output_.size(), 0.0);
    for (size_t i = 0; i < member_output_.size(); ++i) {
      member_predictions_[i * members + m] = member_output_[i];
    }
  }
  const size_t count = member_output_.size();
  accuracies->resize(count);
  for (size_t i = 0; i < count; ++i) {
    const double* predictions = &member_predictions_[i * members];
    double mean = 0.0;
    for (size_t m = 0; m < members; ++m) mean += predictions[m];
    mean /= static_cast<double>(members);
    double score = mean;
    if (spread_penalty_ > 0.0) {
      double squares = 0.0;
      for (size_t m = 0; m < members; ++m) {
        squares += (predictions[m] - mean) * (predictions[m] - mean);
      }
      score -= spread_penalty_ * std::sqrt(squares / static_cast<double>(members));
    }
    (*accuracies)[i] = static_cast<float>(score);
  }
  return absl::OkStatus();
}

std::unique_ptr<AccuracyPredictor> MeanEnsemble::Clone() const {
  std::vector<std::unique_ptr<AccuracyPredictor>> members;
  members.reserve(members_.size());
  for (const std::unique_ptr<AccuracyPredictor>& member : members_) {
    members.push_back(member->Clone());
  }
  auto clone = std::unique_ptr<MeanEnsemble>(new MeanEnsemble(std::move(members)));
  clone->spread_penalty_ = spread_penalty_;
  return clone;
}

}  // namespace apq::predictor
