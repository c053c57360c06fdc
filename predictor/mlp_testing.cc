#include "predictor/mlp_testing.h"

#include <cmath>

namespace apq::predictor::mlp_testing {

MlpWeights::Linear RandomLinear(int in, int out, std::mt19937* rng) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  std::uniform_real_distribution<float> uniform(-bound, bound);
  MlpWeights::Linear linear;
  linear.in = in;
  linear.out = out;
  linear.weight.resize(static_cast<size_t>(in) * out);
  linear.bias.resize(out);
  for (float& value : linear.weight) value = uniform(*rng);
  for (float& value : linear.bias) value = uniform(*rng);
  return linear;
}

MlpWeights RandomApqWeights(uint32_t seed) {
  std::mt19937 rng(seed);
  MlpWeights weights;
  weights.name = "apq_predictor";
  weights.layers.push_back(RandomLinear(kApqArchInputs, kApqHidden, &rng));
  weights.layers.push_back(RandomLinear(kApqHidden, kApqHidden, &rng));
  weights.layers.push_back(RandomLinear(kApqHidden, kApqHidden, &rng));
  weights.layers.push_back(RandomLinear(kApqHidden, 1, &rng));
  weights.bits = RandomLinear(kApqBitInputs, kApqHidden, &rng);
  return weights;
}

FeatureBatch RandomApqBatch(int size, std::mt19937* rng) {
  // Input channels of each layer: the first block of a stage takes the previous stage's width.
  constexpr int kCin[kApqLayers] = {16, 24, 24, 24, 24, 40, 40,  40,  40,  80, 80,
                                    80, 80, 96, 96, 96, 96, 192, 192, 192, 192};
  std::uniform_int_distribution<int> three(0, 2);
  FeatureBatch batch;
  for (int s = 0; s < size; ++s) {
    const int depth[6] = {2 + three(*rng), 2 + three(*rng), 2 + three(*rng),
                          2 + three(*rng), 2 + three(*rng), 1};
    std::vector<int32_t> kernels;
    std::vector<int32_t> mids;
    std::vector<int32_t> bits[4];
    int mid_slot = 3 * kApqLayers;
    for (int i = 0; i < kApqLayers; ++i) {
      const int widths = (2 * kCin[i] + 15) / 8;
      if (i % 4 < depth[i / 4]) {
        kernels.push_back(3 * i + three(*rng));
        mids.push_back(mid_slot + std::uniform_int_distribution<int>(0, widths - 1)(*rng));
        for (int q = 0; q < 4; ++q) {
          bits[q].push_back(kApqArchInputs + 3 * (q * kApqLayers + i) + three(*rng));
        }
      }
      mid_slot += widths;
    }
    std::vector<int32_t>& indices = *batch.mutable_indices();
    for (const std::vector<int32_t>* block :
         {&kernels, &mids, &bits[0], &bits[1], &bits[2], &bits[3]}) {
      indices.insert(indices.end(), block->begin(), block->end());
    }
    batch.EndSample();
  }
  return batch;
}

std::vector<float> Densify(const FeatureBatch& batch, int inputs) {
  std::vector<float> dense(static_cast<size_t>(batch.size()) * inputs, 0.0f);
  for (int s = 0; s < batch.size(); ++s) {
    for (int j = batch.offsets()[s]; j < batch.offsets()[s + 1]; ++j) {
      dense[static_cast<size_t>(s) * inputs + batch.indices()[j]] = 1.0f;
    }
  }
  return dense;
}

}  // namespace apq::predictor::mlp_testing
