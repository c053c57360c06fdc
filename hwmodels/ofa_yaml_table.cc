#include "hwmodels/ofa_yaml_table.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::hwmodels {
namespace {

constexpr std::string_view kSuffix = "_lookup_table.yaml";

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view StripTrailingSpace(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

std::string Str(std::string_view text) { return std::string(text); }

// The resolution of "<dir>/<r>_lookup_table.yaml"; r is a positive decimal without leading
// zeros, so one resolution has one spelling.
absl::StatusOr<int> ResolutionFromFileName(const std::string& file) {
  std::string_view base = file;
  if (const size_t slash = base.find_last_of('/'); slash != std::string_view::npos) {
    base.remove_prefix(slash + 1);
  }
  const absl::Status mismatch = absl::InvalidArgumentError(
      absl::StrCat(file, ": file name is not <resolution>", Str(kSuffix)));
  if (!EndsWith(base, kSuffix)) return mismatch;
  const std::string_view digits = base.substr(0, base.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 5 || digits[0] == '0' ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return mismatch;
  }
  int r = 0;
  for (const char c : digits) r = r * 10 + (c - '0');
  return r;
}

// Parses a whole-token decimal number with strtod (exact for Python repr output). Hex
// floats are refused: they are not yaml floats.
bool ParseDouble(std::string_view text, double* value) {
  if (text.empty() || text.find_first_of("xX") != std::string_view::npos) return false;
  const std::string token(text);
  char* end = nullptr;
  *value = std::strtod(token.c_str(), &end);
  return end == token.c_str() + token.size() && !std::isspace(static_cast<unsigned char>(token[0]));
}

bool ParseInteger(std::string_view text, int64_t* value) {
  if (text.empty()) return false;
  const std::string token(text);
  char* end = nullptr;
  errno = 0;
  *value = std::strtoll(token.c_str(), &end, 10);
  return errno == 0 && end == token.c_str() + token.size() &&
         !std::isspace(static_cast<unsigned char>(token[0]));
}

// The entry a FileParser is reading. (At namespace scope: clang cannot default-construct a
// nested class with member initializers inside std::optional before the enclosing class ends.)
struct YamlEntry {
  std::string key;
  int line = 0;
  int indent = -1;  // Of its field lines; -1 before the first one.
  std::optional<double> mean;
  bool has_count = false;
  bool has_std = false;
};

// Parses one file's entries into `entries` under "<r>/<key>".
class FileParser {
 public:
  FileParser(const std::string& file, int resolution,
             absl::flat_hash_map<std::string, CostEntry>* entries)
      : file_(file), prefix_(absl::StrCat(resolution, "/")), entries_(entries) {}

  absl::Status Parse(std::string_view content) {
    int line_number = 0;
    size_t start = 0;
    while (start < content.size()) {
      size_t newline = content.find('\n', start);
      if (newline == std::string_view::npos) newline = content.size();
      ++line_number;
      RETURN_IF_ERROR(ParseLine(line_number, content.substr(start, newline - start)));
      start = newline + 1;
    }
    RETURN_IF_ERROR(FinishEntry());
    if (key_lines_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(file_, ": no entries (empty table)"));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(int line, std::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ":", line, ": ", Str(message)));
  }

  absl::Status ParseLine(int line, std::string_view text) {
    text = StripTrailingSpace(text);
    const size_t first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos || text[first] == '#') return absl::OkStatus();
    if (text.substr(0, first).find('\t') != std::string_view::npos) {
      return Error(line, "tab in indentation (yaml indents with spaces)");
    }
    if (first == 0) return StartEntry(line, text);
    return ParseField(line, static_cast<int>(first), text.substr(first));
  }

  absl::Status StartEntry(int line, std::string_view text) {
    RETURN_IF_ERROR(FinishEntry());
    if (text.back() != ':') {
      return Error(line, absl::StrCat("expected a top-level '<key>:' line, got '", Str(text), "'"));
    }
    const std::string_view key = text.substr(0, text.size() - 1);
    if (key.empty()) return Error(line, "empty key");
    if (key.find_first_of(" \t") != std::string_view::npos) {
      return Error(line, absl::StrCat("key '", Str(key), "' contains whitespace"));
    }
    if (std::string_view("'\"-?:,[]{}#&*!|>%@`").find(key[0]) != std::string_view::npos) {
      return Error(line, absl::StrCat("key '", Str(key),
                                      "' starts with a yaml indicator (unsupported syntax)"));
    }
    const auto [it, inserted] = key_lines_.try_emplace(Str(key), line);
    if (!inserted) {
      return Error(line,
                   absl::StrCat("duplicate key '", Str(key), "' (first at line ", it->second, ")"));
    }
    entry_.emplace();
    entry_->key = Str(key);
    entry_->line = line;
    return absl::OkStatus();
  }

  absl::Status ParseField(int line, int indent, std::string_view text) {
    if (!entry_.has_value()) return Error(line, "indented line before any key");
    if (entry_->indent >= 0 && entry_->indent != indent) {
      return Error(
          line, absl::StrCat("indentation ", indent, " differs from the entry's ", entry_->indent));
    }
    entry_->indent = indent;
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      return Error(line, absl::StrCat("expected '<field>: <value>', got '", Str(text), "'"));
    }
    const std::string_view name = text.substr(0, colon);
    std::string_view value = text.substr(colon + 1);
    if (!value.empty() && value[0] != ' ') {
      return Error(line, absl::StrCat("expected '<field>: <value>', got '", Str(text), "'"));
    }
    value.remove_prefix(std::min(value.find_first_not_of(' '), value.size()));
    if (name != "count" && name != "mean" && name != "std") {
      return Error(line, absl::StrCat("unexpected field '", Str(name), "' in entry '", entry_->key,
                                      "' (allowed: count, mean, std)"));
    }
    if (value.empty()) return Error(line, absl::StrCat(Str(name), ": missing value"));

    if (name == "count") {
      if (entry_->has_count) return Error(line, "duplicate field 'count'");
      entry_->has_count = true;
      int64_t count = 0;
      if (!ParseInteger(value, &count)) {
        return Error(line, absl::StrCat("count: '", Str(value), "' is not an integer"));
      }
      if (count < 0) return Error(line, absl::StrCat("count: ", count, " is negative"));
      return absl::OkStatus();
    }

    const bool is_mean = name == "mean";
    if (is_mean ? entry_->mean.has_value() : entry_->has_std) {
      return Error(line, absl::StrCat("duplicate field '", Str(name), "'"));
    }
    double number = 0.0;
    if (!ParseDouble(value, &number)) {
      return Error(line, absl::StrCat(Str(name), ": '", Str(value), "' is not a number"));
    }
    if (!std::isfinite(number)) {
      return Error(line, absl::StrCat(Str(name), ": '", Str(value), "' is not finite"));
    }
    if (number < 0.0) {
      return Error(line, absl::StrCat(Str(name), ": ", Str(value), " is negative"));
    }
    if (is_mean) {
      entry_->mean = number;
    } else {
      entry_->has_std = true;
    }
    return absl::OkStatus();
  }

  absl::Status FinishEntry() {
    if (!entry_.has_value()) return absl::OkStatus();
    YamlEntry entry = *std::move(entry_);
    entry_.reset();
    if (!entry.mean.has_value()) {
      return Error(entry.line, absl::StrCat("entry '", entry.key, "' has no mean"));
    }
    CostEntry cost;
    cost.latency_ms = *entry.mean;
    entries_->insert_or_assign(absl::StrCat(prefix_, entry.key), cost);
    return absl::OkStatus();
  }

  const std::string& file_;
  const std::string prefix_;
  absl::flat_hash_map<std::string, CostEntry>* entries_;
  absl::flat_hash_map<std::string, int> key_lines_;  // Key -> line, for duplicates.
  std::optional<YamlEntry> entry_;                   // The entry being read.
};

}  // namespace

absl::StatusOr<CostTable> LoadOfaYamlTables(
    const std::vector<std::pair<std::string, std::string>>& files) {
  CostTable table;
  table.format = TableFormat::kOfaYaml;
  // once-for-all's tables time float networks.
  table.precisions.declared = true;
  table.precisions.float_layers = true;
  absl::flat_hash_map<int, const std::string*> file_of_resolution;
  for (const auto& [file, content] : files) {
    ASSIGN_OR_RETURN(const int resolution, ResolutionFromFileName(file));
    const auto [it, inserted] = file_of_resolution.try_emplace(resolution, &file);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": resolution ", resolution, " is already given by ", *it->second));
    }
    FileParser parser(file, resolution, &table.entries);
    RETURN_IF_ERROR(parser.Parse(content));
  }
  return table;
}

absl::StatusOr<CostTable> LoadOfaYamlDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no such directory"));
  }
  fs::directory_iterator it(dir, error);
  std::vector<std::string> paths;
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    const fs::path& path = it->path();
    if (!EndsWith(path.filename().string(), kSuffix)) continue;
    // Follows symlinks: Bazel runfiles are symlinks to the files.
    std::error_code type_error;
    if (!fs::is_regular_file(path, type_error)) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a regular file"));
    }
    paths.push_back(path.string());
  }
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": cannot list: ", error.message()));
  }
  if (paths.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no *", Str(kSuffix), " files"));
  }
  std::sort(paths.begin(), paths.end());

  std::vector<std::pair<std::string, std::string>> files;
  files.reserve(paths.size());
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    if (in) content << in.rdbuf();
    if (!in || in.bad()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
    }
    files.emplace_back(path, std::move(content).str());
  }
  return LoadOfaYamlTables(files);
}

}  // namespace apq::hwmodels
