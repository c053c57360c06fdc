#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

constexpr const char* kTokenColumns =
    "id, name, role, secret_sha256, created_unix_s, created_by, revoked_unix_s";

TokenRecord ReadToken(const pqxx::row& row) {
  TokenRecord token;
  token.id = FieldBytes(row[0]);
  token.name = FieldBytes(row[1]);
  token.role = static_cast<Role>(FieldInt(row[2]));
  token.secret_sha256 = FieldBytes(row[3]);
  token.created_unix_s = FieldDouble(row[4]);
  token.created_by = FieldBytes(row[5]);
  token.revoked_unix_s = FieldDouble(row[6]);
  return token;
}

}  // namespace

absl::Status PostgresTokenStore::AddToken(const TokenRecord& token) {
  return Insert(token, /*only_first=*/false).status();
}

absl::StatusOr<bool> PostgresTokenStore::AddFirstToken(const TokenRecord& token) {
  return Insert(token, /*only_first=*/true);
}

absl::StatusOr<bool> PostgresTokenStore::Insert(const TokenRecord& token, bool only_first) {
  RETURN_IF_ERROR(store_internal::CheckToken(token));
  bool stored = false;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("adding token ", token.id),
      [&](PostgresTransaction& tx) -> absl::Status {
        stored = false;
        // Replicas adding one id (or bootstrapping) take turns: the second gets ALREADY_EXISTS
        // (or finds a token). The lock also keeps position (creation order) in commit order.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kTokens));
        if (only_first) {
          ASSIGN_OR_RETURN(const pqxx::result any, tx.Exec("SELECT 1 FROM tokens LIMIT 1"));
          if (!any.empty()) return absl::OkStatus();
        }
        ASSIGN_OR_RETURN(const pqxx::result exists, tx.Exec("SELECT 1 FROM tokens WHERE id = $1",
                                                            PostgresParams().Bytes(token.id)));
        if (!exists.empty()) return store_internal::TokenExists(token.id);
        RETURN_IF_ERROR(tx.Run(absl::StrCat("INSERT INTO tokens (", kTokenColumns,
                                            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                               PostgresParams()
                                   .Bytes(token.id)
                                   .Bytes(token.name)
                                   .Int(static_cast<int64_t>(token.role))
                                   .Bytes(token.secret_sha256)
                                   .Double(token.created_unix_s, "created_unix_s")
                                   .Bytes(token.created_by)
                                   .Double(token.revoked_unix_s, "revoked_unix_s"))
                            .status());
        stored = true;
        return absl::OkStatus();
      }));
  return stored;
}

absl::StatusOr<TokenRecord> PostgresTokenStore::GetToken(const std::string& id) {
  TokenRecord token;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading token ", id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kTokenColumns, " FROM tokens WHERE id = $1"),
                    PostgresParams().Bytes(id)));
        if (rows.empty()) return store_internal::TokenNotFound(id);
        token = ReadToken(rows[0]);
        return absl::OkStatus();
      }));
  return token;
}

absl::StatusOr<std::vector<TokenRecord>> PostgresTokenStore::ListTokens() {
  std::vector<TokenRecord> tokens;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, "listing tokens",
      [&](PostgresTransaction& tx) -> absl::Status {
        tokens.clear();
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kTokenColumns, " FROM tokens ORDER BY position")));
        for (const pqxx::row& row : rows) tokens.push_back(ReadToken(row));
        return absl::OkStatus();
      }));
  return tokens;
}

absl::Status PostgresTokenStore::RevokeToken(const std::string& id, double revoked_unix_s) {
  if (!(revoked_unix_s > 0)) {
    return absl::InvalidArgumentError("revoked_unix_s: must be a positive time");
  }
  return database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("revoking token ", id),
      [&](PostgresTransaction& tx) -> absl::Status {
        // The row stays locked until the revocation commits: of two revocations, the second
        // finds the first's and fails.
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT revoked_unix_s FROM tokens WHERE id = $1 FOR UPDATE",
                                 PostgresParams().Bytes(id)));
        if (rows.empty()) return store_internal::TokenNotFound(id);
        if (FieldDouble(rows[0][0]) > 0) return store_internal::TokenRevoked(id);
        return tx
            .Run("UPDATE tokens SET revoked_unix_s = $2 WHERE id = $1",
                 PostgresParams().Bytes(id).Double(revoked_unix_s, "revoked_unix_s"))
            .status();
      });
}

}  // namespace apq::server
