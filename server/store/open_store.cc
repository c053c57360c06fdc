#include "server/store/open_store.h"

#include "server/store/postgres_database.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace apq::server {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreLocation& location) {
  if (PostgresStore::IsPostgresLocation(location.location)) {
    PostgresStore::Options options;
    options.dsn = location.location;
    options.connections = location.postgres_connections;
    return PostgresStore::Open(options);
  }
  SqliteStore::Options options;
  options.path = location.location;
  return SqliteStore::Open(options);
}

std::string RedactedLocation(const std::string& location) {
  if (!PostgresStore::IsPostgresLocation(location)) return location;
  return PostgresDatabase::RedactedDsn(location);
}

}  // namespace apq::server
