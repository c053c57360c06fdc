// Trained accuracy predictors and each space's default one. The contract shared by every
// store is in store.h.
#ifndef APQ_SERVER_STORE_PREDICTOR_STORE_H_
#define APQ_SERVER_STORE_PREDICTOR_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

// A space has at most one default predictor.
class PredictorStore {
 public:
  virtual ~PredictorStore() = default;

  // Stores a predictor; with is_default it becomes the space's default in the same
  // transaction (the previous one stops being it). INVALID_ARGUMENT for an empty space,
  // version or kind; ALREADY_EXISTS for a (space, version) pair that is stored.
  virtual absl::Status AddPredictor(const PredictorRecord& predictor) = 0;

  // The space's predictors, oldest first, without their artifacts.
  virtual absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) = 0;

  // One predictor with its artifact; NOT_FOUND when unknown.
  virtual absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                                       const std::string& version) = 0;

  // The space's default predictor with its artifact; NOT_FOUND when the space has none.
  virtual absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) = 0;

  // The version of the space's default predictor, read without its artifact (a caller that
  // holds the loaded predictor of that version need not read the artifact again); NOT_FOUND
  // when the space has none.
  virtual absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) = 0;

  // Makes a stored predictor the space's default (the previous one stops being it).
  // NOT_FOUND for an unknown version.
  virtual absl::Status SetDefaultPredictor(const std::string& space,
                                           const std::string& version) = 0;

  // The space's stored predictors stop being its default (searches fall back to the shipped
  // one). No error when none was.
  virtual absl::Status ClearDefaultPredictor(const std::string& space) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_PREDICTOR_STORE_H_
