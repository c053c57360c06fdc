#include "server/executor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace apq::server {

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(const Options& options) {
  if (options.threads < 1 || options.threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, " executor threads: must be in [1, 64], got ", options.threads));
  }
  if (options.queue_capacity < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.name, " executor queue_capacity: must be >= 1, got ", options.queue_capacity));
  }
  std::unique_ptr<Executor> executor(new Executor(options));
  for (int i = 0; i < options.threads; ++i) {
    executor->workers_.emplace_back([raw = executor.get()] { raw->Loop(); });
  }
  return executor;
}

Executor::~Executor() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

absl::Status Executor::Schedule(absl::Time deadline, std::function<void()> task,
                                std::function<void()> expired) {
  absl::MutexLock lock(&mutex_);
  if (tasks_.size() >= static_cast<size_t>(options_.queue_capacity)) {
    ++stats_.refused;
    return absl::ResourceExhaustedError(absl::StrCat("the server's ", options_.name,
                                                     " executor is busy (", options_.queue_capacity,
                                                     " calls waiting); retry later"));
  }
  tasks_.push_back(Task{deadline, std::move(task), std::move(expired)});
  return absl::OkStatus();
}

absl::Status Executor::Schedule(std::function<void()> task) {
  return Schedule(absl::InfiniteFuture(), std::move(task), nullptr);
}

void Executor::Loop() {
  while (true) {
    Task task;
    bool expired = false;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](Executor* executor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(executor->mutex_) {
            return executor->stopping_ || !executor->tasks_.empty();
          },
          this));
      if (tasks_.empty()) return;  // Stopping and drained.
      task = std::move(tasks_.front());
      tasks_.pop_front();
      expired = task.expired && absl::Now() > task.deadline;
      ++(expired ? stats_.expired : stats_.ran);
    }
    if (expired) {
      task.expired();
    } else {
      task.run();
    }
  }
}

Executor::Stats Executor::stats() const {
  absl::MutexLock lock(&mutex_);
  return stats_;
}

}  // namespace apq::server
