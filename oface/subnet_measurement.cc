#include "oface/subnet_measurement.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "oface/rng.h"

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

absl::StatusOr<EvaluationImages> LoadEvaluationImages(const std::string& data_dir,
                                                      int calibration_images, int test_images,
                                                      uint64_t seed) {
  if (calibration_images <= 0) {
    return absl::InvalidArgumentError("calibration_images must be > 0");
  }
  if (test_images < 0) return absl::InvalidArgumentError("test_images must be >= 0");
  ASSIGN_OR_RETURN(const LabeledImages train,
                   LoadFashionMnist(data_dir, FashionMnistSplit::kTrain));
  EvaluationImages images;
  ASSIGN_OR_RETURN(images.test, LoadFashionMnist(data_dir, FashionMnistSplit::kTest, test_images));
  images.calibration = SelectImages(train, SubsetIndices(train.count, calibration_images, seed));
  return images;
}

std::vector<Genotype> SampleMeasurementConfigs(const SearchSpace& space, int count, bool quantized,
                                               uint64_t seed) {
  std::vector<Genotype> configs;
  if (count <= 0) return configs;
  std::set<Genotype> seen;
  Rng rng(seed);
  const std::vector<GeneSpec>& genes = space.genes();
  const int64_t max_draws = int64_t{100} * count;
  for (int64_t draw = 0; draw < max_draws && static_cast<int>(configs.size()) < count; ++draw) {
    Genotype genotype = space.Sample(rng);
    if (!quantized) {
      for (size_t g = 0; g < genes.size(); ++g) {
        if (IsBitsGene(genes[g])) genotype[g] = genes[g].choices.back();
      }
      if (!space.SatisfiesRules(genotype)) continue;
    }
    genotype = space.Canonical(genotype);
    if (seen.insert(genotype).second) configs.push_back(std::move(genotype));
  }
  return configs;
}

absl::StatusOr<MeasureSummary> MeasureSubnets(Supernet& supernet, const LabeledImages& calibration,
                                              const LabeledImages& test,
                                              const MeasureOptions& options) {
  if (options.count <= 0) return absl::InvalidArgumentError("count must be positive");
  if (!options.on_record) return absl::InvalidArgumentError("on_record is required");
  if (calibration.count <= 0) return absl::InvalidArgumentError("no calibration images");
  if (test.count <= 0) return absl::InvalidArgumentError("no test images");
  if (options.eval.calibration_batch_size <= 0 || options.eval.eval_batch_size <= 0) {
    return absl::InvalidArgumentError("eval: batch sizes must be > 0");
  }
  const std::string method = options.quantized ? kMeasuredQuantFromSupernet : kMeasuredFp32;
  MeasureSummary summary;
  for (const Genotype& genotype :
       SampleMeasurementConfigs(supernet.space(), options.count, options.quantized, options.seed)) {
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("the measurement job was cancelled");
    }
    MeasurementRecord record;
    record.config_json = supernet.space().ToJson(genotype);
    if (options.already_measured && options.already_measured(record.config_json)) {
      ++summary.skipped;
      continue;
    }
    RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
    supernet.SetQuantized(options.quantized);
    ASSIGN_OR_RETURN(const EvalResult result, supernet.Evaluate(calibration, test, options.eval));
    record.accuracy = result.accuracy;
    record.method = method;
    record.seconds = result.seconds;
    record.seed = options.seed;
    RETURN_IF_ERROR(options.on_record(record));
    ++summary.measured;
    summary.seconds += result.seconds;
  }
  return summary;
}

std::string MeasurementToCsvLine(const MeasurementRecord& record) {
  return absl::StrCat("\"", absl::StrReplaceAll(record.config_json, {{"\"", "\"\""}}), "\",",
                      absl::StrFormat("%.8g", record.accuracy), ",", record.method, ",",
                      absl::StrFormat("%.4f", record.seconds), ",", record.seed);
}

absl::StatusOr<MeasurementRecord> MeasurementFromCsvLine(absl::string_view line) {
  std::vector<std::string> fields;
  if (!SplitCsvLine(line, &fields)) {
    return absl::InvalidArgumentError("config_json: malformed quoting");
  }
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 5 columns (", kMeasurementCsvHeader, "), got ", fields.size()));
  }
  MeasurementRecord record;
  record.config_json = fields[0];
  if (record.config_json.empty()) return absl::InvalidArgumentError("config_json: empty");
  if (!absl::SimpleAtod(fields[1], &record.accuracy) || record.accuracy < 0 ||
      record.accuracy > 1) {
    return absl::InvalidArgumentError(absl::StrCat("accuracy: '", fields[1], "' is not in [0, 1]"));
  }
  record.method = fields[2];
  if (record.method != kMeasuredFp32 && record.method != kMeasuredQuantFromSupernet) {
    return absl::InvalidArgumentError(absl::StrCat("method: unknown '", fields[2], "'"));
  }
  if (!absl::SimpleAtod(fields[3], &record.seconds) || record.seconds < 0) {
    return absl::InvalidArgumentError(absl::StrCat("seconds: '", fields[3], "' is not a number"));
  }
  if (!absl::SimpleAtoi(fields[4], &record.seed)) {
    return absl::InvalidArgumentError(absl::StrCat("seed: '", fields[4], "' is not an integer"));
  }
  return record;
}

absl::StatusOr<std::vector<MeasurementRecord>> ReadMeasurementCsv(const std::string& path) {
  std::vector<MeasurementRecord> records;
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    if (access(path.c_str(), F_OK) != 0) return records;
    return absl::UnavailableError(absl::StrCat("cannot read ", path));
  }
  const std::string content((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
  if (content.empty()) return records;
  std::vector<absl::string_view> lines = absl::StrSplit(content, '\n');
  // The piece after the last newline is empty, or a line a kill cut short: ignored.
  lines.pop_back();
  if (lines.empty()) return records;
  if (lines[0] != kMeasurementCsvHeader) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a measurement CSV: header '",
                                                      lines[0], "', expected '",
                                                      kMeasurementCsvHeader, "'"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    absl::StatusOr<MeasurementRecord> record = MeasurementFromCsvLine(lines[i]);
    if (!record.ok()) {
      return absl::DataLossError(
          absl::StrCat(path, " line ", i + 1, ": ", record.status().message()));
    }
    records.push_back(*std::move(record));
  }
  return records;
}

absl::Status AppendMeasurementCsv(const std::string& path, const MeasurementRecord& record) {
  bool needs_header = true;
  {
    std::ifstream existing(path, std::ios::binary | std::ios::ate);
    if (existing.is_open() && existing.tellg() > 0) {
      needs_header = false;
      const std::streamoff size = existing.tellg();
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
