// The product's Store: one SQLite database file in WAL mode holding every record kind.
//
// Beyond the Store contracts: opening applies the schema migrations the file lacks, each in
// its own transaction, so a file written by an older build opens and keeps working. Several
// processes may open one file; SQLite serializes their writes, waiting up to busy_timeout_ms
// for a lock (then INTERNAL, "database is locked"). Within one process all methods of all
// record kinds run one at a time on one connection.
#ifndef APQ_SERVER_STORE_SQLITE_STORE_H_
#define APQ_SERVER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace apq::server {

class SqliteDatabase;
class SqliteJobStore;
class SqliteDeviceStore;
class SqliteDatasetStore;
class SqlitePredictorStore;
class SqliteTrainingJobStore;
class SqliteTokenStore;
class SqliteArtifactStore;
class SqliteMeasurementRunStore;

class SqliteStore final : public Store {
 public:
  struct Options {
    std::string path;  // SQLite file, created if absent.
    int busy_timeout_ms = 5000;
  };

  // The schema version this build creates and understands.
  static int SchemaVersion();

  // Opens or creates the database and brings its schema up to date. INVALID_ARGUMENT for an
  // empty path or a negative timeout; FAILED_PRECONDITION if the file's schema is newer than
  // SchemaVersion(); INTERNAL if SQLite cannot open, read or write it. Errors name the file.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;

  JobStore& jobs() override;
  DeviceStore& devices() override;
  DatasetStore& datasets() override;
  PredictorStore& predictors() override;
  TrainingJobStore& training_jobs() override;
  TokenStore& tokens() override;
  ArtifactStore& artifacts() override;
  MeasurementRunStore& measurement_runs() override;

 private:
  explicit SqliteStore(std::unique_ptr<SqliteDatabase> database);

  const std::unique_ptr<SqliteDatabase> database_;  // Outlives the stores below.
  const std::unique_ptr<SqliteJobStore> jobs_;
  const std::unique_ptr<SqliteDeviceStore> devices_;
  const std::unique_ptr<SqliteDatasetStore> datasets_;
  const std::unique_ptr<SqlitePredictorStore> predictors_;
  const std::unique_ptr<SqliteTrainingJobStore> training_jobs_;
  const std::unique_ptr<SqliteTokenStore> tokens_;
  const std::unique_ptr<SqliteArtifactStore> artifacts_;
  const std::unique_ptr<SqliteMeasurementRunStore> measurement_runs_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_SQLITE_STORE_H_
