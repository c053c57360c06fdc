// Measurement records (a subnet's config and its measured accuracy) and their CSV form: what
// measurement jobs (oface/subnet_measurement.h) write and what the predictors' datasets are
// imported from. Free of LibTorch, so that clients can read the files.
#ifndef APQ_OFACE_MEASUREMENT_CSV_H_
#define APQ_OFACE_MEASUREMENT_CSV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace apq::oface {

// How a record's accuracy was measured.
inline constexpr char kMeasuredFp32[] = "fp32";
// The quantization-aware supernet's weights at the config's bit policy, without fine-tuning.
inline constexpr char kMeasuredQuantFromSupernet[] = "quant-from-supernet";

struct MeasurementRecord {
  // SearchSpace::ToJson of the canonical genotype. For fp32 records the bits genes of the
  // active slots are at their highest choice (bits take no part in an fp32 measurement).
  std::string config_json;
  double accuracy = 0.0;  // Fraction of the split's images classified correctly.
  std::string method;     // kMeasuredFp32 or kMeasuredQuantFromSupernet.
  double seconds = 0.0;   // Wall time of BN recalibration + evaluation.
  uint64_t seed = 0;      // The job's seed (config sampling).
  // The images it was measured on: "validation" or "test" (oface/fashion_mnist.h DataSplit
  // names), or empty when not recorded (files written before splits were).
  std::string split;
};

// CSV of records: this header, then one line per record. config_json is quoted (RFC 4180:
// double quotes doubled); accuracy with 8 significant digits, seconds with 4 decimals. Files
// with the earlier header, without the split column, are still read (split empty).
inline constexpr char kMeasurementCsvHeader[] = "config_json,accuracy,method,seconds,seed,split";
inline constexpr char kMeasurementCsvHeaderWithoutSplit[] =
    "config_json,accuracy,method,seconds,seed";
std::string MeasurementToCsvLine(const MeasurementRecord& record);
// A line of a file whose header is `header` (one of the two above). INVALID_ARGUMENT naming
// the column for a malformed line: not as many columns as the header, an accuracy that is
// not a finite number in [0, 1], seconds that are not a finite number >= 0, an unknown
// method or split, a seed that is not an integer.
absl::StatusOr<MeasurementRecord> MeasurementFromCsvLine(
    absl::string_view line, absl::string_view header = kMeasurementCsvHeader);

// Every record of a CSV held in memory; `source` names it in errors (with the line). An
// unterminated last line is a write cut short and ignored, unless `keep_unterminated_line` (a file
// written by hand, whose last line may lack its newline). Errors as ReadMeasurementCsv.
absl::StatusOr<std::vector<MeasurementRecord>> ParseMeasurementCsv(absl::string_view content,
                                                                   const std::string& source,
                                                                   bool keep_unterminated_line);

// Every record of the CSV file at `path`; an empty list when the file does not exist or is
// empty. FAILED_PRECONDITION naming the file when its header is neither header above;
// DATA_LOSS naming the file and line for a malformed line other than an unterminated last
// line (a write cut short by a kill), which is ignored.
absl::StatusOr<std::vector<MeasurementRecord>> ReadMeasurementCsv(const std::string& path);

// Appends `record` as one line (and the header first when the file is new or empty), flushed
// before returning. UNAVAILABLE naming the file when it cannot be written;
// FAILED_PRECONDITION when the file has the header without the split column.
absl::Status AppendMeasurementCsv(const std::string& path, const MeasurementRecord& record);

}  // namespace apq::oface

#endif  // APQ_OFACE_MEASUREMENT_CSV_H_
