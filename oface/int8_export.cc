// ExtractInt8Subnet (oface/subnet_export.h): the fake-quantized subnet at W8A8 written as a
// TorchScript module of LibTorch's quantized ops. The statements mirror BuildModule in
// subnet_export.cc layer for layer; where the supernet fake-quantizes an activation, the int8
// module holds it in uint8 at the same scale.
#include <c10/util/Exception.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "oface/int8_layers.h"
#include "oface/int8_layers_internal.h"
#include "oface/subnet_export.h"
#include "oface/subnet_export_internal.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

using export_internal::kAlphaFloor;
using export_internal::kBatchNormEps;
using export_internal::Literal;
using supernet_internal::ErrorMessage;
using supernet_internal::SupernetModuleImpl;

// The bits every layer of an int8 export runs at.
constexpr int kInt8Bits = 8;

// An activation's uint8 representation: signed fake quantizers (levels -127..127) sit at zero
// point 128, unsigned ones (0..255, after ReLU6) at 0.
struct Activation {
  double scale = 1.0;
  int64_t zero_point = 0;
  double clip = 0.0;  // The largest value it holds (after ReLU6: min(6, clip) matters).
};

class Int8ScriptWriter {
 public:
  Int8ScriptWriter(torch::jit::Module* module, SupernetModuleImpl& net,
                   std::vector<int> bit_choices)
      : module_(module),
        params_(net.named_parameters()),
        buffers_(net.named_buffers()),
        bit_choices_(std::move(bit_choices)) {}

  void Line(const std::string& statement) { absl::StrAppend(&body_, "    ", statement, "\n"); }

  // The quantization of the supernet's fake quantizer with clipping range `alphas` at 8 bits.
  Activation Quantizer(const torch::Tensor& alphas, bool is_signed) const {
    int index = 0;
    if (alphas.size(0) > 1) {
      index = static_cast<int>(std::find(bit_choices_.begin(), bit_choices_.end(), kInt8Bits) -
                               bit_choices_.begin());
    }
    const int64_t levels = is_signed ? supernet_internal::SignedLevels(kInt8Bits)
                                     : supernet_internal::UnsignedLevels(kInt8Bits);
    // The step as FakeQuantActivation computes it: float32 ops, then a float.
    const float alpha = alphas.select(0, index).abs().item<float>();
    const double step =
        static_cast<float>((alpha + static_cast<float>(kAlphaFloor)) / static_cast<float>(levels));
    return Activation{step, is_signed ? 128 : 0, step * static_cast<double>(levels)};
  }

  // `out = conv(in)` with the supernet's batch norm `bn` (cut to the conv's outputs) folded
  // into the 8-bit fake-quantized `weight`, output at `wanted`; with `relu6` the ReLU is fused.
  // A ReLU6 output whose quantizer reaches beyond 6 takes the scale 6 / 255 instead, whose top
  // level is the clamp at 6 (a finer grid than the supernet's): a separate clamp would cost an
  // op, and QNNPACK's clamp and hardtanh of channels-last uint8 tensors are wrong in this
  // LibTorch (1.13: every value comes out 6 away).
  void Conv(const std::string& out, const std::string& in, const std::string& name,
            const torch::Tensor& weight, const std::string& bn, int stride, int padding, int groups,
            bool relu6, const Activation& wanted) {
    const Activation output = relu6 && wanted.clip > 6.0 ? Activation{6.0 / 255.0, 0, 6.0} : wanted;
    const int64_t channels = weight.size(0);
    const auto cut = [&](const torch::Tensor& t) { return t.narrow(0, 0, channels); };
    const torch::Tensor gamma = cut(params_[bn + "_weight"]);
    const torch::Tensor beta = cut(params_[bn + "_bias"]);
    const torch::Tensor mean = cut(buffers_[bn + "_running_mean"]);
    const torch::Tensor var = cut(buffers_[bn + "_running_var"]);
    const torch::Tensor factor = gamma / torch::sqrt(var + kBatchNormEps);
    // The fake quantizer's integers and per-channel steps (FakeQuantWeight at 8 bits); the
    // fold scales each channel's step, a negative factor flipping its integers' sign.
    const double levels = static_cast<double>(supernet_internal::SignedLevels(kInt8Bits));
    const torch::Tensor step =
        weight.abs().reshape({channels, -1}).amax(1).clamp_min(1e-8) / levels;
    std::vector<int64_t> shape(weight.dim(), 1);
    shape[0] = channels;
    torch::Tensor integers = torch::round(weight / step.reshape(shape)).clamp(-levels, levels);
    integers = integers * factor.sign().reshape(shape);
    const torch::Tensor scales = (step * factor.abs()).clamp_min(1e-12).to(torch::kDouble);
    const torch::Tensor qweight = at::_make_per_channel_quantized_tensor(
        integers.to(torch::kChar).contiguous(), scales, torch::zeros({channels}, torch::kLong), 0);
    const torch::Tensor bias = (beta - mean * factor).contiguous();
    torch::jit::Stack stack{qweight,
                            c10::optional<torch::Tensor>(bias),
                            std::vector<int64_t>{stride, stride},
                            std::vector<int64_t>{padding, padding},
                            std::vector<int64_t>{1, 1},
                            static_cast<int64_t>(groups)};
    c10::Dispatcher::singleton()
        .findSchemaOrThrow("quantized::conv2d_prepack", "")
        .callBoxed(&stack);
    module_->register_attribute(name, stack.at(0).type(), stack.at(0));
    num_elements_ += qweight.numel() + bias.numel();
    Line(absl::StrCat(out, " = quantized.", relu6 ? "conv2d_relu" : "conv2d", "(", in, ", self.",
                      name, ", ", Literal(output.scale), ", ", output.zero_point, ")"));
  }

  void Add(const std::string& out, const std::string& a, const std::string& b,
           const Activation& output) {
    Line(absl::StrCat(out, " = quantized.add(", a, ", ", b, ", ", Literal(output.scale), ", ",
                      output.zero_point, ")"));
  }

  void Linear(const std::string& out, const std::string& in, const torch::Tensor& weight,
              const torch::Tensor& bias, const Activation& output) {
    const torch::Tensor qweight = int8_internal::QuantizeWeightPerChannel(weight);
    torch::jit::Stack stack{qweight, c10::optional<torch::Tensor>(bias.contiguous())};
    c10::Dispatcher::singleton()
        .findSchemaOrThrow("quantized::linear_prepack", "")
        .callBoxed(&stack);
    module_->register_attribute("classifier", stack.at(0).type(), stack.at(0));
    num_elements_ += qweight.numel() + bias.numel();
    Line(absl::StrCat(out, " = quantized.linear(", in, ", self.classifier, ", Literal(output.scale),
                      ", ", output.zero_point, ")"));
  }

  // `out = hardtanh(conv(in))` in float with the batch norm (cut to the conv's outputs) folded
  // into the weight and a bias: a layer the policy keeps in float. Two interpreter calls, not
  // the float export's three (conv, batch_norm, hardtanh): per call, the interpreter's own
  // work in a whole module is comparable with a small layer's (bench/RESULTS.md).
  void FloatConv(const std::string& out, const std::string& in, const std::string& name,
                 const torch::Tensor& weight, const std::string& bn, int stride, int padding,
                 int groups, bool relu6) {
    const int64_t channels = weight.size(0);
    const auto cut = [&](const torch::Tensor& t) { return t.narrow(0, 0, channels); };
    const torch::Tensor factor = cut(params_[bn + "_weight"]) /
                                 torch::sqrt(cut(buffers_[bn + "_running_var"]) + kBatchNormEps);
    std::vector<int64_t> shape(weight.dim(), 1);
    shape[0] = channels;
    const torch::Tensor folded = (weight * factor.reshape(shape)).detach().clone().contiguous();
    const torch::Tensor bias =
        (cut(params_[bn + "_bias"]) - cut(buffers_[bn + "_running_mean"]) * factor)
            .detach()
            .clone()
            .contiguous();
    module_->register_buffer(name + "_weight", folded);
    module_->register_buffer(name + "_bias", bias);
    num_elements_ += folded.numel() + bias.numel();
    Line(absl::StrCat(out, " = torch.conv2d(", in, ", self.", name, "_weight, self.", name,
                      "_bias, [", stride, ", ", stride, "], [", padding, ", ", padding,
                      "], [1, 1], ", groups, ")"));
    if (relu6) Line(absl::StrCat(out, " = torch.hardtanh(", out, ", 0.0, 6.0)"));
  }

  // `var` (float) quantized to uint8 at `act`'s scale and zero point: where a float layer
  // feeds an int8 one. Values beyond the range saturate, as the fake quantizer clips them.
  void Quantize(const std::string& var, const Activation& act) {
    // The dtype as its ScalarType number: this TorchScript takes no torch.quint8 value.
    Line(absl::StrCat(var, " = torch.quantize_per_tensor(", var, ", ", Literal(act.scale), ", ",
                      act.zero_point, ", ", static_cast<int>(at::kQUInt8), ")"));
  }

  // `var` (uint8) back to float: where an int8 layer feeds a float one.
  void Dequantize(const std::string& var) { Line(absl::StrCat(var, " = ", var, ".dequantize()")); }

  const torch::Tensor& param(const std::string& name) { return params_[name]; }
  const std::string& body() const { return body_; }
  int64_t num_elements() const { return num_elements_; }

 private:
  torch::jit::Module* module_;
  torch::OrderedDict<std::string, torch::Tensor> params_;
  torch::OrderedDict<std::string, torch::Tensor> buffers_;
  std::vector<int> bit_choices_;
  std::string body_;
  int64_t num_elements_ = 0;
};

// The names the module's source uses: `torch` for ATen's ops (as the default resolver), and
// `quantized` for the quantized namespace (torch.ops.quantized in Python).
struct QuantizedOpsResolver : public torch::jit::NativeResolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name, torch::jit::GraphFunction& function,
      const torch::jit::SourceRange& location) override {
    if (name == "quantized") return std::make_shared<torch::jit::BuiltinModule>("quantized");
    return NativeResolver::resolveValue(name, function, location);
  }
};

// Whether a layer at (weight, activation) bits runs in int8 (W8A8) or in float (W32A32).
enum class LayerPrecision { kInt8, kFloat };

// FAILED_PRECONDITION naming the first layer of `choice` that is neither W8A8 nor W32A32, or
// the stem and tail when they are not at 8 bits.
absl::Status CheckInt8OrFloat(const MbConvSpec& spec,
                              const supernet_internal::SubnetChoice& choice) {
  if (spec.fixed_bits != kInt8Bits) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stem and tail run at ", spec.fixed_bits,
        " bits; the int8 export runs them at 8 bits (its layers at W8A8 or in float)"));
  }
  int first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      const int index = first_slot + j;
      const supernet_internal::SlotChoice& c = choice.slots[index];
      for (const auto& [layer, w, a] :
           {std::tuple<const char*, int, int>{"pointwise", c.pw_w_bits, c.pw_a_bits},
            {"depthwise", c.dw_w_bits, c.dw_a_bits}}) {
        const bool int8 = w == kInt8Bits && a == kInt8Bits;
        const bool in_float =
            w == supernet_internal::kFloatBits && a == supernet_internal::kFloatBits;
        if (!int8 && !in_float) {
          return absl::FailedPreconditionError(absl::StrCat(
              "stage ", s + 1, " block ", j + 1, " ", layer, " layers run at W", w, "A", a,
              "; the int8 export runs W8A8 layers and float (W32A32) layers only"));
        }
      }
    }
    first_slot += spec.stages[s].max_depth;
  }
  return absl::OkStatus();
}

LayerPrecision PrecisionOf(int weight_bits) {
  return weight_bits == kInt8Bits ? LayerPrecision::kInt8 : LayerPrecision::kFloat;
}

// Builds impl->module (see ExtractInt8Subnet) from the supernet's current tensors; the logits
// are quantized as `logits` says before they are dequantized.
//
// Every value between layers is held as its consumer runs: uint8 at the scale of the
// consumer's 8-bit quantizer before an int8 layer, float before a float layer. A block's
// output (the stream) is read by the next block's pointwise layer and by its residual sum, so
// it is held as that layer runs (the feature mix, at 8 bits, after the last block). Where an
// int8 layer feeds a float one, its output is requantized at the clip of the quantizer the
// consumer has at 8 bits (after ReLU6: 6 / 255) and dequantized: the only rounding the
// fake-quantized network (whose float layers quantize nothing) does not make besides int8
// execution's own.
void BuildInt8Module(const MbConvSpec& spec, SupernetModuleImpl& net,
                     const supernet_internal::SubnetChoice& choice, const Activation& logits,
                     ExtractedSubnet::Impl* impl) {
  torch::NoGradGuard no_grad;
  Int8ScriptWriter w(&impl->module, net, spec.bit_choices);
  const int c0 = spec.first_conv_channels;
  // Per block input (each slot run, then the feature mix): its quantizer at 8 bits, and how
  // its reader (the slot's pointwise layers; the feature mix in int8) runs.
  std::vector<Activation> block_inputs;
  std::vector<LayerPrecision> stream;
  std::vector<int> run_slots;
  int first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      const int index = first_slot + j;
      run_slots.push_back(index);
      block_inputs.push_back(w.Quantizer(net.slot(index).input_alpha, true));
      stream.push_back(PrecisionOf(choice.slots[index].pw_w_bits));
    }
    first_slot += spec.stages[s].max_depth;
  }
  block_inputs.push_back(w.Quantizer(w.param("feature_mix_alpha"), true));
  stream.push_back(LayerPrecision::kInt8);

  // `out = conv(in)` for a layer running at `layer`, its output held as `reader` runs
  // (quantized at `wanted` for an int8 reader).
  const auto conv = [&](const std::string& out, const std::string& in, const std::string& name,
                        const torch::Tensor& weight, const std::string& bn, int stride, int padding,
                        int groups, bool relu6, LayerPrecision layer, LayerPrecision reader,
                        const Activation& wanted) {
    if (layer == LayerPrecision::kInt8) {
      w.Conv(out, in, name, weight, bn, stride, padding, groups, relu6, wanted);
      if (reader == LayerPrecision::kFloat) w.Dequantize(out);
      return;
    }
    w.FloatConv(out, in, name, weight, bn, stride, padding, groups, relu6);
    if (reader == LayerPrecision::kInt8) w.Quantize(out, wanted);
  };
  // `x = h + x`: `h` held as `sum` says, `x` as `input` says; the sum held as `sum` says.
  const auto residual = [&](LayerPrecision input, LayerPrecision sum, const Activation& at) {
    if (sum == LayerPrecision::kInt8) {
      if (input == LayerPrecision::kFloat) w.Quantize("x", at);
      w.Add("x", "h", "x", at);
      return;
    }
    if (input == LayerPrecision::kInt8) w.Dequantize("x");
    w.Line("x = h + x");
  };

  const Activation image = w.Quantizer(w.param("image_alpha"), true);
  w.Line(absl::StrCat("x = (x - ", Literal(kFashionMnistMean), ") / ", Literal(kFashionMnistStd)));
  w.Quantize("x", image);
  const Activation first_dw = w.Quantizer(w.param("first_dw_alpha"), false);
  w.Conv("x", "x", "first_conv", w.param("first_conv_weight"), "first_conv_bn",
         spec.first_conv_stride, spec.first_conv_kernel / 2, 1, true, first_dw);
  const Activation first_project = w.Quantizer(w.param("first_project_alpha"), false);
  w.Conv("h", "x", "first_dw", w.param("first_dw_weight"), "first_dw_bn", spec.first_block_stride,
         spec.first_block_kernel / 2, c0, true, first_project);
  const bool first_residual = spec.first_block_stride == 1 && c0 == spec.first_block_channels;
  conv("h", "h", "first_project", w.param("first_project_weight"), "first_project_bn", 1, 0, 1,
       false, LayerPrecision::kInt8, stream[0], block_inputs[0]);
  if (first_residual) {
    residual(LayerPrecision::kInt8, stream[0], block_inputs[0]);
  } else {
    w.Line("x = h");
  }

  for (size_t b = 0; b < run_slots.size(); ++b) {
    const int index = run_slots[b];
    const supernet_internal::SlotChoice& c = choice.slots[index];
    const SupernetModuleImpl::Slot& slot = net.slot(index);
    const std::string name = absl::StrCat("slot", index, "_");
    const LayerPrecision pointwise = PrecisionOf(c.pw_w_bits);
    const LayerPrecision depthwise = PrecisionOf(c.dw_w_bits);
    const Activation depthwise_input = w.Quantizer(slot.depthwise_alpha, false);
    const Activation project_input = w.Quantizer(slot.project_alpha, false);
    conv("h", "x", name + "expand", slot.expand_weight.narrow(0, 0, c.mid), name + "expand_bn", 1,
         0, 1, true, pointwise, depthwise, depthwise_input);
    conv("h", "h", name + "depthwise", net.DepthwiseKernel(index, c.kernel, c.mid),
         name + "depthwise_bn", slot.stride, c.kernel / 2, c.mid, true, depthwise, pointwise,
         project_input);
    conv("h", "h", name + "project", slot.project_weight.narrow(1, 0, c.mid), name + "project_bn",
         1, 0, 1, false, pointwise, stream[b + 1], block_inputs[b + 1]);
    if (slot.residual) {
      residual(stream[b], stream[b + 1], block_inputs[b + 1]);
    } else {
      w.Line("x = h");
    }
  }

  const Activation classifier = w.Quantizer(w.param("classifier_alpha"), false);
  w.Conv("h", "x", "feature_mix", w.param("feature_mix_weight"), "feature_mix_bn", 1, 0, 1, true,
         classifier);
  w.Line("h = h.mean([2, 3])");
  w.Linear("h", "h", w.param("classifier_weight"), w.param("classifier_bias"), logits);
  w.Line("return h.dequantize()");

  impl->source = absl::StrCat("def forward(self, x: Tensor) -> Tensor:\n", w.body());
  impl->module.define(impl->source, std::make_shared<QuantizedOpsResolver>());
  impl->num_stored_elements = w.num_elements();
  impl->module.eval();
}

}  // namespace

absl::StatusOr<ExtractedSubnet> ExtractInt8Subnet(Supernet& supernet, const Genotype& genotype,
                                                  const LabeledImages& calibration,
                                                  QuantizedEngine engine,
                                                  const EvalOptions& options) {
  RETURN_IF_ERROR(supernet.space().Validate(genotype));
  const supernet_internal::SubnetChoice choice =
      supernet_internal::ChoiceFromGenotype(supernet.spec(), genotype, /*quantized=*/true);
  RETURN_IF_ERROR(CheckInt8OrFloat(supernet.spec(), choice));
  RETURN_IF_ERROR(int8_internal::UseEngine(engine));
  RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
  supernet.SetQuantized(true);
  RETURN_IF_ERROR(supernet.RecalibrateBatchNorm(calibration, options));
  // The logits' range: the fake-quantized network's on the calibration images, widened by a
  // quarter on each side.
  ASSIGN_OR_RETURN(const std::vector<float> logits, supernet.Logits(calibration));
  if (logits.empty()) return absl::InvalidArgumentError("no calibration images");
  const auto [low, high] = std::minmax_element(logits.begin(), logits.end());
  const double margin = 0.25 * std::max(1e-6, static_cast<double>(*high - *low));
  const int8_internal::ActivationQuantization logit_range =
      int8_internal::QuantizationOfRange(*low - margin, *high + margin);
  auto impl = std::make_unique<ExtractedSubnet::Impl>();
  impl->genotype = genotype;
  impl->quantized = true;
  impl->int8_engine = QuantizedEngineName(engine);
  impl->input_channels = supernet.spec().input_channels;
  impl->input_size = supernet.spec().input_size;
  try {
    impl->module.register_attribute("spec", c10::StringType::get(), supernet.spec().name);
    impl->module.register_attribute("config", c10::StringType::get(),
                                    supernet.space().ToJson(genotype));
    impl->module.register_attribute("quantized_engine", c10::StringType::get(), impl->int8_engine);
    BuildInt8Module(supernet.spec(), supernet.module(), choice,
                    Activation{logit_range.scale, logit_range.zero_point, 0.0}, impl.get());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot build the int8 subnet: ", ErrorMessage(e)));
  }
  return ExtractedSubnet(std::move(impl));
}

}  // namespace apq::oface
