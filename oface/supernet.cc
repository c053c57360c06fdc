#include "oface/supernet.h"

#include <c10/util/Exception.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "oface/mbconv_quant_space.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace supernet_internal {
namespace {

constexpr double kBatchNormEps = 1e-5;
// Initial clipping ranges: ReLU6 outputs end at 6; signed block outputs and the normalised
// image rarely leave [-4, 4] (the image is within [-0.81, 2.02]).
constexpr double kUnsignedAlphaInit = 6.0;
constexpr double kSignedAlphaInit = 4.0;
constexpr double kImageAlphaInit = 2.1;

torch::Tensor Relu6(const torch::Tensor& x) { return torch::hardtanh(x, 0.0, 6.0); }

// Kaiming normal, fan_out mode, as torchvision's MobileNetV2.
torch::Tensor ConvInit(std::vector<int64_t> shape) {
  const int64_t fan_out = shape[0] * shape[2] * shape[3];
  return torch::randn(shape) * std::sqrt(2.0 / static_cast<double>(fan_out));
}

int IndexOf(const std::vector<int>& values, int value) {
  const auto it = std::find(values.begin(), values.end(), value);
  return it == values.end() ? -1 : static_cast<int>(it - values.begin());
}

}  // namespace

int64_t SignedLevels(int bits) { return (int64_t{1} << (bits - 1)) - 1; }

int64_t UnsignedLevels(int bits) { return (int64_t{1} << bits) - 1; }

torch::Tensor FakeQuantWeight(const torch::Tensor& weight, int bits) {
  if (bits == kFloatBits) return weight;
  const double levels = static_cast<double>(SignedLevels(bits));
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = -1;
  const torch::Tensor scale =
      (weight.detach().abs().reshape({weight.size(0), -1}).amax(1).clamp_min(1e-8) / levels)
          .reshape(shape);
  const torch::Tensor quantized =
      torch::round(weight.detach() / scale).clamp(-levels, levels) * scale;
  return weight + (quantized - weight.detach());
}

torch::Tensor FakeQuantActivation(const torch::Tensor& x, const torch::Tensor& alpha, int bits,
                                  bool is_signed) {
  if (bits == kFloatBits) return x;
  const int64_t levels = is_signed ? SignedLevels(bits) : UnsignedLevels(bits);
  // |alpha| keeps the range positive whatever the optimizer does; the floor avoids a zero step.
  const torch::Tensor step = ((alpha.abs() + 1e-3) / static_cast<double>(levels)).reshape({1});
  // One fused kernel (LSQ's learnable fake quantization): clip to [qmin, qmax] steps, round,
  // straight-through gradient for x inside the range, and a gradient for the step size.
  // LSQ's gradient scale 1 / sqrt(elements x levels): the step's gradient sums over every
  // element, and unscaled it would dominate the gradient norm (and its clipping).
  if (!torch::GradMode::is_enabled()) {
    // Without gradients (measurements, verification): the fused kernel's forward value
    // (fake_quantize_per_tensor_affine at scale float(step), zero point 0: round half to
    // even of x times the float reciprocal, clamped, times the scale) from vectorised ops.
    // This LibTorch runs that kernel as a scalar loop through libm's fmin and fmax: half the
    // time of a quantized evaluation. The quantizer test checks both agree bit for bit.
    const float scale = step.item<float>();
    const float inverse_scale = 1.0F / scale;
    return torch::round(x * inverse_scale).clamp_(is_signed ? -levels : 0, levels).mul_(scale);
  }
  const double grad_factor = 1.0 / std::sqrt(static_cast<double>(x.numel()) * levels);
  return torch::_fake_quantize_learnable_per_tensor_affine(
      x, step, torch::zeros({1}), is_signed ? -levels : 0, levels, grad_factor);
}

torch::Tensor ImagesToTensor(const LabeledImages& images) {
  auto* data = const_cast<uint8_t*>(images.pixels.data());
  return torch::from_blob(data, {images.count, 1, images.rows, images.cols}, torch::kUInt8)
      .to(torch::kFloat32)
      .div_(255.0)
      .sub_(kFashionMnistMean)
      .div_(kFashionMnistStd);
}

torch::Tensor LabelsToTensor(const LabeledImages& images) {
  auto* data = const_cast<uint8_t*>(images.labels.data());
  return torch::from_blob(data, {images.count}, torch::kUInt8).to(torch::kInt64);
}

std::string ArchiveToBytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream stream;
  archive.save_to(stream);
  return stream.str();
}

void ArchiveFromBytes(const std::string& bytes, torch::serialize::InputArchive& archive) {
  std::istringstream stream(bytes);
  archive.load_from(stream);
}

torch::Tensor TextTensor(const std::string& text) {
  return torch::tensor(std::vector<int64_t>(text.begin(), text.end()), torch::kInt64);
}

std::vector<int64_t> ReadInt64s(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor tensor;
  archive.read(key, tensor);
  const torch::Tensor flat = tensor.to(torch::kInt64).contiguous().view(-1);
  return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

std::string ReadText(torch::serialize::InputArchive& archive, const std::string& key) {
  const std::vector<int64_t> codes = ReadInt64s(archive, key);
  return std::string(codes.begin(), codes.end());
}

SubnetChoice ChoiceFromGenotype(const MbConvSpec& spec, const Genotype& genotype, bool quantized) {
  int num_slots = 0;
  for (const MbConvStageSpec& stage : spec.stages) num_slots += stage.max_depth;
  SubnetChoice choice;
  choice.quantized = quantized;
  choice.slots.resize(num_slots);
  for (int i = 0; i < num_slots; ++i) {
    SlotChoice& slot = choice.slots[i];
    slot.kernel = genotype[i];
    slot.mid = genotype[num_slots + i];
    slot.pw_w_bits = genotype[2 * num_slots + i];
    slot.pw_a_bits = genotype[3 * num_slots + i];
    slot.dw_w_bits = genotype[4 * num_slots + i];
    slot.dw_a_bits = genotype[5 * num_slots + i];
  }
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    choice.depths.push_back(genotype[size_t{6} * num_slots + s]);
  }
  return choice;
}

std::string ErrorMessage(const std::exception& e) {
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  return error != nullptr ? error->what_without_backtrace() : e.what();
}

absl::Status SaveArchiveAtomically(torch::serialize::OutputArchive& archive,
                                   const std::string& path) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  try {
    archive.save_to(temporary);
  } catch (const c10::Error& e) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(
        absl::StrCat("cannot write ", temporary, ": ", e.what_without_backtrace()));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", temporary, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status LoadArchive(const std::string& path, torch::serialize::InputArchive& archive) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path, " does not exist"));
  }
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, " is unreadable: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

SupernetModuleImpl::SupernetModuleImpl(const MbConvSpec& spec)
    : spec_(spec), kernel_sizes_(spec.kernel_sizes), bit_choices_(spec.bit_choices) {
  const int num_bits = static_cast<int>(bit_choices_.size());
  const int max_kernel = kernel_sizes_.back();
  const int c0 = spec.first_conv_channels;
  first_conv_weight_ = register_parameter(
      "first_conv_weight",
      ConvInit({c0, spec.input_channels, spec.first_conv_kernel, spec.first_conv_kernel}));
  decay_.push_back(first_conv_weight_);
  first_conv_bn_ = RegisterBatchNorm("first_conv_bn", c0);
  first_dw_weight_ = register_parameter(
      "first_dw_weight", ConvInit({c0, 1, spec.first_block_kernel, spec.first_block_kernel}));
  decay_.push_back(first_dw_weight_);
  first_dw_bn_ = RegisterBatchNorm("first_dw_bn", c0);
  first_project_weight_ =
      register_parameter("first_project_weight", ConvInit({spec.first_block_channels, c0, 1, 1}));
  decay_.push_back(first_project_weight_);
  first_project_bn_ = RegisterBatchNorm("first_project_bn", spec.first_block_channels);
  first_block_residual_ = spec.first_block_stride == 1 && c0 == spec.first_block_channels;
  image_alpha_ = RegisterAlpha("image_alpha", 1, kImageAlphaInit);
  first_dw_alpha_ = RegisterAlpha("first_dw_alpha", 1, kUnsignedAlphaInit);
  first_project_alpha_ = RegisterAlpha("first_project_alpha", 1, kUnsignedAlphaInit);

  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const MbConvStageSpec& stage = spec.stages[s];
    stage_first_slot_.push_back(static_cast<int>(slots_.size()));
    for (int j = 0; j < stage.max_depth; ++j) {
      const int index = static_cast<int>(slots_.size());
      const std::string name = absl::StrCat("slot", index, "_");
      Slot slot;
      slot.stage = static_cast<int>(s);
      slot.in_channels = j == 0 ? stage.in_channels : stage.out_channels;
      slot.out_channels = stage.out_channels;
      slot.stride = j == 0 ? stage.stride : 1;
      slot.residual = slot.stride == 1 && slot.in_channels == slot.out_channels;
      // The top of the width grid range(min_expand c, max_expand c + step, step).
      const int min_mid = spec.min_expand * slot.in_channels;
      slot.max_mid = min_mid + (spec.max_expand * slot.in_channels - min_mid) / spec.width_step *
                                   spec.width_step;
      slot.expand_weight = register_parameter(absl::StrCat(name, "expand_weight"),
                                              ConvInit({slot.max_mid, slot.in_channels, 1, 1}));
      slot.expand_bn = RegisterBatchNorm(absl::StrCat(name, "expand_bn"), slot.max_mid);
      slot.depthwise_weight =
          register_parameter(absl::StrCat(name, "depthwise_weight"),
                             ConvInit({slot.max_mid, 1, max_kernel, max_kernel}));
      for (size_t k = 0; k + 1 < kernel_sizes_.size(); ++k) {
        const int target = kernel_sizes_[k];
        slot.kernel_transforms.push_back(
            register_parameter(absl::StrCat(name, "kernel_", kernel_sizes_[k + 1], "to", target),
                               torch::eye(int64_t{target} * target)));
        no_decay_.push_back(slot.kernel_transforms.back());
      }
      slot.depthwise_bn = RegisterBatchNorm(absl::StrCat(name, "depthwise_bn"), slot.max_mid);
      slot.project_weight = register_parameter(absl::StrCat(name, "project_weight"),
                                               ConvInit({slot.out_channels, slot.max_mid, 1, 1}));
      slot.project_bn = RegisterBatchNorm(absl::StrCat(name, "project_bn"), slot.out_channels);
      slot.input_alpha =
          RegisterAlpha(absl::StrCat(name, "input_alpha"), num_bits, kSignedAlphaInit);
      slot.depthwise_alpha =
          RegisterAlpha(absl::StrCat(name, "depthwise_alpha"), num_bits, kUnsignedAlphaInit);
      slot.project_alpha =
          RegisterAlpha(absl::StrCat(name, "project_alpha"), num_bits, kUnsignedAlphaInit);
      for (const char* alpha : {"input_alpha", "depthwise_alpha", "project_alpha"}) {
        per_bit_choice_.push_back(absl::StrCat(name, alpha));
      }
      decay_.push_back(slot.expand_weight);
      decay_.push_back(slot.depthwise_weight);
      decay_.push_back(slot.project_weight);
      slots_.push_back(std::move(slot));
    }
  }

  const int last = spec.stages.back().out_channels;
  feature_mix_weight_ =
      register_parameter("feature_mix_weight", ConvInit({spec.feature_mix_channels, last, 1, 1}));
  decay_.push_back(feature_mix_weight_);
  feature_mix_bn_ = RegisterBatchNorm("feature_mix_bn", spec.feature_mix_channels);
  classifier_weight_ = register_parameter(
      "classifier_weight", torch::randn({spec.num_classes, spec.feature_mix_channels}) * 0.01);
  decay_.push_back(classifier_weight_);
  classifier_bias_ = register_parameter("classifier_bias", torch::zeros({spec.num_classes}));
  no_decay_.push_back(classifier_bias_);
  feature_mix_alpha_ = RegisterAlpha("feature_mix_alpha", 1, kSignedAlphaInit);
  classifier_alpha_ = RegisterAlpha("classifier_alpha", 1, kUnsignedAlphaInit);
}

ElasticBatchNorm SupernetModuleImpl::RegisterBatchNorm(const std::string& name, int channels) {
  ElasticBatchNorm bn;
  bn.weight = register_parameter(absl::StrCat(name, "_weight"), torch::ones({channels}));
  bn.bias = register_parameter(absl::StrCat(name, "_bias"), torch::zeros({channels}));
  bn.running_mean = register_buffer(absl::StrCat(name, "_running_mean"), torch::zeros({channels}));
  bn.running_var = register_buffer(absl::StrCat(name, "_running_var"), torch::ones({channels}));
  no_decay_.push_back(bn.weight);
  no_decay_.push_back(bn.bias);
  return bn;
}

torch::Tensor SupernetModuleImpl::RegisterAlpha(const std::string& name, int size, double init) {
  torch::Tensor alpha = register_parameter(name, torch::full({size}, init));
  no_decay_.push_back(alpha);
  return alpha;
}

std::vector<torch::Tensor> SupernetModuleImpl::NoDecayParameters() const { return no_decay_; }
std::vector<torch::Tensor> SupernetModuleImpl::DecayParameters() const { return decay_; }

bool SupernetModuleImpl::IsPerBitChoice(const std::string& name) const {
  return std::find(per_bit_choice_.begin(), per_bit_choice_.end(), name) != per_bit_choice_.end();
}

torch::Tensor SupernetModuleImpl::BatchNorm(const torch::Tensor& x, const ElasticBatchNorm& bn,
                                            int channels) {
  // Slices of the running statistics are views: training-mode updates land in the first
  // `channels` entries of the shared buffers (once-for-all's DynamicBatchNorm2d).
  return torch::batch_norm(x, bn.weight.narrow(0, 0, channels), bn.bias.narrow(0, 0, channels),
                           bn.running_mean.narrow(0, 0, channels),
                           bn.running_var.narrow(0, 0, channels), is_training(), bn_momentum_,
                           kBatchNormEps, /*cudnn_enabled=*/false);
}

torch::Tensor SupernetModuleImpl::ActQuant(const torch::Tensor& x, const torch::Tensor& alphas,
                                           int bits, bool is_signed) const {
  const int index = alphas.size(0) == 1 ? 0 : IndexOf(bit_choices_, bits);
  return FakeQuantActivation(x, alphas.select(0, index), bits, is_signed);
}

torch::Tensor SupernetModuleImpl::DepthwiseKernel(int slot, int kernel, int mid) const {
  const Slot& s = slots_[slot];
  torch::Tensor filter = s.depthwise_weight.narrow(0, 0, mid);
  // From the largest size down (once-for-all's get_active_filter): crop the centre of the
  // current kernel, then apply the learned transform of that size.
  for (int i = static_cast<int>(kernel_sizes_.size()) - 1; i > 0; --i) {
    const int source = kernel_sizes_[i];
    if (source <= kernel) break;
    const int target = kernel_sizes_[i - 1];
    const int start = (source - target) / 2;
    const torch::Tensor crop = filter.narrow(2, start, target)
                                   .narrow(3, start, target)
                                   .reshape({mid, int64_t{target} * target});
    filter = torch::linear(crop, s.kernel_transforms[i - 1]).reshape({mid, 1, target, target});
  }
  return filter;
}

void SupernetModuleImpl::RecordUsedWeight(int slot, UsedWeight::Kind kind, torch::Tensor& weight) {
  if (used_weights_ == nullptr || !weight.requires_grad()) return;
  weight.retain_grad();
  used_weights_->push_back(UsedWeight{slot, kind, weight});
}

namespace {

// The picked choice of a straight-through one-hot mixture: its one entry that is not 0.
int64_t PickedChoice(const torch::Tensor& mixture) {
  return mixture.detach().abs().argmax().item<int64_t>();
}

}  // namespace

torch::Tensor SupernetModuleImpl::QuantizeWeight(const torch::Tensor& weight, int bits,
                                                 const torch::Tensor& mixture,
                                                 bool single_path) const {
  if (!mixture.defined()) return FakeQuantWeight(weight, bits);
  if (single_path) {
    torch::Tensor quantized = FakeQuantWeight(weight, bit_choices_[PickedChoice(mixture)]);
    if (!mixture.requires_grad()) return quantized;
    // Terms that are 0 in value (m - m is exactly 0) and carry d/dm_b = <gradient, q_b(W)>.
    const torch::Tensor offsets = mixture - mixture.detach();
    for (size_t b = 0; b < bit_choices_.size(); ++b) {
      torch::Tensor level;
      {
        torch::NoGradGuard no_grad;
        level = FakeQuantWeight(weight, bit_choices_[b]);
      }
      quantized = quantized + offsets[static_cast<int64_t>(b)] * level;
    }
    return quantized;
  }
  torch::Tensor mixed;
  for (size_t b = 0; b < bit_choices_.size(); ++b) {
    const torch::Tensor term =
        mixture[static_cast<int64_t>(b)] * FakeQuantWeight(weight, bit_choices_[b]);
    mixed = mixed.defined() ? mixed + term : term;
  }
  return mixed;
}

torch::Tensor SupernetModuleImpl::QuantizeActivation(const torch::Tensor& x,
                                                     const torch::Tensor& alphas, int bits,
                                                     bool is_signed, const torch::Tensor& mixture,
                                                     bool single_path) const {
  if (!mixture.defined()) return ActQuant(x, alphas, bits, is_signed);
  if (single_path) {
    torch::Tensor quantized = ActQuant(x, alphas, bit_choices_[PickedChoice(mixture)], is_signed);
    if (!mixture.requires_grad()) return quantized;
    // As in QuantizeWeight: d/dm_b = <gradient, q_b(x)>, nothing in the value.
    const torch::Tensor offsets = mixture - mixture.detach();
    for (size_t b = 0; b < bit_choices_.size(); ++b) {
      torch::Tensor level;
      {
        torch::NoGradGuard no_grad;
        level = ActQuant(x, alphas, bit_choices_[b], is_signed);
      }
      quantized = quantized + offsets[static_cast<int64_t>(b)] * level;
    }
    return quantized;
  }
  torch::Tensor mixed;
  for (size_t b = 0; b < bit_choices_.size(); ++b) {
    const torch::Tensor term =
        mixture[static_cast<int64_t>(b)] * ActQuant(x, alphas, bit_choices_[b], is_signed);
    mixed = mixed.defined() ? mixed + term : term;
  }
  return mixed;
}

torch::Tensor SupernetModuleImpl::SlotForward(const torch::Tensor& x, int index,
                                              const SlotChoice& choice, bool quantized,
                                              const SlotBitMixture* mixture,
                                              const SlotArchMixture* arch) {
  const Slot& s = slots_[index];
  static const SlotBitMixture kFixedBits;
  const SlotBitMixture& mix = mixture != nullptr ? *mixture : kFixedBits;
  const bool mixed_kernel = arch != nullptr && arch->kernel_weights.defined();
  const bool mixed_mid = arch != nullptr && arch->mid_weights.defined();
  if (mixed_kernel || mixed_mid) return MixedSlotForward(x, index, choice, quantized, mix, *arch);
  const int mid = choice.mid;
  torch::Tensor h = quantized ? QuantizeActivation(x, s.input_alpha, choice.pw_a_bits, true,
                                                   mix.pw_a, mix.single_path)
                              : x;
  torch::Tensor weight = s.expand_weight.narrow(0, 0, mid);
  RecordUsedWeight(index, UsedWeight::Kind::kExpand, weight);
  if (quantized) weight = QuantizeWeight(weight, choice.pw_w_bits, mix.pw_w, mix.single_path);
  h = Relu6(BatchNorm(torch::conv2d(h, weight), s.expand_bn, mid));

  if (quantized)
    h = QuantizeActivation(h, s.depthwise_alpha, choice.dw_a_bits, false, mix.dw_a,
                           mix.single_path);
  weight = DepthwiseKernel(index, choice.kernel, mid);
  RecordUsedWeight(index, UsedWeight::Kind::kDepthwise, weight);
  if (quantized) weight = QuantizeWeight(weight, choice.dw_w_bits, mix.dw_w, mix.single_path);
  h = torch::conv2d(h, weight, {}, s.stride, choice.kernel / 2, 1, mid);
  h = Relu6(BatchNorm(h, s.depthwise_bn, mid));

  if (quantized)
    h = QuantizeActivation(h, s.project_alpha, choice.pw_a_bits, false, mix.pw_a, mix.single_path);
  weight = s.project_weight.narrow(1, 0, mid);
  RecordUsedWeight(index, UsedWeight::Kind::kProject, weight);
  if (quantized) weight = QuantizeWeight(weight, choice.pw_w_bits, mix.pw_w, mix.single_path);
  h = BatchNorm(torch::conv2d(h, weight), s.project_bn, s.out_channels);
  return s.residual ? h + x : h;
}

torch::Tensor SupernetModuleImpl::MixedSlotForward(const torch::Tensor& x, int index,
                                                   const SlotChoice& choice, bool quantized,
                                                   const SlotBitMixture& mix,
                                                   const SlotArchMixture& arch) {
  const Slot& s = slots_[index];
  const bool mixed_kernel = arch.kernel_weights.defined();
  const bool mixed_mid = arch.mid_weights.defined();
  const int kernel =
      mixed_kernel ? *std::max_element(arch.kernels.begin(), arch.kernels.end()) : choice.kernel;
  const int mid = mixed_mid ? *std::max_element(arch.mids.begin(), arch.mids.end()) : choice.mid;
  // The middle channels' mask: sum_m p_m 1[channel < m], [1, mid, 1, 1].
  torch::Tensor mask;
  if (mixed_mid) {
    const torch::Tensor channel = torch::arange(mid, torch::kFloat32);
    for (size_t m = 0; m < arch.mids.size(); ++m) {
      const torch::Tensor term = arch.mid_weights[static_cast<int64_t>(m)] *
                                 (channel < static_cast<double>(arch.mids[m])).to(torch::kFloat32);
      mask = mask.defined() ? mask + term : term;
    }
    mask = mask.view({1, mid, 1, 1});
  }
  const auto quantize_weight = [&](const torch::Tensor& weight, int bits,
                                   const torch::Tensor& mixture) {
    return quantized ? QuantizeWeight(weight, bits, mixture, mix.single_path) : weight;
  };

  torch::Tensor h = quantized ? QuantizeActivation(x, s.input_alpha, choice.pw_a_bits, true,
                                                   mix.pw_a, mix.single_path)
                              : x;
  torch::Tensor weight =
      quantize_weight(s.expand_weight.narrow(0, 0, mid), choice.pw_w_bits, mix.pw_w);
  h = Relu6(BatchNorm(torch::conv2d(h, weight), s.expand_bn, mid));
  if (mask.defined()) h = h * mask;

  if (quantized)
    h = QuantizeActivation(h, s.depthwise_alpha, choice.dw_a_bits, false, mix.dw_a,
                           mix.single_path);
  if (mixed_kernel) {
    weight = torch::Tensor();
    for (size_t k = 0; k < arch.kernels.size(); ++k) {
      const int size = arch.kernels[k];
      const int64_t pad = (kernel - size) / 2;
      const torch::Tensor filter = torch::constant_pad_nd(
          quantize_weight(DepthwiseKernel(index, size, mid), choice.dw_w_bits, mix.dw_w),
          {pad, pad, pad, pad});
      const torch::Tensor term = arch.kernel_weights[static_cast<int64_t>(k)] * filter;
      weight = weight.defined() ? weight + term : term;
    }
  } else {
    weight = quantize_weight(DepthwiseKernel(index, kernel, mid), choice.dw_w_bits, mix.dw_w);
  }
  h = torch::conv2d(h, weight, {}, s.stride, kernel / 2, 1, mid);
  h = Relu6(BatchNorm(h, s.depthwise_bn, mid));
  if (mask.defined()) h = h * mask;

  if (quantized)
    h = QuantizeActivation(h, s.project_alpha, choice.pw_a_bits, false, mix.pw_a, mix.single_path);
  if (mixed_mid) {
    // Each width's columns quantized as that width's layer would be (per output channel
    // over its own inputs), zero-padded to the largest.
    weight = torch::Tensor();
    for (size_t m = 0; m < arch.mids.size(); ++m) {
      const torch::Tensor columns =
          quantize_weight(s.project_weight.narrow(1, 0, arch.mids[m]), choice.pw_w_bits, mix.pw_w);
      const torch::Tensor padded =
          torch::constant_pad_nd(columns, {0, 0, 0, 0, 0, mid - arch.mids[m]});
      const torch::Tensor term = arch.mid_weights[static_cast<int64_t>(m)] * padded;
      weight = weight.defined() ? weight + term : term;
    }
  } else {
    weight = quantize_weight(s.project_weight.narrow(1, 0, mid), choice.pw_w_bits, mix.pw_w);
  }
  h = BatchNorm(torch::conv2d(h, weight), s.project_bn, s.out_channels);
  return s.residual ? h + x : h;
}

torch::Tensor SupernetModuleImpl::forward(const torch::Tensor& images, const SubnetChoice& choice) {
  const bool q = choice.quantized;
  const int bits = spec_.fixed_bits;
  const auto weight = [&](const torch::Tensor& w) { return q ? FakeQuantWeight(w, bits) : w; };
  const int c0 = spec_.first_conv_channels;

  torch::Tensor x = q ? ActQuant(images, image_alpha_, bits, true) : images;
  x = torch::conv2d(x, weight(first_conv_weight_), {}, spec_.first_conv_stride,
                    spec_.first_conv_kernel / 2);
  x = Relu6(BatchNorm(x, first_conv_bn_, c0));
  torch::Tensor h = q ? ActQuant(x, first_dw_alpha_, bits, false) : x;
  h = torch::conv2d(h, weight(first_dw_weight_), {}, spec_.first_block_stride,
                    spec_.first_block_kernel / 2, 1, c0);
  h = Relu6(BatchNorm(h, first_dw_bn_, c0));
  if (q) h = ActQuant(h, first_project_alpha_, bits, false);
  h = BatchNorm(torch::conv2d(h, weight(first_project_weight_)), first_project_bn_,
                spec_.first_block_channels);
  x = first_block_residual_ ? h + x : h;

  for (size_t s = 0; s < spec_.stages.size(); ++s) {
    const StageDepthMixture* depth_mixture =
        choice.depth_mixtures.empty() || !choice.depth_mixtures[s].weights.defined()
            ? nullptr
            : &choice.depth_mixtures[s];
    const int run = depth_mixture != nullptr ? *std::max_element(depth_mixture->depths.begin(),
                                                                 depth_mixture->depths.end())
                                             : choice.depths[s];
    torch::Tensor mixed;  // sum_d p_d (the output after the first d slots).
    for (int j = 0; j < run; ++j) {
      const int index = stage_first_slot_[s] + j;
      x = SlotForward(x, index, choice.slots[index], q,
                      choice.mixtures.empty() ? nullptr : &choice.mixtures[index],
                      choice.arch_mixtures.empty() ? nullptr : &choice.arch_mixtures[index]);
      if (depth_mixture == nullptr) continue;
      for (size_t d = 0; d < depth_mixture->depths.size(); ++d) {
        if (depth_mixture->depths[d] != j + 1) continue;
        const torch::Tensor term = depth_mixture->weights[static_cast<int64_t>(d)] * x;
        mixed = mixed.defined() ? mixed + term : term;
      }
    }
    if (depth_mixture != nullptr) x = mixed;
  }

  h = q ? ActQuant(x, feature_mix_alpha_, bits, true) : x;
  h = torch::conv2d(h, weight(feature_mix_weight_));
  h = Relu6(BatchNorm(h, feature_mix_bn_, spec_.feature_mix_channels)).mean({2, 3});
  if (q) h = ActQuant(h, classifier_alpha_, bits, false);
  return torch::linear(h, weight(classifier_weight_), classifier_bias_);
}

void SupernetModuleImpl::ReorganizeMiddleWeights() {
  torch::NoGradGuard no_grad;
  const auto permute = [](torch::Tensor& tensor, int64_t dim, const torch::Tensor& order) {
    tensor.copy_(tensor.index_select(dim, order));
  };
  for (Slot& s : slots_) {
    const torch::Tensor importance = s.project_weight.abs().sum({0, 2, 3});
    const torch::Tensor order = std::get<1>(importance.sort(/*dim=*/0, /*descending=*/true));
    permute(s.project_weight, 1, order);
    permute(s.depthwise_weight, 0, order);
    permute(s.expand_weight, 0, order);
    for (ElasticBatchNorm* bn : {&s.expand_bn, &s.depthwise_bn}) {
      permute(bn->weight, 0, order);
      permute(bn->bias, 0, order);
      permute(bn->running_mean, 0, order);
      permute(bn->running_var, 0, order);
    }
  }
}

void SupernetModuleImpl::ResetRunningStatistics() {
  torch::NoGradGuard no_grad;
  for (auto& buffer : named_buffers()) {
    if (buffer.key().find("running_mean") != std::string::npos) buffer.value().zero_();
    if (buffer.key().find("running_var") != std::string::npos) buffer.value().fill_(1.0);
  }
}

}  // namespace supernet_internal

namespace {

using supernet_internal::SupernetModuleImpl;

std::vector<std::pair<std::string, std::string>> SpecFields(const MbConvSpec& spec) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"name", spec.name},
      {"input_size", absl::StrCat(spec.input_size)},
      {"input_channels", absl::StrCat(spec.input_channels)},
      {"first_conv_channels", absl::StrCat(spec.first_conv_channels)},
      {"first_conv_kernel", absl::StrCat(spec.first_conv_kernel)},
      {"first_conv_stride", absl::StrCat(spec.first_conv_stride)},
      {"first_block_channels", absl::StrCat(spec.first_block_channels)},
      {"first_block_kernel", absl::StrCat(spec.first_block_kernel)},
      {"first_block_stride", absl::StrCat(spec.first_block_stride)},
      {"num_stages", absl::StrCat(spec.stages.size())},
  };
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const MbConvStageSpec& stage = spec.stages[s];
    const std::string at = absl::StrCat("stages[", s, "].");
    fields.push_back({absl::StrCat(at, "in_channels"), absl::StrCat(stage.in_channels)});
    fields.push_back({absl::StrCat(at, "out_channels"), absl::StrCat(stage.out_channels)});
    fields.push_back({absl::StrCat(at, "stride"), absl::StrCat(stage.stride)});
    fields.push_back({absl::StrCat(at, "min_depth"), absl::StrCat(stage.min_depth)});
    fields.push_back({absl::StrCat(at, "max_depth"), absl::StrCat(stage.max_depth)});
  }
  std::vector<std::string> bans;
  for (const auto& [kernel, bits] : spec.banned_kernel_dw_a_bits) {
    bans.push_back(absl::StrCat(kernel, ":", bits));
  }
  fields.insert(fields.end(), {
                                  {"feature_mix_channels", absl::StrCat(spec.feature_mix_channels)},
                                  {"num_classes", absl::StrCat(spec.num_classes)},
                                  {"kernel_sizes", absl::StrJoin(spec.kernel_sizes, ",")},
                                  {"min_expand", absl::StrCat(spec.min_expand)},
                                  {"max_expand", absl::StrCat(spec.max_expand)},
                                  {"width_step", absl::StrCat(spec.width_step)},
                                  {"bit_choices", absl::StrJoin(spec.bit_choices, ",")},
                                  {"fixed_bits", absl::StrCat(spec.fixed_bits)},
                                  {"banned_kernel_dw_a_bits", absl::StrJoin(bans, ",")},
                                  {"arch_json_max_depth", absl::StrCat(spec.arch_json_max_depth)},
                              });
  return fields;
}

// Every kernel, width and depth gene at its last (largest) or first choice; the bit genes
// (slots' genes [2 L, 6 L), mbconv_quant_space.h) at `bits`, or likewise when it is 0.
Genotype ExtremeGenotype(const SearchSpace& space, int num_slots, bool largest, int bits) {
  Genotype genotype;
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const std::vector<int>& choices = space.genes()[g].choices;
    const bool is_bits =
        g >= 2 * static_cast<size_t>(num_slots) && g < 6 * static_cast<size_t>(num_slots);
    genotype.push_back(is_bits && bits > 0 ? bits : largest ? choices.back() : choices.front());
  }
  return genotype;
}

absl::Status TorchError(const char* what, const std::exception& e) {
  return absl::InternalError(absl::StrCat(what, ": ", supernet_internal::ErrorMessage(e)));
}

// INVALID_ARGUMENT unless the fake quantizers are defined at `bits` (supernet_module.h).
absl::Status CheckQuantizerBits(const MbConvSpec& spec, const char* field, int bits) {
  if (supernet_internal::IsQuantizerBits(bits)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("spec ", spec.name, ": ", field, ": the supernet quantizes to ",
                   supernet_internal::kMinQuantBits, "..", supernet_internal::kMaxQuantBits,
                   " bits or keeps ", supernet_internal::kFloatBits, " (float), not ", bits,
                   " (at 1 bit its symmetric quantizers have no level but 0)"));
}

// Whether a field of SpecFields shapes the network's tensors. The others are the name and the
// quantization and JSON choices; the per-bit-choice tensors are matched by bit width instead.
bool IsNetworkField(const std::string& field) {
  return field != "name" && field != "bit_choices" && field != "fixed_bits" &&
         field != "banned_kernel_dw_a_bits" && field != "arch_json_max_depth";
}

std::map<std::string, std::string> ParseFingerprint(const std::string& stored) {
  std::map<std::string, std::string> fields;
  for (absl::string_view line : absl::StrSplit(stored, '\n', absl::SkipEmpty())) {
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) continue;
    fields[static_cast<std::string>(line.substr(0, equals))] =
        static_cast<std::string>(line.substr(equals + 1));
  }
  return fields;
}

// FAILED_PRECONDITION naming the first field of `spec` (of its network only, when
// `network_only`) whose value in `theirs` differs.
absl::Status CheckFingerprintFields(const std::map<std::string, std::string>& theirs,
                                    const MbConvSpec& spec, const std::string& path,
                                    bool network_only) {
  for (const auto& [field, value] : SpecFields(spec)) {
    if (network_only && !IsNetworkField(field)) continue;
    const auto it = theirs.find(field);
    const std::string other = it == theirs.end() ? "<absent>" : it->second;
    if (other != value) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", path, " was written for ",
                       network_only ? "another network" : "another spec", ": ", field, " is '",
                       other, "' there but '", value, "' in spec '", spec.name, "'"));
    }
  }
  return absl::OkStatus();
}

// The spec fingerprint SaveWeights wrote into `archive`; DATA_LOSS naming `path` without one.
absl::StatusOr<std::string> ReadSpecFingerprint(torch::serialize::InputArchive& archive,
                                                const std::string& path) {
  c10::IValue fingerprint;
  if (!archive.try_read("spec_fingerprint", fingerprint) || !fingerprint.isString()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " has no spec fingerprint"));
  }
  return fingerprint.toStringRef();
}

// For each of `ours`, the index in `theirs` of the same bit width or else of the nearest one
// (the lower on a tie). Precondition: `theirs` is not empty.
std::vector<int64_t> NearestBitIndices(const std::vector<int>& ours,
                                       const std::vector<int>& theirs) {
  std::vector<int64_t> indices;
  for (const int bits : ours) {
    size_t best = 0;
    for (size_t i = 1; i < theirs.size(); ++i) {
      const int distance = std::abs(theirs[i] - bits);
      const int best_distance = std::abs(theirs[best] - bits);
      if (distance < best_distance || (distance == best_distance && theirs[i] < theirs[best])) {
        best = i;
      }
    }
    indices.push_back(static_cast<int64_t>(best));
  }
  return indices;
}

}  // namespace

std::string SpecFingerprint(const MbConvSpec& spec) {
  std::string text;
  for (const auto& [field, value] : SpecFields(spec))
    absl::StrAppend(&text, field, "=", value, "\n");
  return text;
}

absl::Status CheckSpecFingerprint(const std::string& stored, const MbConvSpec& spec,
                                  const std::string& path) {
  return CheckFingerprintFields(ParseFingerprint(stored), spec, path, /*network_only=*/false);
}

Supernet::Supernet(MbConvSpec spec, std::unique_ptr<SearchSpace> space)
    : spec_(std::move(spec)), space_(std::move(space)) {}

Supernet::~Supernet() = default;

absl::StatusOr<std::unique_ptr<Supernet>> Supernet::Create(const MbConvSpec& spec, uint64_t seed) {
  ASSIGN_OR_RETURN(std::unique_ptr<SearchSpace> space, NewMbConvQuantSpace(spec));
  for (const int bits : spec.bit_choices) {
    RETURN_IF_ERROR(CheckQuantizerBits(spec, "bit_choices", bits));
  }
  RETURN_IF_ERROR(CheckQuantizerBits(spec, "fixed_bits", spec.fixed_bits));
  // ChoiceFromGenotype relies on the gene layout of mbconv_quant_space.h.
  int num_slots = 0;
  for (const MbConvStageSpec& stage : spec.stages) num_slots += stage.max_depth;
  const std::vector<GeneSpec>& genes = space->genes();
  const size_t slots = num_slots;
  if (genes.size() != 6 * slots + spec.stages.size() || genes[0].name != "ks[0]" ||
      genes[slots].name != "mid[0]" || genes[2 * slots].name != "pw_w_bits_setting[0]" ||
      genes[5 * slots].name != "dw_a_bits_setting[0]" || genes[6 * slots].name != "d[0]") {
    return absl::InternalError("the gene layout of the mbconv space is not the supernet's");
  }
  std::unique_ptr<Supernet> supernet(new Supernet(spec, std::move(space)));
  try {
    torch::manual_seed(seed);
    supernet->module_ = std::make_shared<SupernetModuleImpl>(spec);
  } catch (const std::exception& e) {
    return TorchError("cannot build the supernet", e);
  }
  supernet->active_ = supernet->LargestGenotype();
  return supernet;
}

Genotype Supernet::LargestGenotype(int bits) const {
  return ExtremeGenotype(*space_, module_->num_slots(), /*largest=*/true, bits);
}

Genotype Supernet::SmallestGenotype(int bits) const {
  return ExtremeGenotype(*space_, module_->num_slots(), /*largest=*/false, bits);
}

absl::Status Supernet::SetActiveSubnet(const Genotype& genotype) {
  RETURN_IF_ERROR(space_->Validate(genotype));
  active_ = genotype;
  return absl::OkStatus();
}

absl::Status Supernet::ReorganizeMiddleWeights() {
  try {
    module_->ReorganizeMiddleWeights();
  } catch (const std::exception& e) {
    return TorchError("cannot reorganize the middle weights", e);
  }
  return absl::OkStatus();
}

absl::Status Supernet::RecalibrateBatchNorm(const LabeledImages& calibration,
                                            const EvalOptions& options) {
  if (calibration.count <= 0 || options.calibration_batch_size <= 0) {
    return absl::InvalidArgumentError(
        "BN recalibration needs calibration images and a positive batch size");
  }
  const supernet_internal::SubnetChoice choice =
      supernet_internal::ChoiceFromGenotype(spec_, active_, quantized_);
  const double momentum = module_->bn_momentum();
  try {
    torch::NoGradGuard no_grad;
    module_->ResetRunningStatistics();
    module_->train();
    const torch::Tensor calibration_images = supernet_internal::ImagesToTensor(calibration);
    int batch = 0;
    for (int64_t begin = 0; begin < calibration.count;
         begin += options.calibration_batch_size, ++batch) {
      if (options.cancelled && options.cancelled()) {
        module_->set_bn_momentum(momentum);
        module_->eval();
        return absl::CancelledError("BN recalibration cancelled");
      }
      // Momentum 1 / (n + 1) makes the running statistics the mean over batches.
      module_->set_bn_momentum(1.0 / (batch + 1));
      const int64_t size =
          std::min<int64_t>(options.calibration_batch_size, calibration.count - begin);
      module_->forward(calibration_images.narrow(0, begin, size), choice);
    }
    module_->set_bn_momentum(momentum);
    module_->eval();
  } catch (const std::exception& e) {
    module_->set_bn_momentum(momentum);
    module_->eval();
    return TorchError("BN recalibration failed", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<EvalResult> Supernet::Evaluate(const LabeledImages& calibration,
                                              const LabeledImages& test,
                                              const EvalOptions& options) {
  if (calibration.count <= 0 || test.count <= 0 || options.calibration_batch_size <= 0 ||
      options.eval_batch_size <= 0) {
    return absl::InvalidArgumentError("Evaluate needs calibration and test images and batch sizes");
  }
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(RecalibrateBatchNorm(calibration, options));
  const supernet_internal::SubnetChoice choice =
      supernet_internal::ChoiceFromGenotype(spec_, active_, quantized_);
  EvalResult result;
  try {
    torch::NoGradGuard no_grad;
    module_->eval();
    const torch::Tensor images = supernet_internal::ImagesToTensor(test);
    const torch::Tensor labels = supernet_internal::LabelsToTensor(test);
    result.correct.reserve(test.count);
    for (int64_t begin = 0; begin < test.count; begin += options.eval_batch_size) {
      if (options.cancelled && options.cancelled()) {
        return absl::CancelledError("evaluation cancelled");
      }
      const int64_t size = std::min<int64_t>(options.eval_batch_size, test.count - begin);
      const torch::Tensor logits = module_->forward(images.narrow(0, begin, size), choice);
      const torch::Tensor hits =
          logits.argmax(1).eq(labels.narrow(0, begin, size)).to(torch::kUInt8).contiguous();
      result.correct.insert(result.correct.end(), hits.data_ptr<uint8_t>(),
                            hits.data_ptr<uint8_t>() + size);
    }
    const int64_t correct = std::count(result.correct.begin(), result.correct.end(), 1);
    result.accuracy = static_cast<double>(correct) / test.count;
  } catch (const std::exception& e) {
    return TorchError("evaluation failed", e);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

absl::StatusOr<std::vector<float>> Supernet::Logits(const LabeledImages& images) {
  try {
    torch::NoGradGuard no_grad;
    module_->eval();
    const torch::Tensor logits =
        module_
            ->forward(supernet_internal::ImagesToTensor(images),
                      supernet_internal::ChoiceFromGenotype(spec_, active_, quantized_))
            .contiguous();
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const std::exception& e) {
    return TorchError("forward failed", e);
  }
}

void Supernet::PrepareForEvaluation() { module_->eval(); }

absl::StatusOr<std::vector<float>> Supernet::LogitsOf(const Genotype& genotype, bool quantized,
                                                      const LabeledImages& images) const {
  RETURN_IF_ERROR(space_->Validate(genotype));
  if (module_->is_training()) {
    return absl::FailedPreconditionError(
        "the supernet is in training mode (PrepareForEvaluation before LogitsOf)");
  }
  try {
    torch::NoGradGuard no_grad;
    const torch::Tensor logits =
        module_
            ->forward(supernet_internal::ImagesToTensor(images),
                      supernet_internal::ChoiceFromGenotype(spec_, genotype, quantized))
            .contiguous();
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const std::exception& e) {
    return TorchError("forward failed", e);
  }
}

absl::Status Supernet::SaveWeights(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  try {
    module_->save(archive);
    archive.write("spec_fingerprint", c10::IValue(SpecFingerprint(spec_)));
  } catch (const std::exception& e) {
    return TorchError("cannot serialize the supernet", e);
  }
  return supernet_internal::SaveArchiveAtomically(archive, path);
}

absl::Status Supernet::LoadWeightsOfSameNetwork(const std::string& path) {
  torch::serialize::InputArchive archive;
  RETURN_IF_ERROR(supernet_internal::LoadArchive(path, archive));
  try {
    ASSIGN_OR_RETURN(const std::string fingerprint, ReadSpecFingerprint(archive, path));
    const std::map<std::string, std::string> theirs = ParseFingerprint(fingerprint);
    RETURN_IF_ERROR(CheckFingerprintFields(theirs, spec_, path, /*network_only=*/true));
    std::vector<int> their_bits;
    if (const auto it = theirs.find("bit_choices"); it != theirs.end()) {
      for (absl::string_view part : absl::StrSplit(it->second, ',')) {
        int bits = 0;
        if (!absl::SimpleAtoi(part, &bits)) {
          their_bits.clear();
          break;
        }
        their_bits.push_back(bits);
      }
    }
    if (their_bits.empty()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", path, "'s spec fingerprint has no readable bit_choices"));
    }
    const torch::Tensor source_index =
        torch::tensor(NearestBitIndices(spec_.bit_choices, their_bits));
    // Everything is read and checked before anything is written: on error the weights stay.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (ours, value)
    const auto stage = [&](const std::string& name, const torch::Tensor& ours,
                           bool is_buffer) -> absl::Status {
      torch::Tensor value;
      if (!archive.try_read(name, value, is_buffer)) {
        return absl::DataLossError(absl::StrCat("checkpoint ", path, " lacks tensor ", name));
      }
      if (module_->IsPerBitChoice(name)) {
        if (value.dim() != 1 || value.size(0) != static_cast<int64_t>(their_bits.size())) {
          return absl::DataLossError(absl::StrCat("checkpoint ", path, ": tensor ", name,
                                                  " does not hold one value per bit choice"));
        }
        value = value.index_select(0, source_index);
      }
      if (!value.sizes().equals(ours.sizes())) {
        return absl::DataLossError(absl::StrCat("checkpoint ", path, ": tensor ", name,
                                                " has another shape than the network's"));
      }
      copies.emplace_back(ours, value);
      return absl::OkStatus();
    };
    for (const auto& item : module_->named_parameters()) {
      RETURN_IF_ERROR(stage(item.key(), item.value(), /*is_buffer=*/false));
    }
    for (const auto& item : module_->named_buffers()) {
      RETURN_IF_ERROR(stage(item.key(), item.value(), /*is_buffer=*/true));
    }
    torch::NoGradGuard no_grad;
    for (auto& [ours, value] : copies) ours.copy_(value);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, " is unreadable: ", supernet_internal::ErrorMessage(e)));
  }
  return absl::OkStatus();
}

absl::Status Supernet::LoadWeights(const std::string& path) {
  torch::serialize::InputArchive archive;
  RETURN_IF_ERROR(supernet_internal::LoadArchive(path, archive));
  try {
    ASSIGN_OR_RETURN(const std::string fingerprint, ReadSpecFingerprint(archive, path));
    RETURN_IF_ERROR(CheckSpecFingerprint(fingerprint, spec_, path));
    module_->load(archive);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, " is unreadable: ", supernet_internal::ErrorMessage(e)));
  }
  return absl::OkStatus();
}

}  // namespace apq::oface
