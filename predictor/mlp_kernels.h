// CPU kernels for MLP inference on small batches, free of LibTorch so that they compile
// fast and can be built with their own optimisation flags.
//
// Two layer forms:
//  - GatherLinear: a Linear layer whose input is a 0/1 vector given as the indices of its
//    ones; the output is bias + the sum of the weight columns of the active inputs. It can
//    also add that output to a buffer (a side branch joining the main path).
//  - PackedLinear: a dense Linear layer (y = x W^T + b), as a register-blocked matrix product
//    over weights packed into column panels at construction.
// Both optionally apply ReLU. The instruction set (AVX-512, AVX2+FMA or baseline SSE) is
// chosen at run time from what the CPU supports, or forced per layer for tests.
//
// Activation buffers handed to the kernels must be 64-byte aligned with a row stride of at
// least `padded_out()` floats that is a multiple of 16 (use PaddedWidth and AlignedBuffer).
// The padding columns of an output are written as zeros.
#ifndef APQ_PREDICTOR_MLP_KERNELS_H_
#define APQ_PREDICTOR_MLP_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace apq::predictor::mlp_kernels {

enum class Isa { kBaseline, kAvx2, kAvx512 };

// The widest instruction set this CPU supports among those compiled in.
Isa BestIsa();
const char* IsaName(Isa isa);
// True when this CPU can run kernels built for `isa`.
bool IsaSupported(Isa isa);

// The smallest row stride (in floats) that holds `width` outputs of a layer built for `isa`.
int PaddedWidth(int width, Isa isa);

// A zero-initialised, 64-byte aligned float array.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size) { Resize(size); }

  // Discards the contents; the new contents are zeros.
  void Resize(size_t size);
  // Grows (discarding the contents) only when `size` exceeds the current size.
  void Reserve(size_t size) {
    if (size > size_) Resize(size);
  }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data_;
  size_t size_ = 0;
};

// A dense Linear layer packed for the register-blocked kernel. Immutable after construction.
class PackedLinear {
 public:
  // `weight` is [out, in] row-major (PyTorch layout), `bias` is [out].
  PackedLinear(const float* weight, const float* bias, int in, int out, Isa isa);

  int in() const { return in_; }
  int out() const { return out_; }
  int padded_out() const { return padded_out_; }
  Isa isa() const { return isa_; }

  // For r in [0, rows): y[r*y_stride + o] = act(b[o] + sum_i x[r*x_stride + i] W[o][i]).
  // `x` and `y` must not overlap.
  void Forward(const float* x, int rows, int x_stride, float* y, int y_stride, bool relu) const;

 private:
  int in_;
  int out_;
  int padded_out_;
  Isa isa_;
  AlignedBuffer panels_;  // [padded_out / panel width][in][panel width]
  AlignedBuffer bias_;    // [padded_out], zeros past `out`
};

// A Linear layer over a 0/1 input given sparsely. Immutable after construction.
class GatherLinear {
 public:
  // `weight` is [out, in] row-major (PyTorch layout), `bias` is [out].
  GatherLinear(const float* weight, const float* bias, int in, int out, Isa isa);

  int in() const { return in_; }
  int out() const { return out_; }
  int padded_out() const { return padded_out_; }
  Isa isa() const { return isa_; }

  // For r in [0, rows): y[r*y_stride + o] = act(b[o] + sum_{j in [offsets[r], offsets[r+1])}
  // W[o][indices[j]]). Every index must already be known to lie in [0, in()).
  void Forward(const int32_t* indices, const int32_t* offsets, int rows, float* y, int y_stride,
               bool relu) const;
  // Like Forward without activation, but adds to `y`: for r in [0, rows),
  // y[r*y_stride + o] += b[o] + sum_{j in [offsets[r], offsets[r+1])} W[o][indices[j]].
  // The padding columns of `y` keep their values (zeros stay zeros).
  void ForwardAdd(const int32_t* indices, const int32_t* offsets, int rows, float* y,
                  int y_stride) const;

 private:
  void Run(const int32_t* indices, const int32_t* offsets, int rows, float* y, int y_stride,
           bool relu, bool accumulate) const;

  int in_;
  int out_;
  int padded_out_;
  Isa isa_;
  AlignedBuffer columns_;  // [in][padded_out]: the transposed weight, one row per input
  AlignedBuffer bias_;     // [padded_out]
};

}  // namespace apq::predictor::mlp_kernels

#endif  // APQ_PREDICTOR_MLP_KERNELS_H_
