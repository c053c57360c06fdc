#include "hwmodels/conv_latency_table.h"

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

constexpr char kSource[] = "some/dir/local-cpu.json";
constexpr char kPointwise[] = "(16, 64, 14, 1, 1, 0, 1)-W8A8";
constexpr char kDepthwise[] = "(64, 64, 14, 3, 2, 1, 64)-W4A6";
constexpr char kClassifier[] = "(128, 10, 1, 1, 1, 0, 1)-W32A32";

// Latency only: a pointwise, a depthwise and a classifier-as-1x1-conv key.
nlohmann::json SmallTable() {
  nlohmann::json table = nlohmann::json::object();
  table[kPointwise] = {{"latency", 0.125}};
  table[kDepthwise] = {{"latency", 0}};
  table[kClassifier] = {{"latency", 0.0037}};
  return table;
}

void ExpectRejected(const std::string& content, const std::string& part) {
  const absl::StatusOr<CostTable> table = LoadConvTable(content, kSource);
  ASSERT_FALSE(table.ok()) << content.substr(0, 200);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(table.status().message());
  EXPECT_THAT(message, StartsWith(absl::StrCat(kSource, ": ")));
  EXPECT_THAT(message, HasSubstr(part)) << content.substr(0, 200);
}
void ExpectRejected(const nlohmann::json& table, const std::string& part) {
  ExpectRejected(table.dump(), part);
}

TEST(ConvLatencyTableTest, LoadsLatencyOnly) {
  const absl::StatusOr<CostTable> table = LoadConvTable(SmallTable().dump(2), kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->format, TableFormat::kConvJson);
  ASSERT_EQ(table->entries.size(), 3);
  EXPECT_EQ(table->entries.at(kPointwise).latency_ms, 0.125);
  EXPECT_EQ(table->entries.at(kDepthwise).latency_ms, 0.0);
  EXPECT_EQ(table->entries.at(kClassifier).latency_ms, 0.0037);
  for (const auto& [key, entry] : table->entries) EXPECT_FALSE(entry.energy_mj.has_value()) << key;
}

// A large upload parses in one pass and stops when its caller gives up (the service passes
// the RPC's cancellation); the shipped sizes are timed in bench/table_parse_bench.
TEST(ConvLatencyTableTest, LargeTableLoadsAndStopsWhenCancelled) {
  nlohmann::json json = nlohmann::json::object();
  for (int channels = 1; channels <= 20000; ++channels) {
    json[absl::StrCat("(", channels, ", ", channels, ", 7, 1, 1, 0, 1)-W8A8")] = {
        {"latency", channels}};
  }
  const std::string content = json.dump();
  const absl::StatusOr<CostTable> table = LoadConvTable(content, kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.size(), 20000);
  EXPECT_EQ(table->entries.at("(777, 777, 7, 1, 1, 0, 1)-W8A8").latency_ms, 777.0);

  int asked = 0;
  const absl::StatusOr<CostTable> cancelled =
      LoadConvTable(content, kSource, [&asked] { return ++asked == 3; });
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(cancelled.status().message()), StartsWith(kSource));
  EXPECT_EQ(asked, 3);
}

TEST(ConvLatencyTableTest, RejectsNestingDeeperThanATable) {
  ExpectRejected(std::string(R"({"(16, 64, 14, 1, 1, 0, 1)-W8A8": {"latency": [[[[1]]]]}})"),
                 "nesting deeper than 4 levels");
  ExpectRejected(std::string(1'000'000, '['), "nesting deeper than 4 levels");
}

TEST(ConvLatencyTableTest, LoadsLatencyAndEnergy) {
  nlohmann::json json = SmallTable();
  for (auto& item : json.items()) item.value()["energy"] = 2.5;
  const absl::StatusOr<CostTable> table = LoadConvTable(json.dump(), kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  for (const auto& [key, entry] : table->entries) EXPECT_EQ(entry.energy_mj, 2.5) << key;
}

TEST(ConvLatencyTableTest, AcceptsBitsUpTo32) {
  nlohmann::json table = SmallTable();
  table["(16, 64, 14, 1, 1, 0, 1)-W1A32"] = {{"latency", 1}};
  table["(16, 64, 14, 1, 1, 0, 1)-W16A2"] = {{"latency", 1}};
  EXPECT_TRUE(LoadConvTable(table.dump(), kSource).ok());
}

TEST(ConvLatencyTableTest, FileErrors) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string missing = absl::StrCat(tmp, "/no_such.json");
  absl::StatusOr<CostTable> table = LoadConvTableFile(missing);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr(missing));

  const std::string bad = absl::StrCat(tmp, "/bad.json");
  { std::ofstream(bad) << "{\"head\": {\"latency\": 1}}"; }
  table = LoadConvTableFile(bad);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), HasSubstr(absl::StrCat(bad, ": key \"head\": malformed")));

  const std::string good = absl::StrCat(tmp, "/good.json");
  { std::ofstream(good) << SmallTable().dump(); }
  table = LoadConvTableFile(good);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.size(), 3);
}

TEST(ConvLatencyTableTest, RejectsMalformedJson) {
  ExpectRejected(std::string("{\"(1, 1, 1, 1, 1, 0, 1)-W8A8\": {\"latency\": }}"), "parse error");
  ExpectRejected(std::string("{\"(1, 1, 1, 1, 1, 0, 1)-W8A8\":\n {\"latency\": }}"),
                 "line 2, column 14");
  ExpectRejected(std::string(""), "parse error");
  ExpectRejected(std::string("{\"(1, 1, 1, 1, 1, 0, 1)-W8A8\": {\"latency\": NaN}}"),
                 "parse error");
  ExpectRejected(std::string("{\"(1, 1, 1, 1, 1, 0, 1)-W8A8\": {\"latency\": 1e999}}"),
                 "number overflow");
  ExpectRejected(std::string("[1, 2]"), "expected a JSON object of conv keys, got array");
  ExpectRejected(std::string("{}"), "no entries");
}

TEST(ConvLatencyTableTest, RejectsDuplicates) {
  std::string content = SmallTable().dump();
  content.insert(1, absl::StrCat("\"", kDepthwise, "\": {\"latency\": 9}, "));
  ExpectRejected(content, absl::StrCat("duplicate key \"", kDepthwise, "\""));

  content = SmallTable().dump();
  const std::string entry = absl::StrCat("\"", kPointwise, "\":{");
  const size_t at = content.find(entry);
  ASSERT_NE(at, std::string::npos);
  content.insert(at + entry.size(), "\"latency\":7,");
  ExpectRejected(content, absl::StrCat("key \"", kPointwise, "\": duplicate field \"latency\""));
}

TEST(ConvLatencyTableTest, RejectsKeysThatAreNotConvs) {
  for (const std::string key :
       {"head", "tail", "", "(16, 64, 14, 1, 1, 0)-W8A8", "(16,64,14,1,1,0,1)-W8A8",
        "(16, 64, 14, 1, 1, 0, 1)", "(16, 64, 14, 1, 1, 0, 1)-W8A8 ",
        "(-16, 64, 14, 1, 1, 0, 1)-W8A8", "(16, 64, 14, 1, 1, 0, 1)-W08A8"}) {
    nlohmann::json table = SmallTable();
    table[key] = {{"latency", 1}};
    ExpectRejected(table, absl::StrCat("key \"", key, "\": malformed"));
  }
  const auto rejects = [](const std::string& key, const std::string& why) {
    nlohmann::json table = SmallTable();
    table[key] = {{"latency", 1}};
    ExpectRejected(table, absl::StrCat("key \"", key, "\": ", why));
  };
  rejects("(16, 0, 14, 1, 1, 0, 1)-W8A8", "Cout is 0");
  rejects("(16, 64, 14, 1, 0, 0, 1)-W8A8", "stride is 0");
  rejects("(16, 64, 14, 3, 1, 1, 0)-W8A8", "groups is 0");
  rejects("(16, 64, 14, 3, 1, 1, 3)-W8A8", "groups does not divide Cin and Cout");
  rejects("(48, 64, 14, 3, 1, 1, 3)-W8A8", "groups does not divide Cin and Cout");
  rejects("(16, 64, 2, 7, 1, 1, 1)-W8A8", "kernel larger than the padded input");
  rejects("(16, 64, 14, 1, 1, 0, 1)-W0A8", "W0 is outside 1..32");
  rejects("(16, 64, 14, 1, 1, 0, 1)-W8A33", "A33 is outside 1..32");
}

TEST(ConvLatencyTableTest, RejectsBadValues) {
  const std::string key = kPointwise;
  const auto with = [&key](const nlohmann::json& value) {
    nlohmann::json table = SmallTable();
    table[key] = value;
    return table;
  };
  const std::string at = absl::StrCat("key \"", key, "\": ");
  ExpectRejected(with(0.5), absl::StrCat(at,
                                         "expected an object {\"latency\": ms} or "
                                         "{\"latency\": ms, \"energy\": mJ}, got number"));
  ExpectRejected(with(nlohmann::json::object()), absl::StrCat(at, "latency: missing"));
  ExpectRejected(with({{"energy", 1}}), absl::StrCat(at, "latency: missing"));
  ExpectRejected(with({{"latency", 1}, {"std", 0.1}}),
                 absl::StrCat(at, "unknown field \"std\" (expected latency, energy)"));
  ExpectRejected(with({{"latency", "0.5"}}),
                 absl::StrCat(at, "latency: expected a number, got string"));
  ExpectRejected(with({{"latency", nullptr}}),
                 absl::StrCat(at, "latency: expected a number, got null"));
  ExpectRejected(with({{"latency", -0.5}}), absl::StrCat(at, "latency: -0.5 is negative"));
  ExpectRejected(with({{"latency", 1}, {"energy", -2}}),
                 absl::StrCat(at, "energy: -2 is negative"));
  ExpectRejected(with({{"latency", 1}, {"energy", true}}),
                 absl::StrCat(at, "energy: expected a number, got boolean"));
}

TEST(ConvLatencyTableTest, RejectsEnergyOnSomeEntriesOnly) {
  // Keys sort as kClassifier, kPointwise, kDepthwise ('1' < '6').
  nlohmann::json table = SmallTable();
  table[kDepthwise]["energy"] = 1;
  ExpectRejected(table, absl::StrCat("key \"", kDepthwise, "\": has an energy but the first key \"",
                                     kClassifier, "\" has none"));
  table = SmallTable();
  table[kClassifier]["energy"] = 1;
  table[kDepthwise]["energy"] = 1;
  ExpectRejected(table, absl::StrCat("key \"", kPointwise, "\": has no energy but the first key \"",
                                     kClassifier, "\" has one"));
  ExpectRejected(table, "energy must be on every entry or on none");
}

TEST(ConvLatencyTableTest, WriterRoundTrips) {
  CostTable table;
  table.format = TableFormat::kConvJson;
  // Values whose shortest decimal forms need all 17 digits, and extremes.
  table.entries["(16, 64, 14, 1, 1, 0, 1)-W8A8"] = {0.1 + 0.2, std::nullopt};
  table.entries["(16, 64, 14, 1, 1, 0, 1)-W4A8"] = {1.0 / 3.0, std::nullopt};
  table.entries["(64, 64, 14, 3, 2, 1, 64)-W4A6"] = {0.0, std::nullopt};
  table.entries["(128, 10, 1, 1, 1, 0, 1)-W8A8"] = {5e-324, std::nullopt};
  table.entries["(3, 16, 224, 3, 2, 1, 1)-W8A8"] = {1.7976931348623157e308, std::nullopt};
  const std::string json = ConvTableToJson(table);
  const absl::StatusOr<CostTable> loaded = LoadConvTable(json, "written");
  ASSERT_TRUE(loaded.ok()) << loaded.status() << "\n" << json;
  EXPECT_EQ(loaded->format, TableFormat::kConvJson);
  ASSERT_EQ(loaded->entries.size(), table.entries.size());
  for (const auto& [key, entry] : table.entries) {
    ASSERT_TRUE(loaded->entries.contains(key)) << key;
    EXPECT_EQ(loaded->entries.at(key).latency_ms, entry.latency_ms) << key;
    EXPECT_FALSE(loaded->entries.at(key).energy_mj.has_value()) << key;
  }
  // Keys ascending, one entry per line.
  EXPECT_THAT(json, StartsWith("{\n  \"(128, 10, 1, 1, 1, 0, 1)-W8A8\": {\"latency\": "));
  EXPECT_LT(json.find("(16, 64, 14, 1, 1, 0, 1)-W4A8"), json.find("(16, 64, 14, 1, 1, 0, 1)-W8A8"));
  EXPECT_LT(json.find("(16, 64, 14, 1, 1, 0, 1)-W8A8"), json.find("(3, 16, 224"));
  EXPECT_LT(json.find("(3, 16, 224"), json.find("(64, 64, 14"));
  EXPECT_THAT(json, HasSubstr("\"(16, 64, 14, 1, 1, 0, 1)-W8A8\": {\"latency\": "
                              "0.30000000000000004},\n"));

  for (auto& [key, entry] : table.entries) entry.energy_mj = entry.latency_ms / 3;
  const absl::StatusOr<CostTable> with_energy =
      LoadConvTable(ConvTableToJson(table), "written with energy");
  ASSERT_TRUE(with_energy.ok()) << with_energy.status();
  for (const auto& [key, entry] : table.entries) {
    EXPECT_EQ(with_energy->entries.at(key).latency_ms, entry.latency_ms) << key;
    EXPECT_EQ(with_energy->entries.at(key).energy_mj, entry.energy_mj) << key;
  }
}

// A declaration names what the device runs; the writer keeps it and keys outside it are refused.
TEST(ConvLatencyTableTest, PrecisionDeclaration) {
  nlohmann::json json = nlohmann::json::object();
  json["precisions"] = {{"pairs", {"W8A8"}}, {"float", true}, {"int8_engine", "qnnpack"}};
  json["(16, 64, 14, 1, 1, 0, 1)-W8A8"] = {{"latency", 0.1}};
  json[kClassifier] = {{"latency", 0.2}};
  const absl::StatusOr<CostTable> table = LoadConvTable(json.dump(), kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.size(), 2);
  EXPECT_TRUE(table->precisions.declared);
  ASSERT_EQ(table->precisions.pairs.size(), 1);
  EXPECT_EQ(table->precisions.pairs[0], (BitPair{8, 8}));
  EXPECT_TRUE(table->precisions.float_layers);
  EXPECT_EQ(table->precisions.int8_engine, "qnnpack");
  const absl::StatusOr<CostTable> again = LoadConvTable(ConvTableToJson(*table), "written");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->precisions.pairs, table->precisions.pairs);
  EXPECT_TRUE(again->precisions.float_layers);
  EXPECT_EQ(again->precisions.int8_engine, "qnnpack");
  EXPECT_EQ(again->entries.size(), 2);

  // Without a declaration nothing is declared.
  EXPECT_FALSE(LoadConvTable(SmallTable().dump(), kSource)->precisions.declared);
}

// Changes of precision between int8 and float layers: read, written back, checked.
TEST(ConvLatencyTableTest, ChangesOfPrecision) {
  nlohmann::json json = nlohmann::json::object();
  json["precisions"] = {{"pairs", {"W8A8"}}, {"float", true}, {"int8_engine", "qnnpack"}};
  json["(16, 64, 14, 1, 1, 0, 1)-W8A8"] = {{"latency", 0.1}};
  json["(16, 14)-quantize"] = {{"latency", 0.004}};
  json["(16, 14)-dequantize"] = {{"latency", 0.002}};
  const absl::StatusOr<CostTable> table = LoadConvTable(json.dump(), kSource);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.at("(16, 14)-quantize").latency_ms, 0.004);
  const absl::StatusOr<CostTable> again = LoadConvTable(ConvTableToJson(*table), "written");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->entries.at("(16, 14)-dequantize").latency_ms, 0.002);
  // A table that declares nothing may price them too.
  nlohmann::json undeclared = SmallTable();
  undeclared["(16, 14)-quantize"] = {{"latency", 0.004}};
  EXPECT_TRUE(LoadConvTable(undeclared.dump(), kSource).ok());

  for (const std::string key : {"(16, 14)-requantize", "(16, 14)", "(16,14)-quantize",
                                "(16, 14)-quantize ", "(16, 014)-quantize", "(-16, 14)-quantize"}) {
    nlohmann::json bad = SmallTable();
    bad[key] = {{"latency", 1}};
    ExpectRejected(bad, absl::StrCat("key \"", key, "\": malformed"));
  }
  nlohmann::json zero = SmallTable();
  zero["(0, 14)-dequantize"] = {{"latency", 1}};
  ExpectRejected(zero, "key \"(0, 14)-dequantize\": C is 0");
  // A device that declares no float layer has no change between int8 and float.
  nlohmann::json int8_only = json;
  int8_only["precisions"] = {{"pairs", {"W8A8"}}, {"int8_engine", "qnnpack"}};
  ExpectRejected(int8_only,
                 "key \"(16, 14)-dequantize\": prices a change between int8 and float "
                 "layers but precisions.float is not true");
}

TEST(ConvLatencyTableTest, RejectsBadDeclarations) {
  const auto with = [](const nlohmann::json& declaration) {
    nlohmann::json json = SmallTable();
    json["precisions"] = declaration;
    return json;
  };
  ExpectRejected(with(nlohmann::json::array()), "precisions: expected an object");
  ExpectRejected(with({{"pairs", "W8A8"}}), "precisions.pairs: expected an array");
  ExpectRejected(with({{"pairs", {8}}}), "precisions.pairs[0]: expected a string");
  ExpectRejected(with({{"pairs", {"W8"}}}), "precisions.pairs[0]: \"W8\" is not a pair");
  ExpectRejected(with({{"pairs", {"W08A8"}}}), "precisions.pairs[0]: \"W08A8\" is not a pair");
  ExpectRejected(with({{"pairs", {"W8A8 "}}}), "is not a pair");
  ExpectRejected(with({{"pairs", {"W32A32"}}}), "declared by \"float\": true");
  ExpectRejected(with({{"pairs", {"W0A8"}}}), "bit widths are 1..16");
  ExpectRejected(with({{"pairs", {"W8A8", "W4A6", "W8A8"}}}),
                 "precisions.pairs[2]: W8A8 is listed twice");
  ExpectRejected(with({{"float", 1}}), "precisions.float: expected true or false");
  ExpectRejected(with({{"pairs", {"W8A8"}}, {"int8_engine", "fbgemm"}}),
                 "precisions.int8_engine: expected \"qnnpack\" or \"onednn\"");
  ExpectRejected(with({{"pairs", {"W4A6"}}, {"float", true}, {"int8_engine", "qnnpack"}}),
                 "pairs lacks W8A8");
  ExpectRejected(with({{"pairs", {"W8A8"}}, {"fp16", true}}), "unknown field \"fp16\"");
  ExpectRejected(with({{"pairs", nlohmann::json::array()}}), "declares nothing");
  // The small table's keys price W8A8, W4A6 and a float layer.
  ExpectRejected(with({{"pairs", {"W8A8", "W4A6"}}}), absl::StrCat("key \"", kClassifier,
                                                                   "\": prices a float layer but "
                                                                   "precisions.float is not true"));
  ExpectRejected(with({{"pairs", {"W8A8"}}, {"float", true}}),
                 absl::StrCat("key \"", kDepthwise,
                              "\": prices W4A6, which precisions.pairs "
                              "does not declare"));
  nlohmann::json only_declaration = nlohmann::json::object();
  only_declaration["precisions"] = {{"float", true}};
  ExpectRejected(only_declaration, "no entries");
}

}  // namespace
}  // namespace apq::hwmodels
