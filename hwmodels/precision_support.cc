#include "hwmodels/precision_support.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hwmodels/bitfusion_key.h"
#include "oface/conv_key.h"
#include "oface/restricted_space.h"

namespace apq::hwmodels {

bool Executes(const PrecisionSupport& support, const BitPair& pair) {
  if (!support.declared) return true;
  if (pair == BitPair{kFloatBits, kFloatBits}) return support.float_layers;
  return std::binary_search(support.pairs.begin(), support.pairs.end(), pair) ||
         std::binary_search(support.modelled_pairs.begin(), support.modelled_pairs.end(), pair);
}

bool KeyExecutes(const PrecisionSupport& support, std::string_view key) {
  if (!support.declared) return true;
  if (oface::ParsePrecisionChangeKey(key).ok()) return support.float_layers;
  absl::StatusOr<BitFusionConv> conv = ParseBitFusionKeyFields(key);
  if (!conv.ok()) return true;
  return Executes(support, {conv->w_bits, conv->a_bits});
}

namespace {

std::string JoinPairs(const std::vector<BitPair>& pairs) {
  std::vector<std::string> names;
  names.reserve(pairs.size());
  for (const BitPair& pair : pairs) names.push_back(PairName(pair));
  return absl::StrJoin(names, ", ");
}

}  // namespace

std::string DescribePrecisions(const PrecisionSupport& support) {
  if (!support.declared) return "any pair (the table declares none)";
  std::vector<std::string> parts;
  if (!support.pairs.empty()) parts.push_back(JoinPairs(support.pairs));
  if (support.float_layers) parts.emplace_back("float");
  std::string text = absl::StrJoin(parts, " or ");
  if (!support.modelled_pairs.empty()) {
    absl::StrAppend(&text, "; modelled: ", JoinPairs(support.modelled_pairs));
  }
  if (!support.int8_engine.empty()) {
    absl::StrAppend(&text, " (int8 on LibTorch's ", support.int8_engine, " engine)");
  }
  return text;
}

PrecisionSupport WithModelledPairs(PrecisionSupport support, int min_bits, int max_bits) {
  if (!support.declared) return support;
  for (int w = min_bits; w <= max_bits; ++w) {
    for (int a = min_bits; a <= max_bits; ++a) {
      const BitPair pair{w, a};
      if (!std::binary_search(support.pairs.begin(), support.pairs.end(), pair)) {
        support.modelled_pairs.push_back(pair);
      }
    }
  }
  std::sort(support.modelled_pairs.begin(), support.modelled_pairs.end());
  support.modelled_pairs.erase(
      std::unique(support.modelled_pairs.begin(), support.modelled_pairs.end()),
      support.modelled_pairs.end());
  return support;
}

PrecisionSupport BitFusionPrecisions(bool with_fitted_model) {
  PrecisionSupport support;
  support.declared = true;
  for (const int w : {4, 6, 8}) {
    for (const int a : {4, 6, 8}) support.pairs.push_back({w, a});
  }
  return with_fitted_model ? WithModelledPairs(std::move(support), 2, 8) : support;
}

absl::StatusOr<std::unique_ptr<oface::SearchSpace>> NewExecutableSpace(
    const oface::SearchSpace& space, const PrecisionSupport& support,
    absl::string_view device_label) {
  if (!support.declared) return nullptr;
  const auto allowed = [support](int w, int a) { return Executes(support, {w, a}); };
  absl::StatusOr<std::unique_ptr<oface::SearchSpace>> view =
      oface::NewBitPairsSpace(space, allowed, device_label);
  if (!view.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(view.status().message(), " (it runs ", DescribePrecisions(support), ")"));
  }
  return view;
}

}  // namespace apq::hwmodels
