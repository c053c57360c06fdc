#include "common/strict_json.h"

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace apq {
namespace {

using ::testing::HasSubstr;

void ExpectRejected(const std::string& content, const std::string& message,
                    const JsonLimits& limits = {}) {
  const absl::StatusOr<nlohmann::json> parsed = ParseStrictJson(content, limits);
  ASSERT_FALSE(parsed.ok()) << content;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(message));
}

TEST(StrictJsonTest, BuildsTheSameDocumentAsTheLibrary) {
  for (
      const std::string text :
      {"null", "true", "-3", "18446744073709551615", "2.5e-3", "\"t\\u00e9xt\"", "[]", "{}",
       R"([{"wid":null,"ks":[3,5,7],"e":[3,4.5],"d":[2]},{"pw":[4,8],"x":{"y":[[1],[2,{"z":false}]]}}])",
       R"({"(16, 64, 112, 1, 1, 0, 1)-W8A8": {"latency": 0.25, "energy": 1e-3}, "b": {"latency": 2}})"}) {
    const absl::StatusOr<nlohmann::json> parsed = ParseStrictJson(text, {});
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status();
    EXPECT_EQ(*parsed, nlohmann::json::parse(text)) << text;
    EXPECT_EQ(parsed->dump(), nlohmann::json::parse(text).dump()) << text;
  }
}

TEST(StrictJsonTest, RejectsRepeatedKeysNamingWhere) {
  ExpectRejected(R"({"a": 1, "b": 2, "a": 3})", "duplicate key \"a\"");
  ExpectRejected(R"({"head": {"latency": 1}, "tail": {"energy": 1, "latency": 2, "energy": 3}})",
                 "key \"tail\": duplicate field \"energy\"");
  ExpectRejected(R"([{"ks": [3]}, {"pw": [4], "pw": [8]}])", "item 1: duplicate field \"pw\"");
  ExpectRejected(R"({"a": [0, {"b": {"c": 1, "c": 2}}]})",
                 "key \"a\", item 1, key \"b\": duplicate field \"c\"");
  // The same key in sibling objects is no repetition.
  EXPECT_TRUE(ParseStrictJson(R"([{"a": 1}, {"a": 2}, {"b": {"a": 3}}])", {}).ok());
}

TEST(StrictJsonTest, BoundsNestingAndSize) {
  JsonLimits limits;
  limits.max_depth = 3;
  EXPECT_TRUE(ParseStrictJson("[[[1]]]", limits).ok());
  ExpectRejected("[[[[1]]]]", "nesting deeper than 3 levels", limits);
  ExpectRejected(R"({"a": {"b": {"c": {}}}})", "nesting deeper than 3 levels", limits);
  // Ten million opening brackets stop at the limit instead of building ten million levels.
  std::string deep;
  deep.resize(10'000'000, '[');
  ExpectRejected(deep, "nesting deeper than 16 levels");

  limits = JsonLimits();
  limits.max_bytes = 8;
  EXPECT_TRUE(ParseStrictJson("[1,2,3]", limits).ok());
  ExpectRejected("[1,2,3,4,5]", "11 bytes, more than the limit of 8", limits);
}

TEST(StrictJsonTest, ReportsMalformedInputWithItsPosition) {
  ExpectRejected("{\"a\": [1, 2}", "parse error");
  ExpectRejected("", "parse error");
  ExpectRejected("[1] [2]", "parse error");
  ExpectRejected("{\"a\": 1,}", "column 9");
}

TEST(StrictJsonTest, StopsWhenCancelled) {
  std::string big = "[";
  for (int i = 0; i < 100'000; ++i) absl::StrAppend(&big, i == 0 ? "" : ",", i);
  big += "]";
  std::atomic<int> asked{0};
  const absl::StatusOr<nlohmann::json> parsed =
      ParseStrictJson(big, {}, [&asked] { return ++asked >= 2; });
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kCancelled);
  // Asked every few thousand values, and stopped at the second question.
  EXPECT_EQ(asked.load(), 2);
  EXPECT_TRUE(ParseStrictJson(big, {}, [] { return false; }).ok());
}

}  // namespace
}  // namespace apq
