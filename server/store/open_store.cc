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

LocationWithoutPassword SplitPassword(const std::string& location) {
  LocationWithoutPassword split{location, ""};
  if (!PostgresStore::IsPostgresLocation(location)) return split;
  const size_t scheme = location.find("://");
  const size_t at = location.find('@', scheme + 3);
  const size_t colon = location.find(':', scheme + 3);
  if (at == std::string::npos || colon == std::string::npos || colon > at) return split;
  split.password = location.substr(colon + 1, at - colon - 1);
  split.location.erase(colon, at - colon);
  return split;
}

}  // namespace apq::server
