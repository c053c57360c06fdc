#include "clients/device_commands.h"

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "clients/connection.h"
#include "clients/output.h"
#include "nlohmann/json.hpp"

namespace apq::client {
namespace {

using apq::v1::DeviceService;
using nlohmann::json;

json TableVersionJson(const apq::v1::TableVersion& version) {
  return {{"version", version.version()},
          {"format", apq::v1::TableFormat_Name(version.format())},
          {"entries", version.entries()},
          {"sha256", version.sha256()},
          {"description", version.description()},
          {"covered_spaces", StringList(version.covered_spaces())},
          {"modelled_spaces", StringList(version.modelled_spaces())},
          {"precisions",
           {{"declared", version.precisions().declared()},
            {"pairs", StringList(version.precisions().pairs())},
            {"modelled_pairs", StringList(version.precisions().modelled_pairs())},
            {"float_layers", version.precisions().float_layers()},
            {"int8_engine", version.precisions().int8_engine()},
            {"summary", version.precisions().summary()}}}};
}

json DeviceJson(const apq::v1::Device& device) {
  json versions = json::array();
  for (const apq::v1::TableVersion& version : device.versions()) {
    versions.push_back(TableVersionJson(version));
  }
  return {{"name", device.name()}, {"versions", versions}};
}

// The device's name, then a line for each table version.
void PrintDevice(const apq::v1::Device& device) {
  std::cout << device.name() << "\n";
  for (const apq::v1::TableVersion& version : device.versions()) {
    std::cout << "  v" << version.version() << "  " << apq::v1::TableFormat_Name(version.format())
              << "  " << version.entries()
              << " entries  spaces: " << absl::StrJoin(version.covered_spaces(), ",");
    if (!version.modelled_spaces().empty()) {
      std::cout << " (modelled: " << absl::StrJoin(version.modelled_spaces(), ",") << ")";
    }
    std::cout << "  " << version.description() << "\n"
              << "      runs: " << version.precisions().summary() << "\n";
  }
}

int Devices(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 1);
  std::vector<apq::v1::Device> devices;
  if (!args.positional().empty()) {
    apq::v1::GetDeviceRequest request;
    request.set_device(args.positional()[0]);
    apq::v1::Device device;
    const grpc::Status status =
        CallUnary(connection.devices(), &DeviceService::Stub::GetDevice, request, &device);
    if (!status.ok()) return ReportRpcError(status);
    devices.push_back(device);
  } else {
    apq::v1::ListDevicesResponse response;
    const grpc::Status status = CallUnary(connection.devices(), &DeviceService::Stub::ListDevices,
                                          apq::v1::ListDevicesRequest(), &response);
    if (!status.ok()) return ReportRpcError(status);
    devices.assign(response.devices().begin(), response.devices().end());
  }
  PrintListing(devices, args.Has("json"), DeviceJson, PrintDevice);
  return kExitOk;
}

apq::v1::TableFormat ParseTableFormat(const Args& args) {
  return ParseChoice<apq::v1::TableFormat>("format", Require(args, "format"),
                                           {{"ofa-yaml", apq::v1::TABLE_FORMAT_OFA_YAML},
                                            {"apq-bitfusion", apq::v1::TABLE_FORMAT_APQ_BITFUSION},
                                            {"conv-json", apq::v1::TABLE_FORMAT_CONV_JSON}});
}

int TableTemplate(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"space", "format", "out"}, {"json"}, 0);
  apq::v1::GetTableTemplateRequest request;
  request.set_space(Require(args, "space"));
  request.set_format(ParseTableFormat(args));
  const std::string folder = Require(args, "out");
  apq::v1::TableTemplate response;
  const grpc::Status status =
      CallUnary(connection.devices(), &DeviceService::Stub::GetTableTemplate, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) {
    std::cerr << "apq: --out: cannot create " << folder << ": " << error.message() << "\n";
    return kExitFailed;
  }
  json files = json::array();
  for (const apq::v1::TableFile& file : response.files()) {
    const std::string path = (std::filesystem::path(folder) / file.name()).string();
    if (!WriteOutputFile(path, file.content())) return kExitFailed;
    files.push_back(path);
  }
  if (args.Has("json")) {
    PrintJson({{"space", response.space()},
               {"files", files},
               {"entries", response.entries()},
               {"shapes", response.shapes()},
               {"unrepresentable_keys", StringList(response.unrepresentable_keys())}});
    return kExitOk;
  }
  std::cout << "wrote " << absl::StrJoin(files.get<std::vector<std::string>>(), ", ") << ": "
            << response.entries() << " entries to measure (" << response.shapes()
            << " layer shapes); replace every placeholder (TODO or null) with the figure "
               "measured, then upload with: apq upload-table --device D --format "
            << args.Get("format") << " "
            << absl::StrJoin(files.get<std::vector<std::string>>(), " ") << "\n";
  if (response.unrepresentable_keys_size() > 0) {
    std::cout << response.unrepresentable_keys_size()
              << " keys the space needs cannot be written in this format (e.g. "
              << response.unrepresentable_keys(0)
              << "); the device prices them only by a model fitted to the table, if it has one\n";
  }
  return kExitOk;
}

int UploadTable(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"device", "format", "description"}, {"json"}, 1000);
  apq::v1::UploadCostTableRequest request;
  request.set_device(Require(args, "device"));
  request.set_format(ParseTableFormat(args));
  request.set_description(args.Get("description"));
  if (args.positional().empty()) throw UsageError{"at least one table file is required"};
  for (const std::string& path : args.positional()) {
    apq::v1::TableFile* file = request.add_files();
    file->set_name(path.substr(path.find_last_of('/') + 1));
    file->set_content(ReadFileOrStdin(path));
  }
  apq::v1::Device device;
  const grpc::Status status = CallUnary(connection.devices(), &DeviceService::Stub::UploadCostTable,
                                        request, &device, kUploadDeadline);
  if (!status.ok()) return ReportRpcError(status);
  const apq::v1::TableVersion& latest = device.versions(device.versions_size() - 1);
  if (args.Has("json")) {
    PrintJson({{"device", device.name()},
               {"version", latest.version()},
               {"entries", latest.entries()},
               {"sha256", latest.sha256()},
               {"covered_spaces", StringList(latest.covered_spaces())}});
  } else {
    std::cout << device.name() << " v" << latest.version() << ": " << latest.entries()
              << " entries, covers: " << absl::StrJoin(latest.covered_spaces(), ", ") << "\n";
  }
  return kExitOk;
}

json SpaceJson(const apq::v1::SpaceDescription& space) {
  json fields = json::array();
  for (const apq::v1::ConfigField& field : space.fields()) {
    json values = json::array();
    for (const std::string& value : field.json_values()) values.push_back(value);
    fields.push_back({{"name", field.name()},
                      {"json_path", field.json_path()},
                      {"choices", std::vector<int>(field.choices().begin(), field.choices().end())},
                      {"json_values", values},
                      {"is_bits", field.is_bits()}});
  }
  json out = {{"name", space.name()},
              {"config_format", space.config_format()},
              {"field_count", space.field_count()},
              {"rules", StringList(space.rules())},
              {"example_config", json::parse(space.example_config_json(), nullptr, false)},
              {"devices", StringList(space.devices())},
              {"modelled_devices", StringList(space.modelled_devices())},
              {"has_bits", space.has_bits()},
              {"has_supernet", space.has_supernet()},
              {"supernet_version", space.supernet_version()},
              {"has_predictor", space.has_predictor()},
              {"predictor_version", space.predictor_version()}};
  if (!fields.empty()) out["fields"] = fields;
  json precisions = json::array();
  for (const apq::v1::SpacePrecisionsOnDevice& on_device : space.device_precisions()) {
    precisions.push_back({{"device", on_device.device()},
                          {"pairs", StringList(on_device.pairs())},
                          {"restricted", on_device.restricted()},
                          {"summary", on_device.summary()}});
  }
  out["device_precisions"] = precisions;
  return out;
}

// The space's summary line, then (described in full) its format, rules and fields.
void PrintSpace(const apq::v1::SpaceDescription& space) {
  std::cout << space.name() << ": " << space.field_count() << " fields"
            << (space.has_bits() ? ", mixed precision" : "")
            << (space.has_supernet() ? ", supernet " + space.supernet_version() : ", no supernet")
            << (space.has_predictor() ? ", predictor " + space.predictor_version()
                                      : ", no predictor")
            << "\n  devices: "
            << (space.devices().empty() ? "none fully" : absl::StrJoin(space.devices(), ", "));
  if (!space.modelled_devices().empty()) {
    std::cout << " (modelled: " << absl::StrJoin(space.modelled_devices(), ", ") << ")";
  }
  std::cout << "\n";
  for (const apq::v1::SpacePrecisionsOnDevice& on_device : space.device_precisions()) {
    if (!on_device.restricted()) continue;
    std::cout << "  on " << on_device.device() << " only " << absl::StrJoin(on_device.pairs(), ", ")
              << " of its pairs run (" << on_device.summary() << ")\n";
  }
  if (space.fields().empty()) return;
  std::cout << "  format: " << space.config_format() << "\n";
  for (const std::string& rule : space.rules()) std::cout << "  rule: " << rule << "\n";
  for (const apq::v1::ConfigField& field : space.fields()) {
    std::cout << "  " << field.name() << " at "
              << (field.json_path().empty() ? "-" : field.json_path()) << ": "
              << absl::StrJoin(field.json_values(), " | ") << "\n";
  }
  std::cout << "  example: " << space.example_config_json() << "\n";
}

int Spaces(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 1);
  std::vector<apq::v1::SpaceDescription> spaces;
  if (!args.positional().empty()) {
    apq::v1::DescribeSpaceRequest request;
    request.set_space(args.positional()[0]);
    apq::v1::SpaceDescription space;
    const grpc::Status status = CallUnary(
        connection.spaces(), &apq::v1::SpaceService::Stub::DescribeSpace, request, &space);
    if (!status.ok()) return ReportRpcError(status);
    spaces.push_back(space);
  } else {
    apq::v1::ListSpacesResponse response;
    const grpc::Status status =
        CallUnary(connection.spaces(), &apq::v1::SpaceService::Stub::ListSpaces,
                  apq::v1::ListSpacesRequest(), &response);
    if (!status.ok()) return ReportRpcError(status);
    spaces.assign(response.spaces().begin(), response.spaces().end());
  }
  PrintListing(spaces, args.Has("json"), SpaceJson, PrintSpace);
  return kExitOk;
}

constexpr Command kDeviceCommands[] = {
    {"spaces", R"(  spaces [NAME] [--json]
      The spaces the server searches: their devices, supernet and predictor; with NAME,
      every field of its configs (where a config holds it, the values it accepts as a
      config writes them), its rules and an example config.
)",
     Spaces},
    {"devices", R"(  devices [NAME] [--json]
      List devices and their cost-table versions (or one device).
)",
     Devices},
    {"upload-table",
     R"(  upload-table --device D --format ofa-yaml|apq-bitfusion|conv-json [--description T] FILE...
      Upload a new version of a device's cost table.
)",
     UploadTable},
    {"table-template",
     R"(  table-template --space S --format ofa-yaml|apq-bitfusion|conv-json --out DIR [--json]
      For hardware teams: write into DIR the cost-table files of the space in the format, with
      every key (layer shape and bit pair) the space needs and a placeholder for each figure.
      Measure those, fill them in, and upload-table covers the space.
)",
     TableTemplate},
};

}  // namespace

absl::Span<const Command> DeviceCommands() { return kDeviceCommands; }

}  // namespace apq::client
