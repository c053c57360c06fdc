#include "oface/subnet_export.h"

#include <c10/util/Exception.h>
#include <sys/stat.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <istream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "oface/int8_layers.h"
#include "oface/int8_layers_internal.h"
#include "oface/subnet_export_internal.h"
#include "oface/supernet_module.h"

namespace apq::oface {

namespace export_internal {

std::string Literal(double value) {
  std::string text = absl::StrFormat("%.17g", value);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

torch::Tensor ScaledPixels(const LabeledImages& images) {
  auto* data = const_cast<uint8_t*>(images.pixels.data());
  return torch::from_blob(data, {images.count, 1, images.rows, images.cols}, torch::kUInt8)
      .to(torch::kFloat32)
      .div_(255.0);
}

}  // namespace export_internal

namespace {

using export_internal::Literal;
using export_internal::ScaledPixels;
using supernet_internal::ErrorMessage;
using supernet_internal::SupernetModuleImpl;

using export_internal::kAlphaFloor;
using export_internal::kBatchNormEps;

// Writes the forward of one subnet, statement by statement, and registers the tensors the
// statements name. Mirrors SupernetModuleImpl::forward / SlotForward op for op, so that the
// values agree with the supernet's to rounding.
class ScriptWriter {
 public:
  ScriptWriter(torch::jit::Module* module, SupernetModuleImpl& net, bool quantized,
               std::vector<int> bit_choices)
      : module_(module),
        params_(net.named_parameters()),
        buffers_(net.named_buffers()),
        quantized_(quantized),
        bit_choices_(std::move(bit_choices)) {}

  void Line(const std::string& statement) { absl::StrAppend(&body_, "    ", statement, "\n"); }

  std::string Register(const std::string& name, const torch::Tensor& tensor, bool is_buffer) {
    const torch::Tensor copy = tensor.detach().clone().contiguous();
    num_elements_ += copy.numel();
    if (is_buffer) {
      module_->register_buffer(name, copy);
    } else {
      module_->register_parameter(name, copy, /*is_buffer=*/false);
    }
    return absl::StrCat("self.", name);
  }

  // `var = fake_quant(var)` with the clipping range of `alphas` (one per bit choice, or one).
  void ActQuant(const std::string& var, const std::string& name, const torch::Tensor& alphas,
                int bits, bool is_signed) {
    if (!quantized_ || bits == supernet_internal::kFloatBits) return;
    int index = 0;
    if (alphas.size(0) > 1) {
      index = static_cast<int>(std::find(bit_choices_.begin(), bit_choices_.end(), bits) -
                               bit_choices_.begin());
    }
    const std::string alpha = Register(absl::StrCat(name, "_alpha"), alphas.select(0, index),
                                       /*is_buffer=*/true);
    const int64_t levels =
        is_signed ? supernet_internal::SignedLevels(bits) : supernet_internal::UnsignedLevels(bits);
    // The step as FakeQuantActivation computes it (float32 tensor ops, then float).
    Line(absl::StrCat(var, " = torch.fake_quantize_per_tensor_affine(", var, ", float((", alpha,
                      ".abs() + ", Literal(kAlphaFloor), ") / ", Literal(levels), "), 0, ",
                      is_signed ? -levels : 0, ", ", levels, ")"));
  }

  // The weight, fake-quantized at `bits` when quantized, registered as a parameter.
  std::string Weight(const std::string& name, const torch::Tensor& weight, int bits) {
    return Register(name, quantized_ ? supernet_internal::FakeQuantWeight(weight, bits) : weight,
                    /*is_buffer=*/false);
  }

  void Conv(const std::string& out, const std::string& in, const std::string& weight, int stride,
            int padding, int groups) {
    Line(absl::StrCat(out, " = torch.conv2d(", in, ", ", weight, ", None, [", stride, ", ", stride,
                      "], [", padding, ", ", padding, "], [1, 1], ", groups, ")"));
  }

  // `var = batch_norm(var)` with the supernet's batch norm `prefix` cut to `channels`.
  void BatchNorm(const std::string& var, const std::string& prefix, int channels) {
    const auto cut = [&](const torch::Tensor& t) { return t.narrow(0, 0, channels); };
    const std::string weight = Register(absl::StrCat(prefix, "_weight"),
                                        cut(params_[absl::StrCat(prefix, "_weight")]), false);
    const std::string bias =
        Register(absl::StrCat(prefix, "_bias"), cut(params_[absl::StrCat(prefix, "_bias")]), false);
    const std::string mean = Register(absl::StrCat(prefix, "_running_mean"),
                                      cut(buffers_[absl::StrCat(prefix, "_running_mean")]), true);
    const std::string var_name =
        Register(absl::StrCat(prefix, "_running_var"),
                 cut(buffers_[absl::StrCat(prefix, "_running_var")]), true);
    Line(absl::StrCat(var, " = torch.batch_norm(", var, ", ", weight, ", ", bias, ", ", mean, ", ",
                      var_name, ", False, 0.1, ", Literal(kBatchNormEps), ", False)"));
  }

  void Relu6(const std::string& var) {
    Line(absl::StrCat(var, " = torch.hardtanh(", var, ", 0.0, 6.0)"));
  }

  const torch::Tensor& param(const std::string& name) { return params_[name]; }
  const std::string& body() const { return body_; }
  int64_t num_elements() const { return num_elements_; }

 private:
  torch::jit::Module* module_;
  torch::OrderedDict<std::string, torch::Tensor> params_;
  torch::OrderedDict<std::string, torch::Tensor> buffers_;
  bool quantized_;
  std::vector<int> bit_choices_;
  std::string body_;
  int64_t num_elements_ = 0;
};

// Builds impl->module from the supernet's current (recalibrated) tensors.
void BuildModule(const MbConvSpec& spec, SupernetModuleImpl& net, const Genotype& genotype,
                 bool quantized, ExtractedSubnet::Impl* impl) {
  torch::NoGradGuard no_grad;
  const supernet_internal::SubnetChoice choice =
      supernet_internal::ChoiceFromGenotype(spec, genotype, quantized);
  ScriptWriter w(&impl->module, net, quantized, spec.bit_choices);
  const int bits = spec.fixed_bits;
  const int c0 = spec.first_conv_channels;

  w.Line(absl::StrCat("x = (x - ", Literal(kFashionMnistMean), ") / ", Literal(kFashionMnistStd)));
  w.ActQuant("x", "image", w.param("image_alpha"), bits, true);
  w.Conv("x", "x", w.Weight("first_conv_weight", w.param("first_conv_weight"), bits),
         spec.first_conv_stride, spec.first_conv_kernel / 2, 1);
  w.BatchNorm("x", "first_conv_bn", c0);
  w.Relu6("x");
  w.Line("h = x");
  w.ActQuant("h", "first_dw", w.param("first_dw_alpha"), bits, false);
  w.Conv("h", "h", w.Weight("first_dw_weight", w.param("first_dw_weight"), bits),
         spec.first_block_stride, spec.first_block_kernel / 2, c0);
  w.BatchNorm("h", "first_dw_bn", c0);
  w.Relu6("h");
  w.ActQuant("h", "first_project", w.param("first_project_alpha"), bits, false);
  w.Conv("h", "h", w.Weight("first_project_weight", w.param("first_project_weight"), bits), 1, 0,
         1);
  w.BatchNorm("h", "first_project_bn", spec.first_block_channels);
  const bool first_residual = spec.first_block_stride == 1 && c0 == spec.first_block_channels;
  w.Line(first_residual ? "x = h + x" : "x = h");

  int first_slot = 0;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (int j = 0; j < choice.depths[s]; ++j) {
      const int index = first_slot + j;
      const supernet_internal::SlotChoice& c = choice.slots[index];
      const SupernetModuleImpl::Slot& slot = net.slot(index);
      const std::string name = absl::StrCat("slot", index, "_");
      w.Line("h = x");
      w.ActQuant("h", name + "input", slot.input_alpha, c.pw_a_bits, true);
      w.Conv("h", "h",
             w.Weight(name + "expand_weight", slot.expand_weight.narrow(0, 0, c.mid), c.pw_w_bits),
             1, 0, 1);
      w.BatchNorm("h", name + "expand_bn", c.mid);
      w.Relu6("h");
      w.ActQuant("h", name + "depthwise", slot.depthwise_alpha, c.dw_a_bits, false);
      w.Conv("h", "h",
             w.Weight(name + "depthwise_weight", net.DepthwiseKernel(index, c.kernel, c.mid),
                      c.dw_w_bits),
             slot.stride, c.kernel / 2, c.mid);
      w.BatchNorm("h", name + "depthwise_bn", c.mid);
      w.Relu6("h");
      w.ActQuant("h", name + "project", slot.project_alpha, c.pw_a_bits, false);
      w.Conv(
          "h", "h",
          w.Weight(name + "project_weight", slot.project_weight.narrow(1, 0, c.mid), c.pw_w_bits),
          1, 0, 1);
      w.BatchNorm("h", name + "project_bn", slot.out_channels);
      w.Line(slot.residual ? "x = h + x" : "x = h");
    }
    first_slot += spec.stages[s].max_depth;
  }

  w.Line("h = x");
  w.ActQuant("h", "feature_mix", w.param("feature_mix_alpha"), bits, true);
  w.Conv("h", "h", w.Weight("feature_mix_weight", w.param("feature_mix_weight"), bits), 1, 0, 1);
  w.BatchNorm("h", "feature_mix_bn", spec.feature_mix_channels);
  w.Relu6("h");
  w.Line("h = h.mean([2, 3])");
  w.ActQuant("h", "classifier", w.param("classifier_alpha"), bits, false);
  const std::string classifier_weight =
      w.Weight("classifier_weight", w.param("classifier_weight"), bits);
  const std::string classifier_bias =
      w.Register("classifier_bias", w.param("classifier_bias"), /*is_buffer=*/false);
  w.Line(absl::StrCat("return torch.linear(h, ", classifier_weight, ", ", classifier_bias, ")"));

  impl->source = absl::StrCat("def forward(self, x: Tensor) -> Tensor:\n", w.body());
  impl->module.define(impl->source);
  impl->num_stored_elements = w.num_elements();
  impl->module.eval();
}

absl::Status CheckImages(const LabeledImages& images, int batch_size) {
  if (images.count <= 0 || batch_size <= 0) {
    return absl::InvalidArgumentError("needs at least one image and a positive batch size");
  }
  return absl::OkStatus();
}

// Correctly classified images of `test` by `module`, batch by batch.
int64_t CountCorrect(torch::jit::Module& module, const LabeledImages& test, int batch_size) {
  torch::NoGradGuard no_grad;
  const torch::Tensor images = ScaledPixels(test);
  const torch::Tensor labels = supernet_internal::LabelsToTensor(test);
  int64_t correct = 0;
  for (int64_t begin = 0; begin < test.count; begin += batch_size) {
    const int64_t size = std::min<int64_t>(batch_size, test.count - begin);
    const torch::Tensor logits = module.forward({images.narrow(0, begin, size)}).toTensor();
    TORCH_CHECK(logits.dim() == 2 && logits.size(0) == size,
                "the module's output is not [N, classes] logits");
    correct += logits.argmax(1).eq(labels.narrow(0, begin, size)).sum().item<int64_t>();
  }
  return correct;
}

}  // namespace

double MedianLatencyMs(int warmup, int repeats, const std::function<void()>& run,
                       const std::function<void()>& before_each) {
  for (int i = 0; i < warmup; ++i) {
    if (before_each) before_each();
    run();
  }
  std::vector<double> ms(repeats);
  for (double& sample : ms) {
    if (before_each) before_each();
    const auto start = std::chrono::steady_clock::now();
    run();
    sample =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  const size_t middle = ms.size() / 2;
  std::nth_element(ms.begin(), ms.begin() + middle, ms.end());
  if (ms.size() % 2 == 1) return ms[middle];
  // The lower middle is the largest of the lower half.
  return (*std::max_element(ms.begin(), ms.begin() + middle) + ms[middle]) / 2;
}

ExtractedSubnet::ExtractedSubnet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExtractedSubnet::ExtractedSubnet(ExtractedSubnet&&) noexcept = default;
ExtractedSubnet& ExtractedSubnet::operator=(ExtractedSubnet&&) noexcept = default;
ExtractedSubnet::~ExtractedSubnet() = default;

const Genotype& ExtractedSubnet::genotype() const { return impl_->genotype; }
bool ExtractedSubnet::quantized() const { return impl_->quantized; }
const std::string& ExtractedSubnet::int8_engine() const { return impl_->int8_engine; }
const std::string& ExtractedSubnet::source() const { return impl_->source; }
int64_t ExtractedSubnet::num_stored_elements() const { return impl_->num_stored_elements; }

absl::StatusOr<std::vector<float>> ExtractedSubnet::Logits(const LabeledImages& images) {
  RETURN_IF_ERROR(CheckImages(images, 1));
  try {
    torch::NoGradGuard no_grad;
    const torch::Tensor logits =
        impl_->module.forward({ScaledPixels(images)}).toTensor().contiguous();
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("forward of the extracted subnet failed: ", ErrorMessage(e)));
  }
}

absl::StatusOr<double> ExtractedSubnet::Accuracy(const LabeledImages& test, int batch_size) {
  RETURN_IF_ERROR(CheckImages(test, batch_size));
  try {
    return static_cast<double>(CountCorrect(impl_->module, test, batch_size)) / test.count;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("evaluation of the extracted subnet failed: ", ErrorMessage(e)));
  }
}

absl::StatusOr<double> ExtractedSubnet::MedianLatencyMs(int warmup, int repeats) {
  if (warmup < 0 || repeats < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latency: warmup must be >= 0 and repeats >= 1, got ", warmup, " and ", repeats));
  }
  try {
    torch::NoGradGuard no_grad;
    const std::vector<torch::jit::IValue> inputs = {
        torch::full({1, impl_->input_channels, impl_->input_size, impl_->input_size}, 0.5)};
    return oface::MedianLatencyMs(warmup, repeats, [&] { impl_->module.forward(inputs); });
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("timing the extracted subnet failed: ", ErrorMessage(e)));
  }
}

absl::Status ExtractedSubnet::Save(const std::string& path) const {
  const std::string temporary = absl::StrCat(path, ".tmp");
  try {
    impl_->module.save(temporary);
  } catch (const std::exception& e) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", temporary, ": ", ErrorMessage(e)));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot rename ", temporary, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExtractedSubnet> ExtractSubnet(Supernet& supernet, const Genotype& genotype,
                                              bool quantized, const LabeledImages& calibration,
                                              const EvalOptions& options) {
  RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
  supernet.SetQuantized(quantized);
  RETURN_IF_ERROR(supernet.RecalibrateBatchNorm(calibration, options));
  auto impl = std::make_unique<ExtractedSubnet::Impl>();
  impl->genotype = genotype;
  impl->quantized = quantized;
  impl->input_channels = supernet.spec().input_channels;
  impl->input_size = supernet.spec().input_size;
  try {
    impl->module.register_attribute("spec", c10::StringType::get(), supernet.spec().name);
    impl->module.register_attribute("config", c10::StringType::get(),
                                    supernet.space().ToJson(genotype));
    BuildModule(supernet.spec(), supernet.module(), genotype, quantized, impl.get());
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot build the extracted subnet: ", ErrorMessage(e)));
  }
  return ExtractedSubnet(std::move(impl));
}

namespace {

// The accuracy of a module loaded by torch::jit::load from `in`, as VerifyExport describes.
absl::StatusOr<double> LoadedAccuracy(std::istream& in, const std::string& name,
                                      const LabeledImages& test, int batch_size) {
  try {
    torch::jit::Module module = torch::jit::load(in);
    // An int8 module names the engine its packed weights need. Loading packs them for the
    // engine current at that moment (and they then run on it), so a program sets the engine
    // first: here the module is loaded again once the engine is set.
    if (module.hasattr("quantized_engine")) {
      const std::string engine_name = module.attr("quantized_engine").toStringRef();
      absl::StatusOr<QuantizedEngine> engine = QuantizedEngineFromName(engine_name);
      if (!engine.ok()) {
        return absl::DataLossError(
            absl::StrCat(name, ": quantized_engine: ", engine.status().message()));
      }
      RETURN_IF_ERROR(int8_internal::UseEngine(*engine));
      in.clear();
      in.seekg(0);
      module = torch::jit::load(in);
    }
    module.eval();
    return static_cast<double>(CountCorrect(module, test, batch_size)) / test.count;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(name, " cannot be loaded or run: ", ErrorMessage(e)));
  }
}

}  // namespace

absl::StatusOr<double> VerifyExport(const std::string& path, const LabeledImages& test,
                                    int batch_size) {
  RETURN_IF_ERROR(CheckImages(test, batch_size));
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat("exported subnet ", path, " does not exist"));
  }
  std::ifstream in(path, std::ios::binary);
  return LoadedAccuracy(in, absl::StrCat("exported subnet ", path), test, batch_size);
}

absl::StatusOr<double> VerifyExportBytes(const std::string& bytes, const LabeledImages& test,
                                         int batch_size) {
  RETURN_IF_ERROR(CheckImages(test, batch_size));
  std::istringstream in(bytes);
  return LoadedAccuracy(in, "exported subnet", test, batch_size);
}

}  // namespace apq::oface
