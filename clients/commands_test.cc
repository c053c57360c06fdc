#include "clients/commands.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "clients/device_commands.h"
#include "clients/predictor_commands.h"
#include "clients/search_commands.h"
#include "gtest/gtest.h"

namespace apq::client {
namespace {

size_t CountOccurrences(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

TEST(CommandsTest, EveryCommandIsFoundByItsNameAndListedOnceInTheUsage) {
  const std::string usage = UsageText();
  std::set<std::string> names;
  for (absl::Span<const Command> group :
       {DeviceCommands(), SearchCommands(), PredictorCommands()}) {
    for (const Command& command : group) {
      SCOPED_TRACE(command.name);
      EXPECT_TRUE(names.insert(command.name).second) << "two commands of this name";
      EXPECT_EQ(FindCommand(command.name), &command);
      EXPECT_TRUE(absl::StartsWith(command.usage, absl::StrCat("  ", command.name, " ")) ||
                  command.usage == absl::StrCat("  ", command.name, "\n"));
      EXPECT_TRUE(absl::EndsWith(command.usage, "\n"));
      EXPECT_EQ(CountOccurrences(usage, command.usage), 1u);
    }
  }
  EXPECT_EQ(names.size(), 17u);
  EXPECT_EQ(FindCommand("search --wait"), nullptr);
}

TEST(CommandsTest, UsageHasTheGlobalFlagsAndBothHeadings) {
  const std::string usage = UsageText();
  EXPECT_TRUE(absl::StartsWith(usage,
                               "usage: apq [--server ADDR] COMMAND [flags]\n\nCommands:\n"
                               "  devices [NAME] [--json]\n"));
  EXPECT_TRUE(absl::StrContains(usage, "  cancel JOB\n  upload-table --device D"));
  EXPECT_TRUE(absl::StrContains(usage, "\nAccuracy predictors:\n  upload-dataset --name N"));
  EXPECT_TRUE(absl::EndsWith(usage,
                             "\nThe server address defaults to $APQ_SERVER or "
                             "127.0.0.1:50051.\n"));
}

}  // namespace
}  // namespace apq::client
