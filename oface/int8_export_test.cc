// The int8 export of subnets of the shipped Fashion-MNIST supernet: the true int8 module
// classifies as the fake-quantized network at W8A8 does, on both engines.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

namespace apq::oface {
namespace {

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
