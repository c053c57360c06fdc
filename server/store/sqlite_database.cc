#include "server/store/sqlite_database.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::server {
namespace {

// Schema migrations, applied in order: the database's PRAGMA user_version counts those
// applied. Never edit a released entry; append a new one.
constexpr const char* kMigrations[] = {
    // 1: jobs, their candidates, device cost tables, predictors.
    R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY NOT NULL,
  seq INTEGER NOT NULL UNIQUE,
  space TEXT NOT NULL,
  device TEXT NOT NULL,
  table_version INTEGER NOT NULL,
  predictor_version TEXT NOT NULL,
  request BLOB NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  error TEXT NOT NULL DEFAULT '',
  generations_done INTEGER NOT NULL DEFAULT 0,
  -- The generation AppendGeneration accepts next: 0 until the first batch is stored.
  next_generation INTEGER NOT NULL DEFAULT 0,
  candidates_evaluated INTEGER NOT NULL DEFAULT 0,
  -- Rows in candidates for this job, by feasibility: ListCandidates' totals without a count.
  stored_feasible INTEGER NOT NULL DEFAULT 0,
  stored_infeasible INTEGER NOT NULL DEFAULT 0,
  -- A copy of the best candidate; best_config_json IS NULL when there is none.
  best_id INTEGER,
  best_generation INTEGER,
  best_config_json TEXT,
  best_accuracy REAL,
  best_latency_ms REAL,
  best_energy_mj REAL,
  best_size_mb REAL,
  best_bitops REAL,
  best_feasible INTEGER,
  created_unix_s REAL NOT NULL,
  started_unix_s REAL NOT NULL DEFAULT 0,
  finished_unix_s REAL NOT NULL DEFAULT 0,
  elapsed_s REAL NOT NULL DEFAULT 0,
  checkpoint BLOB NOT NULL DEFAULT x''
);
CREATE INDEX jobs_by_state ON jobs (state, seq);

CREATE TABLE candidates (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  generation INTEGER NOT NULL,
  config_json TEXT NOT NULL,
  accuracy REAL,
  latency_ms REAL,
  energy_mj REAL,
  size_mb REAL,
  bitops REAL,
  feasible INTEGER NOT NULL CHECK (feasible IN (0, 1))
);
-- One index per ListCandidates order, all led by (job_id, feasible): a query for one
-- feasibility reads one range in order, a query for both merges two ranges. Each index ends
-- with the implicit rowid (= id), which breaks ties. `x IS NULL` puts unset metrics last in
-- ascending orders; in descending ones NULL sorts last already. Every index costs inserts
-- (each generation's rows land at random places in each), so there is no other.
CREATE INDEX candidates_by_id ON candidates (job_id, feasible);
CREATE INDEX candidates_by_accuracy ON candidates (job_id, feasible, accuracy DESC);
CREATE INDEX candidates_by_latency
  ON candidates (job_id, feasible, latency_ms IS NULL, latency_ms);
CREATE INDEX candidates_by_energy ON candidates (job_id, feasible, energy_mj IS NULL, energy_mj);
CREATE INDEX candidates_by_size ON candidates (job_id, feasible, size_mb IS NULL, size_mb);
CREATE INDEX candidates_by_bitops ON candidates (job_id, feasible, bitops IS NULL, bitops);

CREATE TABLE device_tables (
  device TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  format INTEGER NOT NULL,
  entries INTEGER NOT NULL,
  uploaded_unix_s REAL NOT NULL,
  sha256 TEXT NOT NULL,
  description TEXT NOT NULL,
  UNIQUE (device, version)
);

CREATE TABLE table_files (
  device TEXT NOT NULL,
  version INTEGER NOT NULL,
  name TEXT NOT NULL,
  content BLOB NOT NULL,
  PRIMARY KEY (device, version, name),
  FOREIGN KEY (device, version) REFERENCES device_tables (device, version) ON DELETE CASCADE
);

CREATE TABLE predictors (
  space TEXT NOT NULL,
  version TEXT NOT NULL,
  artifact BLOB NOT NULL,
  metrics_json TEXT NOT NULL DEFAULT '{}',
  created_unix_s REAL NOT NULL,
  is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  UNIQUE (space, version)
);
CREATE UNIQUE INDEX predictors_one_default ON predictors (space) WHERE is_default = 1;
)sql",
    // 2: the Pareto front of each job, marked when it ends.
    R"sql(
ALTER TABLE candidates ADD COLUMN on_pareto_front INTEGER NOT NULL DEFAULT 0
  CHECK (on_pareto_front IN (0, 1));
CREATE INDEX candidates_on_front ON candidates (job_id) WHERE on_pareto_front = 1;
ALTER TABLE jobs ADD COLUMN pareto_front_size INTEGER NOT NULL DEFAULT 0;
-- Metrics priced by an analytic model instead of looked up: a comma-separated list.
ALTER TABLE candidates ADD COLUMN modelled TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN best_modelled TEXT;
)sql",
    // 3: measured accuracies, the predictors' training data.
    R"sql(
CREATE TABLE datasets (
  name TEXT PRIMARY KEY,
  space TEXT NOT NULL,
  description TEXT NOT NULL,
  created_unix_s REAL NOT NULL
);

CREATE TABLE measurements (
  id INTEGER PRIMARY KEY,
  dataset TEXT NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
  config_json TEXT NOT NULL,
  accuracy REAL NOT NULL CHECK (accuracy >= 0 AND accuracy <= 1),
  method TEXT NOT NULL,
  seconds REAL NOT NULL CHECK (seconds >= 0),
  seed INTEGER NOT NULL,
  created_unix_s REAL NOT NULL,
  UNIQUE (dataset, method, config_json)
);
)sql",
    // 4: what a stored predictor is and what it was trained on.
    R"sql(
ALTER TABLE predictors ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE predictors ADD COLUMN dataset TEXT NOT NULL DEFAULT '';
)sql",
    // 5: jobs that train predictors.
    R"sql(
CREATE TABLE training_jobs (
  id TEXT PRIMARY KEY NOT NULL,
  seq INTEGER NOT NULL UNIQUE,
  space TEXT NOT NULL,
  dataset TEXT NOT NULL,
  request BLOB NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  error TEXT NOT NULL DEFAULT '',
  stage TEXT NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  max_epochs INTEGER NOT NULL DEFAULT 0,
  validation_rmse REAL NOT NULL DEFAULT 0,
  predictor_version TEXT NOT NULL DEFAULT '',
  metrics_json TEXT NOT NULL DEFAULT '{}',
  created_unix_s REAL NOT NULL,
  started_unix_s REAL NOT NULL DEFAULT 0,
  finished_unix_s REAL NOT NULL DEFAULT 0
);
CREATE INDEX training_jobs_by_state ON training_jobs (state, seq);
)sql",
    // 6: the split each measurement was measured on ('' for rows stored before splits were).
    R"sql(
ALTER TABLE measurements ADD COLUMN split TEXT NOT NULL DEFAULT '';
)sql",
    // 7: finalist verification: each job's stage, its finalists' measurements beside their
    // predicted accuracies, and the measured best.
    R"sql(
ALTER TABLE jobs ADD COLUMN stage INTEGER NOT NULL DEFAULT 1 CHECK (stage IN (1, 2));
ALTER TABLE jobs ADD COLUMN verification_finalists INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN verification_measured INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN verified_best_id INTEGER;
-- measured_accuracy IS NULL: not measured (then the other three are NULL too).
ALTER TABLE candidates ADD COLUMN measured_accuracy REAL;
ALTER TABLE candidates ADD COLUMN measured_method TEXT;
ALTER TABLE candidates ADD COLUMN measured_split TEXT;
ALTER TABLE candidates ADD COLUMN measured_seconds REAL;
)sql",
    // 8: one row per distinct network per job, with the times the search met it and the
    // generation that met it first; a job's rejected draws as a count. Candidates keep one
    // index, on (job_id, network_hash): it finds a job's rows and a network among them
    // (network_hash is apq_network_hash(config_json), see kNetworkHashFunction). The orders
    // of ListCandidates are sorted when asked instead of kept in five indexes that every
    // insert paid for. Rows of one network of a job merge into its first (lowest id), which
    // keeps its generation, figures and measurement (verification measured first rows),
    // counts them all and is on the front if any of them was; the jobs' bests point at it.
    R"sql(
CREATE TABLE candidates_by_network (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  generation INTEGER NOT NULL,
  times_seen INTEGER NOT NULL CHECK (times_seen >= 1),
  network_hash INTEGER NOT NULL,
  config_json TEXT NOT NULL,
  accuracy REAL,
  latency_ms REAL,
  energy_mj REAL,
  size_mb REAL,
  bitops REAL,
  feasible INTEGER NOT NULL CHECK (feasible IN (0, 1)),
  modelled TEXT NOT NULL DEFAULT '',
  on_pareto_front INTEGER NOT NULL DEFAULT 0 CHECK (on_pareto_front IN (0, 1)),
  -- measured_accuracy IS NULL: not measured (then the other three are NULL too).
  measured_accuracy REAL,
  measured_method TEXT,
  measured_split TEXT,
  measured_seconds REAL
);
CREATE INDEX candidates_by_job_network ON candidates_by_network (job_id, network_hash);

WITH networks AS (
  SELECT MIN(id) AS first_id, COUNT(*) AS seen, MAX(on_pareto_front) AS on_front
  FROM candidates GROUP BY job_id, config_json)
INSERT INTO candidates_by_network (id, job_id, generation, times_seen, network_hash,
  config_json, accuracy, latency_ms, energy_mj, size_mb, bitops, feasible, modelled,
  on_pareto_front, measured_accuracy, measured_method, measured_split, measured_seconds)
SELECT c.id, c.job_id, c.generation, n.seen, apq_network_hash(c.config_json), c.config_json,
  c.accuracy, c.latency_ms, c.energy_mj, c.size_mb, c.bitops, c.feasible, c.modelled,
  n.on_front, c.measured_accuracy, c.measured_method, c.measured_split, c.measured_seconds
FROM networks n JOIN candidates c ON c.id = n.first_id ORDER BY c.id;

-- A best that named a later row of its network names the first; an id of no row is kept.
UPDATE jobs SET best_id = COALESCE((
  SELECT n.id FROM candidates c JOIN candidates_by_network n
    ON n.job_id = c.job_id AND n.network_hash = apq_network_hash(c.config_json)
    AND n.config_json = c.config_json
  WHERE c.id = jobs.best_id), best_id)
WHERE best_id IS NOT NULL;
UPDATE jobs SET verified_best_id = COALESCE((
  SELECT n.id FROM candidates c JOIN candidates_by_network n
    ON n.job_id = c.job_id AND n.network_hash = apq_network_hash(c.config_json)
    AND n.config_json = c.config_json
  WHERE c.id = jobs.verified_best_id), verified_best_id)
WHERE verified_best_id IS NOT NULL;

-- Draws rejected, all generations. Jobs stored before kept only a sample of their rejected
-- draws as rows (at most the population size per generation): they count those.
ALTER TABLE jobs ADD COLUMN rejected_draws INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET
  stored_feasible = (SELECT COUNT(*) FROM candidates_by_network n
                     WHERE n.job_id = jobs.id AND n.feasible = 1),
  stored_infeasible = (SELECT COUNT(*) FROM candidates_by_network n
                       WHERE n.job_id = jobs.id AND n.feasible = 0),
  rejected_draws = (SELECT COALESCE(SUM(n.times_seen), 0) FROM candidates_by_network n
                    WHERE n.job_id = jobs.id AND n.feasible = 0),
  pareto_front_size = (SELECT COUNT(*) FROM candidates_by_network n
                       WHERE n.job_id = jobs.id AND n.on_pareto_front = 1);

-- New ids stay above every id assigned before, merged rows' included.
UPDATE sqlite_sequence
  SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'candidates'), 0))
  WHERE name = 'candidates_by_network';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'candidates_by_network', seq FROM sqlite_sequence
  WHERE name = 'candidates'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'candidates_by_network');

DROP TABLE candidates;
ALTER TABLE candidates_by_network RENAME TO candidates;
CREATE INDEX candidates_on_front ON candidates (job_id) WHERE on_pareto_front = 1;
)sql",
    // 9: sweeps (SubmitSweep): the jobs of one sweep share its id; '' for a lone job.
    R"sql(
ALTER TABLE jobs ADD COLUMN sweep_id TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_sweep ON jobs (sweep_id, seq) WHERE sweep_id != '';
)sql",
    // 10: API tokens (only a hash of each secret) and the owner of each job.
    R"sql(
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
  secret_sha256 TEXT NOT NULL,
  created_unix_s REAL NOT NULL,
  created_by TEXT NOT NULL,
  revoked_unix_s REAL NOT NULL DEFAULT 0
);
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_owner ON jobs (owner, seq);
)sql",
    // 11: deleted jobs stay as tombstones (their ids are never reused), without candidates.
    R"sql(
ALTER TABLE jobs ADD COLUMN deleted_unix_s REAL NOT NULL DEFAULT 0;
)sql",
    // 12: artifacts, engines' blobs with provenance. job_id is '' for a shared one; a job's
    // are deleted with it (no foreign key: a deleted job's row stays as a tombstone). The
    // blob comes last, so listings that leave it out do not read its pages.
    R"sql(
CREATE TABLE artifacts (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  space TEXT NOT NULL DEFAULT '',
  created_unix_s REAL NOT NULL,
  provenance TEXT NOT NULL DEFAULT '',
  content_type TEXT NOT NULL DEFAULT '',
  bytes BLOB NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX artifacts_by_job ON artifacts (job_id, kind, key);
)sql",
    // 13: the engine's figures after the last stored step, "name=value" lines.
    R"sql(
ALTER TABLE jobs ADD COLUMN engine_metrics TEXT NOT NULL DEFAULT '';
)sql",
    // 14: the request's label beside it, for listing jobs by label. NULL for the jobs stored
    // before (the store cannot read requests): the server copies theirs from their requests
    // (JobStore::JobsWithoutLabel, SetJobLabel).
    R"sql(
ALTER TABLE jobs ADD COLUMN label TEXT;
CREATE INDEX jobs_by_label ON jobs (label, seq);
)sql",
    // 15: leases, so that replicas over one file run each job on one of them
    // (JobStore::ClaimJob): the replica holding the job and until when ('' and 0: none), and
    // whether its holder was asked to stop it (JobStore::RequestCancel). Claims find the
    // unfinished jobs by jobs_by_state.
    R"sql(
ALTER TABLE jobs ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_unix_s REAL NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
)sql",
    // 16: measurement runs (MeasurementRunStore): one task per config, claimed by workers
    // under leases. status is store_internal::MeasurementTaskStatus (1 pending, 2 held,
    // 3 done, 4 failed, 5 cancelled); a run keeps its tasks' counts by status, so that reading
    // and listing runs count no tasks. Claims read measurement_tasks_by_status in index order.
    // A run's dataset is never deleted while the run refers to it.
    R"sql(
CREATE TABLE measurement_runs (
  id TEXT PRIMARY KEY NOT NULL,
  seq INTEGER NOT NULL UNIQUE,
  dataset TEXT NOT NULL REFERENCES datasets (name),
  space TEXT NOT NULL,
  method TEXT NOT NULL,
  split TEXT NOT NULL,
  -- A uint64 stored by its bits, as measurements.seed.
  seed INTEGER NOT NULL,
  launcher TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  tasks_total INTEGER NOT NULL,
  tasks_done INTEGER NOT NULL DEFAULT 0,
  tasks_failed INTEGER NOT NULL DEFAULT 0,
  tasks_held INTEGER NOT NULL DEFAULT 0,
  created_unix_s REAL NOT NULL,
  finished_unix_s REAL NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  -- Last, so that reading the columns above does not read its overflow pages (and an
  -- update that keeps the row's size overwrites only the pages that change).
  settings BLOB NOT NULL
);

CREATE TABLE measurement_tasks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES measurement_runs (id) ON DELETE CASCADE,
  task_index INTEGER NOT NULL,
  config_json TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 5),
  lease_holder TEXT NOT NULL DEFAULT '',
  lease_expires_unix_s REAL NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  UNIQUE (run_id, task_index)
);
CREATE INDEX measurement_tasks_by_status ON measurement_tasks (run_id, status, task_index);
)sql",
    // 17: the claims of one task before it settles as failed, a claim whose lease expired
    // (its worker died) counting as one (MeasurementRunRecord::max_attempts). The runs
    // stored before take the record's default.
    R"sql(
ALTER TABLE measurement_runs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
)sql",
    // 18: training job leases, as the jobs' of migration 15
    // (TrainingJobStore::ClaimTrainingJob): the replica holding the job and until when ('' and
    // 0: none), and whether its holder was asked to stop it (RequestTrainingCancel). Claims
    // find the unfinished jobs by training_jobs_by_state.
    R"sql(
ALTER TABLE training_jobs ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE training_jobs ADD COLUMN lease_expires_unix_s REAL NOT NULL DEFAULT 0;
ALTER TABLE training_jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
)sql",
};

constexpr int kKnownSchemaVersion = static_cast<int>(std::size(kMigrations));

// The SQL function that names a network among a job's candidate rows (the network_hash
// column, migration 8): the 64-bit FNV-1a hash of its config_json's bytes, as a signed
// integer. Stable across builds and machines: stored hashes are compared with new ones.
constexpr const char* kNetworkHashFunction = "apq_network_hash";

// apq_network_hash(text): NULL for NULL.
void NetworkHashFunction(sqlite3_context* context, int argc, sqlite3_value** argv) {
  if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(context);
    return;
  }
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const int bytes = sqlite3_value_bytes(argv[0]);
  sqlite3_result_int64(context, NetworkHash(absl::string_view(text == nullptr ? "" : text, bytes)));
}

absl::Status SqliteStatus(sqlite3* db, absl::string_view operation) {
  return absl::InternalError(absl::StrCat(operation, ": ", sqlite3_errmsg(db), " (SQLite error ",
                                          sqlite3_extended_errcode(db), ")"));
}

}  // namespace

SqliteDatabase::Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_error_(std::move(other.bind_error_)) {}

SqliteDatabase::Statement::~Statement() {
  if (stmt_ != nullptr) Reset();
}

void SqliteDatabase::Statement::BindInt64(int index, int64_t value) {
  Check(sqlite3_bind_int64(stmt_, index, value));
}

void SqliteDatabase::Statement::BindText(int index, absl::string_view value) {
  // A null pointer would bind NULL.
  Check(sqlite3_bind_text64(stmt_, index, value.empty() ? "" : value.data(), value.size(),
                            SQLITE_STATIC, SQLITE_UTF8));
}

void SqliteDatabase::Statement::BindBlob(int index, absl::string_view value) {
  static constexpr char kEmpty = 0;
  Check(sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                            SQLITE_STATIC));
}

void SqliteDatabase::Statement::BindNull(int index) { Check(sqlite3_bind_null(stmt_, index)); }

void SqliteDatabase::Statement::BindDouble(int index, double value, absl::string_view field) {
  if (std::isnan(value)) {
    // SQLite would store a NaN as NULL.
    if (bind_error_.ok()) bind_error_ = absl::InvalidArgumentError(absl::StrCat(field, " is NaN"));
    return;
  }
  Check(sqlite3_bind_double(stmt_, index, value));
}

void SqliteDatabase::Statement::BindOptionalDouble(int index, const std::optional<double>& value,
                                                   absl::string_view field) {
  if (value.has_value()) {
    BindDouble(index, *value, field);
  } else {
    BindNull(index);
  }
}

void SqliteDatabase::Statement::BindMetrics(int first, const CandidateRecord& candidate,
                                            absl::string_view what) {
  BindOptionalDouble(first, candidate.accuracy, absl::StrCat(what, " accuracy"));
  BindOptionalDouble(first + 1, candidate.latency_ms, absl::StrCat(what, " latency_ms"));
  BindOptionalDouble(first + 2, candidate.energy_mj, absl::StrCat(what, " energy_mj"));
  BindOptionalDouble(first + 3, candidate.size_mb, absl::StrCat(what, " size_mb"));
  BindOptionalDouble(first + 4, candidate.bitops, absl::StrCat(what, " bitops"));
}

absl::StatusOr<bool> SqliteDatabase::Statement::Step(absl::string_view operation) {
  if (!bind_error_.ok()) {
    return absl::Status(bind_error_.code(), absl::StrCat(operation, ": ", bind_error_.message()));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(db_, operation);
}

absl::Status SqliteDatabase::Statement::Run(absl::string_view operation) {
  ASSIGN_OR_RETURN(bool row, Step(operation));
  if (row) return absl::InternalError(absl::StrCat(operation, ": unexpected result row"));
  return absl::OkStatus();
}

void SqliteDatabase::Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteDatabase::Statement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

int SqliteDatabase::Statement::ColumnInt(int column) const {
  return sqlite3_column_int(stmt_, column);
}

double SqliteDatabase::Statement::ColumnDouble(int column) const {
  return sqlite3_column_double(stmt_, column);
}

std::optional<double> SqliteDatabase::Statement::ColumnOptionalDouble(int column) const {
  if (ColumnIsNull(column)) return std::nullopt;
  return sqlite3_column_double(stmt_, column);
}

bool SqliteDatabase::Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string SqliteDatabase::Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
}

std::string SqliteDatabase::Statement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return std::string();  // NULL or zero bytes.
  return std::string(static_cast<const char*>(blob), sqlite3_column_bytes(stmt_, column));
}

void SqliteDatabase::Statement::Check(int rc) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = SqliteStatus(db_, "binding a parameter");
  }
}

SqliteDatabase::Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

SqliteDatabase::Transaction::~Transaction() {
  // SQLite may already have rolled back after some errors; then there is nothing to do.
  if (db_ != nullptr && !sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

absl::Status SqliteDatabase::Transaction::Commit(absl::string_view operation) {
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, absl::StrCat(operation, ": committing"));
  }
  db_ = nullptr;
  return absl::OkStatus();
}

int SqliteDatabase::SchemaVersion() { return kKnownSchemaVersion; }

absl::StatusOr<std::unique_ptr<SqliteDatabase>> SqliteDatabase::Open(
    const std::string& path, int busy_timeout_ms, std::optional<int> schema_version) {
  if (path.empty()) return absl::InvalidArgumentError("SQLite store path is empty");
  if (busy_timeout_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("busy_timeout_ms must be >= 0, got ", busy_timeout_ms));
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("opening SQLite database \"", path,
                     "\": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return status;
  }
  // From here the database owns `db` and closes it on every path.
  std::unique_ptr<SqliteDatabase> database(new SqliteDatabase(db));
  absl::MutexLock lock(&database->mutex_);
  absl::Status initialized =
      database->Initialize(busy_timeout_ms, schema_version.value_or(kKnownSchemaVersion));
  if (!initialized.ok()) {
    return absl::Status(initialized.code(),
                        absl::StrCat(initialized.message(), " (database \"", path, "\")"));
  }
  return database;
}

absl::Status SqliteDatabase::Initialize(int busy_timeout_ms, int schema_version) {
  sqlite3_extended_result_codes(db_, 1);
  if (sqlite3_busy_timeout(db_, busy_timeout_ms) != SQLITE_OK) {
    return SqliteStatus(db_, "setting the busy timeout");
  }
  // Also the first read of the file: fails here if it is not a database.
  std::string mode;
  auto read_mode = [](void* out, int columns, char** values, char**) {
    if (columns > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
    return 0;
  };
  if (sqlite3_exec(db_, "PRAGMA journal_mode=WAL", read_mode, &mode, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, "enabling WAL mode");
  }
  if (mode != "wal" && mode != "memory") {
    return absl::InternalError(
        absl::StrCat("enabling WAL mode: the journal mode stayed \"", mode, "\""));
  }
  RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL", "configuring the connection"));
  RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON", "configuring the connection"));
  // 32 MiB of page cache instead of SQLite's 2 MiB: a running search looks up each network it
  // met in its job's rows, and with the default the pages of a few jobs no longer fit.
  RETURN_IF_ERROR(Exec("PRAGMA cache_size=-32768", "configuring the connection"));
  // Before the migrations: migration 8 uses it.
  if (sqlite3_create_function_v2(db_, kNetworkHashFunction, 1,
                                 SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                 &NetworkHashFunction, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, "registering the network hash function");
  }
  return Migrate(schema_version);
}

SqliteDatabase::~SqliteDatabase() {
  absl::MutexLock lock(&mutex_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  // Every statement is finalized, so this closes the file (and checkpoints the WAL).
  sqlite3_close(db_);
}

absl::Status SqliteDatabase::Exec(absl::string_view sql, absl::string_view operation) {
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, operation);
  }
  return absl::OkStatus();
}

absl::StatusOr<SqliteDatabase::Statement> SqliteDatabase::Prepare(absl::string_view sql) {
  auto found = statements_.find(sql);
  if (found != statements_.end()) return Statement(db_, found->second);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, absl::StrCat("preparing \"", sql, "\""));
  }
  statements_.emplace(static_cast<std::string>(sql), stmt);
  return Statement(db_, stmt);
}

absl::StatusOr<SqliteDatabase::Transaction> SqliteDatabase::Begin(bool write,
                                                                  absl::string_view operation) {
  if (sqlite3_exec(db_, write ? "BEGIN IMMEDIATE" : "BEGIN", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    return SqliteStatus(db_, absl::StrCat(operation, ": beginning a transaction"));
  }
  return Transaction(db_);
}

int64_t SqliteDatabase::LastInsertRowid() { return sqlite3_last_insert_rowid(db_); }

int SqliteDatabase::Changes() { return sqlite3_changes(db_); }

absl::StatusOr<int> SqliteDatabase::ReadSchemaVersion() {
  ASSIGN_OR_RETURN(Statement version, Prepare("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool row, version.Step("reading the schema version"));
  return row ? version.ColumnInt(0) : 0;
}

absl::Status SqliteDatabase::Migrate(int schema_version) {
  ASSIGN_OR_RETURN(int version, ReadSchemaVersion());
  for (int next = version + 1; next <= std::min(schema_version, kKnownSchemaVersion); ++next) {
    const std::string operation = absl::StrCat("applying schema migration ", next);
    ASSIGN_OR_RETURN(Transaction transaction, Begin(/*write=*/true, operation));
    // Another process may have migrated the file since the first read.
    ASSIGN_OR_RETURN(version, ReadSchemaVersion());
    if (version < next) {
      RETURN_IF_ERROR(Exec(kMigrations[next - 1], operation));
      RETURN_IF_ERROR(Exec(absl::StrCat("PRAGMA user_version = ", next), operation));
    }
    RETURN_IF_ERROR(transaction.Commit(operation));
  }
  ASSIGN_OR_RETURN(version, ReadSchemaVersion());
  if (version > kKnownSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("database schema version ", version,
                                                      " is newer than this build supports (",
                                                      kKnownSchemaVersion, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteDatabase::NextSequence(absl::string_view table,
                                                     absl::string_view operation) {
  ASSIGN_OR_RETURN(Statement select,
                   Prepare(absl::StrCat("SELECT COALESCE(MAX(seq), 0) + 1 FROM ", table)));
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return absl::InternalError(absl::StrCat(operation, ": no sequence number"));
  return select.ColumnInt64(0);
}

}  // namespace apq::server
