#include "oface/subnet_finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

// The permutation of the training images for `epoch` (Fisher-Yates with the portable Rng).
std::vector<int64_t> EpochOrder(int count, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  for (int64_t i = count - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Uniform(static_cast<uint32_t>(i + 1))]);
  }
  return order;
}

}  // namespace

absl::StatusOr<FineTuneReport> FineTuneActiveSubnet(Supernet& supernet, const LabeledImages& train,
                                                    const FineTuneOptions& options) {
  if (absl::Status status = ValidateOptions(train, options); !status.ok()) return status;
  const auto start = std::chrono::steady_clock::now();
  supernet_internal::SupernetModuleImpl& module = supernet.module();
  const supernet_internal::SubnetChoice choice = supernet_internal::ChoiceFromGenotype(
      supernet.spec(), supernet.active_subnet(), supernet.quantized());
  FineTuneReport report;
  const int64_t window = std::max<int64_t>(options.steps / 10, 1);
  double first_sum = 0.0;
  double last_sum = 0.0;
  try {
    const torch::Tensor images_all = supernet_internal::ImagesToTensor(train);
    const torch::Tensor labels_all = supernet_internal::LabelsToTensor(train);
    // Parameters the subnet does not use get no gradient, and SGD skips them.
    torch::optim::SGD optimizer(
        module.parameters(),
        torch::optim::SGDOptions(options.learning_rate).momentum(kMomentum).nesterov(true));
    const int64_t steps_per_epoch = train.count / options.batch_size;
    std::vector<int64_t> order;
    int64_t order_epoch = -1;
    Rng flip_rng(options.seed ^ 0xF11BULL);
    module.train();
    for (int64_t step = 0; step < options.steps; ++step) {
      if (options.cancelled && options.cancelled()) {
        module.eval();
        return absl::CancelledError(absl::StrCat("fine-tune cancelled at step ", step));
      }
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

      optimizer.zero_grad();
      const torch::Tensor loss = torch::cross_entropy_loss(module.forward(images, choice), labels);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(module.parameters(), kGradientClipNorm);
      const double lr =
          0.5 * options.learning_rate *
          (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(options.steps)));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
      }
      optimizer.step();
      const double value = loss.item<double>();
      if (step < window) first_sum += value;
      if (step >= options.steps - window) last_sum += value;
    }
    module.eval();
  } catch (const std::exception& e) {
    module.eval();
    return absl::InternalError(absl::StrCat("fine-tune failed: ", e.what()));
  }
  report.steps = options.steps;
  report.first_loss = first_sum / window;
  report.last_loss = last_sum / window;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace apq::oface
