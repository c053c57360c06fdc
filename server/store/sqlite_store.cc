#include "server/store/sqlite_store.h"

#include <utility>

#include "common/status_macros.h"
#include "server/store/sqlite_database.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {

int SqliteStore::SchemaVersion() { return SqliteDatabase::SchemaVersion(); }

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const Options& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDatabase> database,
                   SqliteDatabase::Open(options.path, options.busy_timeout_ms));
  return std::unique_ptr<Store>(new SqliteStore(std::move(database)));
}

SqliteStore::SqliteStore(std::unique_ptr<SqliteDatabase> database)
    : database_(std::move(database)),
      jobs_(std::make_unique<SqliteJobStore>(*database_)),
      devices_(std::make_unique<SqliteDeviceStore>(*database_)),
      datasets_(std::make_unique<SqliteDatasetStore>(*database_)),
      predictors_(std::make_unique<SqlitePredictorStore>(*database_)),
      training_jobs_(std::make_unique<SqliteTrainingJobStore>(*database_)),
      tokens_(std::make_unique<SqliteTokenStore>(*database_)),
      artifacts_(std::make_unique<SqliteArtifactStore>(*database_)),
      measurement_runs_(std::make_unique<SqliteMeasurementRunStore>(*database_)) {}

// Defined here, where the stores' types are complete; members are destroyed in reverse
// order, so the database closes last.
SqliteStore::~SqliteStore() = default;

JobStore& SqliteStore::jobs() { return *jobs_; }
DeviceStore& SqliteStore::devices() { return *devices_; }
DatasetStore& SqliteStore::datasets() { return *datasets_; }
PredictorStore& SqliteStore::predictors() { return *predictors_; }
TrainingJobStore& SqliteStore::training_jobs() { return *training_jobs_; }
TokenStore& SqliteStore::tokens() { return *tokens_; }
ArtifactStore& SqliteStore::artifacts() { return *artifacts_; }
MeasurementRunStore& SqliteStore::measurement_runs() { return *measurement_runs_; }

}  // namespace apq::server
