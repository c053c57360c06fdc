// Search jobs: validates and stores submissions, queues them on the shared job runner, runs
// each with the engine it names (search/engine.h), stores its steps in group commits (the
// distinct networks the steps met with their counts, progress, best and checkpoint in one
// transaction, at most one per commit interval: pending_steps.h), fans progress out to
// watchers as it is stored, and cancels between steps. A job that asks for verification (apq.proto
// Verification) then measures its finalists on the space's supernet, on the job's worker thread,
// one stored measurement at a time, and its best becomes the measured best. At the end it marks the
// job's Pareto front (search/pareto.h). On start it recovers jobs a previous process left queued or
// running.
//
// Resuming: a job whose search stage ended (JobStore::BeginVerification, stored once the
// engine finished) skips its engine and measures only the finalists without a stored
// measurement; one still in its search stage resumes its engine from the last stored step's
// checkpoint (an engine that had finished returns at once) and then verifies. Steps run
// after the last group commit are lost by a crash or a shutdown alike and run again: the
// engine is deterministic, so the record is the one an uninterrupted run leaves.
//
// Thread safety: every public method may be called from any thread.
#ifndef APQ_SERVER_JOB_MANAGER_H_
#define APQ_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "predictor/shared_predictions.h"
#include "proto/apq/v1/apq.pb.h"
#include "search/budgets.h"
#include "search/engine_registry.h"
#include "server/catalog.h"
#include "server/job_runner.h"
#include "server/measurement_runs.h"
#include "server/search_request.h"
#include "server/store/dataset_store.h"
#include "server/store/job_store.h"
#include "server/supernet_host.h"

namespace apq::server {

// Converts a stored job to its API form (the request is parsed from its stored bytes; its
// engine says the job's step count). Its `best` is the deployable one: the verified best
// when the job has one, else the engine's (`predicted_best`).
apq::v1::Job JobToProto(const JobRecord& job, const search::EngineRegistry& engines);
// A stored candidate of job `job_id` in its API form, with its resource name.
apq::v1::Candidate CandidateToProto(const std::string& job_id, const CandidateRecord& candidate);

// Stores, in the store, the label of every job stored before it kept labels (read from the
// job's request), so that listing by label finds them. Called by JobManager::Create.
absl::Status CopyLabelsFromRequests(JobStore& store);

// The dataset a job's finalists measured by workers go to: "<job id>-finalists".
std::string FinalistsDataset(const std::string& job_id);

class JobManager {
 public:
  struct Options {
    int workers = 1;          // Jobs that run at once.
    int queue_capacity = 64;  // Queued jobs beyond which SubmitSearch is RESOURCE_EXHAUSTED.
    // A running search stores its first step at once, then its steps in groups, one group
    // commit when this much time has passed since the last and the group before is stored
    // (groups are stored on a thread of their own while the search goes on), and the rest
    // when its engine returns. Zero stores every step in its own transaction. >= 0.
    absl::Duration commit_interval = absl::Milliseconds(50);
    // Work one job may do: candidates its engine plans to score (Engine::PlannedCandidates;
    // more is RESOURCE_EXHAUSTED at submission), and wall time once running (a job still
    // running then fails, keeping what it stored). 0: no limit.
    int64_t max_candidates_per_job = 0;
    absl::Duration max_job_duration = absl::ZeroDuration();
    // Rows a job may store (scored networks, and the infeasible draws of keep_all_draws, which
    // the candidates cap does not bound); a job that reaches it stops and fails, keeping its
    // rows. 0: no limit.
    int64_t max_rows_per_job = 0;
    // Where engines keep their artifacts (a job's outputs, shared caches:
    // server/job_artifacts.h); null: they keep none. Outlives the manager.
    ArtifactStore* artifacts = nullptr;
    // Starts the measurement runs of verifications by workers (Verification.workers); null:
    // such jobs are refused (FAILED_PRECONDITION). Outlives the manager.
    MeasurementRunManager* measurement_runs = nullptr;
    // One of several replicas over one shared store (PostgreSQL), when `holder` is set: jobs
    // are not run where they are submitted but claimed from the store by whichever replica
    // has an idle worker (JobStore::ClaimJob), each held by a lease renewed every lease / 3
    // while it runs. A replica that dies stops renewing; once its leases expire, another
    // claims its jobs and resumes them from their checkpoints. Cancellation, watching and
    // the queue bound work across replicas through the store. Unset `holder`: this process
    // alone runs the store's jobs (and recovers them at start).
    struct Replica {
      std::string holder;  // This replica's name in the leases (unique among replicas).
      absl::Duration lease = absl::Seconds(15);
      // How often an idle replica looks for jobs, and watched jobs of other replicas are
      // read for their progress.
      absl::Duration poll_interval = absl::Milliseconds(250);
    };
    Replica replica;
  };

  // Starts the workers and recovers unfinished jobs: a queued job is queued again; a running
  // one resumes from its last stored step (or stored measurement), or fails with the reason
  // it cannot. A replica (Options::replica) recovers nothing itself: it claims jobs, its
  // predecessor's among them once their leases have expired. `datasets` receives verification
  // measurements (Verification.dataset); `supernets` measures finalists. All references must
  // outlive the manager. INVALID_ARGUMENT naming the option when one is out of range.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const Options& options,
                                                            Catalog& catalog, JobStore& store,
                                                            DatasetStore& datasets,
                                                            SupernetHost& supernets,
                                                            const search::EngineRegistry& engines);
  // Stops the workers. Running jobs stop between steps and stay `running` in the store, so
  // the next process resumes them (a replica releases their leases, so that another replica
  // resumes them at once).
  ~JobManager();

  // Validates (see apq.proto; verification: FAILED_PRECONDITION naming the space when it has
  // no supernet, naming the dataset when it holds another space's or another split's
  // records), fills in the engine's defaults, stores and queues a job owned by `owner` (a
  // token id; empty without authentication).
  // With `max_active_jobs` > 0, RESOURCE_EXHAUSTED naming the quota when `owner` already has
  // that many jobs queued or running.
  absl::StatusOr<apq::v1::Job> Submit(const apq::v1::SubmitSearchRequest& request,
                                      const std::string& owner = "", int max_active_jobs = 0);
  // Validates every scenario as Submit would its request (errors name
  // "scenarios[<i>].<field>"), then stores all the scenarios' jobs at once and queues them
  // (RESOURCE_EXHAUSTED, storing nothing, when the queue cannot take them all; ABORTED when
  // the space's default predictor changed while the scenarios were resolved). The jobs of a
  // sweep share their predictions (predictor/shared_predictions.h) while any of them runs.
  absl::StatusOr<apq::v1::Sweep> SubmitSweep(const apq::v1::SubmitSweepRequest& request,
                                             const std::string& owner = "",
                                             int max_active_jobs = 0);
  // The sweep's scenarios in order, each with its job and, once the job ended and
  // `with_fronts`, its Pareto front by ascending cost. NOT_FOUND for an unknown sweep.
  absl::StatusOr<apq::v1::Sweep> GetSweep(const std::string& sweep_id, bool with_fronts = true);
  // The most scenarios of one sweep.
  static constexpr int kMaxSweepScenarios = 256;
  // Cancels a queued or running job (a running one stops after its current step, or within
  // a batch of its current measurement).
  // FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<apq::v1::Job> Cancel(const std::string& job_id);
  // Deletes an ended job (JobStore::DeleteJob) and forgets it.
  absl::Status Delete(const std::string& job_id);
  // Deletes, in batches, every ended job that finished more than `age` ago; returns how many.
  absl::StatusOr<int64_t> DeleteFinishedBefore(absl::Duration age);

  // Receives the job's progress: first its current state at once, then one update per
  // group of steps stored (at most one per commit interval) and per finalist measured; the
  // update whose state is terminal is the last. Called with an internal lock
  // held: it must be quick and must not call back into the manager.
  using Listener = std::function<void(const apq::v1::JobProgress&)>;
  // Returns a subscription id for Unwatch. NOT_FOUND for an unknown job.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, Listener listener);
  // After it returns, the listener is never called again.
  void Unwatch(const std::string& job_id, int64_t subscription);

  // Feasible candidates scored (repeats included, as Job.candidates_evaluated counts them) by
  // the jobs of this process since it started, as their steps were stored.
  int64_t candidates_scored() const { return candidates_scored_.load(); }
  // Jobs queued for a worker.
  size_t queued_jobs() const;

 private:
  struct LiveJob {
    apq::v1::JobProgress progress;  // Latest snapshot.
    std::map<int64_t, Listener> listeners;
    // A sweep's jobs share one (set at submission or recovery); null for a lone job. The
    // predictions live while a job of the sweep is live.
    std::shared_ptr<predictor::SharedPredictions> sweep_predictions;
    std::string sweep_id;  // Of a sweep's job, for a replica's later claims of its others.
  };

  JobManager(const Options& options, Catalog& catalog, JobStore& store, DatasetStore& datasets,
             SupernetHost& supernets, const search::EngineRegistry& engines)
      : options_(options),
        catalog_(catalog),
        store_(store),
        datasets_(datasets),
        supernets_(supernets),
        engines_(engines) {}
  void RunJob(const std::string& job_id, const JobRunner::Control& control);
  bool is_replica() const { return !options_.replica.holder.empty(); }
  // A replica's loop: renews the leases of its jobs, claims jobs while it has idle workers,
  // and relays the stored progress of watched jobs that other replicas run.
  void ReplicaLoop();
  void RenewLeases();
  void ClaimJobs();
  void RelayRemoteProgress();
  // A replica's queue bound: RESOURCE_EXHAUSTED when the store's queued jobs (every
  // replica's) plus `adding` exceed queue_capacity.
  absl::Status CheckSharedQueue(int adding);
  // Wakes the replica loop to claim a job submitted here.
  void ClaimSoon();
  // Makes a claimed job live here (progress, sweep predictions) and queues it; one claimed
  // with a pending cancellation ends here instead. False when it could not be read (it is
  // released again).
  bool TakeClaimedJob(const ClaimedJob& claimed);
  // Signals a job running here to stop for a cancellation (true), or takes it out of the local
  // queue (false: the caller gives its lease back, so that a claim ends it).
  bool StopForCancellation(const std::string& job_id);
  // Before a write to a job: OK outside replica mode and while this replica's lease on it is
  // fresh (renewed less than half a lease ago); otherwise renews it, and when the lease was
  // lost abandons the job here and returns FAILED_PRECONDITION "lease lost: ..." (the write
  // must not happen: another replica may be running the job).
  absl::Status FenceLease(const std::string& job_id);
  static bool IsLeaseLost(const absl::Status& status);
  // The live job's sweep predictions, or null.
  std::shared_ptr<predictor::SharedPredictions> SweepPredictions(const std::string& job_id);
  // The job's Pareto front, by ascending `cost`.
  absl::StatusOr<std::vector<CandidateRecord>> ParetoFront(const std::string& job_id,
                                                           search::CostMetric cost);
  // The verification stage of a job whose engine finished with a best: begins it in the
  // store (or finds it begun), measures each finalist without a stored measurement, stores
  // it with the measured best so far and adds it to the request's dataset, then ends the job.
  // On shutdown it returns with the job running; on cancellation it ends it CANCELLED.
  void Verify(const std::string& job_id, const apq::v1::SubmitSearchRequest& request,
              search::CostMetric pareto_cost, const JobRunner::Control& control,
              const std::function<double()>& elapsed_now);
  // Verify's measurements by a measurement run (Verification.workers) of the finalists not
  // measured yet, on the job's dataset FinalistsDataset(job_id); `record` stores each as it
  // lands there. True with every finalist measured; false once the job was ended by `fail`
  // or left by `stopped`.
  bool VerifyByWorkers(
      const std::string& job_id, const apq::v1::SubmitSearchRequest& request, bool quantized,
      std::vector<CandidateRecord>& finalists,
      const std::function<absl::Status(CandidateRecord&, const CandidateMeasurement&)>& record,
      const JobRunner::Control& control, const std::function<void(const std::string&)>& fail,
      const std::function<void()>& stopped);
  // The job's `top_k` distinct feasible configurations by predicted accuracy (ties: the
  // earlier id), each its first stored row, with their measurements.
  absl::StatusOr<std::vector<CandidateRecord>> Finalists(const std::string& job_id, int top_k);
  // Adds a finalist's measurement to `dataset`, creating it for `space` if absent; a record
  // it holds (same method and config, the store's ALREADY_EXISTS) is not added again.
  // Retries a failed write.
  absl::Status AddToDataset(const std::string& dataset, const std::string& space,
                            const std::string& job_id, const MeasurementRow& row);
  // Submit's verification checks that need the server's supernets and datasets.
  // RESOURCE_EXHAUSTED naming quota max_candidates_per_job when `resolved` plans more.
  absl::Status CheckJobWork(const ResolvedSearch& resolved) const;
  // RESOURCE_EXHAUSTED naming quota max_active_jobs when `owner` has `max_active_jobs` jobs
  // queued or running minus fewer than `adding`. Called with submit_mutex_ held, so that
  // concurrent submissions of one owner cannot both pass.
  absl::Status CheckActiveJobs(const std::string& owner, int max_active_jobs, int adding)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(submit_mutex_);
  absl::Status CheckVerificationTargets(const apq::v1::SubmitSearchRequest& request);
  // FAILED_PRECONDITION naming the request's verification dataset when it exists and holds
  // another space's records or records of another split than validation; OK when there is
  // none (it is created on first use).
  absl::Status CheckVerificationDataset(const apq::v1::SubmitSearchRequest& request);
  // Ends the job (EndJob) with its Pareto front: `known_front` when given (the ids of the
  // front of every stored candidate, kept while the job ran), else computed from the stored
  // candidates; fails the job when they cannot be read.
  void EndWithFront(const std::string& job_id, JobState state, const std::string& error,
                    double elapsed_s, search::CostMetric pareto_cost,
                    const std::vector<int64_t>* known_front = nullptr);
  // A stored group: the stored best's id, and the row ids of the group's candidates (unset
  // when the write's acknowledgement was lost and a retry found the group stored).
  struct StoredSteps {
    int64_t best_id = 0;
    std::optional<std::vector<int64_t>> candidate_ids;
  };
  // Stores a group of steps of a running job, retrying a failed write.
  absl::StatusOr<StoredSteps> AppendSteps(const std::string& job_id, const GenerationBatch& batch);
  // Ends a job in the store (retrying a failed write) and tells its watchers.
  void EndJob(const std::string& job_id, JobState state, const std::string& error, double elapsed_s,
              const std::vector<int64_t>& pareto_front_ids);
  void Publish(const std::string& job_id, const apq::v1::JobProgress& progress);
  apq::v1::JobProgress ProgressFromRecord(const JobRecord& job) const;
  // Calls `visit` with each feasible candidate of the job in `order`, read `page_size` at a
  // time, until it returns false.
  absl::Status ForEachFeasibleCandidate(const std::string& job_id, CandidateOrder order,
                                        int page_size,
                                        const std::function<bool(CandidateRecord&)>& visit);
  // The ids of the job's Pareto front over every stored feasible candidate.
  absl::StatusOr<std::vector<int64_t>> ParetoFrontIds(const std::string& job_id,
                                                      search::CostMetric cost);

  const Options options_;
  Catalog& catalog_;
  JobStore& store_;
  DatasetStore& datasets_;
  SupernetHost& supernets_;
  const search::EngineRegistry& engines_;

  absl::Mutex mutex_;
  // Held from an owner's count of active jobs to the creation of the new ones.
  absl::Mutex submit_mutex_;
  std::map<std::string, std::shared_ptr<LiveJob>> live_ ABSL_GUARDED_BY(mutex_);
  int64_t next_subscription_ ABSL_GUARDED_BY(mutex_) = 1;
  // Replica mode: the jobs this replica holds leases on (claimed, not yet ended or
  // released), and when each lease was last renewed.
  absl::Mutex replica_mutex_;
  std::map<std::string, absl::Time> held_ ABSL_GUARDED_BY(replica_mutex_);
  bool replica_stopping_ ABSL_GUARDED_BY(replica_mutex_) = false;
  bool claim_soon_ ABSL_GUARDED_BY(replica_mutex_) = false;  // A job was submitted here.
  std::thread replica_thread_;
  // Last: destroyed first, so no worker runs while the members above go away.
  std::unique_ptr<JobRunner> runner_;
  std::atomic<int64_t> candidates_scored_{0};
};

}  // namespace apq::server

#endif  // APQ_SERVER_JOB_MANAGER_H_
