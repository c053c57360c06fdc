// Devices and the versions of their cost tables. The contract shared by every store is in
// store.h.
#ifndef APQ_SERVER_STORE_DEVICE_STORE_H_
#define APQ_SERVER_STORE_DEVICE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

// A device exists once it has a table version; versions are immutable.
class DeviceStore {
 public:
  virtual ~DeviceStore() = default;

  // Stores a new version of a device's table, with its files in the order given, and returns
  // its number: 1, 2, ... per device (table.version is ignored). INVALID_ARGUMENT for an
  // empty device name or two files with one name.
  virtual absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) = 0;

  // Every device name, ascending.
  virtual absl::StatusOr<std::vector<std::string>> ListDevices() = 0;

  // A device's versions ascending, without file contents. NOT_FOUND for an unknown device.
  virtual absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) = 0;

  // One version with its files, in the order they were given; version 0 means the latest.
  // INVALID_ARGUMENT for a negative version; NOT_FOUND naming the device and the version
  // asked for when either is unknown.
  virtual absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                             int64_t version) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_DEVICE_STORE_H_
