#include "bench/network_list.h"

#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace apq::bench {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxNetworksFileBytes = size_t{4} << 20;
constexpr size_t kMaxNetworks = 500;
constexpr size_t kMaxNameBytes = 100;

}  // namespace

absl::StatusOr<std::vector<Network>> ReadNetworks(const std::string& path,
                                                  const oface::SearchSpace& space) {
  if (path.empty()) return absl::InvalidArgumentError("--networks is required");
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) return absl::NotFoundError(absl::StrCat("--networks: cannot read ", path));
  if (size > kMaxNetworksFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--networks: ", path, " is larger than ", kMaxNetworksFileBytes, " bytes"));
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  const json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("--networks: ", path, " is not a JSON list"));
  }
  if (parsed.empty() || parsed.size() > kMaxNetworks) {
    return absl::InvalidArgumentError(
        absl::StrCat("--networks: need 1 to ", kMaxNetworks, " networks, got ", parsed.size()));
  }
  std::vector<Network> networks;
  std::set<std::string> names;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const std::string where = absl::StrCat("--networks[", i, "]");
    const json& entry = parsed[i];
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("config")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected {\"name\": string, \"config\": config}"));
    }
    Network network;
    network.name = entry["name"].get<std::string>();
    if (network.name.empty() || network.name.size() > kMaxNameBytes ||
        network.name.find_first_of(":,") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".name: 1 to ", kMaxNameBytes,
                                                     " bytes without ':' or ',', got '",
                                                     network.name, "'"));
    }
    if (!names.insert(network.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name: '", network.name, "' is used twice"));
    }
    absl::StatusOr<oface::Genotype> genotype = space.FromJson(entry["config"].dump());
    if (!genotype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".config: ", genotype.status().message()));
    }
    network.genotype = space.Canonical(*genotype);
    network.config_json = space.ToJson(network.genotype);
    networks.push_back(std::move(network));
  }
  return networks;
}

}  // namespace apq::bench
