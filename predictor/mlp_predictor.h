// An accuracy predictor that is a stack of Linear layers with ReLU between them (OFA's
// MobileNetV3 accuracy predictor: 128-400-400-400-1), loaded from raw float32 weights.
//
// Inference: the first layer is a gather-and-sum of weight columns over the active inputs
// (the input is 0/1), the remaining layers are batched matrix products, either with the
// register-blocked kernels of mlp_kernels.h (default, fastest) or with LibTorch's addmm.
// PredictDense is the plain LibTorch forward of the whole MLP on dense inputs: the reference
// semantics the fast paths are tested against.
//
// LibTorch headers stay out of this header on purpose (see accuracy_predictor.h).
#ifndef APQ_PREDICTOR_MLP_PREDICTOR_H_
#define APQ_PREDICTOR_MLP_PREDICTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"

namespace apq::predictor {

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

  // Loads a raw little-endian float32 file whose tensors the JSON manifest lists as
  // {"name", "shape", "offset_floats", "count"}, named "<k>.weight" ([out, in]) and
  // "<k>.bias" ([out]); layers run in the manifest's order and the last one has one output.
  // NOT_FOUND for a missing file; INVALID_ARGUMENT for bad options or an inconsistent
  // manifest (shapes, chaining, names); DATA_LOSS when the weights file does not match the
  // manifest or holds NaN/inf. Messages name the file and the tensor.
  static absl::StatusOr<std::unique_ptr<MlpPredictor>> LoadRawFloat32(
      const std::string& weights_path, const std::string& manifest_path, const Options& options);

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

  // "<weights file stem>-<16 hex digits of the 64-bit FNV-1a hash of the weights file>".
  const std::string& version() const;
  // Input width of each layer followed by the output width of the last, e.g. 128,400,400,400,1.
  std::vector<int> layer_sizes() const;
  const Options& options() const { return options_; }
  // The kernel Predict runs, e.g. "blocked-avx512" or "libtorch-addmm".
  std::string kernel_name() const;

 private:
  struct Weights;
  struct Buffers;

  MlpPredictor(std::shared_ptr<const Weights> weights, const Options& options);

  absl::Status ValidateBatch(const FeatureBatch& batch);
  void ForwardBlocked(const FeatureBatch& batch, std::vector<float>* accuracies);
  void ForwardLibTorch(const FeatureBatch& batch, std::vector<float>* accuracies);

  std::shared_ptr<const Weights> weights_;
  Options options_;
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_MLP_PREDICTOR_H_
