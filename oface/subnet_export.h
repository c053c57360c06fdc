// Extraction of one subnet of a Supernet (oface/supernet.h) into a standalone TorchScript
// module, and its export as a file that a plain LibTorch program loads with torch::jit::load.
//
// The extracted module holds only the active subnet's tensors: depthwise kernels at the chosen
// size (centre crop + learned transform, as the supernet computes them), the first `mid`
// hidden channels, the active depth slots, batch norm with the statistics recalibrated on the
// caller's images. When quantized, the weights are stored already fake-quantized at the
// chosen bits (per output channel, symmetric) and every activation keeps its clipping range
// (a 0-dim buffer `*_alpha`) and its fake quantization (torch.fake_quantize_per_tensor_affine),
// so the module computes what the quantized supernet computes.
//
// The module's forward takes [N, 1, rows, cols] float images with pixels scaled to [0, 1]
// (pixel / 255) and normalises them itself with the training mean and standard deviation
// (oface/fashion_mnist.h); it returns [N, num_classes] logits. Its string attributes `spec`
// and `config` name the spec and hold the subnet's arch JSON (SearchSpace::ToJson).
// This header is free of LibTorch.
//
// Thread safety: none; one thread uses an ExtractedSubnet at a time.
#ifndef APQ_OFACE_SUBNET_EXPORT_H_
#define APQ_OFACE_SUBNET_EXPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/search_space.h"
#include "oface/supernet.h"

namespace apq::oface {

// The latency protocol of the project's CPU measurements (subnets here, single layers in
// oface/layer_profiler.h): `warmup` untimed calls of `run`, then `repeats` calls each timed
// with std::chrono::steady_clock; returns their median in milliseconds (the mean of the middle
// two for an even count). `before_each`, when set, runs untimed before every call of `run`
// (e.g. to put the caches in a known state). Preconditions: warmup >= 0, repeats >= 1.
// Exceptions of `run` and `before_each` propagate.
double MedianLatencyMs(int warmup, int repeats, const std::function<void()>& run,
                       const std::function<void()>& before_each = {});

class ExtractedSubnet {
 public:
  struct Impl;  // Defined in oface/subnet_export_internal.h (holds the torch::jit::Module).
  explicit ExtractedSubnet(std::unique_ptr<Impl> impl);
  ExtractedSubnet(ExtractedSubnet&&) noexcept;
  ExtractedSubnet& operator=(ExtractedSubnet&&) noexcept;
  ~ExtractedSubnet();

  const Genotype& genotype() const;
  bool quantized() const;
  // The quantized engine an int8 export's packed weights need ("qnnpack", "onednn"; the
  // loading program sets it before running the module); empty for a float module.
  const std::string& int8_engine() const;
  // The generated TorchScript source of the module's forward.
  const std::string& source() const;
  // Elements of all stored tensors (weights, batch norm, clipping ranges).
  int64_t num_stored_elements() const;

  // Logits in evaluation mode, [images.count x num_classes] row-major.
  absl::StatusOr<std::vector<float>> Logits(const LabeledImages& images);
  // Fraction of `test` classified correctly; INVALID_ARGUMENT for no images or batch <= 0.
  absl::StatusOr<double> Accuracy(const LabeledImages& test, int batch_size = 250);
  // Latency of one inference at batch 1 at LibTorch's current (process-wide) thread count: the
  // module's forward, without gradients, on a constant [1, channels, size, size] image of the
  // spec's input shape, run back to back and timed by MedianLatencyMs(warmup, repeats).
  // INVALID_ARGUMENT for warmup < 0 or repeats < 1; INTERNAL when the forward fails.
  absl::StatusOr<double> MedianLatencyMs(int warmup, int repeats);
  // Saves the module as TorchScript (torch::jit::Module::save) to `path`, atomically
  // (temporary + rename); UNAVAILABLE naming the file when it cannot be written.
  absl::Status Save(const std::string& path) const;

 private:
  std::unique_ptr<Impl> impl_;
};

// Selects `genotype` in `supernet` (leaving it active, with SetQuantized(quantized)),
// recalibrates batch norm on `calibration` (EvalOptions::calibration_batch_size) and copies
// the subnet out. INVALID_ARGUMENT naming the gene when `genotype` is outside the supernet's
// space, or when there are no calibration images. The result shares no memory with the
// supernet.
absl::StatusOr<ExtractedSubnet> ExtractSubnet(Supernet& supernet, const Genotype& genotype,
                                              bool quantized, const LabeledImages& calibration,
                                              const EvalOptions& options = {});

// The int8 export: `genotype` at its bit policy on the quantization-aware `supernet`, batch
// norm recalibrated on `calibration` as ExtractSubnet does, as a TorchScript module of
// LibTorch's quantized CPU ops (oface/int8_layers.h) for `engine`: the image quantized once,
// every conv with its batch norm folded into per-channel int8 weights (the fake-quantized
// weights' integers, the fold moving into their scales) and its ReLU6 fused, residual
// additions and the average pool in uint8, the classifier an int8 linear layer, and the
// logits dequantized. Each activation takes the scale of the fake quantizer that reads it in
// the supernet, so the module computes the fake-quantized network's function up to the
// roundings of int8 execution (an int32 bias, one requantization per layer, residual inputs
// and pooled features quantized where the supernet keeps them in float). The logits' scale
// comes from the supernet's logits on the calibration images. Runnable by any LibTorch program
// that sets the engine (torch.backends.quantized.engine) before loading it.
// A searched layer may also stay in float (W32A32, in a space with the bit choice 32, e.g.
// fmnist_int8float): it runs its conv (batch norm folded) and ReLU6 in float, and
// the module quantizes and dequantizes where int8 and float layers meet (int8_export.cc says
// where and at which scale). Every other layer pair (W8A32, W4A4, ...) and a stem or tail not
// at 8 bits: FAILED_PRECONDITION naming the first such layer and its pair;
// FAILED_PRECONDITION for an engine this LibTorch lacks; ExtractSubnet's other errors.
absl::StatusOr<ExtractedSubnet> ExtractInt8Subnet(Supernet& supernet, const Genotype& genotype,
                                                  const LabeledImages& calibration,
                                                  QuantizedEngine engine,
                                                  const EvalOptions& options = {});

// Loads a TorchScript file written by ExtractedSubnet::Save with torch::jit::load, as a plain
// LibTorch program would (an int8 module's `quantized_engine` attribute set as LibTorch's
// quantized engine before loading: loading packs its weights for the engine current then, and
// they run on it), and returns its accuracy on `test`. NOT_FOUND when the file is
// missing, DATA_LOSS naming it when it is not a loadable TorchScript module or its output is
// not [N, classes] logits; INVALID_ARGUMENT for no images or batch <= 0.
absl::StatusOr<double> VerifyExport(const std::string& path, const LabeledImages& test,
                                    int batch_size = 250);
// VerifyExport of a file's bytes (as TorchScriptBytes or a file read whole hold them): what a
// program loading those bytes measures. DATA_LOSS and INVALID_ARGUMENT as VerifyExport.
absl::StatusOr<double> VerifyExportBytes(const std::string& bytes, const LabeledImages& test,
                                         int batch_size = 250);

}  // namespace apq::oface

#endif  // APQ_OFACE_SUBNET_EXPORT_H_
