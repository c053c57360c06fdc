#include "server/background_commits.h"

#include <utility>

namespace apq::server {

BackgroundCommits::BackgroundCommits(std::function<absl::Status(GenerationBatch&)> store)
    : store_(std::move(store)), thread_([this] { Loop(); }) {}

BackgroundCommits::~BackgroundCommits() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void BackgroundCommits::Submit(GenerationBatch batch) {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](BackgroundCommits* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mutex_) {
        return !self->storing_ && !self->next_.has_value();
      },
      this));
  if (!status_.ok()) return;
  next_ = std::move(batch);
}

bool BackgroundCommits::idle() const {
  absl::MutexLock lock(&mutex_);
  return !storing_ && !next_.has_value();
}

absl::Status BackgroundCommits::status() const {
  absl::MutexLock lock(&mutex_);
  return status_;
}

absl::Status BackgroundCommits::Wait() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](BackgroundCommits* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mutex_) {
        return !self->storing_ && !self->next_.has_value();
      },
      this));
  return status_;
}

void BackgroundCommits::Loop() {
  for (;;) {
    GenerationBatch batch;
    {
      absl::MutexLock lock(&mutex_);
      // The destructor's stop comes after the worker's last Submit: a group handed over is
      // stored before the thread ends.
      mutex_.Await(absl::Condition(
          +[](BackgroundCommits* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mutex_) {
            return self->next_.has_value() || self->stopping_;
          },
          this));
      if (!next_.has_value()) return;
      batch = std::move(*next_);
      next_.reset();
      storing_ = true;
    }
    const absl::Status stored = store_(batch);
    absl::MutexLock lock(&mutex_);
    storing_ = false;
    if (status_.ok()) status_ = stored;
  }
}

}  // namespace apq::server
