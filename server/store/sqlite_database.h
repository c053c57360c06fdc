// The SQLite connection shared by the SQLite backend's stores of every record kind: one file
// in WAL mode, its schema migrations, the SQL function apq_network_hash(config_json) that
// keys candidate rows (registered before the migrations, which use it), a cache of prepared
// statements, and the statement and transaction helpers the stores use. Internal to the
// SQLite backend (sqlite_store.h) and the store bench (which replays an older schema's
// writes on it).
//
// Thread safety: the connection is used by one thread at a time: every call below except
// Open and the destructor requires mutex() held. Several processes may open one file; SQLite
// serializes their writes (waiting up to the busy timeout for a lock).
#ifndef APQ_SERVER_STORE_SQLITE_DATABASE_H_
#define APQ_SERVER_STORE_SQLITE_DATABASE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/records.h"

struct sqlite3;
struct sqlite3_stmt;

namespace apq::server {

class SqliteDatabase {
 public:
  class Statement;
  class Transaction;

  // The schema version this build creates and understands.
  static int SchemaVersion();

  // Opens or creates the database and applies the schema migrations the file lacks up to
  // `schema_version` (default: SchemaVersion(); a lower one is for tests that need an older
  // file), each in its own transaction. INVALID_ARGUMENT for an empty path or a negative
  // timeout; FAILED_PRECONDITION if the file's schema is newer than SchemaVersion();
  // INTERNAL if SQLite cannot open, read or write it. Errors name the file.
  static absl::StatusOr<std::unique_ptr<SqliteDatabase>> Open(
      const std::string& path, int busy_timeout_ms,
      std::optional<int> schema_version = std::nullopt);

  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;
  // Finalizes the statements and closes the file (checkpointing the WAL).
  ~SqliteDatabase();

  absl::Mutex& mutex() ABSL_LOCK_RETURNED(mutex_) { return mutex_; }

  // The cached prepared statement for `sql`, reset and unbound when the result is destroyed.
  absl::StatusOr<Statement> Prepare(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // BEGIN IMMEDIATE for a write (takes the write lock at once, so a writer never fails to
  // upgrade a read lock), deferred BEGIN for a consistent multi-statement read.
  absl::StatusOr<Transaction> Begin(bool write, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The next value of the `seq` column of `table` (1 for an empty table), inside the
  // caller's write transaction; `table` is one of the schema's, never user input.
  absl::StatusOr<int64_t> NextSequence(absl::string_view table, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Runs SQL that returns no rows, uncached.
  absl::Status Exec(absl::string_view sql, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The rowid of the latest successful INSERT on this connection.
  int64_t LastInsertRowid() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Rows changed by the latest INSERT, UPDATE or DELETE on this connection.
  int Changes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

 private:
  explicit SqliteDatabase(sqlite3* db) : db_(db) {}

  // Configures the connection and migrates the schema up to `schema_version`.
  absl::Status Initialize(int busy_timeout_ms, int schema_version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status Migrate(int schema_version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<int> ReadSchemaVersion() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  absl::Mutex mutex_;
  sqlite3* const db_;  // Used only with mutex_ held.
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mutex_);
};

// A cached prepared statement in use: binds parameters, steps, and on destruction resets
// and unbinds it so that it holds no read snapshot and no stale values. A failed bind is
// remembered and returned by the next Step, so callers bind without checking each one.
// Bound text and blobs are not copied: they must outlive the statement's last Step.
class SqliteDatabase::Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  // Parameters are numbered from 1.
  void BindInt64(int index, int64_t value);
  void BindText(int index, absl::string_view value);
  // Binds a zero-length blob, not NULL, for an empty value.
  void BindBlob(int index, absl::string_view value);
  void BindNull(int index);
  // `field` names the value in the INVALID_ARGUMENT error for a NaN.
  void BindDouble(int index, double value, absl::string_view field);
  void BindOptionalDouble(int index, const std::optional<double>& value, absl::string_view field);
  // Binds accuracy, latency_ms, energy_mj, size_mb and bitops of `candidate` to parameters
  // first .. first + 4; `what` names the record in errors.
  void BindMetrics(int first, const CandidateRecord& candidate, absl::string_view what);

  // Runs the statement to its next row: true if there is one, false when done.
  absl::StatusOr<bool> Step(absl::string_view operation);
  // Steps a statement that returns no rows.
  absl::Status Run(absl::string_view operation);
  // Resets for another execution with new bindings.
  void Reset();

  // Result columns, numbered from 0. Text and blobs are copied; NULL reads as empty.
  int64_t ColumnInt64(int column) const;
  int ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::optional<double> ColumnOptionalDouble(int column) const;
  bool ColumnIsNull(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  void Check(int rc);

  sqlite3* const db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_error_;
};

// One transaction; rolls back on destruction unless committed.
class SqliteDatabase::Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  absl::Status Commit(absl::string_view operation);

 private:
  friend class SqliteDatabase;
  explicit Transaction(sqlite3* db) : db_(db) {}

  sqlite3* db_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_SQLITE_DATABASE_H_
