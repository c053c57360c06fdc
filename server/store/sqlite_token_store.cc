#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

constexpr const char* kTokenColumns =
    "id, name, role, secret_sha256, created_unix_s, created_by, revoked_unix_s";

TokenRecord ReadToken(const Statement& row) {
  TokenRecord token;
  token.id = row.ColumnText(0);
  token.name = row.ColumnText(1);
  token.role = static_cast<Role>(row.ColumnInt(2));
  token.secret_sha256 = row.ColumnText(3);
  token.created_unix_s = row.ColumnDouble(4);
  token.created_by = row.ColumnText(5);
  token.revoked_unix_s = row.ColumnDouble(6);
  return token;
}

}  // namespace

absl::Status SqliteTokenStore::AddToken(const TokenRecord& token) {
  return Insert(token, /*only_first=*/false).status();
}

absl::StatusOr<bool> SqliteTokenStore::AddFirstToken(const TokenRecord& token) {
  return Insert(token, /*only_first=*/true);
}

absl::StatusOr<bool> SqliteTokenStore::Insert(const TokenRecord& token, bool only_first) {
  RETURN_IF_ERROR(store_internal::CheckToken(token));
  const std::string operation = absl::StrCat("adding token ", token.id);
  absl::MutexLock lock(&database_.mutex());
  // A write transaction holds the database's write lock from its start: another process
  // bootstrapping the same file waits, then finds this token.
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  if (only_first) {
    ASSIGN_OR_RETURN(Statement any, database_.Prepare("SELECT 1 FROM tokens LIMIT 1"));
    ASSIGN_OR_RETURN(const bool held, any.Step(operation));
    if (held) return false;
  }
  ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT 1 FROM tokens WHERE id = ?1"));
  select.BindText(1, token.id);
  ASSIGN_OR_RETURN(const bool exists, select.Step(operation));
  if (exists) return store_internal::TokenExists(token.id);
  ASSIGN_OR_RETURN(Statement insert,
                   database_.Prepare(absl::StrCat("INSERT INTO tokens (", kTokenColumns,
                                                  ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")));
  insert.BindText(1, token.id);
  insert.BindText(2, token.name);
  insert.BindInt64(3, static_cast<int64_t>(token.role));
  insert.BindText(4, token.secret_sha256);
  insert.BindDouble(5, token.created_unix_s, "created_unix_s");
  insert.BindText(6, token.created_by);
  insert.BindDouble(7, token.revoked_unix_s, "revoked_unix_s");
  RETURN_IF_ERROR(insert.Run(operation));
  RETURN_IF_ERROR(transaction.Commit(operation));
  return true;
}

absl::StatusOr<TokenRecord> SqliteTokenStore::GetToken(const std::string& id) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select, database_.Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                                                    " FROM tokens WHERE id = ?1")));
  select.BindText(1, id);
  ASSIGN_OR_RETURN(const bool row, select.Step(absl::StrCat("reading token ", id)));
  if (!row) return store_internal::TokenNotFound(id);
  return ReadToken(select);
}

absl::StatusOr<std::vector<TokenRecord>> SqliteTokenStore::ListTokens() {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select, database_.Prepare(absl::StrCat(
                                         "SELECT ", kTokenColumns, " FROM tokens ORDER BY rowid")));
  std::vector<TokenRecord> tokens;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, select.Step("listing tokens"));
    if (!row) break;
    tokens.push_back(ReadToken(select));
  }
  return tokens;
}

absl::Status SqliteTokenStore::RevokeToken(const std::string& id, double revoked_unix_s) {
  if (!(revoked_unix_s > 0)) {
    return absl::InvalidArgumentError("revoked_unix_s: must be a positive time");
  }
  const std::string operation = absl::StrCat("revoking token ", id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT revoked_unix_s FROM tokens WHERE id = ?1"));
  select.BindText(1, id);
  ASSIGN_OR_RETURN(const bool row, select.Step(operation));
  if (!row) return store_internal::TokenNotFound(id);
  if (select.ColumnDouble(0) > 0) return store_internal::TokenRevoked(id);
  ASSIGN_OR_RETURN(Statement update,
                   database_.Prepare("UPDATE tokens SET revoked_unix_s = ?2 WHERE id = ?1"));
  update.BindText(1, id);
  update.BindDouble(2, revoked_unix_s, "revoked_unix_s");
  RETURN_IF_ERROR(update.Run(operation));
  return transaction.Commit(operation);
}

}  // namespace apq::server
