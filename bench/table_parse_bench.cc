// Times the parsing of uploaded JSON cost tables against their number of entries: a conv-json
// table and an APQ BitFusion table of N entries each, loaded as an upload is
// (LoadConvTable, LoadApqBitFusionTable). With --callback_baseline, also nlohmann::json's
// callback parser with the same duplicate-key check (the loaders' former parser, quadratic
// in the entries) up to --callback_max_entries.
//
// Usage: bazel run //bench:table_parse_bench -- [--entries=10000,20000,40000,80000,1000000]
//          [--callback_baseline] [--callback_max_entries=40000]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tool_main.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/cost_table.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, entries, "10000,20000,40000,80000,1000000",
          "Comma-separated table sizes (entries) to time.");
ABSL_FLAG(bool, callback_baseline, false,
          "Also time nlohmann's callback parser with a duplicate-key check.");
ABSL_FLAG(int64_t, callback_max_entries, 40000,
          "Largest table the callback baseline parses (it is quadratic).");

namespace {

using Clock = std::chrono::steady_clock;
using apq::hwmodels::CostEntry;
using apq::hwmodels::CostTable;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Conv shapes, all distinct, in the key format both tables share: (Cin, Cout, size, kernel,
// stride, padding, groups).
std::string ShapeKey(int64_t index) {
  const int64_t channels = 8 + index % 4096;
  const int64_t size = 7 + (index / 4096) % 256;
  const int64_t kernel = 1 + 2 * ((index / (int64_t{4096} * 256)) % 3);
  return absl::StrCat("(", channels, ", ", channels * 2, ", ", size, ", ", kernel, ", 1, ",
                      kernel / 2, ", 1)");
}

std::string ConvTableOf(int64_t entries) {
  CostTable table;
  table.format = apq::hwmodels::TableFormat::kConvJson;
  for (int64_t i = 0; i < entries; ++i) {
    CostEntry entry;
    entry.latency_ms = 0.001 * static_cast<double>(i % 997);
    entry.energy_mj = 0.002 * static_cast<double>(i % 991);
    table.entries.emplace(absl::StrCat(ShapeKey(i), "-W8A8"), entry);
  }
  return apq::hwmodels::ConvTableToJson(table);
}

// Every shape with its nine W/A pairs of {4, 6, 8}, plus "head" and "tail".
std::string BitFusionTableOf(int64_t entries) {
  nlohmann::json table = nlohmann::json::object();
  table["head"] = {{"latency", 1.0}, {"energy", 1.0}};
  table["tail"] = {{"latency", 1.0}, {"energy", 1.0}};
  for (int64_t shape = 0; static_cast<int64_t>(table.size()) < entries; ++shape) {
    for (int w : {4, 6, 8}) {
      for (int a : {4, 6, 8}) {
        table[absl::StrCat(ShapeKey(shape), "-W", w, "A", a)] = {{"latency", 0.5},
                                                                 {"energy", 0.25}};
      }
    }
  }
  return table.dump();
}

// nlohmann::json's callback parser with a set of keys per open object: the former parser.
bool ParseWithCallback(const std::string& content) {
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  bool duplicate = false;
  const nlohmann::json::parser_callback_t callback =
      [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) open_objects.emplace_back();
        if (event == Event::object_end) open_objects.pop_back();
        if (event == Event::key &&
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
          duplicate = true;
        }
        return true;
      };
  const nlohmann::json doc = nlohmann::json::parse(content, callback);
  return !duplicate && doc.is_object();
}

absl::Status Run() {
  std::vector<int64_t> sizes;
  for (const absl::string_view text :
       absl::StrSplit(absl::GetFlag(FLAGS_entries), ',', absl::SkipEmpty())) {
    int64_t size = 0;
    if (!absl::SimpleAtoi(text, &size) || size <= 0 || size > 20'000'000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--entries: '", text, "' is not a size in 1..20000000"));
    }
    sizes.push_back(size);
  }
  std::printf("%-10s %-10s %10s %12s %14s\n", "format", "entries", "MB", "parse (s)",
              "callback (s)");
  for (const int64_t size : sizes) {
    for (const bool bitfusion : {false, true}) {
      const std::string content = bitfusion ? BitFusionTableOf(size) : ConvTableOf(size);
      const Clock::time_point start = Clock::now();
      const absl::StatusOr<CostTable> table =
          bitfusion ? apq::hwmodels::LoadApqBitFusionTable(content, "bench")
                    : apq::hwmodels::LoadConvTable(content, "bench");
      const double seconds = SecondsSince(start);
      if (!table.ok()) return table.status();
      std::string callback = "-";
      if (absl::GetFlag(FLAGS_callback_baseline) &&
          size <= absl::GetFlag(FLAGS_callback_max_entries)) {
        const Clock::time_point callback_start = Clock::now();
        if (!ParseWithCallback(content)) return absl::InternalError("callback parse failed");
        callback = absl::StrCat(SecondsSince(callback_start));
      }
      std::printf("%-10s %-10lld %10.1f %12.3f %14s\n", bitfusion ? "bitfusion" : "conv-json",
                  static_cast<long long>(table->entries.size()),
                  static_cast<double>(content.size()) / 1e6, seconds, callback.c_str());
      std::fflush(stdout);
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("table_parse_bench", argc, argv, Run); }
