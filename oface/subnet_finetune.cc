#include "oface/subnet_finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "oface/rng.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

constexpr double kMomentum = 0.9;
constexpr double kGradientClipNorm = 5.0;
constexpr int64_t kMaxSteps = 1000000;

absl::Status ValidateOptions(const LabeledImages& train, const FineTuneOptions& options) {
  if (train.count <= 0) return absl::InvalidArgumentError("fine-tune: no training images");
  if (options.steps < 1 || options.steps > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: must be in [1, ", kMaxSteps, "], got ", options.steps));
  }
  if (options.batch_size < 1 || options.batch_size > train.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be in [1, ", train.count, "], got ", options.batch_size));
  }
  if (!(options.learning_rate > 0.0 && options.learning_rate <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate: must be in (0, 1], got ", options.learning_rate));
  }
  return absl::OkStatus();
}

// "pw_w_bits_setting[3]" -> 3 with `prefix` "pw_w_bits_setting["; -1 otherwise.
int SlotOfGene(const std::string& name, absl::string_view prefix) {
  if (!absl::StartsWith(name, prefix) || !absl::EndsWith(name, "]")) return -1;
  int slot = -1;
  if (!absl::SimpleAtoi(
          absl::string_view(name).substr(prefix.size(), name.size() - prefix.size() - 1), &slot)) {
    return -1;
  }
  return slot;
}

using UsedWeight = supernet_internal::UsedWeight;

// Gradient statistics of one slot weight since the last reset.
struct WeightStatistics {
  torch::Tensor squared_gradient_sum;  // Same shape as the weight.
  torch::Tensor last_weight;           // As the last step used it, detached.
};

std::string StatisticsName(int slot, UsedWeight::Kind kind) {
  return absl::StrCat(slot, ".", static_cast<int>(kind));
}

}  // namespace

std::vector<int64_t> EpochOrder(int count, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  for (int64_t i = count - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Uniform(static_cast<uint32_t>(i + 1))]);
  }
  return order;
}

struct SubnetTrainer::Impl {
  Impl(Supernet& supernet_in, const LabeledImages& train_in, const FineTuneOptions& options_in)
      : supernet(supernet_in),
        module(supernet_in.module()),
        train(train_in),
        options(options_in),
        flip_rng(options_in.seed ^ 0xF11BULL) {}

  Supernet& supernet;
  supernet_internal::SupernetModuleImpl& module;
  const LabeledImages& train;
  const FineTuneOptions options;
  Genotype policy;
  supernet_internal::SubnetChoice choice;
  torch::Tensor images_all;
  torch::Tensor labels_all;
  std::unique_ptr<torch::optim::SGD> optimizer;
  int64_t step = 0;
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  Rng flip_rng;
  double first_sum = 0.0;
  double last_sum = 0.0;
  double seconds = 0.0;
  // Per slot weight (StatisticsName), since the last reset.
  std::map<std::string, WeightStatistics> statistics;
  int64_t statistics_steps = 0;

  int64_t window() const { return std::max<int64_t>(options.steps / 10, 1); }

  // Gradients of the loss on one batch (zeroed first), added to the weight statistics.
  torch::Tensor Backward(const torch::Tensor& images, const torch::Tensor& labels) {
    std::vector<UsedWeight> used;
    module.set_used_weights(&used);
    optimizer->zero_grad();
    torch::Tensor loss = torch::cross_entropy_loss(module.forward(images, choice), labels);
    module.set_used_weights(nullptr);
    loss.backward();
    torch::NoGradGuard no_grad;
    for (const UsedWeight& weight : used) {
      if (!weight.weight.grad().defined()) continue;
      WeightStatistics& entry = statistics[StatisticsName(weight.slot, weight.kind)];
      const torch::Tensor squared = weight.weight.grad().square();
      entry.squared_gradient_sum = entry.squared_gradient_sum.defined()
                                       ? entry.squared_gradient_sum + squared
                                       : squared.clone();
      entry.last_weight = weight.weight.detach().clone();
    }
    ++statistics_steps;
    return loss;
  }

  // One step of SGD on the next batch; the loss in `loss_value`.
  void Step(double* loss_value) {
    const int64_t steps_per_epoch = train.count / options.batch_size;
    const int64_t epoch = step / steps_per_epoch;
    if (epoch != order_epoch) {
      order = EpochOrder(train.count, options.seed, epoch);
      order_epoch = epoch;
    }
    const int64_t offset = (step % steps_per_epoch) * options.batch_size;
    const torch::Tensor indices = torch::tensor(
        std::vector<int64_t>(order.begin() + offset, order.begin() + offset + options.batch_size),
        torch::kInt64);
    torch::Tensor images = images_all.index_select(0, indices);
    const torch::Tensor labels = labels_all.index_select(0, indices);
    std::vector<int64_t> flips(options.batch_size);
    for (int64_t& flip : flips) flip = flip_rng.Bernoulli(0.5) ? 1 : 0;
    const torch::Tensor flip_mask = torch::tensor(flips).to(torch::kBool).view({-1, 1, 1, 1});
    images = torch::where(flip_mask, images.flip({3}), images);

    const torch::Tensor loss = Backward(images, labels);
    torch::nn::utils::clip_grad_norm_(module.parameters(), kGradientClipNorm);
    const double lr =
        0.5 * options.learning_rate *
        (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(options.steps)));
    for (auto& group : optimizer->param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    }
    optimizer->step();
    *loss_value = loss.item<double>();
  }
};

SubnetTrainer::SubnetTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SubnetTrainer::~SubnetTrainer() = default;

absl::StatusOr<std::unique_ptr<SubnetTrainer>> SubnetTrainer::Create(
    Supernet& supernet, const LabeledImages& train, const Genotype& genotype,
    const FineTuneOptions& options) {
  if (absl::Status status = ValidateOptions(train, options); !status.ok()) return status;
  if (absl::Status status = supernet.SetActiveSubnet(genotype); !status.ok()) return status;
  auto impl = std::make_unique<Impl>(supernet, train, options);
  impl->policy = genotype;
  impl->choice =
      supernet_internal::ChoiceFromGenotype(supernet.spec(), genotype, supernet.quantized());
  try {
    impl->images_all = supernet_internal::ImagesToTensor(train);
    impl->labels_all = supernet_internal::LabelsToTensor(train);
    // Parameters the subnet does not use get no gradient, and SGD skips them.
    impl->optimizer = std::make_unique<torch::optim::SGD>(
        impl->module.parameters(),
        torch::optim::SGDOptions(options.learning_rate).momentum(kMomentum).nesterov(true));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("fine-tune failed: ", e.what()));
  }
  return std::unique_ptr<SubnetTrainer>(new SubnetTrainer(std::move(impl)));
}

absl::Status SubnetTrainer::SetPolicy(const Genotype& genotype) {
  const SearchSpace& space = impl_->supernet.space();
  if (genotype.size() != impl_->policy.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy: ", genotype.size(), " genes, expected ", impl_->policy.size()));
  }
  for (size_t g = 0; g < genotype.size(); ++g) {
    if (genotype[g] != impl_->policy[g] && !IsBitsGene(space.genes()[g])) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: gene ", space.genes()[g].name,
                       " differs from the trained architecture's (only bits may change)"));
    }
  }
  if (absl::Status status = impl_->supernet.SetActiveSubnet(genotype); !status.ok()) {
    return status;
  }
  impl_->policy = genotype;
  impl_->choice = supernet_internal::ChoiceFromGenotype(impl_->supernet.spec(), genotype,
                                                        impl_->supernet.quantized());
  return absl::OkStatus();
}

const Genotype& SubnetTrainer::policy() const { return impl_->policy; }
int64_t SubnetTrainer::steps_done() const { return impl_->step; }
int64_t SubnetTrainer::total_steps() const { return impl_->options.steps; }

absl::Status SubnetTrainer::Train(int64_t steps) {
  Impl& run = *impl_;
  const auto start = std::chrono::steady_clock::now();
  const int64_t end = std::min(run.options.steps, run.step + std::max<int64_t>(steps, 0));
  absl::Status status = absl::OkStatus();
  try {
    run.module.train();
    while (run.step < end) {
      if (run.options.cancelled && run.options.cancelled()) {
        status = absl::CancelledError(absl::StrCat("fine-tune cancelled at step ", run.step));
        break;
      }
      double value = 0.0;
      run.Step(&value);
      if (run.step < run.window()) run.first_sum += value;
      if (run.step >= run.options.steps - run.window()) run.last_sum += value;
      ++run.step;
    }
    run.module.eval();
  } catch (const std::exception& e) {
    run.module.set_used_weights(nullptr);
    run.module.eval();
    status = absl::InternalError(absl::StrCat("fine-tune failed: ", e.what()));
  }
  run.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return status;
}

FineTuneReport SubnetTrainer::Report() const {
  FineTuneReport report;
  report.steps = impl_->step;
  report.first_loss = impl_->first_sum / impl_->window();
  report.last_loss = impl_->last_sum / impl_->window();
  report.seconds = impl_->seconds;
  return report;
}

absl::StatusOr<std::vector<double>> SubnetTrainer::WeightSensitivity(
    int gene, const std::vector<int>& widths) const {
  const SearchSpace& space = impl_->supernet.space();
  if (gene < 0 || gene >= static_cast<int>(space.genes().size())) {
    return absl::InvalidArgumentError(absl::StrCat("gene: ", gene, " is not a gene of the space"));
  }
  const std::string& name = space.genes()[gene].name;
  std::vector<UsedWeight::Kind> kinds;
  int slot = SlotOfGene(name, "pw_w_bits_setting[");
  if (slot >= 0) {
    kinds = {UsedWeight::Kind::kExpand, UsedWeight::Kind::kProject};
  } else if ((slot = SlotOfGene(name, "dw_w_bits_setting[")) >= 0) {
    kinds = {UsedWeight::Kind::kDepthwise};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("gene: ", name, " is not the weight bits of a layer"));
  }
  for (const int bits : widths) {
    if (!supernet_internal::IsQuantizerBits(bits)) {
      return absl::InvalidArgumentError(absl::StrCat("widths: ", bits, " is outside [",
                                                     supernet_internal::kMinQuantBits, ", ",
                                                     supernet_internal::kMaxQuantBits, "] and not ",
                                                     supernet_internal::kFloatBits, " (float)"));
    }
  }
  if (impl_->statistics_steps == 0) {
    return absl::FailedPreconditionError("sensitivity: no training step since the last reset");
  }
  std::vector<double> sensitivity(widths.size(), 0.0);
  try {
    torch::NoGradGuard no_grad;
    for (const UsedWeight::Kind kind : kinds) {
      const auto found = impl_->statistics.find(StatisticsName(slot, kind));
      if (found == impl_->statistics.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("gene: ", name, " is not used by the policy being trained"));
      }
      const torch::Tensor fisher =
          found->second.squared_gradient_sum / static_cast<double>(impl_->statistics_steps);
      const torch::Tensor& weight = found->second.last_weight;
      for (size_t b = 0; b < widths.size(); ++b) {
        const torch::Tensor noise = supernet_internal::FakeQuantWeight(weight, widths[b]) - weight;
        sensitivity[b] += (fisher * noise.square()).sum().item<double>();
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("sensitivity failed: ", e.what()));
  }
  return sensitivity;
}

absl::Status SubnetTrainer::AccumulateGradients(int batches) {
  Impl& run = *impl_;
  const int64_t available = run.train.count / run.options.batch_size;
  if (batches < 1 || batches > available) {
    return absl::InvalidArgumentError(
        absl::StrCat("batches: must be in [1, ", available, "], got ", batches));
  }
  try {
    // Batch norm as in training (batch statistics) without touching the running ones.
    const double momentum = run.module.bn_momentum();
    run.module.set_bn_momentum(0.0);
    run.module.train();
    const std::vector<int64_t> order =
        EpochOrder(run.train.count, run.options.seed ^ 0x5E115ULL, /*epoch=*/0);
    for (int b = 0; b < batches; ++b) {
      if (run.options.cancelled && run.options.cancelled()) {
        run.module.set_bn_momentum(momentum);
        run.module.eval();
        run.optimizer->zero_grad();
        return absl::CancelledError("gradient statistics cancelled");
      }
      const int64_t offset = static_cast<int64_t>(b) * run.options.batch_size;
      const torch::Tensor indices =
          torch::tensor(std::vector<int64_t>(order.begin() + offset,
                                             order.begin() + offset + run.options.batch_size),
                        torch::kInt64);
      run.Backward(run.images_all.index_select(0, indices),
                   run.labels_all.index_select(0, indices));
    }
    run.optimizer->zero_grad();
    run.module.set_bn_momentum(momentum);
    run.module.eval();
  } catch (const std::exception& e) {
    run.module.set_used_weights(nullptr);
    run.module.eval();
    return absl::InternalError(absl::StrCat("gradient statistics failed: ", e.what()));
  }
  return absl::OkStatus();
}

void SubnetTrainer::ResetSensitivity() {
  impl_->statistics.clear();
  impl_->statistics_steps = 0;
}

namespace {

constexpr char kStateTag[] = "subnet_trainer_1";

torch::Tensor Int64s(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::kInt64);
}

}  // namespace

absl::StatusOr<std::string> SubnetTrainer::SaveState() const {
  const Impl& run = *impl_;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("tag", supernet_internal::TextTensor(kStateTag));
    torch::serialize::OutputArchive weights;
    run.module.save(weights);
    archive.write("module", weights);
    torch::serialize::OutputArchive optimizer;
    run.optimizer->save(optimizer);
    archive.write("optimizer", optimizer);
    std::vector<int64_t> rng_state(run.flip_rng.state().begin(), run.flip_rng.state().end());
    archive.write("rng", Int64s(rng_state));
    archive.write("counters", Int64s({run.step, run.order_epoch, run.statistics_steps,
                                      static_cast<int64_t>(run.options.steps),
                                      static_cast<int64_t>(run.options.batch_size)}));
    archive.write("losses",
                  torch::tensor({run.first_sum, run.last_sum, run.seconds}, torch::kFloat64));
    archive.write("policy", Int64s(std::vector<int64_t>(run.policy.begin(), run.policy.end())));
    std::vector<int64_t> statistic_keys;
    for (const auto& [name, entry] : run.statistics) {
      archive.write(absl::StrCat("gradient.", name), entry.squared_gradient_sum);
      archive.write(absl::StrCat("weight.", name), entry.last_weight);
    }
    std::string names;
    for (const auto& [name, entry] : run.statistics) absl::StrAppend(&names, name, ";");
    archive.write("statistics", supernet_internal::TextTensor(names));
    return supernet_internal::ArchiveToBytes(archive);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("trainer state: ", e.what()));
  }
}

absl::Status SubnetTrainer::RestoreState(absl::string_view state) {
  Impl& run = *impl_;
  const auto corrupt = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("trainer state: ", why));
  };
  try {
    torch::serialize::InputArchive archive;
    supernet_internal::ArchiveFromBytes(static_cast<std::string>(state), archive);
    if (supernet_internal::ReadText(archive, "tag") != kStateTag)
      return corrupt("not a trainer's state");
    const std::vector<int64_t> counters = supernet_internal::ReadInt64s(archive, "counters");
    if (counters.size() != 5 || counters[3] != run.options.steps ||
        counters[4] != run.options.batch_size || counters[0] < 0 ||
        counters[0] > run.options.steps) {
      return corrupt("written for another run");
    }
    const std::vector<int64_t> policy = supernet_internal::ReadInt64s(archive, "policy");
    const Genotype genotype(policy.begin(), policy.end());
    if (absl::Status status = SetPolicy(genotype); !status.ok()) {
      return corrupt(status.message());
    }
    const std::vector<int64_t> rng = supernet_internal::ReadInt64s(archive, "rng");
    if (rng.size() != 4) return corrupt("batch order");
    torch::serialize::InputArchive weights;
    archive.read("module", weights);
    run.module.load(weights);
    torch::serialize::InputArchive optimizer;
    archive.read("optimizer", optimizer);
    run.optimizer->load(optimizer);
    torch::Tensor losses;
    archive.read("losses", losses);
    if (losses.numel() != 3) return corrupt("losses");
    const std::string names = supernet_internal::ReadText(archive, "statistics");
    run.statistics.clear();
    for (const absl::string_view name : absl::StrSplit(names, ';', absl::SkipEmpty())) {
      WeightStatistics entry;
      archive.read(absl::StrCat("gradient.", name), entry.squared_gradient_sum);
      archive.read(absl::StrCat("weight.", name), entry.last_weight);
      run.statistics[static_cast<std::string>(name)] = entry;
    }
    Rng::State rng_state;
    for (size_t i = 0; i < 4; ++i) rng_state[i] = static_cast<uint64_t>(rng[i]);
    run.flip_rng.set_state(rng_state);
    run.step = counters[0];
    run.order_epoch = -1;  // Recomputed from the seed at the next step.
    run.statistics_steps = counters[2];
    const torch::Tensor loss_values = losses.to(torch::kFloat64).contiguous();
    run.first_sum = loss_values[0].item<double>();
    run.last_sum = loss_values[1].item<double>();
    run.seconds = loss_values[2].item<double>();
  } catch (const std::exception& e) {
    return corrupt(supernet_internal::ErrorMessage(e));
  }
  return absl::OkStatus();
}

absl::StatusOr<FineTuneReport> FineTuneActiveSubnet(Supernet& supernet, const LabeledImages& train,
                                                    const FineTuneOptions& options) {
  auto trainer = SubnetTrainer::Create(supernet, train, supernet.active_subnet(), options);
  if (!trainer.ok()) return trainer.status();
  if (absl::Status status = (*trainer)->Train(options.steps); !status.ok()) return status;
  return (*trainer)->Report();
}

}  // namespace apq::oface
