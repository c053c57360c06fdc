// The PostgreSQL backend's store of each record kind, all on one PostgresDatabase (which must
// outlive them). Internal to the backend: users get them through PostgresStore
// (postgres_store.h). Each method is one PostgresDatabase::Transact (retried whole on a lost
// connection), so methods may run concurrently, here and in other processes.
#ifndef APQ_SERVER_STORE_POSTGRES_STORES_H_
#define APQ_SERVER_STORE_POSTGRES_STORES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/artifact_store.h"
#include "server/store/dataset_store.h"
#include "server/store/device_store.h"
#include "server/store/job_store.h"
#include "server/store/measurement_run_store.h"
#include "server/store/postgres_database.h"
#include "server/store/predictor_store.h"
#include "server/store/records.h"
#include "server/store/token_store.h"
#include "server/store/training_job_store.h"

namespace apq::server {

class PostgresJobStore final : public JobStore {
 public:
  explicit PostgresJobStore(PostgresDatabase& database) : database_(database) {}

  absl::StatusOr<std::string> CreateJob(const JobRecord& job) override;
  absl::StatusOr<SweepIds> CreateSweep(const std::vector<JobRecord>& jobs) override;
  absl::StatusOr<std::vector<JobRecord>> ListSweepJobs(const std::string& sweep_id) override;
  absl::Status MarkRunning(const std::string& job_id, double started_unix_s) override;
  absl::StatusOr<std::vector<int64_t>> AppendGenerations(const std::string& job_id,
                                                         const GenerationBatch& batch) override;
  absl::Status BeginVerification(const std::string& job_id, int finalists) override;
  absl::Status RecordVerification(const std::string& job_id, int64_t candidate_id,
                                  const CandidateMeasurement& measurement,
                                  int64_t verified_best_id) override;
  absl::Status FinishJob(const std::string& job_id, JobState state, const std::string& error,
                         double finished_unix_s, double elapsed_s,
                         const std::vector<int64_t>& pareto_front_ids) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobsPage(const JobQuery& query) override;
  absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) override;
  absl::Status DeleteJob(const std::string& job_id, double deleted_unix_s) override;
  absl::StatusOr<std::vector<std::string>> DeleteJobsFinishedBefore(double finished_before_unix_s,
                                                                    double deleted_unix_s,
                                                                    int limit) override;
  absl::StatusOr<std::map<JobState, int64_t>> CountJobsByState() override;
  absl::StatusOr<std::vector<JobRecord>> JobsWithoutLabel(int limit) override;
  absl::Status SetJobLabel(const std::string& job_id, const std::string& label) override;
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& holder, double now_unix_s,
                                                     double expires_unix_s) override;
  absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id, const std::string& holder,
                                          double expires_unix_s) override;
  absl::Status ReleaseLease(const std::string& job_id, const std::string& holder) override;
  absl::StatusOr<CancelRequestOutcome> RequestCancel(const std::string& job_id,
                                                     double now_unix_s) override;

 private:
  PostgresDatabase& database_;
};

class PostgresDeviceStore final : public DeviceStore {
 public:
  explicit PostgresDeviceStore(PostgresDatabase& database) : database_(database) {}

  absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) override;
  absl::StatusOr<std::vector<std::string>> ListDevices() override;
  absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) override;
  absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                     int64_t version) override;

 private:
  PostgresDatabase& database_;
};

class PostgresDatasetStore final : public DatasetStore {
 public:
  explicit PostgresDatasetStore(PostgresDatabase& database) : database_(database) {}

  absl::Status CreateDataset(const DatasetRecord& dataset,
                             const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() override;
  absl::Status AddMeasurements(const std::string& dataset,
                               const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) override;

 private:
  PostgresDatabase& database_;
};

class PostgresPredictorStore final : public PredictorStore {
 public:
  explicit PostgresPredictorStore(PostgresDatabase& database) : database_(database) {}

  absl::Status AddPredictor(const PredictorRecord& predictor) override;
  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override;
  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override;
  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override;
  absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) override;
  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override;
  absl::Status ClearDefaultPredictor(const std::string& space) override;

 private:
  PostgresDatabase& database_;
};

class PostgresTokenStore final : public TokenStore {
 public:
  explicit PostgresTokenStore(PostgresDatabase& database) : database_(database) {}

  absl::Status AddToken(const TokenRecord& token) override;
  absl::StatusOr<bool> AddFirstToken(const TokenRecord& token) override;
  absl::StatusOr<TokenRecord> GetToken(const std::string& id) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;
  absl::Status RevokeToken(const std::string& id, double revoked_unix_s) override;

 private:
  // AddToken, or AddFirstToken when `only_first`: false when it stored nothing.
  absl::StatusOr<bool> Insert(const TokenRecord& token, bool only_first);

  PostgresDatabase& database_;
};

class PostgresTrainingJobStore final : public TrainingJobStore {
 public:
  explicit PostgresTrainingJobStore(PostgresDatabase& database) : database_(database) {}

  absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) override;
  absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) override;
  absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                      int epoch, int max_epochs, double validation_rmse) override;
  absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s,
                                 const PredictorRecord* predictor) override;
  absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                  int64_t offset,
                                                                  int limit) override;
  absl::StatusOr<std::optional<ClaimedTrainingJob>> ClaimTrainingJob(
      const std::string& holder, double now_unix_s, double expires_unix_s) override;
  absl::StatusOr<LeaseRenewal> RenewTrainingLease(const std::string& job_id,
                                                  const std::string& holder,
                                                  double expires_unix_s) override;
  absl::Status ReleaseTrainingLease(const std::string& job_id, const std::string& holder) override;
  absl::StatusOr<CancelRequestOutcome> RequestTrainingCancel(const std::string& job_id,
                                                             double now_unix_s) override;

 private:
  PostgresDatabase& database_;
};

class PostgresMeasurementRunStore final : public MeasurementRunStore {
 public:
  explicit PostgresMeasurementRunStore(PostgresDatabase& database) : database_(database) {}

  absl::StatusOr<std::string> CreateMeasurementRun(
      const MeasurementRunRecord& run, const std::vector<std::string>& configs) override;
  absl::StatusOr<MeasurementRunRecord> GetMeasurementRun(const std::string& run_id) override;
  absl::StatusOr<std::vector<MeasurementRunRecord>> ListMeasurementRuns(int64_t offset,
                                                                        int limit) override;
  absl::Status SetMeasurementRunLauncher(const std::string& run_id,
                                         const std::string& launcher) override;
  absl::StatusOr<std::vector<MeasurementTask>> ClaimMeasurementTasks(const std::string& run_id,
                                                                     const std::string& holder,
                                                                     double now_unix_s,
                                                                     double expires_unix_s,
                                                                     int max_tasks) override;
  absl::StatusOr<std::vector<int64_t>> RenewMeasurementTasks(const std::string& run_id,
                                                             const std::string& holder,
                                                             const std::vector<int64_t>& task_ids,
                                                             double expires_unix_s) override;
  absl::Status CompleteMeasurementTask(const std::string& run_id, int64_t task_id,
                                       const std::string& holder,
                                       const MeasurementRow& row) override;
  absl::Status FailMeasurementTask(const std::string& run_id, int64_t task_id,
                                   const std::string& holder, const std::string& error,
                                   int max_attempts, double now_unix_s) override;
  absl::Status CancelMeasurementRun(const std::string& run_id, double now_unix_s) override;

 private:
  PostgresDatabase& database_;
};

class PostgresArtifactStore final : public ArtifactStore {
 public:
  explicit PostgresArtifactStore(PostgresDatabase& database) : database_(database) {}

  absl::Status PutArtifact(const ArtifactRecord& artifact) override;
  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& kind,
                                             const std::string& key) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& kind,
                                                            const std::string& space,
                                                            int limit) override;

 private:
  PostgresDatabase& database_;
};

// Writes shared by the stores, inside the caller's write transaction: the predictor writes of
// PostgresPredictorStore and PostgresTrainingJobStore (the transaction holds
// PostgresLock::kPredictors), the measurement writes of PostgresDatasetStore and
// PostgresMeasurementRunStore.
namespace postgres_internal {

absl::StatusOr<bool> PredictorStored(PostgresTransaction& transaction, const std::string& space,
                                     const std::string& version);
absl::Status InsertPredictor(PostgresTransaction& transaction, const PredictorRecord& predictor);
absl::Status MakeDefault(PostgresTransaction& transaction, const std::string& space,
                         const std::string& version);

// Adds `rows` (checked by store_internal::CheckMeasurementRows) to a stored dataset, inside
// the caller's write transaction, which holds PostgresLock::kDatasets: the split and
// duplicate checks see every row stored before the insert.
absl::Status InsertMeasurements(PostgresTransaction& transaction, const std::string& dataset,
                                const std::vector<MeasurementRow>& rows);

}  // namespace postgres_internal

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_POSTGRES_STORES_H_
