// INTERNAL to the supernet library and its tests: the LibTorch module behind oface::Supernet
// (oface/supernet.h). It includes <torch/torch.h>; nothing outside oface/supernet*.cc and
// their tests may include it (a LibTorch header costs ~15 s per compiled file).
//
// Layout (all elastic layers hold their largest shape; a subnet is a view of it):
//   stem:  first_conv (k x k, stride) + BN + ReLU6; first block: depthwise k x k + BN + ReLU6,
//          1x1 projection + BN (residual when shapes allow).
//   slots: per layer slot an MBConv: 1x1 expand to max_mid + BN + ReLU6, depthwise
//          max_kernel x max_kernel + BN + ReLU6, 1x1 projection + BN, residual when the slot
//          has stride 1 and in == out channels.
//   tail:  1x1 feature mix + BN + ReLU6, global average pooling, linear classifier.
// Elastic kernel: once-for-all's centre crop of the largest kernel, transformed by a learned
// (k^2 x k^2) matrix per smaller size, applied from the largest size down (7 -> 5 -> 3).
// Elastic width: the first `mid` channels (after ReorganizeMiddleWeights has sorted them by
// importance). Elastic depth: the first d[s] slots of each stage.
// Quantization (when quantized): weights per output channel, symmetric, round to nearest;
// activations entering each conv clipped to a learned range [-alpha, alpha] (signed inputs:
// the block input, the image) or [0, alpha] (after ReLU6), PACT-style, one alpha per bit
// choice; rounding passes gradients straight through (STE). At b bits the signed quantizers
// have the 2^b - 1 levels -L..L, L = 2^(b-1) - 1 (symmetric, so one code of 2^b is unused:
// 2 bits give {-1, 0, 1}, ternary), the unsigned one the 2^b levels 0..2^b - 1.
#ifndef APQ_OFACE_SUPERNET_MODULE_H_
#define APQ_OFACE_SUPERNET_MODULE_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/search_space.h"

namespace apq::oface::supernet_internal {

// One layer slot's active choice. Bits of 0 mean full precision.
struct SlotChoice {
  int kernel = 0;
  int mid = 0;
  int pw_w_bits = 0;
  int pw_a_bits = 0;
  int dw_w_bits = 0;
  int dw_a_bits = 0;
};

// A slot's distributions over the spec's bit choices (bit_choices order), for differentiable
// precision search: each a [num_bits] tensor of weights summing to 1 (a Gumbel-softmax
// sample, or probabilities), or undefined to use the SlotChoice's bits. A quantized layer then
// computes the mixture of its quantizations: weights sum_b p_b q_b(W) (a convolution is
// linear in its weights: the same as mixing the convolutions' outputs), activations
// sum_b p_b q_b(x). Gradients reach the mixture weights.
//
// Single path (`single_path`): every tensor is one-hot in value (a straight-through sample:
// 1 at the picked choice, 0 elsewhere, with the gradient of a soft sample). The layer computes
// the picked choice's quantization only (one quantized weight tensor, no parallel branches;
// weights train through it alone), and when the tensor needs a gradient, each entry b gets
// the mixture's gradient at that one-hot point, <dL/d(quantized), q_b>: the straight-through
// Gumbel-softmax estimator, from elementwise quantizations held out of the value.
struct SlotBitMixture {
  torch::Tensor pw_w, pw_a, dw_w, dw_a;
  bool single_path = false;
};

// A slot's distributions over kernel sizes and middle widths, for differentiable
// architecture search: `kernel_weights` over `kernels` and `mid_weights` over `mids` (values
// the slot supports, each list with its [size] weights summing to 1), or undefined weights to
// use the SlotChoice's. With them the slot runs at the largest listed kernel and width: the
// depthwise filter is sum_k p_k (kernel k's filter, quantized, zero-padded to the largest),
// the middle channels are scaled by the mask sum_m p_m 1[channel < m] after the expansion and
// after the depthwise convolution, and the projection weight is sum_m p_m (its first m input
// columns, quantized, zero-padded): one-hot weights give the SlotChoice's network.
struct SlotArchMixture {
  torch::Tensor kernel_weights;
  std::vector<int> kernels;
  torch::Tensor mid_weights;
  std::vector<int> mids;
};

// A stage's distribution over its depths, for differentiable architecture search: `weights`
// ([size], summing to 1) over `depths` (values the stage supports, each at least 1), or
// undefined weights to use SubnetChoice::depths. With it the stage runs its first max(depths)
// slots and outputs sum_d p_d (the output after its first d slots): one-hot weights give
// the network of that depth. A stage's slots after its first are residual (stride 1, equal
// widths), so every such output has the stage's shape.
struct StageDepthMixture {
  torch::Tensor weights;
  std::vector<int> depths;
};

struct SubnetChoice {
  std::vector<SlotChoice> slots;  // One per layer slot, in slot order.
  std::vector<int> depths;        // One per stage.
  bool quantized = false;         // false: every layer at fp32, bits ignored.
  // Empty, or one per layer slot: mixtures replacing the slots' bits where defined (quantized
  // only).
  std::vector<SlotBitMixture> mixtures;
  // Empty, or one per layer slot: kernel and width mixtures where defined.
  std::vector<SlotArchMixture> arch_mixtures;
  // Empty, or one per stage: depth mixtures where defined.
  std::vector<StageDepthMixture> depth_mixtures;
};

// The choice a valid genotype of NewMbConvQuantSpace(spec) describes (genes in that space's
// order: ks, mid, pw_w, pw_a, dw_w, dw_a per slot, then d per stage).
SubnetChoice ChoiceFromGenotype(const MbConvSpec& spec, const Genotype& genotype, bool quantized);

// The message of a LibTorch exception without its C++ backtrace.
std::string ErrorMessage(const std::exception& e);

// Writes `archive` to `path` atomically: a temporary file in the same folder, then rename.
// DATA_LOSS / UNAVAILABLE naming the file on failure. Catches c10::Error.
absl::Status SaveArchiveAtomically(torch::serialize::OutputArchive& archive,
                                   const std::string& path);
// Opens `path`: NOT_FOUND when missing, DATA_LOSS naming it when unreadable.
absl::Status LoadArchive(const std::string& path, torch::serialize::InputArchive& archive);

// In-memory training states (engines' checkpoints) as archives: the archive's bytes, an archive
// read from bytes (throws c10::Error when they are not one), text stored as an int64 tensor,
// and an integer tensor read back as int64 values.
std::string ArchiveToBytes(torch::serialize::OutputArchive& archive);
void ArchiveFromBytes(const std::string& bytes, torch::serialize::InputArchive& archive);
torch::Tensor TextTensor(const std::string& text);
std::vector<int64_t> ReadInt64s(torch::serialize::InputArchive& archive, const std::string& key);
// ReadInt64s of `key` as text.
std::string ReadText(torch::serialize::InputArchive& archive, const std::string& key);

// The bit widths the fake quantizers below are defined for. At 1 bit the symmetric
// quantizers would have the single level 0 (and a zero divisor in their scale); 16 bits are
// far below float32's exact integers (2^24) and more than any space needs.
inline constexpr int kMinQuantBits = 2;
inline constexpr int kMaxQuantBits = 16;
// A layer at kFloatBits (oface/mbconv_spec.h) runs in float: its quantizers pass values
// through unchanged.
using ::apq::oface::kFloatBits;

// Whether the fake quantizers below take `bits`: kMinQuantBits..kMaxQuantBits, or kFloatBits.
inline bool IsQuantizerBits(int bits) {
  return (bits >= kMinQuantBits && bits <= kMaxQuantBits) || bits == kFloatBits;
}

// The top level L of the symmetric signed quantizers (weights, signed activations) at `bits`:
// 2^(bits-1) - 1, levels -L..L (2 bits: L = 1; 3 bits: L = 3). The supernet and the exported
// subnet (oface/subnet_export.cc) both take their levels from here and from UnsignedLevels.
// Precondition: bits in [kMinQuantBits, kMaxQuantBits].
int64_t SignedLevels(int bits);
// The top level of unsigned activations (after ReLU6) at `bits`: 2^bits - 1, levels 0..2^bits - 1
// (2 bits: 3; 3 bits: 7). Same precondition.
int64_t UnsignedLevels(int bits);

// Symmetric per-output-channel fake quantization of a conv/linear weight ([out, ...]) to
// `bits`: q(w) = clamp(round(w / s), -L, L) s with L = SignedLevels(bits) and, per output
// channel, s = max|w| / L (max|w| floored at 1e-8, so an all-zero channel stays 0); with the
// straight-through estimator: the forward value is quantized, the gradient is identity.
// Every weight is inside its channel's range [-L s, L s], so |q(w) - w| <= s / 2; q(q(w)) = q(w)
// up to a float32 rounding of s. At kFloatBits: `weight` itself. Precondition:
// IsQuantizerBits(bits).
torch::Tensor FakeQuantWeight(const torch::Tensor& weight, int bits);

// PACT-style activation fake quantization: q(x) = clamp(round(x / s), lo, L) s with step
// s = (|alpha| + 1e-3) / L, L = UnsignedLevels(bits) and lo = 0, or L = SignedLevels(bits) and
// lo = -L when `is_signed` (the 1e-3 keeps s positive whatever alpha becomes); with the STE
// (gradient 1 inside the range, 0 outside); `alpha` (a 0-dim tensor) learns through the step
// size as in LSQ (torch's learnable fake quantization, with LSQ's gradient scale
// 1 / sqrt(elements x levels)). Inside the clip range |q(x) - x| <= s / 2, and q(q(x)) = q(x).
// At kFloatBits: `x` itself. Precondition: IsQuantizerBits(bits).
torch::Tensor FakeQuantActivation(const torch::Tensor& x, const torch::Tensor& alpha, int bits,
                                  bool is_signed);

// Normalised [count, 1, rows, cols] float tensor and [count] int64 labels.
torch::Tensor ImagesToTensor(const LabeledImages& images);
torch::Tensor LabelsToTensor(const LabeledImages& images);

// A slot's weight as one forward used it, before fake quantization (the slice of the
// elastic width, the depthwise kernel at its size): for gradient-based sensitivities.
struct UsedWeight {
  enum class Kind { kExpand, kDepthwise, kProject };
  int slot = 0;
  Kind kind = Kind::kExpand;
  // Part of the autograd graph, with retain_grad(): after backward, grad() is the loss's
  // gradient with respect to the quantized weight (the straight-through estimator passes it
  // unchanged).
  torch::Tensor weight;
};

// Batch norm whose parameters and running statistics are sliced to the first `channels`.
struct ElasticBatchNorm {
  torch::Tensor weight, bias, running_mean, running_var;
};

class SupernetModuleImpl : public torch::nn::Module {
 public:
  explicit SupernetModuleImpl(const MbConvSpec& spec);

  // Forward of the subnet `choice` (must fit the spec: the caller validates). In training mode
  // batch norm uses batch statistics and updates the running ones with `bn_momentum()`.
  torch::Tensor forward(const torch::Tensor& images, const SubnetChoice& choice);

  // The depthwise kernel of `slot` at `kernel` size for its first `mid` channels:
  // [mid, 1, kernel, kernel].
  torch::Tensor DepthwiseKernel(int slot, int kernel, int mid) const;

  // Once-for-all's re_organize_middle_weights: per slot, sorts the hidden channels by the L1
  // norm of the projection's input weights, descending, and permutes the expand conv's output
  // channels, both batch norms and the depthwise kernels to match, so the first `mid` channels
  // are the most important. The network function is unchanged.
  void ReorganizeMiddleWeights();

  // Resets every running mean to 0 and variance to 1 (before BN recalibration).
  void ResetRunningStatistics();

  // Momentum of running-statistic updates in training-mode forwards (torch's convention: the
  // weight of the new batch). Recalibration sets 1 / (batch + 1) for an exact average.
  void set_bn_momentum(double momentum) { bn_momentum_ = momentum; }
  double bn_momentum() const { return bn_momentum_; }

  // While set, every forward that builds an autograd graph appends the slot weights it uses
  // (UsedWeight) to `used`; null stops it. The caller owns the vector and clears it.
  void set_used_weights(std::vector<UsedWeight>* used) { used_weights_ = used; }

  int num_slots() const { return static_cast<int>(slots_.size()); }
  int max_kernel() const { return kernel_sizes_.back(); }
  // Parameters that take no weight decay (batch norm, clipping ranges, kernel transforms).
  std::vector<torch::Tensor> NoDecayParameters() const;
  std::vector<torch::Tensor> DecayParameters() const;
  // Whether the parameter `name` holds one value per bit choice (the slots' clipping ranges),
  // in the order of spec.bit_choices; every other tensor's shape follows from the network.
  bool IsPerBitChoice(const std::string& name) const;

  // Slot tensors, exposed for tests.
  struct Slot {
    int stage = 0;
    int in_channels = 0;
    int out_channels = 0;
    int stride = 1;
    int max_mid = 0;
    bool residual = false;
    torch::Tensor expand_weight;  // [max_mid, in, 1, 1]
    ElasticBatchNorm expand_bn;
    torch::Tensor depthwise_weight;                // [max_mid, 1, K, K]
    std::vector<torch::Tensor> kernel_transforms;  // [i]: kernel_sizes[i+1] -> kernel_sizes[i]
    ElasticBatchNorm depthwise_bn;
    torch::Tensor project_weight;  // [out, max_mid, 1, 1]
    ElasticBatchNorm project_bn;
    torch::Tensor input_alpha;      // [num_bits], signed
    torch::Tensor depthwise_alpha;  // [num_bits], after ReLU6
    torch::Tensor project_alpha;    // [num_bits], after ReLU6
  };
  const Slot& slot(int i) const { return slots_[i]; }

 private:
  ElasticBatchNorm RegisterBatchNorm(const std::string& name, int channels);
  torch::Tensor RegisterAlpha(const std::string& name, int size, double init);
  torch::Tensor BatchNorm(const torch::Tensor& x, const ElasticBatchNorm& bn, int channels);
  torch::Tensor ActQuant(const torch::Tensor& x, const torch::Tensor& alphas, int bits,
                         bool is_signed) const;
  torch::Tensor SlotForward(const torch::Tensor& x, int slot, const SlotChoice& choice,
                            bool quantized, const SlotBitMixture* mixture,
                            const SlotArchMixture* arch);
  // `weight` quantized at `bits`, or mixed over the bit choices by `mixture` when defined.
  // SlotForward with kernel or width mixtures (SlotArchMixture).
  torch::Tensor MixedSlotForward(const torch::Tensor& x, int slot, const SlotChoice& choice,
                                 bool quantized, const SlotBitMixture& mix,
                                 const SlotArchMixture& arch);
  // `single_path`: see SlotBitMixture.
  torch::Tensor QuantizeWeight(const torch::Tensor& weight, int bits, const torch::Tensor& mixture,
                               bool single_path) const;
  // `x` quantized at `bits` with `alphas`' range, or mixed by `mixture` when defined.
  torch::Tensor QuantizeActivation(const torch::Tensor& x, const torch::Tensor& alphas, int bits,
                                   bool is_signed, const torch::Tensor& mixture,
                                   bool single_path) const;
  // Records `weight` in used_weights_ when set and it is part of a graph.
  void RecordUsedWeight(int slot, UsedWeight::Kind kind, torch::Tensor& weight);

  MbConvSpec spec_;
  std::vector<int> kernel_sizes_;
  std::vector<int> bit_choices_;
  double bn_momentum_ = 0.1;
  std::vector<torch::Tensor> decay_, no_decay_;
  std::vector<std::string> per_bit_choice_;  // Names of the per-bit-choice parameters.
  std::vector<UsedWeight>* used_weights_ = nullptr;

  torch::Tensor first_conv_weight_;
  ElasticBatchNorm first_conv_bn_;
  torch::Tensor first_dw_weight_;
  ElasticBatchNorm first_dw_bn_;
  torch::Tensor first_project_weight_;
  ElasticBatchNorm first_project_bn_;
  bool first_block_residual_ = false;
  std::vector<Slot> slots_;
  std::vector<int> stage_first_slot_;
  torch::Tensor feature_mix_weight_;
  ElasticBatchNorm feature_mix_bn_;
  torch::Tensor classifier_weight_, classifier_bias_;
  // Fixed-precision layers' input clipping ranges ([1] each).
  torch::Tensor image_alpha_, first_dw_alpha_, first_project_alpha_, feature_mix_alpha_,
      classifier_alpha_;
};
TORCH_MODULE(SupernetModule);

}  // namespace apq::oface::supernet_internal

#endif  // APQ_OFACE_SUPERNET_MODULE_H_
