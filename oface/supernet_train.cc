#include "oface/supernet_train.h"

#include <c10/util/Exception.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "oface/rng.h"
#include "oface/supernet.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

using supernet_internal::SubnetChoice;
using supernet_internal::SupernetModuleImpl;

constexpr char kCheckpointName[] = "checkpoint.pt";
constexpr double kMomentum = 0.9;
constexpr double kGradientClipNorm = 5.0;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// A seed for (seed, stream, a, b): every random draw of the trainer comes from one of these.
uint64_t MixSeed(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  Rng rng(seed ^ (stream * 0x9E3779B97F4A7C15ULL));
  uint64_t value = rng.Next() ^ (a * 0xBF58476D1CE4E5B9ULL);
  Rng second(value ^ (b * 0x94D049BB133111EBULL));
  return second.Next();
}

// The schedule's options that a resumed run must share with the checkpoint.
std::string ScheduleFingerprint(const TrainOptions& options) {
  return absl::StrCat(
      "batch_size=", options.batch_size, " phase_epochs=", absl::StrJoin(options.phase_epochs, ","),
      " phase_learning_rates=", absl::StrJoin(options.phase_learning_rates, ","),
      " random_subnets=", options.random_subnets, " train_limit=", options.train_limit,
      " seed=", options.seed,
      " images=train-split:", IndexListHash(TrainingFileIndices(DataSplit::kTrain)));
}

absl::Status ValidateOptions(const TrainOptions& options) {
  const auto invalid = [](const std::string& message) {
    return absl::InvalidArgumentError(message);
  };
  if (options.out_dir.empty()) return invalid("out_dir is empty");
  if (options.threads < 1) return invalid(absl::StrCat("threads: ", options.threads, " < 1"));
  if (options.batch_size < 1) {
    return invalid(absl::StrCat("batch_size: ", options.batch_size, " < 1"));
  }
  if (options.phase_epochs.size() != kNumTrainPhases) {
    return invalid(absl::StrCat("phase_epochs: need ", kNumTrainPhases, " values, got ",
                                options.phase_epochs.size()));
  }
  if (options.phase_learning_rates.size() != kNumTrainPhases) {
    return invalid(absl::StrCat("phase_learning_rates: need ", kNumTrainPhases, " values, got ",
                                options.phase_learning_rates.size()));
  }
  for (int p = 0; p < kNumTrainPhases; ++p) {
    if (!(options.phase_epochs[p] >= 0.0)) {
      return invalid(absl::StrCat("phase_epochs[", p, "]: ", options.phase_epochs[p], " < 0"));
    }
    if (!(options.phase_learning_rates[p] > 0.0)) {
      return invalid(absl::StrCat("phase_learning_rates[", p,
                                  "]: ", options.phase_learning_rates[p], " is not positive"));
    }
  }
  if (options.random_subnets < 0) {
    return invalid(absl::StrCat("random_subnets: ", options.random_subnets, " < 0"));
  }
  if (options.checkpoint_every < 1) {
    return invalid(absl::StrCat("checkpoint_every: ", options.checkpoint_every, " < 1"));
  }
  if (options.log_every < 1) {
    return invalid(absl::StrCat("log_every: ", options.log_every, " < 1"));
  }
  if (options.warmup_steps < 0) {
    return invalid(absl::StrCat("warmup_steps: ", options.warmup_steps, " < 0"));
  }
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("out_dir ", path, " is not a directory"));
  }
  // One level at a time, like mkdir -p.
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0)
    RETURN_IF_ERROR(EnsureDirectory(path.substr(0, slash)));
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::UnavailableError(absl::StrCat("cannot create out_dir ", path));
  }
  return absl::OkStatus();
}

bool FileExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

class Trainer {
 public:
  Trainer(const TrainOptions& options, std::unique_ptr<Supernet> supernet)
      : options_(options), supernet_(std::move(supernet)), module_(supernet_->module()) {}

  absl::Status Run();

 private:
  void Log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }
  int64_t StepsInPhase(int phase) const {
    return static_cast<int64_t>(std::floor(options_.phase_epochs[phase] * steps_per_epoch_));
  }
  int SubnetsPerStep(int phase) const { return phase == 0 ? 1 : 2 + options_.random_subnets; }
  double LearningRate(int phase, int64_t step) const;
  void StartPhase(int phase);
  // One optimizer step; returns (summed loss over subnets, correct predictions of the
  // largest subnet, subnets trained).
  std::tuple<double, int64_t, int> Step(int phase, int64_t step);
  torch::Tensor BatchIndices(int phase, int64_t step) const;
  absl::Status SaveCheckpoint(int phase, int64_t step);
  absl::Status LoadCheckpoint(int* phase, int64_t* step);
  // A fresh run's start from options_.init_weights (when given), saved as supernet_init.pt.
  absl::Status LoadInitWeights();
  // Logs the accuracy of the largest and smallest subnets on the validation images.
  absl::Status EvaluateEnds(int phase);

  const TrainOptions& options_;
  std::unique_ptr<Supernet> supernet_;
  SupernetModuleImpl& module_;
  LabeledImages train_;
  // What EvaluateEnds needs, selected when the run starts (with evaluate_at_phase_end), so
  // that phase ends do not read and decompress the training file again.
  LabeledImages validation_;
  LabeledImages calibration_;
  torch::Tensor train_images_, train_labels_;
  int64_t steps_per_epoch_ = 0;
  std::unique_ptr<torch::optim::SGD> optimizer_;
};

double Trainer::LearningRate(int phase, int64_t step) const {
  const double base = options_.phase_learning_rates[phase];
  const int64_t total = std::max<int64_t>(StepsInPhase(phase), 1);
  if (phase == 0) {
    const int64_t warmup = std::min<int64_t>(options_.warmup_steps, total / 10);
    if (step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  return 0.5 * base *
         (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total)));
}

void Trainer::StartPhase(int phase) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const double lr = options_.phase_learning_rates[phase];
  groups.emplace_back(
      module_.DecayParameters(),
      std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(lr).momentum(kMomentum).nesterov(true).weight_decay(
              options_.weight_decay)));
  groups.emplace_back(module_.NoDecayParameters(),
                      std::make_unique<torch::optim::SGDOptions>(
                          torch::optim::SGDOptions(lr).momentum(kMomentum).nesterov(true)));
  optimizer_ = std::make_unique<torch::optim::SGD>(
      std::move(groups), torch::optim::SGDOptions(lr).momentum(kMomentum).nesterov(true));
}

torch::Tensor Trainer::BatchIndices(int phase, int64_t step) const {
  const int64_t epoch = step / steps_per_epoch_;
  const int64_t offset = (step % steps_per_epoch_) * options_.batch_size;
  // The epoch's permutation (Fisher-Yates with the trainer's portable generator).
  std::vector<int64_t> order(train_.count);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(MixSeed(options_.seed, 1, phase, epoch));
  for (int64_t i = train_.count - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Uniform(static_cast<uint32_t>(i + 1))]);
  }
  return torch::tensor(
      std::vector<int64_t>(order.begin() + offset, order.begin() + offset + options_.batch_size),
      torch::kInt64);
}

std::tuple<double, int64_t, int> Trainer::Step(int phase, int64_t step) {
  Rng rng(MixSeed(options_.seed, 2, phase, step));
  const torch::Tensor indices = BatchIndices(phase, step);
  torch::Tensor images = train_images_.index_select(0, indices);
  const torch::Tensor labels = train_labels_.index_select(0, indices);
  // Random horizontal flips.
  std::vector<uint8_t> flips(options_.batch_size);
  for (uint8_t& flip : flips) flip = rng.Bernoulli(0.5) ? 1 : 0;
  const torch::Tensor flip_mask = torch::tensor(std::vector<int64_t>(flips.begin(), flips.end()))
                                      .to(torch::kBool)
                                      .view({-1, 1, 1, 1});
  images = torch::where(flip_mask, images.flip({3}), images);

  module_.train();
  optimizer_->zero_grad();
  const bool quantized = phase == 2;
  const int high_bits = options_.spec.bit_choices.back();
  const int low_bits = options_.spec.bit_choices.front();

  const SubnetChoice largest = supernet_internal::ChoiceFromGenotype(
      options_.spec, supernet_->LargestGenotype(high_bits), quantized);
  const torch::Tensor teacher_logits = module_.forward(images, largest);
  torch::Tensor loss = torch::cross_entropy_loss(teacher_logits, labels);
  loss.backward();
  double total_loss = loss.item<double>();
  const int64_t correct = teacher_logits.argmax(1).eq(labels).sum().item<int64_t>();
  int subnets = 1;

  if (phase >= 1) {
    const torch::Tensor soft_targets = torch::softmax(teacher_logits.detach(), 1);
    std::vector<Genotype> students = {supernet_->SmallestGenotype(low_bits)};
    for (int i = 0; i < options_.random_subnets; ++i)
      students.push_back(supernet_->space().Sample(rng));
    for (const Genotype& genotype : students) {
      const torch::Tensor logits = module_.forward(
          images, supernet_internal::ChoiceFromGenotype(options_.spec, genotype, quantized));
      // In-place distillation: cross-entropy against the largest subnet's predictions.
      torch::Tensor student_loss = -(soft_targets * torch::log_softmax(logits, 1)).sum(1).mean();
      student_loss.backward();
      total_loss += student_loss.item<double>();
      ++subnets;
    }
  }
  torch::nn::utils::clip_grad_norm_(module_.parameters(), kGradientClipNorm);
  const double lr = LearningRate(phase, step);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  }
  optimizer_->step();
  return {total_loss / subnets, correct, subnets};
}

absl::Status Trainer::SaveCheckpoint(int phase, int64_t step) {
  torch::serialize::OutputArchive archive;
  module_.save(archive);
  archive.write("spec_fingerprint", c10::IValue(SpecFingerprint(options_.spec)));
  archive.write("trainer_schedule", c10::IValue(ScheduleFingerprint(options_)));
  archive.write("trainer_phase", c10::IValue(static_cast<int64_t>(phase)));
  archive.write("trainer_step", c10::IValue(step));
  archive.write("trainer_seed", c10::IValue(static_cast<int64_t>(options_.seed)));
  if (optimizer_ != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer_->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  return supernet_internal::SaveArchiveAtomically(
      archive, absl::StrCat(options_.out_dir, "/", kCheckpointName));
}

absl::Status Trainer::LoadCheckpoint(int* phase, int64_t* step) {
  const std::string path = absl::StrCat(options_.out_dir, "/", kCheckpointName);
  torch::serialize::InputArchive archive;
  RETURN_IF_ERROR(supernet_internal::LoadArchive(path, archive));
  c10::IValue fingerprint, schedule, phase_value, step_value;
  if (!archive.try_read("spec_fingerprint", fingerprint) || !fingerprint.isString() ||
      !archive.try_read("trainer_schedule", schedule) || !schedule.isString() ||
      !archive.try_read("trainer_phase", phase_value) || !phase_value.isInt() ||
      !archive.try_read("trainer_step", step_value) || !step_value.isInt()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, " lacks the trainer's fields (spec, schedule, phase, step)"));
  }
  RETURN_IF_ERROR(CheckSpecFingerprint(fingerprint.toStringRef(), options_.spec, path));
  if (schedule.toStringRef() != ScheduleFingerprint(options_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", path, " was written with another schedule: '", schedule.toStringRef(),
        "' there, '", ScheduleFingerprint(options_), "' now; resume with the same options"));
  }
  module_.load(archive);
  *phase = static_cast<int>(phase_value.toInt());
  *step = step_value.toInt();
  if (*phase < kNumTrainPhases) {
    StartPhase(*phase);
    torch::serialize::InputArchive optimizer_archive;
    if (*step > 0 && archive.try_read("optimizer", optimizer_archive)) {
      optimizer_->load(optimizer_archive);
    }
  }
  return absl::OkStatus();
}

absl::Status Trainer::LoadInitWeights() {
  if (options_.init_weights.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(supernet_->LoadWeightsOfSameNetwork(options_.init_weights));
  const std::string saved = absl::StrCat(options_.out_dir, "/supernet_init.pt");
  RETURN_IF_ERROR(supernet_->SaveWeights(saved));
  Log(absl::StrCat("started from ", options_.init_weights, " (saved for spec ", options_.spec.name,
                   " as ", saved, ")"));
  return absl::OkStatus();
}

absl::Status Trainer::EvaluateEnds(int phase) {
  const bool quantized = phase == 2;
  const int high_bits = options_.spec.bit_choices.back();
  const int low_bits = options_.spec.bit_choices.front();
  std::vector<std::pair<std::string, Genotype>> subnets = {
      {"largest", supernet_->LargestGenotype(high_bits)},
      {"smallest", supernet_->SmallestGenotype(low_bits)}};
  if (quantized) subnets.push_back({"largest@low_bits", supernet_->LargestGenotype(low_bits)});
  for (const auto& [name, genotype] : subnets) {
    RETURN_IF_ERROR(supernet_->SetActiveSubnet(genotype));
    supernet_->SetQuantized(quantized);
    ASSIGN_OR_RETURN(const EvalResult result, supernet_->Evaluate(calibration_, validation_));
    Log(absl::StrFormat(
        "eval phase=%s subnet=%s quantized=%d validation_accuracy=%.4f seconds=%.1f",
        TrainPhaseName(static_cast<TrainPhase>(phase)), name, quantized, result.accuracy,
        result.seconds));
  }
  return absl::OkStatus();
}

absl::Status Trainer::Run() {
  torch::set_num_threads(options_.threads);
  {
    // Both splits come from one read of the training file, which is not kept.
    ASSIGN_OR_RETURN(const LabeledImages training_file, LoadTrainingFile(options_.data_dir));
    train_ = SelectTrainingFileSplit(training_file, DataSplit::kTrain, options_.train_limit);
    if (options_.evaluate_at_phase_end) {
      // Phase ends are judged on the validation split; the test images stay for final reports.
      validation_ =
          SelectTrainingFileSplit(training_file, DataSplit::kValidation, options_.eval_limit);
      calibration_ = SelectImages(
          train_, SubsetIndices(train_.count, options_.calibration_images, options_.seed));
    }
  }
  if (train_.rows != options_.spec.input_size || train_.cols != options_.spec.input_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("the dataset's images are ", train_.rows, "x", train_.cols, " but spec ",
                     options_.spec.name, " has input_size ", options_.spec.input_size));
  }
  steps_per_epoch_ = train_.count / options_.batch_size;
  if (steps_per_epoch_ < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size: ", options_.batch_size, " exceeds the ", train_.count, " training images"));
  }
  train_images_ = supernet_internal::ImagesToTensor(train_);
  train_labels_ = supernet_internal::LabelsToTensor(train_);

  int phase = 0;
  int64_t step = 0;
  const std::string checkpoint = absl::StrCat(options_.out_dir, "/", kCheckpointName);
  if (FileExists(checkpoint)) {
    if (!options_.resume) {
      return absl::FailedPreconditionError(
          absl::StrCat("out_dir ", options_.out_dir, " already holds ", kCheckpointName,
                       ": pass --resume to continue it, or choose another out_dir"));
    }
    RETURN_IF_ERROR(LoadCheckpoint(&phase, &step));
    Log(absl::StrCat("resumed from ", checkpoint, " at phase ",
                     TrainPhaseName(static_cast<TrainPhase>(phase)), " step ", step,
                     options_.init_weights.empty() ? "" : " (init_weights not read)"));
  } else {
    if (options_.resume) {
      Log(absl::StrCat("no checkpoint in ", options_.out_dir, ": starting from scratch"));
    }
    RETURN_IF_ERROR(LoadInitWeights());
  }

  int64_t steps_this_call = 0;
  for (; phase < kNumTrainPhases; ++phase, step = 0) {
    const int64_t total = StepsInPhase(phase);
    const std::string name = TrainPhaseName(static_cast<TrainPhase>(phase));
    if (step == 0) {
      // Sorting channels changes the parameters' meaning: only with a fresh optimizer.
      if (phase >= 1 && total > 0) RETURN_IF_ERROR(supernet_->ReorganizeMiddleWeights());
      StartPhase(phase);
      Log(absl::StrCat("phase ", name, ": ", total, " steps of batch ", options_.batch_size, " (",
                       steps_per_epoch_, " steps per epoch)"));
    }
    double window_loss = 0.0;
    int64_t window_correct = 0, window_steps = 0, window_subnet_images = 0;
    auto window_start = std::chrono::steady_clock::now();
    while (step < total) {
      if (options_.max_steps > 0 && steps_this_call >= options_.max_steps) {
        RETURN_IF_ERROR(SaveCheckpoint(phase, step));
        Log(absl::StrCat("stopped after max_steps=", options_.max_steps, " at phase ", name,
                         " step ", step, "; continue with resume"));
        return absl::OkStatus();
      }
      const auto [loss, correct, subnets] = Step(phase, step);
      ++step;
      ++steps_this_call;
      window_loss += loss;
      window_correct += correct;
      ++window_steps;
      window_subnet_images += static_cast<int64_t>(subnets) * options_.batch_size;
      if (step % options_.log_every == 0 || step == total) {
        const double seconds = std::max(Seconds(window_start), 1e-9);
        TrainProgress progress;
        progress.phase = static_cast<TrainPhase>(phase);
        progress.step = step;
        progress.steps_in_phase = total;
        progress.epoch = static_cast<double>(step) / steps_per_epoch_;
        progress.loss = window_loss / window_steps;
        progress.accuracy =
            static_cast<double>(window_correct) / (window_steps * options_.batch_size);
        progress.learning_rate = LearningRate(phase, step - 1);
        progress.images_per_second = window_steps * options_.batch_size / seconds;
        progress.subnet_images_per_second = window_subnet_images / seconds;
        // Rough: later phases' steps cost this phase's time per step scaled by the subnets they
        // train per step (an overestimate after the full phase, whose one subnet is the largest;
        // fake quantization's own cost is not counted).
        const double seconds_per_subnet =
            seconds / (static_cast<double>(window_subnet_images) / options_.batch_size);
        double remaining = static_cast<double>(total - step) * seconds / window_steps;
        for (int later = phase + 1; later < kNumTrainPhases; ++later) {
          remaining += StepsInPhase(later) * seconds_per_subnet * SubnetsPerStep(later);
        }
        progress.eta_seconds = remaining;
        if (options_.on_progress) options_.on_progress(progress);
        window_loss = 0.0;
        window_correct = window_steps = window_subnet_images = 0;
        window_start = std::chrono::steady_clock::now();
      }
      if (step % options_.checkpoint_every == 0 && step < total) {
        RETURN_IF_ERROR(SaveCheckpoint(phase, step));
      }
    }
    if (total > 0) {
      RETURN_IF_ERROR(
          supernet_->SaveWeights(absl::StrCat(options_.out_dir, "/supernet_", name, ".pt")));
      if (options_.evaluate_at_phase_end) RETURN_IF_ERROR(EvaluateEnds(phase));
    }
    // The next phase at step 0 (or the end): a kill from here on does not repeat this phase.
    optimizer_.reset();
    RETURN_IF_ERROR(SaveCheckpoint(phase + 1, 0));
    Log(absl::StrCat("phase ", name, " done"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* TrainPhaseName(TrainPhase phase) {
  switch (phase) {
    case TrainPhase::kFull:
      return "full";
    case TrainPhase::kSandwich:
      return "sandwich";
    case TrainPhase::kQuant:
      return "quant";
    case TrainPhase::kDone:
      return "done";
  }
  return "unknown";
}

std::string FormatProgress(const TrainProgress& p) {
  return absl::StrFormat(
      "phase=%s step=%d/%d epoch=%.2f loss=%.4f acc=%.4f lr=%.5f img/s=%.0f subnet_img/s=%.0f "
      "eta=%.0fmin",
      TrainPhaseName(p.phase), p.step, p.steps_in_phase, p.epoch, p.loss, p.accuracy,
      p.learning_rate, p.images_per_second, p.subnet_images_per_second, p.eta_seconds / 60.0);
}

absl::Status TrainSupernet(const TrainOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  RETURN_IF_ERROR(EnsureDirectory(options.out_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<Supernet> supernet,
                   Supernet::Create(options.spec, options.seed));
  Trainer trainer(options, std::move(supernet));
  try {
    return trainer.Run();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("training failed: ", supernet_internal::ErrorMessage(e)));
  }
}

}  // namespace apq::oface
