#include "server/store/postgres_database.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <pqxx/pqxx>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace apq::server {
namespace {

// Schema migrations, applied in order; apq_schema.version counts those applied. Never edit
// a released entry; append a new one. Migration 1 is SQLite's schema 14 (sqlite_database.cc)
// in PostgreSQL's types: strings BYTEA, doubles DOUBLE PRECISION, flags BOOLEAN; tables
// listed in insertion order by SQLite's rowid get an explicit position column.
constexpr const char* kMigrations[] = {
    // 1: every record kind.
    R"sql(
CREATE TABLE jobs (
  id BYTEA PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  space BYTEA NOT NULL,
  device BYTEA NOT NULL,
  table_version BIGINT NOT NULL,
  predictor_version BYTEA NOT NULL,
  request BYTEA NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  error BYTEA NOT NULL DEFAULT '',
  generations_done BIGINT NOT NULL DEFAULT 0,
  -- The generation AppendGenerations accepts next: 0 until the first batch is stored.
  next_generation BIGINT NOT NULL DEFAULT 0,
  candidates_evaluated BIGINT NOT NULL DEFAULT 0,
  -- Rows in candidates for this job, by feasibility: ListCandidates' totals without a count.
  stored_feasible BIGINT NOT NULL DEFAULT 0,
  stored_infeasible BIGINT NOT NULL DEFAULT 0,
  rejected_draws BIGINT NOT NULL DEFAULT 0,
  -- A copy of the best candidate; best_config_json IS NULL when there is none.
  best_id BIGINT,
  best_generation BIGINT,
  best_config_json BYTEA,
  best_accuracy DOUBLE PRECISION,
  best_latency_ms DOUBLE PRECISION,
  best_energy_mj DOUBLE PRECISION,
  best_size_mb DOUBLE PRECISION,
  best_bitops DOUBLE PRECISION,
  best_feasible BOOLEAN,
  best_modelled BYTEA,
  created_unix_s DOUBLE PRECISION NOT NULL,
  started_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  finished_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  elapsed_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  pareto_front_size BIGINT NOT NULL DEFAULT 0,
  stage INTEGER NOT NULL DEFAULT 1 CHECK (stage IN (1, 2)),
  verification_finalists INTEGER NOT NULL DEFAULT 0,
  verification_measured INTEGER NOT NULL DEFAULT 0,
  verified_best_id BIGINT,
  sweep_id BYTEA NOT NULL DEFAULT '',
  owner BYTEA NOT NULL DEFAULT '',
  -- Deleted jobs stay as tombstones (their ids are never given again), without candidates.
  deleted_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  engine_metrics BYTEA NOT NULL DEFAULT '',
  label BYTEA,
  checkpoint BYTEA NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_by_sweep ON jobs (sweep_id, seq) WHERE sweep_id != '';
CREATE INDEX jobs_by_owner ON jobs (owner, seq);
CREATE INDEX jobs_by_label ON jobs (label, seq);

-- One row per distinct network of a job (network_hash: NetworkHash(config_json)).
CREATE TABLE candidates (
  id BIGSERIAL PRIMARY KEY,
  job_id BYTEA NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  generation BIGINT NOT NULL,
  times_seen BIGINT NOT NULL CHECK (times_seen >= 1),
  network_hash BIGINT NOT NULL,
  config_json BYTEA NOT NULL,
  accuracy DOUBLE PRECISION,
  latency_ms DOUBLE PRECISION,
  energy_mj DOUBLE PRECISION,
  size_mb DOUBLE PRECISION,
  bitops DOUBLE PRECISION,
  feasible BOOLEAN NOT NULL,
  modelled BYTEA NOT NULL DEFAULT '',
  on_pareto_front BOOLEAN NOT NULL DEFAULT FALSE,
  -- measured_accuracy IS NULL: not measured (then the other three are NULL too).
  measured_accuracy DOUBLE PRECISION,
  measured_method BYTEA,
  measured_split BYTEA,
  measured_seconds DOUBLE PRECISION
);
CREATE INDEX candidates_by_job_network ON candidates (job_id, network_hash);
CREATE INDEX candidates_on_front ON candidates (job_id) WHERE on_pareto_front;

CREATE TABLE device_tables (
  device BYTEA NOT NULL,
  version BIGINT NOT NULL CHECK (version >= 1),
  format INTEGER NOT NULL,
  entries BIGINT NOT NULL,
  uploaded_unix_s DOUBLE PRECISION NOT NULL,
  sha256 BYTEA NOT NULL,
  description BYTEA NOT NULL,
  PRIMARY KEY (device, version)
);

-- position: the file's place in the uploaded table (files read back in that order).
CREATE TABLE table_files (
  device BYTEA NOT NULL,
  version BIGINT NOT NULL,
  position INTEGER NOT NULL,
  name BYTEA NOT NULL,
  content BYTEA NOT NULL,
  PRIMARY KEY (device, version, name),
  FOREIGN KEY (device, version) REFERENCES device_tables (device, version) ON DELETE CASCADE
);

-- position: creation order (ListPredictors lists in it).
CREATE TABLE predictors (
  space BYTEA NOT NULL,
  version BYTEA NOT NULL,
  kind BYTEA NOT NULL DEFAULT '',
  artifact BYTEA NOT NULL,
  metrics_json BYTEA NOT NULL DEFAULT '{}',
  dataset BYTEA NOT NULL DEFAULT '',
  created_unix_s DOUBLE PRECISION NOT NULL,
  is_default BOOLEAN NOT NULL DEFAULT FALSE,
  position BIGSERIAL NOT NULL UNIQUE,
  PRIMARY KEY (space, version)
);
CREATE UNIQUE INDEX predictors_one_default ON predictors (space) WHERE is_default;

CREATE TABLE datasets (
  name BYTEA PRIMARY KEY,
  space BYTEA NOT NULL,
  description BYTEA NOT NULL,
  created_unix_s DOUBLE PRECISION NOT NULL
);

CREATE TABLE measurements (
  id BIGSERIAL PRIMARY KEY,
  dataset BYTEA NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
  config_json BYTEA NOT NULL,
  accuracy DOUBLE PRECISION NOT NULL CHECK (accuracy >= 0 AND accuracy <= 1),
  method BYTEA NOT NULL,
  seconds DOUBLE PRECISION NOT NULL CHECK (seconds >= 0),
  seed BIGINT NOT NULL,
  created_unix_s DOUBLE PRECISION NOT NULL,
  split BYTEA NOT NULL DEFAULT '',
  UNIQUE (dataset, method, config_json)
);

CREATE TABLE training_jobs (
  id BYTEA PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  space BYTEA NOT NULL,
  dataset BYTEA NOT NULL,
  request BYTEA NOT NULL,
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  error BYTEA NOT NULL DEFAULT '',
  stage BYTEA NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  max_epochs INTEGER NOT NULL DEFAULT 0,
  validation_rmse DOUBLE PRECISION NOT NULL DEFAULT 0,
  predictor_version BYTEA NOT NULL DEFAULT '',
  metrics_json BYTEA NOT NULL DEFAULT '{}',
  created_unix_s DOUBLE PRECISION NOT NULL,
  started_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  finished_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX training_jobs_by_state ON training_jobs (state, seq);

-- position: creation order (ListTokens lists in it).
CREATE TABLE tokens (
  id BYTEA PRIMARY KEY,
  position BIGSERIAL NOT NULL UNIQUE,
  name BYTEA NOT NULL,
  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
  secret_sha256 BYTEA NOT NULL,
  created_unix_s DOUBLE PRECISION NOT NULL,
  created_by BYTEA NOT NULL,
  revoked_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0
);

-- job_id is '' for a shared artifact; a job's are deleted with it (no foreign key: a deleted
-- job's row stays as a tombstone).
CREATE TABLE artifacts (
  kind BYTEA NOT NULL,
  key BYTEA NOT NULL,
  job_id BYTEA NOT NULL DEFAULT '',
  space BYTEA NOT NULL DEFAULT '',
  created_unix_s DOUBLE PRECISION NOT NULL,
  provenance BYTEA NOT NULL DEFAULT '',
  content_type BYTEA NOT NULL DEFAULT '',
  bytes BYTEA NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX artifacts_by_job ON artifacts (job_id, kind, key);
)sql",
    // 2: job leases (SQLite's schema 15): the replica running the job and until when
    // (JobStore::ClaimJob; '' and 0: none), and whether RequestCancel asked it to stop.
    R"sql(
ALTER TABLE jobs ADD COLUMN lease_holder BYTEA NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
)sql",
    // 3: measurement runs (SQLite's schema 16): tasks that workers claim with leases, each
    // record written to the run's dataset. Task status: 1 pending, 2 held, 3 done, 4 failed,
    // 5 cancelled.
    R"sql(
CREATE TABLE measurement_runs (
  id BYTEA PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  dataset BYTEA NOT NULL REFERENCES datasets (name),
  space BYTEA NOT NULL,
  method BYTEA NOT NULL,
  split BYTEA NOT NULL,
  seed BIGINT NOT NULL,
  settings BYTEA NOT NULL DEFAULT '',
  launcher BYTEA NOT NULL DEFAULT '',
  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  tasks_total BIGINT NOT NULL,
  tasks_done BIGINT NOT NULL DEFAULT 0,
  tasks_failed BIGINT NOT NULL DEFAULT 0,
  created_unix_s DOUBLE PRECISION NOT NULL,
  finished_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  error BYTEA NOT NULL DEFAULT ''
);

CREATE TABLE measurement_tasks (
  id BIGSERIAL PRIMARY KEY,
  run_id BYTEA NOT NULL REFERENCES measurement_runs (id),
  task_index BIGINT NOT NULL,
  config_json BYTEA NOT NULL,
  status INTEGER NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 5),
  lease_holder BYTEA NOT NULL DEFAULT '',
  lease_expires_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  error BYTEA NOT NULL DEFAULT '',
  UNIQUE (run_id, task_index)
);
-- The claimable and held tasks of a run, in index order.
CREATE INDEX measurement_tasks_open ON measurement_tasks (run_id, task_index)
  WHERE status IN (1, 2);
)sql",
    // 4: how many claims of a task before it settles as failed (SQLite's schema 17), a claim
    // whose worker died counting as one.
    R"sql(
ALTER TABLE measurement_runs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
)sql",
    // 5: training job leases (SQLite's schema 18), as the jobs' of migration 2: the replica
    // training the job and until when (TrainingJobStore::ClaimTrainingJob; '' and 0: none), and
    // whether RequestTrainingCancel asked it to stop.
    R"sql(
ALTER TABLE training_jobs ADD COLUMN lease_holder BYTEA NOT NULL DEFAULT '';
ALTER TABLE training_jobs ADD COLUMN lease_expires_unix_s DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE training_jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
)sql",
};

constexpr int kKnownSchemaVersion = static_cast<int>(std::size(kMigrations));

// The advisory lock key of schema migrations (apart from PostgresLock's keys).
constexpr int64_t kMigrationLock = 0x617071;  // "apq"

// How often Transact runs a body whose transaction failed for a retryable reason.
constexpr int kTransactAttempts = 4;

constexpr char kHexDigits[] = "0123456789abcdef";

std::string HexBytes(absl::string_view value) {
  std::string text = "\\x";
  text.reserve(2 + 2 * value.size());
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    text.push_back(kHexDigits[byte >> 4]);
    text.push_back(kHexDigits[byte & 15]);
  }
  return text;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// PostgreSQL's hex output of a BYTEA ("\x..."); anything else reads as its own bytes.
std::string UnhexBytes(absl::string_view text) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x') return static_cast<std::string>(text);
  std::string bytes;
  bytes.reserve((text.size() - 2) / 2);
  for (size_t i = 2; i + 1 < text.size(); i += 2) {
    bytes.push_back(static_cast<char>(HexValue(text[i]) * 16 + HexValue(text[i + 1])));
  }
  return bytes;
}

std::string DoubleText(double value) {
  if (value == 0.0) return "0";  // -0.0 too.
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return absl::StrFormat("%.17g", value);
}

// An array literal element: double-quoted, backslash and quote escaped.
std::string ArrayElement(absl::string_view value) {
  std::string element = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') element.push_back('\\');
    element.push_back(c);
  }
  element.push_back('"');
  return element;
}

// The values of a row of `kColumns` values as a tuple: libpqxx 6.4's stream_to writes
// tuples, and escapes each value for COPY's text format (NULL as \N).
template <size_t... kIndex>
auto RowTuple(const std::vector<std::optional<std::string>>& values,
              std::index_sequence<kIndex...> /*indexes*/) {
  return std::make_tuple(values[kIndex]...);
}

template <size_t kColumns>
absl::Status CopyRows(pqxx::transaction_base& transaction, absl::string_view table,
                      const std::vector<std::string>& columns,
                      const std::vector<PostgresParams>& rows) {
  pqxx::stream_to stream(transaction, static_cast<std::string>(table), columns);
  for (const PostgresParams& row : rows) {
    stream << RowTuple(row.values(), std::make_index_sequence<kColumns>());
  }
  stream.complete();
  return absl::OkStatus();
}

using CopyRowsFunction = absl::Status (*)(pqxx::transaction_base&, absl::string_view,
                                          const std::vector<std::string>&,
                                          const std::vector<PostgresParams>&);

template <size_t... kIndex>
constexpr std::array<CopyRowsFunction, sizeof...(kIndex)> CopyRowsTable(
    std::index_sequence<kIndex...> /*indexes*/) {
  return {&CopyRows<kIndex + 1>...};
}

// CopyRows of 1 to 24 columns, entry i for i + 1 columns.
constexpr auto kCopyRows = CopyRowsTable(std::make_index_sequence<24>());

// Failures after which the whole transaction may run again: the server closed the
// connection, or PostgreSQL aborted the transaction to keep transactions serializable.
bool IsRetryable(const std::exception& error) {
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    const std::string& state = sql->sqlstate();
    // 40001 serialization_failure, 40P01 deadlock_detected, 57P01 admin_shutdown,
    // 08xxx connection exceptions.
    return state == "40001" || state == "40P01" || state == "57P01" ||
           absl::StartsWith(state, "08");
  }
  return false;
}

std::string ErrorText(const std::exception& error) {
  std::string text(absl::StripAsciiWhitespace(error.what()));
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    if (!sql->sqlstate().empty()) absl::StrAppend(&text, " (SQLSTATE ", sql->sqlstate(), ")");
  }
  return text;
}

// Thrown out of a transaction body (through libpqxx-free code only, inside Transact) to
// carry a retryable failure to Transact's loop.
struct RetryableFailure {
  std::string message;
};

}  // namespace

PostgresParams& PostgresParams::Bytes(absl::string_view value) {
  values_.emplace_back(HexBytes(value));
  return *this;
}

PostgresParams& PostgresParams::Int(int64_t value) {
  values_.emplace_back(absl::StrCat(value));
  return *this;
}

PostgresParams& PostgresParams::Bool(bool value) {
  values_.emplace_back(value ? "t" : "f");
  return *this;
}

PostgresParams& PostgresParams::Double(double value, absl::string_view field) {
  if (std::isnan(value)) {
    if (error_.ok()) error_ = absl::InvalidArgumentError(absl::StrCat(field, " is NaN"));
    values_.emplace_back(std::nullopt);
    return *this;
  }
  values_.emplace_back(DoubleText(value));
  return *this;
}

PostgresParams& PostgresParams::OptionalDouble(const std::optional<double>& value,
                                               absl::string_view field) {
  if (!value.has_value()) return Null();
  return Double(*value, field);
}

PostgresParams& PostgresParams::Null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

PostgresParams& PostgresParams::IntArray(const std::vector<int64_t>& values) {
  values_.emplace_back(absl::StrCat("{", absl::StrJoin(values, ","), "}"));
  return *this;
}

PostgresParams& PostgresParams::BytesArray(const std::vector<std::string>& values) {
  std::string text = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text.push_back(',');
    text.append(ArrayElement(HexBytes(values[i])));
  }
  text.push_back('}');
  values_.emplace_back(std::move(text));
  return *this;
}

std::string FieldBytes(const pqxx::field& field) {
  if (field.is_null()) return std::string();
  return UnhexBytes(absl::string_view(field.c_str(), field.size()));
}

int64_t FieldInt(const pqxx::field& field) {
  if (field.is_null()) return 0;
  return field.as<int64_t>();
}

double FieldDouble(const pqxx::field& field) {
  if (field.is_null()) return 0.0;
  return field.as<double>();
}

std::optional<double> FieldOptionalDouble(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<double>();
}

bool FieldBool(const pqxx::field& field) {
  if (field.is_null()) return false;
  return field.as<bool>();
}

bool FieldIsNull(const pqxx::field& field) { return field.is_null(); }

absl::StatusOr<pqxx::result> PostgresTransaction::Exec(absl::string_view sql,
                                                       const PostgresParams& params) {
  if (!params.error().ok()) {
    return absl::Status(params.error().code(),
                        absl::StrCat(operation_, ": ", params.error().message()));
  }
  try {
    return transaction_.exec_params(static_cast<std::string>(sql),
                                    pqxx::prepare::make_dynamic_params(params.values()));
  } catch (const std::exception& error) {
    if (IsRetryable(error)) throw RetryableFailure{ErrorText(error)};
    return absl::InternalError(absl::StrCat(operation_, ": ", ErrorText(error)));
  }
}

absl::StatusOr<int64_t> PostgresTransaction::Run(absl::string_view sql,
                                                 const PostgresParams& params) {
  ASSIGN_OR_RETURN(const pqxx::result result, Exec(sql, params));
  return static_cast<int64_t>(result.affected_rows());
}

absl::Status PostgresTransaction::ExecScript(absl::string_view sql) {
  try {
    transaction_.exec(static_cast<std::string>(sql));
  } catch (const std::exception& error) {
    if (IsRetryable(error)) throw RetryableFailure{ErrorText(error)};
    return absl::InternalError(absl::StrCat(operation_, ": ", ErrorText(error)));
  }
  return absl::OkStatus();
}

absl::Status PostgresTransaction::Lock(PostgresLock lock) {
  return Exec("SELECT pg_advisory_xact_lock($1::int8)",
              PostgresParams().Int(static_cast<int64_t>(lock)))
      .status();
}

absl::Status PostgresTransaction::Copy(absl::string_view table,
                                       const std::vector<std::string>& columns,
                                       const std::vector<PostgresParams>& rows) {
  if (columns.empty() || columns.size() > kCopyRows.size()) {
    return absl::InvalidArgumentError(absl::StrCat(operation_, ": COPY of ", columns.size(),
                                                   " columns (1 to ", kCopyRows.size(),
                                                   " supported)"));
  }
  for (const PostgresParams& row : rows) {
    if (row.values().size() != columns.size()) {
      return absl::InternalError(absl::StrCat(operation_, ": a row of ", row.values().size(),
                                              " values for ", columns.size(), " columns"));
    }
    if (!row.error().ok()) {
      return absl::Status(row.error().code(),
                          absl::StrCat(operation_, ": ", row.error().message()));
    }
  }
  try {
    RETURN_IF_ERROR(kCopyRows[columns.size() - 1](transaction_, table, columns, rows));
  } catch (const std::exception& error) {
    if (IsRetryable(error)) throw RetryableFailure{ErrorText(error)};
    return absl::InternalError(
        absl::StrCat(operation_, ": copying into ", table, ": ", ErrorText(error)));
  }
  return absl::OkStatus();
}

// Idle connections, opened on demand up to the limit; a connection that failed is dropped.
class PostgresDatabase::Pool {
 public:
  Pool(std::string dsn, int limit) : dsn_(std::move(dsn)), limit_(limit) {}

  // A connection for the caller's exclusive use until Release; waits while `limit` are out.
  std::unique_ptr<pqxx::connection> Acquire() {
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](Pool* pool)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex_) { return pool->out_ < pool->limit_; },
          this));
      ++out_;
      if (!idle_.empty()) {
        std::unique_ptr<pqxx::connection> connection = std::move(idle_.back());
        idle_.pop_back();
        return connection;
      }
    }
    try {
      return std::make_unique<pqxx::connection>(dsn_);
    } catch (...) {
      absl::MutexLock lock(&mutex_);
      --out_;
      throw;
    }
  }

  // Returns a connection; `healthy` false drops it.
  void Release(std::unique_ptr<pqxx::connection> connection, bool healthy) {
    absl::MutexLock lock(&mutex_);
    --out_;
    if (healthy && connection != nullptr && connection->is_open()) {
      idle_.push_back(std::move(connection));
    }
  }

  void Clear() {
    absl::MutexLock lock(&mutex_);
    idle_.clear();
  }

 private:
  const std::string dsn_;
  const int limit_;
  absl::Mutex mutex_;
  int out_ ABSL_GUARDED_BY(mutex_) = 0;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mutex_);
};

namespace {

// `dsn` with the connection settings the store relies on, unless it sets them itself: a
// connection attempt gives up after 10 s, and a connection whose server stopped answering
// (a half-open TCP connection after a failover) fails within about 30 s instead of hanging
// a transaction for the kernel's minutes; Transact then retries on a new one.
std::string WithConnectionDefaults(const std::string& dsn) {
  const bool uri = absl::StartsWith(dsn, "postgresql://") || absl::StartsWith(dsn, "postgres://");
  std::string result = dsn;
  bool first_parameter = uri && dsn.find('?') == std::string::npos;
  for (const auto& [name, value] : {std::pair<const char*, const char*>{"connect_timeout", "10"},
                                    {"keepalives_idle", "10"},
                                    {"keepalives_interval", "5"},
                                    {"keepalives_count", "3"},
                                    {"tcp_user_timeout", "30000"}}) {
    if (absl::StrContains(dsn, absl::StrCat(name, "="))) continue;
    if (uri) {
      absl::StrAppend(&result, first_parameter ? "?" : "&", name, "=", value);
      first_parameter = false;
    } else {
      absl::StrAppend(&result, " ", name, "=", value);
    }
  }
  return result;
}

}  // namespace

PostgresDatabase::PostgresDatabase(std::string dsn, int connections)
    : dsn_(std::move(dsn)),
      pool_(std::make_unique<Pool>(WithConnectionDefaults(dsn_), connections)) {}

PostgresDatabase::~PostgresDatabase() { pool_->Clear(); }

int PostgresDatabase::SchemaVersion() { return kKnownSchemaVersion; }

std::string PostgresDatabase::RedactedDsn(const std::string& dsn) {
  std::string redacted = dsn;
  // URI: scheme://user:password@host...
  const size_t scheme = redacted.find("://");
  if (scheme != std::string::npos) {
    const size_t at = redacted.find('@', scheme + 3);
    const size_t colon = redacted.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      redacted.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // Keyword form or URI parameter: password=...
  size_t position = 0;
  while ((position = redacted.find("password=", position)) != std::string::npos) {
    const size_t start = position + 9;
    size_t end = redacted.find_first_of(" &", start);
    if (end == std::string::npos) end = redacted.size();
    redacted.replace(start, end - start, "***");
    position = start + 3;
  }
  return redacted;
}

absl::StatusOr<std::unique_ptr<PostgresDatabase>> PostgresDatabase::Open(
    const std::string& dsn, int connections, std::optional<int> schema_version) {
  if (dsn.empty()) return absl::InvalidArgumentError("PostgreSQL connection string is empty");
  if (connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("PostgreSQL connections must be >= 1, got ", connections));
  }
  std::unique_ptr<PostgresDatabase> database(new PostgresDatabase(dsn, connections));
  // The first connection tells an unreachable server from the rest.
  try {
    std::unique_ptr<pqxx::connection> connection = database->pool_->Acquire();
    database->pool_->Release(std::move(connection), /*healthy=*/true);
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("connecting to PostgreSQL at \"", RedactedDsn(dsn), "\": ", ErrorText(error)));
  }
  absl::Status migrated = database->Migrate(schema_version.value_or(kKnownSchemaVersion));
  if (!migrated.ok()) {
    return absl::Status(migrated.code(),
                        absl::StrCat(migrated.message(), " (database \"", RedactedDsn(dsn), "\")"));
  }
  return database;
}

absl::Status PostgresDatabase::Migrate(int schema_version) {
  int version = 0;
  return Transact(Mode::kWrite, "migrating the schema", [&](PostgresTransaction& tx) {
    // Replicas starting together wait here; the first migrates, the others find it done.
    RETURN_IF_ERROR(
        tx.Exec("SELECT pg_advisory_xact_lock($1::int8)", PostgresParams().Int(kMigrationLock))
            .status());
    RETURN_IF_ERROR(
        tx.Run("CREATE TABLE IF NOT EXISTS apq_schema (version INTEGER NOT NULL)").status());
    ASSIGN_OR_RETURN(pqxx::result rows, tx.Exec("SELECT version FROM apq_schema"));
    if (rows.empty()) {
      RETURN_IF_ERROR(tx.Run("INSERT INTO apq_schema (version) VALUES (0)").status());
      version = 0;
    } else {
      version = static_cast<int>(FieldInt(rows[0][0]));
    }
    if (version > kKnownSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("database schema version ", version, " is newer than this build supports (",
                       kKnownSchemaVersion, "): run a newer apqd"));
    }
    for (int next = version + 1; next <= std::min(schema_version, kKnownSchemaVersion); ++next) {
      RETURN_IF_ERROR(tx.ExecScript(kMigrations[next - 1]));
      RETURN_IF_ERROR(
          tx.Run("UPDATE apq_schema SET version = $1::int4", PostgresParams().Int(next)).status());
      version = next;
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresDatabase::Transact(
    Mode mode, absl::string_view operation,
    const std::function<absl::Status(PostgresTransaction&)>& body) {
  std::string last_failure;
  for (int attempt = 0; attempt < kTransactAttempts; ++attempt) {
    if (attempt > 0) absl::SleepFor(absl::Milliseconds(50 << attempt));
    std::unique_ptr<pqxx::connection> connection;
    try {
      connection = pool_->Acquire();
    } catch (const std::exception& error) {
      last_failure = ErrorText(error);
      continue;
    }
    bool healthy = true;
    absl::Status status;
    bool retry = false;
    try {
      std::unique_ptr<pqxx::transaction_base> transaction;
      if (mode == Mode::kRead) {
        transaction = std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(
            *connection);
      } else {
        transaction = std::make_unique<pqxx::work>(*connection);
      }
      PostgresTransaction wrapped(*transaction, static_cast<std::string>(operation));
      status = body(wrapped);
      if (status.ok()) {
        try {
          transaction->commit();
        } catch (const pqxx::in_doubt_error& error) {
          healthy = false;
          status = absl::InternalError(
              absl::StrCat(operation, ": the commit is in doubt: ", ErrorText(error)));
        }
      } else {
        transaction->abort();
      }
    } catch (const RetryableFailure& failure) {
      retry = true;
      healthy = false;
      last_failure = failure.message;
    } catch (const std::exception& error) {
      if (IsRetryable(error)) {
        retry = true;
        healthy = false;
        last_failure = ErrorText(error);
      } else {
        healthy = false;
        status = absl::InternalError(absl::StrCat(operation, ": ", ErrorText(error)));
      }
    }
    pool_->Release(std::move(connection), healthy);
    if (!retry) return status;
  }
  return absl::UnavailableError(
      absl::StrCat(operation, ": PostgreSQL failed ", kTransactAttempts, " times: ", last_failure));
}

}  // namespace apq::server
