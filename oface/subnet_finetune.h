// A short fine-tune of one subnet of a supernet on its own: what a final report applies alike
// to every network it compares, so that a comparison is of deployable networks and not only of
// weight-shared ones. The subnet trains at the supernet's current quantization setting (so a
// quantized supernet gives quantization-aware training at the subnet's bit policy) with plain
// cross-entropy, SGD with Nesterov momentum 0.9, a cosine learning rate from `learning_rate`
// to 0, gradient clipping at norm 5 and random horizontal flips (as the supernet's trainer).
// Only the weights the active subnet uses change, so the result is the extracted subnet
// trained further; the other subnets of the supernet are changed where they share those
// weights, so a caller comparing networks reloads the supernet's weights between them.
//
// Thread safety: uses the Supernet exclusively; LibTorch's thread count is the caller's.
#ifndef APQ_OFACE_SUBNET_FINETUNE_H_
#define APQ_OFACE_SUBNET_FINETUNE_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "oface/fashion_mnist.h"
#include "oface/supernet.h"

namespace apq::oface {

struct FineTuneOptions {
  int64_t steps = 0;             // In [1, 1,000,000].
  int batch_size = 128;          // In [1, train images].
  double learning_rate = 0.005;  // Peak, in (0, 1].
  // Batch order (a seeded permutation per epoch) and flips; the same seed gives every
  // compared network the same batches.
  uint64_t seed = 1;
  // Polled before every step; true stops with CANCELLED (weights as after the last step).
  std::function<bool()> cancelled;
};

struct FineTuneReport {
  int64_t steps = 0;
  double first_loss = 0.0;  // Mean cross-entropy of the first 10% of steps (at least one).
  double last_loss = 0.0;   // And of the last 10%.
  double seconds = 0.0;
};

// Fine-tunes `supernet`'s active subnet on `train` (the train split: never validation or test
// images). INVALID_ARGUMENT naming the option for bad options or no images; INTERNAL from
// LibTorch; CANCELLED. Leaves the module in evaluation mode.
absl::StatusOr<FineTuneReport> FineTuneActiveSubnet(Supernet& supernet, const LabeledImages& train,
                                                    const FineTuneOptions& options);

}  // namespace apq::oface

#endif  // APQ_OFACE_SUBNET_FINETUNE_H_
