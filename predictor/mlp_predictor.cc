#include "predictor/mlp_predictor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "predictor/mlp_kernels.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the weights file is little-endian float32, read as-is");

namespace apq::predictor {
namespace {

using mlp_kernels::AlignedBuffer;
using mlp_kernels::GatherLinear;
using mlp_kernels::PackedLinear;

// Below this many rows per thread, waking another thread costs more than it saves.
constexpr int kMinRowsPerThread = 8;

struct RawTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t count = 0;
};

struct RawLayer {
  std::string prefix;
  const RawTensor* weight = nullptr;
  const RawTensor* bias = nullptr;
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status OpenError(const std::string& path, const char* what) {
  const int error = errno;
  const std::string message =
      absl::StrCat("cannot open ", what, " ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  errno = 0;
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) return OpenError(path, what);
  std::string contents((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return absl::DataLossError(absl::StrCat("error reading ", what, " ", path));
  return contents;
}

absl::StatusOr<std::vector<RawTensor>> ParseManifest(const std::string& manifest_path,
                                                     const std::string& text,
                                                     std::optional<int64_t>* total_floats) {
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest_path, ": ", message));
  };
  std::vector<RawTensor> tensors;
  try {
    const nlohmann::json manifest = nlohmann::json::parse(text);
    if (!manifest.is_object() || !manifest.contains("tensors") || !manifest["tensors"].is_array()) {
      return invalid("expected an object with a \"tensors\" array");
    }
    if (manifest.contains("total_floats")) {
      *total_floats = manifest["total_floats"].get<int64_t>();
    }
    for (const nlohmann::json& entry : manifest["tensors"]) {
      RawTensor tensor;
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) {
        return invalid(absl::StrCat("tensor #", tensors.size(), " has no \"name\""));
      }
      tensor.name = entry["name"].get<std::string>();
      for (const char* field : {"shape", "offset_floats", "count"}) {
        if (!entry.contains(field)) {
          return invalid(absl::StrCat("tensor '", tensor.name, "' has no \"", field, "\""));
        }
      }
      tensor.shape = entry["shape"].get<std::vector<int64_t>>();
      tensor.offset = entry["offset_floats"].get<int64_t>();
      tensor.count = entry["count"].get<int64_t>();
      // Bounds keep the offset arithmetic below far from overflow.
      int64_t product = 1;
      for (int64_t dim : tensor.shape) {
        if (tensor.shape.size() > 2 || dim <= 0 || dim > (int64_t{1} << 24)) {
          return invalid(
              absl::StrCat("tensor '", tensor.name, "' has shape ", ShapeString(tensor.shape)));
        }
        product *= dim;
      }
      if (tensor.offset < 0 || tensor.offset > (int64_t{1} << 48) || tensor.count != product) {
        return invalid(absl::StrCat("tensor '", tensor.name, "' has shape ",
                                    ShapeString(tensor.shape), ", count ", tensor.count,
                                    " and offset ", tensor.offset));
      }
      tensors.push_back(std::move(tensor));
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid(e.what());
  }
  if (tensors.empty()) return invalid("lists no tensors");
  return tensors;
}

// Groups "<k>.weight"/"<k>.bias" pairs into layers in the order their names first appear and
// checks that each layer's shapes agree with each other and with the previous layer.
absl::StatusOr<std::vector<RawLayer>> GroupLayers(const std::string& manifest_path,
                                                  const std::vector<RawTensor>& tensors) {
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest_path, ": ", message));
  };
  std::vector<RawLayer> layers;
  for (const RawTensor& tensor : tensors) {
    const size_t dot = tensor.name.rfind('.');
    const std::string prefix = dot == std::string::npos ? "" : tensor.name.substr(0, dot);
    const std::string kind = dot == std::string::npos ? "" : tensor.name.substr(dot + 1);
    if (prefix.empty() || (kind != "weight" && kind != "bias")) {
      return invalid(absl::StrCat("tensor '", tensor.name,
                                  "' is not named \"<layer>.weight\" or \"<layer>.bias\""));
    }
    auto it = std::find_if(layers.begin(), layers.end(),
                           [&](const RawLayer& layer) { return layer.prefix == prefix; });
    if (it == layers.end()) {
      layers.push_back(RawLayer{prefix});
      it = layers.end() - 1;
    }
    const RawTensor*& slot = kind == "weight" ? it->weight : it->bias;
    if (slot != nullptr) return invalid(absl::StrCat("tensor '", tensor.name, "' is listed twice"));
    slot = &tensor;
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const RawLayer& layer = layers[l];
    if (layer.weight == nullptr || layer.bias == nullptr) {
      return invalid(absl::StrCat("layer '", layer.prefix, "' lacks its tensor '", layer.prefix,
                                  layer.weight == nullptr ? ".weight'" : ".bias'"));
    }
    if (layer.weight->shape.size() != 2) {
      return invalid(absl::StrCat("tensor '", layer.weight->name, "' has shape ",
                                  ShapeString(layer.weight->shape), ", expected [out, in]"));
    }
    const int64_t out = layer.weight->shape[0];
    if (layer.bias->shape != std::vector<int64_t>{out}) {
      return invalid(absl::StrCat("tensor '", layer.bias->name, "' has shape ",
                                  ShapeString(layer.bias->shape), ", expected [", out,
                                  "] to match '", layer.weight->name, "' of shape ",
                                  ShapeString(layer.weight->shape)));
    }
    if (l > 0) {
      const RawTensor& previous = *layers[l - 1].weight;
      if (layer.weight->shape[1] != previous.shape[0]) {
        return invalid(absl::StrCat("tensor '", layer.weight->name, "' has shape ",
                                    ShapeString(layer.weight->shape), " but takes the ",
                                    previous.shape[0], " outputs of '", previous.name,
                                    "' of shape ", ShapeString(previous.shape)));
      }
    }
  }
  const RawTensor& last = *layers.back().weight;
  if (last.shape[0] != 1) {
    return invalid(absl::StrCat("tensor '", last.name, "' of the last layer has shape ",
                                ShapeString(last.shape), ", expected one output"));
  }
  return layers;
}

uint64_t Fnv1a64(const std::string& bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char byte : bytes) {
    hash ^= byte;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::string FileStem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos && dot > 0) name.resize(dot);
  return name;
}

absl::Status TorchError(const char* where, const std::exception& e) {
  return absl::InternalError(absl::StrCat("LibTorch error in ", where, ": ", e.what()));
}

}  // namespace

struct MlpPredictor::Weights {
  std::vector<int> sizes;            // layer input widths, then the last output width
  std::vector<at::Tensor> weight;    // [out, in] per layer
  std::vector<at::Tensor> bias;      // [out] per layer
  std::vector<at::Tensor> weight_t;  // [in, out] transposed views, for addmm
  std::unique_ptr<GatherLinear> first;
  std::vector<PackedLinear> rest;  // layers 1.. for the blocked kernel
  int stride = 0;                  // activation row stride in floats, covers every layer
  std::string version;
};

struct MlpPredictor::Buffers {
  AlignedBuffer ping;
  AlignedBuffer pong;
  // seen[i] == stamp when input i already occurred in the sample being validated.
  std::vector<uint32_t> seen;
  uint32_t stamp = 0;
  // For the LibTorch kernel: the gathered first layer, then each later layer's output.
  std::vector<at::Tensor> activations;
};

absl::StatusOr<std::unique_ptr<MlpPredictor>> MlpPredictor::LoadRawFloat32(
    const std::string& weights_path, const std::string& manifest_path, const Options& options) {
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads must be at least 1, got ", options.num_threads));
  }
  ASSIGN_OR_RETURN(const std::string manifest_text, ReadFile(manifest_path, "manifest"));
  std::optional<int64_t> total_floats;
  ASSIGN_OR_RETURN(const std::vector<RawTensor> tensors,
                   ParseManifest(manifest_path, manifest_text, &total_floats));
  ASSIGN_OR_RETURN(const std::vector<RawLayer> layers, GroupLayers(manifest_path, tensors));
  ASSIGN_OR_RETURN(const std::string bytes, ReadFile(weights_path, "weights file"));

  const auto data_loss = [&](const std::string& message) {
    return absl::DataLossError(
        absl::StrCat("weights file ", weights_path, " (manifest ", manifest_path, "): ", message));
  };
  if (bytes.size() % sizeof(float) != 0) {
    return data_loss(absl::StrCat("holds ", bytes.size(), " bytes, not a whole number of floats"));
  }
  const int64_t file_floats = static_cast<int64_t>(bytes.size() / sizeof(float));
  int64_t end_floats = 0;
  for (const RawTensor& tensor : tensors) {
    if (tensor.offset + tensor.count > file_floats) {
      return data_loss(absl::StrCat("holds ", file_floats, " floats but tensor '", tensor.name,
                                    "' needs floats [", tensor.offset, ", ",
                                    tensor.offset + tensor.count, ")"));
    }
    end_floats = std::max(end_floats, tensor.offset + tensor.count);
  }
  const int64_t expected_floats = total_floats.value_or(end_floats);
  if (file_floats != expected_floats) {
    return data_loss(
        absl::StrCat("holds ", file_floats, " floats, the manifest describes ", expected_floats));
  }
  const float* floats = reinterpret_cast<const float*>(bytes.data());
  for (const RawTensor& tensor : tensors) {
    for (int64_t i = 0; i < tensor.count; ++i) {
      if (!std::isfinite(floats[tensor.offset + i])) {
        return data_loss(absl::StrCat("tensor '", tensor.name, "' holds ",
                                      floats[tensor.offset + i], " at element ", i));
      }
    }
  }

  auto weights = std::make_shared<Weights>();
  weights->version = absl::StrFormat("%s-%016x", FileStem(weights_path), Fnv1a64(bytes));
  const mlp_kernels::Isa isa = mlp_kernels::BestIsa();
  try {
    c10::InferenceMode inference_mode;
    // Process-global; see Options::num_threads.
    at::set_num_threads(options.num_threads);
    for (size_t l = 0; l < layers.size(); ++l) {
      const RawTensor& w = *layers[l].weight;
      const RawTensor& b = *layers[l].bias;
      const int out = static_cast<int>(w.shape[0]);
      const int in = static_cast<int>(w.shape[1]);
      const float* w_data = floats + w.offset;
      const float* b_data = floats + b.offset;
      weights->sizes.push_back(in);
      weights->weight.push_back(
          at::from_blob(const_cast<float*>(w_data), {out, in}, at::kFloat).clone());
      weights->bias.push_back(at::from_blob(const_cast<float*>(b_data), {out}, at::kFloat).clone());
      weights->weight_t.push_back(weights->weight.back().t());
      if (l == 0) {
        weights->first = std::make_unique<GatherLinear>(w_data, b_data, in, out, isa);
      } else {
        weights->rest.emplace_back(w_data, b_data, in, out, isa);
      }
      weights->stride = std::max(weights->stride, mlp_kernels::PaddedWidth(out, isa));
    }
    weights->sizes.push_back(static_cast<int>(layers.back().weight->shape[0]));
  } catch (const std::exception& e) {
    return TorchError("LoadRawFloat32", e);
  }
  return std::unique_ptr<MlpPredictor>(new MlpPredictor(std::move(weights), options));
}

MlpPredictor::MlpPredictor(std::shared_ptr<const Weights> weights, const Options& options)
    : weights_(std::move(weights)), options_(options), buffers_(std::make_unique<Buffers>()) {
  buffers_->seen.assign(weights_->sizes.front(), 0);
}

MlpPredictor::~MlpPredictor() = default;

int MlpPredictor::input_size() const { return weights_->sizes.front(); }

const std::string& MlpPredictor::version() const { return weights_->version; }

std::vector<int> MlpPredictor::layer_sizes() const { return weights_->sizes; }

std::string MlpPredictor::kernel_name() const {
  if (options_.kernel == Kernel::kLibTorch) return "libtorch-addmm";
  return absl::StrCat("blocked-", mlp_kernels::IsaName(weights_->first->isa()));
}

std::unique_ptr<AccuracyPredictor> MlpPredictor::Clone() const {
  return std::unique_ptr<MlpPredictor>(new MlpPredictor(weights_, options_));
}

absl::Status MlpPredictor::ValidateBatch(const FeatureBatch& batch) {
  const std::vector<int32_t>& indices = batch.indices();
  const std::vector<int32_t>& offsets = batch.offsets();
  std::vector<uint32_t>& seen = buffers_->seen;
  const int32_t input_size = static_cast<int32_t>(seen.size());
  for (int sample = 0; sample < batch.size(); ++sample) {
    if (++buffers_->stamp == 0) {
      std::fill(seen.begin(), seen.end(), 0);
      buffers_->stamp = 1;
    }
    for (int32_t j = offsets[sample]; j < offsets[sample + 1]; ++j) {
      const int32_t index = indices[j];
      if (index < 0 || index >= input_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "feature index ", index, " of sample ", sample, " is outside [0, ", input_size, ")"));
      }
      if (seen[index] == buffers_->stamp) {
        return absl::InvalidArgumentError(
            absl::StrCat("feature index ", index, " is listed twice in sample ", sample));
      }
      seen[index] = buffers_->stamp;
    }
  }
  return absl::OkStatus();
}

absl::Status MlpPredictor::Predict(const FeatureBatch& batch, std::vector<float>* accuracies) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  accuracies->resize(batch.size());
  if (batch.size() == 0) return absl::OkStatus();
  try {
    if (options_.kernel == Kernel::kLibTorch) {
      ForwardLibTorch(batch, accuracies);
    } else {
      ForwardBlocked(batch, accuracies);
    }
  } catch (const std::exception& e) {
    return TorchError("Predict", e);
  }
  return absl::OkStatus();
}

void MlpPredictor::ForwardBlocked(const FeatureBatch& batch, std::vector<float>* accuracies) {
  const Weights& w = *weights_;
  const int rows = batch.size();
  const int stride = w.stride;
  buffers_->ping.Reserve(static_cast<size_t>(rows) * stride);
  buffers_->pong.Reserve(static_cast<size_t>(rows) * stride);
  float* const ping = buffers_->ping.data();
  float* const pong = buffers_->pong.data();
  const int32_t* indices = batch.indices().data();
  const int32_t* offsets = batch.offsets().data();
  float* out = accuracies->data();
  // Every row runs through all layers independently, so each thread takes a contiguous
  // block of rows end to end, with no synchronisation between layers.
  const int64_t rows_per_thread = std::max<int64_t>(
      kMinRowsPerThread, (rows + options_.num_threads - 1) / options_.num_threads);
  at::parallel_for(0, rows, rows_per_thread, [&](int64_t begin, int64_t end) {
    const int n = static_cast<int>(end - begin);
    float* src = ping + begin * stride;
    float* dst = pong + begin * stride;
    w.first->Forward(indices, offsets + begin, n, src, stride, /*relu=*/!w.rest.empty());
    for (size_t l = 0; l < w.rest.size(); ++l) {
      w.rest[l].Forward(src, n, stride, dst, stride, /*relu=*/l + 1 < w.rest.size());
      std::swap(src, dst);
    }
    for (int r = 0; r < n; ++r) out[begin + r] = src[static_cast<size_t>(r) * stride];
  });
}

void MlpPredictor::ForwardLibTorch(const FeatureBatch& batch, std::vector<float>* accuracies) {
  c10::InferenceMode inference_mode;
  const Weights& w = *weights_;
  const int64_t rows = batch.size();
  std::vector<at::Tensor>& activations = buffers_->activations;
  if (activations.empty()) {
    // The gather writes padded rows; later layers write dense [rows, out] tensors.
    activations.push_back(at::empty({rows, w.first->padded_out()}, at::kFloat));
    for (const PackedLinear& layer : w.rest) {
      activations.push_back(at::empty({rows, layer.out()}, at::kFloat));
    }
  }
  activations[0].resize_({rows, w.first->padded_out()});
  w.first->Forward(batch.indices().data(), batch.offsets().data(), static_cast<int>(rows),
                   activations[0].data_ptr<float>(), w.first->padded_out(),
                   /*relu=*/!w.rest.empty());
  at::Tensor input = activations[0].narrow(1, 0, w.first->out());
  for (size_t l = 1; l < w.weight.size(); ++l) {
    at::Tensor& output = activations[l];
    output.resize_({rows, w.weight[l].size(0)});
    at::addmm_out(output, w.bias[l], input, w.weight_t[l]);
    if (l + 1 < w.weight.size()) output.relu_();
    input = output;
  }
  const at::Tensor result = input.select(1, 0).contiguous();
  std::memcpy(accuracies->data(), result.data_ptr<float>(), rows * sizeof(float));
}

absl::Status MlpPredictor::PredictDense(const float* inputs, int batch,
                                        std::vector<float>* out) const {
  if (batch < 0) return absl::InvalidArgumentError(absl::StrCat("batch is negative: ", batch));
  out->resize(batch);
  if (batch == 0) return absl::OkStatus();
  try {
    c10::InferenceMode inference_mode;
    const Weights& w = *weights_;
    at::Tensor x = at::from_blob(const_cast<float*>(inputs), {batch, input_size()}, at::kFloat);
    for (size_t l = 0; l < w.weight.size(); ++l) {
      x = at::linear(x, w.weight[l], w.bias[l]);
      if (l + 1 < w.weight.size()) x = at::relu(x);
    }
    const at::Tensor result = x.select(1, 0).contiguous();
    std::memcpy(out->data(), result.data_ptr<float>(), batch * sizeof(float));
  } catch (const std::exception& e) {
    return TorchError("PredictDense", e);
  }
  return absl::OkStatus();
}

}  // namespace apq::predictor
