// Measurement runs: the measured accuracies of many subnets, made by worker processes on any
// number of machines (local processes or a Slurm array: server/measure_worker_main.cc) that
// claim the run's tasks from the store, measure them and write each record to the run's
// dataset. A task is held by a lease its worker renews; a worker that dies stops renewing,
// and once the lease expires another worker claims the task again. The contract shared by
// every store (nothing changes on error, status codes, doubles, thread safety) is in store.h.
#ifndef APQ_SERVER_STORE_MEASUREMENT_RUN_STORE_H_
#define APQ_SERVER_STORE_MEASUREMENT_RUN_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

class MeasurementRunStore {
 public:
  virtual ~MeasurementRunStore() = default;

  // Stores a run of one task per config (task i measures configs[i]) and returns its id,
  // "measure-<n>" with n = 1, 2, ... in creation order. Only dataset, space, method, split,
  // seed, settings and created_unix_s are taken from `run`: it starts kQueued with every task
  // pending. INVALID_ARGUMENT for no configs, more than kMaxMeasurementTasks, an empty or
  // repeated config, an empty dataset, space, method or split; NOT_FOUND for an unknown
  // dataset; FAILED_PRECONDITION for a dataset of another space.
  virtual absl::StatusOr<std::string> CreateMeasurementRun(
      const MeasurementRunRecord& run, const std::vector<std::string>& configs) = 0;

  // The run with its task counts. NOT_FOUND for an unknown run.
  virtual absl::StatusOr<MeasurementRunRecord> GetMeasurementRun(const std::string& run_id) = 0;

  // Newest first; `offset`/`limit` page through them (INVALID_ARGUMENT unless offset >= 0
  // and 1 <= limit <= kMaxPageSize).
  virtual absl::StatusOr<std::vector<MeasurementRunRecord>> ListMeasurementRuns(int64_t offset,
                                                                                int limit) = 0;

  // Notes how the run's workers were started (e.g. "slurm 42 (array of 4)" or "local 2"),
  // for listings; at most 256 bytes. NOT_FOUND for an unknown run.
  virtual absl::Status SetMeasurementRunLauncher(const std::string& run_id,
                                                 const std::string& launcher) = 0;

  // Claims up to `max_tasks` (>= 1) tasks of an unfinished run, lowest index first, each
  // pending or held by a lease that expired at `now_unix_s`: they become `holder`'s until
  // `expires_unix_s` (> now_unix_s) and their attempts count one more. The first claim
  // moves the run to kRunning. None when no task is free (or the run ended). Concurrent
  // claimers, here or in other processes, never get the same task while its lease holds.
  // Holder rules and errors as JobStore::ClaimJob's; NOT_FOUND for an unknown run.
  virtual absl::StatusOr<std::vector<MeasurementTask>> ClaimMeasurementTasks(
      const std::string& run_id, const std::string& holder, double now_unix_s,
      double expires_unix_s, int max_tasks) = 0;

  // Extends `holder`'s leases on `task_ids` to `expires_unix_s`; returns those it still
  // holds (a task another worker claimed after the lease expired, or one settled, is left
  // out: its worker should drop it). NOT_FOUND for an unknown run.
  virtual absl::StatusOr<std::vector<int64_t>> RenewMeasurementTasks(
      const std::string& run_id, const std::string& holder, const std::vector<int64_t>& task_ids,
      double expires_unix_s) = 0;

  // Stores a task's measurement in the run's dataset and settles the task as done, in one
  // transaction. `row` must carry the task's config and the run's method and split
  // (INVALID_ARGUMENT naming the field otherwise, and for a row AddMeasurements refuses); a
  // record the dataset already holds (same method and config, e.g. measured by an earlier
  // run) is kept and the task settles all the same. The stored record carries the run's seed
  // whatever row.seed says. The last task to settle ends the run
  // (kSucceeded, or kFailed when any task failed) at row.created_unix_s.
  // FAILED_PRECONDITION when `holder` does not hold the task (its lease was lost, or it
  // settled); NOT_FOUND for an unknown run or task.
  virtual absl::Status CompleteMeasurementTask(const std::string& run_id, int64_t task_id,
                                               const std::string& holder,
                                               const MeasurementRow& row) = 0;

  // Gives a task back after a failure: it becomes pending again unless it has been claimed
  // `max_attempts` (>= 1) times, then it settles as failed with `error` (at most 4096 bytes
  // kept). Ending the run as CompleteMeasurementTask does, at `now_unix_s`.
  // FAILED_PRECONDITION when `holder` does not hold the task; NOT_FOUND for an unknown run
  // or task.
  virtual absl::Status FailMeasurementTask(const std::string& run_id, int64_t task_id,
                                           const std::string& holder, const std::string& error,
                                           int max_attempts, double now_unix_s) = 0;

  // Ends an unfinished run as kCancelled at `now_unix_s`: its unsettled tasks are no longer
  // claimed, and completing a held one is FAILED_PRECONDITION. Records already stored stay
  // in the dataset. FAILED_PRECONDITION for a run that ended; NOT_FOUND for an unknown one.
  virtual absl::Status CancelMeasurementRun(const std::string& run_id, double now_unix_s) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_MEASUREMENT_RUN_STORE_H_
