// What the float and the int8 exports of a subnet share (oface/subnet_export.cc,
// oface/int8_export.cc). Internal to oface/ (it includes LibTorch).
#ifndef APQ_OFACE_SUBNET_EXPORT_INTERNAL_H_
#define APQ_OFACE_SUBNET_EXPORT_INTERNAL_H_

#include <torch/script.h>

#include <cstdint>
#include <string>

#include "oface/fashion_mnist.h"
#include "oface/search_space.h"
#include "oface/subnet_export.h"

namespace apq::oface {

struct ExtractedSubnet::Impl {
  torch::jit::Module module{c10::QualifiedName("__torch__.apq.oface.ExtractedSubnet")};
  Genotype genotype;
  bool quantized = false;
  // The int8 export's engine ("qnnpack", "onednn"); empty for a float module.
  std::string int8_engine;
  std::string source;
  int64_t num_stored_elements = 0;
  int input_channels = 0;  // The spec's input shape, for MedianLatencyMs.
  int input_size = 0;
};

namespace export_internal {

// A double as a TorchScript literal that parses back to the same value.
std::string Literal(double value);

// [count, 1, rows, cols] floats, pixel / 255 (the module normalises itself).
torch::Tensor ScaledPixels(const LabeledImages& images);

// Must equal supernet.cc's kBatchNormEps and FakeQuantActivation's step floor.
inline constexpr double kBatchNormEps = 1e-5;
inline constexpr double kAlphaFloor = 1e-3;

}  // namespace export_internal

}  // namespace apq::oface

#endif  // APQ_OFACE_SUBNET_EXPORT_INTERNAL_H_
