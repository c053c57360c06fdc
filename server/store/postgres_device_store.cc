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

constexpr const char* kTableColumns =
    "device, version, format, entries, uploaded_unix_s, sha256, description";

// Reads kTableColumns.
TableVersionRecord ReadTableVersion(const pqxx::row& row) {
  TableVersionRecord table;
  table.device = FieldBytes(row[0]);
  table.version = FieldInt(row[1]);
  table.format = static_cast<int>(FieldInt(row[2]));
  table.entries = FieldInt(row[3]);
  table.uploaded_unix_s = FieldDouble(row[4]);
  table.sha256 = FieldBytes(row[5]);
  table.description = FieldBytes(row[6]);
  return table;
}

}  // namespace

absl::StatusOr<int64_t> PostgresDeviceStore::AddTableVersion(const TableVersionRecord& table) {
  RETURN_IF_ERROR(store_internal::CheckTableVersion(table));
  const std::string operation = absl::StrCat("adding a table version for device ", table.device);
  int64_t version = 0;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, operation, [&](PostgresTransaction& tx) -> absl::Status {
        // Versions are numbered from the stored ones: uploads of every replica take turns.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kTableVersions));
        ASSIGN_OR_RETURN(const pqxx::result next,
                         tx.Exec("SELECT COALESCE(MAX(version), 0) + 1 FROM device_tables "
                                 "WHERE device = $1",
                                 PostgresParams().Bytes(table.device)));
        if (next.empty())
          return absl::InternalError(absl::StrCat(operation, ": no version number"));
        version = FieldInt(next[0][0]);
        RETURN_IF_ERROR(tx.Run(absl::StrCat("INSERT INTO device_tables (", kTableColumns,
                                            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                               PostgresParams()
                                   .Bytes(table.device)
                                   .Int(version)
                                   .Int(table.format)
                                   .Int(table.entries)
                                   .Double(table.uploaded_unix_s, "uploaded_unix_s")
                                   .Bytes(table.sha256)
                                   .Bytes(table.description))
                            .status());
        // position keeps the files in the order given (GetTableVersion reads them back in it).
        for (size_t i = 0; i < table.files.size(); ++i) {
          RETURN_IF_ERROR(tx.Run("INSERT INTO table_files (device, version, position, name, "
                                 "content) VALUES ($1, $2, $3, $4, $5)",
                                 PostgresParams()
                                     .Bytes(table.device)
                                     .Int(version)
                                     .Int(static_cast<int64_t>(i))
                                     .Bytes(table.files[i].name)
                                     .Bytes(table.files[i].content))
                              .status());
        }
        return absl::OkStatus();
      }));
  return version;
}

absl::StatusOr<std::vector<std::string>> PostgresDeviceStore::ListDevices() {
  std::vector<std::string> devices;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, "listing devices",
      [&](PostgresTransaction& tx) -> absl::Status {
        devices.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT DISTINCT device FROM device_tables ORDER BY device"));
        for (const pqxx::row& row : rows) devices.push_back(FieldBytes(row[0]));
        return absl::OkStatus();
      }));
  return devices;
}

absl::StatusOr<std::vector<TableVersionRecord>> PostgresDeviceStore::ListTableVersions(
    const std::string& device) {
  std::vector<TableVersionRecord> versions;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("listing tables of device ", device),
      [&](PostgresTransaction& tx) -> absl::Status {
        versions.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kTableColumns,
                                              " FROM device_tables WHERE device = $1 "
                                              "ORDER BY version"),
                                 PostgresParams().Bytes(device)));
        for (const pqxx::row& row : rows) versions.push_back(ReadTableVersion(row));
        return absl::OkStatus();
      }));
  if (versions.empty()) return store_internal::DeviceNotFound(device);
  return versions;
}

absl::StatusOr<TableVersionRecord> PostgresDeviceStore::GetTableVersion(const std::string& device,
                                                                        int64_t version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table version must be >= 0 (0: latest), got ", version));
  }
  const std::string operation =
      absl::StrCat("reading table version ", version, " of device ", device);
  TableVersionRecord table;
  // The version and its files come from one snapshot.
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, operation, [&](PostgresTransaction& tx) -> absl::Status {
        table = TableVersionRecord();
        PostgresParams params;
        params.Bytes(device);
        if (version != 0) params.Int(version);
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(
                absl::StrCat("SELECT ", kTableColumns, " FROM device_tables WHERE device = $1",
                             version == 0 ? " ORDER BY version DESC LIMIT 1" : " AND version = $2"),
                params));
        if (rows.empty()) {
          ASSIGN_OR_RETURN(const pqxx::result known,
                           tx.Exec("SELECT 1 FROM device_tables WHERE device = $1 LIMIT 1",
                                   PostgresParams().Bytes(device)));
          return store_internal::TableVersionNotFound(device, version, !known.empty());
        }
        table = ReadTableVersion(rows[0]);
        ASSIGN_OR_RETURN(const pqxx::result files,
                         tx.Exec("SELECT name, content FROM table_files "
                                 "WHERE device = $1 AND version = $2 ORDER BY position",
                                 PostgresParams().Bytes(device).Int(table.version)));
        for (const pqxx::row& file : files) {
          table.files.push_back(TableFileRecord{FieldBytes(file[0]), FieldBytes(file[1])});
        }
        return absl::OkStatus();
      }));
  return table;
}

}  // namespace apq::server
