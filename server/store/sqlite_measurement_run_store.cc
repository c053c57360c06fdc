#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;
using store_internal::MeasurementTaskStatus;

constexpr int Stored(MeasurementTaskStatus status) { return static_cast<int>(status); }

// Every column but the settings, which the writes need not read.
constexpr const char* kRunColumns =
    "id, dataset, space, method, split, seed, launcher, state, tasks_total, tasks_done, "
    "tasks_failed, tasks_held, created_unix_s, finished_unix_s, error, max_attempts";
constexpr int kSettingsColumn = 16;  // When selected after kRunColumns.

MeasurementRunRecord ReadRun(const Statement& row) {
  MeasurementRunRecord run;
  run.id = row.ColumnText(0);
  run.dataset = row.ColumnText(1);
  run.space = row.ColumnText(2);
  run.method = row.ColumnText(3);
  run.split = row.ColumnText(4);
  run.seed = static_cast<uint64_t>(row.ColumnInt64(5));
  run.launcher = row.ColumnText(6);
  run.state = static_cast<JobState>(row.ColumnInt(7));
  run.tasks_total = row.ColumnInt64(8);
  run.tasks_done = row.ColumnInt64(9);
  run.tasks_failed = row.ColumnInt64(10);
  run.tasks_held = row.ColumnInt64(11);
  run.created_unix_s = row.ColumnDouble(12);
  run.finished_unix_s = row.ColumnDouble(13);
  run.error = row.ColumnText(14);
  run.max_attempts = row.ColumnInt(15);
  return run;
}

MeasurementRunRecord ReadRunWithSettings(const Statement& row) {
  MeasurementRunRecord run = ReadRun(row);
  run.settings = row.ColumnBlob(kSettingsColumn);
  return run;
}

}  // namespace

absl::StatusOr<MeasurementRunRecord> SqliteMeasurementRunStore::LoadRun(
    const std::string& run_id, absl::string_view operation) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kRunColumns,
                                                  " FROM measurement_runs WHERE id = ?1")));
  select.BindText(1, run_id);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return store_internal::MeasurementRunNotFound(run_id);
  return ReadRun(select);
}

absl::Status SqliteMeasurementRunStore::StoreProgress(const MeasurementRunRecord& run,
                                                      absl::string_view operation) {
  ASSIGN_OR_RETURN(Statement update,
                   database_.Prepare("UPDATE measurement_runs SET state = ?2, tasks_done = ?3, "
                                     "tasks_failed = ?4, tasks_held = ?5, finished_unix_s = ?6, "
                                     "error = ?7 WHERE id = ?1"));
  update.BindText(1, run.id);
  update.BindInt64(2, static_cast<int64_t>(run.state));
  update.BindInt64(3, run.tasks_done);
  update.BindInt64(4, run.tasks_failed);
  update.BindInt64(5, run.tasks_held);
  update.BindDouble(6, run.finished_unix_s, "finished_unix_s");
  update.BindText(7, run.error);
  return update.Run(operation);
}

absl::StatusOr<MeasurementTask> SqliteMeasurementRunStore::LoadHeldTask(
    const std::string& run_id, int64_t task_id, const std::string& holder,
    absl::string_view operation) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT task_index, config_json, attempts, status, "
                                     "lease_holder FROM measurement_tasks "
                                     "WHERE id = ?1 AND run_id = ?2"));
  select.BindInt64(1, task_id);
  select.BindText(2, run_id);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return store_internal::MeasurementTaskNotFound(run_id, task_id);
  if (select.ColumnInt(3) != Stored(MeasurementTaskStatus::kHeld) ||
      select.ColumnText(4) != holder) {
    return store_internal::MeasurementTaskNotHeld(run_id, task_id, holder);
  }
  MeasurementTask task;
  task.id = task_id;
  task.run_id = run_id;
  task.index = select.ColumnInt64(0);
  task.config_json = select.ColumnText(1);
  task.attempts = select.ColumnInt(2);
  return task;
}

absl::Status SqliteMeasurementRunStore::ReleaseTask(MeasurementRunRecord& run, int64_t task_id,
                                                    int status, const std::string& error,
                                                    absl::string_view operation) {
  ASSIGN_OR_RETURN(Statement update,
                   database_.Prepare("UPDATE measurement_tasks SET status = ?2, "
                                     "lease_holder = '', lease_expires_unix_s = 0, error = ?3 "
                                     "WHERE id = ?1"));
  update.BindInt64(1, task_id);
  update.BindInt64(2, status);
  update.BindText(3, error);
  RETURN_IF_ERROR(update.Run(operation));
  --run.tasks_held;
  if (status == Stored(MeasurementTaskStatus::kDone)) ++run.tasks_done;
  if (status == Stored(MeasurementTaskStatus::kFailed)) ++run.tasks_failed;
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteMeasurementRunStore::CreateMeasurementRun(
    const MeasurementRunRecord& run, const std::vector<std::string>& configs) {
  RETURN_IF_ERROR(store_internal::CheckMeasurementRun(run, configs));
  const std::string operation =
      absl::StrCat("creating a measurement run of ", configs.size(), " tasks");
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT space FROM datasets WHERE name = ?1"));
    select.BindText(1, run.dataset);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (!exists) return store_internal::DatasetNotFound(run.dataset);
    const std::string space = select.ColumnText(0);
    if (space != run.space) {
      return store_internal::DatasetOfAnotherSpace(run.dataset, space, run.space);
    }
    ASSIGN_OR_RETURN(
        Statement held,
        database_.Prepare("SELECT split FROM measurements WHERE dataset = ?1 LIMIT 1"));
    held.BindText(1, run.dataset);
    ASSIGN_OR_RETURN(const bool has_rows, held.Step(operation));
    const std::string held_split = has_rows ? held.ColumnText(0) : std::string();
    RETURN_IF_ERROR(
        store_internal::CheckRunSplit(run.dataset, has_rows ? &held_split : nullptr, run.split));
  }
  ASSIGN_OR_RETURN(const int64_t seq, database_.NextSequence("measurement_runs", operation));
  const std::string id = absl::StrCat("measure-", seq);
  {
    ASSIGN_OR_RETURN(
        Statement insert,
        database_.Prepare("INSERT INTO measurement_runs (id, seq, dataset, space, method, split, "
                          "seed, settings, state, tasks_total, created_unix_s, max_attempts) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    insert.BindText(1, id);
    insert.BindInt64(2, seq);
    insert.BindText(3, run.dataset);
    insert.BindText(4, run.space);
    insert.BindText(5, run.method);
    insert.BindText(6, run.split);
    // The seed's bits, read back by the same cast.
    insert.BindInt64(7, static_cast<int64_t>(run.seed));
    insert.BindBlob(8, run.settings);
    insert.BindInt64(9, static_cast<int64_t>(JobState::kQueued));
    insert.BindInt64(10, static_cast<int64_t>(configs.size()));
    insert.BindDouble(11, run.created_unix_s, "created_unix_s");
    insert.BindInt64(12, run.max_attempts);
    RETURN_IF_ERROR(insert.Run(operation));
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare("INSERT INTO measurement_tasks (run_id, task_index, "
                                       "config_json) VALUES (?1, ?2, ?3)"));
    for (size_t i = 0; i < configs.size(); ++i) {
      insert.BindText(1, id);
      insert.BindInt64(2, static_cast<int64_t>(i));
      insert.BindText(3, configs[i]);
      RETURN_IF_ERROR(insert.Run(operation));
      insert.Reset();
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return id;
}

absl::StatusOr<MeasurementRunRecord> SqliteMeasurementRunStore::GetMeasurementRun(
    const std::string& run_id) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat(
                       "SELECT ", kRunColumns, ", settings FROM measurement_runs WHERE id = ?1")));
  select.BindText(1, run_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading measurement run ", run_id)));
  if (!row) return store_internal::MeasurementRunNotFound(run_id);
  return ReadRunWithSettings(select);
}

absl::StatusOr<std::vector<MeasurementRunRecord>> SqliteMeasurementRunStore::ListMeasurementRuns(
    int64_t offset, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(offset, limit));
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kRunColumns,
                                                  ", settings FROM measurement_runs "
                                                  "ORDER BY seq DESC LIMIT ?1 OFFSET ?2")));
  select.BindInt64(1, limit);
  select.BindInt64(2, offset);
  std::vector<MeasurementRunRecord> runs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing measurement runs"));
    if (!row) break;
    runs.push_back(ReadRunWithSettings(select));
  }
  return runs;
}

absl::Status SqliteMeasurementRunStore::SetMeasurementRunLauncher(const std::string& run_id,
                                                                  const std::string& launcher) {
  RETURN_IF_ERROR(store_internal::CheckLauncher(launcher));
  const std::string operation = absl::StrCat("setting the launcher of measurement run ", run_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE measurement_runs SET launcher = ?2 WHERE id = ?1"));
    update.BindText(1, run_id);
    update.BindText(2, launcher);
    RETURN_IF_ERROR(update.Run(operation));
  }
  if (database_.Changes() == 0) return store_internal::MeasurementRunNotFound(run_id);
  return transaction.Commit(operation);
}

absl::StatusOr<std::vector<MeasurementTask>> SqliteMeasurementRunStore::ClaimMeasurementTasks(
    const std::string& run_id, const std::string& holder, double now_unix_s, double expires_unix_s,
    int max_tasks) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  RETURN_IF_ERROR(store_internal::CheckMaxTasks(max_tasks));
  const std::string operation = absl::StrCat("claiming tasks of measurement run ", run_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(MeasurementRunRecord run, LoadRun(run_id, operation));
  if (IsTerminal(run.state)) return std::vector<MeasurementTask>();
  // A held task whose lease expired on its last attempt (its worker died each time) is not
  // claimed again: it settles as failed, as FailMeasurementTask's last attempt does.
  bool settled_any = false;
  {
    struct Exhausted {
      int64_t id = 0;
      int64_t index = 0;
      int attempts = 0;
    };
    std::vector<Exhausted> exhausted;
    {
      ASSIGN_OR_RETURN(Statement select,
                       database_.Prepare("SELECT id, task_index, attempts FROM measurement_tasks "
                                         "WHERE run_id = ?1 AND status = ?2 "
                                         "AND lease_expires_unix_s <= ?3 AND attempts >= ?4 "
                                         "ORDER BY task_index"));
      select.BindText(1, run_id);
      select.BindInt64(2, Stored(MeasurementTaskStatus::kHeld));
      select.BindDouble(3, now_unix_s, "now_unix_s");
      select.BindInt64(4, run.max_attempts);
      while (true) {
        ASSIGN_OR_RETURN(bool row, select.Step(operation));
        if (!row) break;
        exhausted.push_back({select.ColumnInt64(0), select.ColumnInt64(1), select.ColumnInt(2)});
      }
    }
    for (const Exhausted& task : exhausted) {
      const std::string kept =
          store_internal::KeptTaskError(store_internal::WorkerStoppedError(task.attempts));
      RETURN_IF_ERROR(
          ReleaseTask(run, task.id, Stored(MeasurementTaskStatus::kFailed), kept, operation));
      if (run.error.empty()) run.error = store_internal::RunErrorOfTask(task.index, kept);
      store_internal::EndRunIfSettled(run, now_unix_s);
      settled_any = true;
    }
  }
  // The first free tasks are among the first `max_tasks` pending ones and the first
  // `max_tasks` held ones whose lease expired: each a range of measurement_tasks_by_status,
  // read in index order without sorting the run's tasks.
  struct Candidate {
    MeasurementTask task;
    bool pending = false;
  };
  std::vector<Candidate> candidates;
  for (const bool pending : {true, false}) {
    ASSIGN_OR_RETURN(
        Statement select,
        database_.Prepare(absl::StrCat(
            "SELECT id, task_index, config_json, attempts FROM measurement_tasks "
            "WHERE run_id = ?1 AND status = ?2",
            pending ? "" : " AND lease_expires_unix_s <= ?4", " ORDER BY task_index LIMIT ?3")));
    select.BindText(1, run_id);
    select.BindInt64(
        2, Stored(pending ? MeasurementTaskStatus::kPending : MeasurementTaskStatus::kHeld));
    select.BindInt64(3, max_tasks);
    if (!pending) select.BindDouble(4, now_unix_s, "now_unix_s");
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      Candidate candidate;
      candidate.task.id = select.ColumnInt64(0);
      candidate.task.run_id = run_id;
      candidate.task.index = select.ColumnInt64(1);
      candidate.task.config_json = select.ColumnText(2);
      candidate.task.attempts = select.ColumnInt(3) + 1;
      candidate.pending = pending;
      candidates.push_back(std::move(candidate));
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.task.index < b.task.index; });
  if (candidates.size() > static_cast<size_t>(max_tasks)) candidates.resize(max_tasks);
  std::vector<MeasurementTask> claimed;
  claimed.reserve(candidates.size());
  {
    ASSIGN_OR_RETURN(
        Statement update,
        database_.Prepare("UPDATE measurement_tasks SET status = ?2, lease_holder = ?3, "
                          "lease_expires_unix_s = ?4, attempts = attempts + 1 WHERE id = ?1"));
    for (Candidate& candidate : candidates) {
      update.BindInt64(1, candidate.task.id);
      update.BindInt64(2, Stored(MeasurementTaskStatus::kHeld));
      update.BindText(3, holder);
      update.BindDouble(4, expires_unix_s, "expires_unix_s");
      RETURN_IF_ERROR(update.Run(operation));
      update.Reset();
      // A held task taken over was counted held already.
      if (candidate.pending) ++run.tasks_held;
      claimed.push_back(std::move(candidate.task));
    }
  }
  if (!claimed.empty() || settled_any) {
    if (!claimed.empty() && run.state == JobState::kQueued) run.state = JobState::kRunning;
    RETURN_IF_ERROR(StoreProgress(run, operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return claimed;
}

absl::StatusOr<std::vector<int64_t>> SqliteMeasurementRunStore::RenewMeasurementTasks(
    const std::string& run_id, const std::string& holder, const std::vector<int64_t>& task_ids,
    double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  const std::string operation = absl::StrCat("renewing tasks of measurement run ", run_id);
  std::vector<int64_t> ids = task_ids;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT 1 FROM measurement_runs WHERE id = ?1"));
    select.BindText(1, run_id);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (!exists) return store_internal::MeasurementRunNotFound(run_id);
  }
  std::vector<int64_t> renewed;
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE measurement_tasks SET lease_expires_unix_s = ?4 "
                                       "WHERE id = ?1 AND run_id = ?2 AND status = ?5 "
                                       "AND lease_holder = ?3"));
    for (const int64_t id : ids) {
      update.BindInt64(1, id);
      update.BindText(2, run_id);
      update.BindText(3, holder);
      update.BindDouble(4, expires_unix_s, "expires_unix_s");
      update.BindInt64(5, Stored(MeasurementTaskStatus::kHeld));
      RETURN_IF_ERROR(update.Run(operation));
      update.Reset();
      if (database_.Changes() > 0) renewed.push_back(id);
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return renewed;
}

absl::Status SqliteMeasurementRunStore::CompleteMeasurementTask(const std::string& run_id,
                                                                int64_t task_id,
                                                                const std::string& holder,
                                                                const MeasurementRow& row) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  const std::string operation =
      absl::StrCat("completing task ", task_id, " of measurement run ", run_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(MeasurementRunRecord run, LoadRun(run_id, operation));
  ASSIGN_OR_RETURN(const MeasurementTask task, LoadHeldTask(run_id, task_id, holder, operation));
  RETURN_IF_ERROR(store_internal::CheckMeasurementRow(task, run, row));
  MeasurementRow stored = row;
  stored.seed = run.seed;
  absl::Status inserted =
      sqlite_internal::InsertMeasurements(database_, run.dataset, {stored}, operation);
  // A record the dataset holds (nothing was written) is kept, and the task is done.
  if (!inserted.ok() && !absl::IsAlreadyExists(inserted)) return inserted;
  RETURN_IF_ERROR(ReleaseTask(run, task_id, Stored(MeasurementTaskStatus::kDone), "", operation));
  store_internal::EndRunIfSettled(run, row.created_unix_s);
  RETURN_IF_ERROR(StoreProgress(run, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteMeasurementRunStore::FailMeasurementTask(const std::string& run_id,
                                                            int64_t task_id,
                                                            const std::string& holder,
                                                            const std::string& error,
                                                            int max_attempts, double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckMaxAttempts(max_attempts));
  const std::string operation =
      absl::StrCat("failing task ", task_id, " of measurement run ", run_id);
  RETURN_IF_ERROR(store_internal::CheckNotNan(now_unix_s, "now_unix_s", operation));
  const std::string kept = store_internal::KeptTaskError(error);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(MeasurementRunRecord run, LoadRun(run_id, operation));
  ASSIGN_OR_RETURN(const MeasurementTask task, LoadHeldTask(run_id, task_id, holder, operation));
  const bool last_attempt = task.attempts >= max_attempts;
  RETURN_IF_ERROR(ReleaseTask(
      run, task_id,
      Stored(last_attempt ? MeasurementTaskStatus::kFailed : MeasurementTaskStatus::kPending), kept,
      operation));
  if (last_attempt && run.error.empty()) {
    run.error = store_internal::RunErrorOfTask(task.index, kept);
  }
  store_internal::EndRunIfSettled(run, now_unix_s);
  RETURN_IF_ERROR(StoreProgress(run, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteMeasurementRunStore::CancelMeasurementRun(const std::string& run_id,
                                                             double now_unix_s) {
  const std::string operation = absl::StrCat("cancelling measurement run ", run_id);
  RETURN_IF_ERROR(store_internal::CheckNotNan(now_unix_s, "now_unix_s", operation));
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(MeasurementRunRecord run, LoadRun(run_id, operation));
  if (IsTerminal(run.state)) return store_internal::MeasurementRunEnded(run_id, run.state);
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE measurement_tasks SET status = ?2, "
                                       "lease_holder = '', lease_expires_unix_s = 0 "
                                       "WHERE run_id = ?1 AND status IN (?3, ?4)"));
    update.BindText(1, run_id);
    update.BindInt64(2, Stored(MeasurementTaskStatus::kCancelled));
    update.BindInt64(3, Stored(MeasurementTaskStatus::kPending));
    update.BindInt64(4, Stored(MeasurementTaskStatus::kHeld));
    RETURN_IF_ERROR(update.Run(operation));
  }
  run.state = JobState::kCancelled;
  run.finished_unix_s = now_unix_s;
  run.tasks_held = 0;
  RETURN_IF_ERROR(StoreProgress(run, operation));
  return transaction.Commit(operation);
}

}  // namespace apq::server
