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

}  // namespace
}  // namespace apq::oface
