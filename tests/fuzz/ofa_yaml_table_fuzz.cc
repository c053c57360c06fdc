// Fuzzes once-for-all's <r>_lookup_table.yaml loader with the bytes of one uploaded file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hwmodels/ofa_yaml_table.h"
#include "tests/fuzz/cost_table_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "224_lookup_table.yaml";
  const std::vector<std::pair<std::string, std::string>> files = {
      {name, std::string(reinterpret_cast<const char*>(data), size)}};
  apq::fuzz::CheckLoadedTable(apq::hwmodels::LoadOfaYamlTables(files),
                              apq::hwmodels::TableFormat::kOfaYaml, name);
  return 0;
}
