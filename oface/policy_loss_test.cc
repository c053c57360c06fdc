#include "oface/policy_loss.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/supernet.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

LabeledImages TrainImages(int count) {
  absl::StatusOr<LabeledImages> images =
      LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, count);
  EXPECT_TRUE(images.ok()) << images.status();
  return images.ok() ? *std::move(images) : LabeledImages();
}

// The largest tiny low-bit network with every bitwidth at `bits`.
Genotype WithBits(const Supernet& supernet, int bits) { return supernet.LargestGenotype(bits); }

TEST(PolicyLossTest, MeanCrossEntropyOfKnownLogits) {
  // Equal logits: log(classes) whatever the label.
  EXPECT_NEAR(MeanCrossEntropy(std::vector<float>(20, 3.0f), {0, 9}, 10), std::log(10.0), 1e-12);
  // One confident right answer and one confident wrong one (logit 50 on class 1, label 0).
  std::vector<float> logits(20, 0.0f);
  logits[0] = 50;
  logits[10 + 1] = 50;
  const double wrong = 50 + std::log(1 + 9 * std::exp(-50.0));
  EXPECT_NEAR(MeanCrossEntropy(logits, {0, 0}, 10), wrong / 2, 1e-9);
}

TEST(PolicyLossTest, ALossDependsOnTheBitsAloneAndMatchesTheLogits) {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinyLowBitSpec(), 3);
  ASSERT_TRUE(supernet.ok()) << supernet.status();
  const LabeledImages all = TrainImages(300);
  const LabeledImages calibration = SelectImages(all, SubsetIndices(300, 100, 1));
  const LabeledImages images = SelectImages(all, SubsetIndices(300, 200, 2));
  const Genotype reference = WithBits(**supernet, 8);
  absl::StatusOr<std::unique_ptr<PolicyLoss>> loss =
      PolicyLoss::Create(**supernet, reference, calibration, images);
  ASSERT_TRUE(loss.ok()) << loss.status();

  const absl::StatusOr<double> at_reference = (*loss)->Loss(reference);
  ASSERT_TRUE(at_reference.ok()) << at_reference.status();
  ASSERT_TRUE(std::isfinite(*at_reference));
  // The same as the cross-entropy of the supernet's own logits at the reference.
  ASSERT_TRUE((*supernet)->SetActiveSubnet(reference).ok());
  const absl::StatusOr<std::vector<float>> logits = (*supernet)->Logits(images);
  ASSERT_TRUE(logits.ok());
  EXPECT_NEAR(*at_reference, MeanCrossEntropy(*logits, images.labels, 10), 1e-12);

  // Lower bits change it; measuring other policies leaves the reference's loss as it was.
  const absl::StatusOr<double> at_two_bits = (*loss)->Loss(WithBits(**supernet, 2));
  ASSERT_TRUE(at_two_bits.ok());
  EXPECT_NE(*at_two_bits, *at_reference);
  EXPECT_EQ(*(*loss)->Loss(reference), *at_reference);
  EXPECT_EQ(*(*loss)->Loss(WithBits(**supernet, 2)), *at_two_bits);
}

TEST(PolicyLossTest, LossesMeasuredByTwoThreadsEqualLossesOneByOne) {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinyLowBitSpec(), 3);
  ASSERT_TRUE(supernet.ok()) << supernet.status();
  const LabeledImages all = TrainImages(300);
  const LabeledImages calibration = SelectImages(all, SubsetIndices(300, 100, 1));
  const LabeledImages images = SelectImages(all, SubsetIndices(300, 200, 2));
  const Genotype reference = WithBits(**supernet, 8);
  std::unique_ptr<PolicyLoss> loss =
      PolicyLoss::Create(**supernet, reference, calibration, images).value();
  // Every bitwidth gene of the reference lowered one at a time, and uniform policies.
  std::vector<Genotype> genotypes = {reference, WithBits(**supernet, 2), WithBits(**supernet, 4)};
  const std::vector<GeneSpec>& genes = (*supernet)->space().genes();
  for (size_t g = 0; g < genes.size() && genotypes.size() < 11; ++g) {
    if (!IsBitsGene(genes[g])) continue;
    Genotype lowered = reference;
    lowered[g] = 2;
    genotypes.push_back(lowered);
  }
  std::vector<double> one_by_one;
  for (const Genotype& genotype : genotypes) one_by_one.push_back(loss->Loss(genotype).value());
  for (const int threads : {1, 2, 3}) {
    const absl::StatusOr<std::vector<double>> together = loss->Losses(genotypes, threads);
    ASSERT_TRUE(together.ok()) << together.status();
    EXPECT_EQ(*together, one_by_one) << threads << " threads";
  }
  // A bad genotype anywhere is refused before any is measured.
  std::vector<Genotype> with_bad = genotypes;
  with_bad.push_back((*supernet)->SmallestGenotype(8));
  EXPECT_THAT(std::string(loss->Losses(with_bad, 2).status().message()),
              HasSubstr("only bitwidths may change"));
}

TEST(PolicyLossTest, AnotherArchitectureIsRefusedNamingTheGene) {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinyLowBitSpec(), 3);
  ASSERT_TRUE(supernet.ok());
  const LabeledImages all = TrainImages(64);
  absl::StatusOr<std::unique_ptr<PolicyLoss>> loss =
      PolicyLoss::Create(**supernet, WithBits(**supernet, 8), all, all);
  ASSERT_TRUE(loss.ok());
  const absl::StatusOr<double> smaller = (*loss)->Loss((*supernet)->SmallestGenotype(8));
  EXPECT_EQ(smaller.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(smaller.status().message()), HasSubstr("only bitwidths may change"));
  EXPECT_EQ((*loss)->Loss(Genotype{1, 2}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      PolicyLoss::Create(**supernet, WithBits(**supernet, 8), LabeledImages(), all).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::oface
