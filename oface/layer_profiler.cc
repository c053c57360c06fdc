#include "oface/layer_profiler.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "oface/conv_key.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers_internal.h"
#include "oface/mbconv_quant_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

using supernet_internal::ErrorMessage;

// Must equal the exported module's batch-norm epsilon (oface/subnet_export.cc).
constexpr double kBatchNormEps = 1e-5;
// The bit widths of an int8 layer (W8A8).
constexpr int kInt8LayerBits = 8;

// (Cin, Cout, H_in, K, stride, pad, groups), the key without its bits.
using ConvShape = std::array<int, 7>;

// What the exported module computes for a layer of a shape.
enum class LayerOps {
  kConvBnRelu6,  // Stem, depthwise, expand and feature-mix convs.
  kConvBn,       // Projections.
  kLinear,       // The classifier.
  kAmbiguous,    // Two roles of different ops share the shape.
};

// Output size of a k x k conv (k odd) with padding k / 2, as the space computes it.
int ConvOutSize(int size, int stride) { return (size - 1) / stride + 1; }

// The ops of every conv shape the spec's network can contain, walking the geometry of
// oface/mbconv_quant_space.cc (and the module of oface/subnet_export.cc): stem, slots (every
// mid width and kernel), tail.
absl::flat_hash_map<ConvShape, LayerOps> LayerRoles(const MbConvSpec& spec) {
  absl::flat_hash_map<ConvShape, LayerOps> roles;
  const auto add = [&roles](const ConvShape& shape, LayerOps ops) {
    const auto [it, inserted] = roles.try_emplace(shape, ops);
    if (!inserted && it->second != ops) it->second = LayerOps::kAmbiguous;
  };
  const int c0 = spec.first_conv_channels;
  const int k0 = spec.first_conv_kernel;
  const int k1 = spec.first_block_kernel;
  const int stem_size = ConvOutSize(spec.input_size, spec.first_conv_stride);
  add({spec.input_channels, c0, spec.input_size, k0, spec.first_conv_stride, k0 / 2, 1},
      LayerOps::kConvBnRelu6);
  add({c0, c0, stem_size, k1, spec.first_block_stride, k1 / 2, c0}, LayerOps::kConvBnRelu6);
  int size = ConvOutSize(stem_size, spec.first_block_stride);
  add({c0, spec.first_block_channels, size, 1, 1, 0, 1}, LayerOps::kConvBn);
  for (const MbConvStageSpec& stage : spec.stages) {
    for (int j = 0; j < stage.max_depth; ++j) {
      const int in = j == 0 ? stage.in_channels : stage.out_channels;
      const int stride = j == 0 ? stage.stride : 1;
      const int out_size = ConvOutSize(size, stride);
      // Python's range(min_expand * c, max_expand * c + step, step).
      for (int mid = spec.min_expand * in; mid < spec.max_expand * in + spec.width_step;
           mid += spec.width_step) {
        add({in, mid, size, 1, 1, 0, 1}, LayerOps::kConvBnRelu6);
        for (const int k : spec.kernel_sizes) {
          add({mid, mid, size, k, stride, k / 2, mid}, LayerOps::kConvBnRelu6);
        }
        add({mid, stage.out_channels, out_size, 1, 1, 0, 1}, LayerOps::kConvBn);
      }
      size = out_size;
    }
  }
  const int mix = spec.feature_mix_channels;
  add({spec.stages.back().out_channels, mix, size, 1, 1, 0, 1}, LayerOps::kConvBnRelu6);
  add({mix, spec.num_classes, 1, 1, 1, 0, 1}, LayerOps::kLinear);
  return roles;
}

absl::Status CheckTiming(const TimingOptions& options, const std::string& prefix) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "threads must be >= 1, got ", options.threads));
  }
  if (options.warmup < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "warmup must be >= 0, got ", options.warmup));
  }
  if (options.repeats < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "repeats must be >= 1, got ", options.repeats));
  }
  return absl::OkStatus();
}

// The cache-line size of x86-64 (and most ARM) cores: one write per line evicts the line.
constexpr size_t kCacheLineBytes = 64;

// Writes one byte per cache line of `buffer`, evicting most of what the caches held.
void SweepCaches(std::vector<uint8_t>& buffer) {
  volatile uint8_t* bytes = buffer.data();
  for (size_t i = 0; i < buffer.size(); i += kCacheLineBytes) bytes[i] = bytes[i] + 1;
}

// A conv weight of `shape` at Kaiming-normal scale (fan_out), as the supernet initialises its
// convs.
torch::Tensor ConvWeight(const ConvShape& shape) {
  const int out = shape[1], kernel = shape[3];
  return torch::randn({out, shape[0] / shape[6], kernel, kernel}) *
         std::sqrt(2.0 / (static_cast<double>(out) * kernel * kernel));
}

// Two [1, C, H, H] activations as a deployed int8 network hands them to a layer: ReLU6 outputs
// in [0, 6], channels-last (quantized convs write channels-last outputs, and quantizing or
// dequantizing keeps the layout), taken in turn by the timed runs. Inside a network every call
// gets a new input tensor, and QNNPACK rebuilds a conv's indirection buffer whenever the
// input's address changes: work a layer timed on one tensor would skip.
std::array<torch::Tensor, 2> NetworkInputs(int channels, int size) {
  const auto one = [&] {
    return (torch::rand({1, channels, size, size}) * 6).contiguous(at::MemoryFormat::ChannelsLast);
  };
  return {one(), one()};
}

// `floats` quantized to uint8 at `at`.
std::array<torch::Tensor, 2> Quantized(const std::array<torch::Tensor, 2>& floats,
                                       const int8_internal::ActivationQuantization& at) {
  return {at::quantize_per_tensor(floats[0], at.scale, at.zero_point, at::kQUInt8),
          at::quantize_per_tensor(floats[1], at.scale, at.zero_point, at::kQUInt8)};
}

// Median latency of one layer of `shape` computing `ops`, with `before_each` run before every
// call. Throws c10::Error.
double TimeLayer(const ConvShape& shape, LayerOps ops, const TimingOptions& options,
                 const std::function<void()>& before_each) {
  torch::NoGradGuard no_grad;
  // Plain names: C++17 lambdas cannot capture structured bindings.
  const int in = shape[0], out = shape[1], size = shape[2];
  const int stride = shape[4], padding = shape[5], groups = shape[6];
  if (ops == LayerOps::kLinear) {
    const torch::Tensor x = torch::randn({1, in});
    const torch::Tensor weight = torch::randn({out, in}) / std::sqrt(in);
    const torch::Tensor bias = torch::zeros({out});
    return MedianLatencyMs(
        options.warmup, options.repeats, [&] { torch::linear(x, weight, bias); }, before_each);
  }
  const torch::Tensor x = torch::randn({1, in, size, size});
  const torch::Tensor weight = ConvWeight(shape);
  const torch::Tensor bn_weight = torch::ones({out});
  const torch::Tensor bn_bias = torch::zeros({out});
  const torch::Tensor running_mean = torch::zeros({out});
  const torch::Tensor running_var = torch::ones({out});
  const bool relu6 = ops == LayerOps::kConvBnRelu6;
  return MedianLatencyMs(
      options.warmup, options.repeats,
      [&] {
        // The calls of the exported module's forward: torch.conv2d,
        // torch.batch_norm(training=False, cudnn_enabled=False), torch.hardtanh.
        torch::Tensor y = torch::conv2d(x, weight, /*bias=*/torch::Tensor(), {stride, stride},
                                        {padding, padding}, {1, 1}, groups);
        y = torch::batch_norm(y, bn_weight, bn_bias, running_mean, running_var, /*training=*/false,
                              0.1, kBatchNormEps, /*cudnn_enabled=*/false);
        if (relu6) y = torch::hardtanh(y, 0.0, 6.0);
      },
      before_each);
}

// Median latency of one int8 layer of `shape` computing `ops` on the current quantized engine
// (see Int8ShapeTiming). Throws c10::Error.
double TimeInt8Layer(const ConvShape& shape, LayerOps ops, const TimingOptions& options,
                     const std::function<void()>& before_each) {
  torch::NoGradGuard no_grad;
  const int in = shape[0], out = shape[1], size = shape[2];
  const int stride = shape[4], padding = shape[5], groups = shape[6];
  // Inputs as a network's would be: ReLU6 outputs in [0, 6] (the stem's input, an image,
  // normalised, is alike in size).
  const int8_internal::ActivationQuantization input = int8_internal::QuantizationOfRange(0.0, 6.0);
  const int8_internal::ActivationQuantization output =
      int8_internal::QuantizationOfRange(-8.0, 8.0);
  if (ops == LayerOps::kLinear) {
    const torch::Tensor x = at::quantize_per_tensor(torch::rand({1, in}) * 6, input.scale,
                                                    input.zero_point, at::kQUInt8);
    const int8_internal::Int8Linear linear(torch::randn({out, in}) / std::sqrt(in),
                                           torch::zeros({out}), output);
    return MedianLatencyMs(
        options.warmup, options.repeats, [&] { linear.Forward(x); }, before_each);
  }
  const std::array<torch::Tensor, 2> inputs = Quantized(NetworkInputs(in, size), input);
  size_t turn = 0;
  const torch::Tensor weight = ConvWeight(shape);
  const int8_internal::Int8Conv conv(weight, torch::zeros({out}), stride, padding, groups,
                                     /*relu6=*/ops == LayerOps::kConvBnRelu6, output);
  return MedianLatencyMs(
      options.warmup, options.repeats, [&] { conv.Forward(inputs[turn++ % 2]); }, before_each);
}

// Median latency of one float layer of `shape` computing `ops` as the int8 export runs a layer
// kept in float (oface/int8_export.h): conv2d with its batch norm folded into a bias, then
// hardtanh(0, 6) for a ReLU6 role. Throws c10::Error.
double TimeFoldedFloatLayer(const ConvShape& shape, LayerOps ops, const TimingOptions& options,
                            const std::function<void()>& before_each) {
  torch::NoGradGuard no_grad;
  const int in = shape[0], out = shape[1], size = shape[2];
  const int stride = shape[4], padding = shape[5], groups = shape[6];
  if (ops == LayerOps::kLinear) return TimeLayer(shape, ops, options, before_each);
  const std::array<torch::Tensor, 2> inputs = NetworkInputs(in, size);
  size_t turn = 0;
  const torch::Tensor weight = ConvWeight(shape);
  const torch::Tensor bias = torch::zeros({out});
  const bool relu6 = ops == LayerOps::kConvBnRelu6;
  return MedianLatencyMs(
      options.warmup, options.repeats,
      [&] {
        torch::Tensor y = torch::conv2d(inputs[turn++ % 2], weight, bias, {stride, stride},
                                        {padding, padding}, {1, 1}, groups);
        if (relu6) y = torch::hardtanh(y, 0.0, 6.0);
      },
      before_each);
}

// Median latency of a change of precision as the int8 export computes it: a float
// [1, C, H, H] tensor quantized to uint8 (quantize_per_tensor), or a uint8 one dequantized.
// Throws c10::Error.
double TimePrecisionChange(const PrecisionChangeKey& change, const TimingOptions& options,
                           const std::function<void()>& before_each) {
  torch::NoGradGuard no_grad;
  const int8_internal::ActivationQuantization at = int8_internal::QuantizationOfRange(0.0, 6.0);
  const std::array<torch::Tensor, 2> floats = NetworkInputs(change.channels, change.size);
  size_t turn = 0;
  if (change.to_int8) {
    return MedianLatencyMs(
        options.warmup, options.repeats,
        [&] { at::quantize_per_tensor(floats[turn++ % 2], at.scale, at.zero_point, at::kQUInt8); },
        before_each);
  }
  const std::array<torch::Tensor, 2> quantized = Quantized(floats, at);
  return MedianLatencyMs(
      options.warmup, options.repeats, [&] { quantized[turn++ % 2].dequantize(); }, before_each);
}

const char* RoleName(LayerOps ops) {
  switch (ops) {
    case LayerOps::kConvBnRelu6:
      return "conv+bn+relu6";
    case LayerOps::kConvBn:
      return "conv+bn";
    case LayerOps::kLinear:
      return "linear";
    case LayerOps::kAmbiguous:
      break;
  }
  return "ambiguous";
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `count` images of the spec's input size with seeded uniform random pixels and labels.
LabeledImages SyntheticImages(const MbConvSpec& spec, int count, uint64_t seed) {
  LabeledImages images;
  images.count = count;
  images.rows = spec.input_size;
  images.cols = spec.input_size;
  Rng rng(seed);
  images.pixels.resize(static_cast<size_t>(count) * images.rows * images.cols);
  for (uint8_t& pixel : images.pixels) pixel = static_cast<uint8_t>(rng.Uniform(256));
  images.labels.resize(count);
  for (uint8_t& label : images.labels) {
    label = static_cast<uint8_t>(rng.Uniform(kFashionMnistClasses));
  }
  return images;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

absl::StatusOr<LayerProfile> ProfileLayers(const MbConvSpec& spec, const ProfileOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckTiming(options.timing, "timing."));
  if (options.cache_flush_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache_flush_bytes must be >= 0, got ", options.cache_flush_bytes));
  }
  ASSIGN_OR_RETURN(const std::unique_ptr<SearchSpace> space, NewMbConvQuantSpace(spec));

  // Every key first: the catalogue's keys by shape (and, for an int8 device, by whether the
  // key's layer runs in int8 or in float), in shape order; the changes of precision.
  const absl::flat_hash_map<ConvShape, LayerOps> roles = LayerRoles(spec);
  std::map<std::pair<ConvShape, bool>, std::vector<std::string>> keys_by_shape;
  std::map<std::string, PrecisionChangeKey> changes;
  for (int term = 0; term < space->num_cost_terms(); ++term) {
    std::string key = space->CostTermKey(term);
    if (const absl::StatusOr<PrecisionChangeKey> change = ParsePrecisionChangeKey(key);
        change.ok()) {
      changes.emplace(std::move(key), *change);
      continue;
    }
    const absl::StatusOr<ConvLayerKey> conv = ParseConvLayerKey(key);
    if (!conv.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", key, "\" is not a conv key: this space cannot be profiled"));
    }
    const ConvShape shape = {conv->in_channels, conv->out_channels, conv->input_size,
                             conv->kernel_size, conv->stride,       conv->padding,
                             conv->groups};
    const auto role = roles.find(shape);
    if (role == roles.end()) {
      return absl::InternalError(
          absl::StrCat("key \"", key, "\": no layer of spec ", spec.name, " has this shape"));
    }
    if (role->second == LayerOps::kAmbiguous) {
      return absl::FailedPreconditionError(
          absl::StrCat("key \"", key, "\": layers of spec ", spec.name,
                       " that compute different ops (with and without ReLU6, or conv and "
                       "linear) share this shape, so one entry cannot time both"));
    }
    const bool in_float = conv->w_bits == kFloatBits && conv->a_bits == kFloatBits;
    if (options.int8_engine.has_value() && !in_float &&
        !(conv->w_bits == kInt8LayerBits && conv->a_bits == kInt8LayerBits)) {
      continue;  // Neither int8 nor float: the device does not run it.
    }
    // A float device runs every pair alike: one figure per shape.
    keys_by_shape[{shape, options.int8_engine.has_value() && in_float}].push_back(std::move(key));
  }

  LayerProfile profile;
  profile.latency_ms.reserve(space->num_cost_terms());
  try {
    std::vector<uint8_t> flush(options.cache_flush_bytes);
    std::function<void()> before_each;
    if (!flush.empty()) before_each = [&flush] { SweepCaches(flush); };
    at::set_num_threads(options.timing.threads);
    if (options.int8_engine.has_value())
      RETURN_IF_ERROR(int8_internal::UseEngine(*options.int8_engine));
    for (const auto& [shape_precision, keys] : keys_by_shape) {
      const auto& [shape, in_float] = shape_precision;
      const LayerOps ops = roles.at(shape);
      double ms = 0.0;
      if (!options.int8_engine.has_value()) {
        ms = TimeLayer(shape, ops, options.timing, before_each);
      } else if (in_float) {
        ms = TimeFoldedFloatLayer(shape, ops, options.timing, before_each);
      } else {
        ms = TimeInt8Layer(shape, ops, options.timing, before_each);
      }
      for (const std::string& key : keys) profile.latency_ms[key] = ms;
      ++profile.shapes;
    }
    for (const auto& [key, change] : changes) {
      profile.latency_ms[key] = TimePrecisionChange(change, options.timing, before_each);
      ++profile.changes;
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("profiling failed: ", ErrorMessage(e)));
  }
  profile.seconds = SecondsSince(start);
  return profile;
}

absl::StatusOr<std::vector<Int8ShapeTiming>> CompareInt8Layers(
    const MbConvSpec& spec, const ProfileOptions& options,
    const std::vector<QuantizedEngine>& engines) {
  RETURN_IF_ERROR(CheckTiming(options.timing, "timing."));
  if (options.cache_flush_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache_flush_bytes must be >= 0, got ", options.cache_flush_bytes));
  }
  if (engines.empty()) return absl::InvalidArgumentError("engines: at least one");
  for (const QuantizedEngine engine : engines) {
    RETURN_IF_ERROR(int8_internal::UseEngine(engine));
  }
  RETURN_IF_ERROR(ValidateMbConvSpec(spec));
  std::map<ConvShape, LayerOps> shapes;
  for (const auto& [shape, ops] : LayerRoles(spec)) {
    if (ops != LayerOps::kAmbiguous) shapes.emplace(shape, ops);
  }
  std::vector<Int8ShapeTiming> timings;
  timings.reserve(shapes.size());
  try {
    std::vector<uint8_t> flush(options.cache_flush_bytes);
    std::function<void()> before_each;
    if (!flush.empty()) before_each = [&flush] { SweepCaches(flush); };
    at::set_num_threads(options.timing.threads);
    for (const auto& [shape, ops] : shapes) {
      Int8ShapeTiming timing;
      timing.shape = absl::StrCat("(", shape[0], ", ", shape[1], ", ", shape[2], ", ", shape[3],
                                  ", ", shape[4], ", ", shape[5], ", ", shape[6], ")");
      timing.role = RoleName(ops);
      timing.float_ms = TimeLayer(shape, ops, options.timing, before_each);
      for (const QuantizedEngine engine : engines) {
        RETURN_IF_ERROR(int8_internal::UseEngine(engine));
        timing.int8_ms.push_back(TimeInt8Layer(shape, ops, options.timing, before_each));
      }
      timings.push_back(std::move(timing));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("timing int8 layers failed: ", ErrorMessage(e)));
  }
  return timings;
}

absl::StatusOr<ValidationReport> ValidateProfile(
    const MbConvSpec& spec, const absl::flat_hash_map<std::string, double>& latency_ms,
    const ValidationOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.subnets < 1) {
    return absl::InvalidArgumentError(absl::StrCat("subnets must be >= 1, got ", options.subnets));
  }
  if (options.calibration_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration_images must be >= 1, got ", options.calibration_images));
  }
  RETURN_IF_ERROR(CheckTiming(options.timing, "timing."));
  ASSIGN_OR_RETURN(const std::unique_ptr<Supernet> supernet, Supernet::Create(spec, options.seed));
  const SearchSpace& space = supernet->space();
  const std::vector<Genotype> configs =
      SampleConfigsWithBits(space, options.subnets, options.bits, options.seed);

  // Predictions first: a profile that does not cover the space fails before any timing.
  ValidationReport report;
  std::vector<int32_t> terms;
  for (const Genotype& genotype : configs) {
    terms.clear();
    space.CostTerms(genotype, &terms);
    SubnetLatency subnet;
    subnet.config_json = space.ToJson(genotype);
    for (const int32_t term : terms) {
      const std::string key = space.CostTermKey(term);
      const auto it = latency_ms.find(key);
      if (it == latency_ms.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the profile has no entry for key \"", key, "\" (a term of ", subnet.config_json, ")"));
      }
      subnet.predicted_ms += it->second;
    }
    report.subnets.push_back(std::move(subnet));
  }

  const LabeledImages calibration = SyntheticImages(spec, options.calibration_images, options.seed);
  try {
    at::set_num_threads(options.timing.threads);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot set threads: ", ErrorMessage(e)));
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    ASSIGN_OR_RETURN(
        ExtractedSubnet extracted,
        options.int8_engine.has_value()
            ? ExtractInt8Subnet(*supernet, configs[i], calibration, *options.int8_engine)
            : ExtractSubnet(*supernet, configs[i], /*quantized=*/false, calibration));
    ASSIGN_OR_RETURN(report.subnets[i].measured_ms,
                     extracted.MedianLatencyMs(options.timing.warmup, options.timing.repeats));
  }

  std::vector<double> errors;
  double ratio_sum = 0.0;
  double difference_sum = 0.0;
  for (const SubnetLatency& subnet : report.subnets) {
    const double ape =
        std::fabs(subnet.measured_ms - subnet.predicted_ms) / subnet.measured_ms * 100.0;
    errors.push_back(ape);
    if (errors.size() == 1 || ape > report.worst_ape_percent) {
      report.worst_ape_percent = ape;
      report.worst_config_json = subnet.config_json;
    }
    ratio_sum += subnet.measured_ms / subnet.predicted_ms;
    difference_sum += subnet.measured_ms - subnet.predicted_ms;
  }
  const double n = static_cast<double>(errors.size());
  double error_sum = 0.0;
  for (const double ape : errors) error_sum += ape;
  report.mape_percent = error_sum / n;
  report.median_ape_percent = Median(std::move(errors));
  report.mean_ratio = ratio_sum / n;
  report.mean_difference_ms = difference_sum / n;
  report.seconds = SecondsSince(start);
  return report;
}

EntryKind KindOfEntry(const std::string& key) {
  if (ParsePrecisionChangeKey(key).ok()) return EntryKind::kPrecisionChange;
  const absl::StatusOr<ConvLayerKey> conv = ParseConvLayerKey(key);
  if (conv.ok() && conv->w_bits == kFloatBits && conv->a_bits == kFloatBits) {
    return EntryKind::kFloatLayer;
  }
  return EntryKind::kInt8Layer;
}

absl::StatusOr<EntryCalibration> FitEntryCalibration(
    const MbConvSpec& spec, const absl::flat_hash_map<std::string, double>& latency_ms,
    const ValidationReport& report) {
  ASSIGN_OR_RETURN(const std::unique_ptr<SearchSpace> space, NewMbConvQuantSpace(spec));
  constexpr int kKinds = 3;
  // Per subnet: the sums of its entries by kind, and its measured latency.
  std::vector<std::array<double, kKinds>> sums;
  std::vector<double> measured;
  std::vector<int32_t> terms;
  for (const SubnetLatency& subnet : report.subnets) {
    absl::StatusOr<Genotype> genotype = space->FromJson(subnet.config_json);
    if (!genotype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("subnet ", subnet.config_json, ": ", genotype.status().message()));
    }
    terms.clear();
    space->CostTerms(*genotype, &terms);
    std::array<double, kKinds> sum = {0.0, 0.0, 0.0};
    for (const int32_t term : terms) {
      const std::string key = space->CostTermKey(term);
      const auto found = latency_ms.find(key);
      if (found == latency_ms.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the profile has no entry for key \"", key, "\""));
      }
      sum[static_cast<int>(KindOfEntry(key))] += found->second;
    }
    sums.push_back(sum);
    measured.push_back(subnet.measured_ms);
  }
  // The columns: the intercept, then each kind some subnet has.
  std::vector<int> fitted_kinds;
  for (int kind = 0; kind < kKinds; ++kind) {
    for (const auto& sum : sums) {
      if (sum[kind] > 0.0) {
        fitted_kinds.push_back(kind);
        break;
      }
    }
  }
  const size_t columns = 1 + fitted_kinds.size();
  if (sums.size() < columns + 3) {
    return absl::InvalidArgumentError(absl::StrCat("calibration: ", sums.size(),
                                                   " subnets cannot fit ", columns,
                                                   " parameters (at least ", columns + 3, ")"));
  }
  // Normal equations, solved by Gauss-Jordan elimination with partial pivoting.
  std::vector<std::vector<double>> system(columns, std::vector<double>(columns + 1, 0.0));
  for (size_t n = 0; n < sums.size(); ++n) {
    std::vector<double> row = {1.0};
    for (const int kind : fitted_kinds) row.push_back(sums[n][kind]);
    for (size_t i = 0; i < columns; ++i) {
      for (size_t j = 0; j < columns; ++j) system[i][j] += row[i] * row[j];
      system[i][columns] += row[i] * measured[n];
    }
  }
  double scale = 0.0;
  for (size_t i = 0; i < columns; ++i) scale = std::max(scale, std::fabs(system[i][i]));
  for (size_t i = 0; i < columns; ++i) {
    size_t pivot = i;
    for (size_t k = i + 1; k < columns; ++k) {
      if (std::fabs(system[k][i]) > std::fabs(system[pivot][i])) pivot = k;
    }
    std::swap(system[i], system[pivot]);
    if (std::fabs(system[i][i]) <= 1e-12 * scale) {
      return absl::FailedPreconditionError(
          "calibration: the subnets do not separate the kinds of entries (singular fit)");
    }
    for (size_t k = 0; k < columns; ++k) {
      if (k == i) continue;
      const double factor = system[k][i] / system[i][i];
      for (size_t j = i; j <= columns; ++j) system[k][j] -= factor * system[i][j];
    }
  }
  std::vector<double> solution(columns);
  for (size_t i = 0; i < columns; ++i) solution[i] = system[i][columns] / system[i][i];
  EntryCalibration calibration;
  calibration.intercept_ms = solution[0];
  calibration.subnets = static_cast<int>(sums.size());
  constexpr std::array<const char*, kKinds> kNames = {"int8 layers", "float layers",
                                                      "changes of precision"};
  for (size_t c = 0; c < fitted_kinds.size(); ++c) {
    const double factor = solution[c + 1];
    if (!(factor > 0.0)) {
      return absl::FailedPreconditionError(absl::StrCat("calibration: the factor of ",
                                                        kNames[fitted_kinds[c]], " came out ",
                                                        factor, "; measure more subnets"));
    }
    switch (static_cast<EntryKind>(fitted_kinds[c])) {
      case EntryKind::kInt8Layer:
        calibration.int8_factor = factor;
        break;
      case EntryKind::kFloatLayer:
        calibration.float_factor = factor;
        break;
      case EntryKind::kPrecisionChange:
        calibration.change_factor = factor;
        break;
    }
  }
  return calibration;
}

void ApplyEntryCalibration(const EntryCalibration& calibration,
                           absl::flat_hash_map<std::string, double>* latency_ms) {
  for (auto& [key, ms] : *latency_ms) {
    switch (KindOfEntry(key)) {
      case EntryKind::kInt8Layer:
        ms *= calibration.int8_factor;
        break;
      case EntryKind::kFloatLayer:
        ms *= calibration.float_factor;
        break;
      case EntryKind::kPrecisionChange:
        ms *= calibration.change_factor;
        break;
    }
  }
}

}  // namespace apq::oface
