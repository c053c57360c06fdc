#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

using Mode = PostgresDatabase::Mode;
using store_internal::JobNotFound;

// Columns of a job row (of `jobs j`, with kJobJoins) in the order ReadJob expects; the
// checkpoint comes last when loaded. As SQLite's (sqlite_job_store.cc), column for column.
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
    "j.rejected_draws, j.sweep_id, j.owner, j.engine_metrics, COALESCE(j.label, ''::bytea)";
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

// The columns a batch's new rows are copied into, in CandidateRow's order.
const std::vector<std::string>& CandidateCopyColumns() {
  static const auto* const kColumns = new std::vector<std::string>{
      "id",          "job_id",   "generation", "times_seen", "network_hash",
      "config_json", "accuracy", "latency_ms", "energy_mj",  "size_mb",
      "bitops",      "feasible", "modelled"};
  return *kColumns;
}

// Reads the measured_accuracy, _method, _split and _seconds columns starting at `first`.
std::optional<CandidateMeasurement> ReadMeasurement(const pqxx::row& row, int first) {
  if (FieldIsNull(row[first])) return std::nullopt;
  CandidateMeasurement measurement;
  measurement.accuracy = FieldDouble(row[first + 0]);
  measurement.method = FieldBytes(row[first + 1]);
  measurement.split = FieldBytes(row[first + 2]);
  measurement.seconds = FieldDouble(row[first + 3]);
  return measurement;
}

// Reads the columns a candidate row and the best's copy in the jobs row have alike (those of
// kCandidateColumns up to `modelled`), starting at `first`.
CandidateRecord ReadCandidateFigures(const pqxx::row& row, int first) {
  CandidateRecord candidate;
  candidate.id = FieldInt(row[first + 0]);
  candidate.generation = static_cast<int>(FieldInt(row[first + 1]));
  candidate.config_json = FieldBytes(row[first + 2]);
  candidate.accuracy = FieldOptionalDouble(row[first + 3]);
  candidate.latency_ms = FieldOptionalDouble(row[first + 4]);
  candidate.energy_mj = FieldOptionalDouble(row[first + 5]);
  candidate.size_mb = FieldOptionalDouble(row[first + 6]);
  candidate.bitops = FieldOptionalDouble(row[first + 7]);
  candidate.feasible = FieldBool(row[first + 8]);
  candidate.modelled = FieldBytes(row[first + 9]);
  return candidate;
}

// Reads kCandidateColumns starting at `first`.
CandidateRecord ReadCandidate(const pqxx::row& row, int first) {
  CandidateRecord candidate = ReadCandidateFigures(row, first);
  candidate.measured = ReadMeasurement(row, first + 10);
  candidate.times_seen = FieldInt(row[first + 14]);
  return candidate;
}

// Reads kJobColumns, then the checkpoint if `with_checkpoint`.
JobRecord ReadJob(const pqxx::row& row, bool with_checkpoint) {
  JobRecord job;
  job.id = FieldBytes(row[0]);
  job.space = FieldBytes(row[1]);
  job.device = FieldBytes(row[2]);
  job.table_version = FieldInt(row[3]);
  job.predictor_version = FieldBytes(row[4]);
  job.request = FieldBytes(row[5]);
  job.state = static_cast<JobState>(FieldInt(row[6]));
  job.error = FieldBytes(row[7]);
  job.generations_done = static_cast<int>(FieldInt(row[8]));
  job.candidates_evaluated = FieldInt(row[9]);
  // The best's copy is in ReadCandidateFigures' order from column 10.
  if (!FieldIsNull(row[12])) {
    job.best = ReadCandidateFigures(row, 10);
    job.best->measured = ReadMeasurement(row, 28);
    // The count of the best's row; 1 when its id names no row of the job.
    if (!FieldIsNull(row[47])) job.best->times_seen = FieldInt(row[47]);
  }
  job.created_unix_s = FieldDouble(row[20]);
  job.started_unix_s = FieldDouble(row[21]);
  job.finished_unix_s = FieldDouble(row[22]);
  job.elapsed_s = FieldDouble(row[23]);
  job.pareto_front_size = FieldInt(row[24]);
  job.stage = static_cast<JobStage>(FieldInt(row[25]));
  job.verification_finalists = static_cast<int>(FieldInt(row[26]));
  job.verification_measured = static_cast<int>(FieldInt(row[27]));
  if (!FieldIsNull(row[32])) job.verified_best = ReadCandidate(row, 32);
  job.rejected_draws = FieldInt(row[48]);
  job.sweep_id = FieldBytes(row[49]);
  job.owner = FieldBytes(row[50]);
  job.engine_metrics = store_internal::DecodeEngineMetrics(FieldBytes(row[51]));
  job.label = FieldBytes(row[52]);
  if (with_checkpoint) job.checkpoint = FieldBytes(row[kJobCheckpointColumn]);
  return job;
}

// The sort column of each ListCandidates order other than kId (nullptr for kId and for a
// value that is no order).
const char* SortColumn(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kId:
      return nullptr;
    case CandidateOrder::kAccuracyDesc:
      return "accuracy";
    case CandidateOrder::kLatencyAsc:
      return "latency_ms";
    case CandidateOrder::kEnergyAsc:
      return "energy_mj";
    case CandidateOrder::kSizeAsc:
      return "size_mb";
    case CandidateOrder::kBitopsAsc:
      return "bitops";
  }
  return nullptr;
}

bool IsCandidateOrder(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kId:
    case CandidateOrder::kAccuracyDesc:
    case CandidateOrder::kLatencyAsc:
    case CandidateOrder::kEnergyAsc:
    case CandidateOrder::kSizeAsc:
    case CandidateOrder::kBitopsAsc:
      return true;
  }
  return false;
}

// The ORDER BY of each order: ties in id order, unset metrics last (PostgreSQL sorts NULL
// first in descending order unless told).
std::string OrderBy(CandidateOrder order) {
  const char* column = SortColumn(order);
  if (column == nullptr) return "id";
  return absl::StrCat(column, order == CandidateOrder::kAccuracyDesc ? " DESC" : "",
                      " NULLS LAST, id");
}

// The rows after `cursor` in `order` (ties in id order, unset figures last, as OrderBy
// sorts), its values appended to `params`.
std::string AfterCursorSql(CandidateOrder order, const CandidateCursor& cursor,
                           PostgresParams& params, int* next_param) {
  const int id_param = (*next_param)++;
  params.Int(cursor.id);
  const char* column = SortColumn(order);
  if (column == nullptr) return absl::StrCat("id > $", id_param, "::int8");
  if (!cursor.key.has_value()) {
    return absl::StrCat("(", column, " IS NULL AND id > $", id_param, "::int8)");
  }
  const int key_param = (*next_param)++;
  params.Double(*cursor.key, "cursor key");
  const char* beyond = order == CandidateOrder::kAccuracyDesc ? " < " : " > ";
  return absl::StrCat("(", column, " IS NULL OR ", column, beyond, "$", key_param, "::float8 OR (",
                      column, " = $", key_param, "::float8 AND id > $", id_param, "::int8))");
}

// The job's state, its row locked until the transaction ends (writers of one job then run
// one at a time, here and in other replicas); NOT_FOUND for an unknown or deleted job.
absl::StatusOr<JobState> LockJobState(PostgresTransaction& tx, const std::string& job_id) {
  ASSIGN_OR_RETURN(
      const pqxx::result rows,
      tx.Exec("SELECT state FROM jobs WHERE id = $1::bytea AND deleted_unix_s = 0 FOR UPDATE",
              PostgresParams().Bytes(job_id)));
  if (rows.empty()) return JobNotFound(job_id);
  return static_cast<JobState>(FieldInt(rows[0][0]));
}

struct VerificationState {
  JobStage stage = JobStage::kSearch;
  int finalists = 0;
  int measured = 0;
};

// The verification columns of an unfinished job, its row locked; NOT_FOUND for an unknown
// job, FAILED_PRECONDITION for one that has ended.
absl::StatusOr<VerificationState> LockVerificationState(PostgresTransaction& tx,
                                                        const std::string& job_id) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   tx.Exec("SELECT state, stage, verification_finalists, verification_measured "
                           "FROM jobs WHERE id = $1::bytea AND deleted_unix_s = 0 FOR UPDATE",
                           PostgresParams().Bytes(job_id)));
  if (rows.empty()) return JobNotFound(job_id);
  const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
  if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
  VerificationState held;
  held.stage = static_cast<JobStage>(FieldInt(rows[0][1]));
  held.finalists = static_cast<int>(FieldInt(rows[0][2]));
  held.measured = static_cast<int>(FieldInt(rows[0][3]));
  return held;
}

// The job's feasible candidate `id`, or none.
absl::StatusOr<std::optional<CandidateRecord>> LoadFeasibleCandidate(PostgresTransaction& tx,
                                                                     const std::string& job_id,
                                                                     int64_t id) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   tx.Exec(absl::StrCat("SELECT ", kCandidateColumns,
                                        " FROM candidates WHERE id = $1::int8 AND "
                                        "job_id = $2::bytea AND feasible"),
                           PostgresParams().Int(id).Bytes(job_id)));
  if (rows.empty()) return std::optional<CandidateRecord>();
  return std::optional<CandidateRecord>(ReadCandidate(rows[0], 0));
}

// Inserts a queued job row (in the caller's write transaction, which holds
// PostgresLock::kJobIds) and returns its id. A job of a sweep passes the sweep's id, or an
// empty one for its first job, which names the sweep after itself; a lone job passes null.
absl::StatusOr<std::string> InsertJob(PostgresTransaction& tx, const JobRecord& job,
                                      std::string* sweep_id) {
  ASSIGN_OR_RETURN(const pqxx::result next, tx.Exec("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs"));
  const int64_t seq = FieldInt(next[0][0]);
  const std::string id = absl::StrCat("job-", seq);
  if (sweep_id != nullptr && sweep_id->empty()) *sweep_id = absl::StrCat("sweep-", seq);
  PostgresParams params;
  params.Bytes(id)
      .Int(seq)
      .Bytes(job.space)
      .Bytes(job.device)
      .Int(job.table_version)
      .Bytes(job.predictor_version)
      .Bytes(job.request)
      .Int(static_cast<int64_t>(JobState::kQueued))
      .Double(job.created_unix_s, "created_unix_s")
      .Bytes(sweep_id != nullptr ? *sweep_id : std::string())
      .Bytes(job.owner)
      .Bytes(job.label);
  RETURN_IF_ERROR(tx.Run("INSERT INTO jobs (id, seq, space, device, table_version, "
                         "predictor_version, request, state, created_unix_s, sweep_id, owner, "
                         "label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                         params)
                      .status());
  return id;
}

// DeleteJob's work, in the caller's write transaction.
absl::Status DeleteJobIn(PostgresTransaction& tx, const std::string& job_id,
                         double deleted_unix_s) {
  if (!(deleted_unix_s > 0)) {
    return absl::InvalidArgumentError("deleted_unix_s: must be a positive time");
  }
  ASSIGN_OR_RETURN(const JobState state, LockJobState(tx, job_id));
  if (!IsTerminal(state)) return store_internal::JobNotEnded(job_id, state);
  RETURN_IF_ERROR(
      tx.Run("DELETE FROM candidates WHERE job_id = $1::bytea", PostgresParams().Bytes(job_id))
          .status());
  // Its artifacts go with it; shared ones (job_id '') never match.
  RETURN_IF_ERROR(
      tx.Run("DELETE FROM artifacts WHERE job_id = $1::bytea", PostgresParams().Bytes(job_id))
          .status());
  // The row stays as a tombstone, so that the job's id is never given again.
  return tx
      .Run(
          "UPDATE jobs SET deleted_unix_s = $2, request = '', checkpoint = '', best_id = NULL, "
          "verified_best_id = NULL WHERE id = $1::bytea",
          PostgresParams().Bytes(job_id).Double(deleted_unix_s, "deleted_unix_s"))
      .status();
}

// A new network row of a batch, as copied: kCandidateCopyColumns' values.
PostgresParams CandidateRow(int64_t id, const std::string& job_id, const CandidateRecord& candidate,
                            int64_t times_seen, int64_t network_hash) {
  PostgresParams row;
  row.Int(id)
      .Bytes(job_id)
      .Int(candidate.generation)
      .Int(times_seen)
      .Int(network_hash)
      .Bytes(candidate.config_json)
      .OptionalDouble(candidate.accuracy, "candidate accuracy")
      .OptionalDouble(candidate.latency_ms, "candidate latency_ms")
      .OptionalDouble(candidate.energy_mj, "candidate energy_mj")
      .OptionalDouble(candidate.size_mb, "candidate size_mb")
      .OptionalDouble(candidate.bitops, "candidate bitops")
      .Bool(candidate.feasible)
      .Bytes(candidate.modelled);
  return row;
}

}  // namespace

absl::StatusOr<std::string> PostgresJobStore::CreateJob(const JobRecord& job) {
  std::string id;
  RETURN_IF_ERROR(database_.Transact(Mode::kWrite, "creating a job", [&](PostgresTransaction& tx) {
    RETURN_IF_ERROR(tx.Lock(PostgresLock::kJobIds));
    ASSIGN_OR_RETURN(id, InsertJob(tx, job, nullptr));
    return absl::OkStatus();
  }));
  return id;
}

absl::StatusOr<SweepIds> PostgresJobStore::CreateSweep(const std::vector<JobRecord>& jobs) {
  if (jobs.empty()) return absl::InvalidArgumentError("a sweep needs at least one job");
  SweepIds ids;
  RETURN_IF_ERROR(
      database_.Transact(Mode::kWrite, "creating a sweep", [&](PostgresTransaction& tx) {
        ids = SweepIds();
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kJobIds));
        for (const JobRecord& job : jobs) {
          ASSIGN_OR_RETURN(std::string id, InsertJob(tx, job, &ids.sweep_id));
          ids.job_ids.push_back(std::move(id));
        }
        return absl::OkStatus();
      }));
  return ids;
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::ListSweepJobs(
    const std::string& sweep_id) {
  std::vector<JobRecord> jobs;
  if (!sweep_id.empty()) {
    RETURN_IF_ERROR(database_.Transact(
        Mode::kRead, absl::StrCat("listing the jobs of ", sweep_id), [&](PostgresTransaction& tx) {
          jobs.clear();
          ASSIGN_OR_RETURN(const pqxx::result rows,
                           tx.Exec(absl::StrCat("SELECT ", kJobColumns, kJobJoins,
                                                "WHERE j.sweep_id = $1::bytea AND "
                                                "j.deleted_unix_s = 0 ORDER BY j.seq"),
                                   PostgresParams().Bytes(sweep_id)));
          for (const pqxx::row& row : rows) jobs.push_back(ReadJob(row, /*with_checkpoint=*/false));
          return absl::OkStatus();
        }));
  }
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no sweep ", sweep_id));
  return jobs;
}

absl::Status PostgresJobStore::MarkRunning(const std::string& job_id, double started_unix_s) {
  return database_.Transact(
      Mode::kWrite, absl::StrCat("marking job ", job_id, " running"),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const JobState state, LockJobState(tx, job_id));
        if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
        return tx
            .Run("UPDATE jobs SET state = $2, started_unix_s = $3 WHERE id = $1::bytea",
                 PostgresParams()
                     .Bytes(job_id)
                     .Int(static_cast<int64_t>(JobState::kRunning))
                     .Double(started_unix_s, "started_unix_s"))
            .status();
      });
}

absl::StatusOr<std::vector<int64_t>> PostgresJobStore::AppendGenerations(
    const std::string& job_id, const GenerationBatch& batch) {
  RETURN_IF_ERROR(store_internal::CheckGenerationBatch(batch));
  const std::string operation = store_internal::AppendOperation(job_id, batch);
  for (const CandidateRecord& candidate : batch.candidates) {
    RETURN_IF_ERROR(store_internal::CheckFiguresNotNan(candidate, "candidate", operation));
  }
  // The batch's networks: each distinct one's first candidate and its count over the batch.
  const size_t count = batch.candidates.size();
  std::vector<int64_t> hashes(count);
  std::vector<size_t> first_of(count);        // The batch index of the candidate's network's first.
  std::vector<int64_t> times_seen(count, 0);  // At each network's first: its batch total.
  {
    absl::flat_hash_map<absl::string_view, size_t> first_index;
    for (size_t i = 0; i < count; ++i) {
      const CandidateRecord& candidate = batch.candidates[i];
      hashes[i] = NetworkHash(candidate.config_json);
      first_of[i] = first_index.try_emplace(candidate.config_json, i).first->second;
      times_seen[first_of[i]] += candidate.times_seen;
    }
  }
  const std::string engine_metrics = store_internal::EncodeEngineMetrics(batch.engine_metrics);
  std::vector<int64_t> ids;
  RETURN_IF_ERROR(
      database_.Transact(Mode::kWrite, operation, [&](PostgresTransaction& tx) -> absl::Status {
        ids.assign(count, 0);
        {
          ASSIGN_OR_RETURN(const pqxx::result rows,
                           tx.Exec("SELECT state, next_generation, stage FROM jobs WHERE id = "
                                   "$1::bytea AND deleted_unix_s = 0 FOR UPDATE",
                                   PostgresParams().Bytes(job_id)));
          if (rows.empty()) return JobNotFound(job_id);
          const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
          const int64_t next_generation = FieldInt(rows[0][1]);
          if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
          if (static_cast<JobStage>(FieldInt(rows[0][2])) != JobStage::kSearch) {
            return store_internal::SearchStageEnded(job_id);
          }
          if (batch.first_generation != next_generation) {
            return store_internal::GenerationOutOfOrder(job_id, next_generation,
                                                        batch.first_generation);
          }
        }
        // The job's rows of the batch's networks, found by hash (indexed) in one query, then
        // matched by text.
        absl::flat_hash_map<std::string, int64_t> stored;
        if (count > 0) {
          ASSIGN_OR_RETURN(
              const pqxx::result rows,
              tx.Exec("SELECT id, config_json FROM candidates WHERE job_id = $1::bytea "
                      "AND network_hash = ANY($2::int8[])",
                      PostgresParams().Bytes(job_id).IntArray(hashes)));
          for (const pqxx::row& row : rows) {
            stored.emplace(FieldBytes(row[1]), FieldInt(row[0]));
          }
        }
        // New networks get ids above every id given before, ascending in batch order.
        std::vector<size_t> new_firsts;
        std::vector<int64_t> counted_ids;
        std::vector<int64_t> counted_times;
        for (size_t i = 0; i < count; ++i) {
          if (first_of[i] != i) continue;
          const auto found = stored.find(batch.candidates[i].config_json);
          if (found != stored.end()) {
            ids[i] = found->second;
            counted_ids.push_back(found->second);
            counted_times.push_back(times_seen[i]);
          } else {
            new_firsts.push_back(i);
          }
        }
        int64_t new_feasible = 0;
        int64_t new_infeasible = 0;
        if (!new_firsts.empty()) {
          ASSIGN_OR_RETURN(const pqxx::result reserved,
                           tx.Exec("SELECT nextval(pg_get_serial_sequence('candidates', 'id')) "
                                   "FROM generate_series(1, $1::int8)",
                                   PostgresParams().Int(static_cast<int64_t>(new_firsts.size()))));
          std::vector<int64_t> new_ids;
          new_ids.reserve(reserved.size());
          for (const pqxx::row& row : reserved) new_ids.push_back(FieldInt(row[0]));
          std::sort(new_ids.begin(), new_ids.end());
          std::vector<PostgresParams> rows;
          rows.reserve(new_firsts.size());
          for (size_t k = 0; k < new_firsts.size(); ++k) {
            const size_t i = new_firsts[k];
            const CandidateRecord& candidate = batch.candidates[i];
            ids[i] = new_ids[k];
            rows.push_back(CandidateRow(new_ids[k], job_id, candidate, times_seen[i], hashes[i]));
            ++(candidate.feasible ? new_feasible : new_infeasible);
          }
          RETURN_IF_ERROR(tx.Copy("candidates", CandidateCopyColumns(), rows));
        }
        if (!counted_ids.empty()) {
          RETURN_IF_ERROR(tx.Run("UPDATE candidates c SET times_seen = c.times_seen + u.seen "
                                 "FROM unnest($1::int8[], $2::int8[]) AS u(id, seen) "
                                 "WHERE c.id = u.id",
                                 PostgresParams().IntArray(counted_ids).IntArray(counted_times))
                              .status());
        }
        for (size_t i = 0; i < count; ++i) ids[i] = ids[first_of[i]];
        PostgresParams update;
        update.Bytes(job_id).Int(batch.last_generation).Int(batch.candidates_evaluated);
        if (batch.best.has_value()) {
          const CandidateRecord& best = *batch.best;
          update.Int(batch.best_batch_index >= 0 ? ids[batch.best_batch_index] : best.id)
              .Int(best.generation)
              .Bytes(best.config_json)
              .OptionalDouble(best.accuracy, "best accuracy")
              .OptionalDouble(best.latency_ms, "best latency_ms")
              .OptionalDouble(best.energy_mj, "best energy_mj")
              .OptionalDouble(best.size_mb, "best size_mb")
              .OptionalDouble(best.bitops, "best bitops")
              .Bool(best.feasible)
              .Bytes(best.modelled);
        } else {
          // No best: its ten columns NULL.
          for (int i = 0; i < 10; ++i) update.Null();
        }
        update.Bytes(batch.checkpoint)
            .Double(batch.elapsed_s, "elapsed_s")
            .Int(new_feasible)
            .Int(new_infeasible)
            .Int(batch.rejected_draws)
            .Bytes(engine_metrics);
        return tx
            .Run(
                "UPDATE jobs SET generations_done = $2, next_generation = $2::int8 + 1, "
                "candidates_evaluated = $3, best_id = $4::int8, best_generation = $5::int8, "
                "best_config_json = $6::bytea, best_accuracy = $7::float8, "
                "best_latency_ms = $8::float8, best_energy_mj = $9::float8, "
                "best_size_mb = $10::float8, best_bitops = $11::float8, best_feasible = $12::bool, "
                "best_modelled = $13::bytea, checkpoint = $14, elapsed_s = $15, "
                "stored_feasible = stored_feasible + $16::int8, "
                "stored_infeasible = stored_infeasible + $17::int8, rejected_draws = $18, "
                "engine_metrics = $19 WHERE id = $1::bytea",
                update)
            .status();
      }));
  return ids;
}

absl::Status PostgresJobStore::BeginVerification(const std::string& job_id, int finalists) {
  RETURN_IF_ERROR(store_internal::CheckFinalists(finalists));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("beginning the verification stage of job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const VerificationState held, LockVerificationState(tx, job_id));
        ASSIGN_OR_RETURN(const bool write, store_internal::CheckBeginVerification(
                                               job_id, finalists, held.stage, held.finalists));
        if (!write) return absl::OkStatus();
        return tx
            .Run("UPDATE jobs SET stage = $2, verification_finalists = $3 WHERE id = $1::bytea",
                 PostgresParams()
                     .Bytes(job_id)
                     .Int(static_cast<int64_t>(JobStage::kVerification))
                     .Int(finalists))
            .status();
      });
}

absl::Status PostgresJobStore::RecordVerification(const std::string& job_id, int64_t candidate_id,
                                                  const CandidateMeasurement& measurement,
                                                  int64_t verified_best_id) {
  RETURN_IF_ERROR(store_internal::CheckCandidateMeasurement(measurement));
  return database_.Transact(
      Mode::kWrite,
      absl::StrCat("recording the measurement of candidate ", candidate_id, " of job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const VerificationState held, LockVerificationState(tx, job_id));
        ASSIGN_OR_RETURN(const std::optional<CandidateRecord> candidate,
                         LoadFeasibleCandidate(tx, job_id, candidate_id));
        ASSIGN_OR_RETURN(const std::optional<CandidateRecord> best,
                         LoadFeasibleCandidate(tx, job_id, verified_best_id));
        store_internal::VerificationTarget target;
        target.stage = held.stage;
        target.finalists = held.finalists;
        target.measured = held.measured;
        target.candidate = candidate ? &*candidate : nullptr;
        target.verified_best = best ? &*best : nullptr;
        ASSIGN_OR_RETURN(const bool first,
                         store_internal::CheckRecordVerification(job_id, candidate_id, measurement,
                                                                 verified_best_id, target));
        if (first) {
          RETURN_IF_ERROR(
              tx.Run("UPDATE candidates SET measured_accuracy = $2, measured_method = $3, "
                     "measured_split = $4, measured_seconds = $5 WHERE id = $1::int8",
                     PostgresParams()
                         .Int(candidate_id)
                         .Double(measurement.accuracy, "measured accuracy")
                         .Bytes(measurement.method)
                         .Bytes(measurement.split)
                         .Double(measurement.seconds, "measured seconds"))
                  .status());
        }
        return tx
            .Run(
                "UPDATE jobs SET verified_best_id = $2, verification_measured = "
                "verification_measured + $3::int4 WHERE id = $1::bytea",
                PostgresParams().Bytes(job_id).Int(verified_best_id).Int(first ? 1 : 0))
            .status();
      });
}

absl::Status PostgresJobStore::FinishJob(const std::string& job_id, JobState state,
                                         const std::string& error, double finished_unix_s,
                                         double elapsed_s,
                                         const std::vector<int64_t>& pareto_front_ids) {
  RETURN_IF_ERROR(store_internal::CheckTerminal(state, "FinishJob"));
  RETURN_IF_ERROR(store_internal::CheckDistinctIds(pareto_front_ids));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("finishing job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const JobState current, LockJobState(tx, job_id));
        if (IsTerminal(current)) return store_internal::JobEnded(job_id, current);
        RETURN_IF_ERROR(tx.Run("UPDATE jobs SET state = $2, error = $3, finished_unix_s = $4, "
                               "elapsed_s = $5, pareto_front_size = $6, lease_holder = '', "
                               "lease_expires_unix_s = 0 WHERE id = $1::bytea",
                               PostgresParams()
                                   .Bytes(job_id)
                                   .Int(static_cast<int64_t>(state))
                                   .Bytes(error)
                                   .Double(finished_unix_s, "finished_unix_s")
                                   .Double(elapsed_s, "elapsed_s")
                                   .Int(static_cast<int64_t>(pareto_front_ids.size())))
                            .status());
        if (pareto_front_ids.empty()) return absl::OkStatus();
        // The ids are distinct: each marks one row unless it is no feasible candidate of
        // the job; the first such id (in the caller's order) is named.
        ASSIGN_OR_RETURN(const pqxx::result marked,
                         tx.Exec("UPDATE candidates SET on_pareto_front = TRUE WHERE job_id = "
                                 "$1::bytea AND feasible AND id = ANY($2::int8[]) RETURNING id",
                                 PostgresParams().Bytes(job_id).IntArray(pareto_front_ids)));
        if (marked.size() != pareto_front_ids.size()) {
          std::vector<int64_t> found;
          for (const pqxx::row& row : marked) found.push_back(FieldInt(row[0]));
          std::sort(found.begin(), found.end());
          for (const int64_t id : pareto_front_ids) {
            if (!std::binary_search(found.begin(), found.end(), id)) {
              return store_internal::NotAFrontCandidate(job_id, id);
            }
          }
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<JobRecord> PostgresJobStore::GetJob(const std::string& job_id) {
  JobRecord job;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kRead, absl::StrCat("reading job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kJobColumns, ", j.checkpoint", kJobJoins,
                                              "WHERE j.id = $1::bytea AND j.deleted_unix_s = 0"),
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return JobNotFound(job_id);
        job = ReadJob(rows[0], /*with_checkpoint=*/true);
        return absl::OkStatus();
      }));
  return job;
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::ListJobsPage(const JobQuery& query) {
  RETURN_IF_ERROR(store_internal::CheckPage(query.offset, query.limit));
  if (query.state.has_value() && !store_internal::IsValidState(*query.state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown job state ", static_cast<int>(*query.state)));
  }
  std::vector<JobRecord> jobs;
  RETURN_IF_ERROR(
      database_.Transact(Mode::kRead, "listing jobs", [&](PostgresTransaction& tx) -> absl::Status {
        jobs.clear();
        PostgresParams params;
        params.Int(query.limit).Int(query.offset);
        int next_param = 3;
        std::string where = "j.deleted_unix_s = 0";
        auto add_bytes = [&](const char* column, const std::string& value) {
          absl::StrAppend(&where, " AND ", column, " = $", next_param++, "::bytea");
          params.Bytes(value);
        };
        if (query.state.has_value()) {
          absl::StrAppend(&where, " AND j.state = $", next_param++, "::int4");
          params.Int(static_cast<int64_t>(*query.state));
        }
        if (query.owner.has_value()) add_bytes("j.owner", *query.owner);
        if (query.space.has_value()) add_bytes("j.space", *query.space);
        if (query.device.has_value()) add_bytes("j.device", *query.device);
        if (query.label.has_value()) add_bytes("j.label", *query.label);
        if (!query.after_job.empty()) {
          // Deleted jobs keep their row (a tombstone), so a page after one still has its place.
          ASSIGN_OR_RETURN(const pqxx::result found,
                           tx.Exec("SELECT seq FROM jobs WHERE id = $1::bytea",
                                   PostgresParams().Bytes(query.after_job)));
          if (found.empty()) {
            return absl::InvalidArgumentError(
                absl::StrCat("after_job: ", query.after_job, " is not a job of this store"));
          }
          absl::StrAppend(&where, " AND j.seq < $", next_param++, "::int8");
          params.Int(FieldInt(found[0][0]));
        }
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kJobColumns, kJobJoins, "WHERE ", where,
                                 " ORDER BY j.seq DESC LIMIT $1::int8 OFFSET $2::int8"),
                    params));
        for (const pqxx::row& row : rows) jobs.push_back(ReadJob(row, /*with_checkpoint=*/false));
        return absl::OkStatus();
      }));
  return jobs;
}

absl::StatusOr<CandidatePage> PostgresJobStore::ListCandidates(const CandidateQuery& query) {
  RETURN_IF_ERROR(store_internal::CheckPage(query.offset, query.limit));
  RETURN_IF_ERROR(store_internal::CheckCursor(query));
  if (!IsCandidateOrder(query.order)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown candidate order ", static_cast<int>(query.order)));
  }
  CandidatePage page;
  // The total and the page come from one snapshot (Mode::kRead).
  RETURN_IF_ERROR(database_.Transact(
      Mode::kRead, absl::StrCat("listing candidates of job ", query.job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        page = CandidatePage();
        {
          ASSIGN_OR_RETURN(const pqxx::result rows,
                           tx.Exec("SELECT stored_feasible, stored_infeasible, pareto_front_size "
                                   "FROM jobs WHERE id = $1::bytea AND deleted_unix_s = 0",
                                   PostgresParams().Bytes(query.job_id)));
          if (rows.empty()) return JobNotFound(query.job_id);
          const int64_t feasible = FieldInt(rows[0][0]);
          const int64_t infeasible = FieldInt(rows[0][1]);
          page.total = !query.feasible.has_value() ? feasible + infeasible
                       : *query.feasible           ? feasible
                                                   : infeasible;
          if (query.pareto_front_only) {
            // Every front row is feasible.
            page.total = query.feasible.value_or(true) ? FieldInt(rows[0][2]) : 0;
          }
        }
        if (query.offset >= page.total && !query.after.has_value()) return absl::OkStatus();
        PostgresParams params;
        params.Bytes(query.job_id).Int(query.limit).Int(query.offset);
        int next_param = 4;
        std::string where = "job_id = $1::bytea";
        // Every front row is feasible: the front needs no feasibility filter.
        if (query.pareto_front_only) {
          absl::StrAppend(&where, " AND on_pareto_front");
        } else if (query.feasible.has_value()) {
          absl::StrAppend(&where, " AND feasible = $", next_param++, "::bool");
          params.Bool(*query.feasible);
        }
        if (query.after.has_value()) {
          absl::StrAppend(&where, " AND ",
                          AfterCursorSql(query.order, *query.after, params, &next_param));
        }
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kCandidateColumns,
                                 ", on_pareto_front FROM candidates WHERE ", where, " ORDER BY ",
                                 OrderBy(query.order), " LIMIT $2::int8 OFFSET $3::int8"),
                    params));
        for (const pqxx::row& row : rows) {
          page.candidates.push_back(ReadCandidate(row, 0));
          page.candidates.back().on_pareto_front = FieldBool(row[kCandidateColumnCount]);
        }
        return absl::OkStatus();
      }));
  return page;
}

absl::StatusOr<std::map<JobState, int64_t>> PostgresJobStore::CountJobsByState() {
  std::map<JobState, int64_t> counts;
  RETURN_IF_ERROR(database_.Transact(Mode::kRead, "counting jobs", [&](PostgresTransaction& tx) {
    counts.clear();
    ASSIGN_OR_RETURN(const pqxx::result rows,
                     tx.Exec("SELECT state, COUNT(*) FROM jobs WHERE deleted_unix_s = 0 "
                             "GROUP BY state"));
    for (const pqxx::row& row : rows) {
      counts[static_cast<JobState>(FieldInt(row[0]))] = FieldInt(row[1]);
    }
    return absl::OkStatus();
  }));
  return counts;
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::JobsWithoutLabel(int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  // This backend stores every job's label from its first schema on: none is listed unless
  // a row was written by other means.
  std::vector<JobRecord> jobs;
  RETURN_IF_ERROR(
      database_.Transact(Mode::kRead, "listing jobs without a label", [&](PostgresTransaction& tx) {
        jobs.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT id, request FROM jobs WHERE label IS NULL ORDER BY seq "
                                 "LIMIT $1::int8",
                                 PostgresParams().Int(limit)));
        for (const pqxx::row& row : rows) {
          JobRecord job;
          job.id = FieldBytes(row[0]);
          job.request = FieldBytes(row[1]);
          jobs.push_back(std::move(job));
        }
        return absl::OkStatus();
      }));
  return jobs;
}

absl::Status PostgresJobStore::SetJobLabel(const std::string& job_id, const std::string& label) {
  return database_.Transact(Mode::kWrite, absl::StrCat("setting the label of job ", job_id),
                            [&](PostgresTransaction& tx) -> absl::Status {
                              ASSIGN_OR_RETURN(
                                  const int64_t changed,
                                  tx.Run("UPDATE jobs SET label = $2 WHERE id = $1::bytea",
                                         PostgresParams().Bytes(job_id).Bytes(label)));
                              if (changed == 0) return JobNotFound(job_id);
                              return absl::OkStatus();
                            });
}

absl::Status PostgresJobStore::DeleteJob(const std::string& job_id, double deleted_unix_s) {
  return database_.Transact(
      Mode::kWrite, absl::StrCat("deleting job ", job_id),
      [&](PostgresTransaction& tx) { return DeleteJobIn(tx, job_id, deleted_unix_s); });
}

absl::StatusOr<std::vector<std::string>> PostgresJobStore::DeleteJobsFinishedBefore(
    double finished_before_unix_s, double deleted_unix_s, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  std::vector<std::string> ids;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, "pruning finished jobs", [&](PostgresTransaction& tx) -> absl::Status {
        ids.clear();
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec("SELECT id FROM jobs WHERE deleted_unix_s = 0 AND state IN ($1, $2, $3) "
                    "AND finished_unix_s > 0 AND finished_unix_s < $4::float8 ORDER BY seq "
                    "LIMIT $5::int8 FOR UPDATE SKIP LOCKED",
                    PostgresParams()
                        .Int(static_cast<int64_t>(JobState::kSucceeded))
                        .Int(static_cast<int64_t>(JobState::kFailed))
                        .Int(static_cast<int64_t>(JobState::kCancelled))
                        .Double(finished_before_unix_s, "finished_before_unix_s")
                        .Int(limit)));
        for (const pqxx::row& row : rows) ids.push_back(FieldBytes(row[0]));
        for (const std::string& id : ids) RETURN_IF_ERROR(DeleteJobIn(tx, id, deleted_unix_s));
        return absl::OkStatus();
      }));
  return ids;
}

absl::StatusOr<std::optional<ClaimedJob>> PostgresJobStore::ClaimJob(const std::string& holder,
                                                                     double now_unix_s,
                                                                     double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  std::optional<ClaimedJob> claimed;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, "claiming a job", [&](PostgresTransaction& tx) -> absl::Status {
        claimed.reset();
        // SKIP LOCKED: a job another claimer is taking right now is passed over, not waited
        // for, so claimers never queue behind each other and never get one job twice (the
        // row stays locked until this transaction commits the new lease).
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec("SELECT id, state, cancel_requested FROM jobs WHERE deleted_unix_s = 0 AND "
                    "state IN ($1::int4, $2::int4) AND lease_expires_unix_s <= $3::float8 "
                    "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                    PostgresParams()
                        .Int(static_cast<int64_t>(JobState::kQueued))
                        .Int(static_cast<int64_t>(JobState::kRunning))
                        .Double(now_unix_s, "now_unix_s")));
        if (rows.empty()) return absl::OkStatus();
        ClaimedJob job;
        job.job_id = FieldBytes(rows[0][0]);
        job.state = static_cast<JobState>(FieldInt(rows[0][1]));
        job.cancel_requested = FieldBool(rows[0][2]);
        RETURN_IF_ERROR(tx.Run("UPDATE jobs SET lease_holder = $2, lease_expires_unix_s = $3 "
                               "WHERE id = $1::bytea",
                               PostgresParams()
                                   .Bytes(job.job_id)
                                   .Bytes(holder)
                                   .Double(expires_unix_s, "expires_unix_s"))
                            .status());
        claimed = std::move(job);
        return absl::OkStatus();
      }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> PostgresJobStore::RenewLease(const std::string& job_id,
                                                          const std::string& holder,
                                                          double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  LeaseRenewal renewal;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, absl::StrCat("renewing the lease of job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT state, lease_holder, cancel_requested FROM jobs "
                                 "WHERE id = $1::bytea AND deleted_unix_s = 0 FOR UPDATE",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return JobNotFound(job_id);
        const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
        if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
        if (FieldBytes(rows[0][1]) != holder) return store_internal::LeaseNotHeld(job_id, holder);
        renewal.cancel_requested = FieldBool(rows[0][2]);
        return tx
            .Run("UPDATE jobs SET lease_expires_unix_s = $2 WHERE id = $1::bytea",
                 PostgresParams().Bytes(job_id).Double(expires_unix_s, "expires_unix_s"))
            .status();
      }));
  return renewal;
}

absl::Status PostgresJobStore::ReleaseLease(const std::string& job_id, const std::string& holder) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  return database_.Transact(
      Mode::kWrite, absl::StrCat("releasing the lease of job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT 1 FROM jobs WHERE id = $1::bytea AND deleted_unix_s = 0",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return JobNotFound(job_id);
        return tx
            .Run(
                "UPDATE jobs SET lease_holder = '', lease_expires_unix_s = 0 WHERE id = "
                "$1::bytea AND lease_holder = $2::bytea AND state IN ($3::int4, $4::int4)",
                PostgresParams()
                    .Bytes(job_id)
                    .Bytes(holder)
                    .Int(static_cast<int64_t>(JobState::kQueued))
                    .Int(static_cast<int64_t>(JobState::kRunning)))
            .status();
      });
}

absl::StatusOr<CancelRequestOutcome> PostgresJobStore::RequestCancel(const std::string& job_id,
                                                                     double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  CancelRequestOutcome outcome = CancelRequestOutcome::kRequested;
  RETURN_IF_ERROR(database_.Transact(
      Mode::kWrite, absl::StrCat("cancelling job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT state, lease_expires_unix_s FROM jobs WHERE id = "
                                 "$1::bytea AND deleted_unix_s = 0 FOR UPDATE",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return JobNotFound(job_id);
        const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
        if (IsTerminal(state)) return store_internal::JobEnded(job_id, state);
        const bool lease_free = FieldDouble(rows[0][1]) <= now_unix_s;
        if (state == JobState::kQueued && lease_free) {
          outcome = CancelRequestOutcome::kEnded;
          return tx
              .Run(
                  "UPDATE jobs SET state = $2, finished_unix_s = $3, elapsed_s = 0, "
                  "pareto_front_size = 0, lease_holder = '', lease_expires_unix_s = 0 "
                  "WHERE id = $1::bytea",
                  PostgresParams()
                      .Bytes(job_id)
                      .Int(static_cast<int64_t>(JobState::kCancelled))
                      .Double(now_unix_s, "now_unix_s"))
              .status();
        }
        outcome = CancelRequestOutcome::kRequested;
        return tx
            .Run("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1::bytea",
                 PostgresParams().Bytes(job_id))
            .status();
      }));
  return outcome;
}

}  // namespace apq::server
