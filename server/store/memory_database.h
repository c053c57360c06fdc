// The records of the in-memory backend (memory_store.h), under one mutex shared by its
// stores of every record kind, and the conversions every write applies. Internal to the
// backend.
#ifndef APQ_SERVER_STORE_MEMORY_DATABASE_H_
#define APQ_SERVER_STORE_MEMORY_DATABASE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/job_store.h"
#include "server/store/measurement_run_store.h"
#include "server/store/record_checks.h"
#include "server/store/records.h"

namespace apq::server::memory_internal {

// A double as stored: INVALID_ARGUMENT "<operation>: <field> is NaN" for a NaN, and -0.0
// becomes 0.0 (as SQLite reads it back).
absl::StatusOr<double> StoredDouble(double value, absl::string_view field,
                                    absl::string_view operation);
// A candidate as stored: its metrics as by StoredDouble (`what` names it in the field), not
// on the front.
absl::StatusOr<CandidateRecord> StoredCandidate(CandidateRecord candidate, absl::string_view what,
                                                absl::string_view operation);

struct StoredJob {
  // With the checkpoint; the best's on_pareto_front is always false. The best's measurement
  // and count, and verified_best, are not kept here: View fills them from the candidates.
  JobRecord record;
  int64_t next_generation = 0;
  std::vector<CandidateRecord> candidates;  // Ascending ids; one per distinct config_json.
  // The index in `candidates` of each network's row.
  absl::flat_hash_map<std::string, size_t> row_of_config;
  std::optional<int64_t> verified_best_id;
  bool deleted = false;  // JobStore::DeleteJob: a tombstone that keeps the id taken.
  // JobStore's lease: its holder and until when ('' and 0: none), and whether the holder was
  // asked to stop the job (RequestCancel).
  std::string lease_holder;
  double lease_expires_unix_s = 0.0;
  bool cancel_requested = false;

  // The candidate of this job with `id`, or null.
  CandidateRecord* FindCandidate(int64_t id);
  const CandidateRecord* FindCandidate(int64_t id) const;
  // The record as read: the best with its row's measurement, the verified best.
  JobRecord View() const;
};

struct StoredTrainingJob {
  TrainingJobRecord record;
  // TrainingJobStore's lease, as StoredJob's: its holder and until when ('' and 0: none), and
  // whether the holder was asked to stop the job (RequestTrainingCancel).
  std::string lease_holder;
  double lease_expires_unix_s = 0.0;
  bool cancel_requested = false;
};

struct StoredDataset {
  DatasetRecord record;  // Without counts.
  std::vector<MeasurementRow> rows;
};

struct StoredMeasurementTask {
  MeasurementTask task;
  store_internal::MeasurementTaskStatus status = store_internal::MeasurementTaskStatus::kPending;
  std::string lease_holder;  // '' and 0 unless held.
  double lease_expires_unix_s = 0.0;
  std::string error;  // The latest FailMeasurementTask's, kept.
};

struct StoredMeasurementRun {
  MeasurementRunRecord record;  // With its counts.
  // Its tasks' ids are consecutive, in index order, from this one.
  int64_t first_task_id = 0;
  std::vector<StoredMeasurementTask> tasks;  // tasks[i] has index i.
  // The indexes of the pending and held tasks, where claims look for free ones.
  std::set<int64_t> unsettled;
};

struct MemoryDatabase {
  // The job with `id`, or null when it is unknown or deleted.
  StoredJob* FindJob(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  // The training job with `id`, or null when it is unknown.
  StoredTrainingJob* FindTrainingJob(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  PredictorRecord* FindPredictor(const std::string& space, const std::string& version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  // Makes `version` the space's only default; an unknown version leaves it none.
  void MakeDefault(const std::string& space, const std::string& version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  // PredictorStore::AddPredictor's checks and write.
  absl::Status InsertPredictor(const PredictorRecord& predictor, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  // Appends `rows` (checked by CheckMeasurementRows) to `dataset` with new ids, as
  // DatasetStore::AddMeasurements: FAILED_PRECONDITION for a split the dataset does not hold,
  // ALREADY_EXISTS naming the row for a (method, config) pair it holds; nothing changes on
  // error.
  absl::Status AppendMeasurements(StoredDataset& dataset, const std::vector<MeasurementRow>& rows,
                                  absl::string_view operation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);
  // Deletes the artifacts of the job (JobStore::DeleteJob); shared ones stay.
  void DeleteJobArtifacts(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex);

  absl::Mutex mutex;
  std::vector<StoredJob> jobs ABSL_GUARDED_BY(mutex);  // jobs[n - 1] is "job-<n>".
  absl::flat_hash_map<std::string, size_t> job_index ABSL_GUARDED_BY(mutex);
  int64_t next_candidate_id ABSL_GUARDED_BY(mutex) = 1;
  std::map<std::string, std::vector<TableVersionRecord>> tables ABSL_GUARDED_BY(mutex);
  std::map<std::string, StoredDataset> datasets ABSL_GUARDED_BY(mutex);
  int64_t next_measurement_id ABSL_GUARDED_BY(mutex) = 1;
  // By space, oldest first.
  std::map<std::string, std::vector<PredictorRecord>> predictors ABSL_GUARDED_BY(mutex);
  // training_jobs[n - 1] is "train-<n>".
  std::vector<StoredTrainingJob> training_jobs ABSL_GUARDED_BY(mutex);
  absl::flat_hash_map<std::string, size_t> training_job_index ABSL_GUARDED_BY(mutex);
  std::vector<TokenRecord> tokens ABSL_GUARDED_BY(mutex);  // In the order they were added.
  // By (kind, key), with their bytes and size_bytes.
  std::map<std::pair<std::string, std::string>, ArtifactRecord> artifacts ABSL_GUARDED_BY(mutex);
  // measurement_runs[n - 1] is "measure-<n>".
  std::vector<StoredMeasurementRun> measurement_runs ABSL_GUARDED_BY(mutex);
  absl::flat_hash_map<std::string, size_t> measurement_run_index ABSL_GUARDED_BY(mutex);
  int64_t next_measurement_task_id ABSL_GUARDED_BY(mutex) = 1;
};

// The job store on `db`, which must outlive it.
std::unique_ptr<JobStore> NewMemoryJobStore(MemoryDatabase& db);
// The measurement run store on `db`, which must outlive it.
std::unique_ptr<MeasurementRunStore> NewMemoryMeasurementRunStore(MemoryDatabase& db);

}  // namespace apq::server::memory_internal

#endif  // APQ_SERVER_STORE_MEMORY_DATABASE_H_
