// once-for-all's MobileNetV3 (w1.2) space, "ofa_mbv3": 5 stages of up to 4 MBConv blocks
// (20 block slots), each block with a kernel size and an expand ratio, each stage with a
// depth, and one input resolution. Block i (stage i / 4) is active iff (i % 4) < d[i / 4];
// the genes of inactive blocks have no effect on anything.
//
// Gene order (46 genes): ks[0..19] in {3, 5, 7}, e[0..19] in {3, 4, 6}, d[0..4] in
// {2, 3, 4}, r in {160, 176, 192, 208, 224}.
// Mutation groups, in OFA's mutate_sample order: {r} (kResolution), then {ks[i], e[i]} for
// i = 0..19 (kBlock), then {d[s]} for s = 0..4 (kDepth). No cross-gene rules.
// Predictor encoding: OFA's 128-entry spec2feats one-hot (ks, then e, then resolution).
// Cost terms: keys "<r>/<OFA lookup-table yaml key>", summed in OFA's
// LatencyTable.predict_efficiency order.
// DecomposeCosts: kBlocks only (no bitwidths), given the depths and the resolution: the fixed
// part is the head's and tail's terms at r, then "block i" (genes ks[i], e[i]) per active block.
// JSON: OFA's arch dict {"ks": [20], "e": [20], "d": [5], "r": r}; FromJson also takes
// "r": [r] and an ignored "wid": null.
#ifndef APQ_OFACE_OFA_MBV3_SPACE_H_
#define APQ_OFACE_OFA_MBV3_SPACE_H_

#include <memory>

#include "oface/search_space.h"

namespace apq::oface {

std::unique_ptr<SearchSpace> NewOfaMbv3Space();

}  // namespace apq::oface

#endif  // APQ_OFACE_OFA_MBV3_SPACE_H_
