// Fuzzes APQ's BitFusion dict JSON table loader with the bytes of one uploaded file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hwmodels/apq_bitfusion_table.h"
#include "tests/fuzz/cost_table_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  apq::fuzz::CheckLoadedTable(apq::hwmodels::LoadApqBitFusionTable(content, "upload.json"),
                              apq::hwmodels::TableFormat::kApqBitFusion, "upload.json");
  return 0;
}
