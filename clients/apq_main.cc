// apq: command-line client of the apqd search service.
//
// Exit codes: 0 success; 1 the server refused or the job failed / found nothing feasible;
// 2 bad command line.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/command_line.h"
#include "clients/commands.h"
#include "clients/connection.h"

namespace apq::client {
namespace {

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* from_env = std::getenv("APQ_SERVER");
  std::string server = from_env != nullptr && *from_env != '\0' ? from_env : "127.0.0.1:50051";
  while (!args.empty() && args[0].rfind("--", 0) == 0) {
    if (args[0] == "--help" || args[0] == "-h") {
      std::cout << UsageText();
      return kExitOk;
    }
    if (args[0] == "--server" && args.size() >= 2) {
      server = args[1];
      args.erase(args.begin(), args.begin() + 2);
    } else if (args[0].rfind("--server=", 0) == 0) {
      server = args[0].substr(9);
      args.erase(args.begin());
    } else {
      std::fprintf(stderr, "apq: unknown option %s\n%s", args[0].c_str(), UsageText().c_str());
      return kExitUsage;
    }
  }
  if (args.empty()) {
    std::fprintf(stderr, "%s", UsageText().c_str());
    return kExitUsage;
  }
  const std::string command_name = args[0];
  args.erase(args.begin());
  try {
    const Command* command = FindCommand(command_name);
    if (command == nullptr) {
      throw UsageError{absl::StrCat("unknown command '", command_name, "'")};
    }
    Connection connection(server);
    return command->run(connection, args);
  } catch (const UsageError& error) {
    std::fprintf(stderr, "apq %s: %s\n(run 'apq --help' for usage)\n", command_name.c_str(),
                 error.message.c_str());
    return kExitUsage;
  } catch (const std::exception& error) {
    // nlohmann::json and the standard library report by exception; nothing escapes main.
    std::fprintf(stderr, "apq %s: %s\n", command_name.c_str(), error.what());
    return kExitFailed;
  }
}

}  // namespace
}  // namespace apq::client

int main(int argc, char** argv) { return apq::client::Main(argc, argv); }
