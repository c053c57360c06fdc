// The loss-change model of a bit policy as CLADO (Deng et al. 2023) builds it: with one-hot
// choice vector x (one choice per slot, a layer's bitwidths), the loss change against a
// reference policy is modelled as x^T G x, where G's diagonal holds each single change's
// measured loss change and the off-diagonal terms each pair's interaction:
//   G[i][i] = L(ref with i) - L(ref)
//   G[i][j] = G[j][i] = (L(ref with i and j) - L(ref) - G[i][i] - G[j][j]) / 2
// for choices i, j of two different slots (a reference choice changes nothing: its rows are 0).
// Then x^T G x is exact for every policy that departs from the reference in at most two slots,
// and a model of interactions beyond. Clipping G's negative eigenvalues makes it positive
// semi-definite, as the paper does, so the allocation program is convex in its relaxation.
//
// What a loss is (a supernet's cross-entropy on calibration images at the policy) is the
// caller's: the measurement here only chooses which policies to evaluate.
#ifndef APQ_SEARCH_CROSS_LAYER_SENSITIVITY_H_
#define APQ_SEARCH_CROSS_LAYER_SENSITIVITY_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace apq::search {

struct SensitivityOptions {
  // false: singles only (the off-diagonal terms are 0), the independent-sensitivity baseline.
  bool pairs = true;
  // Asked before each evaluation; true stops with CANCELLED. May be empty.
  std::function<bool()> cancelled;
  // Told after each evaluation: (evaluations done, evaluations in all). May be empty.
  std::function<void(int done, int total)> progress;
};

// Evaluations MeasureCrossLayerSensitivity makes: 1 + the non-reference choices + (with
// pairs) the products of non-reference choice counts of every two slots.
int SensitivityEvaluations(const std::vector<int>& choices_per_slot, bool pairs);

// The policies a measurement evaluates, in order: the reference, then each single change
// (slot by slot, choice by choice), then (with pairs) each pair of changes in two slots.
// Precondition: `reference` gives one valid choice per slot.
std::vector<std::vector<int>> SensitivityPolicies(const std::vector<int>& choices_per_slot,
                                                  const std::vector<int>& reference, bool pairs);

// G from the losses of SensitivityPolicies(choices_per_slot, reference, pairs), in its order.
// INVALID_ARGUMENT when `losses` has another length or a loss is not finite.
absl::StatusOr<std::vector<double>> AssembleSensitivity(const std::vector<int>& choices_per_slot,
                                                        const std::vector<int>& reference,
                                                        bool pairs,
                                                        const std::vector<double>& losses);

// G (row-major, n x n over the flattened choices, slot by slot) from `loss`, the loss of a
// policy (one choice index per slot). INVALID_ARGUMENT when `reference` does not give one
// valid choice per slot; `loss`'s errors and CANCELLED as they come; INVALID_ARGUMENT when a
// loss is not finite.
absl::StatusOr<std::vector<double>> MeasureCrossLayerSensitivity(
    const std::vector<int>& choices_per_slot, const std::vector<int>& reference,
    const std::function<absl::StatusOr<double>(const std::vector<int>& policy)>& loss,
    const SensitivityOptions& options = {});

// The positive semi-definite matrix nearest to symmetric `g` (n x n) in Frobenius norm: its
// eigen-decomposition with negative eigenvalues set to 0. INVALID_ARGUMENT for a size that is
// not n x n or a matrix that is not symmetric and finite; INTERNAL when LAPACK fails.
absl::StatusOr<std::vector<double>> ClipToPositiveSemidefinite(const std::vector<double>& g, int n);

}  // namespace apq::search

#endif  // APQ_SEARCH_CROSS_LAYER_SENSITIVITY_H_
