#include "oface/subnet_finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/supernet.h"
#include "oface/supernet_module.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

// 1,200 real training images: the first 1,000 train, the last 200 judge.
struct Images {
  LabeledImages train;
  LabeledImages judged;
};

const Images& RealImages() {
  static const Images* images = [] {
    const LabeledImages all =
        LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, 1200).value();
    std::vector<int> first(1000);
    std::vector<int> last(200);
    for (int i = 0; i < 1000; ++i) first[i] = i;
    for (int i = 0; i < 200; ++i) last[i] = 1000 + i;
    return new Images{SelectImages(all, first), SelectImages(all, last)};
  }();
  return *images;
}

std::unique_ptr<Supernet> TinyAtSmallest() {
  std::unique_ptr<Supernet> supernet = Supernet::Create(TinySpec(), 3).value();
  EXPECT_TRUE(supernet->SetActiveSubnet(supernet->SmallestGenotype(4)).ok());
  supernet->SetQuantized(true);
  return supernet;
}

std::vector<torch::Tensor> Snapshot(Supernet& supernet) {
  std::vector<torch::Tensor> copies;
  for (const torch::Tensor& parameter : supernet.module().parameters()) {
    copies.push_back(parameter.detach().clone());
  }
  return copies;
}

TEST(SubnetFineTuneTest, TrainsTheActiveSubnetAndNothingElse) {
  std::unique_ptr<Supernet> supernet = TinyAtSmallest();
  const EvalResult before = supernet->Evaluate(RealImages().train, RealImages().judged).value();
  const std::vector<torch::Tensor> initial = Snapshot(*supernet);
  FineTuneOptions options;
  options.steps = 120;
  options.batch_size = 50;
  options.learning_rate = 0.1;
  const FineTuneReport report =
      FineTuneActiveSubnet(*supernet, RealImages().train, options).value();
  EXPECT_EQ(report.steps, 120);
  EXPECT_LT(report.last_loss, report.first_loss);
  const EvalResult after = supernet->Evaluate(RealImages().train, RealImages().judged).value();
  // From an untrained network (about chance) to well above it on images it never saw.
  EXPECT_GT(after.accuracy, before.accuracy + 0.2);
  EXPECT_GT(after.accuracy, 0.5);

  // The smallest subnet leaves the second slot of each stage and the wider channels unused:
  // tensors it does not touch keep their values, and the ones it uses moved.
  const std::vector<torch::Tensor> final_weights = Snapshot(*supernet);
  int unchanged = 0;
  int changed = 0;
  for (size_t i = 0; i < initial.size(); ++i) {
    (torch::equal(initial[i], final_weights[i]) ? unchanged : changed) += 1;
  }
  EXPECT_GT(changed, 0);
  EXPECT_GT(unchanged, 0);
}

TEST(SubnetFineTuneTest, TheSameSeedGivesTheSameNetwork) {
  FineTuneOptions options;
  options.steps = 15;
  options.batch_size = 40;
  options.seed = 9;
  std::vector<std::vector<uint8_t>> correct;
  for (int run = 0; run < 2; ++run) {
    std::unique_ptr<Supernet> supernet = TinyAtSmallest();
    ASSERT_TRUE(FineTuneActiveSubnet(*supernet, RealImages().train, options).ok());
    const EvalResult result = supernet->Evaluate(RealImages().train, RealImages().judged).value();
    // Evaluate's per-image verdicts agree with its accuracy.
    ASSERT_EQ(result.correct.size(), 200u);
    EXPECT_DOUBLE_EQ(result.accuracy,
                     std::count(result.correct.begin(), result.correct.end(), 1) / 200.0);
    correct.push_back(result.correct);
  }
  EXPECT_EQ(correct[0], correct[1]);
}

TEST(SubnetFineTuneTest, RefusesBadOptionsAndStopsWhenCancelled) {
  std::unique_ptr<Supernet> supernet = TinyAtSmallest();
  const LabeledImages& train = RealImages().train;
  const struct {
    int64_t steps;
    int batch_size;
    double learning_rate;
    const char* mention;
  } bad[] = {{0, 10, 0.01, "steps"},        {2000000, 10, 0.01, "steps"},
             {5, 0, 0.01, "batch_size"},    {5, 1001, 0.01, "batch_size"},
             {5, 10, 0.0, "learning_rate"}, {5, 10, 2.0, "learning_rate"}};
  for (const auto& options_case : bad) {
    FineTuneOptions options;
    options.steps = options_case.steps;
    options.batch_size = options_case.batch_size;
    options.learning_rate = options_case.learning_rate;
    const absl::Status status = FineTuneActiveSubnet(*supernet, train, options).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << options_case.mention;
    EXPECT_THAT(status.message(), HasSubstr(options_case.mention));
  }
  EXPECT_EQ(FineTuneActiveSubnet(*supernet, LabeledImages{}, FineTuneOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);

  FineTuneOptions options;
  options.steps = 1000;
  options.batch_size = 10;
  int polls = 0;
  options.cancelled = [&] { return ++polls > 3; };
  const absl::Status cancelled = FineTuneActiveSubnet(*supernet, train, options).status();
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(cancelled.message(), HasSubstr("step 3"));
}

// The gene index of `name` in `supernet`'s space.
int GeneIndex(const Supernet& supernet, const std::string& name) {
  const auto& genes = supernet.space().genes();
  for (size_t g = 0; g < genes.size(); ++g) {
    if (genes[g].name == name) return static_cast<int>(g);
  }
  ADD_FAILURE() << "no gene " << name;
  return -1;
}

TEST(SubnetTrainerTest, AResumedRunEndsWhereAnUninterruptedOneDoes) {
  FineTuneOptions options;
  options.steps = 24;
  options.batch_size = 40;
  options.seed = 5;
  const Genotype policy = TinyAtSmallest()->SmallestGenotype(4);
  Genotype changed = policy;
  changed[GeneIndex(*TinyAtSmallest(), "pw_w_bits_setting[0]")] = 8;

  // Uninterrupted: 12 steps at `policy`, then 12 at `changed`.
  std::unique_ptr<Supernet> whole = TinyAtSmallest();
  auto straight = SubnetTrainer::Create(*whole, RealImages().train, policy, options).value();
  ASSERT_TRUE(straight->Train(12).ok());
  ASSERT_TRUE(straight->SetPolicy(changed).ok());
  ASSERT_TRUE(straight->Train(100).ok());  // Stops at the planned 24.
  EXPECT_EQ(straight->steps_done(), 24);

  // Interrupted after 18 steps; a fresh supernet with the same initial weights resumes.
  std::unique_ptr<Supernet> first = TinyAtSmallest();
  auto interrupted = SubnetTrainer::Create(*first, RealImages().train, policy, options).value();
  ASSERT_TRUE(interrupted->Train(12).ok());
  ASSERT_TRUE(interrupted->SetPolicy(changed).ok());
  ASSERT_TRUE(interrupted->Train(6).ok());
  const std::string state = interrupted->SaveState().value();
  std::unique_ptr<Supernet> second = TinyAtSmallest();
  auto resumed = SubnetTrainer::Create(*second, RealImages().train, policy, options).value();
  ASSERT_TRUE(resumed->RestoreState(state).ok());
  EXPECT_EQ(resumed->policy(), changed);
  EXPECT_EQ(resumed->steps_done(), 18);
  ASSERT_TRUE(resumed->Train(6).ok());

  const std::vector<torch::Tensor> expected = Snapshot(*whole);
  const std::vector<torch::Tensor> actual = Snapshot(*second);
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(torch::equal(expected[i], actual[i]));
  EXPECT_EQ(straight->Report().last_loss, resumed->Report().last_loss);
  EXPECT_EQ(straight->WeightSensitivity(GeneIndex(*whole, "dw_w_bits_setting[0]"), {2, 4}).value(),
            resumed->WeightSensitivity(GeneIndex(*whole, "dw_w_bits_setting[0]"), {2, 4}).value());

  EXPECT_EQ(resumed->RestoreState("not a state").code(), absl::StatusCode::kDataLoss);
  FineTuneOptions other = options;
  other.steps = 30;
  std::unique_ptr<Supernet> third = TinyAtSmallest();
  auto longer = SubnetTrainer::Create(*third, RealImages().train, policy, other).value();
  EXPECT_EQ(longer->RestoreState(state).code(), absl::StatusCode::kDataLoss);
}

TEST(SubnetTrainerTest, WeightSensitivityFallsWithMoreBitsAndNamesBadGenes) {
  std::unique_ptr<Supernet> supernet = TinyAtSmallest();
  FineTuneOptions options;
  options.steps = 10;
  options.batch_size = 40;
  auto trainer =
      SubnetTrainer::Create(*supernet, RealImages().train, supernet->SmallestGenotype(4), options)
          .value();
  const int pointwise = GeneIndex(*supernet, "pw_w_bits_setting[0]");
  EXPECT_EQ(trainer->WeightSensitivity(pointwise, {2}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(trainer->Train(5).ok());
  for (const char* name : {"pw_w_bits_setting[0]", "dw_w_bits_setting[0]"}) {
    const std::vector<double> sensitivity =
        trainer->WeightSensitivity(GeneIndex(*supernet, name), {2, 3, 4, 8}).value();
    ASSERT_EQ(sensitivity.size(), 4u);
    EXPECT_GT(sensitivity[0], sensitivity[1]) << name;
    EXPECT_GT(sensitivity[1], sensitivity[2]) << name;
    EXPECT_GT(sensitivity[2], sensitivity[3]) << name;
    EXPECT_GT(sensitivity[3], 0.0) << name;
  }
  const absl::Status activation =
      trainer->WeightSensitivity(GeneIndex(*supernet, "pw_a_bits_setting[0]"), {2}).status();
  EXPECT_EQ(activation.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(activation.message(), HasSubstr("pw_a_bits_setting[0]"));
  EXPECT_EQ(trainer->WeightSensitivity(pointwise, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The smallest network leaves the second slot of a stage unused.
  const absl::Status unused =
      trainer->WeightSensitivity(GeneIndex(*supernet, "pw_w_bits_setting[1]"), {2}).status();
  EXPECT_EQ(unused.code(), absl::StatusCode::kInvalidArgument);
  trainer->ResetSensitivity();
  EXPECT_EQ(trainer->WeightSensitivity(pointwise, {2}).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Gradients without training: nothing the network computes changes.
  std::vector<torch::Tensor> before;
  for (const torch::Tensor& tensor : supernet->module().buffers()) before.push_back(tensor.clone());
  const std::vector<torch::Tensor> weights = Snapshot(*supernet);
  ASSERT_TRUE(trainer->AccumulateGradients(2).ok());
  EXPECT_GT(trainer->WeightSensitivity(pointwise, {2}).value()[0], 0.0);
  EXPECT_EQ(trainer->steps_done(), 5);
  const std::vector<torch::Tensor> buffers = supernet->module().buffers();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], buffers[i]));
  const std::vector<torch::Tensor> after = Snapshot(*supernet);
  for (size_t i = 0; i < weights.size(); ++i) EXPECT_TRUE(torch::equal(weights[i], after[i]));
  EXPECT_EQ(trainer->AccumulateGradients(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trainer->AccumulateGradients(26).code(), absl::StatusCode::kInvalidArgument);

  const absl::Status architecture = trainer->SetPolicy(supernet->LargestGenotype(4));
  EXPECT_EQ(architecture.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(architecture.message(), HasSubstr("only bits may change"));
}

}  // namespace
}  // namespace apq::oface
