// The PostgreSQL connections shared by the PostgreSQL backend's stores of every record kind:
// a pool of libpqxx connections to one database, its schema migrations (numbered like
// SQLite's, the applied count kept in apq_schema), and the transaction and parameter helpers
// the stores use. Internal to the PostgreSQL backend (postgres_store.h) and its tests.
//
// Conventions of the schema: every string column is BYTEA, so strings read back byte for byte
// (PostgreSQL's TEXT refuses NUL bytes and bytes that are not UTF-8) and sort by their bytes,
// as SQLite's BINARY collation does. Parameters travel as text: strings as bytea hex
// ("\x..."), doubles with 17 significant digits (they read back bit for bit), and SQL names
// a parameter's type where PostgreSQL cannot infer it ($1::bytea, $2::float8, ...).
//
// Thread safety: every method may be called from any thread; each transaction holds one
// pooled connection for its whole run. Several processes (replicas) may open one database:
// writes that must not interleave take row locks (SELECT ... FOR UPDATE) or the advisory
// locks of PostgresLock inside their transaction.
#ifndef APQ_SERVER_STORE_POSTGRES_DATABASE_H_
#define APQ_SERVER_STORE_POSTGRES_DATABASE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace pqxx {
class field;
class result;
class row;
class transaction_base;
}  // namespace pqxx

namespace apq::server {

// The parameters of one statement, $1, $2, ... in the order they are added. Adding never
// fails: a NaN is remembered and returned by the statement that uses the parameters, as
// INVALID_ARGUMENT naming the field, and nothing is run.
class PostgresParams {
 public:
  PostgresParams() = default;

  // Any bytes, for a BYTEA column (the SQL may need "$n::bytea" where the type is not
  // inferred, e.g. "$n::bytea IS NULL").
  PostgresParams& Bytes(absl::string_view value);
  PostgresParams& Int(int64_t value);
  PostgresParams& Bool(bool value);
  // -0.0 is stored as 0.0 (the store contract). `field` names the value in the NaN error.
  PostgresParams& Double(double value, absl::string_view field);
  PostgresParams& OptionalDouble(const std::optional<double>& value, absl::string_view field);
  // A NULL of any type (the SQL casts it where the type matters).
  PostgresParams& Null();
  // An int8[] ("$n::int8[]").
  PostgresParams& IntArray(const std::vector<int64_t>& values);
  // A bytea[] ("$n::bytea[]").
  PostgresParams& BytesArray(const std::vector<std::string>& values);

  // The values as libpq takes them (nullopt for NULL), and the first NaN's error.
  const std::vector<std::optional<std::string>>& values() const { return values_; }
  const absl::Status& error() const { return error_; }

 private:
  std::vector<std::optional<std::string>> values_;
  absl::Status error_;
};

// Reading result fields (libpqxx text format). NULL reads as empty, 0 or 0.0.
std::string FieldBytes(const pqxx::field& field);  // BYTEA, hex-decoded.
int64_t FieldInt(const pqxx::field& field);
double FieldDouble(const pqxx::field& field);
std::optional<double> FieldOptionalDouble(const pqxx::field& field);
bool FieldBool(const pqxx::field& field);
bool FieldIsNull(const pqxx::field& field);

// The advisory locks (pg_advisory_xact_lock) that serialise the writes which assign numbers
// from the rows already stored, across every connection and replica. Held until the
// transaction ends.
enum class PostgresLock : int64_t {
  kJobIds = 1,             // jobs.seq (ids "job-<n>", consecutive in a sweep)
  kTrainingJobIds = 2,     // training_jobs.seq
  kTableVersions = 3,      // device_tables.version
  kPredictors = 4,         // predictors (one default per space)
  kDatasets = 5,           // datasets and their measurements' (method, config) uniqueness
  kTokens = 6,             // tokens
  kArtifacts = 7,          // artifacts' (kind, key)
  kMeasurementRunIds = 8,  // measurement_runs.seq
};

// One transaction on one pooled connection (see PostgresDatabase::Transact).
class PostgresTransaction {
 public:
  PostgresTransaction(pqxx::transaction_base& transaction, std::string operation)
      : transaction_(transaction), operation_(std::move(operation)) {}
  PostgresTransaction(const PostgresTransaction&) = delete;
  PostgresTransaction& operator=(const PostgresTransaction&) = delete;

  // Runs one statement with `params` ($1, ...). INVALID_ARGUMENT for a NaN parameter;
  // INTERNAL with PostgreSQL's message for a failure (the transaction is then aborted:
  // return the error). Connection losses and serialization failures are reported to
  // Transact, which retries the whole transaction.
  absl::StatusOr<pqxx::result> Exec(absl::string_view sql,
                                    const PostgresParams& params = PostgresParams());
  // Runs a statement that returns no rows and returns how many rows it changed.
  absl::StatusOr<int64_t> Run(absl::string_view sql,
                              const PostgresParams& params = PostgresParams());
  // Runs several statements without parameters (schema migrations).
  absl::Status ExecScript(absl::string_view sql);
  // Takes an advisory lock held until the transaction ends.
  absl::Status Lock(PostgresLock lock);
  // Bulk insert by COPY: each row's values in `columns` order (the same kinds of values as
  // statement parameters: BYTEA hex text, numbers, NULL). INVALID_ARGUMENT for a NaN.
  absl::Status Copy(absl::string_view table, const std::vector<std::string>& columns,
                    const std::vector<PostgresParams>& rows);

  const std::string& operation() const { return operation_; }

 private:
  pqxx::transaction_base& transaction_;
  const std::string operation_;
};

class PostgresDatabase {
 public:
  enum class Mode {
    kRead,   // REPEATABLE READ, READ ONLY: every statement sees one snapshot.
    kWrite,  // READ COMMITTED: writers lock the rows (or advisory locks) they depend on.
  };

  // The schema version this build creates and understands.
  static int SchemaVersion();

  // Connects (`dsn`: a libpq connection string or postgresql:// URI; unless it says otherwise,
  // with a 10 s connect timeout and TCP keepalives and user timeout that end a dead
  // connection within about 30 s), applies the schema
  // migrations the database lacks up to `schema_version` (default: SchemaVersion()) under an
  // advisory lock (replicas starting together migrate once), and keeps up to `connections`
  // connections. INVALID_ARGUMENT for an empty dsn or connections < 1; UNAVAILABLE when the
  // server cannot be reached (the message names the host, never the password);
  // FAILED_PRECONDITION when the database's schema is newer than SchemaVersion() (naming
  // both versions); INTERNAL for other failures.
  static absl::StatusOr<std::unique_ptr<PostgresDatabase>> Open(
      const std::string& dsn, int connections, std::optional<int> schema_version = std::nullopt);

  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;
  ~PostgresDatabase();

  // Runs `body` in one transaction and commits it if `body` returns OK (otherwise rolls back
  // and returns its error). When the connection is lost or PostgreSQL reports a
  // serialization failure or deadlock before the commit, the transaction is rolled back and
  // `body` runs again on a fresh connection (up to 3 more times, then UNAVAILABLE): `body`
  // must start from scratch each time (reset what it fills). A connection lost during the
  // commit itself is INTERNAL ("in doubt"): the write may or may not have happened.
  absl::Status Transact(Mode mode, absl::string_view operation,
                        const std::function<absl::Status(PostgresTransaction&)>& body);

  // The dsn with the password, if any, replaced by "***", for messages.
  static std::string RedactedDsn(const std::string& dsn);

 private:
  class Pool;
  PostgresDatabase(std::string dsn, int connections);

  absl::Status Migrate(int schema_version);

  const std::string dsn_;
  const std::unique_ptr<Pool> pool_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_POSTGRES_DATABASE_H_
