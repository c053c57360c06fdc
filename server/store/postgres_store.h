// A Store in a PostgreSQL database, for a team that runs several apqd replicas over one
// database (apqd --db postgresql://...): every record kind, the same contracts as the SQLite
// backend (store_conformance_test runs on both).
//
// Beyond the Store contracts: opening applies the schema migrations the database lacks (the
// applied count in table apq_schema; replicas that start together migrate once); a method
// whose connection is lost before it commits runs again on a new connection (see
// PostgresDatabase::Transact); methods run concurrently, each on a pooled connection.
#ifndef APQ_SERVER_STORE_POSTGRES_STORE_H_
#define APQ_SERVER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace apq::server {

class PostgresDatabase;
class PostgresJobStore;
class PostgresDeviceStore;
class PostgresDatasetStore;
class PostgresPredictorStore;
class PostgresTrainingJobStore;
class PostgresTokenStore;
class PostgresArtifactStore;
class PostgresMeasurementRunStore;

class PostgresStore final : public Store {
 public:
  struct Options {
    // A libpq connection URI (postgresql://user@host:port/database?...) or keyword string.
    std::string dsn;
    // Connections kept open; each method holds one for its transaction.
    int connections = 4;
    // Migrate only up to this version (tests of migrations); default: SchemaVersion().
    std::optional<int> schema_version;
  };

  // The schema version this build creates and understands.
  static int SchemaVersion();

  // Whether `location` names a PostgreSQL database (postgresql:// or postgres://) rather
  // than a SQLite file.
  static bool IsPostgresLocation(absl::string_view location);

  // Connects and brings the schema up to date. INVALID_ARGUMENT for an empty dsn or
  // connections < 1; UNAVAILABLE when the server cannot be reached; FAILED_PRECONDITION if
  // the database's schema is newer than SchemaVersion() (naming both); INTERNAL otherwise.
  // Errors name the database, never its password.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options);

  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;
  ~PostgresStore() override;

  JobStore& jobs() override;
  DeviceStore& devices() override;
  DatasetStore& datasets() override;
  PredictorStore& predictors() override;
  TrainingJobStore& training_jobs() override;
  TokenStore& tokens() override;
  ArtifactStore& artifacts() override;
  MeasurementRunStore& measurement_runs() override;

 private:
  explicit PostgresStore(std::unique_ptr<PostgresDatabase> database);

  const std::unique_ptr<PostgresDatabase> database_;  // Outlives the stores below.
  const std::unique_ptr<PostgresJobStore> jobs_;
  const std::unique_ptr<PostgresDeviceStore> devices_;
  const std::unique_ptr<PostgresDatasetStore> datasets_;
  const std::unique_ptr<PostgresPredictorStore> predictors_;
  const std::unique_ptr<PostgresTrainingJobStore> training_jobs_;
  const std::unique_ptr<PostgresTokenStore> tokens_;
  const std::unique_ptr<PostgresArtifactStore> artifacts_;
  const std::unique_ptr<PostgresMeasurementRunStore> measurement_runs_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_POSTGRES_STORE_H_
