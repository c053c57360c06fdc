// A SubmitSearchRequest resolved into what an engine runs: the engine and its complete
// options, the space (or its fixed-architecture and uniform-bits views), the cost model of the
// pinned table version, a predictor instance, the budgets and the objective. Knows engines only
// through the registry, so a new engine needs nothing here.
#ifndef APQ_SERVER_SEARCH_REQUEST_H_
#define APQ_SERVER_SEARCH_REQUEST_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "proto/apq/v1/apq.pb.h"
#include "search/engine.h"
#include "search/engine_registry.h"
#include "server/catalog.h"
#include "server/supernet_host.h"

namespace apq::server {

// The longest job label (SubmitSearchRequest.label, and ListJobsRequest.label as a filter).
inline constexpr size_t kMaxLabelBytes = 256;

struct ResolvedSearch {
  const search::Engine* engine = nullptr;
  search::EngineOptions options;              // Complete: every option of the engine.
  const oface::SearchSpace* space = nullptr;  // The catalog's, or a view of it.
  // Views of the catalog's space that own themselves (oface/restricted_space.h); `space` points
  // at the innermost one used.
  std::shared_ptr<const oface::SearchSpace> fixed_architecture_view;
  std::shared_ptr<const oface::SearchSpace> uniform_bits_view;
  Catalog::CostModelHandle cost;
  Catalog::PredictorInstance predictor;
  search::Budgets budgets;
  search::Objective objective = search::Objective::kMaxAccuracy;
  search::CostMetric pareto_cost = search::CostMetric::kLatency;
  // The engine reports every rejected draw, for a job that keeps them all (keep_all_draws).
  bool keep_all_draws = false;
  // Losses on the space's supernet for engines that measure; null without a supernet.
  std::shared_ptr<const search::PolicyLossProvider> policy_losses;
  // Training on the space's supernet for engines that train; null without a supernet.
  std::shared_ptr<const search::SubnetTrainingProvider> subnet_training;
  std::string supernet_version;  // Empty without a supernet.

  // Valid while this object lives.
  search::SearchProblem problem() const;
};

// The most finalists a job's verification stage measures (Verification.top_k).
inline constexpr int kMaxVerificationTopK = 50;

// The checks of a request's verification that need no lookup: INVALID_ARGUMENT naming
// "verification.<field>" for top_k outside {0} and [1, kMaxVerificationTopK], another field
// set with top_k 0, images outside [0, 10000], or a malformed dataset name. Whether the
// space has a supernet and the dataset fits is the job manager's to check.
absl::Status ValidateVerification(const apq::v1::Verification& verification);

// Validates `request` and resolves it for `table_version` (0 = the device's latest) and
// `predictor_version` (empty = the space's current default; a job that runs or resumes names
// the version it was submitted with, Catalog::NewPredictor(space, version)). Checks
// that need no lookup come first, so a malformed request is INVALID_ARGUMENT whatever the
// server holds: required fields, label, budgets, objective, verification (as
// ValidateVerification), then the engine's options
// (INVALID_ARGUMENT naming "evolution.<field>" or "engine.options.<name>"); then NOT_FOUND
// for an unknown engine, space, device or version; FAILED_PRECONDITION for a budget or
// front cost the device cannot price, a space without a predictor, or a problem the engine
// cannot take.
// `supernets` (may be null: no space has one) gives engines that measure the space's
// supernet.
absl::StatusOr<ResolvedSearch> ResolveSearch(Catalog& catalog,
                                             const search::EngineRegistry& engines,
                                             const apq::v1::SubmitSearchRequest& request,
                                             int64_t table_version,
                                             const std::string& predictor_version = "",
                                             SupernetHost* supernets = nullptr);

// Writes the resolved engine and options into the request's engine member (the one it
// was given; evolution when none was), so the stored request says exactly what ran.
void WriteResolvedEngine(const ResolvedSearch& resolved, apq::v1::SubmitSearchRequest* request);

// The name of the engine a request picks ("evolution" when it picks none).
std::string EngineName(const apq::v1::SubmitSearchRequest& request);

// The engine's step count of a stored request (0 when it does not resolve).
int TotalSteps(const search::EngineRegistry& engines, const apq::v1::SubmitSearchRequest& request);

// ListEngines' form of an engine.
apq::v1::Engine EngineToProto(const search::Engine& engine);

}  // namespace apq::server

#endif  // APQ_SERVER_SEARCH_REQUEST_H_
