#include "predictor/mlp_kernels.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace apq::predictor::mlp_kernels {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> RandomFloats(int n, std::mt19937* rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (float& v : values) v = uniform(*rng);
  return values;
}

TEST(MlpKernelsTest, BestIsaIsSupported) { EXPECT_TRUE(IsaSupported(BestIsa())); }

TEST(MlpKernelsTest, PaddedWidthIsAlignedAndCovers) {
  for (Isa isa : SupportedIsas()) {
    for (int width : {1, 15, 16, 17, 400}) {
      const int padded = PaddedWidth(width, isa);
      EXPECT_GE(padded, width);
      EXPECT_EQ(padded % 16, 0) << IsaName(isa);
    }
  }
}

// Odd sizes exercise the padded panel and every remainder row count of the micro-kernels.
TEST(MlpKernelsTest, PackedLinearMatchesNaiveProduct) {
  std::mt19937 rng(7);
  constexpr int kIn = 37;
  constexpr int kOut = 53;
  const std::vector<float> weight = RandomFloats(kIn * kOut, &rng);
  const std::vector<float> bias = RandomFloats(kOut, &rng);
  for (Isa isa : SupportedIsas()) {
    const PackedLinear layer(weight.data(), bias.data(), kIn, kOut, isa);
    ASSERT_EQ(layer.padded_out(), PaddedWidth(kOut, isa));
    for (int rows = 1; rows <= 30; ++rows) {
      for (bool relu : {false, true}) {
        const int x_stride = PaddedWidth(kIn, isa);
        const int y_stride = layer.padded_out() + 16;
        AlignedBuffer x(static_cast<size_t>(rows) * x_stride);
        const std::vector<float> values = RandomFloats(rows * kIn, &rng);
        for (int r = 0; r < rows; ++r) {
          for (int i = 0; i < kIn; ++i) x.data()[r * x_stride + i] = values[r * kIn + i];
        }
        AlignedBuffer y(static_cast<size_t>(rows) * y_stride);
        layer.Forward(x.data(), rows, x_stride, y.data(), y_stride, relu);
        for (int r = 0; r < rows; ++r) {
          for (int o = 0; o < layer.padded_out(); ++o) {
            double expected = 0.0;
            if (o < kOut) {
              expected = bias[o];
              for (int i = 0; i < kIn; ++i) {
                expected += static_cast<double>(weight[o * kIn + i]) * values[r * kIn + i];
              }
              if (relu) expected = std::max(expected, 0.0);
            }
            ASSERT_NEAR(y.data()[r * y_stride + o], expected, 1e-5)
                << IsaName(isa) << " rows " << rows << " r " << r << " o " << o;
          }
        }
      }
    }
  }
}

TEST(MlpKernelsTest, GatherLinearSumsActiveColumnsAndAdds) {
  std::mt19937 rng(11);
  constexpr int kIn = 29;
  constexpr int kOut = 131;
  const std::vector<float> weight = RandomFloats(kIn * kOut, &rng);
  const std::vector<float> bias = RandomFloats(kOut, &rng);
  std::vector<int32_t> indices;
  std::vector<int32_t> offsets = {0};
  constexpr int kRows = 9;
  for (int r = 0; r < kRows; ++r) {
    // Row 0 has no active input, row 1 all of them.
    for (int i = 0; i < kIn; ++i) {
      if (r == 1 || (r != 0 && rng() % 3 == 0)) indices.push_back(i);
    }
    offsets.push_back(static_cast<int32_t>(indices.size()));
  }
  for (Isa isa : SupportedIsas()) {
    const GatherLinear layer(weight.data(), bias.data(), kIn, kOut, isa);
    for (bool relu : {false, true}) {
      const int stride = layer.padded_out();
      AlignedBuffer y(static_cast<size_t>(kRows) * stride);
      layer.Forward(indices.data(), offsets.data(), kRows, y.data(), stride, relu);
      for (int r = 0; r < kRows; ++r) {
        for (int o = 0; o < stride; ++o) {
          double expected = 0.0;
          if (o < kOut) {
            expected = bias[o];
            for (int j = offsets[r]; j < offsets[r + 1]; ++j) {
              expected += weight[o * kIn + indices[j]];
            }
            if (relu) expected = std::max(expected, 0.0);
          }
          ASSERT_NEAR(y.data()[r * stride + o], expected, 1e-5)
              << IsaName(isa) << " r " << r << " o " << o;
        }
      }
    }
    // ForwardAdd adds bias + sum to what the output holds, with no activation (negative sums
    // stay negative), and leaves the zero padding zero.
    const int stride = layer.padded_out();
    AlignedBuffer y(static_cast<size_t>(kRows) * stride);
    const std::vector<float> before = RandomFloats(kRows * stride, &rng);
    for (int k = 0; k < kRows * stride; ++k) y.data()[k] = k % stride < kOut ? before[k] : 0.0f;
    layer.ForwardAdd(indices.data(), offsets.data(), kRows, y.data(), stride);
    for (int r = 0; r < kRows; ++r) {
      for (int o = 0; o < stride; ++o) {
        double expected = 0.0;
        if (o < kOut) {
          expected = static_cast<double>(before[r * stride + o]) + bias[o];
          for (int j = offsets[r]; j < offsets[r + 1]; ++j) {
            expected += weight[o * kIn + indices[j]];
          }
        }
        ASSERT_NEAR(y.data()[r * stride + o], expected, 1e-5)
            << "ForwardAdd " << IsaName(isa) << " r " << r << " o " << o;
      }
    }
  }
}

}  // namespace
}  // namespace apq::predictor::mlp_kernels
