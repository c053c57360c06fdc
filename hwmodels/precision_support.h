// Reading a device's precision declaration (hwmodels/cost_table.h: PrecisionSupport): which
// (weight, activation) bit pairs and float layers it executes, in words, per key and as a view
// of a space that holds only what the device runs.
//
// Where declarations come from: a conv table JSON declares its own ("precisions",
// hwmodels/conv_latency_table.h); once-for-all's tables time float networks; APQ's BitFusion
// format has no declaration (its loader leaves it undeclared): BitFusionPrecisions says what
// the accelerator runs.
#ifndef APQ_HWMODELS_PRECISION_SUPPORT_H_
#define APQ_HWMODELS_PRECISION_SUPPORT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hwmodels/cost_table.h"
#include "oface/search_space.h"

namespace apq::hwmodels {

// Whether the device runs a layer at `pair`: always for an undeclared table; else a declared
// or modelled pair, or float (W32A32) with float_layers.
bool Executes(const PrecisionSupport& support, const BitPair& pair);

// Whether the device runs the layer of a table key: a conv key per Executes of its pair; a
// change of precision between an int8 and a float layer ("(C, H)-quantize", oface/conv_key.h)
// when the device runs float layers (or declares nothing); other keys ("head", OFA's keys)
// always.
bool KeyExecutes(const PrecisionSupport& support, std::string_view key);

// In words, for errors and listings: "W8A8 or float (int8 on LibTorch's qnnpack engine)",
// "W4A4, W4A6, ... W8A8; W2A2 ... W8A8 modelled", "float", "any pair (no declaration)".
std::string DescribePrecisions(const PrecisionSupport& support);

// BitFusion: the W{4,6,8}A{4,6,8} pairs its table prices, and with a model fitted to the table
// (hwmodels/bitfusion_analytic.h) every other 2-8 bit pair, modelled.
PrecisionSupport BitFusionPrecisions(bool with_fitted_model);

// `support` with every pair of min_bits..max_bits that it does not declare added as modelled
// (an estimator fitted to the table prices them).
PrecisionSupport WithModelledPairs(PrecisionSupport support, int min_bits, int max_bits);

// The view of `space` a search on the device explores (oface::NewBitPairsSpace with
// Executes): null when the device runs every pair the space offers. FAILED_PRECONDITION naming
// the layer's genes and `device_label` when a layer has no pair the device runs.
absl::StatusOr<std::unique_ptr<oface::SearchSpace>> NewExecutableSpace(
    const oface::SearchSpace& space, const PrecisionSupport& support,
    absl::string_view device_label);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_PRECISION_SUPPORT_H_
