// The int8 export of subnets of the shipped Fashion-MNIST supernet: the true int8 module
// classifies as the fake-quantized network at W8A8 does, on both engines; with layers kept in
// float (fmnist_int8float) it mixes int8 and float ops and still does.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

// Top-1 agreement of two [n, 10] logit vectors.
int Agreement(const std::vector<float>& a, const std::vector<float>& b, int n) {
  int agree = 0;
  for (int i = 0; i < n; ++i) {
    const auto argmax = [i](const std::vector<float>& v) {
      return std::max_element(v.begin() + int64_t{i} * 10, v.begin() + int64_t{i} * 10 + 10) -
             v.begin();
    };
    agree += argmax(a) == argmax(b) ? 1 : 0;
  }
  return agree;
}

// The index of the gene named `name`; -1 when there is none.
int GeneIndex(const SearchSpace& space, const std::string& name) {
  for (size_t g = 0; g < space.genes().size(); ++g) {
    if (space.genes()[g].name == name) return static_cast<int>(g);
  }
  return -1;
}

// `genotype` with each layer's activation bits set to its weight bits (pairs W8A8 or W32A32).
Genotype PairedBits(const SearchSpace& space, Genotype genotype) {
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const std::string& name = space.genes()[g].name;
    for (const auto& [activation, weight] :
         {std::pair<std::string, std::string>{"pw_a_", "pw_w_"}, {"dw_a_", "dw_w_"}}) {
      if (!absl::StartsWith(name, activation)) continue;
      const int source = GeneIndex(space, weight + name.substr(activation.size()));
      EXPECT_GE(source, 0) << name;
      if (source >= 0) genotype[g] = genotype[source];
    }
  }
  return genotype;
}

TEST(Int8ExportTest, LayersKeptInFloatMixWithInt8OnesAndClassifyAsTheFakeQuantizedNetwork) {
  torch::set_num_threads(1);
  absl::StatusOr<std::unique_ptr<Supernet>> supernet =
      Supernet::Create(FashionMnistInt8FloatSpec(), 1);
  ASSERT_TRUE(supernet.ok()) << supernet.status();
  ASSERT_TRUE((*supernet)->LoadWeightsOfSameNetwork("data/fmnist_mbv2/supernet_quant.pt").ok());
  absl::StatusOr<EvaluationImages> images =
      LoadEvaluationImages(kDefaultFashionMnistDir, 500, 500, /*seed=*/1, DataSplit::kValidation);
  ASSERT_TRUE(images.ok()) << images.status();
  const SearchSpace& space = (*supernet)->space();
  Rng rng(7);
  std::vector<Genotype> configs = {(*supernet)->LargestGenotype(supernet_internal::kFloatBits),
                                   (*supernet)->SmallestGenotype(supernet_internal::kFloatBits)};
  int mixed = 0;
  while (mixed < 4) {
    const Genotype genotype = PairedBits(space, space.Sample(rng));
    if (!space.Validate(genotype).ok()) continue;
    configs.push_back(genotype);
    ++mixed;
  }
  for (const QuantizedEngine engine : AvailableQuantizedEngines()) {
    for (const Genotype& genotype : configs) {
      SCOPED_TRACE(absl::StrCat(QuantizedEngineName(engine), " ", space.ToJson(genotype)));
      absl::StatusOr<ExtractedSubnet> exported =
          ExtractInt8Subnet(**supernet, genotype, images->calibration, engine);
      ASSERT_TRUE(exported.ok()) << exported.status();
      absl::StatusOr<std::vector<float>> fake = (*supernet)->Logits(images->evaluated);
      absl::StatusOr<std::vector<float>> real = exported->Logits(images->evaluated);
      ASSERT_TRUE(fake.ok() && real.ok());
      const int n = images->evaluated.count;
      const int agree = Agreement(*fake, *real, n);
      std::printf("%s: top-1 agreement %d/%d\n", QuantizedEngineName(engine), agree, n);
      EXPECT_GE(agree, n * 97 / 100);
      // The stem and the tail are int8 whatever the policy; float layers are float convs.
      EXPECT_TRUE(absl::StrContains(exported->source(), "quantized.conv2d"));
      bool any_float = false;
      for (size_t g = 0; g < genotype.size(); ++g) {
        any_float |= IsBitsGene(space.genes()[g]) && genotype[g] == supernet_internal::kFloatBits;
      }
      EXPECT_EQ(absl::StrContains(exported->source(), "torch.conv2d("), any_float);
    }
  }
}

TEST(Int8ExportTest, ALayerAtAMixedPairIsRefusedNamingIt) {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet =
      Supernet::Create(FashionMnistInt8FloatSpec(), 1);
  ASSERT_TRUE(supernet.ok()) << supernet.status();
  const SearchSpace& space = (*supernet)->space();
  Genotype genotype = (*supernet)->LargestGenotype(8);
  const int gene = GeneIndex(space, "dw_a_bits_setting[0]");
  ASSERT_GE(gene, 0);
  genotype[gene] = supernet_internal::kFloatBits;
  absl::StatusOr<EvaluationImages> images =
      LoadEvaluationImages(kDefaultFashionMnistDir, 50, 50, /*seed=*/1, DataSplit::kValidation);
  ASSERT_TRUE(images.ok()) << images.status();
  absl::StatusOr<ExtractedSubnet> exported =
      ExtractInt8Subnet(**supernet, genotype, images->calibration, QuantizedEngine::kQnnpack);
  EXPECT_EQ(exported.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(exported.status().message(),
                                "stage 1 block 1 depthwise layers run at W8A32"))
      << exported.status();
}

TEST(Int8ExportTest, TheInt8ModuleClassifiesAsTheFakeQuantizedNetwork) {
  torch::set_num_threads(1);
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(FashionMnistSpec(), 1);
  ASSERT_TRUE(supernet.ok()) << supernet.status();
  ASSERT_TRUE((*supernet)->LoadWeights("data/fmnist_mbv2/supernet_quant.pt").ok());
  absl::StatusOr<EvaluationImages> images =
      LoadEvaluationImages(kDefaultFashionMnistDir, 500, 1000, /*seed=*/1, DataSplit::kValidation);
  ASSERT_TRUE(images.ok()) << images.status();
  const SearchSpace& space = (*supernet)->space();
  Rng rng(5);
  const Genotype all8 = (*supernet)->LargestGenotype(8);
  std::vector<Genotype> configs = {all8, (*supernet)->SmallestGenotype(8)};
  for (int i = 0; i < 2; ++i) {
    Genotype genotype = space.Sample(rng);
    for (size_t g = 0; g < genotype.size(); ++g) {
      if (IsBitsGene(space.genes()[g])) genotype[g] = all8[g];
    }
    configs.push_back(genotype);
  }
  for (const QuantizedEngine engine : AvailableQuantizedEngines()) {
    for (const Genotype& genotype : configs) {
      SCOPED_TRACE(absl::StrCat(QuantizedEngineName(engine), " ", space.ToJson(genotype)));
      absl::StatusOr<ExtractedSubnet> int8 =
          ExtractInt8Subnet(**supernet, genotype, images->calibration, engine);
      ASSERT_TRUE(int8.ok()) << int8.status();
      // The supernet is left at the genotype, quantized, recalibrated.
      absl::StatusOr<std::vector<float>> fake = (*supernet)->Logits(images->evaluated);
      absl::StatusOr<std::vector<float>> real = int8->Logits(images->evaluated);
      int agree = 0;
      double worst = 0;
      const int n = images->evaluated.count;
      for (int i = 0; i < n; ++i) {
        const auto argmax = [i](const std::vector<float>& v) {
          return std::max_element(v.begin() + int64_t{i} * 10, v.begin() + int64_t{i} * 10 + 10) -
                 v.begin();
        };
        agree += argmax(*fake) == argmax(*real) ? 1 : 0;
        for (int k = 0; k < 10; ++k) {
          worst = std::max(
              worst, std::abs(double{(*fake)[int64_t{i} * 10 + k]} - (*real)[int64_t{i} * 10 + k]));
        }
      }
      std::printf("%s: top-1 agreement %d/%d, worst logit difference %.4f\n",
                  QuantizedEngineName(engine), agree, n, worst);
      EXPECT_GE(agree, n * 97 / 100);
    }
  }
}

}  // namespace
}  // namespace apq::oface
