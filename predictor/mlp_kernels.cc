#include "predictor/mlp_kernels.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace apq::predictor::mlp_kernels {
namespace {

// GCC vector extensions: the compiler maps them to SSE, AVX or AVX-512 registers according
// to the target of the function they are inlined into.
typedef float V4 __attribute__((vector_size(16)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));

#define APQ_ALWAYS_INLINE inline __attribute__((always_inline))

// Register blocking per instruction set: a micro-kernel keeps kRows x kVecs accumulators
// (rows of the batch x vectors of output columns) in registers; a panel is kVecs vectors
// wide. AVX-512 has 32 vector registers, AVX2 and SSE 16.
struct Avx512Config {
  using V = V16;
  static constexpr int kVecs = 2;
  static constexpr int kRows = 12;
};
struct Avx2Config {
  using V = V8;
  static constexpr int kVecs = 2;
  static constexpr int kRows = 6;
};
struct BaselineConfig {
  using V = V4;
  static constexpr int kVecs = 4;
  static constexpr int kRows = 2;
};

template <class Config>
constexpr int PanelWidth() {
  return Config::kVecs * static_cast<int>(sizeof(typename Config::V) / sizeof(float));
}

int PanelWidth(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return PanelWidth<Avx512Config>();
    case Isa::kAvx2:
      return PanelWidth<Avx2Config>();
    case Isa::kBaseline:
      break;
  }
  return PanelWidth<BaselineConfig>();
}

struct GemmArgs {
  const float* x;
  int rows;
  int x_stride;
  int in;
  const float* panels;
  const float* bias;
  int padded_out;
  float* y;
  int y_stride;
  bool relu;
};

// y[r][0..NR) = act(bias[0..NR) + sum_i x[r][i] panel[i][0..NR)) for r < kRows.
template <class V, int kVecs, int kRows>
APQ_ALWAYS_INLINE void MicroKernel(const float* x, int x_stride, const float* panel, int in,
                                   const float* bias, bool relu, float* y, int y_stride) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  constexpr int kWidth = kVecs * kLanes;
  V acc[kRows][kVecs];
#pragma GCC unroll 32
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v) acc[r][v] = *reinterpret_cast<const V*>(bias + v * kLanes);
  }
  for (int i = 0; i < in; ++i) {
    V w[kVecs];
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v) {
      w[v] = *reinterpret_cast<const V*>(panel + static_cast<size_t>(i) * kWidth + v * kLanes);
    }
#pragma GCC unroll 32
    for (int r = 0; r < kRows; ++r) {
      const float xs = x[static_cast<size_t>(r) * x_stride + i];
#pragma GCC unroll 8
      for (int v = 0; v < kVecs; ++v) acc[r][v] += xs * w[v];
    }
  }
  const V zero = {};
#pragma GCC unroll 32
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v) {
      V out = acc[r][v];
      if (relu) out = out > zero ? out : zero;
      *reinterpret_cast<V*>(y + static_cast<size_t>(r) * y_stride + v * kLanes) = out;
    }
  }
}

// Runs the micro-kernel for a remainder of `rows` < kRows rows, with `rows` made a constant.
template <class V, int kVecs, int kRows>
APQ_ALWAYS_INLINE void RemainderKernel(int rows, const float* x, int x_stride, const float* panel,
                                       int in, const float* bias, bool relu, float* y,
                                       int y_stride) {
  if constexpr (kRows > 0) {
    if (rows == kRows) {
      MicroKernel<V, kVecs, kRows>(x, x_stride, panel, in, bias, relu, y, y_stride);
    } else {
      RemainderKernel<V, kVecs, kRows - 1>(rows, x, x_stride, panel, in, bias, relu, y, y_stride);
    }
  }
}

template <class Config>
APQ_ALWAYS_INLINE void Gemm(const GemmArgs& a) {
  using V = typename Config::V;
  constexpr int kWidth = PanelWidth<Config>();
  // Panels outermost: each panel is read from memory once and then reused from L1 for every
  // row block; the batch's rows (a few tens of KB) stay in L2.
  for (int p = 0; p < a.padded_out / kWidth; ++p) {
    const float* panel = a.panels + static_cast<size_t>(p) * a.in * kWidth;
    const float* bias = a.bias + p * kWidth;
    int r = 0;
    for (; r + Config::kRows <= a.rows; r += Config::kRows) {
      MicroKernel<V, Config::kVecs, Config::kRows>(
          a.x + static_cast<size_t>(r) * a.x_stride, a.x_stride, panel, a.in, bias, a.relu,
          a.y + static_cast<size_t>(r) * a.y_stride + p * kWidth, a.y_stride);
    }
    if (r < a.rows) {
      RemainderKernel<V, Config::kVecs, Config::kRows - 1>(
          a.rows - r, a.x + static_cast<size_t>(r) * a.x_stride, a.x_stride, panel, a.in, bias,
          a.relu, a.y + static_cast<size_t>(r) * a.y_stride + p * kWidth, a.y_stride);
    }
  }
}

struct GatherArgs {
  const float* columns;
  const float* bias;
  int padded_out;
  const int32_t* indices;
  const int32_t* offsets;
  int rows;
  float* y;
  int y_stride;
  bool relu;
  // Adds the (activated) sums to what `y` holds instead of overwriting it.
  bool accumulate;
};

// Sums whole rows of `columns` in register blocks of kBlock vectors.
template <class Config>
APQ_ALWAYS_INLINE void Gather(const GatherArgs& a) {
  using V = typename Config::V;
  constexpr int kLanes = sizeof(V) / sizeof(float);
  constexpr int kBlock = 4;
  const V zero = {};
  for (int r = 0; r < a.rows; ++r) {
    const int32_t* begin = a.indices + a.offsets[r];
    const int32_t* end = a.indices + a.offsets[r + 1];
    float* y = a.y + static_cast<size_t>(r) * a.y_stride;
    int o = 0;
    for (; o + kBlock * kLanes <= a.padded_out; o += kBlock * kLanes) {
      V acc[kBlock];
#pragma GCC unroll 8
      for (int v = 0; v < kBlock; ++v) {
        acc[v] = *reinterpret_cast<const V*>(a.bias + o + v * kLanes);
      }
      for (const int32_t* it = begin; it != end; ++it) {
        const float* column = a.columns + static_cast<size_t>(*it) * a.padded_out + o;
#pragma GCC unroll 8
        for (int v = 0; v < kBlock; ++v) acc[v] += *reinterpret_cast<const V*>(column + v * kLanes);
      }
#pragma GCC unroll 8
      for (int v = 0; v < kBlock; ++v) {
        V out = acc[v];
        if (a.relu) out = out > zero ? out : zero;
        V* target = reinterpret_cast<V*>(y + o + v * kLanes);
        *target = a.accumulate ? *target + out : out;
      }
    }
    for (; o < a.padded_out; o += kLanes) {
      V acc = *reinterpret_cast<const V*>(a.bias + o);
      for (const int32_t* it = begin; it != end; ++it) {
        acc += *reinterpret_cast<const V*>(a.columns + static_cast<size_t>(*it) * a.padded_out + o);
      }
      if (a.relu) acc = acc > zero ? acc : zero;
      V* target = reinterpret_cast<V*>(y + o);
      *target = a.accumulate ? *target + acc : acc;
    }
  }
}

__attribute__((target("avx512f"))) void GemmAvx512(const GemmArgs& a) { Gemm<Avx512Config>(a); }
__attribute__((target("avx2,fma"))) void GemmAvx2(const GemmArgs& a) { Gemm<Avx2Config>(a); }
void GemmBaseline(const GemmArgs& a) { Gemm<BaselineConfig>(a); }

__attribute__((target("avx512f"))) void GatherAvx512(const GatherArgs& a) {
  Gather<Avx512Config>(a);
}
__attribute__((target("avx2,fma"))) void GatherAvx2(const GatherArgs& a) { Gather<Avx2Config>(a); }
void GatherBaseline(const GatherArgs& a) { Gather<BaselineConfig>(a); }

int RoundUp(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

}  // namespace

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kBaseline:
      break;
  }
  return true;
}

Isa BestIsa() {
  static const Isa best = [] {
    if (IsaSupported(Isa::kAvx512)) return Isa::kAvx512;
    if (IsaSupported(Isa::kAvx2)) return Isa::kAvx2;
    return Isa::kBaseline;
  }();
  return best;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2+fma";
    case Isa::kBaseline:
      break;
  }
  return "baseline";
}

int PaddedWidth(int width, Isa isa) { return RoundUp(width, PanelWidth(isa)); }

void AlignedBuffer::Resize(size_t size) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  const size_t bytes = std::max<size_t>(64, (size * sizeof(float) + 63) / 64 * 64);
  void* memory = std::aligned_alloc(64, bytes);
  if (memory == nullptr) throw std::bad_alloc();
  std::memset(memory, 0, bytes);
  data_.reset(static_cast<float*>(memory));
  size_ = size;
}

PackedLinear::PackedLinear(const float* weight, const float* bias, int in, int out, Isa isa)
    : in_(in), out_(out), padded_out_(PaddedWidth(out, isa)), isa_(isa) {
  const int width = PanelWidth(isa);
  panels_.Resize(static_cast<size_t>(padded_out_) * in);
  bias_.Resize(padded_out_);
  for (int o = 0; o < out; ++o) {
    float* panel = panels_.data() + static_cast<size_t>(o / width) * in * width;
    for (int i = 0; i < in; ++i) {
      panel[static_cast<size_t>(i) * width + o % width] = weight[static_cast<size_t>(o) * in + i];
    }
    bias_.data()[o] = bias[o];
  }
}

void PackedLinear::Forward(const float* x, int rows, int x_stride, float* y, int y_stride,
                           bool relu) const {
  const GemmArgs args{x,           rows, x_stride, in_, panels_.data(), bias_.data(),
                      padded_out_, y,    y_stride, relu};
  switch (isa_) {
    case Isa::kAvx512:
      GemmAvx512(args);
      return;
    case Isa::kAvx2:
      GemmAvx2(args);
      return;
    case Isa::kBaseline:
      break;
  }
  GemmBaseline(args);
}

GatherLinear::GatherLinear(const float* weight, const float* bias, int in, int out, Isa isa)
    : in_(in), out_(out), padded_out_(PaddedWidth(out, isa)), isa_(isa) {
  columns_.Resize(static_cast<size_t>(in) * padded_out_);
  bias_.Resize(padded_out_);
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) {
      columns_.data()[static_cast<size_t>(i) * padded_out_ + o] =
          weight[static_cast<size_t>(o) * in + i];
    }
    bias_.data()[o] = bias[o];
  }
}

void GatherLinear::Run(const int32_t* indices, const int32_t* offsets, int rows, float* y,
                       int y_stride, bool relu, bool accumulate) const {
  const GatherArgs args{columns_.data(), bias_.data(), padded_out_, indices, offsets, rows, y,
                        y_stride,        relu,         accumulate};
  switch (isa_) {
    case Isa::kAvx512:
      GatherAvx512(args);
      return;
    case Isa::kAvx2:
      GatherAvx2(args);
      return;
    case Isa::kBaseline:
      break;
  }
  GatherBaseline(args);
}

void GatherLinear::Forward(const int32_t* indices, const int32_t* offsets, int rows, float* y,
                           int y_stride, bool relu) const {
  Run(indices, offsets, rows, y, y_stride, relu, /*accumulate=*/false);
}

void GatherLinear::ForwardAdd(const int32_t* indices, const int32_t* offsets, int rows, float* y,
                              int y_stride) const {
  Run(indices, offsets, rows, y, y_stride, /*relu=*/false, /*accumulate=*/true);
}

}  // namespace apq::predictor::mlp_kernels
