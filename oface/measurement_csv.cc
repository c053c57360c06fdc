#include "oface/measurement_csv.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace apq::oface {
namespace {

// Splits one CSV line into fields (RFC 4180 quoting); false on an unterminated quote or a
// quote in the middle of an unquoted field.
bool SplitCsvLine(absl::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return false;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += line[i++];
      }
      if (i < line.size() && line[i] != ',') return false;
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"') return false;
        field += line[i++];
      }
    }
    fields->push_back(field);
    if (i >= line.size()) return true;
    ++i;  // The comma.
  }
}

}  // namespace

std::string MeasurementToCsvLine(const MeasurementRecord& record) {
  return absl::StrCat("\"", absl::StrReplaceAll(record.config_json, {{"\"", "\"\""}}), "\",",
                      absl::StrFormat("%.8g", record.accuracy), ",", record.method, ",",
                      absl::StrFormat("%.4f", record.seconds), ",", record.seed, ",", record.split);
}

absl::StatusOr<MeasurementRecord> MeasurementFromCsvLine(absl::string_view line,
                                                         absl::string_view header) {
  std::vector<std::string> fields;
  if (!SplitCsvLine(line, &fields)) {
    return absl::InvalidArgumentError("config_json: malformed quoting");
  }
  const size_t columns = std::count(header.begin(), header.end(), ',') + 1;
  if (fields.size() != columns) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", columns, " columns (", header, "), got ", fields.size()));
  }
  MeasurementRecord record;
  record.config_json = fields[0];
  if (record.config_json.empty()) return absl::InvalidArgumentError("config_json: empty");
  // SimpleAtod reads "nan" and "inf" too.
  if (!absl::SimpleAtod(fields[1], &record.accuracy) || !std::isfinite(record.accuracy) ||
      record.accuracy < 0 || record.accuracy > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("accuracy: '", fields[1], "' is not a number in [0, 1]"));
  }
  record.method = fields[2];
  if (record.method != kMeasuredFp32 && record.method != kMeasuredQuantFromSupernet) {
    return absl::InvalidArgumentError(absl::StrCat("method: unknown '", fields[2], "'"));
  }
  if (!absl::SimpleAtod(fields[3], &record.seconds) || !std::isfinite(record.seconds) ||
      record.seconds < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("seconds: '", fields[3], "' is not a finite number >= 0"));
  }
  if (!absl::SimpleAtoi(fields[4], &record.seed)) {
    return absl::InvalidArgumentError(absl::StrCat("seed: '", fields[4], "' is not an integer"));
  }
  if (fields.size() == 6) {
    record.split = fields[5];
    if (!record.split.empty() && record.split != "train" && record.split != "validation" &&
        record.split != "test") {
      return absl::InvalidArgumentError(
          absl::StrCat("split: '", fields[5], "' is not train, validation, test or empty"));
    }
  }
  return record;
}

absl::StatusOr<std::vector<MeasurementRecord>> ParseMeasurementCsv(absl::string_view content,
                                                                   const std::string& source,
                                                                   bool keep_unterminated_line) {
  std::vector<MeasurementRecord> records;
  if (content.empty()) return records;
  std::vector<absl::string_view> lines = absl::StrSplit(content, '\n');
  // The piece after the last newline is empty, or a line a kill cut short.
  if (lines.back().empty() || !keep_unterminated_line) lines.pop_back();
  // Lines may end in "\r\n" (Python's csv module, Windows tools): the '\r' is no field's.
  for (absl::string_view& line : lines) absl::ConsumeSuffix(&line, "\r");
  if (lines.empty()) return records;
  if (lines[0] != kMeasurementCsvHeader && lines[0] != kMeasurementCsvHeaderWithoutSplit) {
    return absl::FailedPreconditionError(absl::StrCat(source, " is not a measurement CSV: header '",
                                                      lines[0], "', expected '",
                                                      kMeasurementCsvHeader, "'"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    absl::StatusOr<MeasurementRecord> record = MeasurementFromCsvLine(lines[i], lines[0]);
    if (!record.ok()) {
      return absl::DataLossError(
          absl::StrCat(source, " line ", i + 1, ": ", record.status().message()));
    }
    records.push_back(*std::move(record));
  }
  return records;
}

absl::StatusOr<std::vector<MeasurementRecord>> ReadMeasurementCsv(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    if (access(path.c_str(), F_OK) != 0) return std::vector<MeasurementRecord>();
    return absl::UnavailableError(absl::StrCat("cannot read ", path));
  }
  const std::string content((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
  return ParseMeasurementCsv(content, path, /*keep_unterminated_line=*/false);
}

absl::Status AppendMeasurementCsv(const std::string& path, const MeasurementRecord& record) {
  bool needs_header = true;
  {
    std::ifstream existing(path, std::ios::binary | std::ios::ate);
    if (existing.is_open() && existing.tellg() > 0) {
      needs_header = false;
      const std::streamoff size = existing.tellg();
      existing.seekg(0);
      std::string first_line;
      std::getline(existing, first_line);
      if (first_line == kMeasurementCsvHeaderWithoutSplit) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, " has no split column; write the measurements of a split to a new file"));
      }
      existing.clear();
      existing.seekg(-1, std::ios::end);
      if (existing.get() != '\n') {
        // A line cut short by a kill: drop it, so the new line starts on a line of its own.
        existing.seekg(0);
        std::string content(static_cast<size_t>(size), '\0');
        existing.read(content.data(), size);
        const size_t keep = content.rfind('\n');
        needs_header = keep == std::string::npos;
        if (truncate(path.c_str(), keep == std::string::npos ? 0 : keep + 1) != 0) {
          return absl::UnavailableError(
              absl::StrCat("cannot truncate the cut-short line of ", path));
        }
      }
    }
  }
  std::ofstream file(path, std::ios::binary | std::ios::app);
  if (!file.is_open()) return absl::UnavailableError(absl::StrCat("cannot open ", path));
  if (needs_header) file << kMeasurementCsvHeader << '\n';
  file << MeasurementToCsvLine(record) << '\n';
  file.flush();
  if (!file.good()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace apq::oface
