// Jobs that train accuracy predictors. The contract shared by every store is in store.h.
#ifndef APQ_SERVER_STORE_TRAINING_JOB_STORE_H_
#define APQ_SERVER_STORE_TRAINING_JOB_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

// A backend's training-job store writes the predictors of its PredictorStore (see
// FinishTrainingJob), so both live in one database.
class TrainingJobStore {
 public:
  virtual ~TrainingJobStore() = default;

  // Stores a new training job in state kQueued, without a lease, and returns its id,
  // "train-<n>" with n = 1, 2, ... in creation order. Only space, dataset, request and
  // created_unix_s are taken from `job`.
  virtual absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) = 0;

  // Queued (or running, when a restarted server or the next claimer of an expired lease runs
  // it again) to running, with its progress reset. FAILED_PRECONDITION for a job that has
  // ended.
  virtual absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) = 0;

  // Records a job's progress. FAILED_PRECONDITION for a job that has ended.
  virtual absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                              int epoch, int max_epochs,
                                              double validation_rmse) = 0;

  // Ends a job in the terminal `state` (INVALID_ARGUMENT otherwise). With `predictor` (only
  // for kSucceeded, else INVALID_ARGUMENT) the predictor is stored, and made the space's
  // default if it says so, in the same transaction: a job never succeeds without its
  // predictor, and a failed one leaves the predictors as they were. A predictor whose
  // version is stored already (versions are content hashes) is not stored twice. The job
  // records the predictor's version and metrics, and its lease (holder and expiry) is
  // cleared. FAILED_PRECONDITION if the job already ended; INVALID_ARGUMENT as
  // PredictorStore::AddPredictor.
  virtual absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                         const std::string& error, double finished_unix_s,
                                         const PredictorRecord* predictor) = 0;

  // NOT_FOUND for an unknown job.
  virtual absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) = 0;

  // Newest first; with `unfinished_only`, the queued and running ones. INVALID_ARGUMENT
  // unless offset >= 0 and 1 <= limit <= kMaxPageSize.
  virtual absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                          int64_t offset,
                                                                          int limit) = 0;

  // Leases, as JobStore's (job_store.h): several servers (replicas) over one store run each
  // training job on one of them. A replica claims a job and holds it by a lease that it
  // renews while the job trains; once the lease of a replica that died has expired, another
  // claims the job and trains it again (MarkTrainingRunning). Holders are opaque non-empty
  // names (at most 256 bytes; INVALID_ARGUMENT otherwise); times are the callers' clocks in
  // Unix seconds. A job's lease is free when it has none or it expired (expires <= now).

  // Claims the oldest (by creation) queued or running training job whose lease is free at
  // `now_unix_s` (none, or expired: expires <= now): its lease becomes `holder`'s until
  // `expires_unix_s` (> now_unix_s, else INVALID_ARGUMENT). None when there is no such job.
  // Concurrent claimers, in this process or others, never get the same job while its lease
  // holds. Holder rules and errors as JobStore::ClaimJob's.
  virtual absl::StatusOr<std::optional<ClaimedTrainingJob>> ClaimTrainingJob(
      const std::string& holder, double now_unix_s, double expires_unix_s) = 0;
  // As JobStore::RenewLease for a training job.
  virtual absl::StatusOr<LeaseRenewal> RenewTrainingLease(const std::string& job_id,
                                                          const std::string& holder,
                                                          double expires_unix_s) = 0;
  // As JobStore::ReleaseLease for a training job.
  virtual absl::Status ReleaseTrainingLease(const std::string& job_id,
                                            const std::string& holder) = 0;
  // As JobStore::RequestCancel for a training job: a queued job whose lease is free at
  // `now_unix_s` ends CANCELLED at once (finished at now_unix_s, error "cancelled by
  // request"): kEnded; otherwise its holder is asked to stop (RenewTrainingLease and
  // ClaimTrainingJob report it): kRequested. FAILED_PRECONDITION for a job that ended;
  // NOT_FOUND for an unknown one.
  virtual absl::StatusOr<CancelRequestOutcome> RequestTrainingCancel(const std::string& job_id,
                                                                     double now_unix_s) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_TRAINING_JOB_STORE_H_
