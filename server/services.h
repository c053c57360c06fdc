// gRPC adapters: decode a request, hand the work to the server's own threads (never run
// SQLite, LibTorch or parsing on a gRPC thread), convert the domain status once.
#ifndef APQ_SERVER_SERVICES_H_
#define APQ_SERVER_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "proto/apq/v1/apq.grpc.pb.h"
#include "search/engine_registry.h"
#include "server/auth.h"
#include "server/catalog.h"
#include "server/error_details.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/measurement_runs.h"
#include "server/store/store.h"
#include "server/supernet_host.h"
#include "server/training_manager.h"

namespace apq::server {

// At most this many configurations per Evaluate call.
inline constexpr int kMaxEvaluateConfigs = 1000;
// Front members returned with a deployable configuration (the rest via ListCandidates).
inline constexpr int kMaxFrontInDeployableConfig = 1000;
// At most this many configurations per Evaluate call that measures (seconds each).
inline constexpr int kMaxMeasuredConfigs = 20;

class SearchServiceImpl final : public apq::v1::SearchService::CallbackService {
 public:
  // All references must outlive the service. `pool` serves cheap calls, `torch_pool` the
  // calls that run LibTorch (measured evaluations, TorchScript exports).
  SearchServiceImpl(Catalog& catalog, JobStore& store, ArtifactStore& artifacts, JobManager& jobs,
                    SupernetHost& supernets, const search::EngineRegistry& engines, Executor& pool,
                    Executor& torch_pool, Authenticator& auth, RoleQuotas quotas = {})
      : quotas_(quotas),
        auth_(auth),
        catalog_(catalog),
        store_(store),
        artifacts_(artifacts),
        jobs_(jobs),
        supernets_(supernets),
        engines_(engines),
        pool_(pool),
        torch_pool_(torch_pool) {}

  grpc::ServerUnaryReactor* SubmitSearch(grpc::CallbackServerContext* context,
                                         const apq::v1::SubmitSearchRequest* request,
                                         apq::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const apq::v1::GetJobRequest* request,
                                   apq::v1::Job* response) override;
  grpc::ServerWriteReactor<apq::v1::JobProgress>* WatchJob(
      grpc::CallbackServerContext* context, const apq::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const apq::v1::CancelJobRequest* request,
                                      apq::v1::Job* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* context,
                                      const apq::v1::DeleteJobRequest* request,
                                      apq::v1::DeleteJobResponse* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const apq::v1::ListJobsRequest* request,
                                     apq::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* ListCandidates(grpc::CallbackServerContext* context,
                                           const apq::v1::ListCandidatesRequest* request,
                                           apq::v1::ListCandidatesResponse* response) override;
  grpc::ServerUnaryReactor* GetDeployableConfig(grpc::CallbackServerContext* context,
                                                const apq::v1::GetDeployableConfigRequest* request,
                                                apq::v1::DeployableConfig* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const apq::v1::EvaluateRequest* request,
                                     apq::v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* ListEngines(grpc::CallbackServerContext* context,
                                        const apq::v1::ListEnginesRequest* request,
                                        apq::v1::ListEnginesResponse* response) override;
  grpc::ServerUnaryReactor* SubmitSweep(grpc::CallbackServerContext* context,
                                        const apq::v1::SubmitSweepRequest* request,
                                        apq::v1::Sweep* response) override;
  grpc::ServerUnaryReactor* ListJobArtifacts(grpc::CallbackServerContext* context,
                                             const apq::v1::ListJobArtifactsRequest* request,
                                             apq::v1::ListJobArtifactsResponse* response) override;
  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* context,
                                        const apq::v1::GetArtifactRequest* request,
                                        apq::v1::Artifact* response) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* context,
                                     const apq::v1::GetSweepRequest* request,
                                     apq::v1::Sweep* response) override;

 private:
  // The active-job quota of `caller`'s jobs: its role's (the anonymous caller of a server
  // without authentication is an admin).
  int ActiveJobQuota(const Caller& caller) const {
    return quotas_.For(caller.role).max_active_jobs;
  }

  // Jobs a token of each role may have queued or running at once (0: no limit).
  const RoleQuotas quotas_;
  Authenticator& auth_;
  Catalog& catalog_;
  JobStore& store_;
  ArtifactStore& artifacts_;  // Jobs' outputs (a qbitopt job's trained module).
  JobManager& jobs_;
  SupernetHost& supernets_;
  const search::EngineRegistry& engines_;
  Executor& pool_;
  Executor& torch_pool_;
};

class DeviceServiceImpl final : public apq::v1::DeviceService::CallbackService {
 public:
  DeviceServiceImpl(Catalog& catalog, DeviceStore& store, Executor& pool, Authenticator& auth)
      : auth_(auth), catalog_(catalog), store_(store), pool_(pool) {}

  grpc::ServerUnaryReactor* UploadCostTable(grpc::CallbackServerContext* context,
                                            const apq::v1::UploadCostTableRequest* request,
                                            apq::v1::Device* response) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* context,
                                        const apq::v1::ListDevicesRequest* request,
                                        apq::v1::ListDevicesResponse* response) override;
  grpc::ServerUnaryReactor* GetDevice(grpc::CallbackServerContext* context,
                                      const apq::v1::GetDeviceRequest* request,
                                      apq::v1::Device* response) override;
  grpc::ServerUnaryReactor* GetTableTemplate(grpc::CallbackServerContext* context,
                                             const apq::v1::GetTableTemplateRequest* request,
                                             apq::v1::TableTemplate* response) override;

 private:
  Authenticator& auth_;
  Catalog& catalog_;
  DeviceStore& store_;
  Executor& pool_;
};

class PredictorServiceImpl final : public apq::v1::PredictorService::CallbackService {
 public:
  PredictorServiceImpl(Catalog& catalog, Store& store, TrainingManager& training,
                       MeasurementRunManager& measurements, Executor& pool, Authenticator& auth)
      : auth_(auth),
        catalog_(catalog),
        store_(store),
        training_(training),
        measurements_(measurements),
        pool_(pool) {}

  grpc::ServerUnaryReactor* UploadDataset(grpc::CallbackServerContext* context,
                                          const apq::v1::UploadDatasetRequest* request,
                                          apq::v1::Dataset* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* context,
                                         const apq::v1::ListDatasetsRequest* request,
                                         apq::v1::ListDatasetsResponse* response) override;
  grpc::ServerUnaryReactor* TrainPredictor(grpc::CallbackServerContext* context,
                                           const apq::v1::TrainPredictorRequest* request,
                                           apq::v1::TrainingJob* response) override;
  grpc::ServerUnaryReactor* GetTrainingJob(grpc::CallbackServerContext* context,
                                           const apq::v1::GetTrainingJobRequest* request,
                                           apq::v1::TrainingJob* response) override;
  grpc::ServerUnaryReactor* ListTrainingJobs(grpc::CallbackServerContext* context,
                                             const apq::v1::ListTrainingJobsRequest* request,
                                             apq::v1::ListTrainingJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelTrainingJob(grpc::CallbackServerContext* context,
                                              const apq::v1::CancelTrainingJobRequest* request,
                                              apq::v1::TrainingJob* response) override;
  grpc::ServerUnaryReactor* ListPredictors(grpc::CallbackServerContext* context,
                                           const apq::v1::ListPredictorsRequest* request,
                                           apq::v1::ListPredictorsResponse* response) override;
  grpc::ServerUnaryReactor* SetDefaultPredictor(grpc::CallbackServerContext* context,
                                                const apq::v1::SetDefaultPredictorRequest* request,
                                                apq::v1::Predictor* response) override;
  grpc::ServerUnaryReactor* StartMeasurementRun(grpc::CallbackServerContext* context,
                                                const apq::v1::StartMeasurementRunRequest* request,
                                                apq::v1::MeasurementRun* response) override;
  grpc::ServerUnaryReactor* GetMeasurementRun(grpc::CallbackServerContext* context,
                                              const apq::v1::GetMeasurementRunRequest* request,
                                              apq::v1::MeasurementRun* response) override;
  grpc::ServerUnaryReactor* ListMeasurementRuns(
      grpc::CallbackServerContext* context, const apq::v1::ListMeasurementRunsRequest* request,
      apq::v1::ListMeasurementRunsResponse* response) override;
  grpc::ServerUnaryReactor* CancelMeasurementRun(
      grpc::CallbackServerContext* context, const apq::v1::CancelMeasurementRunRequest* request,
      apq::v1::MeasurementRun* response) override;

 private:
  Authenticator& auth_;
  Catalog& catalog_;
  Store& store_;
  TrainingManager& training_;
  MeasurementRunManager& measurements_;
  Executor& pool_;
};

// API tokens (apq.proto's AccessService).
class AccessServiceImpl final : public apq::v1::AccessService::CallbackService {
 public:
  AccessServiceImpl(Authenticator& auth, TokenStore& tokens, Executor& pool)
      : auth_(auth), tokens_(tokens), pool_(pool) {}

  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* context,
                                        const apq::v1::CreateTokenRequest* request,
                                        apq::v1::CreatedToken* response) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* context,
                                       const apq::v1::ListTokensRequest* request,
                                       apq::v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* context,
                                        const apq::v1::RevokeTokenRequest* request,
                                        apq::v1::Token* response) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const apq::v1::WhoAmIRequest* request,
                                   apq::v1::Token* response) override;

 private:
  Authenticator& auth_;
  TokenStore& tokens_;
  Executor& pool_;
};

// What each space's configs accept (apq.proto's SpaceService).
class SpaceServiceImpl final : public apq::v1::SpaceService::CallbackService {
 public:
  SpaceServiceImpl(Catalog& catalog, DeviceStore& devices, SupernetHost& supernets, Executor& pool,
                   Authenticator& auth)
      : auth_(auth), catalog_(catalog), devices_(devices), supernets_(supernets), pool_(pool) {}

  grpc::ServerUnaryReactor* ListSpaces(grpc::CallbackServerContext* context,
                                       const apq::v1::ListSpacesRequest* request,
                                       apq::v1::ListSpacesResponse* response) override;
  grpc::ServerUnaryReactor* DescribeSpace(grpc::CallbackServerContext* context,
                                          const apq::v1::DescribeSpaceRequest* request,
                                          apq::v1::SpaceDescription* response) override;

 private:
  // The space's description: its own part (computed once per space, then cached: spaces
  // never change) and what the server has for it now (devices, supernet, predictor).
  absl::Status Describe(const std::string& space, bool with_fields, apq::v1::SpaceDescription* out);

  Authenticator& auth_;
  Catalog& catalog_;
  DeviceStore& devices_;
  SupernetHost& supernets_;
  Executor& pool_;
  absl::Mutex mutex_;
  std::map<std::string, apq::v1::SpaceDescription> described_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace apq::server

#endif  // APQ_SERVER_SERVICES_H_
