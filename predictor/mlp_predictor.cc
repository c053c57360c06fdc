#include "predictor/mlp_predictor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "predictor/mlp_kernels.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the weights file is little-endian float32, read and written as-is");

namespace apq::predictor {
namespace {

using mlp_kernels::AlignedBuffer;
using mlp_kernels::GatherLinear;
using mlp_kernels::PackedLinear;

// Below this many rows per thread, waking another thread costs more than it saves.
constexpr int kMinRowsPerThread = 8;
// The layer name of the branch that reads the inputs after the first layer's.
constexpr char kBitsName[] = "bits";
// Bounds on tensor dimensions keep the offset arithmetic far from overflow.
constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr char kFormat[] =
    "little-endian float32, row-major (PyTorch nn.Linear weight layout [out_features, "
    "in_features]), tensors concatenated in listed order";

struct RawTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t count = 0;
};

struct Manifest {
  std::vector<RawTensor> tensors;
  std::optional<int64_t> total_floats;
  std::optional<int64_t> arch_inputs;
  std::optional<int64_t> input_size;
  std::optional<uint64_t> content_hash;
};

struct RawLayer {
  std::string prefix;
  const RawTensor* weight = nullptr;
  const RawTensor* bias = nullptr;
};

// A manifest's layers: the main path in order and the optional branch.
struct RawLayout {
  std::vector<RawLayer> layers;
  std::optional<RawLayer> bits;
};

// The shapes of one Linear layer's tensors, whatever they were read from.
struct LayerShape {
  std::string prefix;
  std::vector<int64_t> weight;
  std::vector<int64_t> bias;
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

absl::Status ValidateOptions(const MlpPredictor::Options& options) {
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads must be at least 1, got ", options.num_threads));
  }
  return absl::OkStatus();
}

absl::StatusOr<Manifest> ParseManifest(const std::string& manifest_path, const std::string& text) {
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest_path, ": ", message));
  };
  Manifest result;
  try {
    const nlohmann::json manifest = nlohmann::json::parse(text);
    if (!manifest.is_object() || !manifest.contains("tensors") || !manifest["tensors"].is_array()) {
      return invalid("expected an object with a \"tensors\" array");
    }
    if (manifest.contains("total_floats")) {
      result.total_floats = manifest["total_floats"].get<int64_t>();
    }
    for (const auto& [field, count] : {std::pair{"arch_inputs", &result.arch_inputs},
                                       std::pair{"input_size", &result.input_size}}) {
      if (!manifest.contains(field)) continue;
      const nlohmann::json& value = manifest[field];
      if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
          value.get<int64_t>() > kMaxDim) {
        return invalid(absl::StrCat("\"", field, "\" is ", value.dump(),
                                    ", expected an integer in [1, ", kMaxDim, "]"));
      }
      *count = value.get<int64_t>();
    }
    if (manifest.contains("content_fnv1a64")) {
      const nlohmann::json& value = manifest["content_fnv1a64"];
      uint64_t hash = 0;
      if (!value.is_string() || value.get<std::string>().size() != 16 ||
          !absl::SimpleHexAtoi(value.get<std::string>(), &hash)) {
        return invalid(
            absl::StrCat("\"content_fnv1a64\" is ", value.dump(), ", expected 16 hex digits"));
      }
      result.content_hash = hash;
    }
    for (const nlohmann::json& entry : manifest["tensors"]) {
      RawTensor tensor;
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) {
        return invalid(absl::StrCat("tensor #", result.tensors.size(), " has no \"name\""));
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
      int64_t product = 1;
      for (int64_t dim : tensor.shape) {
        if (tensor.shape.size() > 2 || dim <= 0 || dim > kMaxDim) {
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
      result.tensors.push_back(std::move(tensor));
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid(e.what());
  }
  if (result.tensors.empty()) return invalid("lists no tensors");
  return result;
}

// Checks that each layer's shapes agree with each other and with the previous layer, that the
// branch fits the first layer, and the declared input counts. `context` starts each message.
absl::Status ValidateShapes(const std::string& context, const std::vector<LayerShape>& layers,
                            const std::optional<LayerShape>& bits,
                            std::optional<int64_t> arch_inputs, std::optional<int64_t> input_size) {
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(context, message));
  };
  // The shapes of one layer on its own.
  const auto check_layer = [&](const LayerShape& layer) -> absl::Status {
    const std::string weight = absl::StrCat(layer.prefix, ".weight");
    if (layer.weight.size() != 2 || layer.weight[0] <= 0 || layer.weight[0] > kMaxDim ||
        layer.weight[1] <= 0 || layer.weight[1] > kMaxDim) {
      return invalid(absl::StrCat("tensor '", weight, "' has shape ", ShapeString(layer.weight),
                                  ", expected [out, in] with both in [1, ", kMaxDim, "]"));
    }
    if (layer.bias != std::vector<int64_t>{layer.weight[0]}) {
      return invalid(absl::StrCat(
          "tensor '", layer.prefix, ".bias' has shape ", ShapeString(layer.bias), ", expected [",
          layer.weight[0], "] to match '", weight, "' of shape ", ShapeString(layer.weight)));
    }
    return absl::OkStatus();
  };
  if (layers.empty()) return invalid("lists no layers");
  for (size_t l = 0; l < layers.size(); ++l) {
    RETURN_IF_ERROR(check_layer(layers[l]));
    if (l > 0) {
      const LayerShape& previous = layers[l - 1];
      if (layers[l].weight[1] != previous.weight[0]) {
        return invalid(absl::StrCat("tensor '", layers[l].prefix, ".weight' has shape ",
                                    ShapeString(layers[l].weight), " but takes the ",
                                    previous.weight[0], " outputs of '", previous.prefix,
                                    ".weight' of shape ", ShapeString(previous.weight)));
      }
    }
  }
  const LayerShape& first = layers.front();
  const LayerShape& last = layers.back();
  if (last.weight[0] != 1) {
    return invalid(absl::StrCat("tensor '", last.prefix, ".weight' of the last layer has shape ",
                                ShapeString(last.weight), ", expected one output"));
  }
  if (bits.has_value()) {
    RETURN_IF_ERROR(check_layer(*bits));
    const std::string weight = absl::StrCat(bits->prefix, ".weight");
    if (layers.size() < 2) {
      return invalid(absl::StrCat("tensor '", weight,
                                  "' is a branch added after the first layer's ReLU, but the "
                                  "network has a single layer"));
    }
    if (bits->weight[0] != first.weight[0]) {
      return invalid(absl::StrCat("tensor '", weight, "' has shape ", ShapeString(bits->weight),
                                  " but its outputs are added to the ", first.weight[0],
                                  " outputs of '", first.prefix, ".weight' of shape ",
                                  ShapeString(first.weight)));
    }
    if (!arch_inputs.has_value()) {
      return invalid(absl::StrCat("tensor '", weight,
                                  "' is a branch but \"arch_inputs\" (the inputs of the first "
                                  "layer) is missing"));
    }
  }
  if (arch_inputs.has_value() && *arch_inputs != first.weight[1]) {
    return invalid(absl::StrCat("\"arch_inputs\" is ", *arch_inputs, " but tensor '", first.prefix,
                                ".weight' of the first layer has shape ",
                                ShapeString(first.weight)));
  }
  if (input_size.has_value()) {
    if (bits.has_value() && *input_size != first.weight[1] + bits->weight[1]) {
      return invalid(absl::StrCat("\"input_size\" is ", *input_size, " but the ", first.weight[1],
                                  " arch_inputs plus the ", bits->weight[1], " inputs of tensor '",
                                  bits->prefix, ".weight' of shape ", ShapeString(bits->weight),
                                  " make ", first.weight[1] + bits->weight[1]));
    }
    if (!bits.has_value() && *input_size != first.weight[1]) {
      return invalid(absl::StrCat("\"input_size\" is ", *input_size, " but tensor '", first.prefix,
                                  ".weight' of the first layer has shape ",
                                  ShapeString(first.weight)));
    }
  }
  return absl::OkStatus();
}

// Groups "<layer>.weight"/"<layer>.bias" pairs into layers in the order their names first
// appear, sets the "bits" layer apart as the branch and validates the shapes.
absl::StatusOr<RawLayout> GroupLayers(const std::string& manifest_path, const Manifest& manifest) {
  const std::string context = absl::StrCat("manifest ", manifest_path, ": ");
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(context, message));
  };
  std::vector<RawLayer> grouped;
  for (const RawTensor& tensor : manifest.tensors) {
    const size_t dot = tensor.name.rfind('.');
    const std::string prefix = dot == std::string::npos ? "" : tensor.name.substr(0, dot);
    const std::string kind = dot == std::string::npos ? "" : tensor.name.substr(dot + 1);
    if (prefix.empty() || (kind != "weight" && kind != "bias")) {
      return invalid(absl::StrCat("tensor '", tensor.name,
                                  "' is not named \"<layer>.weight\" or \"<layer>.bias\""));
    }
    auto it = std::find_if(grouped.begin(), grouped.end(),
                           [&](const RawLayer& layer) { return layer.prefix == prefix; });
    if (it == grouped.end()) {
      grouped.push_back(RawLayer{prefix});
      it = grouped.end() - 1;
    }
    const RawTensor*& slot = kind == "weight" ? it->weight : it->bias;
    if (slot != nullptr) return invalid(absl::StrCat("tensor '", tensor.name, "' is listed twice"));
    slot = &tensor;
  }
  RawLayout layout;
  for (const RawLayer& layer : grouped) {
    if (layer.weight == nullptr || layer.bias == nullptr) {
      return invalid(absl::StrCat("layer '", layer.prefix, "' lacks its tensor '", layer.prefix,
                                  layer.weight == nullptr ? ".weight'" : ".bias'"));
    }
    if (layer.prefix == kBitsName) {
      layout.bits = layer;
    } else {
      layout.layers.push_back(layer);
    }
  }
  const auto shape = [](const RawLayer& layer) {
    return LayerShape{layer.prefix, layer.weight->shape, layer.bias->shape};
  };
  std::vector<LayerShape> shapes;
  for (const RawLayer& layer : layout.layers) shapes.push_back(shape(layer));
  std::optional<LayerShape> bits_shape;
  if (layout.bits.has_value()) bits_shape = shape(*layout.bits);
  RETURN_IF_ERROR(
      ValidateShapes(context, shapes, bits_shape, manifest.arch_inputs, manifest.input_size));
  return layout;
}

// The Linear layers in the order of the weights file: the first layer, the branch, the rest.
std::vector<const MlpWeights::Linear*> CanonicalOrder(const MlpWeights& weights) {
  std::vector<const MlpWeights::Linear*> order;
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    order.push_back(&weights.layers[l]);
    if (l == 0 && weights.bits.has_value()) order.push_back(&*weights.bits);
  }
  return order;
}

// The weights file's contents: each layer's weight then bias, in CanonicalOrder, no gaps.
std::string CanonicalBytes(const MlpWeights& weights) {
  std::string bytes;
  for (const MlpWeights::Linear* layer : CanonicalOrder(weights)) {
    for (const std::vector<float>* values : {&layer->weight, &layer->bias}) {
      bytes.append(reinterpret_cast<const char*>(values->data()), values->size() * sizeof(float));
    }
  }
  return bytes;
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

std::string Folder(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `contents` to a new temporary file next to `path` and flushes it to disk; returns
// the temporary file's path. Leaves nothing behind on error.
absl::StatusOr<std::string> StageFile(const std::string& path, const std::string& contents,
                                      const char* what) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error,
                               absl::StrCat("cannot create ", temp, " for the ", what, " ", path));
  }
  absl::Status status;
  size_t written = 0;
  while (status.ok() && written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      status = absl::ErrnoToStatus(
          error, absl::StrCat("cannot write ", temp, " for the ", what, " ", path));
    } else {
      written += static_cast<size_t>(n);
    }
  }
  if (status.ok() && ::fsync(fd) != 0) {
    const int error = errno;
    status = absl::ErrnoToStatus(error,
                                 absl::StrCat("cannot flush ", temp, " for the ", what, " ", path));
  }
  if (::close(fd) != 0 && status.ok()) {
    const int error = errno;
    status = absl::ErrnoToStatus(error,
                                 absl::StrCat("cannot close ", temp, " for the ", what, " ", path));
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  return temp;
}

// Renames a staged file over `path` and flushes the folder entry to disk.
absl::Status CommitFile(const std::string& temp, const std::string& path, const char* what) {
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error,
                               absl::StrCat("cannot rename ", temp, " to the ", what, " ", path));
  }
  const std::string folder = Folder(path);
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat("cannot open folder ", folder, " to flush it"));
  }
  absl::Status status;
  if (::fsync(fd) != 0) {
    const int error = errno;
    status = absl::ErrnoToStatus(error, absl::StrCat("cannot flush folder ", folder));
  }
  ::close(fd);
  return status;
}

absl::Status TorchError(const char* where, const std::exception& e) {
  return absl::InternalError(absl::StrCat("LibTorch error in ", where, ": ", e.what()));
}

}  // namespace

struct MlpPredictor::Weights {
  // The weights as given; declared first so that it outlives the tensors viewing its arrays.
  MlpWeights source;
  int arch_inputs = 0;
  int input_size = 0;
  std::vector<int> sizes;            // layer input widths, then the last output width
  std::vector<at::Tensor> weight;    // [out, in] per layer
  std::vector<at::Tensor> bias;      // [out] per layer
  std::vector<at::Tensor> weight_t;  // [in, out] transposed views, for addmm
  at::Tensor bits_weight;            // [out, bit inputs]; undefined without a branch
  at::Tensor bits_bias;              // [out]; undefined without a branch
  std::unique_ptr<GatherLinear> first;
  std::unique_ptr<GatherLinear> bits;  // null without a branch
  std::vector<PackedLinear> rest;      // layers 1.. for the blocked kernel
  int stride = 0;                      // activation row stride in floats, covers every layer
  uint64_t content_hash = 0;
  std::string version;
};

struct MlpPredictor::Buffers {
  AlignedBuffer ping;
  AlignedBuffer pong;
  // seen[i] == stamp when input i already occurred in the sample being validated.
  std::vector<uint32_t> seen;
  uint32_t stamp = 0;
  // With a branch: each sample's indices below arch_inputs, and the others minus arch_inputs.
  std::vector<int32_t> arch_indices;
  std::vector<int32_t> arch_offsets;
  std::vector<int32_t> bit_indices;
  std::vector<int32_t> bit_offsets;
  // For the LibTorch kernel: the gathered first layer, then each later layer's output.
  std::vector<at::Tensor> activations;
};

absl::StatusOr<std::unique_ptr<MlpPredictor>> MlpPredictor::LoadRawFloat32(
    const std::string& weights_path, const std::string& manifest_path, const Options& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(const std::string manifest_text, ReadFile(manifest_path, "manifest"));
  ASSIGN_OR_RETURN(const std::string bytes, ReadFile(weights_path, "weights file"));
  return FromRawFloat32(bytes, manifest_text, FileStem(weights_path), weights_path, manifest_path,
                        options);
}

absl::StatusOr<std::unique_ptr<MlpPredictor>> MlpPredictor::FromRawFloat32(
    const std::string& bytes, const std::string& manifest_text, const std::string& name,
    const std::string& weights_path, const std::string& manifest_path, const Options& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(const Manifest manifest, ParseManifest(manifest_path, manifest_text));
  ASSIGN_OR_RETURN(const RawLayout layout, GroupLayers(manifest_path, manifest));

  const auto data_loss = [&](const std::string& message) {
    return absl::DataLossError(
        absl::StrCat("weights file ", weights_path, " (manifest ", manifest_path, "): ", message));
  };
  if (bytes.size() % sizeof(float) != 0) {
    return data_loss(absl::StrCat("holds ", bytes.size(), " bytes, not a whole number of floats"));
  }
  const int64_t file_floats = static_cast<int64_t>(bytes.size() / sizeof(float));
  int64_t end_floats = 0;
  for (const RawTensor& tensor : manifest.tensors) {
    if (tensor.offset + tensor.count > file_floats) {
      return data_loss(absl::StrCat("holds ", file_floats, " floats but tensor '", tensor.name,
                                    "' needs floats [", tensor.offset, ", ",
                                    tensor.offset + tensor.count, ")"));
    }
    end_floats = std::max(end_floats, tensor.offset + tensor.count);
  }
  const int64_t expected_floats = manifest.total_floats.value_or(end_floats);
  if (file_floats != expected_floats) {
    return data_loss(
        absl::StrCat("holds ", file_floats, " floats, the manifest describes ", expected_floats));
  }
  const float* floats = reinterpret_cast<const float*>(bytes.data());
  for (const RawTensor& tensor : manifest.tensors) {
    for (int64_t i = 0; i < tensor.count; ++i) {
      if (!std::isfinite(floats[tensor.offset + i])) {
        return data_loss(absl::StrCat("tensor '", tensor.name, "' holds ",
                                      floats[tensor.offset + i], " at element ", i));
      }
    }
  }

  const auto to_linear = [&](const RawLayer& layer) {
    MlpWeights::Linear linear;
    linear.name = layer.prefix;
    linear.out = static_cast<int>(layer.weight->shape[0]);
    linear.in = static_cast<int>(layer.weight->shape[1]);
    const float* weight = floats + layer.weight->offset;
    const float* bias = floats + layer.bias->offset;
    linear.weight.assign(weight, weight + layer.weight->count);
    linear.bias.assign(bias, bias + layer.bias->count);
    return linear;
  };
  MlpWeights weights;
  weights.name = name;
  for (const RawLayer& layer : layout.layers) weights.layers.push_back(to_linear(layer));
  if (layout.bits.has_value()) weights.bits = to_linear(*layout.bits);
  ASSIGN_OR_RETURN(std::unique_ptr<MlpPredictor> predictor, Build(std::move(weights), options));
  const uint64_t content_hash = predictor->weights_->content_hash;
  if (manifest.content_hash.has_value() && *manifest.content_hash != content_hash) {
    return data_loss(absl::StrFormat(
        "the weights hash to %016x but the manifest's \"content_fnv1a64\" is %016x: the files "
        "do not belong together",
        content_hash, *manifest.content_hash));
  }
  return predictor;
}

absl::StatusOr<std::unique_ptr<MlpPredictor>> MlpPredictor::Create(MlpWeights weights,
                                                                   const Options& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  if (weights.name.empty()) return absl::InvalidArgumentError("MlpWeights: the name is empty");
  const std::string context = absl::StrCat("MlpWeights '", weights.name, "': ");
  const auto invalid = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(context, message));
  };
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    MlpWeights::Linear& layer = weights.layers[l];
    if (layer.name.empty()) layer.name = absl::StrCat(2 * l);
    if (layer.name == kBitsName) {
      return invalid(
          absl::StrCat("layer ", l, " is named '", kBitsName, "', the name of the branch"));
    }
    for (size_t k = 0; k < l; ++k) {
      if (weights.layers[k].name == layer.name) {
        return invalid(
            absl::StrCat("layers ", k, " and ", l, " are both named '", layer.name, "'"));
      }
    }
  }
  if (weights.bits.has_value()) {
    if (!weights.bits->name.empty() && weights.bits->name != kBitsName) {
      return invalid(absl::StrCat("the branch is named '", weights.bits->name, "', expected '",
                                  kBitsName, "' or nothing"));
    }
    weights.bits->name = kBitsName;
  }

  const auto shape = [](const MlpWeights::Linear& layer) {
    return LayerShape{layer.name, {layer.out, layer.in}, {static_cast<int64_t>(layer.bias.size())}};
  };
  std::vector<LayerShape> shapes;
  for (const MlpWeights::Linear& layer : weights.layers) shapes.push_back(shape(layer));
  std::optional<LayerShape> bits_shape;
  if (weights.bits.has_value()) bits_shape = shape(*weights.bits);
  std::optional<int64_t> arch_inputs;
  if (!weights.layers.empty()) arch_inputs = weights.layers.front().in;
  RETURN_IF_ERROR(ValidateShapes(context, shapes, bits_shape, arch_inputs, std::nullopt));

  for (const MlpWeights::Linear* layer : CanonicalOrder(weights)) {
    const int64_t expected = int64_t{layer->out} * layer->in;
    if (static_cast<int64_t>(layer->weight.size()) != expected) {
      return invalid(absl::StrCat("tensor '", layer->name, ".weight' holds ", layer->weight.size(),
                                  " floats, its shape [", layer->out, ", ", layer->in, "] needs ",
                                  expected));
    }
    for (const auto& [kind, values] :
         {std::pair{".weight", &layer->weight}, std::pair{".bias", &layer->bias}}) {
      for (size_t i = 0; i < values->size(); ++i) {
        if (!std::isfinite((*values)[i])) {
          return invalid(absl::StrCat("tensor '", layer->name, kind, "' holds ", (*values)[i],
                                      " at element ", i));
        }
      }
    }
  }
  return Build(std::move(weights), options);
}

absl::StatusOr<std::unique_ptr<MlpPredictor>> MlpPredictor::Build(MlpWeights source,
                                                                  const Options& options) {
  auto weights = std::make_shared<Weights>();
  weights->source = std::move(source);
  const MlpWeights& src = weights->source;
  weights->content_hash = Fnv1a64(CanonicalBytes(src));
  weights->version = absl::StrFormat("%s-%016x", src.name, weights->content_hash);
  weights->arch_inputs = src.layers.front().in;
  weights->input_size = weights->arch_inputs + (src.bits.has_value() ? src.bits->in : 0);
  const mlp_kernels::Isa isa = mlp_kernels::BestIsa();
  try {
    c10::InferenceMode inference_mode;
    // Process-global; see Options::num_threads.
    at::set_num_threads(options.num_threads);
    // Views of `source`'s arrays, which are never written.
    const auto view = [](const std::vector<float>& values, at::IntArrayRef shape) {
      return at::from_blob(const_cast<float*>(values.data()), shape, at::kFloat);
    };
    for (size_t l = 0; l < src.layers.size(); ++l) {
      const MlpWeights::Linear& layer = src.layers[l];
      weights->sizes.push_back(layer.in);
      weights->weight.push_back(view(layer.weight, {layer.out, layer.in}));
      weights->bias.push_back(view(layer.bias, {layer.out}));
      weights->weight_t.push_back(weights->weight.back().t());
      if (l == 0) {
        weights->first = std::make_unique<GatherLinear>(layer.weight.data(), layer.bias.data(),
                                                        layer.in, layer.out, isa);
      } else {
        weights->rest.emplace_back(layer.weight.data(), layer.bias.data(), layer.in, layer.out,
                                   isa);
      }
      weights->stride = std::max(weights->stride, mlp_kernels::PaddedWidth(layer.out, isa));
    }
    weights->sizes.push_back(src.layers.back().out);
    if (src.bits.has_value()) {
      const MlpWeights::Linear& bits = *src.bits;
      weights->bits_weight = view(bits.weight, {bits.out, bits.in});
      weights->bits_bias = view(bits.bias, {bits.out});
      weights->bits = std::make_unique<GatherLinear>(bits.weight.data(), bits.bias.data(), bits.in,
                                                     bits.out, isa);
    }
  } catch (const std::exception& e) {
    return TorchError("building the predictor", e);
  }
  return std::unique_ptr<MlpPredictor>(new MlpPredictor(std::move(weights), options));
}

MlpPredictor::MlpPredictor(std::shared_ptr<const Weights> weights, const Options& options)
    : weights_(std::move(weights)), options_(options), buffers_(std::make_unique<Buffers>()) {
  buffers_->seen.assign(weights_->input_size, 0);
}

MlpPredictor::~MlpPredictor() = default;

int MlpPredictor::input_size() const { return weights_->input_size; }

int MlpPredictor::arch_inputs() const { return weights_->arch_inputs; }

int MlpPredictor::bit_inputs() const { return weights_->input_size - weights_->arch_inputs; }

const std::string& MlpPredictor::version() const { return weights_->version; }

std::vector<int> MlpPredictor::layer_sizes() const { return weights_->sizes; }

MlpWeights MlpPredictor::ExportWeights() const { return weights_->source; }

std::string MlpPredictor::kernel_name() const {
  if (options_.kernel == Kernel::kLibTorch) return "libtorch-addmm";
  return absl::StrCat("blocked-", mlp_kernels::IsaName(weights_->first->isa()));
}

std::unique_ptr<AccuracyPredictor> MlpPredictor::Clone() const {
  return std::unique_ptr<MlpPredictor>(new MlpPredictor(weights_, options_));
}

absl::StatusOr<std::string> MlpPredictor::ManifestJson() const {
  const MlpWeights& src = weights_->source;
  try {
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    int64_t offset = 0;
    const auto add_tensor = [&](const std::string& name, const std::vector<int64_t>& shape) {
      int64_t count = 1;
      for (int64_t dim : shape) count *= dim;
      tensors.push_back(
          {{"name", name}, {"shape", shape}, {"offset_floats", offset}, {"count", count}});
      offset += count;
    };
    for (const MlpWeights::Linear* layer : CanonicalOrder(src)) {
      add_tensor(absl::StrCat(layer->name, ".weight"), {layer->out, layer->in});
      add_tensor(absl::StrCat(layer->name, ".bias"), {layer->out});
    }
    nlohmann::ordered_json manifest;
    manifest["format"] = kFormat;
    if (src.bits.has_value()) manifest["arch_inputs"] = weights_->arch_inputs;
    manifest["input_size"] = weights_->input_size;
    manifest["tensors"] = std::move(tensors);
    manifest["total_floats"] = offset;
    manifest["content_fnv1a64"] = absl::StrFormat("%016x", weights_->content_hash);
    return manifest.dump(1) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write the manifest: ", e.what()));
  }
}

std::string MlpPredictor::RawFloat32Bytes() const { return CanonicalBytes(weights_->source); }

absl::Status MlpPredictor::WriteRawFloat32(const std::string& weights_path,
                                           const std::string& manifest_path) const {
  if (weights_path == manifest_path) {
    return absl::InvalidArgumentError(
        absl::StrCat("the weights file and the manifest are both ", weights_path));
  }
  ASSIGN_OR_RETURN(const std::string manifest_text, ManifestJson());
  // Both files are on disk before either replaces its old version.
  ASSIGN_OR_RETURN(const std::string weights_temp,
                   StageFile(weights_path, RawFloat32Bytes(), "weights file"));
  const absl::StatusOr<std::string> manifest_temp =
      StageFile(manifest_path, manifest_text, "manifest");
  if (!manifest_temp.ok()) {
    ::unlink(weights_temp.c_str());
    return manifest_temp.status();
  }
  if (absl::Status status = CommitFile(weights_temp, weights_path, "weights file"); !status.ok()) {
    ::unlink(weights_temp.c_str());
    ::unlink(manifest_temp->c_str());
    return status;
  }
  if (absl::Status status = CommitFile(*manifest_temp, manifest_path, "manifest"); !status.ok()) {
    ::unlink(manifest_temp->c_str());
    return status;
  }
  return absl::OkStatus();
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

void MlpPredictor::SplitBatch(const FeatureBatch& batch) {
  const int32_t arch_inputs = weights_->arch_inputs;
  const std::vector<int32_t>& indices = batch.indices();
  const std::vector<int32_t>& offsets = batch.offsets();
  Buffers& b = *buffers_;
  b.arch_indices.clear();
  b.bit_indices.clear();
  b.arch_indices.reserve(indices.size());
  b.bit_indices.reserve(indices.size());
  b.arch_offsets.assign(1, 0);
  b.bit_offsets.assign(1, 0);
  for (int sample = 0; sample < batch.size(); ++sample) {
    for (int32_t j = offsets[sample]; j < offsets[sample + 1]; ++j) {
      const int32_t index = indices[j];
      if (index < arch_inputs) {
        b.arch_indices.push_back(index);
      } else {
        b.bit_indices.push_back(index - arch_inputs);
      }
    }
    b.arch_offsets.push_back(static_cast<int32_t>(b.arch_indices.size()));
    b.bit_offsets.push_back(static_cast<int32_t>(b.bit_indices.size()));
  }
}

absl::Status MlpPredictor::Predict(const FeatureBatch& batch, std::vector<float>* accuracies) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  accuracies->resize(batch.size());
  if (batch.size() == 0) return absl::OkStatus();
  if (weights_->bits != nullptr) SplitBatch(batch);
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

void MlpPredictor::ForwardFirst(const FeatureBatch& batch, int begin, int rows, float* y,
                                int y_stride) const {
  const Weights& w = *weights_;
  const bool relu = !w.rest.empty();
  if (w.bits == nullptr) {
    w.first->Forward(batch.indices().data(), batch.offsets().data() + begin, rows, y, y_stride,
                     relu);
    return;
  }
  const Buffers& b = *buffers_;
  w.first->Forward(b.arch_indices.data(), b.arch_offsets.data() + begin, rows, y, y_stride, relu);
  w.bits->ForwardAdd(b.bit_indices.data(), b.bit_offsets.data() + begin, rows, y, y_stride);
}

void MlpPredictor::ForwardBlocked(const FeatureBatch& batch, std::vector<float>* accuracies) {
  const Weights& w = *weights_;
  const int rows = batch.size();
  const int stride = w.stride;
  buffers_->ping.Reserve(static_cast<size_t>(rows) * stride);
  buffers_->pong.Reserve(static_cast<size_t>(rows) * stride);
  float* const ping = buffers_->ping.data();
  float* const pong = buffers_->pong.data();
  float* out = accuracies->data();
  // Every row runs through all layers independently, so each thread takes a contiguous
  // block of rows end to end, with no synchronisation between layers.
  const int64_t rows_per_thread = std::max<int64_t>(
      kMinRowsPerThread, (rows + options_.num_threads - 1) / options_.num_threads);
  at::parallel_for(0, rows, rows_per_thread, [&](int64_t begin, int64_t end) {
    const int n = static_cast<int>(end - begin);
    float* src = ping + begin * stride;
    float* dst = pong + begin * stride;
    ForwardFirst(batch, static_cast<int>(begin), n, src, stride);
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
  ForwardFirst(batch, 0, static_cast<int>(rows), activations[0].data_ptr<float>(),
               w.first->padded_out());
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
    const at::Tensor inputs_tensor =
        at::from_blob(const_cast<float*>(inputs), {batch, input_size()}, at::kFloat);
    at::Tensor x = inputs_tensor.narrow(1, 0, w.arch_inputs);
    for (size_t l = 0; l < w.weight.size(); ++l) {
      x = at::linear(x, w.weight[l], w.bias[l]);
      if (l + 1 < w.weight.size()) x = at::relu(x);
      if (l == 0 && w.bits_weight.defined()) {
        // APQ's branch joins after the first layer's ReLU and has no activation of its own.
        x = x + at::linear(inputs_tensor.narrow(1, w.arch_inputs, bit_inputs()), w.bits_weight,
                           w.bits_bias);
      }
    }
    const at::Tensor result = x.select(1, 0).contiguous();
    std::memcpy(out->data(), result.data_ptr<float>(), batch * sizeof(float));
  } catch (const std::exception& e) {
    return TorchError("PredictDense", e);
  }
  return absl::OkStatus();
}

}  // namespace apq::predictor
