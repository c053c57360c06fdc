#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

constexpr const char* kPredictorColumns =
    "space, version, kind, metrics_json, dataset, created_unix_s, is_default";

// Reads kPredictorColumns, then the artifact if `with_artifact`.
PredictorRecord ReadPredictor(const pqxx::row& row, bool with_artifact) {
  PredictorRecord predictor;
  predictor.space = FieldBytes(row[0]);
  predictor.version = FieldBytes(row[1]);
  predictor.kind = FieldBytes(row[2]);
  predictor.metrics_json = FieldBytes(row[3]);
  predictor.dataset = FieldBytes(row[4]);
  predictor.created_unix_s = FieldDouble(row[5]);
  predictor.is_default = FieldBool(row[6]);
  if (with_artifact) predictor.artifact = FieldBytes(row[7]);
  return predictor;
}

// Clears the space's default flag, inside the caller's transaction (which holds
// PostgresLock::kPredictors, so that no other default is being set meanwhile).
absl::Status ClearDefault(PostgresTransaction& tx, const std::string& space) {
  return tx
      .Run("UPDATE predictors SET is_default = FALSE WHERE space = $1 AND is_default",
           PostgresParams().Bytes(space))
      .status();
}

}  // namespace

namespace postgres_internal {

absl::StatusOr<bool> PredictorStored(PostgresTransaction& transaction, const std::string& space,
                                     const std::string& version) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   transaction.Exec("SELECT 1 FROM predictors WHERE space = $1 AND version = $2",
                                    PostgresParams().Bytes(space).Bytes(version)));
  return !rows.empty();
}

absl::Status InsertPredictor(PostgresTransaction& transaction, const PredictorRecord& predictor) {
  RETURN_IF_ERROR(store_internal::CheckPredictor(predictor));
  ASSIGN_OR_RETURN(const bool exists,
                   PredictorStored(transaction, predictor.space, predictor.version));
  if (exists) return store_internal::PredictorExists(predictor);
  if (predictor.is_default) RETURN_IF_ERROR(ClearDefault(transaction, predictor.space));
  return transaction
      .Run(absl::StrCat("INSERT INTO predictors (", kPredictorColumns,
                        ", artifact) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
           PostgresParams()
               .Bytes(predictor.space)
               .Bytes(predictor.version)
               .Bytes(predictor.kind)
               .Bytes(predictor.metrics_json)
               .Bytes(predictor.dataset)
               .Double(predictor.created_unix_s, "created_unix_s")
               .Bool(predictor.is_default)
               .Bytes(predictor.artifact))
      .status();
}

absl::Status MakeDefault(PostgresTransaction& transaction, const std::string& space,
                         const std::string& version) {
  // Cleared first: the one-default index is checked row by row.
  RETURN_IF_ERROR(ClearDefault(transaction, space));
  return transaction
      .Run("UPDATE predictors SET is_default = TRUE WHERE space = $1 AND version = $2",
           PostgresParams().Bytes(space).Bytes(version))
      .status();
}

}  // namespace postgres_internal

absl::Status PostgresPredictorStore::AddPredictor(const PredictorRecord& predictor) {
  return database_.Transact(
      PostgresDatabase::Mode::kWrite,
      absl::StrCat("adding predictor ", predictor.version, " of space ", predictor.space),
      [&](PostgresTransaction& tx) -> absl::Status {
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kPredictors));
        return postgres_internal::InsertPredictor(tx, predictor);
      });
}

absl::StatusOr<std::vector<PredictorRecord>> PostgresPredictorStore::ListPredictors(
    const std::string& space) {
  std::vector<PredictorRecord> predictors;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("listing the predictors of ", space),
      [&](PostgresTransaction& tx) -> absl::Status {
        predictors.clear();
        // Oldest first: position is the insertion order (SQLite's rowid).
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kPredictorColumns,
                                              " FROM predictors WHERE space = $1 "
                                              "ORDER BY position"),
                                 PostgresParams().Bytes(space)));
        for (const pqxx::row& row : rows) {
          predictors.push_back(ReadPredictor(row, /*with_artifact=*/false));
        }
        return absl::OkStatus();
      }));
  return predictors;
}

absl::StatusOr<PredictorRecord> PostgresPredictorStore::GetPredictor(const std::string& space,
                                                                     const std::string& version) {
  PredictorRecord predictor;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading predictor ", version),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kPredictorColumns,
                                              ", artifact FROM predictors "
                                              "WHERE space = $1 AND version = $2"),
                                 PostgresParams().Bytes(space).Bytes(version)));
        if (rows.empty()) return store_internal::PredictorNotFound(space, version);
        predictor = ReadPredictor(rows[0], /*with_artifact=*/true);
        return absl::OkStatus();
      }));
  return predictor;
}

absl::StatusOr<PredictorRecord> PostgresPredictorStore::GetDefaultPredictor(
    const std::string& space) {
  PredictorRecord predictor;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading the default predictor of ", space),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kPredictorColumns,
                                              ", artifact FROM predictors "
                                              "WHERE space = $1 AND is_default"),
                                 PostgresParams().Bytes(space)));
        if (rows.empty()) return store_internal::NoDefaultPredictor(space);
        predictor = ReadPredictor(rows[0], /*with_artifact=*/true);
        return absl::OkStatus();
      }));
  return predictor;
}

absl::StatusOr<std::string> PostgresPredictorStore::GetDefaultPredictorVersion(
    const std::string& space) {
  std::string version;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading the default predictor of ", space),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT version FROM predictors WHERE space = $1 AND is_default",
                                 PostgresParams().Bytes(space)));
        if (rows.empty()) return store_internal::NoDefaultPredictor(space);
        version = FieldBytes(rows[0][0]);
        return absl::OkStatus();
      }));
  return version;
}

absl::Status PostgresPredictorStore::SetDefaultPredictor(const std::string& space,
                                                         const std::string& version) {
  return database_.Transact(
      PostgresDatabase::Mode::kWrite,
      absl::StrCat("making predictor ", version, " the default of space ", space),
      [&](PostgresTransaction& tx) -> absl::Status {
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kPredictors));
        ASSIGN_OR_RETURN(const bool exists, postgres_internal::PredictorStored(tx, space, version));
        if (!exists) return store_internal::PredictorNotFound(space, version);
        return postgres_internal::MakeDefault(tx, space, version);
      });
}

absl::Status PostgresPredictorStore::ClearDefaultPredictor(const std::string& space) {
  return database_.Transact(PostgresDatabase::Mode::kWrite,
                            absl::StrCat("clearing the default predictor of space ", space),
                            [&](PostgresTransaction& tx) -> absl::Status {
                              // Locked like the writes that set a default, so that one committed
                              // just before is cleared too.
                              RETURN_IF_ERROR(tx.Lock(PostgresLock::kPredictors));
                              return ClearDefault(tx, space);
                            });
}

}  // namespace apq::server
