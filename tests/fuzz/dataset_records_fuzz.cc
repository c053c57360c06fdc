// Fuzzes what `apq upload-dataset` reads from a user's file (a measurement CSV or a JSON list
// of records): it adds records or refuses with a UsageError, and throws nothing else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "clients/command_line.h"
#include "clients/dataset_records.h"
#include "proto/apq/v1/apq.pb.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  apq::v1::UploadDatasetRequest request;
  try {
    apq::client::AddRecordsFromContent(content, "records.json", &request);
  } catch (const apq::client::UsageError& error) {
    FUZZ_CHECK(error.message.find("records.json") != std::string::npos);
    return 0;
  }
  return 0;
}
