#include "clients/commands.h"

#include "absl/types/span.h"
#include "clients/access_commands.h"
#include "clients/ci_commands.h"
#include "clients/convert_commands.h"
#include "clients/device_commands.h"
#include "clients/predictor_commands.h"
#include "clients/search_commands.h"

namespace apq::client {
namespace {

// The commands in the order the usage text lists them, under its headings: the space and
// device commands open and close the general ones, as a user meets them first and last. Every
// command of the groups' tables is listed once (commands_test checks).
constexpr const char* kGeneralCommands[] = {"spaces", "devices",      "evaluate",       "search",
                                            "sweep",  "sweep-status", "engines",        "watch",
                                            "jobs",   "candidates",   "plot",           "config",
                                            "ci",     "artifacts",    "artifact",       "cancel",
                                            "delete", "upload-table", "table-template", "convert"};
constexpr const char* kAccessCommands[] = {"whoami", "token-create", "tokens", "token-revoke"};
constexpr const char* kAccuracyPredictorCommands[] = {
    "upload-dataset", "datasets", "measure",         "measurements", "cancel-measurement",
    "train",          "training", "cancel-training", "predictors",   "set-default-predictor"};

void AppendUsage(absl::Span<const char* const> names, std::string* usage) {
  for (const char* name : names) *usage += FindCommand(name)->usage;
}

}  // namespace

const Command* FindCommand(std::string_view name) {
  for (absl::Span<const Command> group :
       {DeviceCommands(), SearchCommands(), CiCommands(), ConvertCommands(), PredictorCommands(),
        AccessCommands()}) {
    for (const Command& command : group) {
      if (name == command.name) return &command;
    }
  }
  return nullptr;
}

std::string UsageText() {
  std::string usage =
      "usage: apq [--server ADDR] [--token TOKEN] [--tls] [--ca PEM] [--cert PEM --key PEM] "
      "COMMAND [flags]\n\nCommands:\n";
  AppendUsage(kGeneralCommands, &usage);
  usage += "\nAccuracy predictors:\n";
  AppendUsage(kAccuracyPredictorCommands, &usage);
  usage += "\nAccess (admin tokens):\n";
  AppendUsage(kAccessCommands, &usage);
  usage +=
      "\nThe server address defaults to $APQ_SERVER or 127.0.0.1:50051, the token to "
      "$APQ_TOKEN. --tls verifies the server against the system's roots or --ca; --cert and "
      "--key present a client certificate (mutual TLS).\n";
  return usage;
}

}  // namespace apq::client
