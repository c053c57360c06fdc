#include "hwmodels/apq_bitfusion_table_testing.h"

#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table.h"

namespace apq::hwmodels {

const CostTable& ShippedBitFusionTable() {
  static const CostTable* const kTable = [] {
    absl::StatusOr<CostTable> loaded =
        LoadApqBitFusionFile("data/apq_bitfusion/BitFusion_new.b1.dict");
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return new CostTable(loaded.ok() ? *std::move(loaded) : CostTable());
  }();
  return *kTable;
}

}  // namespace apq::hwmodels
