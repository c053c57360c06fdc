// The loss of one network of a quantization-aware supernet at any bit policy, for bit
// allocators that measure (CLADO's sensitivities, search/cross_layer_sensitivity.h): the mean
// cross-entropy of the network on fixed images, its architecture held and only its bitwidths
// changed. As CLADO measures one trained network, batch norm is recalibrated once, for the
// reference policy, and kept for every other policy: a policy's loss is then a function of
// its bits alone, and two measurements of the same policy are equal.
//
// Thread safety: uses its Supernet exclusively while it lives (callers serialise).
#ifndef APQ_OFACE_POLICY_LOSS_H_
#define APQ_OFACE_POLICY_LOSS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "oface/fashion_mnist.h"
#include "oface/search_space.h"
#include "oface/supernet.h"

namespace apq::oface {

class PolicyLoss {
 public:
  // Selects `reference` on `supernet`, quantized, and recalibrates its batch norm on
  // `calibration`. INVALID_ARGUMENT for a genotype outside the supernet's space or empty image
  // sets; the supernet's errors otherwise. `supernet` must outlive the PolicyLoss.
  static absl::StatusOr<std::unique_ptr<PolicyLoss>> Create(Supernet& supernet,
                                                            const Genotype& reference,
                                                            const LabeledImages& calibration,
                                                            LabeledImages images);

  // Mean cross-entropy (natural log) on the images of `genotype`, which must differ from the
  // reference only in bits genes: INVALID_ARGUMENT naming the first other gene that differs.
  absl::StatusOr<double> Loss(const Genotype& genotype);
  // The losses of `genotypes` in order, measured by `threads` threads at once (each
  // genotype's forward on one thread; LibTorch's intra-op threads are the caller's, 1 for
  // this to pay): equal to Loss of each. The first INVALID_ARGUMENT of a genotype is returned
  // before any is measured.
  absl::StatusOr<std::vector<double>> Losses(const std::vector<Genotype>& genotypes, int threads);

  const Genotype& reference() const { return reference_; }

 private:
  PolicyLoss(Supernet& supernet, Genotype reference, LabeledImages images);
  // INVALID_ARGUMENT naming the first gene other than a bitwidth that differs from the
  // reference.
  absl::Status CheckBitsOnly(const Genotype& genotype) const;

  Supernet& supernet_;
  const Genotype reference_;
  const LabeledImages images_;
};

// Mean cross-entropy of row-major logits [count x classes] against `labels` (log-softmax
// computed stably in double precision).
double MeanCrossEntropy(const std::vector<float>& logits, const std::vector<uint8_t>& labels,
                        int classes);

}  // namespace apq::oface

#endif  // APQ_OFACE_POLICY_LOSS_H_
