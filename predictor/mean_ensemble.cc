#include "predictor/mean_ensemble.h"

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
  RETURN_IF_ERROR(members_[0]->Predict(batch, accuracies));
  for (size_t m = 1; m < members_.size(); ++m) {
    RETURN_IF_ERROR(members_[m]->Predict(batch, &member_output_));
    for (size_t i = 0; i < accuracies->size(); ++i) (*accuracies)[i] += member_output_[i];
  }
  const float scale = 1.0f / static_cast<float>(members_.size());
  for (float& accuracy : *accuracies) accuracy *= scale;
  return absl::OkStatus();
}

std::unique_ptr<AccuracyPredictor> MeanEnsemble::Clone() const {
  std::vector<std::unique_ptr<AccuracyPredictor>> members;
  members.reserve(members_.size());
  for (const std::unique_ptr<AccuracyPredictor>& member : members_) {
    members.push_back(member->Clone());
  }
  return std::unique_ptr<AccuracyPredictor>(new MeanEnsemble(std::move(members)));
}

}  // namespace apq::predictor
