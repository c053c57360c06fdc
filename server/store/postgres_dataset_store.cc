#include <pqxx/pqxx>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

constexpr const char* kDatasetSelect =
    "SELECT d.name, d.space, d.description, d.created_unix_s, "
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name), "
    // "fp32" is oface::kMeasuredFp32; the store does not depend on oface.
    "(SELECT COUNT(*) FROM measurements m WHERE m.dataset = d.name "
    "AND m.method = 'fp32'::bytea), "
    "(SELECT m.split FROM measurements m WHERE m.dataset = d.name LIMIT 1) "
    "FROM datasets d ";

DatasetRecord ReadDataset(const pqxx::row& row) {
  DatasetRecord dataset;
  dataset.name = FieldBytes(row[0]);
  dataset.space = FieldBytes(row[1]);
  dataset.description = FieldBytes(row[2]);
  dataset.created_unix_s = FieldDouble(row[3]);
  dataset.records = FieldInt(row[4]);
  dataset.fp32_records = FieldInt(row[5]);
  dataset.split = FieldBytes(row[6]);
  return dataset;
}

absl::Status CheckDatasetKnown(PostgresTransaction& tx, const std::string& dataset) {
  ASSIGN_OR_RETURN(const pqxx::result rows, tx.Exec("SELECT 1 FROM datasets WHERE name = $1",
                                                    PostgresParams().Bytes(dataset)));
  if (rows.empty()) return store_internal::DatasetNotFound(dataset);
  return absl::OkStatus();
}

}  // namespace

absl::Status PostgresDatasetStore::CreateDataset(const DatasetRecord& dataset,
                                                 const std::vector<MeasurementRow>& rows) {
  RETURN_IF_ERROR(store_internal::CheckDataset(dataset));
  RETURN_IF_ERROR(store_internal::CheckMeasurementRows(rows));
  return database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("creating dataset ", dataset.name),
      [&](PostgresTransaction& tx) -> absl::Status {
        // Replicas creating one name take turns: the second gets ALREADY_EXISTS.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kDatasets));
        ASSIGN_OR_RETURN(const pqxx::result exists,
                         tx.Exec("SELECT 1 FROM datasets WHERE name = $1",
                                 PostgresParams().Bytes(dataset.name)));
        if (!exists.empty()) return store_internal::DatasetExists(dataset.name);
        RETURN_IF_ERROR(tx.Run("INSERT INTO datasets (name, space, description, created_unix_s) "
                               "VALUES ($1, $2, $3, $4)",
                               PostgresParams()
                                   .Bytes(dataset.name)
                                   .Bytes(dataset.space)
                                   .Bytes(dataset.description)
                                   .Double(dataset.created_unix_s, "created_unix_s"))
                            .status());
        return postgres_internal::InsertMeasurements(tx, dataset.name, rows);
      });
}

absl::StatusOr<DatasetRecord> PostgresDatasetStore::GetDataset(const std::string& name) {
  DatasetRecord dataset;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading dataset ", name),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat(kDatasetSelect, "WHERE d.name = $1"),
                                 PostgresParams().Bytes(name)));
        if (rows.empty()) return store_internal::DatasetNotFound(name);
        dataset = ReadDataset(rows[0]);
        return absl::OkStatus();
      }));
  return dataset;
}

absl::StatusOr<std::vector<DatasetRecord>> PostgresDatasetStore::ListDatasets() {
  std::vector<DatasetRecord> datasets;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, "listing datasets",
      [&](PostgresTransaction& tx) -> absl::Status {
        datasets.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat(kDatasetSelect, "ORDER BY d.name")));
        for (const pqxx::row& row : rows) datasets.push_back(ReadDataset(row));
        return absl::OkStatus();
      }));
  return datasets;
}

absl::Status PostgresDatasetStore::AddMeasurements(const std::string& dataset,
                                                   const std::vector<MeasurementRow>& rows) {
  RETURN_IF_ERROR(store_internal::CheckMeasurementRows(rows));
  return database_.Transact(PostgresDatabase::Mode::kWrite,
                            absl::StrCat("adding measurements to dataset ", dataset),
                            [&](PostgresTransaction& tx) -> absl::Status {
                              RETURN_IF_ERROR(tx.Lock(PostgresLock::kDatasets));
                              RETURN_IF_ERROR(CheckDatasetKnown(tx, dataset));
                              return postgres_internal::InsertMeasurements(tx, dataset, rows);
                            });
}

absl::StatusOr<std::vector<MeasurementRow>> PostgresDatasetStore::ListMeasurements(
    const std::string& dataset, const std::optional<std::string>& method) {
  std::vector<MeasurementRow> rows;
  // The dataset's existence and its rows come from one snapshot.
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("listing the measurements of dataset ", dataset),
      [&](PostgresTransaction& tx) -> absl::Status {
        rows.clear();
        RETURN_IF_ERROR(CheckDatasetKnown(tx, dataset));
        PostgresParams params;
        params.Bytes(dataset);
        if (method.has_value()) {
          params.Bytes(*method);
        } else {
          params.Null();
        }
        ASSIGN_OR_RETURN(const pqxx::result stored,
                         tx.Exec("SELECT id, config_json, accuracy, method, seconds, seed, "
                                 "created_unix_s, split FROM measurements WHERE dataset = $1 AND "
                                 "($2::bytea IS NULL OR method = $2) ORDER BY id",
                                 params));
        rows.reserve(stored.size());
        for (const pqxx::row& row : stored) {
          MeasurementRow measurement;
          measurement.id = FieldInt(row[0]);
          measurement.config_json = FieldBytes(row[1]);
          measurement.accuracy = FieldDouble(row[2]);
          measurement.method = FieldBytes(row[3]);
          measurement.seconds = FieldDouble(row[4]);
          measurement.seed = static_cast<uint64_t>(FieldInt(row[5]));
          measurement.created_unix_s = FieldDouble(row[6]);
          measurement.split = FieldBytes(row[7]);
          rows.push_back(std::move(measurement));
        }
        return absl::OkStatus();
      }));
  return rows;
}

namespace postgres_internal {

absl::Status InsertMeasurements(PostgresTransaction& tx, const std::string& dataset,
                                const std::vector<MeasurementRow>& rows) {
  {
    ASSIGN_OR_RETURN(const pqxx::result held,
                     tx.Exec("SELECT split FROM measurements WHERE dataset = $1 LIMIT 1",
                             PostgresParams().Bytes(dataset)));
    const std::string held_split = held.empty() ? std::string() : FieldBytes(held[0][0]);
    RETURN_IF_ERROR(
        store_internal::CheckRowsSplit(dataset, rows, held.empty() ? nullptr : &held_split));
  }
  if (rows.empty()) return absl::OkStatus();
  {
    // One query for the rows' (method, config) pairs already stored; the error names the
    // first such row, as a row-by-row check would.
    std::vector<std::string> methods;
    std::vector<std::string> configs;
    methods.reserve(rows.size());
    configs.reserve(rows.size());
    for (const MeasurementRow& row : rows) {
      methods.push_back(row.method);
      configs.push_back(row.config_json);
    }
    ASSIGN_OR_RETURN(
        const pqxx::result stored,
        tx.Exec("SELECT method, config_json FROM measurements WHERE dataset = $1 "
                "AND (method, config_json) IN "
                "(SELECT * FROM unnest($2::bytea[], $3::bytea[]))",
                PostgresParams().Bytes(dataset).BytesArray(methods).BytesArray(configs)));
    if (!stored.empty()) {
      std::set<std::pair<std::string, std::string>> pairs;
      for (const pqxx::row& row : stored) pairs.emplace(FieldBytes(row[0]), FieldBytes(row[1]));
      for (size_t i = 0; i < rows.size(); ++i) {
        if (pairs.count({rows[i].method, rows[i].config_json}) > 0) {
          return store_internal::MeasurementStored(dataset, i, rows[i]);
        }
      }
    }
  }
  // COPY assigns the ids (BIGSERIAL) in the rows' order.
  std::vector<PostgresParams> values;
  values.reserve(rows.size());
  for (const MeasurementRow& row : rows) {
    PostgresParams& value = values.emplace_back();
    value.Bytes(dataset)
        .Bytes(row.config_json)
        .Double(row.accuracy, "accuracy")
        .Bytes(row.method)
        .Double(row.seconds, "seconds")
        // The seed's bits, read back by the same cast.
        .Int(static_cast<int64_t>(row.seed))
        .Double(row.created_unix_s, "created_unix_s")
        .Bytes(row.split);
  }
  return tx.Copy("measurements",
                 {"dataset", "config_json", "accuracy", "method", "seconds", "seed",
                  "created_unix_s", "split"},
                 values);
}

}  // namespace postgres_internal

}  // namespace apq::server
