// Fuzzes the conv-json table loader with the bytes of one uploaded file. A table it loads
// also survives ConvTableToJson and a second load unchanged, its precision declaration
// included.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hwmodels/conv_latency_table.h"
#include "tests/fuzz/cost_table_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<apq::hwmodels::CostTable> table =
      apq::hwmodels::LoadConvTable(content, "upload.json");
  apq::fuzz::CheckLoadedTable(table, apq::hwmodels::TableFormat::kConvJson, "upload.json");
  if (!table.ok()) return 0;
  const std::string written = apq::hwmodels::ConvTableToJson(*table);
  const absl::StatusOr<apq::hwmodels::CostTable> again =
      apq::hwmodels::LoadConvTable(written, "written.json");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->entries.size() == table->entries.size());
  FUZZ_CHECK(again->precisions.declared == table->precisions.declared);
  FUZZ_CHECK(again->precisions.pairs == table->precisions.pairs);
  FUZZ_CHECK(again->precisions.float_layers == table->precisions.float_layers);
  FUZZ_CHECK(again->precisions.int8_engine == table->precisions.int8_engine);
  for (const auto& [key, entry] : table->entries) {
    const auto found = again->entries.find(key);
    FUZZ_CHECK(found != again->entries.end());
    FUZZ_CHECK(found->second.latency_ms == entry.latency_ms);
    FUZZ_CHECK(found->second.energy_mj == entry.energy_mj);
  }
  return 0;
}
