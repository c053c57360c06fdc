#include "oface/subnet_export.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/supernet.h"
#include "oface/supernet_module.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

const LabeledImages& Images() {
  static const LabeledImages* images = [] {
    torch::set_num_threads(1);
    absl::StatusOr<LabeledImages> loaded =
        LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, 200);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return new LabeledImages(std::move(loaded).value());
  }();
  return *images;
}

LabeledImages Calibration() { return SelectImages(Images(), SubsetIndices(200, 120, 7)); }

double MaxAbsDifference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = a.size() == b.size() ? 0.0 : 1e9;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::fabs(double{a[i]} - b[i]));
  return worst;
}

// A tiny supernet whose shared tensors are far from their initial values, so that kernel
// transforms, clipping ranges and the BN affine parameters all matter.
std::unique_ptr<Supernet> MakeTrainedLookingTiny(const MbConvSpec& spec = TinySpec()) {
  absl::StatusOr<std::unique_ptr<Supernet>> created = Supernet::Create(spec, 3);
  EXPECT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Supernet> supernet = std::move(created).value();
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  for (auto& parameter : supernet->module().named_parameters()) {
    const std::string& name = parameter.key();
    torch::Tensor value = parameter.value();
    if (name.find("alpha") != std::string::npos) {
      value.mul_(0.5 + torch::rand(value.sizes()));
    } else if (name.find("bn_weight") != std::string::npos ||
               name.find("kernel_") != std::string::npos) {
      value.add_(torch::randn(value.sizes()) * 0.1);
    } else if (name.find("bn_bias") != std::string::npos) {
      value.add_(torch::randn(value.sizes()) * 0.05);
    }
  }
  return supernet;
}

std::vector<float> SupernetLogits(Supernet& supernet) {
  absl::StatusOr<std::vector<float>> logits = supernet.Logits(Images());
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.value_or(std::vector<float>{});
}

// Largest, smallest and a few random configs (varied kernels, widths, depths and bits).
std::vector<Genotype> Configs(const Supernet& supernet) {
  std::vector<Genotype> configs = {supernet.LargestGenotype(), supernet.SmallestGenotype()};
  Rng rng(21);
  for (int i = 0; i < 4; ++i) configs.push_back(supernet.space().Sample(rng));
  return configs;
}

TEST(SubnetExportTest, ExtractedSubnetComputesTheSupernetsForward) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  for (const bool quantized : {false, true}) {
    for (const Genotype& genotype : Configs(*supernet)) {
      absl::StatusOr<ExtractedSubnet> extracted =
          ExtractSubnet(*supernet, genotype, quantized, Calibration());
      ASSERT_TRUE(extracted.ok()) << extracted.status();
      EXPECT_EQ(supernet->active_subnet(), genotype);
      EXPECT_EQ(supernet->quantized(), quantized);
      absl::StatusOr<std::vector<float>> logits = extracted->Logits(Images());
      ASSERT_TRUE(logits.ok()) << logits.status();
      const std::vector<float> expected = SupernetLogits(*supernet);
      EXPECT_LT(MaxAbsDifference(*logits, expected), 1e-5)
          << (quantized ? "quantized " : "fp32 ") << supernet->space().ToJson(genotype);
      // Not vacuous: the logits vary across images.
      EXPECT_GT(*std::max_element(expected.begin(), expected.end()) -
                    *std::min_element(expected.begin(), expected.end()),
                1e-2);
    }
  }
}

// At 2 and 3 bits (ternary weights, 2-bit signed activations {-1, 0, 1} x step) the extracted
// module and the file a plain LibTorch program loads still compute the supernet's forward.
TEST(SubnetExportTest, ExportEqualsTheSupernetAtTwoAndThreeBits) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny(TinyLowBitSpec());
  std::vector<Genotype> configs;
  Rng rng(22);
  for (const int bits : {2, 3}) {
    configs.push_back(supernet->LargestGenotype(bits));
    configs.push_back(supernet->SmallestGenotype(bits));
    Genotype mixed = supernet->space().Sample(rng);
    const int num_slots = supernet->module().num_slots();
    for (int g = 2 * num_slots; g < 6 * num_slots; ++g) mixed[g] = g % 2 == 0 ? bits : 5 - bits;
    configs.push_back(mixed);  // 2- and 3-bit genes side by side.
  }
  int file = 0;
  for (const Genotype& genotype : configs) {
    absl::StatusOr<ExtractedSubnet> extracted =
        ExtractSubnet(*supernet, genotype, /*quantized=*/true, Calibration());
    ASSERT_TRUE(extracted.ok()) << extracted.status();
    const std::vector<float> expected = SupernetLogits(*supernet);
    absl::StatusOr<std::vector<float>> logits = extracted->Logits(Images());
    ASSERT_TRUE(logits.ok()) << logits.status();
    const std::string config = supernet->space().ToJson(genotype);
    EXPECT_LT(MaxAbsDifference(*logits, expected), 1e-5) << config;
    EXPECT_GT(*std::max_element(expected.begin(), expected.end()) -
                  *std::min_element(expected.begin(), expected.end()),
              1e-2)
        << config;

    const std::string path = TestTempPath(absl::StrCat("low_bit_subnet_", file++, ".pt"));
    ASSERT_TRUE(extracted->Save(path).ok());
    torch::jit::Module module = torch::jit::load(path);
    module.eval();
    const LabeledImages& images = Images();
    torch::NoGradGuard no_grad;
    const torch::Tensor input =
        torch::from_blob(const_cast<uint8_t*>(images.pixels.data()),
                         {images.count, 1, images.rows, images.cols}, torch::kUInt8)
            .to(torch::kFloat32) /
        255.0;
    const torch::Tensor output = module.forward({input}).toTensor().contiguous();
    const std::vector<float> loaded(output.data_ptr<float>(),
                                    output.data_ptr<float>() + output.numel());
    EXPECT_LT(MaxAbsDifference(loaded, expected), 1e-5) << config;
  }

  // The stored 2-bit weights are ternary per output channel: {-max, 0, max}.
  absl::StatusOr<ExtractedSubnet> ternary = ExtractSubnet(
      *supernet, supernet->LargestGenotype(/*bits=*/2), /*quantized=*/true, Calibration());
  ASSERT_TRUE(ternary.ok()) << ternary.status();
  const std::string path = TestTempPath("ternary_subnet.pt");
  ASSERT_TRUE(ternary->Save(path).ok());
  const torch::Tensor weight =
      torch::jit::load(path).attr("slot0_expand_weight").toTensor().reshape({-1, 4});
  const torch::Tensor ratio = weight / weight.abs().amax(1, /*keepdim=*/true);
  EXPECT_TRUE(torch::equal(ratio.abs() * (1 - ratio.abs()), torch::zeros_like(ratio)));
  EXPECT_THAT(ternary->source(), HasSubstr(", -1, 1)"));  // Signed 2-bit activations.
  EXPECT_THAT(ternary->source(), HasSubstr(", 0, 3)"));   // Unsigned 2-bit activations.
}

TEST(SubnetExportTest, QuantizedSubnetStoresQuantizedWeightsAndClippingRanges) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  const Genotype genotype = supernet->SmallestGenotype(/*bits=*/4);
  absl::StatusOr<ExtractedSubnet> extracted =
      ExtractSubnet(*supernet, genotype, /*quantized=*/true, Calibration());
  ASSERT_TRUE(extracted.ok()) << extracted.status();
  const std::string path = TestTempPath("quantized_subnet.pt");
  ASSERT_TRUE(extracted->Save(path).ok());
  torch::jit::Module module = torch::jit::load(path);
  bool saw_alpha = false;
  for (const auto& buffer : module.named_buffers()) {
    if (buffer.name.find("_alpha") != std::string::npos) saw_alpha = true;
  }
  EXPECT_TRUE(saw_alpha);
  // Slot 0's expand weight at 4 bits: at most 15 distinct multiples of each channel's step.
  const torch::Tensor weight = module.attr("slot0_expand_weight").toTensor();
  const torch::Tensor flat = weight.reshape({weight.size(0), -1});
  const torch::Tensor step = flat.abs().amax(1, /*keepdim=*/true) / 7.0;
  const torch::Tensor ratio = flat / step;
  EXPECT_LT((ratio - ratio.round()).abs().max().item<double>(), 1e-3);
  EXPECT_THAT(extracted->source(), HasSubstr("fake_quantize_per_tensor_affine"));
  EXPECT_EQ(module.attr("spec").toStringRef(), "tiny_fmnist");
  EXPECT_EQ(module.attr("config").toStringRef(), supernet->space().ToJson(genotype));
}

TEST(SubnetExportTest, ExtractionCopiesTheWeights) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  absl::StatusOr<ExtractedSubnet> extracted =
      ExtractSubnet(*supernet, supernet->LargestGenotype(), false, Calibration());
  ASSERT_TRUE(extracted.ok()) << extracted.status();
  absl::StatusOr<std::vector<float>> before = extracted->Logits(Images());
  ASSERT_TRUE(before.ok());
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : supernet->module().parameters()) parameter.add_(1.0);
  }
  absl::StatusOr<std::vector<float>> after = extracted->Logits(Images());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(MaxAbsDifference(*before, *after), 0.0);
  // The smallest subnet stores fewer elements than the largest.
  absl::StatusOr<ExtractedSubnet> smallest =
      ExtractSubnet(*supernet, supernet->SmallestGenotype(), false, Calibration());
  ASSERT_TRUE(smallest.ok());
  EXPECT_LT(smallest->num_stored_elements(), extracted->num_stored_elements());
}

TEST(SubnetExportTest, ExportLoadsInPlainLibTorchAndReproducesOutputsAndAccuracy) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  Rng rng(4);
  for (const bool quantized : {false, true}) {
    const Genotype genotype = supernet->space().Sample(rng);
    absl::StatusOr<ExtractedSubnet> extracted =
        ExtractSubnet(*supernet, genotype, quantized, Calibration());
    ASSERT_TRUE(extracted.ok()) << extracted.status();
    const std::string path = TestTempPath(absl::StrCat("subnet_", quantized, ".pt"));
    ASSERT_TRUE(extracted->Save(path).ok());

    // What a plain LibTorch program does: load, feed [N, 1, 28, 28] floats in [0, 1].
    torch::jit::Module module = torch::jit::load(path);
    module.eval();
    const LabeledImages& images = Images();
    const torch::Tensor input =
        torch::from_blob(const_cast<uint8_t*>(images.pixels.data()),
                         {images.count, 1, images.rows, images.cols}, torch::kUInt8)
            .to(torch::kFloat32) /
        255.0;
    torch::NoGradGuard no_grad;
    const torch::Tensor output = module.forward({input}).toTensor().contiguous();
    ASSERT_EQ(output.sizes(), (std::vector<int64_t>{images.count, 10}));
    const std::vector<float> loaded(output.data_ptr<float>(),
                                    output.data_ptr<float>() + output.numel());
    absl::StatusOr<std::vector<float>> logits = extracted->Logits(images);
    ASSERT_TRUE(logits.ok());
    EXPECT_LT(MaxAbsDifference(loaded, *logits), 1e-5);

    // The accuracy the supernet measures is what the exported file reproduces.
    absl::StatusOr<EvalResult> measured = supernet->Evaluate(Calibration(), images);
    ASSERT_TRUE(measured.ok()) << measured.status();
    absl::StatusOr<double> verified = VerifyExport(path, images, /*batch_size=*/64);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_NEAR(*verified, measured->accuracy, 1.0 / images.count + 1e-12);
    absl::StatusOr<double> extracted_accuracy = extracted->Accuracy(images, 64);
    ASSERT_TRUE(extracted_accuracy.ok());
    EXPECT_EQ(*extracted_accuracy, *verified);
  }
}

TEST(SubnetExportTest, ConfigOutsideTheSpecIsRejectedNamingTheGene) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  Genotype genotype = supernet->LargestGenotype();
  const int num_slots = supernet->module().num_slots();
  genotype[num_slots + 1] = 1000;  // mid[1]
  absl::StatusOr<ExtractedSubnet> extracted =
      ExtractSubnet(*supernet, genotype, false, Calibration());
  EXPECT_EQ(extracted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(extracted.status().message(), HasSubstr("mid[1]"));

  EXPECT_EQ(
      ExtractSubnet(*supernet, supernet->LargestGenotype(), false, LabeledImages{}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(SubnetExportTest, CheckpointOfAnotherSpecIsRejectedBeforeExtraction) {
  std::unique_ptr<Supernet> tiny = MakeTrainedLookingTiny();
  const std::string path = TestTempPath("tiny_weights.pt");
  ASSERT_TRUE(tiny->SaveWeights(path).ok());
  absl::StatusOr<std::unique_ptr<Supernet>> real = Supernet::Create(FashionMnistSpec(), 1);
  ASSERT_TRUE(real.ok()) << real.status();
  const absl::Status status = (*real)->LoadWeights(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("name is 'tiny_fmnist' there but 'fmnist_mbv2'"));
}

TEST(SubnetExportTest, VerifyExportNamesMissingAndCorruptFiles) {
  const std::string missing = TestTempPath("no_such_subnet.pt");
  absl::StatusOr<double> result = VerifyExport(missing, Images());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr(missing));

  const std::string corrupt = TestTempPath("corrupt_subnet.pt");
  std::ofstream(corrupt) << "not a torchscript archive";
  result = VerifyExport(corrupt, Images());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(result.status().message(), HasSubstr(corrupt));
}

// Configs of the tiny space with every layer at W8A8: largest, smallest and random
// architectures.
std::vector<Genotype> Int8Configs(const Supernet& supernet) {
  std::vector<Genotype> configs = {supernet.LargestGenotype(8), supernet.SmallestGenotype(8)};
  Rng rng(23);
  const Genotype all8 = supernet.LargestGenotype(8);
  for (int i = 0; i < 4; ++i) {
    Genotype genotype = supernet.space().Sample(rng);
    for (size_t g = 0; g < genotype.size(); ++g) {
      if (IsBitsGene(supernet.space().genes()[g])) genotype[g] = all8[g];
    }
    configs.push_back(genotype);
  }
  return configs;
}

// The int8 module computes the fake-quantized network's function: the same class for nearly
// every image and logits within a few of their quantization steps, on both engines.
TEST(SubnetExportTest, TheInt8ExportComputesTheFakeQuantizedNetworkOnBothEngines) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  for (const QuantizedEngine engine : AvailableQuantizedEngines()) {
    for (const Genotype& genotype : Int8Configs(*supernet)) {
      SCOPED_TRACE(
          absl::StrCat(QuantizedEngineName(engine), " ", supernet->space().ToJson(genotype)));
      absl::StatusOr<ExtractedSubnet> int8 =
          ExtractInt8Subnet(*supernet, genotype, Calibration(), engine);
      ASSERT_TRUE(int8.ok()) << int8.status();
      EXPECT_EQ(int8->int8_engine(), QuantizedEngineName(engine));
      EXPECT_NE(int8->source().find("quantized.conv2d_relu"), std::string::npos);
      const std::vector<float> expected = SupernetLogits(*supernet);
      absl::StatusOr<std::vector<float>> logits = int8->Logits(Images());
      ASSERT_TRUE(logits.ok()) << logits.status();
      ASSERT_EQ(logits->size(), expected.size());
      const float range = *std::max_element(expected.begin(), expected.end()) -
                          *std::min_element(expected.begin(), expected.end());
      EXPECT_LT(MaxAbsDifference(*logits, expected), 0.1 * range);
      int same = 0;
      const int images = static_cast<int>(expected.size() / 10);
      for (int n = 0; n < images; ++n) {
        const auto argmax = [n](const std::vector<float>& v) {
          return std::max_element(v.begin() + int64_t{n} * 10, v.begin() + int64_t{n} * 10 + 10) -
                 v.begin();
        };
        same += argmax(*logits) == argmax(expected) ? 1 : 0;
      }
      EXPECT_GE(same, images * 9 / 10) << same << " of " << images;
    }
  }
}

TEST(SubnetExportTest, TheInt8ExportLoadsInPlainLibTorchAndClassifiesAsBeforeSaving) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  absl::StatusOr<ExtractedSubnet> int8 = ExtractInt8Subnet(
      *supernet, supernet->LargestGenotype(8), Calibration(), QuantizedEngine::kQnnpack);
  ASSERT_TRUE(int8.ok()) << int8.status();
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/int8.pt");
  ASSERT_TRUE(int8->Save(path).ok());
  absl::StatusOr<double> before = int8->Accuracy(Images());
  ASSERT_TRUE(before.ok()) << before.status();
  absl::StatusOr<double> loaded = VerifyExport(path, Images());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, *before);
  torch::jit::Module module = torch::jit::load(path);
  EXPECT_EQ(module.attr("quantized_engine").toStringRef(), "qnnpack");
}

TEST(SubnetExportTest, TheInt8ExportRefusesALayerBelowEightBitsNamingIt) {
  std::unique_ptr<Supernet> supernet = MakeTrainedLookingTiny();
  const absl::StatusOr<ExtractedSubnet> refused = ExtractInt8Subnet(
      *supernet, supernet->LargestGenotype(4), Calibration(), QuantizedEngine::kQnnpack);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("stage 1 block 1 pointwise layers run at W4A4"));
}

}  // namespace
}  // namespace apq::oface
