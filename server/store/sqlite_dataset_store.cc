#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

constexpr const char* kDatasetSelect =
    "SELECT d.name, d.space, d.description, d.created_unix_s, "
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name), "
    // "fp32" is oface::kMeasuredFp32; the store does not depend on oface.
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name AND m.method = 'fp32'), "
    "(SELECT m.split FROM measurements m WHERE m.dataset = d.name LIMIT 1) "
    "FROM datasets d ";

DatasetRecord ReadDataset(const Statement& row) {
  DatasetRecord dataset;
  dataset.name = row.ColumnText(0);
  dataset.space = row.ColumnText(1);
  dataset.description = row.ColumnText(2);
  dataset.created_unix_s = row.ColumnDouble(3);
  dataset.records = row.ColumnInt64(4);
  dataset.fp32_records = row.ColumnInt64(5);
  dataset.split = row.ColumnText(6);
  return dataset;
}

}  // namespace

absl::Status SqliteDatasetStore::CheckDatasetKnown(const std::string& dataset,
                                                   const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT 1 FROM datasets WHERE name = ?1"));
  select.BindText(1, dataset);
  ASSIGN_OR_RETURN(bool exists, select.Step(operation));
  if (!exists) return store_internal::DatasetNotFound(dataset);
  return absl::OkStatus();
}

namespace sqlite_internal {

absl::Status InsertMeasurements(SqliteDatabase& database, const std::string& dataset,
                                const std::vector<MeasurementRow>& rows,
                                const std::string& operation) {
  {
    ASSIGN_OR_RETURN(Statement held,
                     database.Prepare("SELECT split FROM measurements WHERE dataset = ?1 LIMIT 1"));
    held.BindText(1, dataset);
    ASSIGN_OR_RETURN(bool has_rows, held.Step(operation));
    const std::string held_split = has_rows ? held.ColumnText(0) : std::string();
    RETURN_IF_ERROR(
        store_internal::CheckRowsSplit(dataset, rows, has_rows ? &held_split : nullptr));
  }
  {
    ASSIGN_OR_RETURN(Statement select,
                     database.Prepare("SELECT 1 FROM measurements "
                                      "WHERE dataset = ?1 AND method = ?2 AND config_json = ?3"));
    for (size_t i = 0; i < rows.size(); ++i) {
      select.BindText(1, dataset);
      select.BindText(2, rows[i].method);
      select.BindText(3, rows[i].config_json);
      ASSIGN_OR_RETURN(bool stored, select.Step(operation));
      if (stored) return store_internal::MeasurementStored(dataset, i, rows[i]);
      select.Reset();
    }
  }
  ASSIGN_OR_RETURN(
      Statement insert,
      database.Prepare("INSERT INTO measurements (dataset, config_json, accuracy, method, "
                       "seconds, seed, created_unix_s, split) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  for (const MeasurementRow& row : rows) {
    insert.BindText(1, dataset);
    insert.BindText(2, row.config_json);
    insert.BindDouble(3, row.accuracy, "accuracy");
    insert.BindText(4, row.method);
    insert.BindDouble(5, row.seconds, "seconds");
    // The seed's bits, read back by the same cast.
    insert.BindInt64(6, static_cast<int64_t>(row.seed));
    insert.BindDouble(7, row.created_unix_s, "created_unix_s");
    insert.BindText(8, row.split);
    RETURN_IF_ERROR(insert.Run(operation));
    insert.Reset();
  }
  return absl::OkStatus();
}

}  // namespace sqlite_internal

absl::Status SqliteDatasetStore::CreateDataset(const DatasetRecord& dataset,
                                               const std::vector<MeasurementRow>& rows) {
  RETURN_IF_ERROR(store_internal::CheckDataset(dataset));
  RETURN_IF_ERROR(store_internal::CheckMeasurementRows(rows));
  const std::string operation = absl::StrCat("creating dataset ", dataset.name);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  {
    ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT 1 FROM datasets WHERE name = ?1"));
    select.BindText(1, dataset.name);
    ASSIGN_OR_RETURN(bool exists, select.Step(operation));
    if (exists) return store_internal::DatasetExists(dataset.name);
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare("INSERT INTO datasets (name, space, description, "
                                       "created_unix_s) VALUES (?1, ?2, ?3, ?4)"));
    insert.BindText(1, dataset.name);
    insert.BindText(2, dataset.space);
    insert.BindText(3, dataset.description);
    insert.BindDouble(4, dataset.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(operation));
  }
  RETURN_IF_ERROR(sqlite_internal::InsertMeasurements(database_, dataset.name, rows, operation));
  return transaction.Commit(operation);
}

absl::StatusOr<DatasetRecord> SqliteDatasetStore::GetDataset(const std::string& name) {
  const std::string operation = absl::StrCat("reading dataset ", name);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat(kDatasetSelect, "WHERE d.name = ?1")));
  select.BindText(1, name);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return store_internal::DatasetNotFound(name);
  return ReadDataset(select);
}

absl::StatusOr<std::vector<DatasetRecord>> SqliteDatasetStore::ListDatasets() {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat(kDatasetSelect, "ORDER BY d.name")));
  std::vector<DatasetRecord> datasets;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing datasets"));
    if (!row) break;
    datasets.push_back(ReadDataset(select));
  }
  return datasets;
}

absl::Status SqliteDatasetStore::AddMeasurements(const std::string& dataset,
                                                 const std::vector<MeasurementRow>& rows) {
  RETURN_IF_ERROR(store_internal::CheckMeasurementRows(rows));
  const std::string operation = absl::StrCat("adding measurements to dataset ", dataset);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  RETURN_IF_ERROR(CheckDatasetKnown(dataset, operation));
  RETURN_IF_ERROR(sqlite_internal::InsertMeasurements(database_, dataset, rows, operation));
  return transaction.Commit(operation);
}

absl::StatusOr<std::vector<MeasurementRow>> SqliteDatasetStore::ListMeasurements(
    const std::string& dataset, const std::optional<std::string>& method) {
  const std::string operation = absl::StrCat("listing the measurements of dataset ", dataset);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/false, operation));
  RETURN_IF_ERROR(CheckDatasetKnown(dataset, operation));
  std::vector<MeasurementRow> rows;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        database_.Prepare("SELECT id, config_json, accuracy, method, seconds, seed, "
                          "created_unix_s, split FROM measurements WHERE dataset = ?1 AND "
                          "(?2 IS NULL OR method = ?2) ORDER BY id"));
    select.BindText(1, dataset);
    if (method.has_value()) {
      select.BindText(2, *method);
    } else {
      select.BindNull(2);
    }
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      MeasurementRow measurement;
      measurement.id = select.ColumnInt64(0);
      measurement.config_json = select.ColumnText(1);
      measurement.accuracy = select.ColumnDouble(2);
      measurement.method = select.ColumnText(3);
      measurement.seconds = select.ColumnDouble(4);
      measurement.seed = static_cast<uint64_t>(select.ColumnInt64(5));
      measurement.created_unix_s = select.ColumnDouble(6);
      measurement.split = select.ColumnText(7);
      rows.push_back(std::move(measurement));
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return rows;
}

}  // namespace apq::server
