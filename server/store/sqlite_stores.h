// The SQLite backend's store of each record kind, all on one SqliteDatabase (which must
// outlive them). Internal to the backend: users get them through SqliteStore (sqlite_store.h).
// Each method holds the database's mutex for its whole run, so they run one at a time.
#ifndef APQ_SERVER_STORE_SQLITE_STORES_H_
#define APQ_SERVER_STORE_SQLITE_STORES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/artifact_store.h"
#include "server/store/dataset_store.h"
#include "server/store/device_store.h"
#include "server/store/job_store.h"
#include "server/store/measurement_run_store.h"
#include "server/store/predictor_store.h"
#include "server/store/records.h"
#include "server/store/sqlite_database.h"
#include "server/store/token_store.h"
#include "server/store/training_job_store.h"

namespace apq::server {

class SqliteJobStore final : public JobStore {
 public:
  explicit SqliteJobStore(SqliteDatabase& database) : database_(database) {}

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
  // DeleteJob's work, in the caller's write transaction.
  absl::Status DeleteJobLocked(const std::string& job_id, double deleted_unix_s,
                               const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // Inserts a queued job row (in the caller's write transaction) and returns its id. A job
  // of a sweep passes the sweep's id, or an empty one for its first job, which names the
  // sweep after itself; a lone job passes null.
  absl::StatusOr<std::string> InsertJob(const JobRecord& job, std::string* sweep_id,
                                        absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // The job's state; NOT_FOUND for an unknown job.
  absl::StatusOr<JobState> LoadJobState(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  struct VerificationState {
    JobStage stage = JobStage::kSearch;
    int finalists = 0;
    int measured = 0;
  };
  // The verification columns of an unfinished job; NOT_FOUND for an unknown job,
  // FAILED_PRECONDITION for one that has ended.
  absl::StatusOr<VerificationState> LoadVerificationState(const std::string& job_id,
                                                          const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  struct LeaseState {
    JobState state = JobState::kQueued;
    std::string holder;
    double expires_unix_s = 0.0;
    bool cancel_requested = false;
  };
  // The lease columns of an unfinished job; NOT_FOUND for an unknown job,
  // FAILED_PRECONDITION for one that has ended.
  absl::StatusOr<LeaseState> LoadUnfinishedLease(const std::string& job_id,
                                                 const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // The job's feasible candidate `id`, or none.
  absl::StatusOr<std::optional<CandidateRecord>> LoadFeasibleCandidate(const std::string& job_id,
                                                                       int64_t id,
                                                                       const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // Marks `ids` on the job's front, inside the caller's transaction; INVALID_ARGUMENT for an
  // id that is no feasible candidate of the job.
  absl::Status MarkParetoFront(const std::string& job_id, const std::vector<int64_t>& ids,
                               const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

class SqliteDeviceStore final : public DeviceStore {
 public:
  explicit SqliteDeviceStore(SqliteDatabase& database) : database_(database) {}

  absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) override;
  absl::StatusOr<std::vector<std::string>> ListDevices() override;
  absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) override;
  absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                     int64_t version) override;

 private:
  // Whether the device has a stored table.
  absl::StatusOr<bool> DeviceKnown(const std::string& device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

class SqliteDatasetStore final : public DatasetStore {
 public:
  explicit SqliteDatasetStore(SqliteDatabase& database) : database_(database) {}

  absl::Status CreateDataset(const DatasetRecord& dataset,
                             const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() override;
  absl::Status AddMeasurements(const std::string& dataset,
                               const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) override;

 private:
  // NOT_FOUND unless the dataset exists.
  absl::Status CheckDatasetKnown(const std::string& dataset, const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

class SqlitePredictorStore final : public PredictorStore {
 public:
  explicit SqlitePredictorStore(SqliteDatabase& database) : database_(database) {}

  absl::Status AddPredictor(const PredictorRecord& predictor) override;
  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override;
  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override;
  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override;
  absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) override;
  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override;
  absl::Status ClearDefaultPredictor(const std::string& space) override;

 private:
  SqliteDatabase& database_;
};

class SqliteTokenStore final : public TokenStore {
 public:
  explicit SqliteTokenStore(SqliteDatabase& database) : database_(database) {}

  absl::Status AddToken(const TokenRecord& token) override;
  absl::StatusOr<bool> AddFirstToken(const TokenRecord& token) override;
  absl::StatusOr<TokenRecord> GetToken(const std::string& id) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;
  absl::Status RevokeToken(const std::string& id, double revoked_unix_s) override;

 private:
  // AddToken, or AddFirstToken when `only_first`: false when it stored nothing.
  absl::StatusOr<bool> Insert(const TokenRecord& token, bool only_first);

  SqliteDatabase& database_;
};

class SqliteTrainingJobStore final : public TrainingJobStore {
 public:
  explicit SqliteTrainingJobStore(SqliteDatabase& database) : database_(database) {}

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
  absl::StatusOr<JobState> LoadState(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  struct LeaseState {
    JobState state = JobState::kQueued;
    std::string holder;
    double expires_unix_s = 0.0;
    bool cancel_requested = false;
  };
  // The lease columns of an unfinished training job; NOT_FOUND for an unknown job,
  // FAILED_PRECONDITION for one that has ended.
  absl::StatusOr<LeaseState> LoadUnfinishedLease(const std::string& job_id,
                                                 const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

class SqliteArtifactStore final : public ArtifactStore {
 public:
  explicit SqliteArtifactStore(SqliteDatabase& database) : database_(database) {}

  absl::Status PutArtifact(const ArtifactRecord& artifact) override;
  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& kind,
                                             const std::string& key) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& kind,
                                                            const std::string& space,
                                                            int limit) override;

 private:
  // NOT_FOUND unless the job exists and is not deleted.
  absl::Status CheckJobKnown(const std::string& job_id, const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

class SqliteMeasurementRunStore final : public MeasurementRunStore {
 public:
  explicit SqliteMeasurementRunStore(SqliteDatabase& database) : database_(database) {}

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
  // The run with its counts, without its settings; NOT_FOUND for an unknown one.
  absl::StatusOr<MeasurementRunRecord> LoadRun(const std::string& run_id,
                                               absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // Writes the run's state, counts, finished time and error.
  absl::Status StoreProgress(const MeasurementRunRecord& run, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // The run's task `task_id` held by `holder`; NOT_FOUND for no task of the run,
  // FAILED_PRECONDITION when `holder` does not hold it.
  absl::StatusOr<MeasurementTask> LoadHeldTask(const std::string& run_id, int64_t task_id,
                                               const std::string& holder,
                                               absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());
  // Gives up the lease of held task `task_id`, which becomes `status` (pending again or
  // settled) with `error`, and counts it in `run` (written by the caller).
  absl::Status ReleaseTask(MeasurementRunRecord& run, int64_t task_id, int status,
                           const std::string& error, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(database_.mutex());

  SqliteDatabase& database_;
};

// The predictor writes shared by SqlitePredictorStore and SqliteTrainingJobStore, and the
// measurement writes shared by SqliteDatasetStore and SqliteMeasurementRunStore, inside the
// caller's write transaction.
namespace sqlite_internal {

// Appends `rows` (checked by CheckMeasurementRows) to `dataset`: FAILED_PRECONDITION for a
// split the dataset does not hold (CheckRowsSplit), ALREADY_EXISTS naming the row for a
// (method, config) pair it holds; nothing is written on error.
absl::Status InsertMeasurements(SqliteDatabase& database, const std::string& dataset,
                                const std::vector<MeasurementRow>& rows,
                                const std::string& operation)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(database.mutex());

// Whether (space, version) is stored.
absl::StatusOr<bool> PredictorStored(SqliteDatabase& database, const std::string& space,
                                     const std::string& version, const std::string& operation)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(database.mutex());
// AddPredictor's checks and writes.
absl::Status InsertPredictor(SqliteDatabase& database, const PredictorRecord& predictor,
                             const std::string& operation)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(database.mutex());
// Makes a stored predictor the space's default.
absl::Status MakeDefault(SqliteDatabase& database, const std::string& space,
                         const std::string& version, const std::string& operation)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(database.mutex());

}  // namespace sqlite_internal

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_SQLITE_STORES_H_
