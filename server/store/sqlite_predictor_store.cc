#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

constexpr const char* kPredictorColumns =
    "space, version, kind, metrics_json, dataset, created_unix_s, is_default";

// Reads kPredictorColumns, then the artifact if `with_artifact`.
PredictorRecord ReadPredictor(const Statement& row, bool with_artifact) {
  PredictorRecord predictor;
  predictor.space = row.ColumnText(0);
  predictor.version = row.ColumnText(1);
  predictor.kind = row.ColumnText(2);
  predictor.metrics_json = row.ColumnText(3);
  predictor.dataset = row.ColumnText(4);
  predictor.created_unix_s = row.ColumnDouble(5);
  predictor.is_default = row.ColumnInt(6) != 0;
  if (with_artifact) predictor.artifact = row.ColumnBlob(7);
  return predictor;
}

// Clears the space's default flag, inside the caller's transaction.
absl::Status ClearDefault(SqliteDatabase& database, const std::string& space,
                          const std::string& operation)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(database.mutex()) {
  ASSIGN_OR_RETURN(Statement clear,
                   database.Prepare("UPDATE predictors SET is_default = 0 WHERE space = ?1"));
  clear.BindText(1, space);
  return clear.Run(operation);
}

}  // namespace

namespace sqlite_internal {

absl::StatusOr<bool> PredictorStored(SqliteDatabase& database, const std::string& space,
                                     const std::string& version, const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select,
                   database.Prepare("SELECT 1 FROM predictors WHERE space = ?1 AND version = ?2"));
  select.BindText(1, space);
  select.BindText(2, version);
  return select.Step(operation);
}

absl::Status InsertPredictor(SqliteDatabase& database, const PredictorRecord& predictor,
                             const std::string& operation) {
  RETURN_IF_ERROR(store_internal::CheckPredictor(predictor));
  ASSIGN_OR_RETURN(bool exists,
                   PredictorStored(database, predictor.space, predictor.version, operation));
  if (exists) return store_internal::PredictorExists(predictor);
  if (predictor.is_default) RETURN_IF_ERROR(ClearDefault(database, predictor.space, operation));
  ASSIGN_OR_RETURN(Statement insert, database.Prepare(absl::StrCat(
                                         "INSERT INTO predictors (", kPredictorColumns,
                                         ", artifact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")));
  insert.BindText(1, predictor.space);
  insert.BindText(2, predictor.version);
  insert.BindText(3, predictor.kind);
  insert.BindText(4, predictor.metrics_json);
  insert.BindText(5, predictor.dataset);
  insert.BindDouble(6, predictor.created_unix_s, "created_unix_s");
  insert.BindInt64(7, predictor.is_default ? 1 : 0);
  insert.BindBlob(8, predictor.artifact);
  return insert.Run(operation);
}

absl::Status MakeDefault(SqliteDatabase& database, const std::string& space,
                         const std::string& version, const std::string& operation) {
  // Cleared first: the one-default index is checked row by row.
  RETURN_IF_ERROR(ClearDefault(database, space, operation));
  ASSIGN_OR_RETURN(Statement update, database.Prepare("UPDATE predictors SET is_default = 1 "
                                                      "WHERE space = ?1 AND version = ?2"));
  update.BindText(1, space);
  update.BindText(2, version);
  return update.Run(operation);
}

}  // namespace sqlite_internal

absl::Status SqlitePredictorStore::AddPredictor(const PredictorRecord& predictor) {
  const std::string operation =
      absl::StrCat("adding predictor ", predictor.version, " of space ", predictor.space);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  RETURN_IF_ERROR(sqlite_internal::InsertPredictor(database_, predictor, operation));
  return transaction.Commit(operation);
}

absl::StatusOr<std::vector<PredictorRecord>> SqlitePredictorStore::ListPredictors(
    const std::string& space) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                                  " FROM predictors WHERE space = ?1 "
                                                  "ORDER BY rowid")));
  select.BindText(1, space);
  std::vector<PredictorRecord> predictors;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("listing the predictors of ", space)));
    if (!row) break;
    predictors.push_back(ReadPredictor(select, /*with_artifact=*/false));
  }
  return predictors;
}

absl::StatusOr<PredictorRecord> SqlitePredictorStore::GetPredictor(const std::string& space,
                                                                   const std::string& version) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                                  ", artifact FROM predictors "
                                                  "WHERE space = ?1 AND version = ?2")));
  select.BindText(1, space);
  select.BindText(2, version);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading predictor ", version)));
  if (!row) return store_internal::PredictorNotFound(space, version);
  return ReadPredictor(select, /*with_artifact=*/true);
}

absl::StatusOr<PredictorRecord> SqlitePredictorStore::GetDefaultPredictor(
    const std::string& space) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kPredictorColumns,
                                                  ", artifact FROM predictors "
                                                  "WHERE space = ?1 AND is_default = 1")));
  select.BindText(1, space);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading the default predictor of ", space)));
  if (!row) return store_internal::NoDefaultPredictor(space);
  return ReadPredictor(select, /*with_artifact=*/true);
}

absl::StatusOr<std::string> SqlitePredictorStore::GetDefaultPredictorVersion(
    const std::string& space) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT version FROM predictors "
                                                       "WHERE space = ?1 AND is_default = 1"));
  select.BindText(1, space);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading the default predictor of ", space)));
  if (!row) return store_internal::NoDefaultPredictor(space);
  return select.ColumnText(0);
}

absl::Status SqlitePredictorStore::SetDefaultPredictor(const std::string& space,
                                                       const std::string& version) {
  const std::string operation =
      absl::StrCat("making predictor ", version, " the default of space ", space);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(bool exists,
                   sqlite_internal::PredictorStored(database_, space, version, operation));
  if (!exists) return store_internal::PredictorNotFound(space, version);
  RETURN_IF_ERROR(sqlite_internal::MakeDefault(database_, space, version, operation));
  return transaction.Commit(operation);
}

absl::Status SqlitePredictorStore::ClearDefaultPredictor(const std::string& space) {
  absl::MutexLock lock(&database_.mutex());
  return ClearDefault(database_, space,
                      absl::StrCat("clearing the default predictor of space ", space));
}

}  // namespace apq::server
