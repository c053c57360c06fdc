#include "server/store/postgres_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"

namespace apq::server {

int PostgresStore::SchemaVersion() { return PostgresDatabase::SchemaVersion(); }

bool PostgresStore::IsPostgresLocation(absl::string_view location) {
  return absl::StartsWith(location, "postgresql://") || absl::StartsWith(location, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> PostgresStore::Open(const Options& options) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<PostgresDatabase> database,
      PostgresDatabase::Open(options.dsn, options.connections, options.schema_version));
  return std::unique_ptr<Store>(new PostgresStore(std::move(database)));
}

PostgresStore::PostgresStore(std::unique_ptr<PostgresDatabase> database)
    : database_(std::move(database)),
      jobs_(std::make_unique<PostgresJobStore>(*database_)),
      devices_(std::make_unique<PostgresDeviceStore>(*database_)),
      datasets_(std::make_unique<PostgresDatasetStore>(*database_)),
      predictors_(std::make_unique<PostgresPredictorStore>(*database_)),
      training_jobs_(std::make_unique<PostgresTrainingJobStore>(*database_)),
      tokens_(std::make_unique<PostgresTokenStore>(*database_)),
      artifacts_(std::make_unique<PostgresArtifactStore>(*database_)),
      measurement_runs_(std::make_unique<PostgresMeasurementRunStore>(*database_)) {}

// Defined here, where the stores' types are complete; members are destroyed in reverse
// order, so the connections close last.
PostgresStore::~PostgresStore() = default;

JobStore& PostgresStore::jobs() { return *jobs_; }
DeviceStore& PostgresStore::devices() { return *devices_; }
DatasetStore& PostgresStore::datasets() { return *datasets_; }
PredictorStore& PostgresStore::predictors() { return *predictors_; }
TrainingJobStore& PostgresStore::training_jobs() { return *training_jobs_; }
TokenStore& PostgresStore::tokens() { return *tokens_; }
ArtifactStore& PostgresStore::artifacts() { return *artifacts_; }
MeasurementRunStore& PostgresStore::measurement_runs() { return *measurement_runs_; }

}  // namespace apq::server
