// Opens the store a location names, as apqd's and the tools' --db flag takes it: a
// postgresql:// (or postgres://) URI is a PostgreSQL database (postgres_store.h), anything
// else a SQLite file (sqlite_store.h), created if absent.
#ifndef APQ_SERVER_STORE_OPEN_STORE_H_
#define APQ_SERVER_STORE_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace apq::server {

struct StoreLocation {
  std::string location;  // A SQLite path or a PostgreSQL URI.
  // PostgreSQL only: connections kept open.
  int postgres_connections = 4;
};

// The errors of SqliteStore::Open or PostgresStore::Open (an unreachable server is
// UNAVAILABLE; a newer schema FAILED_PRECONDITION naming both versions).
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreLocation& location);

// The location for logs and messages: a PostgreSQL URI's password replaced by "***".
std::string RedactedLocation(const std::string& location);

// A location to hand to another process without its password: a PostgreSQL URI's
// "user:password@" becomes "user@" and the password is returned apart (for PGPASSWORD, which
// libpq reads); a location without one (a SQLite path) is returned whole with "".
struct LocationWithoutPassword {
  std::string location;
  std::string password;
};
LocationWithoutPassword SplitPassword(const std::string& location);

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_OPEN_STORE_H_
