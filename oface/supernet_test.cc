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
