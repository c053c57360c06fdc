// Keeps the memory of freed tensors in the process for the next ones, for tools that run
// LibTorch. An evaluation batch's activations are tens of MB; glibc serves blocks that large
// with a fresh mmap and returns them on free, so every layer of every batch page-faults its
// output in again (a quarter of a quantized measurement's time, measured with perf). Raising
// the mmap and trim thresholds to 256 MiB serves them from the heap and keeps up to that much
// freed memory per arena for reuse: the peak resident size is unchanged, only kept.
#ifndef APQ_COMMON_TENSOR_MEMORY_H_
#define APQ_COMMON_TENSOR_MEMORY_H_

#include <malloc.h>

namespace apq {

// Call once, early in main(). Returns false if glibc refused either setting (then the
// default behaviour stays, only slower).
inline bool KeepTensorMemoryForReuse() {
  constexpr int kThresholdBytes = 256 << 20;
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kThresholdBytes) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kThresholdBytes) == 1;
  return mmap_set && trim_set;
}

}  // namespace apq

#endif  // APQ_COMMON_TENSOR_MEMORY_H_
