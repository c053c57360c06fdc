// Deterministic pseudo-random MLP weights and APQ-encoded inputs, for the tests and benchmarks
// of MlpPredictor. APQ never published its quantization-aware predictor's weights, so its
// shape is exercised with random ones.
#ifndef APQ_PREDICTOR_MLP_TESTING_H_
#define APQ_PREDICTOR_MLP_TESTING_H_

#include <cstdint>
#include <random>
#include <vector>

#include "predictor/accuracy_predictor.h"
#include "predictor/mlp_predictor.h"

namespace apq::predictor::mlp_testing {

// APQ's quantization-aware predictor (mit-han-lab/apq utils/accuracy_predictor.py):
// 772 inputs = 520 architecture features (63 kernel-size + 457 mid-width slots) + 252
// bit-width features, hidden 400 x 3, one output.
inline constexpr int kApqLayers = 21;
inline constexpr int kApqArchInputs = 520;
inline constexpr int kApqBitInputs = 252;
inline constexpr int kApqInputs = kApqArchInputs + kApqBitInputs;
inline constexpr int kApqHidden = 400;

// A Linear layer drawn uniformly from PyTorch's default initialisation range, +-1/sqrt(in).
MlpWeights::Linear RandomLinear(int in, int out, std::mt19937* rng);

// APQ's shape with RandomLinear layers, named "apq_predictor"; the same seed gives the same
// weights.
MlpWeights RandomApqWeights(uint32_t seed);

// Random networks in APQ's one-hot encoding (utils/converter.py, spec2feature with quantize):
// layer i of 21 is active iff i % 4 < d[i / 4], d in {2, 3, 4} per stage and the last stage
// one layer; each active layer has one kernel-size slot (3 choices), one mid-width slot (the
// (2 Cin + 15) / 8 widths of range(4 Cin, 6 Cin + 8, 8)) and four bit-width slots (pw_w, pw_a,
// dw_w, dw_a; 3 choices each), in that order of index blocks. Indices are ascending.
FeatureBatch RandomApqBatch(int size, std::mt19937* rng);

// The batch as dense 0/1 rows of `inputs` floats, for PredictDense.
std::vector<float> Densify(const FeatureBatch& batch, int inputs);

}  // namespace apq::predictor::mlp_testing

#endif  // APQ_PREDICTOR_MLP_TESTING_H_
