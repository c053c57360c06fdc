// The shipped BitFusion table for tests. Test-only.
#ifndef APQ_HWMODELS_APQ_BITFUSION_TABLE_TESTING_H_
#define APQ_HWMODELS_APQ_BITFUSION_TABLE_TESTING_H_

#include "hwmodels/cost_table.h"

namespace apq::hwmodels {

// data/apq_bitfusion/BitFusion_new.b1.dict, loaded on the first call (intentionally leaked).
// A load failure fails the calling test and yields an empty table.
const CostTable& ShippedBitFusionTable();

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_APQ_BITFUSION_TABLE_TESTING_H_
