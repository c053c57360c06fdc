// Runs search jobs on the server's own threads, never on gRPC's: validates and stores
// submissions, queues them on a bounded queue, runs each with the evolution engine, stores
// every generation in one transaction, fans progress out to watchers, and cancels between
// generations. On start it recovers jobs a previous process left queued or running.
//
// Thread safety: every public method may be called from any thread.
#ifndef APQ_SERVER_JOB_MANAGER_H_
#define APQ_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/apq/v1/apq.pb.h"
#include "server/catalog.h"
#include "server/store/job_store.h"

namespace apq::server {

// Converts a stored job to its API form (the request is parsed from its stored bytes).
apq::v1::Job JobToProto(const JobRecord& job);
apq::v1::Candidate CandidateToProto(const CandidateRecord& candidate);

class JobManager {
 public:
  struct Options {
    int workers = 1;          // Jobs that run at once.
    int queue_capacity = 64;  // Queued jobs beyond which SubmitSearch is RESOURCE_EXHAUSTED.
  };

  // Starts the workers and recovers unfinished jobs: a queued job is queued again; a running
  // one resumes from its last stored generation, or fails with the reason it cannot.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const Options& options,
                                                            Catalog& catalog, JobStore& store);
  // Stops the workers. Running jobs stop between generations and stay `running` in the
  // store, so the next process resumes them.
  ~JobManager();

  // Validates (see apq.proto), fills in defaults, stores and queues a job.
  absl::StatusOr<apq::v1::Job> Submit(const apq::v1::SubmitSearchRequest& request);
  // Cancels a queued or running job (a running one stops after its current generation).
  // FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<apq::v1::Job> Cancel(const std::string& job_id);

  // Receives the job's progress: first its current state at once, then one update per
  // generation; the update whose state is terminal is the last. Called with an internal
  // lock held: it must be quick and must not call back into the manager.
  using Listener = std::function<void(const apq::v1::JobProgress&)>;
  // Returns a subscription id for Unwatch. NOT_FOUND for an unknown job.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, Listener listener);
  // After it returns, the listener is never called again.
  void Unwatch(const std::string& job_id, int64_t subscription);

 private:
  struct LiveJob {
    std::atomic<bool> cancel_requested{false};
    apq::v1::JobProgress progress;  // Latest snapshot.
    std::map<int64_t, Listener> listeners;
  };

  JobManager(const Options& options, Catalog& catalog, JobStore& store);
  absl::Status Recover();
  void WorkerLoop();
  void RunJob(const std::string& job_id);
  // Fails a job in the store and tells its watchers.
  void FailJob(const std::string& job_id, const std::string& reason, double elapsed_s);
  void Publish(const std::string& job_id, const apq::v1::JobProgress& progress);
  std::shared_ptr<LiveJob> FindLive(const std::string& job_id);

  const Options options_;
  Catalog& catalog_;
  JobStore& store_;

  absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::shared_ptr<LiveJob>> live_ ABSL_GUARDED_BY(mutex_);
  size_t reserved_slots_ ABSL_GUARDED_BY(mutex_) = 0;  // Submissions being stored.
  int64_t next_subscription_ ABSL_GUARDED_BY(mutex_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::atomic<bool> shutting_down_{false};
  std::vector<std::thread> workers_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_JOB_MANAGER_H_
