#include "oface/int8_layers.h"

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "oface/int8_layers_internal.h"

namespace apq::oface {
namespace {

using int8_internal::ActivationQuantization;

// The float computation the int8 kernels approximate, on the dequantized input and weights,
// quantized to the output's levels: the reference of the integer arithmetic.
torch::Tensor ReferenceConv(const torch::Tensor& qx, const torch::Tensor& weight,
                            const torch::Tensor& bias, int stride, int padding, int groups,
                            bool relu6, ActivationQuantization output) {
  const torch::Tensor qw = int8_internal::QuantizeWeightPerChannel(weight);
  torch::Tensor y = torch::conv2d(qx.dequantize(), qw.dequantize(), bias, {stride, stride},
                                  {padding, padding}, {1, 1}, groups);
  if (relu6) y = torch::clamp(y, 0.0, 6.0);
  return at::quantize_per_tensor(y, output.scale, output.zero_point, at::kQUInt8);
}

TEST(Int8LayersTest, EngineNamesRoundTripAndThisBuildHasBoth) {
  for (const QuantizedEngine engine : {QuantizedEngine::kQnnpack, QuantizedEngine::kOnednn}) {
    EXPECT_EQ(*QuantizedEngineFromName(QuantizedEngineName(engine)), engine);
  }
  EXPECT_EQ(QuantizedEngineFromName("fbgemm").status().code(), absl::StatusCode::kInvalidArgument);
  // Debian's LibTorch 1.13: QNNPACK and oneDNN (FBGEMM is not built).
  EXPECT_EQ(AvailableQuantizedEngines().size(), 2u);
}

TEST(Int8LayersTest, FoldedBatchNormComputesWhatConvThenBatchNormComputes) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({2, 8, 9, 9});
  const torch::Tensor weight = torch::randn({16, 8, 3, 3}) * 0.2;
  const torch::Tensor gamma = torch::rand({16}) + 0.5;
  const torch::Tensor beta = torch::randn({16});
  const torch::Tensor mean = torch::randn({16});
  const torch::Tensor var = torch::rand({16}) + 0.1;
  const torch::Tensor expected = torch::batch_norm(torch::conv2d(x, weight, {}, {2, 2}, {1, 1}),
                                                   gamma, beta, mean, var, false, 0.1, 1e-5, false);
  const int8_internal::FoldedConv folded =
      int8_internal::FoldBatchNorm(weight, std::nullopt, gamma, beta, mean, var, 1e-5);
  const torch::Tensor actual = torch::conv2d(x, folded.weight, folded.bias, {2, 2}, {1, 1});
  EXPECT_LT((actual - expected).abs().max().item<double>(), 1e-4);
}

TEST(Int8LayersTest, ConvsAndTheLinearLayerMatchTheIntegerReferenceOnBothEngines) {
  for (const QuantizedEngine engine : AvailableQuantizedEngines()) {
    SCOPED_TRACE(QuantizedEngineName(engine));
    ASSERT_TRUE(int8_internal::UseEngine(engine).ok());
    torch::manual_seed(5);
    const torch::Tensor x = torch::rand({1, 8, 10, 10}) * 4 - 1;
    const ActivationQuantization in = int8_internal::QuantizationOfRange(-1, 3);
    const torch::Tensor qx = at::quantize_per_tensor(x, in.scale, in.zero_point, at::kQUInt8);
    struct Case {
      int out, kernel, stride, groups;
      bool relu6;
    };
    for (const Case& c : {Case{16, 1, 1, 1, true}, Case{16, 1, 1, 1, false}, Case{8, 3, 2, 8, true},
                          Case{8, 5, 1, 8, true}, Case{12, 3, 1, 1, false}}) {
      SCOPED_TRACE(testing::Message() << "out " << c.out << " k " << c.kernel << " s " << c.stride
                                      << " g " << c.groups << " relu6 " << c.relu6);
      const torch::Tensor weight = torch::randn({c.out, 8 / c.groups, c.kernel, c.kernel}) * 0.3;
      const torch::Tensor bias = torch::randn({c.out}) * 0.1;
      const ActivationQuantization out = int8_internal::QuantizationOfRange(-4, 4);
      const int8_internal::Int8Conv conv(weight, bias, c.stride, c.kernel / 2, c.groups, c.relu6,
                                         out);
      const torch::Tensor actual = conv.Forward(qx);
      const torch::Tensor expected =
          ReferenceConv(qx, weight, bias, c.stride, c.kernel / 2, c.groups, c.relu6, conv.output());
      ASSERT_EQ(actual.sizes(), expected.sizes());
      EXPECT_EQ(actual.q_scale(), expected.q_scale());
      EXPECT_EQ(actual.q_zero_point(), expected.q_zero_point());
      // The kernels round the int32 bias and requantize once: at most one level apart, and
      // nearly all equal.
      const torch::Tensor levels =
          (actual.int_repr().to(torch::kInt) - expected.int_repr().to(torch::kInt)).abs();
      EXPECT_LE(levels.max().item<int>(), 1);
      EXPECT_GE(levels.eq(0).to(torch::kDouble).mean().item<double>(), 0.95);
      if (c.relu6) {
        EXPECT_GE(actual.dequantize().min().item<double>(), 0.0);
        EXPECT_LE(actual.dequantize().max().item<double>(), 6.0 + 1e-6);
      }
    }
    // The classifier.
    const torch::Tensor features = torch::rand({3, 32}) * 6;
    const ActivationQuantization f = int8_internal::QuantizationOfRange(0, 6);
    const torch::Tensor qf = at::quantize_per_tensor(features, f.scale, f.zero_point, at::kQUInt8);
    const torch::Tensor weight = torch::randn({10, 32}) * 0.2;
    const torch::Tensor bias = torch::randn({10});
    const ActivationQuantization logits = int8_internal::QuantizationOfRange(-8, 8);
    const int8_internal::Int8Linear linear(weight, bias, logits);
    const torch::Tensor expected = at::quantize_per_tensor(
        torch::linear(qf.dequantize(), int8_internal::QuantizeWeightPerChannel(weight).dequantize(),
                      bias),
        logits.scale, logits.zero_point, at::kQUInt8);
    const torch::Tensor levels =
        (linear.Forward(qf).int_repr().to(torch::kInt) - expected.int_repr().to(torch::kInt)).abs();
    EXPECT_LE(levels.max().item<int>(), 1);
  }
}

}  // namespace
}  // namespace apq::oface
