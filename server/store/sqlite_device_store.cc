#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

constexpr const char* kTableColumns =
    "device, version, format, entries, uploaded_unix_s, sha256, description";

// Reads kTableColumns.
TableVersionRecord ReadTableVersion(const Statement& row) {
  TableVersionRecord table;
  table.device = row.ColumnText(0);
  table.version = row.ColumnInt64(1);
  table.format = row.ColumnInt(2);
  table.entries = row.ColumnInt64(3);
  table.uploaded_unix_s = row.ColumnDouble(4);
  table.sha256 = row.ColumnText(5);
  table.description = row.ColumnText(6);
  return table;
}

}  // namespace

absl::StatusOr<int64_t> SqliteDeviceStore::AddTableVersion(const TableVersionRecord& table) {
  RETURN_IF_ERROR(store_internal::CheckTableVersion(table));
  const std::string operation = absl::StrCat("adding a table version for device ", table.device);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  int64_t version = 0;
  {
    ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT COALESCE(MAX(version), 0) + 1 "
                                                         "FROM device_tables WHERE device = ?1"));
    select.BindText(1, table.device);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) return absl::InternalError(absl::StrCat(operation, ": no version number"));
    version = select.ColumnInt64(0);
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare(absl::StrCat("INSERT INTO device_tables (", kTableColumns,
                                                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")));
    insert.BindText(1, table.device);
    insert.BindInt64(2, version);
    insert.BindInt64(3, table.format);
    insert.BindInt64(4, table.entries);
    insert.BindDouble(5, table.uploaded_unix_s, "uploaded_unix_s");
    insert.BindText(6, table.sha256);
    insert.BindText(7, table.description);
    RETURN_IF_ERROR(insert.Run(operation));
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare("INSERT INTO table_files (device, version, name, content) "
                                       "VALUES (?1, ?2, ?3, ?4)"));
    for (const TableFileRecord& file : table.files) {
      insert.BindText(1, table.device);
      insert.BindInt64(2, version);
      insert.BindText(3, file.name);
      insert.BindBlob(4, file.content);
      RETURN_IF_ERROR(insert.Run(operation));
      insert.Reset();
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return version;
}

absl::StatusOr<std::vector<std::string>> SqliteDeviceStore::ListDevices() {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT DISTINCT device FROM device_tables ORDER BY device"));
  std::vector<std::string> devices;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing devices"));
    if (!row) break;
    devices.push_back(select.ColumnText(0));
  }
  return devices;
}

absl::StatusOr<bool> SqliteDeviceStore::DeviceKnown(const std::string& device) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT 1 FROM device_tables WHERE device = ?1"));
  select.BindText(1, device);
  return select.Step(absl::StrCat("looking up device ", device));
}

absl::StatusOr<std::vector<TableVersionRecord>> SqliteDeviceStore::ListTableVersions(
    const std::string& device) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(
      Statement select,
      database_.Prepare(absl::StrCat("SELECT ", kTableColumns,
                                     " FROM device_tables WHERE device = ?1 ORDER BY version")));
  select.BindText(1, device);
  std::vector<TableVersionRecord> versions;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("listing tables of device ", device)));
    if (!row) break;
    versions.push_back(ReadTableVersion(select));
  }
  if (versions.empty()) return store_internal::DeviceNotFound(device);
  return versions;
}

absl::StatusOr<TableVersionRecord> SqliteDeviceStore::GetTableVersion(const std::string& device,
                                                                      int64_t version) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table version must be >= 0 (0: latest), got ", version));
  }
  const std::string operation =
      absl::StrCat("reading table version ", version, " of device ", device);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/false, operation));
  TableVersionRecord table;
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare(absl::StrCat(
                         "SELECT ", kTableColumns, " FROM device_tables WHERE device = ?1",
                         version == 0 ? " ORDER BY version DESC LIMIT 1" : " AND version = ?2")));
    select.BindText(1, device);
    if (version != 0) select.BindInt64(2, version);
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) {
      ASSIGN_OR_RETURN(bool known, DeviceKnown(device));
      return store_internal::TableVersionNotFound(device, version, known);
    }
    table = ReadTableVersion(select);
  }
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT name, content FROM table_files "
                                       "WHERE device = ?1 AND version = ?2 ORDER BY rowid"));
    select.BindText(1, device);
    select.BindInt64(2, table.version);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step(operation));
      if (!row) break;
      table.files.push_back(TableFileRecord{select.ColumnText(0), select.ColumnBlob(1)});
    }
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return table;
}

}  // namespace apq::server
