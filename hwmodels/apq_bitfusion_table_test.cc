#include "hwmodels/apq_bitfusion_table.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/cost_table.h"
#include "nlohmann/json.hpp"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kShippedTable[] = "data/apq_bitfusion/BitFusion_new.b1.dict";
constexpr char kSource[] = "some/dir/table.dict";

// head, tail, a 1x1 conv shape and a depthwise 3x3 shape with all nine pairs, and a depthwise
// 7x7 shape with the six A6/A8 pairs only (as in the real table).
nlohmann::json SmallTable() {
  nlohmann::json table = nlohmann::json::object();
  table["head"] = {{"latency", 0.5}, {"energy", 1.0}};
  table["tail"] = {{"latency", 0.25}, {"energy", 0.125}};
  for (const int w : {4, 6, 8}) {
    for (const int a : {4, 6, 8}) {
      const std::string bits = absl::StrCat("-W", w, "A", a);
      table[absl::StrCat("(16, 64, 112, 1, 1, 0, 1)", bits)] = {{"latency", 0.01 * w},
                                                                {"energy", 0.02 * a}};
      table[absl::StrCat("(64, 64, 112, 3, 2, 1, 64)", bits)] = {{"latency", 0}, {"energy", 0}};
      if (a != 4) {
        table[absl::StrCat("(64, 64, 112, 7, 2, 3, 64)", bits)] = {{"latency", 1}, {"energy", 2}};
      }
    }
  }
  return table;
}

void ExpectRejected(const std::string& content, const std::string& part) {
  const absl::StatusOr<CostTable> table = LoadApqBitFusionTable(content, kSource);
  ASSERT_FALSE(table.ok()) << content.substr(0, 200);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(table.status().message());
  EXPECT_THAT(message, StartsWith(absl::StrCat(kSource, ": ")));
  EXPECT_THAT(message, HasSubstr(part)) << content.substr(0, 200);
}
void ExpectRejected(const nlohmann::json& table, const std::string& part) {
  ExpectRejected(table.dump(), part);
}

TEST(ApqBitFusionTableTest, LoadsTheShippedTable) {
  const absl::StatusOr<CostTable> table = LoadApqBitFusionFile(kShippedTable);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->format, TableFormat::kApqBitFusion);
  // 779 shapes x 9 pairs, minus the A4 pairs of the 148 depthwise 7x7 shapes, head and tail.
  EXPECT_EQ(table->entries.size(), 6569);
  // Exact: the values are Python reprs, parsed with a correct strtod.
  const CostEntry& head = table->entries.at("head");
  EXPECT_EQ(head.latency_ms, 0.295904);
  EXPECT_EQ(head.energy_mj, 0.5061844841862639);
  const CostEntry& conv = table->entries.at("(96, 464, 14, 1, 1, 0, 1)-W4A4");
  EXPECT_EQ(conv.latency_ms, 0.06327200000000001);
  EXPECT_EQ(conv.energy_mj, 0.108684390992096);
  for (const auto& [key, entry] : table->entries) ASSERT_TRUE(entry.energy_mj.has_value()) << key;
}

TEST(ApqBitFusionTableTest, AcceptsASmallTable) {
  const absl::StatusOr<CostTable> table = LoadApqBitFusionTable(SmallTable().dump(2), kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.size(), 2 + 9 + 9 + 6);
  EXPECT_EQ(table->entries.at("(16, 64, 112, 1, 1, 0, 1)-W6A8").latency_ms, 0.06);
  EXPECT_EQ(table->entries.at("(16, 64, 112, 1, 1, 0, 1)-W6A8").energy_mj, 0.16);
  EXPECT_EQ(table->entries.at("(64, 64, 112, 3, 2, 1, 64)-W4A4").latency_ms, 0.0);
  EXPECT_EQ(table->entries.at("tail").energy_mj, 0.125);
}

TEST(ApqBitFusionTableTest, FileErrors) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string missing = absl::StrCat(tmp, "/no_such.dict");
  absl::StatusOr<CostTable> table = LoadApqBitFusionFile(missing);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr(missing));

  const std::string bad = absl::StrCat(tmp, "/bad.dict");
  { std::ofstream(bad) << "{\"head\": {\"latency\": 1, \"energy\": 1}}"; }
  table = LoadApqBitFusionFile(bad);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), HasSubstr(absl::StrCat(bad, ": missing key \"tail\"")));
}

TEST(ApqBitFusionTableTest, RejectsMalformedJson) {
  ExpectRejected(std::string("{\"head\": {\"latency\": 1,\n \"energy\": }}"), "parse error");
  ExpectRejected(std::string("{\"head\": {\"latency\": 1,\n \"energy\": }}"), "line 2, column 12");
  ExpectRejected(std::string(""), "parse error");
  ExpectRejected(std::string("{\"head\": {\"latency\": 1, \"energy\": 1}} trailing"),
                 "parse error");
  // Python's json.dump writes these for nan and inf; they are not JSON.
  ExpectRejected(std::string("{\"head\": {\"latency\": NaN, \"energy\": 1}}"), "parse error");
  ExpectRejected(std::string("{\"head\": {\"latency\": Infinity, \"energy\": 1}}"), "parse error");
  ExpectRejected(std::string("{\"head\": {\"latency\": -Infinity, \"energy\": 1}}"), "parse error");
  ExpectRejected(std::string("{\"head\": {\"latency\": 1e999, \"energy\": 1}}"), "number overflow");
  ExpectRejected(std::string("[1, 2]"), "expected a JSON object of layer keys, got array");
}

TEST(ApqBitFusionTableTest, RejectsDuplicateKeys) {
  std::string content = SmallTable().dump();
  content.insert(1, "\"(16, 64, 112, 1, 1, 0, 1)-W8A8\": {\"latency\": 9, \"energy\": 9}, ");
  ExpectRejected(content, "duplicate key \"(16, 64, 112, 1, 1, 0, 1)-W8A8\"");

  content = SmallTable().dump();
  content.insert(1, "\"head\": {\"latency\": 9, \"energy\": 9}, ");
  ExpectRejected(content, "duplicate key \"head\"");

  content = SmallTable().dump();
  const std::string entry = "\"tail\":{\"energy\":0.125,";
  const size_t at = content.find(entry);
  ASSERT_NE(at, std::string::npos);
  content.insert(at + entry.size(), "\"energy\":7,");
  ExpectRejected(content, "key \"tail\": duplicate field \"energy\"");
}

TEST(ApqBitFusionTableTest, RejectsMalformedKeys) {
  for (const std::string key :
       {"(16, 64, 112, 1, 1, 0)-W4A4", "(16, 64, 112, 1, 1, 0, 1, 1)-W4A4",
        "(16,64,112,1,1,0,1)-W4A4", "16, 64, 112, 1, 1, 0, 1-W4A4", "(16, 64, 112, 1, 1, 0, 1)",
        "(16, 64, 112, 1, 1, 0, 1)-W4", "(16, 64, 112, 1, 1, 0, 1)-A4W4",
        "(16, 64, 112, 1, 1, 0, 1)-W4A4 ", "(016, 64, 112, 1, 1, 0, 1)-W4A4",
        "(-16, 64, 112, 1, 1, 0, 1)-W4A4", "(16, 64, 112, 1, 1, 0, 1)-W04A4",
        "(16, 64.0, 112, 1, 1, 0, 1)-W4A4", "Head", "", "(16, 64, 112, 1, 1, 0, 1)-W4A4-W4A4"}) {
    nlohmann::json table = SmallTable();
    table[key] = {{"latency", 1}, {"energy", 1}};
    ExpectRejected(table, absl::StrCat("key \"", key, "\": malformed"));
  }
  nlohmann::json table = SmallTable();
  table["(16, 64, 112, 1, 1, 0, 1)-W5A4"] = {{"latency", 1}, {"energy", 1}};
  ExpectRejected(table, "key \"(16, 64, 112, 1, 1, 0, 1)-W5A4\": W5 is not one of {4, 6, 8}");
  table = SmallTable();
  table["(16, 64, 112, 1, 1, 0, 1)-W4A32"] = {{"latency", 1}, {"energy", 1}};
  ExpectRejected(table, "A32 is not one of {4, 6, 8}");
  table = SmallTable();
  table["(16, 0, 112, 1, 1, 0, 1)-W4A4"] = {{"latency", 1}, {"energy", 1}};
  ExpectRejected(table, "key \"(16, 0, 112, 1, 1, 0, 1)-W4A4\": Cout is 0");
  table = SmallTable();
  table["(16, 64, 112, 1, 0, 0, 1)-W4A4"] = {{"latency", 1}, {"energy", 1}};
  ExpectRejected(table, "stride is 0");
}

TEST(ApqBitFusionTableTest, RejectsBadValues) {
  const std::string key = "(16, 64, 112, 1, 1, 0, 1)-W6A4";
  const auto with = [&key](const nlohmann::json& value) {
    nlohmann::json table = SmallTable();
    table[key] = value;
    return table;
  };
  const std::string at = absl::StrCat("key \"", key, "\": ");
  ExpectRejected(with(0.5), absl::StrCat(at,
                                         "expected an object {\"latency\": ms, \"energy\": mJ}, "
                                         "got number"));
  ExpectRejected(with({{"latency", 1}}), absl::StrCat(at, "energy: missing"));
  ExpectRejected(with({{"energy", 1}}), absl::StrCat(at, "latency: missing"));
  ExpectRejected(with({{"latency", 1}, {"energy", 1}, {"std", 0.1}}),
                 absl::StrCat(at, "unknown field \"std\" (expected latency, energy)"));
  ExpectRejected(with({{"latency", "0.5"}, {"energy", 1}}),
                 absl::StrCat(at, "latency: expected a number, got string"));
  ExpectRejected(with({{"latency", 1}, {"energy", nullptr}}),
                 absl::StrCat(at, "energy: expected a number, got null"));
  ExpectRejected(with({{"latency", true}, {"energy", 1}}),
                 absl::StrCat(at, "latency: expected a number, got boolean"));
  ExpectRejected(with({{"latency", -0.5}, {"energy", 1}}),
                 absl::StrCat(at, "latency: -0.5 is negative"));
  ExpectRejected(with({{"latency", 1}, {"energy", -2}}),
                 absl::StrCat(at, "energy: -2 is negative"));

  nlohmann::json table = SmallTable();
  table["head"] = {{"latency", 1}, {"energy", -1e-9}};
  ExpectRejected(table, "key \"head\": energy: -1e-09 is negative");
}

TEST(ApqBitFusionTableTest, RejectsMissingHeadOrTail) {
  for (const char* fixed : {"head", "tail"}) {
    nlohmann::json table = SmallTable();
    table.erase(fixed);
    ExpectRejected(table, absl::StrCat("missing key \"", fixed, "\""));
  }
}

TEST(ApqBitFusionTableTest, RejectsShapesLackingABitPair) {
  nlohmann::json table = SmallTable();
  table.erase("(16, 64, 112, 1, 1, 0, 1)-W6A8");
  table.erase("(16, 64, 112, 1, 1, 0, 1)-W4A4");
  ExpectRejected(table, "shape (16, 64, 112, 1, 1, 0, 1) lacks W4A4, W6A8");

  // Only depthwise 7x7 shapes may lack A4.
  table = SmallTable();
  table.erase("(64, 64, 112, 3, 2, 1, 64)-W8A4");
  ExpectRejected(table, "shape (64, 64, 112, 3, 2, 1, 64) lacks W8A4");
  table = SmallTable();
  table["(64, 32, 112, 7, 2, 3, 1)-W8A8"] = {{"latency", 1}, {"energy", 1}};
  ExpectRejected(table,
                 "shape (64, 32, 112, 7, 2, 3, 1) lacks W4A4, W4A6, W4A8, W6A4, W6A6, "
                 "W6A8, W8A4");
  table = SmallTable();
  table.erase("(64, 64, 112, 7, 2, 3, 64)-W4A6");
  ExpectRejected(table, "shape (64, 64, 112, 7, 2, 3, 64) lacks W4A6");
  // ... and may also have them.
  table = SmallTable();
  table["(64, 64, 112, 7, 2, 3, 64)-W4A4"] = {{"latency", 1}, {"energy", 1}};
  EXPECT_TRUE(LoadApqBitFusionTable(table.dump(), kSource).ok());
}

}  // namespace
}  // namespace apq::hwmodels
