#include <algorithm>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

using Mode = PostgresDatabase::Mode;

// The status column of measurement_tasks.
enum class TaskStatus : int64_t { kPending = 1, kHeld = 2, kDone = 3, kFailed = 4, kCancelled = 5 };

// Columns of a run in the order ReadRun expects (of `measurement_runs r`); the held count
// is counted from its tasks.
constexpr const char* kRunColumns =
    "r.id, r.dataset, r.space, r.method, r.split, r.seed, r.settings, r.launcher, r.state, "
    "r.tasks_total, r.tasks_done, r.tasks_failed, r.created_unix_s, r.finished_unix_s, r.error, "
    "(SELECT COUNT(*) FROM measurement_tasks t WHERE t.run_id = r.id AND t.status = 2), "
    "r.max_attempts";

MeasurementRunRecord ReadRun(const pqxx::row& row) {
  MeasurementRunRecord run;
  run.id = FieldBytes(row[0]);
  run.dataset = FieldBytes(row[1]);
  run.space = FieldBytes(row[2]);
  run.method = FieldBytes(row[3]);
  run.split = FieldBytes(row[4]);
  // The seed's bits, stored by the same cast.
  run.seed = static_cast<uint64_t>(FieldInt(row[5]));
  run.settings = FieldBytes(row[6]);
  run.launcher = FieldBytes(row[7]);
  run.state = static_cast<JobState>(FieldInt(row[8]));
  run.tasks_total = FieldInt(row[9]);
  run.tasks_done = FieldInt(row[10]);
  run.tasks_failed = FieldInt(row[11]);
  run.created_unix_s = FieldDouble(row[12]);
  run.finished_unix_s = FieldDouble(row[13]);
  run.error = FieldBytes(row[14]);
  run.tasks_held = FieldInt(row[15]);
  run.max_attempts = static_cast<int>(FieldInt(row[16]));
  return run;
}

// The run, its row locked until the transaction ends (the writers of one run's counters and
// state then run one at a time); NOT_FOUND for an unknown run.
absl::StatusOr<MeasurementRunRecord> LockRun(PostgresTransaction& tx, const std::string& run_id) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   tx.Exec(absl::StrCat("SELECT ", kRunColumns,
                                        " FROM measurement_runs r WHERE r.id = $1::bytea "
                                        "FOR UPDATE OF r"),
                           PostgresParams().Bytes(run_id)));
  if (rows.empty()) return store_internal::MeasurementRunNotFound(run_id);
  return ReadRun(rows[0]);
}

// The task as `holder` holds it; FAILED_PRECONDITION when it does not (lost lease, settled,
// run ended), NOT_FOUND for a task of no such id in the run.
absl::StatusOr<MeasurementTask> LockHeldTask(PostgresTransaction& tx, const std::string& run_id,
                                             int64_t task_id, const std::string& holder) {
  ASSIGN_OR_RETURN(
      const pqxx::result rows,
      tx.Exec("SELECT task_index, config_json, attempts, status, lease_holder FROM "
              "measurement_tasks WHERE run_id = $1::bytea AND id = $2::int8 FOR UPDATE",
              PostgresParams().Bytes(run_id).Int(task_id)));
  if (rows.empty()) {
    return absl::NotFoundError(
        absl::StrCat("measurement run ", run_id, " has no task with id ", task_id));
  }
  if (static_cast<TaskStatus>(FieldInt(rows[0][3])) != TaskStatus::kHeld ||
      FieldBytes(rows[0][4]) != holder) {
    return store_internal::MeasurementTaskNotHeld(run_id, task_id, holder);
  }
  MeasurementTask task;
  task.id = task_id;
  task.run_id = run_id;
  task.index = FieldInt(rows[0][0]);
  task.config_json = FieldBytes(rows[0][1]);
  task.attempts = static_cast<int>(FieldInt(rows[0][2]));
  return task;
}

// Ends the run once every task settled: kFailed when any failed, else kSucceeded.
absl::Status EndRunIfSettled(PostgresTransaction& tx, const MeasurementRunRecord& run,
                             double now_unix_s) {
  if (run.tasks_done + run.tasks_failed < run.tasks_total) return absl::OkStatus();
  return tx
      .Run("UPDATE measurement_runs SET state = $2, finished_unix_s = $3 WHERE id = $1::bytea",
           PostgresParams()
               .Bytes(run.id)
               .Int(static_cast<int64_t>(run.tasks_failed > 0 ? JobState::kFailed
                                                              : JobState::kSucceeded))
               .Double(now_unix_s, "now_unix_s"))
      .status();
}

}  // namespace

absl::StatusOr<std::string> PostgresMeasurementRunStore::CreateMeasurementRun(
    const MeasurementRunRecord& run, const std::vector<std::string>& configs) {
  RETURN_IF_ERROR(store_internal::CheckMeasurementRun(run, configs));
  std::string id;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, absl::StrCat("creating a measurement run for dataset ", run.dataset),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result dataset,
                         tx.Exec("SELECT space FROM datasets WHERE name = $1::bytea",
                                 PostgresParams().Bytes(run.dataset)));
        if (dataset.empty()) return store_internal::DatasetNotFound(run.dataset);
        if (FieldBytes(dataset[0][0]) != run.space) {
          return absl::FailedPreconditionError(
              absl::StrCat("dataset ", run.dataset, " holds space ", FieldBytes(dataset[0][0]),
                           ", not ", run.space));
        }
        ASSIGN_OR_RETURN(const pqxx::result held,
                         tx.Exec("SELECT split FROM measurements WHERE dataset = $1 LIMIT 1",
                                 PostgresParams().Bytes(run.dataset)));
        const std::string held_split = held.empty() ? std::string() : FieldBytes(held[0][0]);
        RETURN_IF_ERROR(store_internal::CheckRunSplit(
            run.dataset, held.empty() ? nullptr : &held_split, run.split));
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kMeasurementRunIds));
        ASSIGN_OR_RETURN(const pqxx::result next,
                         tx.Exec("SELECT COALESCE(MAX(seq), 0) + 1 FROM measurement_runs"));
        const int64_t seq = FieldInt(next[0][0]);
        id = absl::StrCat("measure-", seq);
        RETURN_IF_ERROR(tx.Run("INSERT INTO measurement_runs (id, seq, dataset, space, method, "
                               "split, seed, settings, state, tasks_total, created_unix_s, "
                               "max_attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                               "$11, $12)",
                               PostgresParams()
                                   .Bytes(id)
                                   .Int(seq)
                                   .Bytes(run.dataset)
                                   .Bytes(run.space)
                                   .Bytes(run.method)
                                   .Bytes(run.split)
                                   .Int(static_cast<int64_t>(run.seed))
                                   .Bytes(run.settings)
                                   .Int(static_cast<int64_t>(JobState::kQueued))
                                   .Int(static_cast<int64_t>(configs.size()))
                                   .Double(run.created_unix_s, "created_unix_s")
                                   .Int(run.max_attempts))
                            .status());
        std::vector<PostgresParams> tasks;
        tasks.reserve(configs.size());
        for (size_t i = 0; i < configs.size(); ++i) {
          tasks.emplace_back().Bytes(id).Int(static_cast<int64_t>(i)).Bytes(configs[i]);
        }
        return tx.Copy("measurement_tasks", {"run_id", "task_index", "config_json"}, tasks);
      }));
  return id;
}

absl::StatusOr<MeasurementRunRecord> PostgresMeasurementRunStore::GetMeasurementRun(
    const std::string& run_id) {
  MeasurementRunRecord run;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kRead, absl::StrCat("reading measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kRunColumns,
                                              " FROM measurement_runs r WHERE r.id = $1::bytea"),
                                 PostgresParams().Bytes(run_id)));
        if (rows.empty()) return store_internal::MeasurementRunNotFound(run_id);
        run = ReadRun(rows[0]);
        return absl::OkStatus();
      }));
  return run;
}

absl::StatusOr<std::vector<MeasurementRunRecord>> PostgresMeasurementRunStore::ListMeasurementRuns(
    int64_t offset, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(offset, limit));
  std::vector<MeasurementRunRecord> runs;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kRead, "listing measurement runs", [&](PostgresTransaction& tx) -> absl::Status {
        runs.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kRunColumns,
                                              " FROM measurement_runs r ORDER BY r.seq DESC "
                                              "LIMIT $1::int8 OFFSET $2::int8"),
                                 PostgresParams().Int(limit).Int(offset)));
        for (const pqxx::row& row : rows) runs.push_back(ReadRun(row));
        return absl::OkStatus();
      }));
  return runs;
}

absl::Status PostgresMeasurementRunStore::SetMeasurementRunLauncher(const std::string& run_id,
                                                                    const std::string& launcher) {
  RETURN_IF_ERROR(store_internal::CheckLauncher(launcher));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("noting the launcher of measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const int64_t changed,
                         tx.Run("UPDATE measurement_runs SET launcher = $2 WHERE id = $1::bytea",
                                PostgresParams().Bytes(run_id).Bytes(launcher)));
        if (changed == 0) return store_internal::MeasurementRunNotFound(run_id);
        return absl::OkStatus();
      });
}

absl::StatusOr<std::vector<MeasurementTask>> PostgresMeasurementRunStore::ClaimMeasurementTasks(
    const std::string& run_id, const std::string& holder, double now_unix_s, double expires_unix_s,
    int max_tasks) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  RETURN_IF_ERROR(store_internal::CheckMaxTasks(max_tasks));
  std::vector<MeasurementTask> claimed;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, absl::StrCat("claiming tasks of measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        claimed.clear();
        // The run's row first, as every writer of its counters locks it.
        ASSIGN_OR_RETURN(MeasurementRunRecord run, LockRun(tx, run_id));
        const JobState state = run.state;
        if (IsTerminal(state)) return absl::OkStatus();
        // Tasks whose lease expired after their last allowed claim (their workers died on
        // them: a crash, the OOM killer) settle as failed instead of killing more workers.
        ASSIGN_OR_RETURN(
            const pqxx::result poisoned,
            tx.Exec("UPDATE measurement_tasks SET status = 4, lease_holder = '', "
                    "lease_expires_unix_s = 0, error = convert_to('its worker stopped renewing "
                    "the lease ' || attempts || ' times (killed or out of memory?)', 'UTF8') "
                    "WHERE run_id = $1::bytea AND status = 2 AND lease_expires_unix_s <= "
                    "$2::float8 AND attempts >= $3::int4 RETURNING task_index, error",
                    PostgresParams()
                        .Bytes(run_id)
                        .Double(now_unix_s, "now_unix_s")
                        .Int(run.max_attempts)));
        if (!poisoned.empty()) {
          // The run keeps its first failure's error: the lowest index of these.
          int64_t first_index = -1;
          std::string first_error;
          for (const pqxx::row& row : poisoned) {
            if (first_index < 0 || FieldInt(row[0]) < first_index) {
              first_index = FieldInt(row[0]);
              first_error = FieldBytes(row[1]);
            }
          }
          run.tasks_failed += static_cast<int64_t>(poisoned.size());
          RETURN_IF_ERROR(
              tx.Run("UPDATE measurement_runs SET tasks_failed = tasks_failed + $2::int8, "
                     "error = CASE WHEN error = '' THEN $3::bytea ELSE error END "
                     "WHERE id = $1::bytea",
                     PostgresParams()
                         .Bytes(run_id)
                         .Int(static_cast<int64_t>(poisoned.size()))
                         .Bytes(absl::StrCat("task ", first_index, ": ", first_error)))
                  .status());
          RETURN_IF_ERROR(EndRunIfSettled(tx, run, now_unix_s));
          if (run.tasks_done + run.tasks_failed >= run.tasks_total) return absl::OkStatus();
        }
        // SKIP LOCKED: tasks another claimer is taking right now are passed over, so claimers
        // never wait for each other and never get one task twice.
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec("UPDATE measurement_tasks t SET status = 2, lease_holder = $2, "
                    "lease_expires_unix_s = $4, attempts = t.attempts + 1 FROM (SELECT id FROM "
                    "measurement_tasks WHERE run_id = $1::bytea AND (status = 1 OR (status = 2 "
                    "AND lease_expires_unix_s <= $3::float8)) ORDER BY task_index LIMIT $5::int8 "
                    "FOR UPDATE SKIP LOCKED) free WHERE t.id = free.id "
                    "RETURNING t.id, t.task_index, t.config_json, t.attempts",
                    PostgresParams()
                        .Bytes(run_id)
                        .Bytes(holder)
                        .Double(now_unix_s, "now_unix_s")
                        .Double(expires_unix_s, "expires_unix_s")
                        .Int(max_tasks)));
        for (const pqxx::row& row : rows) {
          MeasurementTask task;
          task.id = FieldInt(row[0]);
          task.run_id = run_id;
          task.index = FieldInt(row[1]);
          task.config_json = FieldBytes(row[2]);
          task.attempts = static_cast<int>(FieldInt(row[3]));
          claimed.push_back(std::move(task));
        }
        // RETURNING gives no order: lowest index first.
        std::sort(
            claimed.begin(), claimed.end(),
            [](const MeasurementTask& a, const MeasurementTask& b) { return a.index < b.index; });
        if (!claimed.empty() && state == JobState::kQueued) {
          RETURN_IF_ERROR(tx.Run("UPDATE measurement_runs SET state = $2 WHERE id = $1::bytea "
                                 "AND state = $3::int4",
                                 PostgresParams()
                                     .Bytes(run_id)
                                     .Int(static_cast<int64_t>(JobState::kRunning))
                                     .Int(static_cast<int64_t>(JobState::kQueued)))
                              .status());
        }
        return absl::OkStatus();
      }));
  return claimed;
}

absl::StatusOr<std::vector<int64_t>> PostgresMeasurementRunStore::RenewMeasurementTasks(
    const std::string& run_id, const std::string& holder, const std::vector<int64_t>& task_ids,
    double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  std::vector<int64_t> held;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, absl::StrCat("renewing task leases of measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        held.clear();
        ASSIGN_OR_RETURN(const pqxx::result run,
                         tx.Exec("SELECT 1 FROM measurement_runs WHERE id = $1::bytea",
                                 PostgresParams().Bytes(run_id)));
        if (run.empty()) return store_internal::MeasurementRunNotFound(run_id);
        if (task_ids.empty()) return absl::OkStatus();
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec("UPDATE measurement_tasks SET lease_expires_unix_s = $3 WHERE run_id = "
                    "$1::bytea AND lease_holder = $2::bytea AND status = 2 AND "
                    "id = ANY($4::int8[]) RETURNING id",
                    PostgresParams()
                        .Bytes(run_id)
                        .Bytes(holder)
                        .Double(expires_unix_s, "expires_unix_s")
                        .IntArray(task_ids)));
        for (const pqxx::row& row : rows) held.push_back(FieldInt(row[0]));
        std::sort(held.begin(), held.end());
        return absl::OkStatus();
      }));
  return held;
}

absl::Status PostgresMeasurementRunStore::CompleteMeasurementTask(const std::string& run_id,
                                                                  int64_t task_id,
                                                                  const std::string& holder,
                                                                  const MeasurementRow& row) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("completing task ", task_id, " of measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        // The dataset lock first, as every measurement write takes it, then the run's row.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kDatasets));
        ASSIGN_OR_RETURN(MeasurementRunRecord run, LockRun(tx, run_id));
        ASSIGN_OR_RETURN(const MeasurementTask task, LockHeldTask(tx, run_id, task_id, holder));
        RETURN_IF_ERROR(store_internal::CheckMeasurementRow(task, run, row));
        ASSIGN_OR_RETURN(
            const pqxx::result stored,
            tx.Exec("SELECT 1 FROM measurements WHERE dataset = $1::bytea AND "
                    "method = $2::bytea AND config_json = $3::bytea",
                    PostgresParams().Bytes(run.dataset).Bytes(row.method).Bytes(row.config_json)));
        if (stored.empty()) {
          MeasurementRow record = row;
          record.seed = run.seed;
          RETURN_IF_ERROR(postgres_internal::InsertMeasurements(tx, run.dataset, {record}));
        }
        RETURN_IF_ERROR(tx.Run("UPDATE measurement_tasks SET status = 3, lease_holder = '', "
                               "lease_expires_unix_s = 0 WHERE id = $1::int8",
                               PostgresParams().Int(task_id))
                            .status());
        ++run.tasks_done;
        RETURN_IF_ERROR(tx.Run("UPDATE measurement_runs SET tasks_done = tasks_done + 1 "
                               "WHERE id = $1::bytea",
                               PostgresParams().Bytes(run_id))
                            .status());
        return EndRunIfSettled(tx, run, row.created_unix_s);
      });
}

absl::Status PostgresMeasurementRunStore::FailMeasurementTask(const std::string& run_id,
                                                              int64_t task_id,
                                                              const std::string& holder,
                                                              const std::string& error,
                                                              int max_attempts, double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckMaxAttempts(max_attempts));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  const std::string kept = error.substr(0, 4096);
  return database_.Transact(
      Mode::kWrite, absl::StrCat("failing task ", task_id, " of measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(MeasurementRunRecord run, LockRun(tx, run_id));
        ASSIGN_OR_RETURN(const MeasurementTask task, LockHeldTask(tx, run_id, task_id, holder));
        if (task.attempts < max_attempts) {
          // Tried again by whichever worker claims it next.
          return tx
              .Run(
                  "UPDATE measurement_tasks SET status = 1, lease_holder = '', "
                  "lease_expires_unix_s = 0, error = $2 WHERE id = $1::int8",
                  PostgresParams().Int(task_id).Bytes(kept))
              .status();
        }
        RETURN_IF_ERROR(tx.Run("UPDATE measurement_tasks SET status = 4, lease_holder = '', "
                               "lease_expires_unix_s = 0, error = $2 WHERE id = $1::int8",
                               PostgresParams().Int(task_id).Bytes(kept))
                            .status());
        ++run.tasks_failed;
        // The run keeps its first failure's error.
        RETURN_IF_ERROR(
            tx.Run("UPDATE measurement_runs SET tasks_failed = tasks_failed + 1, error = CASE "
                   "WHEN error = '' THEN $2::bytea ELSE error END WHERE id = $1::bytea",
                   PostgresParams().Bytes(run_id).Bytes(
                       absl::StrCat("task ", task.index, ": ", kept)))
                .status());
        return EndRunIfSettled(tx, run, now_unix_s);
      });
}

absl::Status PostgresMeasurementRunStore::CancelMeasurementRun(const std::string& run_id,
                                                               double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("cancelling measurement run ", run_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const MeasurementRunRecord run, LockRun(tx, run_id));
        if (IsTerminal(run.state)) {
          return absl::FailedPreconditionError(
              absl::StrCat("measurement run ", run_id, " already ended"));
        }
        RETURN_IF_ERROR(tx.Run("UPDATE measurement_tasks SET status = 5, lease_holder = '', "
                               "lease_expires_unix_s = 0 WHERE run_id = $1::bytea AND "
                               "status IN (1, 2)",
                               PostgresParams().Bytes(run_id))
                            .status());
        return tx
            .Run(
                "UPDATE measurement_runs SET state = $2, finished_unix_s = $3 WHERE id = "
                "$1::bytea",
                PostgresParams()
                    .Bytes(run_id)
                    .Int(static_cast<int64_t>(JobState::kCancelled))
                    .Double(now_unix_s, "now_unix_s"))
            .status();
      });
}

}  // namespace apq::server
