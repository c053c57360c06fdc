// A bounded set of threads for the server's RPC work. The server has two: one for cheap
// calls (store reads, cost-only evaluations, submissions) and one for LibTorch work
// (measured evaluations, TorchScript exports), so a cheap call never waits behind a
// measurement. Each has a bounded queue: a call that finds it full is refused at once
// (RESOURCE_EXHAUSTED) instead of piling up memory; a call whose deadline passed while it
// waited is answered without running.
//
// Thread safety: Schedule may be called from any thread; the destructor runs every task
// already scheduled, then joins.
#ifndef APQ_SERVER_EXECUTOR_H_
#define APQ_SERVER_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
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

class Executor {
 public:
  struct Options {
    std::string name = "rpc";  // In messages: "the <name> executor is busy".
    int threads = 2;           // In [1, 64].
    int queue_capacity = 256;  // Tasks waiting beyond which Schedule refuses; >= 1.
  };

  // INVALID_ARGUMENT naming the option when out of range.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(const Options& options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. When a thread takes it after `deadline`, `expired` runs instead (the
  // caller answers DEADLINE_EXCEEDED). RESOURCE_EXHAUSTED, with neither run, when the queue
  // is full.
  absl::Status Schedule(absl::Time deadline, std::function<void()> task,
                        std::function<void()> expired);
  // Schedule without a deadline; the task always runs.
  absl::Status Schedule(std::function<void()> task);

  const std::string& name() const { return options_.name; }

  // What became of the tasks scheduled so far: for operators, and for tests that must tell
  // a task that ran from one answered without running.
  struct Stats {
    int64_t ran = 0;
    int64_t expired = 0;  // Answered without running: their deadline had passed.
    int64_t refused = 0;  // Refused by a full queue.
  };
  Stats stats() const;

 private:
  struct Task {
    absl::Time deadline;
    std::function<void()> run;
    std::function<void()> expired;
  };

  explicit Executor(const Options& options) : options_(options) {}
  void Loop();

  const Options options_;
  mutable absl::Mutex mutex_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mutex_);
  Stats stats_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_EXECUTOR_H_
