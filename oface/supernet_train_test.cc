#include "oface/supernet_train.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/supernet.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

TrainOptions TinyOptions(const std::string& name) {
  TrainOptions options;
  options.spec = TinySpec();
  const char* dir = std::getenv("TEST_TMPDIR");
  options.out_dir = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
  // One thread: two LibTorch threads on a shared 2-core machine collapse under load.
  options.threads = 1;
  options.batch_size = 32;
  options.train_limit = 320;  // 10 steps per epoch.
  options.eval_limit = 200;
  options.calibration_images = 64;
  options.phase_epochs = {4.0, 0.0, 0.0};
  options.phase_learning_rates = {0.05, 0.02, 0.01};
  options.warmup_steps = 0;
  options.log_every = 10;
  options.checkpoint_every = 5;
  options.evaluate_at_phase_end = false;
  return options;
}

TEST(SupernetTrainTest, AFewStepsOnRealDataReduceTheLoss) {
  TrainOptions options = TinyOptions("loss");
  std::vector<double> losses;
  options.on_progress = [&](const TrainProgress& progress) { losses.push_back(progress.loss); };
  ASSERT_TRUE(TrainSupernet(options).ok());
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), losses.front() - 0.1) << losses.front() << " -> " << losses.back();
}

TEST(SupernetTrainTest, AllPhasesRunAndWriteTheirWeights) {
  TrainOptions options = TinyOptions("phases");
  options.phase_epochs = {0.5, 0.5, 0.5};
  options.evaluate_at_phase_end = true;
  std::vector<std::string> lines;
  options.on_log = [&](const std::string& line) { lines.push_back(line); };
  ASSERT_TRUE(TrainSupernet(options).ok());
  int evaluations = 0;
  for (const std::string& line : lines)
    evaluations += line.find("validation_accuracy=") != std::string::npos;
  EXPECT_EQ(evaluations, 2 + 2 + 3);
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinySpec(), 9);
  ASSERT_TRUE(supernet.ok());
  for (const char* phase : {"full", "sandwich", "quant"}) {
    EXPECT_TRUE(
        (*supernet)->LoadWeights(absl::StrCat(options.out_dir, "/supernet_", phase, ".pt")).ok())
        << phase;
  }
}

TEST(SupernetTrainTest, PhaseEndsEvaluateWithoutReadingTheDatasetAgain) {
  // The training files, linked into a folder that loses them once training has started: the
  // phase-end evaluation must use what the start read.
  TrainOptions options = TinyOptions("phase_end_reads");
  const std::filesystem::path linked = options.out_dir + "_dataset";
  std::filesystem::create_directories(linked);
  const std::vector<std::string> files = {"train-images-idx3-ubyte.gz",
                                          "train-labels-idx1-ubyte.gz"};
  for (const std::string& file : files) {
    std::filesystem::remove(linked / file);
    std::filesystem::create_symlink(std::filesystem::path(kDefaultFashionMnistDir) / file,
                                    linked / file);
  }
  options.data_dir = linked.string();
  options.phase_epochs = {0.5, 0.0, 0.0};
  options.evaluate_at_phase_end = true;
  std::vector<std::string> lines;
  options.on_log = [&](const std::string& line) {
    if (lines.empty()) {
      for (const std::string& file : files) std::filesystem::remove(linked / file);
    }
    lines.push_back(line);
  };
  const absl::Status trained = TrainSupernet(options);
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_FALSE(std::filesystem::exists(linked / files[0])) << "the files were gone";
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("subnet=largest quantized=0")));
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("subnet=smallest quantized=0")));
}

TEST(SupernetTrainTest, ResumeContinuesWhereTheCheckpointLeftOff) {
  // Uninterrupted reference run.
  TrainOptions reference = TinyOptions("reference");
  reference.phase_epochs = {1.0, 1.0, 0.0};
  std::vector<double> reference_losses;
  reference.log_every = 1;
  reference.on_progress = [&](const TrainProgress& p) { reference_losses.push_back(p.loss); };
  ASSERT_TRUE(TrainSupernet(reference).ok());

  // The same run stopped after 13 steps (3 into the sandwich phase), then resumed.
  TrainOptions interrupted = reference;
  interrupted.out_dir = absl::StrCat(reference.out_dir, "_interrupted");
  std::vector<double> losses;
  interrupted.on_progress = [&](const TrainProgress& p) { losses.push_back(p.loss); };
  interrupted.max_steps = 13;
  interrupted.checkpoint_every = 100;
  ASSERT_TRUE(TrainSupernet(interrupted).ok());
  ASSERT_EQ(losses.size(), 13u);

  // Without --resume, an existing checkpoint is not overwritten.
  interrupted.max_steps = 0;
  const absl::Status refused = TrainSupernet(interrupted);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--resume"));

  // max_steps stopped with a checkpoint at step 3 of the sandwich phase, holding the
  // optimizer's momentum: the resumed steps match the reference run's.
  interrupted.resume = true;
  ASSERT_TRUE(TrainSupernet(interrupted).ok());
  ASSERT_EQ(losses.size(), reference_losses.size());
  for (size_t i = 0; i < losses.size(); ++i) {
    EXPECT_NEAR(losses[i], reference_losses[i], 1e-4) << "step " << i + 1;
  }
}

TEST(SupernetTrainTest, CheckpointOfAnotherSpecIsRejected) {
  TrainOptions options = TinyOptions("other_spec");
  options.max_steps = 2;
  ASSERT_TRUE(TrainSupernet(options).ok());
  options.spec.feature_mix_channels = 24;
  options.resume = true;
  const absl::Status status = TrainSupernet(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("feature_mix_channels is '16' there but '24'"));
  EXPECT_THAT(status.message(), HasSubstr("checkpoint.pt"));
}

// The low-bit space's quant phase alone, from the full-precision weights of the same network
// trained for another spec (as fmnist_lowbit starts from fmnist_mbv2's supernet_fp32.pt).
TEST(SupernetTrainTest, QuantPhaseAloneFromTheWeightsOfAnotherSpec) {
  TrainOptions full = TinyOptions("init_source");
  full.phase_epochs = {1.0, 0.0, 0.0};
  ASSERT_TRUE(TrainSupernet(full).ok());
  const std::string source = absl::StrCat(full.out_dir, "/supernet_full.pt");

  TrainOptions low_bit = TinyOptions("init_low_bit");
  low_bit.spec = TinyLowBitSpec();
  low_bit.init_weights = source;
  low_bit.phase_epochs = {0.0, 0.0, 0.5};
  low_bit.evaluate_at_phase_end = true;
  std::vector<std::string> lines;
  low_bit.on_log = [&](const std::string& line) { lines.push_back(line); };
  std::vector<TrainProgress> progress;
  low_bit.on_progress = [&](const TrainProgress& p) { progress.push_back(p); };
  ASSERT_TRUE(TrainSupernet(low_bit).ok());
  // Only the quant phase trained, and its evaluations ran at the lowest bits, 2.
  ASSERT_FALSE(progress.empty());
  for (const TrainProgress& p : progress) EXPECT_EQ(p.phase, TrainPhase::kQuant);
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("started from " + source)));
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("subnet=largest@low_bits quantized=1")));

  // supernet_init.pt is the source in the low-bit spec's format: the same fp32 function.
  std::unique_ptr<Supernet> init = Supernet::Create(TinyLowBitSpec(), 5).value();
  ASSERT_TRUE(init->LoadWeights(absl::StrCat(low_bit.out_dir, "/supernet_init.pt")).ok());
  std::unique_ptr<Supernet> original = Supernet::Create(TinySpec(), 6).value();
  ASSERT_TRUE(original->LoadWeights(source).ok());
  std::unique_ptr<Supernet> quant = Supernet::Create(TinyLowBitSpec(), 7).value();
  ASSERT_TRUE(quant->LoadWeights(absl::StrCat(low_bit.out_dir, "/supernet_quant.pt")).ok());
  for (const char* phase : {"full", "sandwich"}) {
    EXPECT_FALSE(std::ifstream(absl::StrCat(low_bit.out_dir, "/supernet_", phase, ".pt")).good())
        << phase;
  }
  const LabeledImages images =
      LoadFashionMnist(low_bit.data_dir, FashionMnistSplit::kTest, 50).value();
  EXPECT_EQ(init->Logits(images).value(), original->Logits(images).value());

  // The run is done; resuming it with another spec is refused by the checkpoint.
  TrainOptions other = low_bit;
  other.spec = TinySpec();
  other.resume = true;
  const absl::Status refused = TrainSupernet(other);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("name is 'tiny_lowbit' there but 'tiny_fmnist'"));

  // Weights of another network are refused before any step.
  TrainOptions wrong = TinyOptions("init_wrong");
  wrong.spec = TinyLowBitSpec();
  wrong.spec.feature_mix_channels = 24;
  wrong.init_weights = source;
  wrong.phase_epochs = {0.0, 0.0, 0.5};
  const absl::Status status = TrainSupernet(wrong);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("another network"));
}

TEST(SupernetTrainTest, BadOptionsNameTheOption) {
  TrainOptions options = TinyOptions("bad");
  options.phase_epochs = {1.0, 2.0};
  EXPECT_THAT(TrainSupernet(options).message(), HasSubstr("phase_epochs"));
  options = TinyOptions("bad");
  options.threads = 0;
  EXPECT_THAT(TrainSupernet(options).message(), HasSubstr("threads"));
  options = TinyOptions("bad");
  options.data_dir = "/nonexistent";
  const absl::Status status = TrainSupernet(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/train-images-idx3-ubyte.gz"));
}

}  // namespace
}  // namespace apq::oface
