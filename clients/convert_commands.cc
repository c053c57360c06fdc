#include "clients/convert_commands.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clients/config_convert.h"
#include "clients/connection.h"
#include "clients/output.h"

namespace apq::client {
namespace {

int Convert(Connection& /*connection*/, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"from", "resolution", "output"}, {}, 1);
  const std::string from = Require(args, "from");
  if (from != "ofa-net-config") {
    throw UsageError{
        "--from: only ofa-net-config is known (OFA's net.config of a MobileNetV3 "
        "subnet, converted to space ofa_mbv3's arch dict)"};
  }
  const std::string path = RequirePositional(args, "a net.config file");
  const nlohmann::json net_config = nlohmann::json::parse(ReadFileOrStdin(path), nullptr, false);
  if (net_config.is_discarded()) {
    std::cerr << "apq convert: " << path << ": not JSON\n";
    return kExitUsage;
  }
  const absl::StatusOr<nlohmann::json> arch =
      OfaArchFromNetConfig(net_config, ParseInt32(args, "resolution"));
  if (!arch.ok()) {
    std::cerr << "apq convert: " << path << ": " << arch.status().message() << "\n";
    return kExitUsage;
  }
  if (args.Has("output"))
    return WriteOutputFile(args.Get("output"), arch->dump() + "\n") ? kExitOk : kExitFailed;
  std::cout << arch->dump() << "\n";
  return kExitOk;
}

constexpr Command kConvertCommands[] = {
    {"convert", R"(  convert --from ofa-net-config --resolution R FILE [--output OUT]
      Convert once-for-all's net.config of a MobileNetV3 subnet (as OFA's specialized networks
      ship it; it does not record the input resolution, hence R) into space ofa_mbv3's arch
      dict, which evaluate, search --fixed-architecture and the reference code read. Works
      offline (no server).
)",
     Convert},
};

}  // namespace

absl::Span<const Command> ConvertCommands() { return kConvertCommands; }

}  // namespace apq::client
