// Test records for predictor trainers.
#ifndef APQ_PREDICTOR_TRAINING_TESTING_H_
#define APQ_PREDICTOR_TRAINING_TESTING_H_

#include <cstdint>
#include <random>
#include <vector>

#include "predictor/training_data.h"

namespace apq::predictor {

// A learnable synthetic task: 3 groups of 4 one-hot choices (12 architecture inputs) and 2
// groups of 3 bit choices (6 bit inputs); accuracy is additive in the choices plus noise.
inline std::vector<TrainingSample> SyntheticSamples(int count, bool with_bits, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.002);
  const double arch_effect[3][4] = {
      {0.0, 0.01, 0.02, 0.03}, {0.0, 0.02, 0.01, 0.0}, {0.03, 0.0, 0.01, 0.02}};
  const double bit_effect[3] = {-0.04, -0.01, 0.0};
  std::vector<TrainingSample> samples;
  for (int i = 0; i < count; ++i) {
    TrainingSample sample;
    double accuracy = 0.85;
    for (int group = 0; group < 3; ++group) {
      const int choice = static_cast<int>(rng() % 4);
      sample.features.push_back(group * 4 + choice);
      accuracy += arch_effect[group][choice];
    }
    if (with_bits) {
      for (int group = 0; group < 2; ++group) {
        const int choice = static_cast<int>(rng() % 3);
        sample.features.push_back(12 + group * 3 + choice);
        accuracy += bit_effect[choice];
      }
    }
    sample.accuracy = accuracy + noise(rng);
    samples.push_back(sample);
  }
  return samples;
}

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_TRAINING_TESTING_H_
