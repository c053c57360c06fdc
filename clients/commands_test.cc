#include "clients/commands.h"

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "clients/access_commands.h"
#include "clients/ci_commands.h"
#include "clients/connection.h"
#include "clients/convert_commands.h"
#include "clients/device_commands.h"
#include "clients/output.h"
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
       {DeviceCommands(), SearchCommands(), CiCommands(), ConvertCommands(), PredictorCommands(),
        AccessCommands()}) {
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
  EXPECT_EQ(names.size(), 34u);
  EXPECT_EQ(FindCommand("search --wait"), nullptr);
}

TEST(CommandsTest, UsageHasTheGlobalFlagsAndEveryHeading) {
  const std::string usage = UsageText();
  EXPECT_TRUE(absl::StartsWith(usage,
                               "usage: apq [--server ADDR] [--token TOKEN] [--tls] [--ca PEM] "
                               "[--cert PEM --key PEM] COMMAND [flags]\n\nCommands:\n"
                               "  spaces [NAME] [--json]\n"));
  EXPECT_TRUE(absl::StrContains(usage, "  cancel JOB\n  delete JOB\n"));
  EXPECT_TRUE(absl::StrContains(usage, "\nAccuracy predictors:\n  upload-dataset --name N"));
  EXPECT_TRUE(absl::StrContains(usage, "\nAccess (admin tokens):\n  whoami [--json]"));
  EXPECT_TRUE(absl::StrContains(usage, "$APQ_SERVER or 127.0.0.1:50051, the token to $APQ_TOKEN"));
}

// The UsageError that running `command` with `argv` throws, or "" when it throws none. No
// server listens at the address: a command that gets as far as its call fails there.
std::string UsageErrorOf(const char* command, const std::vector<std::string>& argv) {
  Connection connection("127.0.0.1:1");
  try {
    FindCommand(command)->run(connection, argv);
  } catch (const UsageError& error) {
    return error.message;
  }
  return "";
}

TEST(CommandsTest, IntegerFlagsBeyondInt32AreRefusedNamingTheFlag) {
  // 2^32 + 1 and 2^32 + 8 would wrap to 1 and 8.
  EXPECT_EQ(UsageErrorOf("evaluate", {"--space", "fmnist_mbv2", "--measure", "quantized",
                                      "--test-images", "4294967297", "--config", "absent.json"}),
            "--test-images: 4294967297 is out of range");
  EXPECT_EQ(UsageErrorOf("search", {"--space", "fmnist_mbv2", "--device", "local-cpu",
                                    "--uniform-bits", "4294967304"}),
            "--uniform-bits: 4294967304 is out of range");
}

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

size_t FilesIn(const std::filesystem::path& dir) {
  return std::distance(std::filesystem::directory_iterator(dir),
                       std::filesystem::directory_iterator());
}

TEST(WriteOutputFileTest, AWriteThatFailsLeavesTheFileAsItWas) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "output_files";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path target = dir / "best.json";
  std::ofstream(target) << "old\n";
  ASSERT_TRUE(WriteOutputFile(target.string(), "new\n"));
  EXPECT_EQ(ReadWholeFile(target), "new\n");
  EXPECT_EQ(FilesIn(dir), 1u) << "no temporary left";

  // A file-size limit far below the content makes the write fail midway (EFBIG, the signal
  // ignored).
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit previous_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &previous_limit), 0);
  rlimit small = previous_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const bool written = WriteOutputFile(target.string(), std::string(1 << 20, 'x'));
  setrlimit(RLIMIT_FSIZE, &previous_limit);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_FALSE(written);
  EXPECT_EQ(ReadWholeFile(target), "new\n");
  EXPECT_EQ(FilesIn(dir), 1u) << "the temporary is removed";

  // A folder that does not exist: nothing is written anywhere.
  EXPECT_FALSE(WriteOutputFile((dir / "absent" / "best.json").string(), "new\n"));
  EXPECT_EQ(FilesIn(dir), 1u);

  // A device is written in place, never replaced: a full one fails the write.
  EXPECT_FALSE(WriteOutputFile("/dev/full", "new\n"));
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/full"));
  EXPECT_TRUE(WriteOutputFile("/dev/null", "new\n"));
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
}

}  // namespace
}  // namespace apq::client
