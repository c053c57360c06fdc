#include "clients/command_line.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace apq::client {
namespace {

// The message of the UsageError `parse` throws, or "" when it throws none.
template <typename Parse>
std::string UsageErrorOf(Parse parse) {
  try {
    parse();
  } catch (const UsageError& error) {
    return error.message;
  }
  return "";
}

TEST(ArgsTest, SplitsFlagsFromPositionalArguments) {
  const Args args = Args::Parse({"JOB", "--limit", "5", "--sort=accuracy", "--json", "-"},
                                {"limit", "sort"}, {"json"}, 2);
  EXPECT_EQ(args.positional(), (std::vector<std::string>{"JOB", "-"}));
  EXPECT_EQ(args.Get("limit"), "5");
  EXPECT_EQ(args.Get("sort"), "accuracy");
  EXPECT_EQ(args.Get("json"), "true");
  EXPECT_FALSE(args.Has("front"));
  EXPECT_EQ(args.Get("front", "fallback"), "fallback");
}

TEST(ArgsTest, RefusesWhatTheCommandDoesNotTake) {
  EXPECT_EQ(UsageErrorOf([] { Args::Parse({"--front"}, {}, {"json"}, 0); }),
            "unknown flag --front");
  EXPECT_EQ(UsageErrorOf([] { Args::Parse({"--json=yes"}, {}, {"json"}, 0); }),
            "--json takes no value");
  EXPECT_EQ(UsageErrorOf([] { Args::Parse({"--limit"}, {"limit"}, {}, 0); }),
            "--limit needs a value");
  EXPECT_EQ(UsageErrorOf([] { Args::Parse({"a", "b"}, {}, {}, 1); }), "unexpected argument 'b'");
}

TEST(TypedFlagsTest, NameTheFlagAndTheBadValue) {
  const Args args =
      Args::Parse({"--x", "inf", "--n", "3000000000", "--seed", "-1"}, {"x", "n", "seed"}, {}, 0);
  EXPECT_EQ(UsageErrorOf([&] { ParseDouble(args, "x"); }), "--x: 'inf' is not a finite number");
  EXPECT_EQ(ParseInt(args, "n"), 3000000000);
  EXPECT_EQ(UsageErrorOf([&] { ParseInt32(args, "n"); }), "--n: 3000000000 is out of range");
  EXPECT_EQ(UsageErrorOf([&] { ParseSeed(args); }), "--seed: must be >= 0");
  EXPECT_EQ(UsageErrorOf([&] { Require(args, "space"); }), "--space is required");
  EXPECT_EQ(UsageErrorOf([&] { RequirePositional(args, "a job id"); }), "a job id is required");
}

TEST(ChoicesTest, ParseChoiceListsTheChoicesInTheirOrder) {
  constexpr std::pair<std::string_view, int> kThree[] = {{"b", 2}, {"a", 1}, {"c", 3}};
  EXPECT_EQ(ParseChoice<int>("f", "a", kThree), 1);
  EXPECT_EQ(UsageErrorOf([&] { ParseChoice<int>("f", "d", kThree); }), "--f: 'd' is not b, a or c");
  EXPECT_EQ(UsageErrorOf([] {
              ParseChoice<int>("f", "", {{"x", 1}, {"y", 2}});
            }),
            "--f: '' is not x or y");
  EXPECT_EQ(FindChoice<int>("c", kThree), 3);
  EXPECT_EQ(FindChoice<int>("z", kThree), std::nullopt);
}

}  // namespace
}  // namespace apq::client
