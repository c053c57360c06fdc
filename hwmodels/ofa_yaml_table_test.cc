#include "hwmodels/ofa_yaml_table.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/cost_table.h"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;

constexpr char kNote10Dir[] = "data/ofa_mbv3/note10_lut";
constexpr char kFile[] = "some/dir/160_lookup_table.yaml";

absl::StatusOr<CostTable> LoadOne(const std::string& content) {
  return LoadOfaYamlTables({{kFile, content}});
}

// Expects INVALID_ARGUMENT whose message starts with "<file>:<line>:" and contains `part`.
void ExpectRejectedAt(const std::string& content, int line, const std::string& part) {
  const absl::StatusOr<CostTable> table = LoadOne(content);
  ASSERT_FALSE(table.ok()) << content;
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << content;
  EXPECT_THAT(table.status().message(), HasSubstr(absl::StrCat(kFile, ":", line, ": "))) << content;
  EXPECT_THAT(table.status().message(), HasSubstr(part)) << content;
}

TEST(OfaYamlTableTest, LoadsTheShippedNote10Tables) {
  const absl::StatusOr<CostTable> table = LoadOfaYamlDirectory(kNote10Dir);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->format, TableFormat::kOfaYaml);
  // 96 entries in each of the 5 files.
  EXPECT_EQ(table->entries.size(), 480);
  for (const int r : {160, 176, 192, 208, 224}) {
    const auto it = table->entries.find(absl::StrCat(
        r, "/Conv-input:", r, "x", r, "x3-output:", (r + 1) / 2, "x", (r + 1) / 2, "x24"));
    ASSERT_NE(it, table->entries.end()) << r;
    EXPECT_GT(it->second.latency_ms, 0.0);
  }
  const auto it = table->entries.find("160/Conv-input:160x160x3-output:80x80x24");
  ASSERT_NE(it, table->entries.end());
  // Exact: the value is the yaml's Python repr, parsed with strtod.
  EXPECT_EQ(it->second.latency_ms, 0.495562248995984);
  EXPECT_FALSE(it->second.energy_mj.has_value());
  // The same yaml key holds different values at different resolutions.
  EXPECT_NE(table->entries.at("160/Conv_2-input:1x1x1152-output:1x1x1536").latency_ms,
            table->entries.at("224/Conv_2-input:1x1x1152-output:1x1x1536").latency_ms);
}

TEST(OfaYamlTableTest, AcceptsTheSubsetsVariations) {
  const absl::StatusOr<CostTable> table = LoadOfaYamlTables({
      {"176_lookup_table.yaml",
       "# comment\r\nA-input:1x1x1:\r\n  mean: 0.25\r\n\r\nB:\n    std: 0.5\n    count: 3\n"
       "    mean: 1e-3\n"},
      {"/abs/208_lookup_table.yaml", "A-input:1x1x1:\n  count: 0\n  mean: 0\n"},
  });
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->entries.size(), 3);
  EXPECT_EQ(table->entries.at("176/A-input:1x1x1").latency_ms, 0.25);
  EXPECT_EQ(table->entries.at("176/B").latency_ms, 1e-3);
  EXPECT_EQ(table->entries.at("208/A-input:1x1x1").latency_ms, 0.0);
}

TEST(OfaYamlTableTest, RejectsBadFileNames) {
  for (const std::string name :
       {"lookup_table.yaml", "abc_lookup_table.yaml", "0160_lookup_table.yaml",
        "160_lookup_table.yml", "160_lookup_table.yaml/", "-160_lookup_table.yaml"}) {
    const absl::StatusOr<CostTable> table = LoadOfaYamlTables({{name, "A:\n  mean: 1.0\n"}});
    ASSERT_FALSE(table.ok()) << name;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(table.status().message(), HasSubstr(name));
  }
}

TEST(OfaYamlTableTest, RejectsEmptyFiles) {
  for (const std::string content : {"", "\n\n", "# only a comment\n"}) {
    const absl::StatusOr<CostTable> table = LoadOne(content);
    ASSERT_FALSE(table.ok());
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(table.status().message(), HasSubstr(kFile));
    EXPECT_THAT(table.status().message(), HasSubstr("no entries"));
  }
}

TEST(OfaYamlTableTest, RejectsBadStructure) {
  ExpectRejectedAt("A: 1.0\n", 1, "expected a top-level '<key>:' line");
  ExpectRejectedAt("  mean: 1.0\nA:\n  mean: 1.0\n", 1, "indented line before any key");
  ExpectRejectedAt("A:\n  mean: 1.0\nB\n", 3, "expected a top-level '<key>:' line");
  ExpectRejectedAt("A:\n  mean 1.0\n", 2, "expected '<field>: <value>'");
  ExpectRejectedAt("A:\n  mean:1.0\n", 2, "expected '<field>: <value>'");
  ExpectRejectedAt("A:\n  mean: 1.0\n    std: 0.1\n", 3, "indentation");
  ExpectRejectedAt("A:\n\tmean: 1.0\n", 2, "tab");
  ExpectRejectedAt("A B:\n  mean: 1.0\n", 1, "whitespace");
  ExpectRejectedAt("'A':\n  mean: 1.0\n", 1, "yaml indicator");
  ExpectRejectedAt(":\n  mean: 1.0\n", 1, "empty key");
  ExpectRejectedAt("A:\n  mean:\n", 2, "mean: missing value");
}

TEST(OfaYamlTableTest, RejectsMissingMean) {
  ExpectRejectedAt("A:\n  mean: 1.0\nB:\n  count: 3\n  std: 0.1\nC:\n  mean: 2.0\n", 3,
                   "entry 'B' has no mean");
  ExpectRejectedAt("A:\n  mean: 1.0\nB:\n", 3, "entry 'B' has no mean");
}

TEST(OfaYamlTableTest, RejectsBadNumbers) {
  ExpectRejectedAt("A:\n  count: 3\n  mean: fast\n", 3, "mean: 'fast' is not a number");
  ExpectRejectedAt("A:\n  mean: 1.0ms\n", 2, "is not a number");
  ExpectRejectedAt("A:\n  mean: 0x1p-2\n", 2, "is not a number");
  ExpectRejectedAt("A:\n  mean: .nan\n", 2, "is not a number");
  ExpectRejectedAt("A:\n  mean: nan\n", 2, "mean: 'nan' is not finite");
  ExpectRejectedAt("A:\n  mean: inf\n", 2, "not finite");
  ExpectRejectedAt("A:\n  mean: 1e999\n", 2, "not finite");
  ExpectRejectedAt("A:\n  mean: -0.5\n", 2, "mean: -0.5 is negative");
  ExpectRejectedAt("A:\n  mean: 1.0\n  std: x\n", 3, "std: 'x' is not a number");
  ExpectRejectedAt("A:\n  count: -3\n  mean: 1.0\n", 2, "count: -3 is negative");
  ExpectRejectedAt("A:\n  count: 2.5\n  mean: 1.0\n", 2, "count: '2.5' is not an integer");
  ExpectRejectedAt("A:\n  count: 99999999999999999999\n  mean: 1.0\n", 2, "not an integer");
}

TEST(OfaYamlTableTest, RejectsUnexpectedAndDuplicateFields) {
  ExpectRejectedAt("A:\n  mean: 1.0\n  median: 1.0\n", 3, "unexpected field 'median'");
  ExpectRejectedAt("A:\n  mean: 1.0\n  mean: 2.0\n", 3, "duplicate field 'mean'");
  ExpectRejectedAt("A:\n  count: 1\n  count: 2\n  mean: 2.0\n", 3, "duplicate field 'count'");
}

TEST(OfaYamlTableTest, RejectsDuplicateKeys) {
  ExpectRejectedAt("A:\n  mean: 1.0\nB:\n  mean: 1.0\nA:\n  mean: 2.0\n", 5,
                   "duplicate key 'A' (first at line 1)");
}

TEST(OfaYamlTableTest, RejectsTheSameResolutionTwice) {
  const absl::StatusOr<CostTable> table = LoadOfaYamlTables({
      {"a/192_lookup_table.yaml", "A:\n  mean: 1.0\n"},
      {"b/192_lookup_table.yaml", "B:\n  mean: 1.0\n"},
  });
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), HasSubstr("b/192_lookup_table.yaml"));
  EXPECT_THAT(table.status().message(), HasSubstr("a/192_lookup_table.yaml"));
  EXPECT_THAT(table.status().message(), HasSubstr("resolution 192"));
}

TEST(OfaYamlTableTest, DirectoryErrors) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string missing = absl::StrCat(tmp, "/no_such_dir");
  absl::StatusOr<CostTable> table = LoadOfaYamlDirectory(missing);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr(missing));

  const std::string empty = absl::StrCat(tmp, "/empty_dir");
  std::filesystem::create_directories(empty);
  { std::ofstream(absl::StrCat(empty, "/notes.txt")) << "not a table\n"; }
  table = LoadOfaYamlDirectory(empty);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr(empty));

  const std::string bad = absl::StrCat(tmp, "/bad_dir");
  std::filesystem::create_directories(bad);
  { std::ofstream(absl::StrCat(bad, "/160_lookup_table.yaml")) << "A:\n  mean: 1.0\n"; }
  { std::ofstream(absl::StrCat(bad, "/176_lookup_table.yaml")) << "A:\n  mean: -1.0\n"; }
  table = LoadOfaYamlDirectory(bad);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), HasSubstr(absl::StrCat(bad, "/176_lookup_table.yaml:2:")));

  const std::string subdir = absl::StrCat(tmp, "/subdir_dir");
  std::filesystem::create_directories(absl::StrCat(subdir, "/160_lookup_table.yaml"));
  table = LoadOfaYamlDirectory(subdir);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(table.status().message(), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace apq::hwmodels
