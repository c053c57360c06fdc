// The int8 layers of oface/int8_layers.h, over LibTorch's quantized ops. Internal to oface/
// (it includes LibTorch).
#ifndef APQ_OFACE_INT8_LAYERS_INTERNAL_H_
#define APQ_OFACE_INT8_LAYERS_INTERNAL_H_

#include <torch/torch.h>

#include <optional>

#include "absl/status/statusor.h"
#include "oface/int8_layers.h"

namespace apq::oface::int8_internal {

// An activation's uint8 quantization: real = scale * (q - zero_point).
struct ActivationQuantization {
  double scale = 1.0;
  int64_t zero_point = 0;
};

// The quantization covering [low, high] (widened to contain 0) with 256 levels.
ActivationQuantization QuantizationOfRange(double low, double high);

// Makes `engine` LibTorch's quantized engine (process-wide: at::globalContext().setQEngine).
// FAILED_PRECONDITION when this build lacks it.
absl::Status UseEngine(QuantizedEngine engine);

// Batch norm folded into the conv before it: the weight scaled per output channel by
// gamma / sqrt(var + eps) and the bias beta - mean * gamma / sqrt(var + eps) (plus the conv's
// own bias scaled, when it has one).
struct FoldedConv {
  torch::Tensor weight;  // [out, in / groups, k, k], float.
  torch::Tensor bias;    // [out], float.
};
FoldedConv FoldBatchNorm(const torch::Tensor& weight, const std::optional<torch::Tensor>& bias,
                         const torch::Tensor& gamma, const torch::Tensor& beta,
                         const torch::Tensor& mean, const torch::Tensor& var, double eps);

// Per-output-channel symmetric int8 weights of `weight` (any shape, channels first).
torch::Tensor QuantizeWeightPerChannel(const torch::Tensor& weight);

// A conv (BN folded) with an optional ReLU6, on uint8 activations. Its packed weights are for
// the engine current when it was made: run it with that engine current.
class Int8Conv {
 public:
  // `weight`, `bias` as FoldBatchNorm gives them. `output` is the output's quantization; with
  // `relu6` it is forced to scale 6 / 255, zero point 0. Throws c10::Error.
  Int8Conv(const torch::Tensor& weight, const torch::Tensor& bias, int stride, int padding,
           int groups, bool relu6, ActivationQuantization output);
  // `input`: a quint8 [N, Cin, H, W] tensor. Returns quint8 [N, Cout, H', W'].
  torch::Tensor Forward(const torch::Tensor& input) const;
  const ActivationQuantization& output() const { return output_; }

 private:
  torch::IValue packed_;
  bool relu6_;
  ActivationQuantization output_;
};

// The classifier's linear layer on uint8 activations; as Int8Conv.
class Int8Linear {
 public:
  Int8Linear(const torch::Tensor& weight, const torch::Tensor& bias, ActivationQuantization output);
  // `input`: quint8 [N, in]. Returns quint8 [N, out].
  torch::Tensor Forward(const torch::Tensor& input) const;

 private:
  torch::IValue packed_;
  ActivationQuantization output_;
};

}  // namespace apq::oface::int8_internal

#endif  // APQ_OFACE_INT8_LAYERS_INTERNAL_H_
