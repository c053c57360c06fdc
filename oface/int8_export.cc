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

// FAILED_PRECONDITION naming the first layer of `choice` that is not W8A8.
absl::Status CheckAllInt8(const MbConvSpec& spec, const supernet_internal::SubnetChoice& choice) {
  if (spec.fixed_bits != kInt8Bits) {
    return absl::FailedPreconditionError(absl::StrCat("the stem and tail run at ", spec.fixed_bits,
                                                      " bits; the int8 export runs W8A8 only"));
  }
  int first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      const int index = first_slot + j;
      const supernet_internal::SlotChoice& c = choice.slots[index];
      for (const auto& [layer, w, a] :
           {std::tuple<const char*, int, int>{"pointwise", c.pw_w_bits, c.pw_a_bits},
            {"depthwise", c.dw_w_bits, c.dw_a_bits}}) {
        if (w != kInt8Bits || a != kInt8Bits) {
          return absl::FailedPreconditionError(
              absl::StrCat("stage ", s + 1, " block ", j + 1, " ", layer, " layers run at W", w,
                           "A", a, "; the int8 export runs W8A8 layers only"));
        }
      }
    }
    first_slot += spec.stages[s].max_depth;
  }
  return absl::OkStatus();
}

// Builds impl->module (see ExtractInt8Subnet) from the supernet's current tensors; the logits
// are quantized as `logits` says before they are dequantized.
void BuildInt8Module(const MbConvSpec& spec, SupernetModuleImpl& net,
                     const supernet_internal::SubnetChoice& choice, const Activation& logits,
                     ExtractedSubnet::Impl* impl) {
  torch::NoGradGuard no_grad;
  Int8ScriptWriter w(&impl->module, net, spec.bit_choices);
  const int c0 = spec.first_conv_channels;
  // The quantizer of the network's next block input (a slot's, or the feature mix's): what a
  // block's projection and residual sum are quantized to.
  std::vector<Activation> block_inputs;
  int first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      block_inputs.push_back(w.Quantizer(net.slot(first_slot + j).input_alpha, true));
    }
    first_slot += spec.stages[s].max_depth;
  }
  block_inputs.push_back(w.Quantizer(w.param("feature_mix_alpha"), true));

  const Activation image = w.Quantizer(w.param("image_alpha"), true);
  w.Line(absl::StrCat("x = (x - ", Literal(kFashionMnistMean), ") / ", Literal(kFashionMnistStd)));
  // The dtype as its ScalarType number: this TorchScript takes no torch.quint8 value.
  w.Line(absl::StrCat("x = torch.quantize_per_tensor(x, ", Literal(image.scale), ", ",
                      image.zero_point, ", ", static_cast<int>(at::kQUInt8), ")"));
  const Activation first_dw = w.Quantizer(w.param("first_dw_alpha"), false);
  w.Conv("x", "x", "first_conv", w.param("first_conv_weight"), "first_conv_bn",
         spec.first_conv_stride, spec.first_conv_kernel / 2, 1, true, first_dw);
  const Activation first_project = w.Quantizer(w.param("first_project_alpha"), false);
  w.Conv("h", "x", "first_dw", w.param("first_dw_weight"), "first_dw_bn", spec.first_block_stride,
         spec.first_block_kernel / 2, c0, true, first_project);
  int next = 0;  // Index into block_inputs of the next block's input.
  const bool first_residual = spec.first_block_stride == 1 && c0 == spec.first_block_channels;
  w.Conv("h", "h", "first_project", w.param("first_project_weight"), "first_project_bn", 1, 0, 1,
         false, block_inputs[next]);
  if (first_residual) {
    w.Add("x", "h", "x", block_inputs[next]);
  } else {
    w.Line("x = h");
  }

  first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      const int index = first_slot + j;
      const supernet_internal::SlotChoice& c = choice.slots[index];
      const SupernetModuleImpl::Slot& slot = net.slot(index);
      const std::string name = absl::StrCat("slot", index, "_");
      ++next;
      const Activation depthwise = w.Quantizer(slot.depthwise_alpha, false);
      const Activation project = w.Quantizer(slot.project_alpha, false);
      w.Conv("h", "x", name + "expand", slot.expand_weight.narrow(0, 0, c.mid), name + "expand_bn",
             1, 0, 1, true, depthwise);
      w.Conv("h", "h", name + "depthwise", net.DepthwiseKernel(index, c.kernel, c.mid),
             name + "depthwise_bn", slot.stride, c.kernel / 2, c.mid, true, project);
      w.Conv("h", "h", name + "project", slot.project_weight.narrow(1, 0, c.mid),
             name + "project_bn", 1, 0, 1, false, block_inputs[next]);
      if (slot.residual) {
        w.Add("x", "h", "x", block_inputs[next]);
      } else {
        w.Line("x = h");
      }
    }
    first_slot += spec.stages[s].max_depth;
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
  RETURN_IF_ERROR(CheckAllInt8(supernet.spec(), choice));
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
