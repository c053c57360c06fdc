// Fuzzes the two parsers of files the apq client reads from its user: the CI profile (a YAML
// subset) and OFA's net.config (JSON) for `apq convert`. Whatever the bytes, each answers a
// value meeting its contract or INVALID_ARGUMENT with a message that says where: the profile's
// "line N: ...", the net.config's "net.config <path>: ..." (or the resolution's).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "clients/ci_profile.h"
#include "clients/config_convert.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<apq::client::CiProfile> profile = apq::client::ParseCiProfile(text);
  if (profile.ok()) {
    FUZZ_CHECK(!profile->request.space().empty());
    FUZZ_CHECK(!profile->request.device().empty());
    const auto& budgets = profile->request.budgets();
    FUZZ_CHECK(budgets.has_max_latency_ms() || budgets.has_max_energy_mj() ||
               budgets.has_max_size_mb() || budgets.has_max_bitops());
    FUZZ_CHECK(!profile->min_accuracy.has_value() ||
               (*profile->min_accuracy >= 0 && *profile->min_accuracy <= 1));
    FUZZ_CHECK(apq::client::CiRequestKey(profile->request, 1, "p").size() == 16);
  } else {
    FUZZ_CHECK(profile.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(profile.status().message(), "line ") ||
               absl::StartsWith(profile.status().message(), "the profile is larger"));
  }

  const nlohmann::json net_config = nlohmann::json::parse(text, nullptr, false);
  if (net_config.is_discarded()) return 0;
  const absl::StatusOr<nlohmann::json> arch = apq::client::OfaArchFromNetConfig(net_config, 192);
  if (arch.ok()) {
    FUZZ_CHECK((*arch)["ks"].size() == 20 && (*arch)["e"].size() == 20);
    FUZZ_CHECK((*arch)["d"].size() == 5);
    for (const nlohmann::json& depth : (*arch)["d"]) {
      FUZZ_CHECK(depth.get<int>() >= 2 && depth.get<int>() <= 4);
    }
  } else {
    FUZZ_CHECK(arch.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(arch.status().message(), "net.config "));
  }
  return 0;
}
