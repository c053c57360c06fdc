// True int8 inference of the layers the exported subnets are made of, on LibTorch's quantized
// CPU engines (Debian's build has QNNPACK and oneDNN; FBGEMM is absent): a conv with its batch
// norm folded in and an optional ReLU6, and the classifier's linear layer. Weights are int8
// per output channel (symmetric: zero point 0, scale max|w_c| / 127); activations are uint8
// per tensor with a scale and zero point. ReLU6 is the fused conv+ReLU with the output scale
// 6 / 255 and zero point 0: the uint8 range then covers exactly [0, 6].
//
// This header is free of LibTorch; the layers themselves (oface/int8_layers_internal.h) are
// for the .cc files of oface/.
#ifndef APQ_OFACE_INT8_LAYERS_H_
#define APQ_OFACE_INT8_LAYERS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace apq::oface {

enum class QuantizedEngine { kQnnpack, kOnednn };

// "qnnpack" or "onednn".
const char* QuantizedEngineName(QuantizedEngine engine);
// INVALID_ARGUMENT naming the choices for another name.
absl::StatusOr<QuantizedEngine> QuantizedEngineFromName(absl::string_view name);
// The engines of this LibTorch build that int8 layers can run on.
std::vector<QuantizedEngine> AvailableQuantizedEngines();

}  // namespace apq::oface

#endif  // APQ_OFACE_INT8_LAYERS_H_
