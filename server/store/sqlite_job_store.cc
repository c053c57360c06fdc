#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;
using store_internal::JobNotFound;

// Columns of a job row (of `jobs j`, with kJobJoins) in the order ReadJob expects; the
// checkpoint comes last when loaded.
constexpr const char* kJobColumns =
    "j.id, j.space, j.device, j.table_version, j.predictor_version, j.request, j.state, "
    "j.error, j.generations_done, j.candidates_evaluated, j.best_id, j.best_generation, "
    "j.best_config_json, j.best_accuracy, j.best_latency_ms, j.best_energy_mj, j.best_size_mb, "
    "j.best_bitops, j.best_feasible, j.best_modelled, j.created_unix_s, j.started_unix_s, "
    "j.finished_unix_s, j.elapsed_s, j.pareto_front_size, j.stage, j.verification_finalists, "
    "j.verification_measured, b.measured_accuracy, b.measured_method, b.measured_split, "
    "b.measured_seconds, v.id, v.generation, v.config_json, v.accuracy, v.latency_ms, "
    "v.energy_mj, v.size_mb, v.bitops, v.feasible, v.modelled, v.measured_accuracy, "
    "v.measured_method, v.measured_split, v.measured_seconds, v.times_seen, b.times_seen, "
    "j.rejected_draws, j.sweep_id, j.owner, j.engine_metrics, COALESCE(j.label, '')";
// The best's row (for its measurement) and the verified best's.
constexpr const char* kJobJoins =
    " FROM jobs j LEFT JOIN candidates b ON b.id = j.best_id AND b.job_id = j.id "
    "LEFT JOIN candidates v ON v.id = j.verified_best_id ";
constexpr int kJobCheckpointColumn = 53;

// Columns of a candidate row in the order ReadCandidate expects.
constexpr const char* kCandidateColumns =
    "id, generation, config_json, accuracy, latency_ms, energy_mj, size_mb, bitops, feasible, "
    "modelled, measured_accuracy, measured_method, measured_split, measured_seconds, times_seen";
constexpr int kCandidateColumnCount = 15;

// Reads the measured_accuracy, _method, _split and _seconds columns starting at `first`.
std::optional<CandidateMeasurement> ReadMeasurement(const Statement& row, int first) {
  if (row.ColumnIsNull(first)) return std::nullopt;
  CandidateMeasurement measurement;
  measurement.accuracy = row.ColumnDouble(first + 0);
  measurement.method = row.ColumnText(first + 1);
  measurement.split = row.ColumnText(first + 2);
  measurement.seconds = row.ColumnDouble(first + 3);
  return measurement;
}

// Reads the columns a candidate row and the best's copy in the jobs row have alike (those of
// kCandidateColumns up to `modelled`), starting at `first`.
CandidateRecord ReadCandidateFigures(const Statement& row, int first) {
  CandidateRecord candidate;
  candidate.id = row.ColumnInt64(first + 0);
  candidate.generation = row.ColumnInt(first + 1);
  candidate.config_json = row.ColumnText(first + 2);
  candidate.accuracy = row.ColumnOptionalDouble(first + 3);
  candidate.latency_ms = row.ColumnOptionalDouble(first + 4);
  candidate.energy_mj = row.ColumnOptionalDouble(first + 5);
  candidate.size_mb = row.ColumnOptionalDouble(first + 6);
  candidate.bitops = row.ColumnOptionalDouble(first + 7);
  candidate.feasible = row.ColumnInt(first + 8) != 0;
  candidate.modelled = row.ColumnText(first + 9);
  return candidate;
}

// Reads kCandidateColumns starting at `first`.
CandidateRecord ReadCandidate(const Statement& row, int first) {
  CandidateRecord candidate = ReadCandidateFigures(row, first);
  candidate.measured = ReadMeasurement(row, first + 10);
  candidate.times_seen = row.ColumnInt64(first + 14);
  return candidate;
}

// Reads kJobColumns, then the checkpoint if `with_checkpoint`.
JobRecord ReadJob(const Statement& row, bool with_checkpoint) {
  JobRecord job;
  job.id = row.ColumnText(0);
  job.space = row.ColumnText(1);
  job.device = row.ColumnText(2);
  job.table_version = row.ColumnInt64(3);
  job.predictor_version = row.ColumnText(4);
  job.request = row.ColumnBlob(5);
  job.state = static_cast<JobState>(row.ColumnInt(6));
  job.error = row.ColumnText(7);
  job.generations_done = row.ColumnInt(8);
  job.candidates_evaluated = row.ColumnInt64(9);
  // The best's copy is in ReadCandidateFigures' order from column 10.
  if (!row.ColumnIsNull(12)) {
    job.best = ReadCandidateFigures(row, 10);
    job.best->measured = ReadMeasurement(row, 28);
    // The count of the best's row; 1 when its id names no row of the job.
    if (!row.ColumnIsNull(47)) job.best->times_seen = row.ColumnInt64(47);
  }
  job.created_unix_s = row.ColumnDouble(20);
  job.started_unix_s = row.ColumnDouble(21);
  job.finished_unix_s = row.ColumnDouble(22);
  job.elapsed_s = row.ColumnDouble(23);
  job.pareto_front_size = row.ColumnInt64(24);
  job.stage = static_cast<JobStage>(row.ColumnInt(25));
  job.verification_finalists = row.ColumnInt(26);
  job.verification_measured = row.ColumnInt(27);
  if (!row.ColumnIsNull(32)) job.verified_best = ReadCandidate(row, 32);
  job.rejected_draws = row.ColumnInt64(48);
  job.sweep_id = row.ColumnText(49);
  job.owner = row.ColumnText(50);
  job.engine_metrics = store_internal::DecodeEngineMetrics(row.ColumnText(51));
  job.label = row.ColumnText(52);
  if (with_checkpoint) job.checkpoint = row.ColumnBlob(kJobCheckpointColumn);
  return job;
}

// The ORDER BY of each ListCandidates order: ties in id order, unset metrics last (in
// descending order NULL sorts last already). No index serves these: a page sorts the job's
// rows (found by candidates_by_job_network), which keeps inserts cheap; the sorter holds
// only offset + limit rows.
const char* OrderBy(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kId:
      return "id";
    case CandidateOrder::kAccuracyDesc:
      return "accuracy DESC, id";
    case CandidateOrder::kLatencyAsc:
      return "latency_ms IS NULL, latency_ms, id";
    case CandidateOrder::kEnergyAsc:
      return "energy_mj IS NULL, energy_mj, id";
    case CandidateOrder::kSizeAsc:
      return "size_mb IS NULL, size_mb, id";
    case CandidateOrder::kBitopsAsc:
      return "bitops IS NULL, bitops, id";
  }
  return nullptr;
}

// The rows after a cursor (?5 its sort key, NULL when unset; ?6 its id) in `order`: ties in
// id order, unset figures last (as OrderBy sorts).
std::string AfterCursorSql(CandidateOrder order) {
  const char* column = nullptr;
  switch (order) {
    case CandidateOrder::kId:
      return "id > ?6";
    case CandidateOrder::kAccuracyDesc:
      return "(CASE WHEN ?5 IS NULL THEN accuracy IS NULL AND id > ?6 ELSE accuracy < ?5 OR "
             "accuracy IS NULL OR (accuracy = ?5 AND id > ?6) END)";
    case CandidateOrder::kLatencyAsc:
      column = "latency_ms";
      break;
    case CandidateOrder::kEnergyAsc:
      column = "energy_mj";
      break;
    case CandidateOrder::kSizeAsc:
      column = "size_mb";
      break;
    case CandidateOrder::kBitopsAsc:
      column = "bitops";
      break;
  }
  return absl::StrCat("(CASE WHEN ?5 IS NULL THEN ", column, " IS NULL AND id > ?6 ELSE ", column,
                      " IS NULL OR ", column, " > ?5 OR (", column, " = ?5 AND id > ?6) END)");
}

// The page query: ?1 job id, ?2 feasibility (when `feasibility_filtered`), ?3 limit, ?4
// offset, ?5 and ?6 the cursor (when `after_cursor`). The page's ids are chosen by their sort
// keys alone, then only the page's rows are read whole (and sorted again: at most `limit` of
// them). With `front_only` the front's partial index finds the rows.
std::string CandidatePageSql(CandidateOrder order, const char* order_by, bool feasibility_filtered,
                             bool front_only, bool after_cursor) {
  const std::string ids =
      absl::StrCat("SELECT id FROM candidates WHERE job_id = ?1",
                   feasibility_filtered ? " AND feasible = ?2" : "",
                   front_only ? " AND on_pareto_front = 1" : "",
                   after_cursor ? absl::StrCat(" AND ", AfterCursorSql(order)) : "", " ORDER BY ",
                   order_by, " LIMIT ?3 OFFSET ?4");
  return absl::StrCat("SELECT ", kCandidateColumns,
                      ", on_pareto_front FROM candidates WHERE id IN (", ids, ") ORDER BY ",
                      order_by);
}

}  // namespace

absl::StatusOr<JobState> SqliteJobStore::LoadJobState(const std::string& job_id) {
  ASSIGN_OR_RETURN(
      Statement select,
      database_.Prepare("SELECT state FROM jobs WHERE id = ?1 AND deleted_unix_s = 0"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading job ", job_id)));
  if (!row) return JobNotFound(job_id);
  return static_cast<JobState>(select.ColumnInt(0));
}

absl::StatusOr<std::string> SqliteJobStore::InsertJob(const JobRecord& job, std::string* sweep_id,
                                                      absl::string_view operation) {
  ASSIGN_OR_RETURN(const int64_t seq, database_.NextSequence("jobs", operation));
  const std::string id = absl::StrCat("job-", seq);
  if (sweep_id != nullptr && sweep_id->empty()) *sweep_id = absl::StrCat("sweep-", seq);
  ASSIGN_OR_RETURN(
      Statement insert,
      database_.Prepare("INSERT INTO jobs (id, seq, space, device, table_version, "
                        "predictor_version, request, state, created_unix_s, "
                        "sweep_id, owner, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                        "?9, ?10, ?11, ?12)"));
  insert.BindText(1, id);
  insert.BindInt64(2, seq);
  insert.BindText(3, job.space);
  insert.BindText(4, job.device);
  insert.BindInt64(5, job.table_version);
  insert.BindText(6, job.predictor_version);
  insert.BindBlob(7, job.request);
  insert.BindInt64(8, static_cast<int64_t>(JobState::kQueued));
  insert.BindDouble(9, job.created_unix_s, "created_unix_s");
  insert.BindText(10, sweep_id != nullptr ? *sweep_id : std::string());
  insert.BindText(11, job.owner);
  insert.BindText(12, job.label);
  RETURN_IF_ERROR(insert.Run(operation));
  return id;
}

absl::StatusOr<std::string> SqliteJobStore::CreateJob(const JobRecord& job) {
  constexpr absl::string_view kOperation = "creating a job";
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, kOperation));
  ASSIGN_OR_RETURN(std::string id, InsertJob(job, nullptr, kOperation));
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return id;
}

absl::StatusOr<SweepIds> SqliteJobStore::CreateSweep(const std::vector<JobRecord>& jobs) {
  constexpr absl::string_view kOperation = "creating a sweep";
  if (jobs.empty()) return absl::InvalidArgumentError("a sweep needs at least one job");
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, kOperation));
  SweepIds ids;
  for (const JobRecord& job : jobs) {
    ASSIGN_OR_RETURN(std::string id, InsertJob(job, &ids.sweep_id, kOperation));
    ids.job_ids.push_back(std::move(id));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return ids;
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ListSweepJobs(const std::string& sweep_id) {
  const std::string operation = absl::StrCat("listing the jobs of ", sweep_id);
  absl::MutexLock lock(&database_.mutex());
  std::vector<JobRecord> jobs;
  if (!sweep_id.empty()) {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare(absl::StrCat(
                         "SELECT ", kJobColumns, kJobJoins,
                         "WHERE j.sweep_id = ?1 AND j.deleted_unix_s = 0 ORDER BY j.seq")));
    select.BindText(1, sweep_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      jobs.push_back(ReadJob(select, /*with_checkpoint=*/false));
    }
  }
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no sweep ", sweep_id));
  return jobs;
}

absl::Status SqliteJobStore::MarkRunning(const std::string& job_id, double started_unix_s) {
  const std::string operation = absl::StrCat("marking job ", job_id, " running");
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadJobState(job_id));
  if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
  {
    ASSIGN_OR_RETURN(Statement update, database_.Prepare("UPDATE jobs SET state = ?2, "
                                                         "started_unix_s = ?3 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    update.BindDouble(3, started_unix_s, "started_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<std::vector<int64_t>> SqliteJobStore::AppendGenerations(
    const std::string& job_id, const GenerationBatch& batch) {
  RETURN_IF_ERROR(store_internal::CheckGenerationBatch(batch));
  const std::string operation = store_internal::AppendOperation(job_id, batch);
  // Rows of stored networks bind no figures: check them all here, as new rows' binds would.
  for (const CandidateRecord& candidate : batch.candidates) {
    RETURN_IF_ERROR(store_internal::CheckFiguresNotNan(candidate, "candidate", operation));
  }
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT state, next_generation, stage "
                                       "FROM jobs WHERE id = ?1 AND deleted_unix_s = 0"));
    select.BindText(1, job_id);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return JobNotFound(job_id);
    const auto state = static_cast<JobState>(select.ColumnInt(0));
    const int64_t next_generation = select.ColumnInt64(1);
    if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
    if (static_cast<JobStage>(select.ColumnInt(2)) != JobStage::kSearch) {
      return store_internal::SearchStageEnded(job_id);
    }
    if (batch.first_generation != next_generation) {
      return store_internal::GenerationOutOfOrder(job_id, next_generation, batch.first_generation);
    }
  }
  std::vector<int64_t> ids;
  ids.reserve(batch.candidates.size());
  int64_t new_feasible = 0;
  int64_t new_infeasible = 0;
  {
    // Three statements prepared once and bound per row. A network of the job is found by
    // its hash (indexed; apq_network_hash of its text, computed here once) and then its
    // text; a new one is inserted, a stored one counted.
    ASSIGN_OR_RETURN(Statement find,
                     database_.Prepare("SELECT id FROM candidates WHERE job_id = ?1 AND "
                                       "network_hash = ?3 AND config_json = ?2"));
    ASSIGN_OR_RETURN(Statement count, database_.Prepare("UPDATE candidates SET times_seen = "
                                                        "times_seen + ?2 WHERE id = ?1"));
    ASSIGN_OR_RETURN(
        Statement insert,
        database_.Prepare("INSERT INTO candidates (job_id, generation, times_seen, network_hash, "
                          "config_json, accuracy, latency_ms, energy_mj, size_mb, bitops, "
                          "feasible, modelled) VALUES (?1, ?2, ?3, ?12, ?4, ?5, ?6, ?7, ?8, ?9, "
                          "?10, ?11)"));
    for (const CandidateRecord& candidate : batch.candidates) {
      const int64_t network_hash = NetworkHash(candidate.config_json);
      find.BindText(1, job_id);
      find.BindText(2, candidate.config_json);
      find.BindInt64(3, network_hash);
      ASSIGN_OR_RETURN(bool stored, find.Step(operation));
      const int64_t stored_id = stored ? find.ColumnInt64(0) : 0;
      find.Reset();
      if (stored) {
        count.BindInt64(1, stored_id);
        count.BindInt64(2, candidate.times_seen);
        RETURN_IF_ERROR(count.Run(operation));
        count.Reset();
        ids.push_back(stored_id);
        continue;
      }
      insert.BindText(1, job_id);
      insert.BindInt64(2, candidate.generation);
      insert.BindInt64(3, candidate.times_seen);
      insert.BindText(4, candidate.config_json);
      insert.BindMetrics(5, candidate, "candidate");
      insert.BindInt64(10, candidate.feasible ? 1 : 0);
      insert.BindText(11, candidate.modelled);
      insert.BindInt64(12, network_hash);
      RETURN_IF_ERROR(insert.Run(operation));
      insert.Reset();
      ids.push_back(database_.LastInsertRowid());
      ++(candidate.feasible ? new_feasible : new_infeasible);
    }
  }
  {
    ASSIGN_OR_RETURN(
        Statement update,
        database_.Prepare(
            "UPDATE jobs SET generations_done = ?2, next_generation = ?2 + 1, "
            "candidates_evaluated = ?3, stored_feasible = stored_feasible + ?15, "
            "stored_infeasible = stored_infeasible + ?16, best_id = ?4, best_generation = ?5, "
            "best_config_json = ?6, best_accuracy = ?7, best_latency_ms = ?8, "
            "best_energy_mj = ?9, best_size_mb = ?10, best_bitops = ?11, best_feasible = ?12, "
            "checkpoint = ?13, elapsed_s = ?14, best_modelled = ?17, rejected_draws = ?18, "
            "engine_metrics = ?19 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, batch.last_generation);
    update.BindInt64(3, batch.candidates_evaluated);
    if (batch.best.has_value()) {
      const CandidateRecord& best = *batch.best;
      update.BindInt64(4, batch.best_batch_index >= 0 ? ids[batch.best_batch_index] : best.id);
      update.BindInt64(5, best.generation);
      update.BindText(6, best.config_json);
      update.BindMetrics(7, best, "best");
      update.BindInt64(12, best.feasible ? 1 : 0);
      update.BindText(17, best.modelled);
    }  // Else parameters 4 to 12 and 17 stay NULL: no best.
    update.BindBlob(13, batch.checkpoint);
    update.BindDouble(14, batch.elapsed_s, "elapsed_s");
    update.BindInt64(15, new_feasible);
    update.BindInt64(16, new_infeasible);
    update.BindInt64(18, batch.rejected_draws);
    // Bound without a copy: the text must outlive the statement's run.
    const std::string engine_metrics = store_internal::EncodeEngineMetrics(batch.engine_metrics);
    update.BindText(19, engine_metrics);
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return ids;
}

absl::Status SqliteJobStore::BeginVerification(const std::string& job_id, int finalists) {
  RETURN_IF_ERROR(store_internal::CheckFinalists(finalists));
  const std::string operation = absl::StrCat("beginning the verification stage of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(VerificationState held, LoadVerificationState(job_id, operation));
  ASSIGN_OR_RETURN(bool write, store_internal::CheckBeginVerification(job_id, finalists, held.stage,
                                                                      held.finalists));
  if (!write) return absl::OkStatus();
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET stage = ?2, verification_finalists = ?3 "
                                       "WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobStage::kVerification));
    update.BindInt64(3, finalists);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<SqliteJobStore::VerificationState> SqliteJobStore::LoadVerificationState(
    const std::string& job_id, const std::string& operation) {
  ASSIGN_OR_RETURN(
      Statement select,
      database_.Prepare("SELECT state, stage, verification_finalists, "
                        "verification_measured FROM jobs WHERE id = ?1 AND deleted_unix_s = 0"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return JobNotFound(job_id);
  const auto state = static_cast<JobState>(select.ColumnInt(0));
  if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
  VerificationState held;
  held.stage = static_cast<JobStage>(select.ColumnInt(1));
  held.finalists = select.ColumnInt(2);
  held.measured = select.ColumnInt(3);
  return held;
}

absl::StatusOr<std::optional<CandidateRecord>> SqliteJobStore::LoadFeasibleCandidate(
    const std::string& job_id, int64_t id, const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kCandidateColumns,
                                                  " FROM candidates WHERE id = ?1 AND "
                                                  "job_id = ?2 AND feasible = 1")));
  select.BindInt64(1, id);
  select.BindText(2, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return std::optional<CandidateRecord>();
  return std::optional<CandidateRecord>(ReadCandidate(select, 0));
}

absl::Status SqliteJobStore::RecordVerification(const std::string& job_id, int64_t candidate_id,
                                                const CandidateMeasurement& measurement,
                                                int64_t verified_best_id) {
  RETURN_IF_ERROR(store_internal::CheckCandidateMeasurement(measurement));
  const std::string operation =
      absl::StrCat("recording the measurement of candidate ", candidate_id, " of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(VerificationState held, LoadVerificationState(job_id, operation));
  ASSIGN_OR_RETURN(std::optional<CandidateRecord> candidate,
                   LoadFeasibleCandidate(job_id, candidate_id, operation));
  ASSIGN_OR_RETURN(std::optional<CandidateRecord> best,
                   LoadFeasibleCandidate(job_id, verified_best_id, operation));
  store_internal::VerificationTarget target;
  target.stage = held.stage;
  target.finalists = held.finalists;
  target.measured = held.measured;
  target.candidate = candidate ? &*candidate : nullptr;
  target.verified_best = best ? &*best : nullptr;
  ASSIGN_OR_RETURN(bool first, store_internal::CheckRecordVerification(
                                   job_id, candidate_id, measurement, verified_best_id, target));
  if (first) {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE candidates SET measured_accuracy = ?2, "
                                       "measured_method = ?3, measured_split = ?4, "
                                       "measured_seconds = ?5 WHERE id = ?1"));
    update.BindInt64(1, candidate_id);
    update.BindDouble(2, measurement.accuracy, "measured accuracy");
    update.BindText(3, measurement.method);
    update.BindText(4, measurement.split);
    update.BindDouble(5, measurement.seconds, "measured seconds");
    RETURN_IF_ERROR(update.Run(operation));
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET verified_best_id = ?2, "
                                       "verification_measured = verification_measured + ?3 "
                                       "WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, verified_best_id);
    update.BindInt64(3, first ? 1 : 0);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteJobStore::FinishJob(const std::string& job_id, JobState state,
                                       const std::string& error, double finished_unix_s,
                                       double elapsed_s,
                                       const std::vector<int64_t>& pareto_front_ids) {
  RETURN_IF_ERROR(store_internal::CheckTerminal(state, "FinishJob"));
  RETURN_IF_ERROR(store_internal::CheckDistinctIds(pareto_front_ids));
  const std::string operation = absl::StrCat("finishing job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState current, LoadJobState(job_id));
  if (IsTerminal(current)) return store_internal::JobEnded(job_id, current);
  {
    ASSIGN_OR_RETURN(Statement update, database_.Prepare("UPDATE jobs SET state = ?2, error = ?3, "
                                                         "finished_unix_s = ?4, elapsed_s = ?5, "
                                                         "pareto_front_size = ?6, "
                                                         "lease_holder = '', "
                                                         "lease_expires_unix_s = 0 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(state));
    update.BindText(3, error);
    update.BindDouble(4, finished_unix_s, "finished_unix_s");
    update.BindDouble(5, elapsed_s, "elapsed_s");
    update.BindInt64(6, static_cast<int64_t>(pareto_front_ids.size()));
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(MarkParetoFront(job_id, pareto_front_ids, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteJobStore::MarkParetoFront(const std::string& job_id,
                                             const std::vector<int64_t>& ids,
                                             const std::string& operation) {
  ASSIGN_OR_RETURN(Statement mark, database_.Prepare("UPDATE candidates SET on_pareto_front = 1 "
                                                     "WHERE id = ?1 AND job_id = ?2 AND "
                                                     "feasible = 1"));
  for (const int64_t id : ids) {
    mark.BindInt64(1, id);
    mark.BindText(2, job_id);
    RETURN_IF_ERROR(mark.Run(operation));
    // The ids are distinct, so each one changes exactly one row unless it is no feasible
    // candidate of the job.
    if (database_.Changes() != 1) return store_internal::NotAFrontCandidate(job_id, id);
    mark.Reset();
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> SqliteJobStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select, database_.Prepare(absl::StrCat(
                                         "SELECT ", kJobColumns, ", j.checkpoint", kJobJoins,
                                         "WHERE j.id = ?1 AND j.deleted_unix_s = 0")));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading job ", job_id)));
  if (!row) return JobNotFound(job_id);
  return ReadJob(select, /*with_checkpoint=*/true);
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ListJobsPage(const JobQuery& query) {
  RETURN_IF_ERROR(store_internal::CheckPage(query.offset, query.limit));
  if (query.state.has_value() && !store_internal::IsValidState(*query.state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown job state ", static_cast<int>(*query.state)));
  }
  absl::MutexLock lock(&database_.mutex());
  std::optional<int64_t> before_seq;
  if (!query.after_job.empty()) {
    // Deleted jobs keep their row (a tombstone), so a page after one still has its place.
    ASSIGN_OR_RETURN(Statement find, database_.Prepare("SELECT seq FROM jobs WHERE id = ?1"));
    find.BindText(1, query.after_job);
    ASSIGN_OR_RETURN(const bool found, find.Step("listing jobs"));
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("after_job: ", query.after_job, " is not a job of this store"));
    }
    before_seq = find.ColumnInt64(0);
  }
  ASSIGN_OR_RETURN(
      Statement select,
      database_.Prepare(absl::StrCat(
          "SELECT ", kJobColumns, kJobJoins,
          "WHERE j.deleted_unix_s = 0 AND (?3 IS NULL OR j.state = ?3) ",
          "AND (?4 IS NULL OR j.owner = ?4) AND (?5 IS NULL OR j.seq < ?5) ",
          "AND (?6 IS NULL OR j.space = ?6) AND (?7 IS NULL OR j.device = ?7) ",
          "AND (?8 IS NULL OR j.label = ?8) ", "ORDER BY j.seq DESC LIMIT ?1 OFFSET ?2")));
  select.BindInt64(1, query.limit);
  select.BindInt64(2, query.offset);
  if (query.state.has_value()) select.BindInt64(3, static_cast<int64_t>(*query.state));
  if (query.owner.has_value()) select.BindText(4, *query.owner);
  if (before_seq.has_value()) select.BindInt64(5, *before_seq);
  if (query.space.has_value()) select.BindText(6, *query.space);
  if (query.device.has_value()) select.BindText(7, *query.device);
  if (query.label.has_value()) select.BindText(8, *query.label);
  std::vector<JobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing jobs"));
    if (!row) break;
    jobs.push_back(ReadJob(select, /*with_checkpoint=*/false));
  }
  return jobs;
}

absl::StatusOr<CandidatePage> SqliteJobStore::ListCandidates(const CandidateQuery& query) {
  RETURN_IF_ERROR(store_internal::CheckPage(query.offset, query.limit));
  RETURN_IF_ERROR(store_internal::CheckCursor(query));
  const char* order_by = OrderBy(query.order);
  if (order_by == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown candidate order ", static_cast<int>(query.order)));
  }
  const std::string operation = absl::StrCat("listing candidates of job ", query.job_id);
  absl::MutexLock lock(&database_.mutex());
  // The total and the page come from one snapshot.
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/false, operation));
  CandidatePage page;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        database_.Prepare("SELECT stored_feasible, stored_infeasible, "
                          "pareto_front_size FROM jobs WHERE id = ?1 AND deleted_unix_s = 0"));
    select.BindText(1, query.job_id);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return JobNotFound(query.job_id);
    const int64_t feasible = select.ColumnInt64(0);
    const int64_t infeasible = select.ColumnInt64(1);
    page.total = !query.feasible.has_value() ? feasible + infeasible
                 : *query.feasible           ? feasible
                                             : infeasible;
    if (query.pareto_front_only) {
      // Every front row is feasible.
      page.total = query.feasible.value_or(true) ? select.ColumnInt64(2) : 0;
    }
  }
  if (query.offset < page.total || query.after.has_value()) {
    // Every front row is feasible: the front needs no feasibility filter.
    const bool feasibility_filtered = query.feasible.has_value() && !query.pareto_front_only;
    ASSIGN_OR_RETURN(Statement select, database_.Prepare(CandidatePageSql(
                                           query.order, order_by, feasibility_filtered,
                                           query.pareto_front_only, query.after.has_value())));
    select.BindText(1, query.job_id);
    if (feasibility_filtered) select.BindInt64(2, *query.feasible ? 1 : 0);
    select.BindInt64(3, query.limit);
    select.BindInt64(4, query.offset);
    if (query.after.has_value()) {
      if (query.after->key.has_value()) {
        select.BindDouble(5, *query.after->key, "cursor key");
      }
      select.BindInt64(6, query.after->id);
    }
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      page.candidates.push_back(ReadCandidate(select, 0));
      page.candidates.back().on_pareto_front = select.ColumnInt(kCandidateColumnCount) != 0;
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return page;
}

absl::StatusOr<std::map<JobState, int64_t>> SqliteJobStore::CountJobsByState() {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT state, COUNT(*) FROM jobs WHERE deleted_unix_s = 0 "
                                     "GROUP BY state"));
  std::map<JobState, int64_t> counts;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, select.Step("counting jobs"));
    if (!row) break;
    counts[static_cast<JobState>(select.ColumnInt64(0))] = select.ColumnInt64(1);
  }
  return counts;
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::JobsWithoutLabel(int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT id, request FROM jobs WHERE label IS NULL "
                                     "ORDER BY seq LIMIT ?1"));
  select.BindInt64(1, limit);
  std::vector<JobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, select.Step("listing jobs without a label"));
    if (!row) break;
    JobRecord job;
    job.id = select.ColumnText(0);
    job.request = select.ColumnBlob(1);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::Status SqliteJobStore::SetJobLabel(const std::string& job_id, const std::string& label) {
  const std::string operation = absl::StrCat("setting the label of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement update, database_.Prepare("UPDATE jobs SET label = ?2 WHERE id = ?1"));
  update.BindText(1, job_id);
  update.BindText(2, label);
  RETURN_IF_ERROR(update.Run(operation));
  if (database_.Changes() == 0) return store_internal::JobNotFound(job_id);
  return absl::OkStatus();
}

absl::Status SqliteJobStore::DeleteJob(const std::string& job_id, double deleted_unix_s) {
  const std::string operation = absl::StrCat("deleting job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  RETURN_IF_ERROR(DeleteJobLocked(job_id, deleted_unix_s, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteJobStore::DeleteJobLocked(const std::string& job_id, double deleted_unix_s,
                                             const std::string& operation) {
  if (!(deleted_unix_s > 0)) {
    return absl::InvalidArgumentError("deleted_unix_s: must be a positive time");
  }
  ASSIGN_OR_RETURN(const JobState state, LoadJobState(job_id));
  if (!IsTerminal(state)) return store_internal::JobNotEnded(job_id, state);
  ASSIGN_OR_RETURN(Statement rows, database_.Prepare("DELETE FROM candidates WHERE job_id = ?1"));
  rows.BindText(1, job_id);
  RETURN_IF_ERROR(rows.Run(operation));
  // Its artifacts go with it; shared ones (job_id '') never match.
  ASSIGN_OR_RETURN(Statement artifacts,
                   database_.Prepare("DELETE FROM artifacts WHERE job_id = ?1"));
  artifacts.BindText(1, job_id);
  RETURN_IF_ERROR(artifacts.Run(operation));
  // The row stays as a tombstone, so that the job's id is never given again.
  ASSIGN_OR_RETURN(Statement mark,
                   database_.Prepare("UPDATE jobs SET deleted_unix_s = ?2, request = x'', "
                                     "checkpoint = x'', best_id = NULL, verified_best_id = NULL, "
                                     "lease_holder = '', lease_expires_unix_s = 0 WHERE id = ?1"));
  mark.BindText(1, job_id);
  mark.BindDouble(2, deleted_unix_s, "deleted_unix_s");
  return mark.Run(operation);
}

absl::StatusOr<std::vector<std::string>> SqliteJobStore::DeleteJobsFinishedBefore(
    double finished_before_unix_s, double deleted_unix_s, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  const std::string operation = "pruning finished jobs";
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  std::vector<std::string> ids;
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare(
                         "SELECT id FROM jobs WHERE deleted_unix_s = 0 AND state IN (?1, ?2, ?3) "
                         "AND finished_unix_s > 0 AND finished_unix_s < ?4 ORDER BY seq LIMIT ?5"));
    select.BindInt64(1, static_cast<int64_t>(JobState::kSucceeded));
    select.BindInt64(2, static_cast<int64_t>(JobState::kFailed));
    select.BindInt64(3, static_cast<int64_t>(JobState::kCancelled));
    select.BindDouble(4, finished_before_unix_s, "finished_before_unix_s");
    select.BindInt64(5, limit);
    while (true) {
      ASSIGN_OR_RETURN(const bool row, select.Step(operation));
      if (!row) break;
      ids.push_back(select.ColumnText(0));
    }
  }
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(DeleteJobLocked(id, deleted_unix_s, operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return ids;
}

absl::StatusOr<SqliteJobStore::LeaseState> SqliteJobStore::LoadUnfinishedLease(
    const std::string& job_id, const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT state, lease_holder, "
                                                       "lease_expires_unix_s, cancel_requested "
                                                       "FROM jobs WHERE id = ?1 AND "
                                                       "deleted_unix_s = 0"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(const bool row, select.Step(operation));
  if (!row) return JobNotFound(job_id);
  LeaseState lease;
  lease.state = static_cast<JobState>(select.ColumnInt(0));
  if (IsTerminal(lease.state)) return store_internal::JobEnded(job_id, lease.state);
  lease.holder = select.ColumnText(1);
  lease.expires_unix_s = select.ColumnDouble(2);
  lease.cancel_requested = select.ColumnInt(3) != 0;
  return lease;
}

absl::StatusOr<std::optional<ClaimedJob>> SqliteJobStore::ClaimJob(const std::string& holder,
                                                                   double now_unix_s,
                                                                   double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  constexpr absl::string_view kOperation = "claiming a job";
  absl::MutexLock lock(&database_.mutex());
  // BEGIN IMMEDIATE: claimers in other processes wait for this one's commit, so the row read
  // free here is still free when its lease is written.
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, kOperation));
  ClaimedJob claimed;
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT id, state, cancel_requested FROM jobs "
                                       "WHERE deleted_unix_s = 0 AND state IN (?1, ?2) AND "
                                       "lease_expires_unix_s <= ?3 ORDER BY seq LIMIT 1"));
    select.BindInt64(1, static_cast<int64_t>(JobState::kQueued));
    select.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    select.BindDouble(3, now_unix_s, "now_unix_s");
    ASSIGN_OR_RETURN(const bool row, select.Step(kOperation));
    if (!row) return std::nullopt;
    claimed.job_id = select.ColumnText(0);
    claimed.state = static_cast<JobState>(select.ColumnInt(1));
    claimed.cancel_requested = select.ColumnInt(2) != 0;
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET lease_holder = ?2, "
                                       "lease_expires_unix_s = ?3 WHERE id = ?1"));
    update.BindText(1, claimed.job_id);
    update.BindText(2, holder);
    update.BindDouble(3, expires_unix_s, "expires_unix_s");
    RETURN_IF_ERROR(update.Run(kOperation));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return claimed;
}

absl::StatusOr<LeaseRenewal> SqliteJobStore::RenewLease(const std::string& job_id,
                                                        const std::string& holder,
                                                        double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  const std::string operation = absl::StrCat("renewing the lease of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const LeaseState lease, LoadUnfinishedLease(job_id, operation));
  if (lease.holder != holder) return store_internal::LeaseNotHeld(job_id, holder);
  {
    ASSIGN_OR_RETURN(Statement update, database_.Prepare("UPDATE jobs SET lease_expires_unix_s = "
                                                         "?2 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindDouble(2, expires_unix_s, "expires_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return LeaseRenewal{lease.cancel_requested};
}

absl::Status SqliteJobStore::ReleaseLease(const std::string& job_id, const std::string& holder) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  const std::string operation = absl::StrCat("releasing the lease of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const JobState state, LoadJobState(job_id));
  // An ended job holds no lease (FinishJob clears it); another holder's stays.
  if (IsTerminal(state)) return absl::OkStatus();
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET lease_holder = '', "
                                       "lease_expires_unix_s = 0 WHERE id = ?1 AND "
                                       "lease_holder = ?2"));
    update.BindText(1, job_id);
    update.BindText(2, holder);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<CancelRequestOutcome> SqliteJobStore::RequestCancel(const std::string& job_id,
                                                                   double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  const std::string operation = absl::StrCat("cancelling job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const LeaseState lease, LoadUnfinishedLease(job_id, operation));
  const bool ends_now = lease.state == JobState::kQueued && lease.expires_unix_s <= now_unix_s;
  if (ends_now) {
    // As FinishJob(kCancelled) with no front would end it.
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET state = ?2, finished_unix_s = ?3, "
                                       "elapsed_s = 0, pareto_front_size = 0, lease_holder = '', "
                                       "lease_expires_unix_s = 0 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kCancelled));
    update.BindDouble(3, now_unix_s, "now_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  } else {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1"));
    update.BindText(1, job_id);
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return ends_now ? CancelRequestOutcome::kEnded : CancelRequestOutcome::kRequested;
}

}  // namespace apq::server
