// How a trained accuracy predictor is kept in the store (PredictorRecord::kind and artifact)
// and loaded back.
//
// Kinds:
//   "mlp-raw-f32"   an MlpPredictor (predictor/mlp_predictor.h): "<manifest bytes>\n" as a
//                   decimal line, the manifest JSON, then the raw float32 weights.
//   "xgboost-json"  an XgbPredictor (predictor/xgb_predictor.h): the input size as a decimal
//                   line, then XGBoost's JSON model.
//   "mean-ensemble" a MeanEnsemble (predictor/mean_ensemble.h): the member count as a decimal
//                   line, then per member its kind on a line, its artifact's length as a
//                   decimal line and the artifact (members are not ensembles).
#ifndef APQ_SERVER_PREDICTOR_ARTIFACT_H_
#define APQ_SERVER_PREDICTOR_ARTIFACT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"
#include "predictor/mlp_predictor.h"
#include "predictor/xgb_predictor.h"

namespace apq::server {

inline constexpr char kMlpRawF32Kind[] = "mlp-raw-f32";
inline constexpr char kXgboostJsonKind[] = "xgboost-json";
inline constexpr char kMeanEnsembleKind[] = "mean-ensemble";

absl::StatusOr<std::string> MlpArtifact(const predictor::MlpPredictor& mlp);
std::string XgbArtifact(const predictor::XgbPredictor& xgb);
struct ArtifactMember {
  std::string kind;
  std::string artifact;
};
std::string MeanEnsembleArtifact(const std::vector<ArtifactMember>& members);

struct LoadedPredictor {
  std::unique_ptr<predictor::AccuracyPredictor> predictor;
  int input_size = 0;
};
// A predictor shipped as one file (data/<space>/qa_predictor.artifact, written by
// train_predictor): the line "apq-predictor-artifact 1", a line "kind <kind>", a line
// "version <version>", then the artifact's bytes.
struct ShippedArtifact {
  std::string kind;
  std::string version;
  std::string artifact;
};
std::string EncodeShippedArtifact(const ShippedArtifact& shipped);
// DATA_LOSS naming `what` when the header is not as above.
absl::StatusOr<ShippedArtifact> DecodeShippedArtifact(const std::string& bytes,
                                                      const std::string& what);

// INVALID_ARGUMENT for an unknown kind; DATA_LOSS naming `what` for bytes that do not load.
absl::StatusOr<LoadedPredictor> LoadPredictorArtifact(const std::string& kind,
                                                      const std::string& artifact,
                                                      const std::string& name,
                                                      const std::string& what, int threads);

}  // namespace apq::server

#endif  // APQ_SERVER_PREDICTOR_ARTIFACT_H_
