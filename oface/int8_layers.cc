#include "oface/int8_layers.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oface/int8_layers_internal.h"

namespace apq::oface {
namespace {

std::optional<at::QEngine> LibTorchEngine(QuantizedEngine engine) {
  switch (engine) {
    case QuantizedEngine::kQnnpack:
      return at::QEngine::QNNPACK;
    case QuantizedEngine::kOnednn:
      return at::QEngine::ONEDNN;
  }
  return std::nullopt;
}

// Runs the quantized op `name` (overload `overload`) on `stack` through the dispatcher; its
// results replace the arguments. Throws c10::Error.
void CallOp(const char* name, const char* overload, torch::jit::Stack& stack) {
  const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  op.callBoxed(&stack);
}

}  // namespace

const char* QuantizedEngineName(QuantizedEngine engine) {
  return engine == QuantizedEngine::kQnnpack ? "qnnpack" : "onednn";
}

absl::StatusOr<QuantizedEngine> QuantizedEngineFromName(absl::string_view name) {
  if (name == "qnnpack") return QuantizedEngine::kQnnpack;
  if (name == "onednn") return QuantizedEngine::kOnednn;
  return absl::InvalidArgumentError(
      absl::StrCat("quantized engine '", name, "' is not one of qnnpack, onednn"));
}

std::vector<QuantizedEngine> AvailableQuantizedEngines() {
  std::vector<QuantizedEngine> engines;
  const std::vector<at::QEngine>& supported = at::globalContext().supportedQEngines();
  for (const QuantizedEngine engine : {QuantizedEngine::kQnnpack, QuantizedEngine::kOnednn}) {
    if (std::find(supported.begin(), supported.end(), *LibTorchEngine(engine)) != supported.end()) {
      engines.push_back(engine);
    }
  }
  return engines;
}

namespace int8_internal {

ActivationQuantization QuantizationOfRange(double low, double high) {
  low = std::min(low, 0.0);
  high = std::max(high, 0.0);
  ActivationQuantization quantization;
  quantization.scale = high > low ? (high - low) / 255.0 : 1.0;
  quantization.zero_point =
      std::clamp<int64_t>(static_cast<int64_t>(std::lround(-low / quantization.scale)), 0, 255);
  return quantization;
}

absl::Status UseEngine(QuantizedEngine engine) {
  const std::vector<QuantizedEngine> available = AvailableQuantizedEngines();
  if (std::find(available.begin(), available.end(), engine) == available.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this LibTorch build has no ", QuantizedEngineName(engine), " quantized engine"));
  }
  at::globalContext().setQEngine(*LibTorchEngine(engine));
  return absl::OkStatus();
}

FoldedConv FoldBatchNorm(const torch::Tensor& weight, const std::optional<torch::Tensor>& bias,
                         const torch::Tensor& gamma, const torch::Tensor& beta,
                         const torch::Tensor& mean, const torch::Tensor& var, double eps) {
  const torch::Tensor factor = gamma / torch::sqrt(var + eps);
  FoldedConv folded;
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = weight.size(0);
  folded.weight = weight * factor.reshape(shape);
  folded.bias = beta - mean * factor;
  if (bias.has_value()) folded.bias = folded.bias + *bias * factor;
  return folded;
}

torch::Tensor QuantizeWeightPerChannel(const torch::Tensor& weight) {
  const torch::Tensor flat = weight.reshape({weight.size(0), -1}).abs();
  // A channel of zeros still needs a positive scale.
  const torch::Tensor scales =
      std::get<0>(flat.max(/*dim=*/1)).clamp_min(1e-8).div(127.0).to(torch::kDouble);
  const torch::Tensor zero_points = torch::zeros({weight.size(0)}, torch::kLong);
  return at::quantize_per_channel(weight.contiguous(), scales, zero_points, /*axis=*/0, at::kQInt8);
}

Int8Conv::Int8Conv(const torch::Tensor& weight, const torch::Tensor& bias, int stride, int padding,
                   int groups, bool relu6, ActivationQuantization output)
    : relu6_(relu6), output_(relu6 ? ActivationQuantization{6.0 / 255.0, 0} : output) {
  torch::jit::Stack stack{
      QuantizeWeightPerChannel(weight),     c10::optional<torch::Tensor>(bias.contiguous()),
      std::vector<int64_t>{stride, stride}, std::vector<int64_t>{padding, padding},
      std::vector<int64_t>{1, 1},           static_cast<int64_t>(groups)};
  CallOp("quantized::conv2d_prepack", "", stack);
  packed_ = stack.at(0);
}

torch::Tensor Int8Conv::Forward(const torch::Tensor& input) const {
  torch::jit::Stack stack{input, packed_, output_.scale, output_.zero_point};
  CallOp(relu6_ ? "quantized::conv2d_relu" : "quantized::conv2d", "new", stack);
  return stack.at(0).toTensor();
}

Int8Linear::Int8Linear(const torch::Tensor& weight, const torch::Tensor& bias,
                       ActivationQuantization output)
    : output_(output) {
  torch::jit::Stack stack{QuantizeWeightPerChannel(weight),
                          c10::optional<torch::Tensor>(bias.contiguous())};
  CallOp("quantized::linear_prepack", "", stack);
  packed_ = stack.at(0);
}

torch::Tensor Int8Linear::Forward(const torch::Tensor& input) const {
  torch::jit::Stack stack{input, packed_, output_.scale, output_.zero_point};
  CallOp("quantized::linear", "", stack);
  return stack.at(0).toTensor();
}

}  // namespace int8_internal
}  // namespace apq::oface
