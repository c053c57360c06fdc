#include "server/job_runner.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace apq::server {

absl::StatusOr<std::unique_ptr<JobRunner>> JobRunner::Start(const Options& options, Work work,
                                                            std::vector<std::string> recovered) {
  if (options.workers < 1 || options.workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be in [1, 64], got ", options.workers));
  }
  if (options.queue_capacity < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_capacity: must be >= 1, got ", options.queue_capacity));
  }
  std::unique_ptr<JobRunner> runner(new JobRunner(options, std::move(work)));
  {
    absl::MutexLock lock(&runner->mutex_);
    for (std::string& job_id : recovered) runner->queue_.push_back(std::move(job_id));
  }
  for (int i = 0; i < options.workers; ++i) {
    runner->workers_.emplace_back([raw = runner.get()] { raw->WorkerLoop(); });
  }
  return runner;
}

void JobRunner::Stop() {
  shutting_down_ = true;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

JobRunner::~JobRunner() { Stop(); }

JobRunner::Slot& JobRunner::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    runner_ = other.runner_;
    other.runner_ = nullptr;
  }
  return *this;
}

void JobRunner::Slot::Release() {
  if (runner_ == nullptr) return;
  absl::MutexLock lock(&runner_->mutex_);
  --runner_->reserved_slots_;
  runner_ = nullptr;
}

absl::StatusOr<JobRunner::Slot> JobRunner::Reserve() {
  absl::MutexLock lock(&mutex_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (queue_.size() + reserved_slots_ >= static_cast<size_t>(options_.queue_capacity)) {
    return absl::ResourceExhaustedError(absl::StrCat("the ", options_.queue_name,
                                                     " queue is full (", options_.queue_capacity,
                                                     " jobs waiting); retry later"));
  }
  ++reserved_slots_;
  return Slot(this);
}

void JobRunner::Enqueue(Slot slot, std::string job_id) {
  absl::MutexLock lock(&mutex_);
  // The slot's reservation becomes the queue entry.
  slot.runner_ = nullptr;
  --reserved_slots_;
  queue_.push_back(std::move(job_id));
}

JobRunner::CancelOutcome JobRunner::Cancel(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  for (auto queued = queue_.begin(); queued != queue_.end(); ++queued) {
    if (*queued == job_id) {
      queue_.erase(queued);
      return CancelOutcome::kDequeued;
    }
  }
  auto running = running_.find(job_id);
  if (running != running_.end()) {
    running->second->cancel_ = true;
    return CancelOutcome::kSignalled;
  }
  return CancelOutcome::kNotHeld;
}

void JobRunner::Requeue(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  queue_.push_front(job_id);
}

void JobRunner::EnqueueClaimed(std::string job_id) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back(std::move(job_id));
}

bool JobRunner::Abandon(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  for (auto queued = queue_.begin(); queued != queue_.end(); ++queued) {
    if (*queued == job_id) {
      queue_.erase(queued);
      return true;
    }
  }
  auto running = running_.find(job_id);
  if (running == running_.end()) return false;
  running->second->abandoned_ = true;
  return true;
}

int JobRunner::idle_workers() const {
  absl::MutexLock lock(&mutex_);
  if (stopping_) return 0;
  const int busy = static_cast<int>(running_.size() + queue_.size());
  return busy >= options_.workers ? 0 : options_.workers - busy;
}

size_t JobRunner::queued() const {
  absl::MutexLock lock(&mutex_);
  return queue_.size();
}

void JobRunner::WorkerLoop() {
  while (true) {
    std::string job_id;
    std::shared_ptr<Control> control;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](JobRunner* runner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(runner->mutex_) {
            return runner->stopping_ || !runner->queue_.empty();
          },
          this));
      if (stopping_) return;
      job_id = std::move(queue_.front());
      queue_.pop_front();
      control.reset(new Control(&shutting_down_));
      running_[job_id] = control;
    }
    work_(job_id, *control);
    absl::MutexLock lock(&mutex_);
    running_.erase(job_id);
  }
}

absl::Status WriteWithRetries(const std::function<absl::Status()>& write, int attempts,
                              absl::Duration first_wait) {
  absl::Status status;
  absl::Duration wait = first_wait;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(wait);
      wait *= 2;
    }
    status = write();
    if (status.ok() || absl::IsFailedPrecondition(status) || absl::IsInvalidArgument(status) ||
        absl::IsNotFound(status) || absl::IsAlreadyExists(status)) {
      break;
    }
  }
  return status;
}

bool ProgressThrottle::ShouldWrite(const std::string& stage, bool last_of_stage, absl::Time now) {
  if (written_ && stage == last_stage_ && !last_of_stage && now - last_write_ < interval_) {
    return false;
  }
  written_ = true;
  last_stage_ = stage;
  last_write_ = now;
  return true;
}

}  // namespace apq::server
