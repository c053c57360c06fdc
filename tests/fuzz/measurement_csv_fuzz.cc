// Fuzzes the measurement CSV reader (dataset uploads and measure_subnets' resumable files).
// Properties: errors are INVALID_ARGUMENT naming the source; keeping an unterminated last line
// only ever adds that line's record; every record read writes a line that reads back to a
// record that writes the same line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "oface/measurement_csv.h"
#include "tests/fuzz/fuzz_check.h"

using apq::oface::MeasurementRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view content(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<std::vector<MeasurementRecord>> strict =
      apq::oface::ParseMeasurementCsv(content, "upload.csv", /*keep_unterminated_line=*/false);
  const absl::StatusOr<std::vector<MeasurementRecord>> lenient =
      apq::oface::ParseMeasurementCsv(content, "upload.csv", /*keep_unterminated_line=*/true);
  for (const auto* result : {&strict, &lenient}) {
    if (result->ok()) continue;
    FUZZ_CHECK(absl::StrContains(result->status().message(), "upload.csv"));
  }
  if (strict.ok() && lenient.ok()) {
    FUZZ_CHECK(lenient->size() == strict->size() || lenient->size() == strict->size() + 1);
  }
  if (!lenient.ok()) return 0;
  for (const MeasurementRecord& record : *lenient) {
    const std::string line = apq::oface::MeasurementToCsvLine(record);
    absl::string_view without_newline = line;
    absl::ConsumeSuffix(&without_newline, "\n");
    const absl::StatusOr<MeasurementRecord> again =
        apq::oface::MeasurementFromCsvLine(without_newline);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(apq::oface::MeasurementToCsvLine(*again) == line);
  }
  return 0;
}
