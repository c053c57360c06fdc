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
// SubnetTrainer runs the same fine-tune a step group at a time, with a bit policy that may
// change between groups and the per-layer weight sensitivities a bit allocator needs
// (QBitOpt's training, search/qbitopt_engine.h); FineTuneActiveSubnet is one uninterrupted
// run of it at one policy.
//
// Thread safety: uses the Supernet exclusively; LibTorch's thread count is the caller's.
#ifndef APQ_OFACE_SUBNET_FINETUNE_H_
#define APQ_OFACE_SUBNET_FINETUNE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// The order of `count` training images in `epoch` of a run seeded with `seed`: a seeded
// permutation (Fisher-Yates with the portable Rng), the same on every platform.
std::vector<int64_t> EpochOrder(int count, uint64_t seed, int64_t epoch);

class SubnetTrainer {
 public:
  // Selects `genotype` on `supernet` for a run at the supernet's quantization setting
  // (Supernet::SetQuantized; the weight sensitivities need it on) of `options.steps` steps (the
  // cosine schedule spans them). INVALID_ARGUMENT naming the option for bad options or no
  // images, naming the gene for a genotype outside the supernet's space. `supernet` and
  // `train` (the train split) must outlive the trainer.
  static absl::StatusOr<std::unique_ptr<SubnetTrainer>> Create(Supernet& supernet,
                                                               const LabeledImages& train,
                                                               const Genotype& genotype,
                                                               const FineTuneOptions& options);
  ~SubnetTrainer();

  // The bit policy of the next steps: a genotype differing from the current one in bits genes
  // only (INVALID_ARGUMENT naming the first other gene that differs).
  absl::Status SetPolicy(const Genotype& genotype);
  const Genotype& policy() const;

  // Runs the next min(`steps`, what remains) steps. CANCELLED when options.cancelled says so
  // (the weights as after the last whole step, which steps_done() counts); INTERNAL from
  // LibTorch. Leaves the module in evaluation mode.
  absl::Status Train(int64_t steps);
  int64_t steps_done() const;
  int64_t total_steps() const;
  // The run so far (losses of the first and last 10% of the planned steps that ran).
  FineTuneReport Report() const;

  // The sensitivity of the loss to the weights of weight-bits gene `gene`
  // (pw_w_bits_setting[i]: the slot's two pointwise convs; dw_w_bits_setting[i]: its depthwise
  // kernel) quantized at each of `widths`: sum over the weights w_i of F_i (q_b(w_i) - w_i)^2,
  // where q_b is the supernet's weight quantizer at b bits, w the weights as the last step
  // used them (before quantization), and F the mean squared mini-batch gradient of each
  // weight over the steps since the last ResetSensitivity (an empirical-Fisher estimate of
  // the loss's curvature, as QBitOpt). INVALID_ARGUMENT for a gene that is not the weight
  // bits of a layer the policy uses or a width outside [2, 16]; FAILED_PRECONDITION when no
  // step ran since the reset.
  absl::StatusOr<std::vector<double>> WeightSensitivity(int gene,
                                                        const std::vector<int>& widths) const;
  void ResetSensitivity();
  // Adds the gradients of `batches` batches to the statistics WeightSensitivity reads, without
  // training (no step, batch norm's running statistics kept): a sensitivity before the first
  // step. The batches are a fixed draw of the train images (from options.seed), the same on
  // every call. INVALID_ARGUMENT naming "batches" outside [1, images / batch_size]; CANCELLED;
  // INTERNAL.
  absl::Status AccumulateGradients(int batches);

  // The whole state (weights and batch norm of the supernet, optimizer, step, policy, batch
  // order, gradient statistics): RestoreState on a trainer created with the same supernet
  // file, images, genotype and options continues exactly as this one would.
  absl::StatusOr<std::string> SaveState() const;
  // DATA_LOSS when `state` is not one SaveState of this run's shape wrote.
  absl::Status RestoreState(absl::string_view state);

 private:
  struct Impl;
  explicit SubnetTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fine-tunes `supernet`'s active subnet on `train` (the train split: never validation or test
// images). INVALID_ARGUMENT naming the option for bad options or no images; INTERNAL from
// LibTorch; CANCELLED. Leaves the module in evaluation mode.
absl::StatusOr<FineTuneReport> FineTuneActiveSubnet(Supernet& supernet, const LabeledImages& train,
                                                    const FineTuneOptions& options);

}  // namespace apq::oface

#endif  // APQ_OFACE_SUBNET_FINETUNE_H_
