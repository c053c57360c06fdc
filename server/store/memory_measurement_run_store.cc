#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/memory_database.h"
#include "server/store/record_checks.h"

namespace apq::server::memory_internal {
namespace {

using store_internal::MeasurementRunNotFound;
using store_internal::MeasurementTaskStatus;

class MemoryMeasurementRunStore final : public MeasurementRunStore {
 public:
  explicit MemoryMeasurementRunStore(MemoryDatabase& db) : db_(db) {}

  absl::StatusOr<std::string> CreateMeasurementRun(
      const MeasurementRunRecord& run, const std::vector<std::string>& configs) override {
    RETURN_IF_ERROR(store_internal::CheckMeasurementRun(run, configs));
    const std::string operation =
        absl::StrCat("creating a measurement run of ", configs.size(), " tasks");
    absl::MutexLock lock(&db_.mutex);
    auto dataset = db_.datasets.find(run.dataset);
    if (dataset == db_.datasets.end()) return store_internal::DatasetNotFound(run.dataset);
    if (dataset->second.record.space != run.space) {
      return store_internal::DatasetOfAnotherSpace(run.dataset, dataset->second.record.space,
                                                   run.space);
    }
    const std::vector<MeasurementRow>& held = dataset->second.rows;
    RETURN_IF_ERROR(store_internal::CheckRunSplit(
        run.dataset, held.empty() ? nullptr : &held.front().split, run.split));
    StoredMeasurementRun stored;
    MeasurementRunRecord& record = stored.record;
    ASSIGN_OR_RETURN(record.created_unix_s,
                     StoredDouble(run.created_unix_s, "created_unix_s", operation));
    record.id = absl::StrCat("measure-", db_.measurement_runs.size() + 1);
    record.dataset = run.dataset;
    record.space = run.space;
    record.method = run.method;
    record.split = run.split;
    record.seed = run.seed;
    record.settings = run.settings;
    record.max_attempts = run.max_attempts;
    record.tasks_total = static_cast<int64_t>(configs.size());
    stored.first_task_id = db_.next_measurement_task_id;
    stored.tasks.resize(configs.size());
    for (size_t i = 0; i < configs.size(); ++i) {
      MeasurementTask& task = stored.tasks[i].task;
      task.id = stored.first_task_id + static_cast<int64_t>(i);
      task.run_id = record.id;
      task.index = static_cast<int64_t>(i);
      task.config_json = configs[i];
      stored.unsettled.insert(stored.unsettled.end(), task.index);
    }
    db_.next_measurement_task_id += static_cast<int64_t>(configs.size());
    db_.measurement_run_index[record.id] = db_.measurement_runs.size();
    db_.measurement_runs.push_back(std::move(stored));
    return db_.measurement_runs.back().record.id;
  }

  absl::StatusOr<MeasurementRunRecord> GetMeasurementRun(const std::string& run_id) override {
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    return run->record;
  }

  absl::StatusOr<std::vector<MeasurementRunRecord>> ListMeasurementRuns(int64_t offset,
                                                                        int limit) override {
    RETURN_IF_ERROR(store_internal::CheckPage(offset, limit));
    absl::MutexLock lock(&db_.mutex);
    std::vector<MeasurementRunRecord> runs;
    const int64_t count = static_cast<int64_t>(db_.measurement_runs.size());
    for (int64_t i = count - 1 - offset; i >= 0 && static_cast<int>(runs.size()) < limit; --i) {
      runs.push_back(db_.measurement_runs[i].record);
    }
    return runs;
  }

  absl::Status SetMeasurementRunLauncher(const std::string& run_id,
                                         const std::string& launcher) override {
    RETURN_IF_ERROR(store_internal::CheckLauncher(launcher));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    run->record.launcher = launcher;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<MeasurementTask>> ClaimMeasurementTasks(const std::string& run_id,
                                                                     const std::string& holder,
                                                                     double now_unix_s,
                                                                     double expires_unix_s,
                                                                     int max_tasks) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
    RETURN_IF_ERROR(store_internal::CheckMaxTasks(max_tasks));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    std::vector<MeasurementTask> claimed;
    if (IsTerminal(run->record.state)) return claimed;
    // A held task whose lease expired on its last attempt (its worker died each time) is
    // not claimed again: it settles as failed, as FailMeasurementTask's last attempt does.
    for (auto it = run->unsettled.begin(); it != run->unsettled.end();) {
      StoredMeasurementTask& task = run->tasks[*it];
      ++it;  // Release erases the settled task's index.
      if (task.status != MeasurementTaskStatus::kHeld || task.lease_expires_unix_s > now_unix_s ||
          task.task.attempts < run->record.max_attempts) {
        continue;
      }
      const std::string kept =
          store_internal::KeptTaskError(store_internal::WorkerStoppedError(task.task.attempts));
      Release(*run, task, MeasurementTaskStatus::kFailed, kept);
      if (run->record.error.empty()) {
        run->record.error = store_internal::RunErrorOfTask(task.task.index, kept);
      }
      // Checked not NaN by CheckLeaseTimes.
      store_internal::EndRunIfSettled(run->record, now_unix_s);
    }
    if (IsTerminal(run->record.state)) return claimed;
    for (const int64_t index : run->unsettled) {
      if (static_cast<int>(claimed.size()) == max_tasks) break;
      StoredMeasurementTask& task = run->tasks[index];
      if (task.status == MeasurementTaskStatus::kHeld) {
        if (task.lease_expires_unix_s > now_unix_s) continue;
      } else {
        // A held task taken over was counted held already.
        ++run->record.tasks_held;
      }
      task.status = MeasurementTaskStatus::kHeld;
      task.lease_holder = holder;
      task.lease_expires_unix_s = expires_unix_s;
      ++task.task.attempts;
      claimed.push_back(task.task);
    }
    if (!claimed.empty() && run->record.state == JobState::kQueued) {
      run->record.state = JobState::kRunning;
    }
    return claimed;
  }

  absl::StatusOr<std::vector<int64_t>> RenewMeasurementTasks(const std::string& run_id,
                                                             const std::string& holder,
                                                             const std::vector<int64_t>& task_ids,
                                                             double expires_unix_s) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
    std::vector<int64_t> ids = task_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    std::vector<int64_t> renewed;
    for (const int64_t id : ids) {
      StoredMeasurementTask* task = FindTask(*run, id);
      if (task == nullptr || task->status != MeasurementTaskStatus::kHeld ||
          task->lease_holder != holder) {
        continue;
      }
      task->lease_expires_unix_s = expires_unix_s;
      renewed.push_back(id);
    }
    return renewed;
  }

  absl::Status CompleteMeasurementTask(const std::string& run_id, int64_t task_id,
                                       const std::string& holder,
                                       const MeasurementRow& row) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    const std::string operation =
        absl::StrCat("completing task ", task_id, " of measurement run ", run_id);
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    ASSIGN_OR_RETURN(StoredMeasurementTask * task, HeldTask(*run, task_id, holder));
    RETURN_IF_ERROR(store_internal::CheckMeasurementRow(task->task, run->record, row));
    // The run's dataset is never deleted (DatasetStore has no deletion).
    StoredDataset& dataset = db_.datasets.at(run->record.dataset);
    MeasurementRow stored = row;
    stored.seed = run->record.seed;
    absl::Status appended = db_.AppendMeasurements(dataset, {stored}, operation);
    // A record the dataset holds (nothing was appended) is kept, and the task is done.
    if (!appended.ok() && !absl::IsAlreadyExists(appended)) return appended;
    Release(*run, *task, MeasurementTaskStatus::kDone, "");
    // Checked not NaN by CheckMeasurementRow.
    store_internal::EndRunIfSettled(run->record, row.created_unix_s);
    return absl::OkStatus();
  }

  absl::Status FailMeasurementTask(const std::string& run_id, int64_t task_id,
                                   const std::string& holder, const std::string& error,
                                   int max_attempts, double now_unix_s) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    RETURN_IF_ERROR(store_internal::CheckMaxAttempts(max_attempts));
    const std::string operation =
        absl::StrCat("failing task ", task_id, " of measurement run ", run_id);
    ASSIGN_OR_RETURN(const double now, StoredDouble(now_unix_s, "now_unix_s", operation));
    const std::string kept = store_internal::KeptTaskError(error);
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    ASSIGN_OR_RETURN(StoredMeasurementTask * task, HeldTask(*run, task_id, holder));
    const bool last_attempt = task->task.attempts >= max_attempts;
    Release(*run, *task,
            last_attempt ? MeasurementTaskStatus::kFailed : MeasurementTaskStatus::kPending, kept);
    if (last_attempt && run->record.error.empty()) {
      run->record.error = store_internal::RunErrorOfTask(task->task.index, kept);
    }
    store_internal::EndRunIfSettled(run->record, now);
    return absl::OkStatus();
  }

  absl::Status CancelMeasurementRun(const std::string& run_id, double now_unix_s) override {
    const std::string operation = absl::StrCat("cancelling measurement run ", run_id);
    ASSIGN_OR_RETURN(const double now, StoredDouble(now_unix_s, "now_unix_s", operation));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredMeasurementRun * run, Find(run_id));
    if (IsTerminal(run->record.state)) {
      return store_internal::MeasurementRunEnded(run_id, run->record.state);
    }
    for (const int64_t index : run->unsettled) {
      StoredMeasurementTask& task = run->tasks[index];
      task.status = MeasurementTaskStatus::kCancelled;
      task.lease_holder.clear();
      task.lease_expires_unix_s = 0.0;
    }
    run->unsettled.clear();
    run->record.state = JobState::kCancelled;
    run->record.finished_unix_s = now;
    run->record.tasks_held = 0;
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<StoredMeasurementRun*> Find(const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    auto found = db_.measurement_run_index.find(run_id);
    if (found == db_.measurement_run_index.end()) return MeasurementRunNotFound(run_id);
    return &db_.measurement_runs[found->second];
  }

  // The run's task `task_id`, or null.
  static StoredMeasurementTask* FindTask(StoredMeasurementRun& run, int64_t task_id) {
    const int64_t index = task_id - run.first_task_id;
    if (index < 0 || index >= static_cast<int64_t>(run.tasks.size())) return nullptr;
    return &run.tasks[index];
  }

  // The run's task `task_id` held by `holder`: NOT_FOUND for no task of the run,
  // FAILED_PRECONDITION when `holder` does not hold it.
  static absl::StatusOr<StoredMeasurementTask*> HeldTask(StoredMeasurementRun& run, int64_t task_id,
                                                         const std::string& holder) {
    StoredMeasurementTask* task = FindTask(run, task_id);
    if (task == nullptr) return store_internal::MeasurementTaskNotFound(run.record.id, task_id);
    if (task->status != MeasurementTaskStatus::kHeld || task->lease_holder != holder) {
      return store_internal::MeasurementTaskNotHeld(run.record.id, task_id, holder);
    }
    return task;
  }

  // Gives up the lease of the held `task`, which becomes `status` (pending again or settled)
  // with `error`, and counts it.
  static void Release(StoredMeasurementRun& run, StoredMeasurementTask& task,
                      MeasurementTaskStatus status, const std::string& error) {
    task.status = status;
    task.lease_holder.clear();
    task.lease_expires_unix_s = 0.0;
    task.error = error;
    --run.record.tasks_held;
    if (status == MeasurementTaskStatus::kDone) ++run.record.tasks_done;
    if (status == MeasurementTaskStatus::kFailed) ++run.record.tasks_failed;
    if (status != MeasurementTaskStatus::kPending) run.unsettled.erase(task.task.index);
  }

  MemoryDatabase& db_;
};

}  // namespace

std::unique_ptr<MeasurementRunStore> NewMemoryMeasurementRunStore(MemoryDatabase& db) {
  return std::make_unique<MemoryMeasurementRunStore>(db);
}

}  // namespace apq::server::memory_internal
