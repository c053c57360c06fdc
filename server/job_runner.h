// The queue and workers shared by search jobs and predictor-training jobs: a bounded queue
// of job ids, worker threads, cancellation of queued and running jobs, and an orderly stop.
// What a job does, and what the store says of it, is the owner's (JobManager,
// TrainingManager): the runner holds only ids.
//
// Submission is two-phase so that a full queue stores nothing and no store write happens
// under the runner's lock: Reserve a slot, write the job's row, then Enqueue into the slot
// (or drop the slot, which frees it).
//
// Thread safety: every public method may be called from any thread.
#ifndef APQ_SERVER_JOB_RUNNER_H_
#define APQ_SERVER_JOB_RUNNER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace apq::server {

class JobRunner {
 public:
  struct Options {
    std::string queue_name = "job";  // In messages: "the <queue_name> queue is full".
    int workers = 1;                 // Jobs that run at once; in [1, 64].
    int queue_capacity = 64;         // Queued jobs beyond which Reserve fails; >= 1.
  };

  // What a running job sees of the runner; valid while the job's work runs.
  class Control {
   public:
    // Cancel was called for this job while it ran.
    bool cancel_requested() const { return cancel_.load(); }
    // The runner is being destroyed, or the job was abandoned (Abandon: another replica holds
    // it now): the job should stop and stay unfinished in the store, so that the next process
    // (or the other replica) runs it again, and write nothing more.
    bool shutting_down() const { return shutdown_->load() || abandoned_.load(); }
    bool stop_requested() const { return cancel_requested() || shutting_down(); }

   private:
    friend class JobRunner;
    explicit Control(const std::atomic<bool>* shutdown) : shutdown_(shutdown) {}
    std::atomic<bool> cancel_{false};
    std::atomic<bool> abandoned_{false};
    const std::atomic<bool>* shutdown_;
  };

  // Runs one job on a worker thread. It must poll `control` and return soon after a stop.
  using Work = std::function<void(const std::string& job_id, const Control& control)>;

  // Queues `recovered` in the given order (beyond the capacity if need be: they were
  // accepted once) and starts the workers. INVALID_ARGUMENT naming the option when out of
  // range.
  static absl::StatusOr<std::unique_ptr<JobRunner>> Start(const Options& options, Work work,
                                                          std::vector<std::string> recovered);
  // Tells running jobs to stop (Control::shutting_down) and joins the workers; queued jobs
  // stay queued in the store. Idempotent; the destructor calls it.
  void Stop();
  ~JobRunner();

  // A reserved place in the queue; move-only. Destroying an unused slot frees it.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : runner_(other.runner_) { other.runner_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

   private:
    friend class JobRunner;
    explicit Slot(JobRunner* runner) : runner_(runner) {}
    void Release();
    JobRunner* runner_;
  };

  // RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE when the runner is stopping.
  absl::StatusOr<Slot> Reserve();
  // Queues the job into its slot (the job's row must be stored already).
  void Enqueue(Slot slot, std::string job_id);

  enum class CancelOutcome {
    kDequeued,   // It was queued and is no longer: the caller records the cancellation.
    kSignalled,  // It is running: its work sees cancel_requested and records the end.
    kNotHeld,    // Neither queued nor running here.
  };
  CancelOutcome Cancel(const std::string& job_id);
  // Puts a job back at the front of the queue (a dequeued job whose cancellation could not be
  // recorded).
  void Requeue(const std::string& job_id);

  // Queues a job that a replica claimed from a shared store (JobStore::ClaimJob): no slot,
  // since the store accepted it already.
  void EnqueueClaimed(std::string job_id);
  // Stops a job without its end being recorded: a queued one leaves the queue, a running one
  // sees Control::shutting_down. For a job whose lease another replica now holds. False when
  // the job is neither queued nor running here.
  bool Abandon(const std::string& job_id);

  // Jobs waiting, for tests and listings.
  size_t queued() const;
  // Workers that would have nothing to do: workers minus jobs running and queued (>= 0).
  int idle_workers() const;

 private:
  JobRunner(const Options& options, Work work) : options_(options), work_(std::move(work)) {}
  void WorkerLoop();

  const Options options_;
  const Work work_;
  std::atomic<bool> shutting_down_{false};

  mutable absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  size_t reserved_slots_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, std::shared_ptr<Control>> running_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;
};

// Runs a store write until it succeeds or fails for a reason a retry cannot mend
// (FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS): at most `attempts`
// times, waiting `first_wait`, then twice as long each time. A job's end must be recorded
// even when the disk is busy for a moment.
absl::Status WriteWithRetries(const std::function<absl::Status()>& write, int attempts = 5,
                              absl::Duration first_wait = absl::Milliseconds(200));

// Decides when a job's progress is worth a store write: at the first report, at every
// change of stage, at the last step of a stage, and otherwise at most once per interval.
class ProgressThrottle {
 public:
  explicit ProgressThrottle(absl::Duration interval) : interval_(interval) {}
  // True when this report should be written (and then counts as written).
  bool ShouldWrite(const std::string& stage, bool last_of_stage, absl::Time now);

 private:
  const absl::Duration interval_;
  bool written_ = false;
  std::string last_stage_;
  absl::Time last_write_ = absl::InfinitePast();
};

}  // namespace apq::server

#endif  // APQ_SERVER_JOB_RUNNER_H_
