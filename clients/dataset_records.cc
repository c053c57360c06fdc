#include "clients/dataset_records.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "clients/command_line.h"
#include "nlohmann/json.hpp"
#include "oface/measurement_csv.h"

namespace apq::client {

using nlohmann::json;

void AddRecordsFromFile(const std::string& path, apq::v1::UploadDatasetRequest* request) {
  AddRecordsFromContent(ReadFileOrStdin(path), path, request);
}

void AddRecordsFromContent(std::string_view content, const std::string& source,
                           apq::v1::UploadDatasetRequest* request) {
  // The header without the split column begins both CSV headers (with and without it).
  if (content.rfind(oface::kMeasurementCsvHeaderWithoutSplit, 0) == 0) {
    absl::StatusOr<std::vector<oface::MeasurementRecord>> records = oface::ParseMeasurementCsv(
        absl::string_view(content.data(), content.size()), source, /*keep_unterminated_line=*/true);
    if (!records.ok()) throw UsageError{static_cast<std::string>(records.status().message())};
    for (const oface::MeasurementRecord& record : *records) {
      apq::v1::MeasurementRecord* out = request->add_records();
      out->set_config_json(record.config_json);
      out->set_accuracy(record.accuracy);
      out->set_method(record.method);
      out->set_seconds(record.seconds);
      out->set_split(record.split);
    }
    return;
  }
  const json parsed = json::parse(content, nullptr, false);
  if (!parsed.is_array()) {
    throw UsageError{absl::StrCat(source, ": neither a measurement CSV (header '",
                                  oface::kMeasurementCsvHeader, "') nor a JSON list")};
  }
  for (size_t i = 0; i < parsed.size(); ++i) {
    const json& record = parsed[i];
    const std::string what = absl::StrCat(source, ": record ", i);
    if (!record.is_object() || !record.contains("config") || !record.contains("accuracy") ||
        !record["accuracy"].is_number()) {
      throw UsageError{absl::StrCat(what, ": needs \"config\" and a numeric \"accuracy\"")};
    }
    apq::v1::MeasurementRecord* out = request->add_records();
    const json& config = record["config"];
    out->set_config_json(config.is_string() ? config.get<std::string>() : config.dump());
    out->set_accuracy(record["accuracy"].get<double>());
    if (record.contains("method")) {
      if (!record["method"].is_string()) throw UsageError{what + ": \"method\" is not text"};
      out->set_method(record["method"].get<std::string>());
    }
    if (record.contains("split")) {
      if (!record["split"].is_string()) throw UsageError{what + ": \"split\" is not text"};
      out->set_split(record["split"].get<std::string>());
    }
    if (record.contains("seconds")) {
      if (!record["seconds"].is_number()) throw UsageError{what + ": \"seconds\" is not a number"};
      out->set_seconds(record["seconds"].get<double>());
    }
  }
}

}  // namespace apq::client
