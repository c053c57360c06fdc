// The arithmetic peak of one core for float32 multiply-adds: independent AVX-512 (and AVX2)
// FMA chains, enough of them to hide the instruction latency, timed over many iterations.
// The ceiling that predictor_bench's GFLOP/s figures are compared with.
//
// Usage: bazel run -c opt //bench:fma_peak_bench
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

constexpr int kIterations = 50'000'000;
constexpr int kRepeats = 5;

// 16 chains of 16-float FMAs: 16 x 16 x 2 FLOP per iteration.
__attribute__((target("avx512f"))) float Avx512Chains(int iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m512 scale = _mm512_set1_ps(0.999999f);
  const __m512 shift = _mm512_set1_ps(1e-7f);
  for (int n = 0; n < iterations; ++n) {
    for (__m512& a : acc) a = _mm512_fmadd_ps(a, scale, shift);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

// 12 chains of 8-float FMAs (AVX2 has 16 registers; two hold the constants).
__attribute__((target("avx2,fma"))) float Avx2Chains(int iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m256 scale = _mm256_set1_ps(0.999999f);
  const __m256 shift = _mm256_set1_ps(1e-7f);
  for (int n = 0; n < iterations; ++n) {
    for (__m256& a : acc) a = _mm256_fmadd_ps(a, scale, shift);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

template <typename Body>
void Report(const char* name, double flops_per_iteration, Body body) {
  double best = 1e30;
  float sink = 0;
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    sink += body(kIterations);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf("%-8s %7.1f GFLOP/s on one core (checksum %g)\n", name,
              flops_per_iteration * kIterations / best * 1e-9, static_cast<double>(sink));
}

}  // namespace

int main() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    Report("avx2", 12 * 8 * 2, Avx2Chains);
  }
  if (__builtin_cpu_supports("avx512f")) Report("avx512", 16 * 16 * 2, Avx512Chains);
  return 0;
}
