// An accuracy predictor that is a stack of Linear layers with ReLU between them, loaded from
// raw float32 weights or built from weights in memory:
//  - OFA's MobileNetV3 accuracy predictor: 128-400-400-400-1;
//  - APQ's quantization-aware predictor: the first layer reads the first `arch_inputs`
//    inputs (520 architecture features) and an optional "bits" Linear branch reads the rest
//    (252 bit-width features); the branch's output is added AFTER the first layer's ReLU:
//      h1 = ReLU(W1 x[0, arch_inputs) + b1) + (Wb x[arch_inputs, input_size) + bb),
//    then 400-400 ReLU layers and a 400->1 output (mit-han-lab/apq, utils/accuracy_predictor.py,
//    where the branch is called `quantize_fc`).
//
// Inference: the first layer and the branch are gather-and-sums of weight columns over the
// active inputs (the input is 0/1), the remaining layers are batched matrix products, either
// with the register-blocked kernels of mlp_kernels.h (default, fastest) or with LibTorch's
// addmm. PredictDense is the plain LibTorch forward of the whole network on dense inputs: the
// reference semantics the fast paths are tested against.
//
// LibTorch headers stay out of this header on purpose (see accuracy_predictor.h).
#ifndef APQ_PREDICTOR_MLP_PREDICTOR_H_
#define APQ_PREDICTOR_MLP_PREDICTOR_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"

namespace apq::predictor {

// The weights of an MlpPredictor in PyTorch's layouts, e.g. to build a predictor from
// trained weights (MlpPredictor::Create) or to take them out for fine-tuning
// (MlpPredictor::ExportWeights).
struct MlpWeights {
  struct Linear {
    // Prefix of the layer's tensors in a manifest: "<name>.weight", "<name>.bias". For a layer,
    // empty means "<2k>" for layers[k] (nn.Sequential's index with a ReLU between layers, as
    // in OFA's file); "bits" is reserved for the branch, whose name is always "bits".
    std::string name;
    int in = 0;
    int out = 0;
    std::vector<float> weight;  // [out, in], row-major
    std::vector<float> bias;    // [out]
  };

  // Prefix of MlpPredictor::version(); LoadRawFloat32 sets the weights file's stem.
  std::string name = "mlp";
  // Run in order with ReLU between them; layers[0] reads inputs [0, layers[0].in), each later
  // layer the previous one's outputs; the last layer has one output.
  std::vector<Linear> layers;
  // The optional branch: reads inputs [layers[0].in, layers[0].in + bits->in), has
  // layers[0].out outputs, which are added to layers[0]'s after its ReLU. Needs at least two
  // layers (the first one must be hidden).
  std::optional<Linear> bits;
};

class MlpPredictor : public AccuracyPredictor {
 public:
  enum class Kernel {
    // mlp_kernels' register-blocked kernels for the widest instruction set of this CPU.
    kBlocked,
    // torch::addmm_out into reused tensors for every layer after the first.
    kLibTorch,
  };

  struct Options {
    // LibTorch intra-op threads; Predict splits a batch over at most this many. Loading sets
    // LibTorch's thread count, which is process-global: the last load wins for the whole
    // process, and a Predict never uses more threads than the global setting either.
    int num_threads = 1;
    Kernel kernel = Kernel::kBlocked;
  };

  // Loads a raw little-endian float32 file described by a JSON manifest:
  //   {"tensors": [{"name", "shape", "offset_floats", "count"}, ...],
  //    "total_floats": optional, the file's size in floats (default: the end of the last tensor),
  //    "arch_inputs": optional, the inputs the first layer reads; required with a branch,
  //    "input_size": optional, checked against arch_inputs + the branch's inputs,
  //    "content_fnv1a64": optional, 16 hex digits of the content hash (see version())}.
  // Tensors are named "<layer>.weight" ([out, in]) and "<layer>.bias" ([out]); layers run in
  // the order their names first appear and the last one has one output. The layer named
  // "bits", if any, is the branch (see MlpWeights::bits).
  // NOT_FOUND for a missing file; INVALID_ARGUMENT for bad options or an inconsistent
  // manifest (shapes, chaining, names, arch_inputs/input_size); DATA_LOSS when the weights
  // file does not match the manifest (size, content hash) or holds NaN/inf. Messages name the
  // file and the tensor.
  static absl::StatusOr<std::unique_ptr<MlpPredictor>> LoadRawFloat32(
      const std::string& weights_path, const std::string& manifest_path, const Options& options);

  // LoadRawFloat32 from the two files' contents held in memory: `name` is the weights' name
  // (version()'s prefix), `weights_path` and `manifest_path` name the contents in errors.
  static absl::StatusOr<std::unique_ptr<MlpPredictor>> FromRawFloat32(
      const std::string& weights_bytes, const std::string& manifest_text, const std::string& name,
      const std::string& weights_path, const std::string& manifest_path, const Options& options);
  // A predictor over weights held in memory. INVALID_ARGUMENT, naming the tensor, for what
  // LoadRawFloat32 rejects (bad options, shapes, chaining, names, NaN/inf) and for a weight or
  // bias array whose length disagrees with `in` and `out`.
  static absl::StatusOr<std::unique_ptr<MlpPredictor>> Create(MlpWeights weights,
                                                              const Options& options);

  ~MlpPredictor() override;
  MlpPredictor(const MlpPredictor&) = delete;
  MlpPredictor& operator=(const MlpPredictor&) = delete;

  int input_size() const override;

  // INVALID_ARGUMENT naming the sample and the index for an index outside
  // [0, input_size()) or an index listed twice in a sample. Indices need not be sorted.
  absl::Status Predict(const FeatureBatch& batch, std::vector<float>* accuracies) override;

  std::unique_ptr<AccuracyPredictor> Clone() const override;

  // Dense LibTorch forward: `inputs` is [batch, input_size()] row-major; writes one output per
  // sample to `out`. Thread-safe (uses no buffers of this object).
  absl::Status PredictDense(const float* inputs, int batch, std::vector<float>* out) const;

  // Writes the weights as LoadRawFloat32 reads them: the tensors in canonical order (per
  // layer weight then bias, the branch right after the first layer) with no gaps, and a
  // manifest with "total_floats", "input_size", "content_fnv1a64" and, with a branch,
  // "arch_inputs". Both files are first written in full to temporary files in their folders
  // and flushed to disk, then renamed over their destinations, weights file first: an error
  // while writing replaces neither file, and a crash leaves each file either old or new, never
  // partly written. A crash between the two renames leaves a manifest whose content hash
  // disagrees with the weights file, which LoadRawFloat32 rejects with DATA_LOSS. Loading the
  // files back gives a predictor that predicts bit-identically, with the same version() when
  // the weights file's stem is `ExportWeights().name`. Errors carry the errno's status code
  // (NOT_FOUND for a missing folder, PERMISSION_DENIED, RESOURCE_EXHAUSTED for a full disk);
  // INVALID_ARGUMENT when both paths are the same. Thread-safe.
  absl::Status WriteRawFloat32(const std::string& weights_path,
                               const std::string& manifest_path) const;

  // What WriteRawFloat32 writes, in memory: the manifest and the weights file's bytes.
  absl::StatusOr<std::string> ManifestJson() const;
  std::string RawFloat32Bytes() const;
  // A copy of the weights, with the names of the manifest (or the defaults of Create).
  // Create(ExportWeights(), options()) gives an equal predictor with the same version().
  MlpWeights ExportWeights() const;

  // "<name>-<16 hex digits of the 64-bit FNV-1a hash of the weights' bytes in the order
  // WriteRawFloat32 writes them>", where name is the weights file's stem (LoadRawFloat32) or
  // MlpWeights::name (Create). For a file in canonical order (such as OFA's), this is the
  // hash of the file.
  const std::string& version() const;
  // Input width of each layer followed by the output width of the last, e.g. 128,400,400,400,1;
  // the first entry is arch_inputs(), which without a branch is input_size().
  std::vector<int> layer_sizes() const;
  // The inputs the first layer reads: [0, arch_inputs()).
  int arch_inputs() const;
  // The inputs the branch reads: [arch_inputs(), input_size()); 0 without a branch.
  int bit_inputs() const;
  const Options& options() const { return options_; }
  // The kernel Predict runs, e.g. "blocked-avx512" or "libtorch-addmm".
  std::string kernel_name() const;

 private:
  struct Weights;
  struct Buffers;

  MlpPredictor(std::shared_ptr<const Weights> weights, const Options& options);

  // Builds a predictor from weights that passed validation.
  static absl::StatusOr<std::unique_ptr<MlpPredictor>> Build(MlpWeights weights,
                                                             const Options& options);

  absl::Status ValidateBatch(const FeatureBatch& batch);
  // Splits the batch's indices into the first layer's and the branch's (shifted to start at 0).
  void SplitBatch(const FeatureBatch& batch);
  // The first layer (and the branch) for rows [begin, begin + rows) of the batch, into `y`.
  void ForwardFirst(const FeatureBatch& batch, int begin, int rows, float* y, int y_stride) const;
  void ForwardBlocked(const FeatureBatch& batch, std::vector<float>* accuracies);
  void ForwardLibTorch(const FeatureBatch& batch, std::vector<float>* accuracies);

  std::shared_ptr<const Weights> weights_;
  Options options_;
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_MLP_PREDICTOR_H_
