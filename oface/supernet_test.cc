#include "oface/supernet.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/supernet_module.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using supernet_internal::FakeQuantActivation;
using supernet_internal::FakeQuantWeight;
using supernet_internal::SupernetModuleImpl;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::unique_ptr<Supernet> MakeTiny(uint64_t seed = 1) {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinySpec(), seed);
  EXPECT_TRUE(supernet.ok()) << supernet.status();
  return std::move(supernet).value();
}

const LabeledImages& RealImages() {
  static const LabeledImages* images = [] {
    absl::StatusOr<LabeledImages> loaded =
        LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, 200);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return new LabeledImages(std::move(loaded).value());
  }();
  return *images;
}

double MaxAbsDifference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::fabs(double{a[i]} - b[i]));
  return worst;
}

std::vector<float> LogitsOf(Supernet& supernet) {
  absl::StatusOr<std::vector<float>> logits = supernet.Logits(RealImages());
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.value_or(std::vector<float>{});
}

// Adds noise to a slice of a parameter, in place.
void Perturb(const torch::Tensor& tensor) {
  torch::NoGradGuard no_grad;
  tensor.add_(torch::randn(tensor.sizes()));
}

TEST(FashionMnistSpecTest, IsValidAndBuildsItsSpace) {
  const MbConvSpec spec = FashionMnistSpec();
  EXPECT_TRUE(ValidateMbConvSpec(spec).ok()) << ValidateMbConvSpec(spec);
  absl::StatusOr<std::unique_ptr<SearchSpace>> space = NewMbConvQuantSpace(spec);
  ASSERT_TRUE(space.ok()) << space.status();
  EXPECT_EQ((*space)->name(), "fmnist_mbv2");
  EXPECT_EQ((*space)->genes().size(), 6u * 12 + 3);
  Rng rng(3);
  EXPECT_TRUE((*space)->Validate((*space)->Sample(rng)).ok());
}

TEST(FakeQuantTest, WeightRoundTripWithinHalfAStepPerChannel) {
  torch::manual_seed(0);
  const torch::Tensor weight = torch::randn({8, 4, 3, 3});
  for (const int bits : {4, 6, 8}) {
    const torch::Tensor quantized = FakeQuantWeight(weight, bits);
    const double levels = (1 << (bits - 1)) - 1;
    const torch::Tensor step = weight.abs().reshape({8, -1}).amax(1) / levels;
    const torch::Tensor error = (weight - quantized).abs().reshape({8, -1}).amax(1);
    EXPECT_TRUE((error <= step / 2 + 1e-6).all().item<bool>()) << "bits " << bits;
    // At most 2 * levels + 1 distinct values per channel, all multiples of the step.
    const torch::Tensor ratio = quantized.reshape({8, -1}) / step.unsqueeze(1);
    EXPECT_LT((ratio - ratio.round()).abs().max().item<double>(), 1e-3);
    EXPECT_LE(ratio.abs().max().item<double>(), levels + 1e-3);
  }
}

TEST(FakeQuantTest, LevelsAtEveryBitWidth) {
  using supernet_internal::SignedLevels;
  using supernet_internal::UnsignedLevels;
  EXPECT_EQ(SignedLevels(2), 1);  // {-1, 0, 1}: ternary.
  EXPECT_EQ(SignedLevels(3), 3);
  EXPECT_EQ(SignedLevels(4), 7);
  EXPECT_EQ(SignedLevels(8), 127);
  EXPECT_EQ(UnsignedLevels(2), 3);  // {0, 1, 2, 3}.
  EXPECT_EQ(UnsignedLevels(3), 7);
  EXPECT_EQ(UnsignedLevels(8), 255);
  EXPECT_EQ(SignedLevels(supernet_internal::kMaxQuantBits), 32767);
}

// At 32 bits a layer runs in float: both quantizers hand their input back unchanged, with and
// without gradients, and a spec may offer 32 but not 17 to 31 bits.
TEST(FakeQuantTest, ThirtyTwoBitsPassValuesThroughAndOnlyThirtyTwoAboveSixteen) {
  torch::manual_seed(3);
  const torch::Tensor weight = torch::randn({4, 3, 3, 3});
  const torch::Tensor x = torch::randn({2, 3, 5, 5}) * 10;
  const torch::Tensor alpha = torch::tensor(0.5);
  EXPECT_TRUE(torch::equal(FakeQuantWeight(weight, supernet_internal::kFloatBits), weight));
  EXPECT_FALSE(torch::equal(FakeQuantWeight(weight, 8), weight));
  for (const bool grad : {false, true}) {
    torch::AutoGradMode mode(grad);
    for (const bool is_signed : {false, true}) {
      EXPECT_TRUE(
          torch::equal(FakeQuantActivation(x, alpha, supernet_internal::kFloatBits, is_signed), x));
      EXPECT_FALSE(torch::equal(FakeQuantActivation(x, alpha, 8, is_signed), x));
    }
  }
  EXPECT_TRUE(supernet_internal::IsQuantizerBits(32));
  EXPECT_TRUE(supernet_internal::IsQuantizerBits(16));
  EXPECT_FALSE(supernet_internal::IsQuantizerBits(17));
  EXPECT_FALSE(supernet_internal::IsQuantizerBits(31));
  EXPECT_FALSE(supernet_internal::IsQuantizerBits(1));
  MbConvSpec spec = TinySpec();
  spec.bit_choices = {8, 32};
  EXPECT_TRUE(Supernet::Create(spec, 1).ok());
  spec.bit_choices = {8, 24};
  const absl::Status refused = Supernet::Create(spec, 1).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("not 24"));
}

// The weight quantizer at 2, 3, 4, 6 and 8 bits: within half a step of the input (every weight
// is inside its channel's range), at most 2^b - 1 distinct values per channel, all multiples of
// the step, idempotent up to float rounding; a zero channel stays zero (no 0 / 0).
TEST(FakeQuantTest, WeightQuantizerKeepsItsErrorBoundLevelsAndIdempotenceAtLowBits) {
  torch::manual_seed(1);
  torch::Tensor weight = torch::randn({6, 8, 3, 3});
  {
    torch::NoGradGuard no_grad;
    weight[5].zero_();
  }
  for (const int bits : {2, 3, 4, 6, 8}) {
    const torch::Tensor quantized = FakeQuantWeight(weight, bits).detach();
    ASSERT_TRUE(torch::isfinite(quantized).all().item<bool>()) << "bits " << bits;
    const int64_t levels = supernet_internal::SignedLevels(bits);
    const torch::Tensor flat = quantized.reshape({6, -1});
    const torch::Tensor max = weight.abs().reshape({6, -1}).amax(1);
    for (int c = 0; c < 6; ++c) {
      const double step = std::max(max[c].item<double>(), 1e-8) / levels;
      const torch::Tensor row = flat[c];
      const double error = (weight[c].reshape({-1}) - row).abs().max().item<double>();
      EXPECT_LE(error, step / 2 * (1 + 1e-5)) << "bits " << bits << " channel " << c;
      const torch::Tensor distinct = std::get<0>(torch::_unique(row));
      EXPECT_LE(distinct.numel(), (int64_t{1} << bits) - 1) << "bits " << bits;
      const torch::Tensor ratio = row / step;
      EXPECT_LT((ratio - ratio.round()).abs().max().item<double>(), 1e-4) << "bits " << bits;
      EXPECT_LE(ratio.abs().max().item<double>(), levels + 1e-4) << "bits " << bits;
      const torch::Tensor again = FakeQuantWeight(quantized, bits).detach().reshape({6, -1})[c];
      EXPECT_LE((again - row).abs().max().item<double>(), 1e-6 * step) << "bits " << bits;
    }
    EXPECT_EQ(flat[5].abs().max().item<double>(), 0.0);
    if (bits == 2) {
      // Ternary: each channel's values are -max, 0 and max, all three used here.
      for (int c = 0; c < 5; ++c) {
        const torch::Tensor distinct = std::get<0>(torch::_unique(flat[c] / max[c]));
        EXPECT_TRUE(torch::allclose(distinct, torch::tensor({-1.0f, 0.0f, 1.0f}))) << distinct;
      }
    }
  }
}

// The activation quantizer at 2, 3, 4, 6 and 8 bits, signed (levels -L..L, L = 2^(b-1) - 1)
// and unsigned (0..2^b - 1): within half a step inside the clip range, at most 2^b distinct
// values, exactly idempotent.
TEST(FakeQuantTest, ActivationQuantizerKeepsItsErrorBoundLevelsAndIdempotenceAtLowBits) {
  torch::manual_seed(2);
  const double alpha_value = 2.5;
  const torch::Tensor alpha = torch::tensor(alpha_value);
  for (const bool is_signed : {false, true}) {
    for (const int bits : {2, 3, 4, 6, 8}) {
      const int64_t levels = is_signed ? supernet_internal::SignedLevels(bits)
                                       : supernet_internal::UnsignedLevels(bits);
      const double step = (alpha_value + 1e-3) / levels;
      const torch::Tensor inside =
          (is_signed ? torch::rand({4000}) * 2 - 1 : torch::rand({4000})) * alpha_value;
      const torch::Tensor x = torch::cat({inside, torch::tensor({-9.0f, 9.0f, 0.0f})});
      const torch::Tensor q = FakeQuantActivation(x, alpha, bits, is_signed).detach();
      const std::string what = absl::StrCat(is_signed ? "signed " : "unsigned ", bits, " bits");
      EXPECT_LE((q.narrow(0, 0, 4000) - inside).abs().max().item<double>(), step / 2 + 1e-5)
          << what;
      const torch::Tensor distinct = std::get<0>(torch::_unique(q));
      EXPECT_LE(distinct.numel(), int64_t{1} << bits) << what;
      EXPECT_EQ(distinct.numel(), is_signed ? 2 * levels + 1 : levels + 1) << what;
      EXPECT_NEAR(q[4001].item<double>(), levels * step, 1e-5) << what;
      EXPECT_NEAR(q[4000].item<double>(), is_signed ? -levels * step : 0.0, 1e-5) << what;
      EXPECT_EQ(q[4002].item<double>(), 0.0) << what;
      EXPECT_TRUE(torch::equal(FakeQuantActivation(q, alpha, bits, is_signed).detach(), q)) << what;
    }
  }
}

// Without gradients the activation quantizer takes its own vectorised path; its values must
// be the fused kernel's, bit for bit, at every bitwidth, sign and step, ties included.
TEST(FakeQuantTest, ActivationQuantizerWithoutGradientsIsTheFusedKernelBitForBit) {
  torch::manual_seed(3);
  for (const double alpha_value : {0.37, 1.0, 2.5, 6.0}) {
    const torch::Tensor alpha = torch::tensor(alpha_value);
    for (const bool is_signed : {false, true}) {
      for (const int bits : {2, 3, 4, 5, 6, 8}) {
        const int64_t levels = is_signed ? supernet_internal::SignedLevels(bits)
                                         : supernet_internal::UnsignedLevels(bits);
        const torch::Tensor step =
            ((alpha.abs() + 1e-3) / static_cast<double>(levels)).reshape({1});
        // Values across and beyond the clip range, and exact ties (k + 1/2 steps).
        const torch::Tensor ties =
            (torch::arange(-levels - 2, levels + 2, torch::kFloat32) + 0.5F) * step;
        const torch::Tensor x = torch::cat(
            {torch::randn({20000}) * alpha_value, ties, torch::tensor({0.0F, -0.0F, 1e9F})});
        const torch::Tensor fused =
            torch::_fake_quantize_learnable_per_tensor_affine(x, step, torch::zeros({1}),
                                                              is_signed ? -levels : 0, levels, 1.0)
                .detach();
        torch::NoGradGuard no_grad;
        const torch::Tensor fast = FakeQuantActivation(x, alpha, bits, is_signed);
        EXPECT_TRUE(torch::equal(fast, fused))
            << (is_signed ? "signed " : "unsigned ") << bits << " bits, alpha " << alpha_value
            << ": " << (fast - fused).abs().max().item<double>() << " apart at most";
      }
    }
  }
}

TEST(FakeQuantTest, SupernetRefusesBitsItsQuantizersDoNotTake) {
  for (const int bits : {1, 17}) {
    MbConvSpec spec = TinySpec();
    spec.bit_choices = {bits, 18};
    absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(spec, 1);
    EXPECT_EQ(supernet.status().code(), absl::StatusCode::kInvalidArgument) << bits;
    EXPECT_THAT(supernet.status().message(), HasSubstr("bit_choices"));
    EXPECT_THAT(supernet.status().message(), HasSubstr("2..16 bits"));
  }
  MbConvSpec spec = TinySpec();
  spec.fixed_bits = 1;
  EXPECT_THAT(Supernet::Create(spec, 1).status().message(), HasSubstr("fixed_bits"));
  EXPECT_TRUE(Supernet::Create(TinyLowBitSpec(), 1).ok());
}

TEST(FakeQuantTest, WeightGradientIsStraightThrough) {
  torch::Tensor weight = torch::randn({4, 2, 1, 1}).requires_grad_(true);
  FakeQuantWeight(weight, 4).sum().backward();
  EXPECT_TRUE(torch::allclose(weight.grad(), torch::ones_like(weight)));
}

TEST(FakeQuantTest, ActivationRoundTripWithinHalfAStepAndStePassesGradients) {
  for (const bool is_signed : {false, true}) {
    for (const int bits : {4, 6, 8}) {
      const double alpha_value = 3.0;
      torch::Tensor alpha = torch::tensor(alpha_value).requires_grad_(true);
      // In range: [0, alpha) or (-alpha, alpha); plus a few values beyond the clip.
      torch::Tensor x =
          (is_signed ? torch::rand({1000}) * 2 - 1 : torch::rand({1000})) * alpha_value * 0.999;
      x = torch::cat({x, torch::tensor({alpha_value * 2, alpha_value * 5})}).requires_grad_(true);
      const torch::Tensor q = FakeQuantActivation(x, alpha, bits, is_signed);
      const double levels = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
      const double step = (alpha_value + 1e-3) / levels;
      const torch::Tensor error = (x.detach() - q.detach()).abs().narrow(0, 0, 1000);
      EXPECT_LE(error.max().item<double>(), step / 2 + 1e-5) << "bits " << bits;
      // Clipped values land on the top of the range.
      EXPECT_NEAR(q[1000].item<double>(), step * levels, 1e-4);
      q.sum().backward();
      const torch::Tensor grad = x.grad();
      EXPECT_TRUE(torch::allclose(grad.narrow(0, 0, 1000), torch::ones({1000})));
      EXPECT_EQ(grad[1000].item<double>(), 0.0);
      ASSERT_TRUE(alpha.grad().defined());
      EXPECT_NE(alpha.grad().item<double>(), 0.0);
    }
  }
}

TEST(SupernetTest, SmallerKernelsAreTransformedCentreCrops) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  SupernetModuleImpl& module = supernet->module();
  const SupernetModuleImpl::Slot& slot = module.slot(1);
  {
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& transform : slot.kernel_transforms) {
      const_cast<torch::Tensor&>(transform).add_(torch::randn(transform.sizes()) * 0.1);
    }
  }
  const int mid = slot.max_mid - 4;
  torch::NoGradGuard no_grad;
  const torch::Tensor k7 = module.DepthwiseKernel(1, 7, mid);
  EXPECT_TRUE(torch::equal(k7, slot.depthwise_weight.narrow(0, 0, mid)));
  // kernel_transforms[1]: 7 -> 5, [0]: 5 -> 3 (once-for-all's "7to5_matrix", "5to3_matrix").
  const torch::Tensor expected5 =
      torch::linear(slot.depthwise_weight.narrow(0, 0, mid).narrow(2, 1, 5).narrow(3, 1, 5).reshape(
                        {mid, 25}),
                    slot.kernel_transforms[1])
          .reshape({mid, 1, 5, 5});
  EXPECT_TRUE(torch::allclose(module.DepthwiseKernel(1, 5, mid), expected5));
  const torch::Tensor expected3 =
      torch::linear(expected5.narrow(2, 1, 3).narrow(3, 1, 3).reshape({mid, 9}),
                    slot.kernel_transforms[0])
          .reshape({mid, 1, 3, 3});
  EXPECT_TRUE(torch::allclose(module.DepthwiseKernel(1, 3, mid), expected3));
}

TEST(SupernetTest, NarrowWidthUsesTheFirstChannelsOnly) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  Genotype genotype = supernet->LargestGenotype();
  const int num_slots = supernet->module().num_slots();
  const SupernetModuleImpl::Slot& slot = supernet->module().slot(0);
  const int mid = supernet->space().genes()[num_slots].choices.front();
  ASSERT_LT(mid, slot.max_mid);
  genotype[num_slots] = mid;  // mid[0]
  ASSERT_TRUE(supernet->SetActiveSubnet(genotype).ok());
  for (const bool quantized : {false, true}) {
    supernet->SetQuantized(quantized);
    const std::vector<float> before = LogitsOf(*supernet);
    Perturb(slot.expand_weight.narrow(0, mid, slot.max_mid - mid));
    Perturb(slot.depthwise_weight.narrow(0, mid, slot.max_mid - mid));
    Perturb(slot.project_weight.narrow(1, mid, slot.max_mid - mid));
    EXPECT_EQ(MaxAbsDifference(before, LogitsOf(*supernet)), 0.0);
    Perturb(slot.expand_weight.narrow(0, mid - 1, 1));
    EXPECT_GT(MaxAbsDifference(before, LogitsOf(*supernet)), 1e-4);
  }
}

TEST(SupernetTest, AOneHotBitMixtureIsTheFixedBitsAndGradientsReachTheMixture) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  supernet->module().eval();
  const Genotype genotype = supernet->LargestGenotype(4);
  const torch::Tensor images = supernet_internal::ImagesToTensor(RealImages()).narrow(0, 0, 16);
  const supernet_internal::SubnetChoice fixed =
      supernet_internal::ChoiceFromGenotype(supernet->spec(), genotype, /*quantized=*/true);
  const std::vector<int>& bits = supernet->spec().bit_choices;  // {4, 8}
  const auto one_hot = [&](int chosen) {
    std::vector<float> weights(bits.size(), 0.0F);
    for (size_t b = 0; b < bits.size(); ++b) weights[b] = bits[b] == chosen ? 1.0F : 0.0F;
    return torch::tensor(weights).requires_grad_(true);
  };
  supernet_internal::SubnetChoice mixed = fixed;
  for (const supernet_internal::SlotChoice& slot : fixed.slots) {
    mixed.mixtures.push_back({one_hot(slot.pw_w_bits), one_hot(slot.pw_a_bits),
                              one_hot(slot.dw_w_bits), one_hot(slot.dw_a_bits)});
  }
  const torch::Tensor expected = supernet->module().forward(images, fixed);
  const torch::Tensor actual = supernet->module().forward(images, mixed);
  EXPECT_TRUE(torch::equal(expected, actual));

  // The loss moves with the mixture weights: their gradients are defined and not all zero.
  actual.square().sum().backward();
  double total = 0.0;
  for (const supernet_internal::SlotBitMixture& mixture : mixed.mixtures) {
    for (const torch::Tensor& weights : {mixture.pw_w, mixture.pw_a, mixture.dw_w, mixture.dw_a}) {
      ASSERT_TRUE(weights.grad().defined());
      total += weights.grad().abs().sum().item<double>();
    }
  }
  EXPECT_GT(total, 0.0);

  // Half 4 and half 8 bits: the mixture of the two networks' layers, neither of them.
  supernet_internal::SubnetChoice half = fixed;
  const torch::Tensor even = torch::full({static_cast<int64_t>(bits.size())}, 0.5F);
  for (size_t s = 0; s < fixed.slots.size(); ++s) half.mixtures.push_back({even, even, even, even});
  const torch::Tensor between = supernet->module().forward(images, half).detach();
  EXPECT_FALSE(torch::allclose(between, expected.detach()));
}

TEST(SupernetTest, ASinglePathMixtureComputesThePickedWidthOnlyAndPassesItsGradient) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  supernet->module().eval();
  const torch::Tensor images = supernet_internal::ImagesToTensor(RealImages()).narrow(0, 0, 16);
  const std::vector<int>& bits = supernet->spec().bit_choices;  // {4, 8}
  for (const int picked : bits) {
    const supernet_internal::SubnetChoice fixed = supernet_internal::ChoiceFromGenotype(
        supernet->spec(), supernet->LargestGenotype(picked), /*quantized=*/true);
    // A straight-through sample: one-hot in value, the gradient of a soft sample.
    std::vector<torch::Tensor> logits;
    supernet_internal::SubnetChoice single = fixed;
    for (size_t s = 0; s < fixed.slots.size(); ++s) {
      supernet_internal::SlotBitMixture mixture;
      mixture.single_path = true;
      for (torch::Tensor* weights : {&mixture.pw_w, &mixture.pw_a, &mixture.dw_w, &mixture.dw_a}) {
        logits.push_back(torch::zeros({static_cast<int64_t>(bits.size())}).requires_grad_(true));
        const torch::Tensor soft = torch::softmax(logits.back(), 0);
        std::vector<float> hard(bits.size(), 0.0F);
        for (size_t b = 0; b < bits.size(); ++b) hard[b] = bits[b] == picked ? 1.0F : 0.0F;
        *weights = torch::tensor(hard) - soft.detach() + soft;
      }
      single.mixtures.push_back(mixture);
    }
    const torch::Tensor expected = supernet->module().forward(images, fixed);
    const torch::Tensor actual = supernet->module().forward(images, single);
    EXPECT_TRUE(torch::allclose(expected, actual, 1e-5, 1e-5)) << picked << " bits";
    actual.square().sum().backward();
    double total = 0.0;
    for (const torch::Tensor& logit : logits) {
      ASSERT_TRUE(logit.grad().defined());
      total += logit.grad().abs().sum().item<double>();
    }
    EXPECT_GT(total, 0.0) << "the gradient reaches the distributions";
  }
}

TEST(SupernetTest, OneHotKernelAndWidthMixturesAreTheChosenNetworkAndPassGradients) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  supernet->module().eval();
  const torch::Tensor images = supernet_internal::ImagesToTensor(RealImages()).narrow(0, 0, 16);
  const int num_slots = supernet->module().num_slots();
  const auto& genes = supernet->space().genes();
  const auto one_hot = [](const std::vector<int>& values, int chosen) {
    std::vector<float> weights;
    weights.reserve(values.size());
    for (const int value : values) weights.push_back(value == chosen ? 1.0F : 0.0F);
    return torch::tensor(weights).requires_grad_(true);
  };
  // The smallest and the largest networks at 4 bits, and fp32: kernels and widths at both
  // ends of their ranges.
  for (const bool quantized : {true, false}) {
    for (const Genotype& genotype : {supernet->SmallestGenotype(4), supernet->LargestGenotype(4)}) {
      const supernet_internal::SubnetChoice fixed =
          supernet_internal::ChoiceFromGenotype(supernet->spec(), genotype, quantized);
      supernet_internal::SubnetChoice mixed = fixed;
      for (int i = 0; i < num_slots; ++i) {
        supernet_internal::SlotArchMixture arch;
        arch.kernels = genes[i].choices;
        arch.mids = genes[num_slots + i].choices;
        arch.kernel_weights = one_hot(arch.kernels, fixed.slots[i].kernel);
        arch.mid_weights = one_hot(arch.mids, fixed.slots[i].mid);
        mixed.arch_mixtures.push_back(arch);
      }
      const torch::Tensor expected = supernet->module().forward(images, fixed);
      const torch::Tensor actual = supernet->module().forward(images, mixed);
      EXPECT_TRUE(torch::allclose(expected, actual, 1e-4, 1e-5))
          << (quantized ? "quantized" : "fp32") << ": "
          << (expected - actual).abs().max().item<double>();
      actual.square().sum().backward();
      double kernel_gradient = 0.0;
      double mid_gradient = 0.0;
      for (int i = 0; i < fixed.depths[0]; ++i) {
        kernel_gradient += mixed.arch_mixtures[i].kernel_weights.grad().abs().sum().item<double>();
        mid_gradient += mixed.arch_mixtures[i].mid_weights.grad().abs().sum().item<double>();
      }
      // (Quantized, the untrained tiny supernet's smallest network clips every activation
      // to its range, where the straight-through estimator passes no gradient at all.)
      if (!quantized || genotype == supernet->LargestGenotype(4)) {
        EXPECT_GT(kernel_gradient, 0.0) << (quantized ? "quantized" : "fp32");
        EXPECT_GT(mid_gradient, 0.0) << (quantized ? "quantized" : "fp32");
      }
    }
  }
  // Even weights: neither end's network.
  const Genotype largest = supernet->LargestGenotype(4);
  const supernet_internal::SubnetChoice fixed =
      supernet_internal::ChoiceFromGenotype(supernet->spec(), largest, true);
  supernet_internal::SubnetChoice even = fixed;
  for (int i = 0; i < num_slots; ++i) {
    supernet_internal::SlotArchMixture arch;
    arch.kernels = genes[i].choices;
    arch.mids = genes[num_slots + i].choices;
    arch.kernel_weights = torch::full({static_cast<int64_t>(arch.kernels.size())},
                                      1.0F / static_cast<float>(arch.kernels.size()));
    arch.mid_weights = torch::full({static_cast<int64_t>(arch.mids.size())},
                                   1.0F / static_cast<float>(arch.mids.size()));
    even.arch_mixtures.push_back(arch);
  }
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(torch::allclose(supernet->module().forward(images, even),
                               supernet->module().forward(images, fixed)));
}

TEST(SupernetTest, OneHotDepthMixturesAreTheChosenDepthsAndPassGradients) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  supernet->module().eval();
  const torch::Tensor images = supernet_internal::ImagesToTensor(RealImages()).narrow(0, 0, 16);
  const int num_slots = supernet->module().num_slots();
  const auto& genes = supernet->space().genes();
  const int stages = static_cast<int>(supernet->spec().stages.size());
  const size_t depth_genes = size_t{6} * static_cast<size_t>(num_slots);
  const int max_choices = static_cast<int>(genes[depth_genes].choices.size());
  // Every stage at its k-th depth choice, for each k, quantized and fp32.
  for (const bool quantized : {true, false}) {
    for (int k = 0; k < max_choices; ++k) {
      Genotype genotype = supernet->LargestGenotype(4);
      std::vector<supernet_internal::StageDepthMixture> mixtures;
      for (int s = 0; s < stages; ++s) {
        const std::vector<int>& depths = genes[depth_genes + s].choices;
        const int chosen = depths[std::min<size_t>(k, depths.size() - 1)];
        genotype[depth_genes + s] = chosen;
        std::vector<float> weights;
        weights.reserve(depths.size());
        for (const int depth : depths) weights.push_back(depth == chosen ? 1.0F : 0.0F);
        mixtures.push_back({torch::tensor(weights).requires_grad_(true), depths});
      }
      const supernet_internal::SubnetChoice fixed =
          supernet_internal::ChoiceFromGenotype(supernet->spec(), genotype, quantized);
      supernet_internal::SubnetChoice mixed = supernet_internal::ChoiceFromGenotype(
          supernet->spec(), supernet->LargestGenotype(4), quantized);
      mixed.depth_mixtures = mixtures;
      const torch::Tensor expected = supernet->module().forward(images, fixed);
      const torch::Tensor actual = supernet->module().forward(images, mixed);
      EXPECT_TRUE(torch::allclose(expected, actual, 1e-5, 1e-6))
          << "depth choice " << k << (quantized ? " quantized" : " fp32");
      actual.square().sum().backward();
      double gradient = 0.0;
      for (const auto& mixture : mixed.depth_mixtures) {
        gradient += mixture.weights.grad().abs().sum().item<double>();
      }
      EXPECT_GT(gradient, 0.0) << "the gradient reaches the depth distributions";
    }
  }
  // Even weights: the mixture of the depths' outputs, not any one depth's network.
  supernet_internal::SubnetChoice even =
      supernet_internal::ChoiceFromGenotype(supernet->spec(), supernet->LargestGenotype(4), true);
  for (int s = 0; s < stages; ++s) {
    const std::vector<int>& depths = genes[depth_genes + s].choices;
    even.depth_mixtures.push_back({torch::full({static_cast<int64_t>(depths.size())},
                                               1.0F / static_cast<float>(depths.size())),
                                   depths});
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor mixed = supernet->module().forward(images, even);
  for (const bool smallest : {true, false}) {
    const Genotype genotype =
        smallest ? supernet->SmallestGenotype(8) : supernet->LargestGenotype(8);
    Genotype at_depth = supernet->LargestGenotype(4);
    for (int s = 0; s < stages; ++s) at_depth[depth_genes + s] = genotype[depth_genes + s];
    EXPECT_FALSE(torch::allclose(
        mixed, supernet->module().forward(images, supernet_internal::ChoiceFromGenotype(
                                                      supernet->spec(), at_depth, true))));
  }
}

TEST(SupernetTest, ElasticDepthSkipsInactiveSlots) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  Genotype genotype = supernet->LargestGenotype();
  const int num_slots = supernet->module().num_slots();
  genotype[6 * num_slots + 0] = 1;  // d[0] = 1: slot 1 (the stage's second) is skipped.
  ASSERT_TRUE(supernet->SetActiveSubnet(genotype).ok());
  const std::vector<float> before = LogitsOf(*supernet);
  Perturb(supernet->module().slot(1).expand_weight);
  Perturb(supernet->module().slot(1).project_weight);
  EXPECT_EQ(MaxAbsDifference(before, LogitsOf(*supernet)), 0.0);
  Perturb(supernet->module().slot(2).project_weight);
  EXPECT_GT(MaxAbsDifference(before, LogitsOf(*supernet)), 1e-4);
}

TEST(SupernetTest, ReorganizeSortsByImportanceAndKeepsTheFunction) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  {
    // Give the BN statistics something to permute.
    torch::NoGradGuard no_grad;
    for (auto& buffer : supernet->module().named_buffers())
      buffer.value().add_(torch::rand(buffer.value().sizes()));
  }
  const std::vector<float> before = LogitsOf(*supernet);
  ASSERT_TRUE(supernet->ReorganizeMiddleWeights().ok());
  EXPECT_LT(MaxAbsDifference(before, LogitsOf(*supernet)), 1e-4);
  for (int i = 0; i < supernet->module().num_slots(); ++i) {
    const torch::Tensor importance = supernet->module().slot(i).project_weight.abs().sum({0, 2, 3});
    EXPECT_TRUE((importance.narrow(0, 0, importance.size(0) - 1) >=
                 importance.narrow(0, 1, importance.size(0) - 1))
                    .all()
                    .item<bool>());
  }
}

TEST(SupernetTest, InvalidGenotypeNamesTheGene) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  Genotype genotype = supernet->LargestGenotype();
  genotype[0] = 4;
  const absl::Status status = supernet->SetActiveSubnet(genotype);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("ks[0]"));
  genotype.pop_back();
  EXPECT_EQ(supernet->SetActiveSubnet(genotype).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SupernetTest, CheckpointRoundTripGivesIdenticalOutputs) {
  std::unique_ptr<Supernet> first = MakeTiny(1);
  Rng rng(5);
  const Genotype genotype = first->space().Sample(rng);
  ASSERT_TRUE(first->SetActiveSubnet(genotype).ok());
  first->SetQuantized(true);
  const std::string path = TempPath("roundtrip.pt");
  ASSERT_TRUE(first->SaveWeights(path).ok());

  std::unique_ptr<Supernet> second = MakeTiny(2);
  ASSERT_TRUE(second->SetActiveSubnet(genotype).ok());
  second->SetQuantized(true);
  EXPECT_GT(MaxAbsDifference(LogitsOf(*first), LogitsOf(*second)), 1e-4);
  ASSERT_TRUE(second->LoadWeights(path).ok());
  EXPECT_EQ(MaxAbsDifference(LogitsOf(*first), LogitsOf(*second)), 0.0);
}

TEST(SupernetTest, CheckpointOfAnotherSpecIsRejectedNamingTheField) {
  std::unique_ptr<Supernet> tiny = MakeTiny();
  const std::string path = TempPath("tiny.pt");
  ASSERT_TRUE(tiny->SaveWeights(path).ok());
  MbConvSpec other_spec = TinySpec();
  other_spec.stages[1].out_channels = 12;
  absl::StatusOr<std::unique_ptr<Supernet>> other = Supernet::Create(other_spec, 1);
  ASSERT_TRUE(other.ok()) << other.status();
  const absl::Status status = (*other)->LoadWeights(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("stages[1].out_channels is '8' there but '12'"));

  EXPECT_EQ(tiny->LoadWeights(TempPath("absent.pt")).code(), absl::StatusCode::kNotFound);
}

// TinySpec's weights into TinyLowBitSpec's supernet: the same network function at full
// precision and at the shared bits; 2 and 3 bits start from the 4-bit clipping ranges.
TEST(SupernetTest, LoadsTheWeightsOfTheSameNetworkWithOtherBits) {
  std::unique_ptr<Supernet> source = MakeTiny(1);
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : source->module().named_parameters()) {
      if (parameter.key().find("alpha") != std::string::npos) {
        parameter.value().mul_(0.5 + torch::rand(parameter.value().sizes()));
      }
    }
  }
  const std::string path = TempPath("same_network.pt");
  ASSERT_TRUE(source->SaveWeights(path).ok());
  std::unique_ptr<Supernet> low_bit = Supernet::Create(TinyLowBitSpec(), 2).value();
  const absl::Status strict = low_bit->LoadWeights(path);
  EXPECT_EQ(strict.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(strict.message(), HasSubstr("another spec"));
  ASSERT_TRUE(low_bit->LoadWeightsOfSameNetwork(path).ok());

  // Slot alphas: one per bit choice; TinySpec's are {4, 8}, TinyLowBitSpec's {2, 3, 4, 8}.
  for (int i = 0; i < low_bit->module().num_slots(); ++i) {
    const torch::Tensor theirs = source->module().slot(i).depthwise_alpha;
    const torch::Tensor ours = low_bit->module().slot(i).depthwise_alpha;
    ASSERT_EQ(ours.size(0), 4);
    for (const int index : {0, 1, 2}) EXPECT_EQ(ours[index].item<float>(), theirs[0].item<float>());
    EXPECT_EQ(ours[3].item<float>(), theirs[1].item<float>());
  }
  Rng rng(6);
  const Genotype genotype = source->space().Sample(rng);  // Bits 4 and 8: in both spaces.
  for (const bool quantized : {false, true}) {
    ASSERT_TRUE(source->SetActiveSubnet(genotype).ok());
    ASSERT_TRUE(low_bit->SetActiveSubnet(genotype).ok());
    source->SetQuantized(quantized);
    low_bit->SetQuantized(quantized);
    EXPECT_EQ(MaxAbsDifference(LogitsOf(*source), LogitsOf(*low_bit)), 0.0) << quantized;
  }
  // And the loaded supernet runs at 2 and 3 bits.
  for (const int bits : {2, 3}) {
    ASSERT_TRUE(low_bit->SetActiveSubnet(low_bit->LargestGenotype(bits)).ok());
    const std::vector<float> logits = LogitsOf(*low_bit);
    for (const float value : logits) ASSERT_TRUE(std::isfinite(value)) << bits;
  }
}

TEST(SupernetTest, WeightsOfAnotherNetworkAreRejectedNamingTheField) {
  const std::string path = TempPath("other_network.pt");
  ASSERT_TRUE(MakeTiny()->SaveWeights(path).ok());
  MbConvSpec wider = TinyLowBitSpec();
  wider.feature_mix_channels = 24;
  std::unique_ptr<Supernet> other = Supernet::Create(wider, 1).value();
  const std::vector<float> before = LogitsOf(*other);
  const absl::Status status = other->LoadWeightsOfSameNetwork(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("another network"));
  EXPECT_THAT(status.message(), HasSubstr("feature_mix_channels is '16' there but '24'"));
  EXPECT_EQ(MaxAbsDifference(before, LogitsOf(*other)), 0.0);
  EXPECT_EQ(other->LoadWeightsOfSameNetwork(TempPath("absent.pt")).code(),
            absl::StatusCode::kNotFound);
}

TEST(SupernetTest, EvaluateRecalibratesAndIsDeterministic) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  const LabeledImages calibration = SelectImages(RealImages(), SubsetIndices(200, 100, 1));
  absl::StatusOr<EvalResult> first = supernet->Evaluate(calibration, RealImages());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GE(first->accuracy, 0.0);
  EXPECT_LE(first->accuracy, 1.0);
  absl::StatusOr<EvalResult> second = supernet->Evaluate(calibration, RealImages());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->accuracy, second->accuracy);
  // Recalibration leaves the first BN's running mean at the calibration images' mean
  // activation per channel (all 4 channels of the first conv are used).
  const torch::Tensor mean = supernet->module().named_buffers()["first_conv_bn_running_mean"];
  EXPECT_GT(mean.abs().sum().item<double>(), 0.0);
}

TEST(SupernetTest, EvaluateStopsWhenCancelled) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  const LabeledImages calibration = SelectImages(RealImages(), SubsetIndices(200, 100, 1));
  EvalOptions options;
  options.calibration_batch_size = 50;
  options.eval_batch_size = 50;
  int polls = 0;
  // Cancelled at the third poll: during evaluation, after the two calibration batches.
  options.cancelled = [&polls] { return ++polls >= 3; };
  absl::StatusOr<EvalResult> result = supernet->Evaluate(calibration, RealImages(), options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 3);
  options.cancelled = [] { return true; };
  EXPECT_EQ(supernet->RecalibrateBatchNorm(calibration, options).code(),
            absl::StatusCode::kCancelled);
  // Usable afterwards.
  options.cancelled = nullptr;
  EXPECT_TRUE(supernet->Evaluate(calibration, RealImages(), options).ok());
}

}  // namespace
}  // namespace apq::oface
