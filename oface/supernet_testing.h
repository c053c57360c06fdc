// Test helpers for the supernet: a tiny spec that trains in seconds.
#ifndef APQ_OFACE_SUPERNET_TESTING_H_
#define APQ_OFACE_SUPERNET_TESTING_H_

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "oface/mbconv_spec.h"

namespace apq::oface {

// 28x28x1 -> 4 (3x3, s2) -> first block 4; stages 4/8 s2 of depth 1..2, 8/8 s1 of depth 1..2;
// kernels {3, 5, 7}; mids range(2c, 3c + 4, 4); bits {4, 8}; feature mix 16; 10 classes.
inline MbConvSpec TinySpec() {
  MbConvSpec spec;
  spec.name = "tiny_fmnist";
  spec.input_size = 28;
  spec.input_channels = 1;
  spec.first_conv_channels = 4;
  spec.first_conv_kernel = 3;
  spec.first_conv_stride = 2;
  spec.first_block_channels = 4;
  spec.first_block_kernel = 3;
  spec.first_block_stride = 1;
  spec.stages = {{4, 8, 2, 1, 2}, {8, 8, 1, 1, 2}};
  spec.feature_mix_channels = 16;
  spec.num_classes = 10;
  spec.kernel_sizes = {3, 5, 7};
  spec.min_expand = 2;
  spec.max_expand = 3;
  spec.width_step = 4;
  spec.bit_choices = {4, 8};
  spec.fixed_bits = 8;
  return spec;
}

// TinySpec's network with bits {2, 3, 4, 8}, as fmnist_lowbit is fmnist_mbv2's with lower bits:
// it loads TinySpec's weights by Supernet::LoadWeightsOfSameNetwork.
inline MbConvSpec TinyLowBitSpec() {
  MbConvSpec spec = TinySpec();
  spec.name = "tiny_lowbit";
  spec.bit_choices = {2, 3, 4, 8};
  return spec;
}

// `name` in the test's scratch folder (TEST_TMPDIR, else /tmp).
inline std::string TestTempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

}  // namespace apq::oface

#endif  // APQ_OFACE_SUPERNET_TESTING_H_
