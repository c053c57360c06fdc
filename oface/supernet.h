// The elastic once-for-all supernet of an MbConvSpec (oface/mbconv_spec.h), in LibTorch, with
// per-layer fake quantization (APQ's joint space): every genotype of NewMbConvQuantSpace(spec)
// is a subnet sharing the supernet's weights. See oface/supernet_module.h for the layout and
// the weight-sharing rules. This header is free of LibTorch.
//
// Thread safety: none; one thread uses a Supernet at a time. LibTorch's intra-op thread count
// is process-wide: the caller sets it (TrainOptions::threads, torch::set_num_threads).
#ifndef APQ_OFACE_SUPERNET_H_
#define APQ_OFACE_SUPERNET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/search_space.h"

namespace apq::oface {
namespace supernet_internal {
class SupernetModuleImpl;
}  // namespace supernet_internal

// A text description of every field of `spec` ("field=value" lines), stored in checkpoints.
std::string SpecFingerprint(const MbConvSpec& spec);
// OK when `stored` (a SpecFingerprint) describes `spec`; otherwise FAILED_PRECONDITION naming
// `path` and the first field that differs, with both values.
absl::Status CheckSpecFingerprint(const std::string& stored, const MbConvSpec& spec,
                                  const std::string& path);

struct EvalOptions {
  // BN recalibration (once-for-all's set_running_statistics): running statistics are reset,
  // then the calibration images are forwarded in training mode without gradients in batches
  // of `calibration_batch_size`, averaging the batch statistics exactly.
  int calibration_batch_size = 200;
  int eval_batch_size = 1000;
  // Polled before every batch; true stops the call with CANCELLED (the running statistics
  // are then those of the batches seen). May be empty.
  std::function<bool()> cancelled;
};

struct EvalResult {
  double accuracy = 0.0;  // Fraction of the test images classified correctly.
  double seconds = 0.0;   // Wall time of recalibration + evaluation.
  // Per test image, in order: 1 when classified correctly (paired tests between networks).
  std::vector<uint8_t> correct;
};

class Supernet {
 public:
  // INVALID_ARGUMENT when `spec` does not validate or names bits outside what the fake
  // quantizers take (2..16, oface/supernet_module.h). Weights are initialised from `seed`
  // (Kaiming normal for convs, as torchvision's MobileNetV2).
  static absl::StatusOr<std::unique_ptr<Supernet>> Create(const MbConvSpec& spec, uint64_t seed);
  ~Supernet();

  const MbConvSpec& spec() const { return spec_; }
  const SearchSpace& space() const { return *space_; }

  // Selects the subnet `genotype` (a genotype of space()) for the next forwards;
  // INVALID_ARGUMENT naming the gene when it is not a valid genotype. The initial subnet is
  // the largest at the highest bits.
  absl::Status SetActiveSubnet(const Genotype& genotype);
  const Genotype& active_subnet() const { return active_; }
  // true: the active subnet's bitwidths apply (stem and tail at spec.fixed_bits);
  // false: everything runs at full precision. Initially false.
  void SetQuantized(bool quantized) { quantized_ = quantized; }
  bool quantized() const { return quantized_; }

  // Largest / smallest subnet (kernel, width, depth) with every bitwidth `bits` (0: the
  // highest / lowest bit choice).
  Genotype LargestGenotype(int bits = 0) const;
  Genotype SmallestGenotype(int bits = 0) const;

  // Sorts every slot's hidden channels by importance (see supernet_module.h). Call it before
  // training a phase with elastic width, when no optimizer state refers to the old order.
  absl::Status ReorganizeMiddleWeights();

  // BN recalibration alone (see EvalOptions) for the active subnet at the current quantization
  // setting: afterwards the running statistics of the layers it uses describe `calibration`.
  // INVALID_ARGUMENT when there are no calibration images or the batch size is not positive.
  absl::Status RecalibrateBatchNorm(const LabeledImages& calibration,
                                    const EvalOptions& options = {});
  // Recalibrates BN on `calibration` for the active subnet (see EvalOptions), then returns the
  // active subnet's accuracy on `test` in evaluation mode.
  absl::StatusOr<EvalResult> Evaluate(const LabeledImages& calibration, const LabeledImages& test,
                                      const EvalOptions& options = {});
  // Logits of the active subnet in evaluation mode, [images.count x num_classes] row-major.
  absl::StatusOr<std::vector<float>> Logits(const LabeledImages& images);
  // Puts the module in evaluation mode (as Logits does) so that LogitsOf may run.
  void PrepareForEvaluation();
  // Logits of `genotype` (any valid genotype; the active subnet is untouched) quantized as
  // `quantized` says, in evaluation mode: reads the weights and writes nothing, so several
  // threads may call it at once while nothing else uses the supernet. FAILED_PRECONDITION
  // when the module is in training mode (PrepareForEvaluation first).
  absl::StatusOr<std::vector<float>> LogitsOf(const Genotype& genotype, bool quantized,
                                              const LabeledImages& images) const;

  // Weights, buffers and the spec's fingerprint; written atomically (temporary + rename).
  absl::Status SaveWeights(const std::string& path) const;
  // Reads what SaveWeights (or the trainer's checkpoint) wrote; FAILED_PRECONDITION naming the
  // field when it was written for another spec, NOT_FOUND / DATA_LOSS naming the file.
  absl::Status LoadWeights(const std::string& path);
  // Reads weights that SaveWeights (or the trainer's checkpoint) wrote for a spec of the same
  // network, which may differ in its name and quantization choices (bit_choices, fixed_bits,
  // banned_kernel_dw_a_bits, arch_json_max_depth), e.g. fmnist_mbv2's supernet into
  // fmnist_lowbit's. Tensors are matched by name; the per-bit-choice clipping ranges by bit
  // width, and a width the file lacks starts from the range of the file's nearest width (the
  // lower on a tie: from {4, 6, 8}, 2 and 3 bits take 4's, 5 takes 4's). FAILED_PRECONDITION
  // naming the first network field that differs; NOT_FOUND / DATA_LOSS naming the file as
  // LoadWeights. On error the weights are unchanged.
  absl::Status LoadWeightsOfSameNetwork(const std::string& path);

  // The LibTorch module, for the trainer and tests (oface/supernet_module.h).
  supernet_internal::SupernetModuleImpl& module() { return *module_; }
  std::shared_ptr<supernet_internal::SupernetModuleImpl> shared_module() { return module_; }

 private:
  Supernet(MbConvSpec spec, std::unique_ptr<SearchSpace> space);

  MbConvSpec spec_;
  std::unique_ptr<SearchSpace> space_;
  std::shared_ptr<supernet_internal::SupernetModuleImpl> module_;
  Genotype active_;
  bool quantized_ = false;
};

}  // namespace apq::oface

#endif  // APQ_OFACE_SUPERNET_H_
