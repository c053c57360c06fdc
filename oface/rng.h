// A small, portable pseudo-random generator (xoshiro256**, seeded by splitmix64).
// Search determinism depends on it: the same seed gives the same stream on every
// platform and standard library, and its whole state can be saved and restored.
#ifndef APQ_OFACE_RNG_H_
#define APQ_OFACE_RNG_H_

#include <array>
#include <cstdint>

namespace apq::oface {

class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& word : state_) {
      // splitmix64: spreads any seed (including 0) over the whole state.
      x += 0x9E3779B97F4A7C15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      word = z ^ (z >> 31);
    }
  }

  uint64_t Next() {
    const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = RotateLeft(state_[3], 45);
    return result;
  }

  // Uniform integer in [0, bound); bound must be > 0. Lemire's multiply-shift with rejection,
  // so there is no modulo bias.
  uint32_t Uniform(uint32_t bound) {
    uint64_t product = static_cast<uint64_t>(static_cast<uint32_t>(Next() >> 32)) * bound;
    auto low = static_cast<uint32_t>(product);
    if (low < bound) {
      const uint32_t threshold = static_cast<uint32_t>(-bound) % bound;
      while (low < threshold) {
        product = static_cast<uint64_t>(static_cast<uint32_t>(Next() >> 32)) * bound;
        low = static_cast<uint32_t>(product);
      }
    }
    return static_cast<uint32_t>(product >> 32);
  }

  // Uniform double in [0, 1) with 53 random bits.
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  bool Bernoulli(double probability) { return UniformDouble() < probability; }

  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  static uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  State state_{};
};

}  // namespace apq::oface

#endif  // APQ_OFACE_RNG_H_
