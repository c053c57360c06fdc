// apq: command-line client of the apqd search service.
//
// Exit codes: 0 success; 1 the server refused or the job failed / found nothing feasible;
// 2 bad command line.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/command_line.h"
#include "clients/commands.h"
#include "clients/connection.h"

namespace apq::client {
namespace {

// The PEM text of the file given as `flag`; throws UsageError when it cannot be read or holds
// no PEM block.
std::string ReadPemFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  if (in) content << in.rdbuf();
  if (!in || content.str().find("-----BEGIN ") == std::string::npos) {
    throw UsageError{absl::StrCat(flag, ": cannot read a PEM file at '", path, "'")};
  }
  return content.str();
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::string(value) : std::string();
  };
  ConnectionOptions connection_options;
  if (!env("APQ_SERVER").empty()) connection_options.address = env("APQ_SERVER");
  connection_options.token = env("APQ_TOKEN");
  // The options before the command: "--name value" or "--name=value"; --tls takes none.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  const std::vector<std::pair<std::string, std::string*>> valued = {
      {"--server", &connection_options.address},
      {"--token", &connection_options.token},
      {"--ca", &ca_file},
      {"--cert", &cert_file},
      {"--key", &key_file}};
  while (!args.empty() && args[0].rfind("--", 0) == 0) {
    if (args[0] == "--help" || args[0] == "-h") {
      std::cout << UsageText();
      return kExitOk;
    }
    if (args[0] == "--tls") {
      connection_options.tls = true;
      args.erase(args.begin());
      continue;
    }
    bool matched = false;
    for (const auto& [name, target] : valued) {
      if (args[0] == name && args.size() >= 2) {
        *target = args[1];
        args.erase(args.begin(), args.begin() + 2);
        matched = true;
        break;
      }
      if (args[0].rfind(name + "=", 0) == 0) {
        *target = args[0].substr(name.size() + 1);
        args.erase(args.begin());
        matched = true;
        break;
      }
    }
    if (!matched) {
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
    if (cert_file.empty() != key_file.empty()) {
      throw UsageError{"--cert and --key: give both or neither"};
    }
    if (!ca_file.empty()) connection_options.ca_pem = ReadPemFile("--ca", ca_file);
    if (!cert_file.empty()) {
      connection_options.cert_pem = ReadPemFile("--cert", cert_file);
      connection_options.key_pem = ReadPemFile("--key", key_file);
    }
    Connection connection(connection_options);
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
