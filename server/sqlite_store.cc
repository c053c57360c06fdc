#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
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
};

constexpr int kKnownSchemaVersion = static_cast<int>(std::size(kMigrations));

// Columns of a job row in the order ReadJob expects; the checkpoint comes last when loaded.
constexpr const char* kJobColumns =
    "id, space, device, table_version, predictor_version, request, state, error, "
    "generations_done, candidates_evaluated, best_id, best_generation, best_config_json, "
    "best_accuracy, best_latency_ms, best_energy_mj, best_size_mb, best_bitops, best_feasible, "
    "best_modelled, created_unix_s, started_unix_s, finished_unix_s, elapsed_s, "
    "pareto_front_size";

// Columns of a candidate row in the order ReadCandidate expects.
constexpr const char* kCandidateColumns =
    "id, generation, config_json, accuracy, latency_ms, energy_mj, size_mb, bitops, feasible, "
    "modelled";

constexpr const char* kTableColumns =
    "device, version, format, entries, uploaded_unix_s, sha256, description";

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, column));
}

std::string ColumnBlob(sqlite3_stmt* stmt, int column) {
  const void* blob = sqlite3_column_blob(stmt, column);
  if (blob == nullptr) return std::string();  // NULL or zero bytes.
  return std::string(static_cast<const char*>(blob), sqlite3_column_bytes(stmt, column));
}

std::optional<double> ColumnOptionalDouble(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt, column);
}

// Reads kCandidateColumns starting at `first`.
CandidateRecord ReadCandidate(sqlite3_stmt* stmt, int first) {
  CandidateRecord candidate;
  candidate.id = sqlite3_column_int64(stmt, first + 0);
  candidate.generation = sqlite3_column_int(stmt, first + 1);
  candidate.config_json = ColumnText(stmt, first + 2);
  candidate.accuracy = ColumnOptionalDouble(stmt, first + 3);
  candidate.latency_ms = ColumnOptionalDouble(stmt, first + 4);
  candidate.energy_mj = ColumnOptionalDouble(stmt, first + 5);
  candidate.size_mb = ColumnOptionalDouble(stmt, first + 6);
  candidate.bitops = ColumnOptionalDouble(stmt, first + 7);
  candidate.feasible = sqlite3_column_int(stmt, first + 8) != 0;
  candidate.modelled = ColumnText(stmt, first + 9);
  return candidate;
}

// Reads kJobColumns, then the checkpoint if `with_checkpoint`.
JobRecord ReadJob(sqlite3_stmt* stmt, bool with_checkpoint) {
  JobRecord job;
  job.id = ColumnText(stmt, 0);
  job.space = ColumnText(stmt, 1);
  job.device = ColumnText(stmt, 2);
  job.table_version = sqlite3_column_int64(stmt, 3);
  job.predictor_version = ColumnText(stmt, 4);
  job.request = ColumnBlob(stmt, 5);
  job.state = static_cast<JobState>(sqlite3_column_int(stmt, 6));
  job.error = ColumnText(stmt, 7);
  job.generations_done = sqlite3_column_int(stmt, 8);
  job.candidates_evaluated = sqlite3_column_int64(stmt, 9);
  // The best's columns are in kCandidateColumns order from column 10.
  if (sqlite3_column_type(stmt, 12) != SQLITE_NULL) job.best = ReadCandidate(stmt, 10);
  job.created_unix_s = sqlite3_column_double(stmt, 20);
  job.started_unix_s = sqlite3_column_double(stmt, 21);
  job.finished_unix_s = sqlite3_column_double(stmt, 22);
  job.elapsed_s = sqlite3_column_double(stmt, 23);
  job.pareto_front_size = sqlite3_column_int64(stmt, 24);
  if (with_checkpoint) job.checkpoint = ColumnBlob(stmt, 25);
  return job;
}

// Reads kTableColumns.
TableVersionRecord ReadTableVersion(sqlite3_stmt* stmt) {
  TableVersionRecord table;
  table.device = ColumnText(stmt, 0);
  table.version = sqlite3_column_int64(stmt, 1);
  table.format = sqlite3_column_int(stmt, 2);
  table.entries = sqlite3_column_int64(stmt, 3);
  table.uploaded_unix_s = sqlite3_column_double(stmt, 4);
  table.sha256 = ColumnText(stmt, 5);
  table.description = ColumnText(stmt, 6);
  return table;
}

absl::Status SqliteStatus(sqlite3* db, absl::string_view operation) {
  return absl::InternalError(absl::StrCat(operation, ": ", sqlite3_errmsg(db), " (SQLite error ",
                                          sqlite3_extended_errcode(db), ")"));
}

absl::Status CheckPage(int64_t offset, int limit) {
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", offset));
  }
  if (limit < 1 || limit > SqliteStore::kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be in [1, ", SqliteStore::kMaxPageSize, "], got ", limit));
  }
  return absl::OkStatus();
}

bool IsValidState(JobState state) {
  const int value = static_cast<int>(state);
  return value >= static_cast<int>(JobState::kQueued) &&
         value <= static_cast<int>(JobState::kCancelled);
}

// How ListCandidates sorts. Each order matches an index, so pages are read in order rather
// than sorted.
struct CandidateSort {
  // The order's sort keys besides id, as result columns (empty for id order): a compound
  // SELECT may order only by its result columns.
  const char* key_columns;
  const char* compound_order_by;  // ORDER BY over id and key_columns.
  const char* order_by;           // The same over the table's columns.
};

// The metric column of an ascending cost order; nullptr for the other orders.
const char* CostColumn(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kLatencyAsc:
      return "latency_ms";
    case CandidateOrder::kEnergyAsc:
      return "energy_mj";
    case CandidateOrder::kSizeAsc:
      return "size_mb";
    case CandidateOrder::kBitopsAsc:
      return "bitops";
    default:
      return nullptr;
  }
}

std::optional<CandidateSort> SortFor(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kId:
      return CandidateSort{"", "id", "id"};
    case CandidateOrder::kAccuracyDesc:
      return CandidateSort{", accuracy", "accuracy DESC, id", "accuracy DESC, id"};
    case CandidateOrder::kLatencyAsc:
      return CandidateSort{", latency_ms IS NULL AS unset, latency_ms", "unset, latency_ms, id",
                           "latency_ms IS NULL, latency_ms, id"};
    case CandidateOrder::kEnergyAsc:
      return CandidateSort{", energy_mj IS NULL AS unset, energy_mj", "unset, energy_mj, id",
                           "energy_mj IS NULL, energy_mj, id"};
    case CandidateOrder::kSizeAsc:
      return CandidateSort{", size_mb IS NULL AS unset, size_mb", "unset, size_mb, id",
                           "size_mb IS NULL, size_mb, id"};
    case CandidateOrder::kBitopsAsc:
      return CandidateSort{", bitops IS NULL AS unset, bitops", "unset, bitops, id",
                           "bitops IS NULL, bitops, id"};
  }
  return std::nullopt;
}

// The page query: ?1 job id, ?2 feasibility (when filtered), ?3 limit, ?4 offset. The page's
// ids come from the index alone, so rows skipped by the offset are never read; only the
// page's rows are, then sorted again (at most `limit` of them).
std::string CandidatePageSql(const CandidateSort& sort, bool filtered) {
  std::string ids;
  if (filtered) {
    ids = absl::StrCat("SELECT id FROM candidates WHERE job_id = ?1 AND feasible = ?2 ORDER BY ",
                       sort.order_by, " LIMIT ?3 OFFSET ?4");
  } else {
    // Both feasibilities: SQLite merges the two ordered index ranges.
    const std::string select = absl::StrCat("SELECT id", sort.key_columns, " FROM candidates ");
    ids = absl::StrCat("SELECT id FROM (", select, "WHERE job_id = ?1 AND feasible = 0 UNION ALL ",
                       select, "WHERE job_id = ?1 AND feasible = 1 ORDER BY ",
                       sort.compound_order_by, " LIMIT ?3 OFFSET ?4)");
  }
  return absl::StrCat("SELECT ", kCandidateColumns,
                      ", on_pareto_front FROM candidates WHERE id IN (", ids, ") ORDER BY ",
                      sort.order_by);
}

}  // namespace

// A cached prepared statement in use: binds parameters, steps, and on destruction resets
// and unbinds it so that it holds no read snapshot and no stale values. A failed bind is
// remembered and returned by the next Step, so callers bind without checking each one.
class SqliteStore::Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        bind_error_(std::move(other.bind_error_)) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  sqlite3_stmt* get() const { return stmt_; }

  // Parameters are numbered from 1.
  void BindInt64(int index, int64_t value) { Check(sqlite3_bind_int64(stmt_, index, value)); }
  void BindText(int index, absl::string_view value) {
    // A null pointer would bind NULL.
    Check(sqlite3_bind_text64(stmt_, index, value.empty() ? "" : value.data(), value.size(),
                              SQLITE_STATIC, SQLITE_UTF8));
  }
  // Binds a zero-length blob, not NULL, for an empty value.
  void BindBlob(int index, absl::string_view value) {
    static constexpr char kEmpty = 0;
    Check(sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                              SQLITE_STATIC));
  }
  void BindNull(int index) { Check(sqlite3_bind_null(stmt_, index)); }
  // `field` names the value in the INVALID_ARGUMENT error for a NaN.
  void BindDouble(int index, double value, absl::string_view field) {
    if (std::isnan(value)) {
      if (bind_error_.ok()) {
        bind_error_ = absl::InvalidArgumentError(absl::StrCat(field, " is NaN"));
      }
      return;
    }
    Check(sqlite3_bind_double(stmt_, index, value));
  }
  void BindOptionalDouble(int index, const std::optional<double>& value, absl::string_view field) {
    if (value.has_value()) {
      BindDouble(index, *value, field);
    } else {
      BindNull(index);
    }
  }
  // Binds accuracy, latency_ms, energy_mj, size_mb and bitops of `candidate` to parameters
  // first .. first + 4; `what` names the record in errors.
  void BindMetrics(int first, const CandidateRecord& candidate, absl::string_view what) {
    BindOptionalDouble(first, candidate.accuracy, absl::StrCat(what, " accuracy"));
    BindOptionalDouble(first + 1, candidate.latency_ms, absl::StrCat(what, " latency_ms"));
    BindOptionalDouble(first + 2, candidate.energy_mj, absl::StrCat(what, " energy_mj"));
    BindOptionalDouble(first + 3, candidate.size_mb, absl::StrCat(what, " size_mb"));
    BindOptionalDouble(first + 4, candidate.bitops, absl::StrCat(what, " bitops"));
  }

  // Runs the statement to its next row: true if there is one, false when done.
  absl::StatusOr<bool> Step(absl::string_view operation) {
    if (!bind_error_.ok()) {
      return absl::Status(bind_error_.code(), absl::StrCat(operation, ": ", bind_error_.message()));
    }
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(db_, operation);
  }

  // Steps a statement that returns no rows.
  absl::Status Run(absl::string_view operation) {
    ASSIGN_OR_RETURN(bool row, Step(operation));
    if (row) return absl::InternalError(absl::StrCat(operation, ": unexpected result row"));
    return absl::OkStatus();
  }

  // Resets for another execution with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_error_.ok()) {
      bind_error_ = SqliteStatus(db_, "binding a parameter");
    }
  }

  sqlite3* const db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_error_;
};

// One transaction: BEGIN IMMEDIATE for writes (takes the write lock at once, so a writer
// never fails to upgrade a read lock), deferred BEGIN for consistent multi-statement reads.
// Rolls back on destruction unless committed.
class SqliteStore::Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(sqlite3* db, bool write, absl::string_view operation) {
    if (sqlite3_exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN", nullptr, nullptr, nullptr) !=
        SQLITE_OK) {
      return SqliteStatus(db, absl::StrCat(operation, ": beginning a transaction"));
    }
    return Transaction(db);
  }

  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    // SQLite may already have rolled back after some errors; then there is nothing to do.
    if (db_ != nullptr && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  absl::Status Commit(absl::string_view operation) {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqliteStatus(db_, absl::StrCat(operation, ": committing"));
    }
    db_ = nullptr;
    return absl::OkStatus();
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}

  sqlite3* db_;
};

int SqliteStore::SchemaVersion() { return kKnownSchemaVersion; }

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const Options& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("SQLite store path is empty");
  if (options.busy_timeout_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("busy_timeout_ms must be >= 0, got ", options.busy_timeout_ms));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("opening SQLite database \"", options.path,
                     "\": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return status;
  }
  // From here the store owns `db` and closes it on every path.
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  absl::MutexLock lock(&store->mutex_);
  absl::Status initialized = store->Initialize(options.busy_timeout_ms);
  if (!initialized.ok()) {
    return absl::Status(initialized.code(),
                        absl::StrCat(initialized.message(), " (database \"", options.path, "\")"));
  }
  return store;
}

absl::Status SqliteStore::Initialize(int busy_timeout_ms) {
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
  return Migrate();
}

SqliteStore::SqliteStore(sqlite3* db) : db_(db) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mutex_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  // Every statement is finalized, so this closes the file (and checkpoints the WAL).
  sqlite3_close(db_);
}

absl::Status SqliteStore::Exec(absl::string_view sql, absl::string_view operation) {
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteStatus(db_, operation);
  }
  return absl::OkStatus();
}

absl::StatusOr<SqliteStore::Statement> SqliteStore::Prepare(absl::string_view sql) {
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

absl::StatusOr<int> SqliteStore::ReadSchemaVersion() {
  ASSIGN_OR_RETURN(Statement version, Prepare("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool row, version.Step("reading the schema version"));
  return row ? sqlite3_column_int(version.get(), 0) : 0;
}

absl::Status SqliteStore::Migrate() {
  ASSIGN_OR_RETURN(int version, ReadSchemaVersion());
  for (int next = version + 1; next <= kKnownSchemaVersion; ++next) {
    const std::string operation = absl::StrCat("applying schema migration ", next);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
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

absl::StatusOr<JobState> SqliteStore::LoadJobState(const std::string& job_id) {
  ASSIGN_OR_RETURN(Statement select, Prepare("SELECT state FROM jobs WHERE id = ?1"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading job ", job_id)));
  if (!row) return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
  return static_cast<JobState>(sqlite3_column_int(select.get(), 0));
}

absl::StatusOr<std::string> SqliteStore::CreateJob(const JobRecord& job) {
  constexpr absl::string_view kOperation = "creating a job";
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, kOperation));
  int64_t seq = 0;
  {
    ASSIGN_OR_RETURN(Statement select, Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs"));
    ASSIGN_OR_RETURN(bool row, select.Step(kOperation));
    if (!row) return absl::InternalError(absl::StrCat(kOperation, ": no sequence number"));
    seq = sqlite3_column_int64(select.get(), 0);
  }
  const std::string id = absl::StrCat("job-", seq);
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare("INSERT INTO jobs (id, seq, space, device, table_version, "
                             "predictor_version, request, state, created_unix_s) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    insert.BindText(1, id);
    insert.BindInt64(2, seq);
    insert.BindText(3, job.space);
    insert.BindText(4, job.device);
    insert.BindInt64(5, job.table_version);
    insert.BindText(6, job.predictor_version);
    insert.BindBlob(7, job.request);
    insert.BindInt64(8, static_cast<int64_t>(JobState::kQueued));
    insert.BindDouble(9, job.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(kOperation));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return id;
}

absl::Status SqliteStore::MarkRunning(const std::string& job_id, double started_unix_s) {
  const std::string operation = absl::StrCat("marking job ", job_id, " running");
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadJobState(job_id));
  if (IsTerminal(state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job \"", job_id, "\" has ended (state ", static_cast<int>(state), ")"));
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     Prepare("UPDATE jobs SET state = ?2, started_unix_s = ?3 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    update.BindDouble(3, started_unix_s, "started_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteStore::AppendGeneration(const std::string& job_id,
                                           const GenerationBatch& batch) {
  const std::string operation =
      absl::StrCat("appending generation ", batch.generation, " to job ", job_id);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));

  std::optional<int64_t> previous_best_id;
  std::string previous_best_config;
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT state, next_generation, best_id, best_config_json "
                             "FROM jobs WHERE id = ?1"));
    select.BindText(1, job_id);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
    const auto state = static_cast<JobState>(sqlite3_column_int(select.get(), 0));
    const int64_t next_generation = sqlite3_column_int64(select.get(), 1);
    if (IsTerminal(state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job \"", job_id, "\" has ended (state ", static_cast<int>(state), ")"));
    }
    if (batch.generation != next_generation) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job \"", job_id, "\" expects generation ", next_generation, ", got ", batch.generation));
    }
    if (sqlite3_column_type(select.get(), 3) != SQLITE_NULL) {
      previous_best_id = sqlite3_column_int64(select.get(), 2);
      previous_best_config = ColumnText(select.get(), 3);
    }
  }

  const bool resolve_best = batch.best.has_value() && batch.best->id == 0;
  int64_t best_id = batch.best.has_value() ? batch.best->id : 0;
  if (resolve_best && previous_best_id.has_value() && *previous_best_id != 0 &&
      previous_best_config == batch.best->config_json) {
    best_id = *previous_best_id;
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare("INSERT INTO candidates (job_id, generation, config_json, accuracy, "
                             "latency_ms, energy_mj, size_mb, bitops, feasible, modelled) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    for (const CandidateRecord& candidate : batch.candidates) {
      insert.BindText(1, job_id);
      insert.BindInt64(2, batch.generation);
      insert.BindText(3, candidate.config_json);
      insert.BindMetrics(4, candidate, "candidate");
      insert.BindInt64(9, candidate.feasible ? 1 : 0);
      insert.BindText(10, candidate.modelled);
      RETURN_IF_ERROR(insert.Run(operation));
      if (resolve_best && best_id == 0 && candidate.config_json == batch.best->config_json) {
        best_id = sqlite3_last_insert_rowid(db_);
      }
      insert.Reset();
    }
  }
  if (resolve_best && best_id == 0) {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT id FROM candidates WHERE job_id = ?1 AND config_json = ?2 "
                             "ORDER BY id LIMIT 1"));
    select.BindText(1, job_id);
    select.BindText(2, batch.best->config_json);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (row) best_id = sqlite3_column_int64(select.get(), 0);
  }
  {
    ASSIGN_OR_RETURN(
        Statement update,
        Prepare("UPDATE jobs SET generations_done = ?2, next_generation = ?2 + 1, "
                "candidates_evaluated = ?3, stored_feasible = stored_feasible + ?15, "
                "stored_infeasible = stored_infeasible + ?16, best_id = ?4, best_generation = ?5, "
                "best_config_json = ?6, best_accuracy = ?7, best_latency_ms = ?8, "
                "best_energy_mj = ?9, best_size_mb = ?10, best_bitops = ?11, best_feasible = ?12, "
                "checkpoint = ?13, elapsed_s = ?14, best_modelled = ?17 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, batch.generation);
    update.BindInt64(3, batch.candidates_evaluated);
    if (batch.best.has_value()) {
      const CandidateRecord& best = *batch.best;
      update.BindInt64(4, best_id);
      update.BindInt64(5, best.generation);
      update.BindText(6, best.config_json);
      update.BindMetrics(7, best, "best");
      update.BindInt64(12, best.feasible ? 1 : 0);
      update.BindText(17, best.modelled);
    }  // Else parameters 4 to 12 and 17 stay NULL: no best.
    update.BindBlob(13, batch.checkpoint);
    update.BindDouble(14, batch.elapsed_s, "elapsed_s");
    const int64_t feasible = std::count_if(batch.candidates.begin(), batch.candidates.end(),
                                           [](const CandidateRecord& c) { return c.feasible; });
    update.BindInt64(15, feasible);
    update.BindInt64(16, static_cast<int64_t>(batch.candidates.size()) - feasible);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteStore::FinishJob(const std::string& job_id, JobState state,
                                    const std::string& error, double finished_unix_s,
                                    double elapsed_s, std::optional<CandidateOrder> pareto_cost) {
  const char* cost_column = nullptr;
  if (pareto_cost.has_value()) {
    cost_column = CostColumn(*pareto_cost);
    if (cost_column == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("FinishJob: the Pareto front needs a cost "
                       "order, got ",
                       static_cast<int>(*pareto_cost)));
    }
  }
  if (!IsTerminal(state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("FinishJob needs a terminal state, got ", static_cast<int>(state)));
  }
  const std::string operation = absl::StrCat("finishing job ", job_id);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState current, LoadJobState(job_id));
  if (IsTerminal(current)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job \"", job_id, "\" has already ended (state ", static_cast<int>(current), ")"));
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     Prepare("UPDATE jobs SET state = ?2, error = ?3, finished_unix_s = ?4, "
                             "elapsed_s = ?5 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(state));
    update.BindText(3, error);
    update.BindDouble(4, finished_unix_s, "finished_unix_s");
    update.BindDouble(5, elapsed_s, "elapsed_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  if (cost_column != nullptr) RETURN_IF_ERROR(MarkParetoFront(job_id, cost_column, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteStore::MarkParetoFront(const std::string& job_id, const char* cost_column,
                                          const std::string& operation) {
  // Ascending cost, best accuracy first among equal costs, then the first stored: a row
  // joins the front when its accuracy beats every row before it.
  std::vector<int64_t> front;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        Prepare(absl::StrCat("SELECT id, accuracy FROM candidates WHERE job_id = ?1 AND "
                             "feasible = 1 AND accuracy IS NOT NULL AND ",
                             cost_column, " IS NOT NULL ORDER BY ", cost_column,
                             ", accuracy DESC, id")));
    select.BindText(1, job_id);
    double best_accuracy = -std::numeric_limits<double>::infinity();
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      const double accuracy = sqlite3_column_double(select.get(), 1);
      if (accuracy > best_accuracy) {
        best_accuracy = accuracy;
        front.push_back(sqlite3_column_int64(select.get(), 0));
      }
    }
  }
  {
    ASSIGN_OR_RETURN(Statement clear, Prepare("UPDATE candidates SET on_pareto_front = 0 "
                                              "WHERE job_id = ?1 AND on_pareto_front = 1"));
    clear.BindText(1, job_id);
    RETURN_IF_ERROR(clear.Run(operation));
  }
  for (const int64_t id : front) {
    ASSIGN_OR_RETURN(Statement mark,
                     Prepare("UPDATE candidates SET on_pareto_front = 1 WHERE id = ?1"));
    mark.BindInt64(1, id);
    RETURN_IF_ERROR(mark.Run(operation));
  }
  ASSIGN_OR_RETURN(Statement size, Prepare("UPDATE jobs SET pareto_front_size = ?2 WHERE id = ?1"));
  size.BindText(1, job_id);
  size.BindInt64(2, static_cast<int64_t>(front.size()));
  return size.Run(operation);
}

absl::StatusOr<JobRecord> SqliteStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                          ", checkpoint FROM jobs "
                                                          "WHERE id = ?1")));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading job ", job_id)));
  if (!row) return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
  return ReadJob(select.get(), /*with_checkpoint=*/true);
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListJobs(std::optional<JobState> state,
                                                             int64_t offset, int limit) {
  RETURN_IF_ERROR(CheckPage(offset, limit));
  if (state.has_value() && !IsValidState(*state)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown job state ", static_cast<int>(*state)));
  }
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select,
                   Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs",
                                        state.has_value() ? " WHERE state = ?3" : "",
                                        " ORDER BY seq DESC LIMIT ?1 OFFSET ?2")));
  select.BindInt64(1, limit);
  select.BindInt64(2, offset);
  if (state.has_value()) select.BindInt64(3, static_cast<int64_t>(*state));
  std::vector<JobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing jobs"));
    if (!row) break;
    jobs.push_back(ReadJob(select.get(), /*with_checkpoint=*/false));
  }
  return jobs;
}

absl::StatusOr<CandidatePage> SqliteStore::ListCandidates(const CandidateQuery& query) {
  RETURN_IF_ERROR(CheckPage(query.offset, query.limit));
  const std::optional<CandidateSort> sort = SortFor(query.order);
  if (!sort.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown candidate order ", static_cast<int>(query.order)));
  }
  const std::string operation = absl::StrCat("listing candidates of job ", query.job_id);
  absl::MutexLock lock(&mutex_);
  // The total and the page come from one snapshot.
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/false, operation));
  CandidatePage page;
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT stored_feasible, stored_infeasible, pareto_front_size "
                             "FROM jobs WHERE id = ?1"));
    select.BindText(1, query.job_id);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return absl::NotFoundError(absl::StrCat("job \"", query.job_id, "\" not found"));
    const int64_t feasible = sqlite3_column_int64(select.get(), 0);
    const int64_t infeasible = sqlite3_column_int64(select.get(), 1);
    page.total = !query.feasible.has_value() ? feasible + infeasible
                 : *query.feasible           ? feasible
                                             : infeasible;
    if (query.pareto_front_only) {
      // Every front row is feasible.
      page.total = query.feasible.value_or(true) ? sqlite3_column_int64(select.get(), 2) : 0;
    }
  }
  if (query.offset < page.total) {
    // The front is small (a few hundred rows at most): its partial index and a sort suffice.
    ASSIGN_OR_RETURN(
        Statement select,
        Prepare(query.pareto_front_only
                    ? absl::StrCat("SELECT ", kCandidateColumns,
                                   ", on_pareto_front FROM candidates WHERE job_id = ?1 AND "
                                   "on_pareto_front = 1 ORDER BY ",
                                   sort->order_by, " LIMIT ?3 OFFSET ?4")
                    : CandidatePageSql(*sort, query.feasible.has_value())));
    select.BindText(1, query.job_id);
    if (query.feasible.has_value() && !query.pareto_front_only) {
      select.BindInt64(2, *query.feasible ? 1 : 0);
    }
    select.BindInt64(3, query.limit);
    select.BindInt64(4, query.offset);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      page.candidates.push_back(ReadCandidate(select.get(), 0));
      page.candidates.back().on_pareto_front = sqlite3_column_int(select.get(), 10) != 0;
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return page;
}

absl::StatusOr<int64_t> SqliteStore::AddTableVersion(const TableVersionRecord& table) {
  if (table.device.empty()) return absl::InvalidArgumentError("device name is empty");
  absl::flat_hash_set<absl::string_view> names;
  for (const TableFileRecord& file : table.files) {
    if (!names.insert(file.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("table file \"", file.name, "\" is given twice"));
    }
  }
  const std::string operation = absl::StrCat("adding a table version for device ", table.device);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  int64_t version = 0;
  {
    ASSIGN_OR_RETURN(Statement select, Prepare("SELECT COALESCE(MAX(version), 0) + 1 "
                                               "FROM device_tables WHERE device = ?1"));
    select.BindText(1, table.device);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return absl::InternalError(absl::StrCat(operation, ": no version number"));
    version = sqlite3_column_int64(select.get(), 0);
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare(absl::StrCat("INSERT INTO device_tables (", kTableColumns,
                                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")));
    insert.BindText(1, table.device);
    insert.BindInt64(2, version);
    insert.BindInt64(3, table.format);
    insert.BindInt64(4, table.entries);
    insert.BindDouble(5, table.uploaded_unix_s, "uploaded_unix_s");
    insert.BindText(6, table.sha256);
    insert.BindText(7, table.description);
    RETURN_IF_ERROR(insert.Run(operation));
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare("INSERT INTO table_files (device, version, name, content) "
                             "VALUES (?1, ?2, ?3, ?4)"));
    for (const TableFileRecord& file : table.files) {
      insert.BindText(1, table.device);
      insert.BindInt64(2, version);
      insert.BindText(3, file.name);
      insert.BindBlob(4, file.content);
      RETURN_IF_ERROR(insert.Run(operation));
      insert.Reset();
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return version;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ListDevices() {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select,
                   Prepare("SELECT DISTINCT device FROM device_tables ORDER BY device"));
  std::vector<std::string> devices;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing devices"));
    if (!row) break;
    devices.push_back(ColumnText(select.get(), 0));
  }
  return devices;
}

absl::Status SqliteStore::CheckDeviceKnown(const std::string& device) {
  ASSIGN_OR_RETURN(Statement select, Prepare("SELECT 1 FROM device_tables WHERE device = ?1"));
  select.BindText(1, device);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("looking up device ", device)));
  if (!row) return absl::NotFoundError(absl::StrCat("device \"", device, "\" has no cost tables"));
  return absl::OkStatus();
}

absl::Status SqliteStore::CheckDatasetKnown(const std::string& dataset,
                                            const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select, Prepare("SELECT 1 FROM datasets WHERE name = ?1"));
  select.BindText(1, dataset);
  ASSIGN_OR_RETURN(bool exists, select.Step(operation));
  if (!exists) return absl::NotFoundError(absl::StrCat("unknown dataset \"", dataset, "\""));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TableVersionRecord>> SqliteStore::ListTableVersions(
    const std::string& device) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat("SELECT ", kTableColumns,
                                                          " FROM device_tables "
                                                          "WHERE device = ?1 ORDER BY version")));
  select.BindText(1, device);
  std::vector<TableVersionRecord> versions;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("listing tables of device ", device)));
    if (!row) break;
    versions.push_back(ReadTableVersion(select.get()));
  }
  if (versions.empty()) {
    return absl::NotFoundError(absl::StrCat("device \"", device, "\" has no cost tables"));
  }
  return versions;
}

absl::StatusOr<TableVersionRecord> SqliteStore::GetTableVersion(const std::string& device,
                                                                int64_t version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table version must be >= 0 (0: latest), got ", version));
  }
  const std::string operation =
      absl::StrCat("reading table version ", version, " of device ", device);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/false, operation));
  TableVersionRecord table;
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare(absl::StrCat(
                         "SELECT ", kTableColumns, " FROM device_tables WHERE device = ?1",
                         version == 0 ? " ORDER BY version DESC LIMIT 1" : " AND version = ?2")));
    select.BindText(1, device);
    if (version != 0) select.BindInt64(2, version);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) {
      const absl::Status known = CheckDeviceKnown(device);
      if (!known.ok() && !absl::IsNotFound(known)) return known;
      const std::string wanted = version == 0 ? "latest" : absl::StrCat(version);
      if (!known.ok()) {
        return absl::NotFoundError(absl::StrCat(
            "device \"", device, "\" has no cost tables (asked for version ", wanted, ")"));
      }
      return absl::NotFoundError(
          absl::StrCat("device \"", device, "\" has no table version ", wanted));
    }
    table = ReadTableVersion(select.get());
  }
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT name, content FROM table_files "
                             "WHERE device = ?1 AND version = ?2 ORDER BY rowid"));
    select.BindText(1, device);
    select.BindInt64(2, table.version);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      table.files.push_back(
          TableFileRecord{ColumnText(select.get(), 0), ColumnBlob(select.get(), 1)});
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return table;
}

namespace {

// Checked before writing rather than left to the table's constraints, so the error names the
// row.
absl::Status ValidateMeasurementRows(const std::vector<MeasurementRow>& rows) {
  absl::flat_hash_set<std::pair<absl::string_view, absl::string_view>> seen;
  for (size_t i = 0; i < rows.size(); ++i) {
    const MeasurementRow& row = rows[i];
    const std::string what = absl::StrCat("measurement ", i);
    if (!(row.accuracy >= 0.0 && row.accuracy <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": accuracy ", row.accuracy, " is not in [0, 1]"));
    }
    if (!(row.seconds >= 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": seconds ", row.seconds, " is not >= 0"));
    }
    if (row.config_json.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": config_json is empty"));
    }
    if (row.method.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": method is empty"));
    }
    if (!seen.emplace(row.method, row.config_json).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": repeats an earlier row's config for method ", row.method));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SqliteStore::InsertMeasurements(const std::string& dataset,
                                             const std::vector<MeasurementRow>& rows,
                                             const std::string& operation) {
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT 1 FROM measurements "
                             "WHERE dataset = ?1 AND method = ?2 AND config_json = ?3"));
    for (size_t i = 0; i < rows.size(); ++i) {
      select.BindText(1, dataset);
      select.BindText(2, rows[i].method);
      select.BindText(3, rows[i].config_json);
      ASSIGN_OR_RETURN(bool stored, select.Step(operation));
      if (stored) {
        return absl::InvalidArgumentError(absl::StrCat("measurement ", i, ": dataset ", dataset,
                                                       " already holds its config for method ",
                                                       rows[i].method));
      }
      select.Reset();
    }
  }
  ASSIGN_OR_RETURN(Statement insert,
                   Prepare("INSERT INTO measurements (dataset, config_json, accuracy, method, "
                           "seconds, seed, created_unix_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  for (const MeasurementRow& row : rows) {
    insert.BindText(1, dataset);
    insert.BindText(2, row.config_json);
    insert.BindDouble(3, row.accuracy, "accuracy");
    insert.BindText(4, row.method);
    insert.BindDouble(5, row.seconds, "seconds");
    // The seed's bits, read back by the same cast.
    insert.BindInt64(6, static_cast<int64_t>(row.seed));
    insert.BindDouble(7, row.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(operation));
    insert.Reset();
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CreateDataset(const DatasetRecord& dataset,
                                        const std::vector<MeasurementRow>& rows) {
  if (dataset.name.empty()) return absl::InvalidArgumentError("dataset name is empty");
  if (dataset.space.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset \"", dataset.name, "\": space is empty"));
  }
  RETURN_IF_ERROR(ValidateMeasurementRows(rows));
  const std::string operation = absl::StrCat("creating dataset ", dataset.name);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select, Prepare("SELECT 1 FROM datasets WHERE name = ?1"));
    select.BindText(1, dataset.name);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (exists) {
      return absl::AlreadyExistsError(
          absl::StrCat("dataset \"", dataset.name, "\" already exists"));
    }
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare("INSERT INTO datasets (name, space, description, created_unix_s) "
                             "VALUES (?1, ?2, ?3, ?4)"));
    insert.BindText(1, dataset.name);
    insert.BindText(2, dataset.space);
    insert.BindText(3, dataset.description);
    insert.BindDouble(4, dataset.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(operation));
  }
  RETURN_IF_ERROR(InsertMeasurements(dataset.name, rows, operation));
  return transaction.Commit(operation);
}

namespace {

constexpr const char* kDatasetSelect =
    "SELECT d.name, d.space, d.description, d.created_unix_s, "
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name), "
    // "fp32" is oface::kMeasuredFp32; the store does not depend on oface.
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name AND m.method = 'fp32') "
    "FROM datasets d ";

DatasetRecord ReadDataset(sqlite3_stmt* stmt) {
  DatasetRecord dataset;
  dataset.name = ColumnText(stmt, 0);
  dataset.space = ColumnText(stmt, 1);
  dataset.description = ColumnText(stmt, 2);
  dataset.created_unix_s = sqlite3_column_double(stmt, 3);
  dataset.records = sqlite3_column_int64(stmt, 4);
  dataset.fp32_records = sqlite3_column_int64(stmt, 5);
  return dataset;
}

}  // namespace

absl::StatusOr<DatasetRecord> SqliteStore::GetDataset(const std::string& name) {
  const std::string operation = absl::StrCat("reading dataset ", name);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat(kDatasetSelect, "WHERE d.name = ?1")));
  select.BindText(1, name);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return absl::NotFoundError(absl::StrCat("unknown dataset \"", name, "\""));
  return ReadDataset(select.get());
}

absl::StatusOr<std::vector<DatasetRecord>> SqliteStore::ListDatasets() {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat(kDatasetSelect, "ORDER BY d.name")));
  std::vector<DatasetRecord> datasets;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing datasets"));
    if (!row) break;
    datasets.push_back(ReadDataset(select.get()));
  }
  return datasets;
}

absl::Status SqliteStore::AddMeasurements(const std::string& dataset,
                                          const std::vector<MeasurementRow>& rows) {
  RETURN_IF_ERROR(ValidateMeasurementRows(rows));
  const std::string operation = absl::StrCat("adding measurements to dataset ", dataset);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  RETURN_IF_ERROR(CheckDatasetKnown(dataset, operation));
  RETURN_IF_ERROR(InsertMeasurements(dataset, rows, operation));
  return transaction.Commit(operation);
}

absl::StatusOr<std::vector<MeasurementRow>> SqliteStore::ListMeasurements(
    const std::string& dataset, const std::optional<std::string>& method) {
  const std::string operation = absl::StrCat("listing the measurements of dataset ", dataset);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/false, operation));
  RETURN_IF_ERROR(CheckDatasetKnown(dataset, operation));
  std::vector<MeasurementRow> rows;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        Prepare("SELECT id, config_json, accuracy, method, seconds, seed, created_unix_s "
                "FROM measurements WHERE dataset = ?1 AND (?2 IS NULL OR method = ?2) "
                "ORDER BY id"));
    select.BindText(1, dataset);
    if (method.has_value()) {
      select.BindText(2, *method);
    } else {
      select.BindNull(2);
    }
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      MeasurementRow measurement;
      measurement.id = sqlite3_column_int64(select.get(), 0);
      measurement.config_json = ColumnText(select.get(), 1);
      measurement.accuracy = sqlite3_column_double(select.get(), 2);
      measurement.method = ColumnText(select.get(), 3);
      measurement.seconds = sqlite3_column_double(select.get(), 4);
      measurement.seed = static_cast<uint64_t>(sqlite3_column_int64(select.get(), 5));
      measurement.created_unix_s = sqlite3_column_double(select.get(), 6);
      rows.push_back(std::move(measurement));
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return rows;
}

namespace {

constexpr const char* kPredictorColumns =
    "space, version, kind, metrics_json, dataset, created_unix_s, is_default";

// Reads kPredictorColumns, then the artifact if `with_artifact`.
PredictorRecord ReadPredictor(sqlite3_stmt* stmt, bool with_artifact) {
  PredictorRecord predictor;
  predictor.space = ColumnText(stmt, 0);
  predictor.version = ColumnText(stmt, 1);
  predictor.kind = ColumnText(stmt, 2);
  predictor.metrics_json = ColumnText(stmt, 3);
  predictor.dataset = ColumnText(stmt, 4);
  predictor.created_unix_s = sqlite3_column_double(stmt, 5);
  predictor.is_default = sqlite3_column_int(stmt, 6) != 0;
  if (with_artifact) predictor.artifact = ColumnBlob(stmt, 7);
  return predictor;
}

}  // namespace

absl::Status SqliteStore::AddPredictor(const PredictorRecord& predictor) {
  const std::string operation =
      absl::StrCat("adding predictor ", predictor.version, " of space ", predictor.space);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  RETURN_IF_ERROR(InsertPredictor(predictor, operation));
  return transaction.Commit(operation);
}

absl::Status SqliteStore::InsertPredictor(const PredictorRecord& predictor,
                                          const std::string& operation) {
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"space", &predictor.space},
        {"version", &predictor.version},
        {"kind", &predictor.kind}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("predictor ", field, " is empty"));
    }
  }
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT 1 FROM predictors WHERE space = ?1 AND version = ?2"));
    select.BindText(1, predictor.space);
    select.BindText(2, predictor.version);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (exists) {
      return absl::AlreadyExistsError(absl::StrCat("predictor ", predictor.version, " of space ",
                                                   predictor.space, " is already stored"));
    }
  }
  if (predictor.is_default) {
    ASSIGN_OR_RETURN(Statement clear,
                     Prepare("UPDATE predictors SET is_default = 0 WHERE space = ?1"));
    clear.BindText(1, predictor.space);
    RETURN_IF_ERROR(clear.Run(operation));
  }
  ASSIGN_OR_RETURN(Statement insert,
                   Prepare(absl::StrCat("INSERT INTO predictors (", kPredictorColumns,
                                        ", artifact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")));
  insert.BindText(1, predictor.space);
  insert.BindText(2, predictor.version);
  insert.BindText(3, predictor.kind);
  insert.BindText(4, predictor.metrics_json);
  insert.BindText(5, predictor.dataset);
  insert.BindDouble(6, predictor.created_unix_s, "created_unix_s");
  insert.BindInt64(7, predictor.is_default ? 1 : 0);
  insert.BindBlob(8, predictor.artifact);
  return insert.Run(operation);
}

absl::StatusOr<std::vector<PredictorRecord>> SqliteStore::ListPredictors(const std::string& space) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select,
                   Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                        " FROM predictors WHERE space = ?1 ORDER BY rowid")));
  select.BindText(1, space);
  std::vector<PredictorRecord> predictors;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("listing the predictors of ", space)));
    if (!row) break;
    predictors.push_back(ReadPredictor(select.get(), /*with_artifact=*/false));
  }
  return predictors;
}

absl::StatusOr<PredictorRecord> SqliteStore::GetPredictor(const std::string& space,
                                                          const std::string& version) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                                          ", artifact FROM predictors "
                                                          "WHERE space = ?1 AND version = ?2")));
  select.BindText(1, space);
  select.BindText(2, version);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading predictor ", version)));
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("space ", space, " has no predictor version '", version, "'"));
  }
  return ReadPredictor(select.get(), /*with_artifact=*/true);
}

absl::StatusOr<PredictorRecord> SqliteStore::GetDefaultPredictor(const std::string& space) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                                          ", artifact FROM predictors "
                                                          "WHERE space = ?1 AND is_default = 1")));
  select.BindText(1, space);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading the default predictor of ", space)));
  if (!row) return absl::NotFoundError(absl::StrCat("space ", space, " has no default predictor"));
  return ReadPredictor(select.get(), /*with_artifact=*/true);
}

absl::Status SqliteStore::SetDefaultPredictor(const std::string& space,
                                              const std::string& version) {
  const std::string operation =
      absl::StrCat("making predictor ", version, " the default of space ", space);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT 1 FROM predictors WHERE space = ?1 AND version = ?2"));
    select.BindText(1, space);
    select.BindText(2, version);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (!exists) {
      return absl::NotFoundError(
          absl::StrCat("space ", space, " has no predictor version '", version, "'"));
    }
  }
  // Cleared first: the one-default index is checked row by row.
  {
    ASSIGN_OR_RETURN(Statement clear,
                     Prepare("UPDATE predictors SET is_default = 0 WHERE space = ?1"));
    clear.BindText(1, space);
    RETURN_IF_ERROR(clear.Run(operation));
  }
  {
    ASSIGN_OR_RETURN(Statement update, Prepare("UPDATE predictors SET is_default = 1 "
                                               "WHERE space = ?1 AND version = ?2"));
    update.BindText(1, space);
    update.BindText(2, version);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteStore::ClearDefaultPredictor(const std::string& space) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement clear,
                   Prepare("UPDATE predictors SET is_default = 0 WHERE space = ?1"));
  clear.BindText(1, space);
  return clear.Run(absl::StrCat("clearing the default predictor of space ", space));
}

namespace {

constexpr const char* kTrainingJobColumns =
    "id, space, dataset, request, state, error, stage, epoch, max_epochs, validation_rmse, "
    "predictor_version, metrics_json, created_unix_s, started_unix_s, finished_unix_s";

TrainingJobRecord ReadTrainingJob(sqlite3_stmt* stmt) {
  TrainingJobRecord job;
  job.id = ColumnText(stmt, 0);
  job.space = ColumnText(stmt, 1);
  job.dataset = ColumnText(stmt, 2);
  job.request = ColumnBlob(stmt, 3);
  job.state = static_cast<JobState>(sqlite3_column_int(stmt, 4));
  job.error = ColumnText(stmt, 5);
  job.stage = ColumnText(stmt, 6);
  job.epoch = sqlite3_column_int(stmt, 7);
  job.max_epochs = sqlite3_column_int(stmt, 8);
  job.validation_rmse = sqlite3_column_double(stmt, 9);
  job.predictor_version = ColumnText(stmt, 10);
  job.metrics_json = ColumnText(stmt, 11);
  job.created_unix_s = sqlite3_column_double(stmt, 12);
  job.started_unix_s = sqlite3_column_double(stmt, 13);
  job.finished_unix_s = sqlite3_column_double(stmt, 14);
  return job;
}

}  // namespace

absl::StatusOr<JobState> SqliteStore::LoadTrainingJobState(const std::string& job_id) {
  ASSIGN_OR_RETURN(Statement select, Prepare("SELECT state FROM training_jobs WHERE id = ?1"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading training job ", job_id)));
  if (!row) return absl::NotFoundError(absl::StrCat("training job \"", job_id, "\" not found"));
  return static_cast<JobState>(sqlite3_column_int(select.get(), 0));
}

absl::StatusOr<std::string> SqliteStore::CreateTrainingJob(const TrainingJobRecord& job) {
  constexpr absl::string_view kOperation = "creating a training job";
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, kOperation));
  int64_t seq = 0;
  {
    ASSIGN_OR_RETURN(Statement select,
                     Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM training_jobs"));
    ASSIGN_OR_RETURN(bool row, select.Step(kOperation));
    if (!row) return absl::InternalError(absl::StrCat(kOperation, ": no sequence number"));
    seq = sqlite3_column_int64(select.get(), 0);
  }
  const std::string id = absl::StrCat("train-", seq);
  {
    ASSIGN_OR_RETURN(Statement insert,
                     Prepare("INSERT INTO training_jobs (id, seq, space, dataset, request, state, "
                             "created_unix_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    insert.BindText(1, id);
    insert.BindInt64(2, seq);
    insert.BindText(3, job.space);
    insert.BindText(4, job.dataset);
    insert.BindBlob(5, job.request);
    insert.BindInt64(6, static_cast<int64_t>(JobState::kQueued));
    insert.BindDouble(7, job.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(kOperation));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return id;
}

absl::Status SqliteStore::MarkTrainingRunning(const std::string& job_id, double started_unix_s) {
  const std::string operation = absl::StrCat("marking training job ", job_id, " running");
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadTrainingJobState(job_id));
  if (IsTerminal(state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training job \"", job_id, "\" has ended (state ", static_cast<int>(state), ")"));
  }
  {
    // A job run again after a restart starts over: its progress is reset.
    ASSIGN_OR_RETURN(Statement update,
                     Prepare("UPDATE training_jobs SET state = ?2, started_unix_s = ?3, "
                             "stage = '', epoch = 0, max_epochs = 0, validation_rmse = 0 "
                             "WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    update.BindDouble(3, started_unix_s, "started_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteStore::UpdateTrainingProgress(const std::string& job_id,
                                                 const std::string& stage, int epoch,
                                                 int max_epochs, double validation_rmse) {
  const std::string operation = absl::StrCat("recording the progress of training job ", job_id);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadTrainingJobState(job_id));
  if (IsTerminal(state)) {
    return absl::FailedPreconditionError(absl::StrCat("training job \"", job_id, "\" has ended"));
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     Prepare("UPDATE training_jobs SET stage = ?2, epoch = ?3, max_epochs = ?4, "
                             "validation_rmse = ?5 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindText(2, stage);
    update.BindInt64(3, epoch);
    update.BindInt64(4, max_epochs);
    update.BindDouble(5, validation_rmse, "validation_rmse");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteStore::FinishTrainingJob(const std::string& job_id, JobState state,
                                            const std::string& error, double finished_unix_s,
                                            const PredictorRecord* predictor) {
  if (!IsTerminal(state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("FinishTrainingJob needs a terminal state, got ", static_cast<int>(state)));
  }
  if (predictor != nullptr && state != JobState::kSucceeded) {
    return absl::InvalidArgumentError("FinishTrainingJob: only a succeeded job has a predictor");
  }
  const std::string operation = absl::StrCat("finishing training job ", job_id);
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db_, /*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState current, LoadTrainingJobState(job_id));
  if (IsTerminal(current)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training job \"", job_id, "\" has already ended (state ", static_cast<int>(current), ")"));
  }
  if (predictor != nullptr) {
    bool stored = false;
    {
      ASSIGN_OR_RETURN(Statement select,
                       Prepare("SELECT 1 FROM predictors WHERE space = ?1 AND version = ?2"));
      select.BindText(1, predictor->space);
      select.BindText(2, predictor->version);
      ASSIGN_OR_RETURN(stored, select.Step(operation));
    }
    if (!stored) {
      RETURN_IF_ERROR(InsertPredictor(*predictor, operation));
    } else if (predictor->is_default) {
      // Versions are content hashes: the job trained a predictor already stored. Cleared
      // first: the one-default index is checked row by row.
      {
        ASSIGN_OR_RETURN(Statement clear,
                         Prepare("UPDATE predictors SET is_default = 0 WHERE space = ?1"));
        clear.BindText(1, predictor->space);
        RETURN_IF_ERROR(clear.Run(operation));
      }
      ASSIGN_OR_RETURN(Statement update, Prepare("UPDATE predictors SET is_default = 1 "
                                                 "WHERE space = ?1 AND version = ?2"));
      update.BindText(1, predictor->space);
      update.BindText(2, predictor->version);
      RETURN_IF_ERROR(update.Run(operation));
    }
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     Prepare("UPDATE training_jobs SET state = ?2, error = ?3, "
                             "finished_unix_s = ?4, predictor_version = ?5, metrics_json = ?6 "
                             "WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(state));
    update.BindText(3, error);
    update.BindDouble(4, finished_unix_s, "finished_unix_s");
    // Named, not temporaries: bound text must outlive the statement's step (SQLITE_STATIC).
    const std::string version = predictor != nullptr ? predictor->version : "";
    const std::string metrics_json = predictor != nullptr ? predictor->metrics_json : "{}";
    update.BindText(5, version);
    update.BindText(6, metrics_json);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<TrainingJobRecord> SqliteStore::GetTrainingJob(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select, Prepare(absl::StrCat("SELECT ", kTrainingJobColumns,
                                                          " FROM training_jobs WHERE id = ?1")));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading training job ", job_id)));
  if (!row) return absl::NotFoundError(absl::StrCat("training job \"", job_id, "\" not found"));
  return ReadTrainingJob(select.get());
}

absl::StatusOr<std::vector<TrainingJobRecord>> SqliteStore::ListTrainingJobs(bool unfinished_only,
                                                                             int64_t offset,
                                                                             int limit) {
  RETURN_IF_ERROR(CheckPage(offset, limit));
  absl::MutexLock lock(&mutex_);
  ASSIGN_OR_RETURN(Statement select,
                   Prepare(absl::StrCat("SELECT ", kTrainingJobColumns, " FROM training_jobs",
                                        unfinished_only ? " WHERE state IN (1, 2)" : "",
                                        " ORDER BY seq DESC LIMIT ?1 OFFSET ?2")));
  select.BindInt64(1, limit);
  select.BindInt64(2, offset);
  std::vector<TrainingJobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing training jobs"));
    if (!row) break;
    jobs.push_back(ReadTrainingJob(select.get()));
  }
  return jobs;
}

}  // namespace apq::server
