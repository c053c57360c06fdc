// Runs predictor-training jobs on its own thread, never on gRPC's: validates and stores
// TrainPredictor requests, queues them, trains one at a time (server/predictor_training.h),
// records progress in the store (at most once a second per job, and at every stage change),
// and stores the trained predictor in the same transaction that ends the job. A job that
// fails (diverged, cancelled, too few records) stores nothing else: the space's default
// predictor stays as it was.
//
// Training is not checkpointed: a job that a previous process left queued or running is run
// again from the start when the manager starts (it is deterministic given its seed).
//
// Over a shared store (Options::replica set: one of several apqd replicas over PostgreSQL)
// nothing is recovered at start and nothing is queued where it is submitted: a job waits in
// the store until a replica with an idle worker claims it (TrainingJobStore::ClaimTrainingJob)
// and holds it by a lease renewed every lease / 3 while it trains. A replica that dies stops
// renewing; once the lease expires another replica claims the job and trains it again from
// the start. Cancel goes through the store (RequestTrainingCancel): its holder stops at its
// next renewal. A replica that loses a lease abandons the job without ending it.
//
// Thread safety: every public method may be called from any thread.
#ifndef APQ_SERVER_TRAINING_MANAGER_H_
#define APQ_SERVER_TRAINING_MANAGER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/apq/v1/apq.pb.h"
#include "server/catalog.h"
#include "server/job_runner.h"
#include "server/store/store.h"

namespace apq::server {

// Converts a stored training job to its API form.
apq::v1::TrainingJob TrainingJobToProto(const TrainingJobRecord& job);
// Parses a predictor's stored metrics JSON into `metrics`; unknown or missing keys are left
// at zero.
void PredictorMetricsFromJson(const std::string& metrics_json, apq::v1::PredictorMetrics* metrics);

// The rows of an UploadDataset request after validating every record against the space:
// INVALID_ARGUMENT naming "records[i]" and the reason (config outside the space, accuracy NaN
// or outside [0, 1], seconds negative or not finite, an over-long method, a quantized method in
// a space without bitwidths, a repeat of an earlier record's method and config), "records"
// when there are none or fewer than kMinDatasetRecords. Configs are stored in the space's
// canonical JSON, so the same config written two ways is a repeat; the bits of an fp32
// record are stored at their highest choice, so one architecture measured twice at full
// precision is a repeat whatever bits the records carry.
absl::StatusOr<std::vector<MeasurementRow>> MeasurementRowsFromUpload(
    const oface::SearchSpace& space, const apq::v1::UploadDatasetRequest& request);

class TrainingManager {
 public:
  struct Options {
    int queue_capacity = 16;  // Queued jobs beyond which TrainPredictor is RESOURCE_EXHAUSTED.
    int threads = 2;          // LibTorch / XGBoost threads of a training.
    // A replica over a shared store when `holder` is set (see above); this replica's name in
    // the leases, their length, and how often it looks for jobs.
    struct Replica {
      std::string holder;
      absl::Duration lease = absl::Seconds(15);
      absl::Duration poll_interval = absl::Milliseconds(250);
    };
    Replica replica;
  };

  // Starts the worker and queues the jobs a previous process left unfinished.
  static absl::StatusOr<std::unique_ptr<TrainingManager>> Create(const Options& options,
                                                                 Catalog& catalog, Store& store);
  // Stops the worker: a running job stops after its current epoch and stays `running` in the
  // store, so the next process runs it again (a replica releases its leases, so that another
  // replica claims them at once).
  ~TrainingManager();

  // Validates (see apq.proto), fills in defaults, stores and queues a job.
  absl::StatusOr<apq::v1::TrainingJob> Submit(const apq::v1::TrainPredictorRequest& request);
  // Cancels a queued job at once, a running one after its current epoch (the returned state
  // is then still running; a cancel that comes after the last epoch still ends the job
  // cancelled). FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<apq::v1::TrainingJob> Cancel(const std::string& job_id);

 private:
  TrainingManager(const Options& options, Catalog& catalog, Store& store)
      : options_(options), catalog_(catalog), store_(store) {}
  bool is_replica() const { return !options_.replica.holder.empty(); }
  void RunJob(const std::string& job_id, const JobRunner::Control& control);
  // The replica's loop: renews the leases it holds, claims jobs while its worker is idle.
  void ReplicaLoop();
  void RenewLeases();
  void ClaimJobs();
  // Cancel of a replica: through the store.
  absl::StatusOr<apq::v1::TrainingJob> CancelShared(const std::string& job_id);
  // Ends the job in the store (retrying a failed write); logs when even that fails.
  void Finish(const std::string& job_id, JobState state, const std::string& error,
              const PredictorRecord* predictor);

  const Options options_;
  Catalog& catalog_;
  Store& store_;
  // Replica mode: the jobs this replica holds, when their leases were last renewed, and the
  // loop's stop flag.
  absl::Mutex replica_mutex_;
  std::map<std::string, absl::Time> held_ ABSL_GUARDED_BY(replica_mutex_);
  bool stopping_ ABSL_GUARDED_BY(replica_mutex_) = false;
  bool wake_ ABSL_GUARDED_BY(replica_mutex_) = false;
  std::thread replica_thread_;
  // Last: destroyed first, so no worker runs while the members above go away. One worker:
  // a training uses every LibTorch thread it is given.
  std::unique_ptr<JobRunner> runner_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_TRAINING_MANAGER_H_
