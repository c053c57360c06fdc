// Fuzzes the bounded JSON parser every table upload and config goes through, against
// nlohmann::json's own parser: what it accepts, nlohmann accepts as the same value, within
// the limits; what it refuses is INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/strict_json.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_check.h"

namespace {

int Depth(const nlohmann::json& value) {
  int deepest = 0;
  if (value.is_structured()) {
    for (const nlohmann::json& child : value) {
      const int depth = Depth(child);
      if (depth > deepest) deepest = depth;
    }
    return deepest + 1;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  apq::JsonLimits limits;
  limits.max_bytes = 4096;
  limits.max_depth = 8;
  const absl::StatusOr<nlohmann::json> strict = apq::ParseStrictJson(content, limits);
  if (!strict.ok()) {
    FUZZ_CHECK(strict.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(size <= limits.max_bytes);
  FUZZ_CHECK(Depth(*strict) <= limits.max_depth);
  const nlohmann::json reference = nlohmann::json::parse(content, nullptr, false);
  FUZZ_CHECK(!reference.is_discarded());
  FUZZ_CHECK(reference == *strict);
  return 0;
}
