#include "oface/precision_search.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "oface/rng.h"
#include "oface/subnet_finetune.h"
#include "oface/supernet_module.h"

namespace apq::oface {
namespace {

using supernet_internal::SlotBitMixture;
using supernet_internal::SubnetChoice;

constexpr double kMomentum = 0.9;
constexpr double kGradientClipNorm = 5.0;
constexpr int64_t kMaxSteps = 1000000;
constexpr int kBitwidths = 4;  // pw_w, pw_a, dw_w, dw_a, as in the genotype.
constexpr char kStateTag[] = "precision_search_1";
// A fixed layer in a saved state: slot, kind, weight choice, activation choice.
constexpr int kFixedFields = 4;

absl::Status ValidateOptions(const PrecisionSearchOptions& options, const LabeledImages& train,
                             const LabeledImages& validation) {
  const auto in_range = [](double value, double low, double high) {
    return value > low && value <= high;
  };
  if (options.steps < 1 || options.steps > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: must be in [1, ", kMaxSteps, "], got ", options.steps));
  }
  const int smaller = std::min(train.count, validation.count);
  if (smaller <= 0) return absl::InvalidArgumentError("images: the train and validation splits");
  if (options.batch_size < 1 || options.batch_size > smaller) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be in [1, ", smaller, "], got ", options.batch_size));
  }
  const struct {
    const char* name;
    double value;
    double high;
  } ranges[] = {{"weight_lr", options.weight_lr, 1.0},
                {"arch_lr", options.arch_lr, 1.0},
                {"temperature_start", options.temperature_start, 100.0},
                {"temperature_end", options.temperature_end, 100.0},
                {"cost_alpha", options.cost_alpha, 10.0},
                {"cost_beta", options.cost_beta, 10.0}};
  for (const auto& range : ranges) {
    if (!in_range(range.value, 0.0, range.high)) {
      return absl::InvalidArgumentError(
          absl::StrCat(range.name, ": must be in (0, ", range.high, "], got ", range.value));
    }
  }
  if (!std::isfinite(options.cost_scale) || options.cost_scale <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cost_scale: must be finite and > 0, got ", options.cost_scale));
  }
  if (!std::isfinite(options.cost_floor) || options.cost_floor < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cost_floor: must be finite and >= 0, got ", options.cost_floor));
  }
  if (options.temperature_end > options.temperature_start) {
    return absl::InvalidArgumentError(
        "temperature_end: must be at most temperature_start (the temperature anneals down)");
  }
  if (options.warmup_steps < 0 || options.warmup_steps > options.steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("warmup_steps: must be in [0, steps], got ", options.warmup_steps));
  }
  if (options.sequential_fixing && options.relaxation != PrecisionRelaxation::kSinglePath) {
    return absl::InvalidArgumentError(
        "sequential_fixing: only with the single-path relaxation (SSPS)");
  }
  if (options.search_architecture && options.relaxation != PrecisionRelaxation::kMixture) {
    return absl::InvalidArgumentError(
        "search_architecture: only with the mixture relaxation (DNAS)");
  }
  if (options.fix_every < 0 || options.fix_every > options.steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("fix_every: must be in [0, steps], got ", options.fix_every));
  }
  return absl::OkStatus();
}

// Gumbel(0, 1) noise of `sizes` drawn from `rng`.
torch::Tensor GumbelNoise(Rng& rng, at::IntArrayRef sizes) {
  int64_t count = 1;
  for (const int64_t size : sizes) count *= size;
  std::vector<float> gumbel(static_cast<size_t>(count));
  for (float& value : gumbel) {
    // u in (0, 1): never 0, so the logarithms are finite.
    const double u = (static_cast<double>(rng.Next() >> 11) + 0.5) * 0x1.0p-53;
    value = static_cast<float>(-std::log(-std::log(u)));
  }
  return torch::tensor(gumbel).view(sizes);
}

// Rows of `lists` as a [rows, longest] tensor: 0 where a row has a value, -inf past its end
// (added to logits, the padding gets probability 0 and no gradient).
torch::Tensor PaddingBias(const std::vector<std::vector<int>>& lists) {
  size_t longest = 0;
  for (const auto& list : lists) longest = std::max(longest, list.size());
  torch::Tensor bias = torch::zeros(
      {static_cast<int64_t>(lists.size()), static_cast<int64_t>(longest)}, torch::kFloat32);
  for (size_t row = 0; row < lists.size(); ++row) {
    for (size_t column = lists[row].size(); column < longest; ++column) {
      bias[static_cast<int64_t>(row)][static_cast<int64_t>(column)] =
          -std::numeric_limits<float>::infinity();
    }
  }
  return bias;
}

}  // namespace

struct PrecisionSearch::Impl {
  Impl(Supernet& supernet_in, const LabeledImages& train_in, const LabeledImages& validation_in,
       BitCostTable costs_in, const PrecisionSearchOptions& options_in)
      : supernet(supernet_in),
        module(supernet_in.module()),
        train(train_in),
        validation(validation_in),
        costs(std::move(costs_in)),
        options(options_in),
        noise(options_in.seed ^ 0x6A3B1ULL) {}

  Supernet& supernet;
  supernet_internal::SupernetModuleImpl& module;
  const LabeledImages& train;
  const LabeledImages& validation;
  const BitCostTable costs;
  const PrecisionSearchOptions options;
  Genotype genotype;
  SubnetChoice choice;
  std::vector<int> active;  // Slots the architecture uses, ascending.
  // Per slot, the genotype's index of each bitwidth gene (pw_w, pw_a, dw_w, dw_a).
  std::vector<std::array<int, kBitwidths>> bits_genes;
  int num_bits = 0;
  torch::Tensor logits;  // [slots, kBitwidths, num_bits]; rows of inactive slots unused.
  std::vector<std::array<torch::Tensor, 2>> cost_tables;  // Per slot: [num_bits, num_bits].
  torch::Tensor train_images, train_labels, validation_images, validation_labels;
  std::unique_ptr<torch::optim::SGD> weights_optimizer;
  std::unique_ptr<torch::optim::Adam> logits_optimizer;
  Rng noise;
  int64_t step = 0;
  double weight_loss = 0.0;
  double arch_loss = 0.0;
  // Sequential fixing: the steps between two fixes (0: off), the fixed layers in order with
  // their choices, and the same as a mask over the logits' rows with their one-hot rows.
  int64_t fix_interval = 0;
  std::vector<std::array<int, kFixedFields>> fixed;
  torch::Tensor fixed_mask;    // [slots, kBitwidths, 1], bool.
  torch::Tensor fixed_onehot;  // [slots, kBitwidths, num_bits].
  // Architecture search: per slot its kernel and mid choices and their genes, per stage its
  // depth choices, gene and first slot; logits padded to the longest list (PaddingBias);
  // per slot the pointwise tables [mids, bits, bits] and depthwise ones [kernels, mids, bits,
  // bits].
  std::vector<std::vector<int>> kernels, mids, depths;
  std::vector<int> kernel_gene, mid_gene, depth_gene, stage_first_slot;
  torch::Tensor kernel_logits, mid_logits, depth_logits;
  torch::Tensor kernel_bias, mid_bias, depth_bias;
  std::vector<torch::Tensor> pointwise_tables, depthwise_tables;

  // A sample of the architecture distributions: [slots, kernels], [slots, mids],
  // [stages, depths] (padding at 0).
  struct ArchSample {
    torch::Tensor kernels, mids, depths;
  };

  bool single_path() const { return options.relaxation == PrecisionRelaxation::kSinglePath; }
  bool searches_architecture() const { return options.search_architecture; }

  // A Gumbel-softmax sample of the architecture distributions at `temperature` (noise from
  // `rng`; none when null: the probabilities at temperature 1), differentiable unless
  // `detached`.
  ArchSample SampleArch(double temperature, Rng* rng, bool detached) const {
    const auto one = [&](const torch::Tensor& logits_of, const torch::Tensor& bias) {
      torch::Tensor scores = detached ? logits_of.detach() : logits_of;
      if (rng != nullptr) scores = scores + GumbelNoise(*rng, logits_of.sizes());
      return torch::softmax((scores + bias) / temperature, /*dim=*/1);
    };
    return {one(kernel_logits, kernel_bias), one(mid_logits, mid_bias),
            one(depth_logits, depth_bias)};
  }

  // The architecture distributions themselves.
  ArchSample ArchDistributions() const {
    torch::NoGradGuard no_grad;
    return SampleArch(1.0, nullptr, /*detached=*/true);
  }

  // `choice` with the sample's kernel, width and depth mixtures.
  void SetArchMixtures(const ArchSample& sample, SubnetChoice* out) const {
    out->arch_mixtures.assign(kernels.size(), {});
    for (size_t s = 0; s < kernels.size(); ++s) {
      const int64_t slot = static_cast<int64_t>(s);
      out->arch_mixtures[s] = {
          sample.kernels[slot].narrow(0, 0, static_cast<int64_t>(kernels[s].size())), kernels[s],
          sample.mids[slot].narrow(0, 0, static_cast<int64_t>(mids[s].size())), mids[s]};
    }
    out->depth_mixtures.clear();
    for (size_t stage = 0; stage < depths.size(); ++stage) {
      out->depth_mixtures.push_back({sample.depths[static_cast<int64_t>(stage)].narrow(
                                         0, 0, static_cast<int64_t>(depths[stage].size())),
                                     depths[stage]});
    }
  }

  // The expected cost with the bits distributed as `bits` ([slots, kBitwidths, num_bits]) and
  // the architecture as `arch`: per slot, its tables weighted by the width's and kernel's
  // probabilities, times the probability that its stage runs it.
  torch::Tensor ExpectedArchCostOf(const torch::Tensor& bits, const ArchSample& arch) const {
    torch::Tensor total = torch::zeros({}, torch::kFloat64);
    for (size_t stage = 0; stage < depths.size(); ++stage) {
      const std::vector<int>& choices = depths[stage];
      const int deepest = *std::max_element(choices.begin(), choices.end());
      const torch::Tensor depth_p = arch.depths[static_cast<int64_t>(stage)].to(torch::kFloat64);
      for (int j = 0; j < deepest; ++j) {
        const int s = stage_first_slot[stage] + j;
        // The probability that the stage's depth exceeds j.
        torch::Tensor runs = torch::zeros({}, torch::kFloat64);
        for (size_t d = 0; d < choices.size(); ++d) {
          if (choices[d] > j) runs = runs + depth_p[static_cast<int64_t>(d)];
        }
        const torch::Tensor slot_bits = bits[s].to(torch::kFloat64);
        const torch::Tensor pointwise =
            torch::einsum("mwa,w,a->m", {pointwise_tables[s], slot_bits[0], slot_bits[1]});
        const torch::Tensor depthwise =
            torch::einsum("kmwa,w,a->km", {depthwise_tables[s], slot_bits[2], slot_bits[3]});
        const torch::Tensor kernel_p = arch.kernels[s]
                                           .narrow(0, 0, static_cast<int64_t>(kernels[s].size()))
                                           .to(torch::kFloat64);
        const torch::Tensor mid_p =
            arch.mids[s].narrow(0, 0, static_cast<int64_t>(mids[s].size())).to(torch::kFloat64);
        total = total + runs * (torch::dot(mid_p, pointwise) +
                                torch::dot(kernel_p, torch::mv(depthwise, mid_p)));
      }
    }
    return total + costs.fixed;
  }

  // `genotype` with every architecture gene at the argmax of its row of `arch`.
  void ArchArgmax(const ArchSample& arch, Genotype* genotype_out) const {
    const auto argmax = [](const torch::Tensor& row) {
      return static_cast<size_t>(row.argmax().item<int64_t>());
    };
    for (size_t s = 0; s < kernels.size(); ++s) {
      const int64_t slot = static_cast<int64_t>(s);
      (*genotype_out)[kernel_gene[s]] = kernels[s][argmax(arch.kernels[slot])];
      (*genotype_out)[mid_gene[s]] = mids[s][argmax(arch.mids[slot])];
    }
    for (size_t stage = 0; stage < depths.size(); ++stage) {
      (*genotype_out)[depth_gene[stage]] =
          depths[stage][argmax(arch.depths[static_cast<int64_t>(stage)])];
    }
  }
  int layers() const { return 2 * static_cast<int>(active.size()); }

  // `distributions` ([slots, kBitwidths, bits]) with the fixed layers' rows one-hot at their
  // choices; no gradient reaches the logits through those rows.
  torch::Tensor ApplyFixed(const torch::Tensor& distributions) const {
    if (fixed.empty()) return distributions;
    return torch::where(fixed_mask, fixed_onehot, distributions);
  }

  // The distributions the search stands at: the logits' softmax, fixed layers one-hot.
  torch::Tensor Distributions() const {
    return ApplyFixed(torch::softmax(logits.detach(), /*dim=*/2));
  }

  void MarkFixed(const std::array<int, kFixedFields>& layer) {
    torch::NoGradGuard no_grad;
    for (int row = 0; row < 2; ++row) {
      const int64_t bitwidth = int64_t{2} * layer[1] + row;
      fixed_mask[layer[0]][bitwidth][0] = true;
      fixed_onehot[layer[0]][bitwidth].zero_();
      fixed_onehot[layer[0]][bitwidth][layer[2 + row]] = 1.0F;
    }
    fixed.push_back(layer);
  }

  // A straight-through single-path sample: one-hot in value at the argmax of a Gumbel-softmax
  // sample, with that sample's gradient unless `detached`; fixed layers at their choices.
  torch::Tensor SinglePathSample(double temperature, bool detached) {
    const torch::Tensor soft = Sample(temperature, /*with_noise=*/true, detached);
    const torch::Tensor hard =
        torch::zeros_like(soft).scatter_(2, soft.detach().argmax(2, /*keepdim=*/true), 1.0);
    return ApplyFixed(detached ? hard : hard - soft.detach() + soft);
  }

  // How certain layer (slot, kind)'s joint distribution is; larger is more certain.
  double Certainty(const torch::Tensor& probabilities, int slot, int kind) const {
    const torch::Tensor weights = probabilities[slot][int64_t{2} * kind].to(torch::kFloat64);
    const torch::Tensor activations =
        probabilities[slot][int64_t{2} * kind + 1].to(torch::kFloat64);
    const torch::Tensor joint = torch::outer(weights, activations).flatten();
    switch (options.certainty) {
      case FixingCertainty::kMaxProbability:
        return joint.max().item<double>();
      case FixingCertainty::kMargin: {
        const torch::Tensor top = std::get<0>(joint.topk(2));
        return (top[0] - top[1]).item<double>();
      }
      case FixingCertainty::kNegativeEntropy:
        return (joint * torch::log(joint.clamp_min(1e-300))).sum().item<double>();
    }
    return 0.0;
  }

  // After the step just done: fixes the most certain unfixed layer when the schedule says so.
  void FixOnSchedule() {
    if (fix_interval <= 0 || fixed.size() >= static_cast<size_t>(layers())) return;
    if (step <= options.warmup_steps || (step - options.warmup_steps) % fix_interval != 0) return;
    const torch::Tensor probabilities = torch::softmax(logits.detach(), /*dim=*/2);
    std::array<int, kFixedFields> most{-1, -1, -1, -1};
    double most_certain = -std::numeric_limits<double>::infinity();
    for (const int s : active) {
      for (int kind = 0; kind < 2; ++kind) {
        const bool is_fixed = std::any_of(fixed.begin(), fixed.end(), [&](const auto& layer) {
          return layer[0] == s && layer[1] == kind;
        });
        if (is_fixed) continue;
        const double certainty = Certainty(probabilities, s, kind);
        if (certainty > most_certain) {
          most_certain = certainty;
          most = {
              s, kind,
              static_cast<int>(probabilities[s][int64_t{2} * kind].argmax().item<int64_t>()),
              static_cast<int>(probabilities[s][int64_t{2} * kind + 1].argmax().item<int64_t>())};
        }
      }
    }
    if (most[0] >= 0) MarkFixed(most);
  }

  // Architecture search: the genes, choices, padded logits and cost tables (the slots' tables
  // checked by `check_table`). INVALID_ARGUMENT naming the costs or the space.
  template <typename CheckTable>
  absl::Status InitArchitecture(const CheckTable& check_table) {
    const SearchSpace& space = supernet.space();
    const int num_slots = module.num_slots();
    const auto gene_named = [&](const std::string& name) {
      for (size_t g = 0; g < space.genes().size(); ++g) {
        if (space.genes()[g].name == name) return static_cast<int>(g);
      }
      return -1;
    };
    for (int s = 0; s < num_slots; ++s) {
      kernel_gene.push_back(gene_named(absl::StrCat("ks[", s, "]")));
      mid_gene.push_back(gene_named(absl::StrCat("mid[", s, "]")));
      if (kernel_gene.back() < 0 || mid_gene.back() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("search_architecture: the space has no ks[", s, "] or mid[", s, "]"));
      }
      kernels.push_back(space.genes()[kernel_gene.back()].choices);
      mids.push_back(space.genes()[mid_gene.back()].choices);
    }
    int first = 0;
    for (int stage = 0;; ++stage) {
      const int gene = gene_named(absl::StrCat("d[", stage, "]"));
      if (gene < 0) break;
      depth_gene.push_back(gene);
      depths.push_back(space.genes()[gene].choices);
      stage_first_slot.push_back(first);
      first += *std::max_element(depths.back().begin(), depths.back().end());
    }
    if (first != num_slots) {
      return absl::InvalidArgumentError(
          "search_architecture: the space's depths do not cover its layer slots");
    }
    const int n = num_bits;
    for (int s = 0; s < num_slots; ++s) {
      const int64_t k_count = static_cast<int64_t>(kernels[s].size());
      const int64_t m_count = static_cast<int64_t>(mids[s].size());
      const auto& settings = costs.by_architecture[s];
      if (settings.size() != static_cast<size_t>(k_count * m_count)) {
        return absl::InvalidArgumentError(
            absl::StrCat("costs: slot ", s, " needs ", k_count * m_count,
                         " (kernel, width) settings, got ", settings.size()));
      }
      std::vector<double> pointwise, depthwise;
      for (int64_t k = 0; k < k_count; ++k) {
        for (int64_t m = 0; m < m_count; ++m) {
          const auto& pair = settings[static_cast<size_t>(k * m_count + m)];
          for (int kind = 0; kind < 2; ++kind) {
            if (absl::Status status = check_table(pair[kind], s, kind); !status.ok()) return status;
          }
          if (k == 0) pointwise.insert(pointwise.end(), pair[0].begin(), pair[0].end());
          depthwise.insert(depthwise.end(), pair[1].begin(), pair[1].end());
        }
      }
      pointwise_tables.push_back(torch::tensor(pointwise, torch::kFloat64).view({m_count, n, n}));
      depthwise_tables.push_back(
          torch::tensor(depthwise, torch::kFloat64).view({k_count, m_count, n, n}));
    }
    kernel_bias = PaddingBias(kernels);
    mid_bias = PaddingBias(mids);
    depth_bias = PaddingBias(depths);
    kernel_logits = torch::zeros_like(kernel_bias).requires_grad_(true);
    mid_logits = torch::zeros_like(mid_bias).requires_grad_(true);
    depth_logits = torch::zeros_like(depth_bias).requires_grad_(true);
    return absl::OkStatus();
  }

  double Temperature(int64_t at) const {
    if (options.steps <= 1) return options.temperature_end;
    const double progress = static_cast<double>(std::min(at, options.steps - 1)) /
                            static_cast<double>(options.steps - 1);
    return options.temperature_start *
           std::pow(options.temperature_end / options.temperature_start, progress);
  }

  // A Gumbel-softmax sample of every distribution at `temperature`, or the probabilities
  // themselves without noise; differentiable in the logits unless `detached`.
  torch::Tensor Sample(double temperature, bool with_noise, bool detached) {
    return SampleWith(temperature, with_noise ? &noise : nullptr, detached);
  }

  // As Sample, the noise drawn from `rng` (none when null).
  torch::Tensor SampleWith(double temperature, Rng* rng, bool detached) const {
    torch::Tensor scores = detached ? logits.detach() : logits;
    if (rng != nullptr) scores = scores + GumbelNoise(*rng, logits.sizes());
    return torch::softmax(scores / temperature, /*dim=*/2);
  }

  std::vector<SlotBitMixture> Mixtures(const torch::Tensor& sample) const {
    std::vector<SlotBitMixture> mixtures(choice.slots.size());
    for (const int s : active) {
      mixtures[s] = {sample[s][0], sample[s][1], sample[s][2], sample[s][3], single_path()};
    }
    return mixtures;
  }

  torch::Tensor ExpectedCostOf(const torch::Tensor& sample) const {
    torch::Tensor total = torch::zeros({}, torch::kFloat64);
    for (const int s : active) {
      for (int kind = 0; kind < 2; ++kind) {
        const int64_t weight_row = int64_t{2} * kind;
        const torch::Tensor weights = sample[s][weight_row].to(torch::kFloat64);
        const torch::Tensor activations = sample[s][weight_row + 1].to(torch::kFloat64);
        total = total + torch::dot(weights, torch::mv(cost_tables[s][kind], activations));
      }
    }
    return total + costs.fixed;
  }

  torch::Tensor Batch(const torch::Tensor& all, const LabeledImages& images, uint64_t salt,
                      torch::Tensor* labels_out, const torch::Tensor& labels_all) const {
    const int64_t per_epoch = images.count / options.batch_size;
    const int64_t epoch = step / per_epoch;
    const std::vector<int64_t> order = EpochOrder(images.count, options.seed ^ salt, epoch);
    const int64_t offset = (step % per_epoch) * options.batch_size;
    const torch::Tensor indices = torch::tensor(
        std::vector<int64_t>(order.begin() + offset, order.begin() + offset + options.batch_size),
        torch::kInt64);
    *labels_out = labels_all.index_select(0, indices);
    return all.index_select(0, indices);
  }

  void Step() {
    const double temperature = Temperature(step);
    module.train();
    // Weights, on a train batch, the mixture fixed.
    {
      torch::Tensor labels;
      const torch::Tensor images = Batch(train_images, train, 0x7EA1ULL, &labels, train_labels);
      SubnetChoice sampled = choice;
      sampled.mixtures =
          Mixtures(single_path() ? SinglePathSample(temperature, /*detached=*/true)
                                 : Sample(temperature, /*with_noise=*/true, /*detached=*/true));
      if (searches_architecture()) {
        SetArchMixtures(SampleArch(temperature, &noise, /*detached=*/true), &sampled);
      }
      weights_optimizer->zero_grad();
      const torch::Tensor loss = torch::cross_entropy_loss(module.forward(images, sampled), labels);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(module.parameters(), kGradientClipNorm);
      const double lr =
          0.5 * options.weight_lr *
          (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(options.steps)));
      for (auto& group : weights_optimizer->param_groups()) {
        static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
      }
      weights_optimizer->step();
      weight_loss = loss.item<double>();
    }
    // Logits, on a validation batch, the weights fixed (batch norm's running statistics are
    // kept: validation images only steer the distributions). Once every layer is fixed there
    // is nothing left to steer.
    if (step >= options.warmup_steps && fixed.size() < static_cast<size_t>(layers())) {
      torch::Tensor labels;
      const torch::Tensor images =
          Batch(validation_images, validation, 0x7A11DULL, &labels, validation_labels);
      const torch::Tensor sample =
          single_path() ? SinglePathSample(temperature, /*detached=*/false)
                        : Sample(temperature, /*with_noise=*/true, /*detached=*/false);
      SubnetChoice sampled = choice;
      sampled.mixtures = Mixtures(sample);
      ArchSample arch;
      if (searches_architecture()) {
        arch = SampleArch(temperature, &noise, /*detached=*/false);
        SetArchMixtures(arch, &sampled);
      }
      const double momentum = module.bn_momentum();
      module.set_bn_momentum(0.0);
      logits_optimizer->zero_grad();
      const torch::Tensor cross_entropy =
          torch::cross_entropy_loss(module.forward(images, sampled), labels);
      module.set_bn_momentum(momentum);
      // Single path: the expected cost under the distributions (a one-hot sample's cost has
      // no useful gradient); mixture: under the sample, as DNAS.
      torch::Tensor expected_cost =
          searches_architecture() ? ExpectedArchCostOf(sample, arch)
          : single_path()         ? ExpectedCostOf(ApplyFixed(torch::softmax(logits, /*dim=*/2)))
                                  : ExpectedCostOf(sample);
      if (options.cost_floor > 0)
        expected_cost = torch::clamp_min(expected_cost, options.cost_floor);
      const torch::Tensor cost_term =
          torch::pow(torch::clamp_min(
                         options.cost_alpha * torch::log(expected_cost / options.cost_scale), 1e-6),
                     options.cost_beta);
      const torch::Tensor loss = cross_entropy * cost_term.to(torch::kFloat32);
      loss.backward();
      logits_optimizer->step();
      weights_optimizer->zero_grad();
      arch_loss = loss.item<double>();
    }
    module.eval();
    ++step;
    FixOnSchedule();
  }
};

PrecisionSearch::PrecisionSearch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrecisionSearch::~PrecisionSearch() = default;

absl::StatusOr<std::unique_ptr<PrecisionSearch>> PrecisionSearch::Create(
    Supernet& supernet, const Genotype& genotype, const LabeledImages& train,
    const LabeledImages& validation, BitCostTable costs, const PrecisionSearchOptions& options) {
  if (absl::Status status = ValidateOptions(options, train, validation); !status.ok()) {
    return status;
  }
  const SearchSpace& space = supernet.space();
  // Searching the architecture, the supernet runs every slot (the deepest stages); the depth
  // mixtures choose among their outputs.
  Genotype start = genotype;
  if (options.search_architecture) {
    if (start.size() != space.genes().size()) {
      return absl::InvalidArgumentError("genotype: not one of the supernet's space");
    }
    for (size_t g = 0; g < space.genes().size(); ++g) {
      if (absl::StartsWith(space.genes()[g].name, "d[")) start[g] = space.genes()[g].choices.back();
    }
    start = space.Canonical(start);
  }
  if (absl::Status status = supernet.SetActiveSubnet(start); !status.ok()) return status;
  supernet.SetQuantized(true);
  const int num_slots = supernet.module().num_slots();
  const size_t tables =
      options.search_architecture ? costs.by_architecture.size() : costs.slots.size();
  if (tables != static_cast<size_t>(num_slots) || !std::isfinite(costs.fixed) || costs.fixed < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "costs: one ", options.search_architecture ? "list of table pairs" : "table pair",
        " per layer slot (", num_slots, ") and a finite fixed part >= 0"));
  }
  auto impl = std::make_unique<Impl>(supernet, train, validation, std::move(costs), options);
  impl->genotype = start;
  impl->choice = supernet_internal::ChoiceFromGenotype(supernet.spec(), start, true);
  impl->num_bits = static_cast<int>(supernet.spec().bit_choices.size());
  try {
    // The slots the architecture uses: those a forward records.
    std::vector<supernet_internal::UsedWeight> used;
    impl->module.set_used_weights(&used);
    impl->module.forward(supernet_internal::ImagesToTensor(train).narrow(0, 0, 1), impl->choice);
    impl->module.set_used_weights(nullptr);
    for (const auto& weight : used) {
      if (impl->active.empty() || impl->active.back() != weight.slot) {
        impl->active.push_back(weight.slot);
      }
    }
    impl->module.zero_grad();
    const int n = impl->num_bits;
    const auto check_table = [n](const std::vector<double>& table, int s,
                                 int kind) -> absl::Status {
      if (table.size() != static_cast<size_t>(n) * static_cast<size_t>(n)) {
        return absl::InvalidArgumentError(
            absl::StrCat("costs: slot ", s, " is used and needs ", n * n, " ",
                         kind == 0 ? "pointwise" : "depthwise", " costs, got ", table.size()));
      }
      for (const double value : table) {
        if (!std::isfinite(value) || value < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("costs: slot ", s, " has a negative or non-finite cost"));
        }
      }
      return absl::OkStatus();
    };
    if (options.search_architecture) {
      if (absl::Status status = impl->InitArchitecture(check_table); !status.ok()) return status;
    } else {
      impl->cost_tables.resize(num_slots);
      for (const int s : impl->active) {
        for (int kind = 0; kind < 2; ++kind) {
          const std::vector<double>& table = impl->costs.slots[s][kind];
          if (absl::Status status = check_table(table, s, kind); !status.ok()) return status;
          impl->cost_tables[s][kind] = torch::tensor(table, torch::kFloat64).view({n, n});
        }
      }
    }
    // The genotype's bits genes of each slot, in SlotBitMixture order.
    impl->bits_genes.assign(num_slots, {-1, -1, -1, -1});
    const char* names[kBitwidths] = {"pw_w_bits_setting[", "pw_a_bits_setting[",
                                     "dw_w_bits_setting[", "dw_a_bits_setting["};
    for (size_t g = 0; g < space.genes().size(); ++g) {
      for (int b = 0; b < kBitwidths; ++b) {
        for (const int s : impl->active) {
          if (space.genes()[g].name == absl::StrCat(names[b], s, "]")) {
            impl->bits_genes[s][b] = static_cast<int>(g);
          }
        }
      }
    }
    for (const int s : impl->active) {
      for (int b = 0; b < kBitwidths; ++b) {
        if (impl->bits_genes[s][b] < 0) {
          return absl::InternalError(
              absl::StrCat("precision search: no gene ", names[b], s, "] in the space"));
        }
      }
    }
    impl->logits = torch::zeros({num_slots, kBitwidths, n}, torch::kFloat32).requires_grad_(true);
    impl->fixed_mask = torch::zeros({num_slots, kBitwidths, 1}, torch::kBool);
    impl->fixed_onehot = torch::zeros({num_slots, kBitwidths, n}, torch::kFloat32);
    if (options.sequential_fixing) {
      impl->fix_interval =
          options.fix_every > 0
              ? options.fix_every
              : std::max<int64_t>(1, (options.steps - options.warmup_steps) / impl->layers());
    }
    impl->train_images = supernet_internal::ImagesToTensor(train);
    impl->train_labels = supernet_internal::LabelsToTensor(train);
    impl->validation_images = supernet_internal::ImagesToTensor(validation);
    impl->validation_labels = supernet_internal::LabelsToTensor(validation);
    impl->weights_optimizer = std::make_unique<torch::optim::SGD>(
        impl->module.parameters(),
        torch::optim::SGDOptions(options.weight_lr).momentum(kMomentum).nesterov(true));
    std::vector<torch::Tensor> distributions = {impl->logits};
    if (options.search_architecture) {
      distributions.insert(distributions.end(),
                           {impl->kernel_logits, impl->mid_logits, impl->depth_logits});
    }
    impl->logits_optimizer = std::make_unique<torch::optim::Adam>(
        distributions, torch::optim::AdamOptions(options.arch_lr));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("precision search: ", e.what()));
  }
  return std::unique_ptr<PrecisionSearch>(new PrecisionSearch(std::move(impl)));
}

absl::Status PrecisionSearch::Train(int64_t steps) {
  Impl& run = *impl_;
  const int64_t end = std::min(run.options.steps, run.step + std::max<int64_t>(steps, 0));
  try {
    while (run.step < end) {
      if (run.options.cancelled && run.options.cancelled()) {
        return absl::CancelledError(absl::StrCat("precision search cancelled at step ", run.step));
      }
      run.Step();
    }
  } catch (const std::exception& e) {
    run.module.eval();
    return absl::InternalError(absl::StrCat("precision search failed: ", e.what()));
  }
  return absl::OkStatus();
}

int64_t PrecisionSearch::steps_done() const { return impl_->step; }
int PrecisionSearch::layers() const { return impl_->layers(); }
int64_t PrecisionSearch::fix_interval() const { return impl_->fix_interval; }

std::vector<std::pair<int, int>> PrecisionSearch::FixedLayers() const {
  std::vector<std::pair<int, int>> layers;
  for (const auto& layer : impl_->fixed) layers.emplace_back(layer[0], layer[1]);
  return layers;
}
double PrecisionSearch::temperature() const { return impl_->Temperature(impl_->step); }
double PrecisionSearch::last_weight_loss() const { return impl_->weight_loss; }
double PrecisionSearch::last_arch_loss() const { return impl_->arch_loss; }

namespace {

// Per active slot and bitwidth, the rows of `distributions` ([slots, 4, bits]).
std::vector<std::array<std::vector<double>, 4>> ActiveRows(const torch::Tensor& distributions,
                                                           const std::vector<int>& active) {
  const torch::Tensor values = distributions.to(torch::kFloat64);
  std::vector<std::array<std::vector<double>, 4>> out;
  for (const int s : active) {
    std::array<std::vector<double>, 4> slot;
    for (int b = 0; b < kBitwidths; ++b) {
      const torch::Tensor row = values[s][b].contiguous();
      slot[b].assign(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
    }
    out.push_back(std::move(slot));
  }
  return out;
}

}  // namespace

std::vector<std::array<std::vector<double>, 4>> PrecisionSearch::Probabilities() const {
  torch::NoGradGuard no_grad;
  return ActiveRows(impl_->Distributions(), impl_->active);
}

std::vector<std::array<std::vector<double>, 4>> PrecisionSearch::GumbelSample(double temperature,
                                                                              uint64_t seed) const {
  torch::NoGradGuard no_grad;
  Rng rng(seed);
  return ActiveRows(impl_->ApplyFixed(impl_->SampleWith(temperature, &rng, /*detached=*/true)),
                    impl_->active);
}

double PrecisionSearch::ExpectedCost() const {
  const std::vector<std::array<std::vector<double>, 4>> probabilities = Probabilities();
  const int n = impl_->num_bits;
  double total = impl_->costs.fixed;
  if (impl_->searches_architecture()) {
    // Every slot is active; slot s is probabilities[s]. Its cost at (kernel k, width m) times
    // their probabilities and the probability that its stage runs it.
    const Impl& run = *impl_;
    const Impl::ArchSample arch = run.ArchDistributions();
    const torch::Tensor kernel_p = arch.kernels.to(torch::kFloat64).contiguous();
    const torch::Tensor mid_p = arch.mids.to(torch::kFloat64).contiguous();
    const torch::Tensor depth_p = arch.depths.to(torch::kFloat64).contiguous();
    for (size_t stage = 0; stage < run.depths.size(); ++stage) {
      const std::vector<int>& choices = run.depths[stage];
      const int deepest = *std::max_element(choices.begin(), choices.end());
      for (int j = 0; j < deepest; ++j) {
        const int s = run.stage_first_slot[stage] + j;
        double runs = 0.0;
        for (size_t d = 0; d < choices.size(); ++d) {
          if (choices[d] > j)
            runs += depth_p[static_cast<int64_t>(stage)][static_cast<int64_t>(d)].item<double>();
        }
        const size_t m_count = run.mids[s].size();
        for (size_t k = 0; k < run.kernels[s].size(); ++k) {
          for (size_t m = 0; m < m_count; ++m) {
            const double setting = kernel_p[s][static_cast<int64_t>(k)].item<double>() *
                                   mid_p[s][static_cast<int64_t>(m)].item<double>();
            const auto& pair = run.costs.by_architecture[s][k * m_count + m];
            for (int kind = 0; kind < 2; ++kind) {
              for (int w = 0; w < n; ++w) {
                for (int a = 0; a < n; ++a) {
                  total += runs * setting * probabilities[s][size_t{2} * kind][w] *
                           probabilities[s][size_t{2} * kind + 1][a] *
                           pair[kind][static_cast<size_t>(w) * n + a];
                }
              }
            }
          }
        }
      }
    }
    return total;
  }
  for (size_t i = 0; i < impl_->active.size(); ++i) {
    const int s = impl_->active[i];
    for (int kind = 0; kind < 2; ++kind) {
      const std::vector<double>& table = impl_->costs.slots[s][kind];
      for (int w = 0; w < n; ++w) {
        for (int a = 0; a < n; ++a) {
          total += probabilities[i][size_t{2} * kind][w] *
                   probabilities[i][size_t{2} * kind + 1][a] *
                   table[static_cast<size_t>(w) * n + a];
        }
      }
    }
  }
  return total;
}

double PrecisionSearch::RelaxedCost() const {
  torch::NoGradGuard no_grad;
  // Temperature 1 without noise: the softmax of the logits, the probabilities.
  const torch::Tensor bits =
      impl_->ApplyFixed(impl_->Sample(1.0, /*with_noise=*/false, /*detached=*/true));
  if (impl_->searches_architecture()) {
    return impl_->ExpectedArchCostOf(bits, impl_->ArchDistributions()).item<double>();
  }
  return impl_->ExpectedCostOf(bits).item<double>();
}

double PrecisionSearch::MeanEntropy() const {
  double total = 0.0;
  int count = 0;
  for (const auto& slot : Probabilities()) {
    for (const std::vector<double>& distribution : slot) {
      for (const double p : distribution) total -= p > 0 ? p * std::log(p) : 0.0;
      ++count;
    }
  }
  if (impl_->searches_architecture()) {
    const Impl::ArchSample arch = impl_->ArchDistributions();
    for (const torch::Tensor& rows : {arch.kernels, arch.mids, arch.depths}) {
      const torch::Tensor p = rows.to(torch::kFloat64);
      total -= (p * torch::log(p.clamp_min(1e-300))).sum().item<double>();
      count += static_cast<int>(p.size(0));
    }
  }
  return count > 0 ? total / count : 0.0;
}

double PrecisionSearch::Probability(int gene, int value) const {
  const std::vector<int>& bits = impl_->supernet.spec().bit_choices;
  for (const int s : impl_->active) {
    for (int b = 0; b < kBitwidths; ++b) {
      if (impl_->bits_genes[s][b] != gene) continue;
      const auto at = std::find(bits.begin(), bits.end(), value);
      if (at == bits.end()) return 0.0;
      torch::NoGradGuard no_grad;
      return impl_->Distributions()[s][b].to(torch::kFloat64)[at - bits.begin()].item<double>();
    }
  }
  if (impl_->searches_architecture()) {
    const Impl& run = *impl_;
    // Gene -> (its distribution's rows, row, choices).
    const auto probability_in = [&](const torch::Tensor& rows, size_t row,
                                    const std::vector<int>& choices) {
      const auto at = std::find(choices.begin(), choices.end(), value);
      if (at == choices.end()) return 0.0;
      return rows[static_cast<int64_t>(row)][at - choices.begin()]
          .to(torch::kFloat64)
          .item<double>();
    };
    for (size_t s = 0; s < run.kernels.size(); ++s) {
      if (run.kernel_gene[s] == gene)
        return probability_in(run.ArchDistributions().kernels, s, run.kernels[s]);
      if (run.mid_gene[s] == gene)
        return probability_in(run.ArchDistributions().mids, s, run.mids[s]);
    }
    for (size_t stage = 0; stage < run.depths.size(); ++stage) {
      if (run.depth_gene[stage] == gene) {
        return probability_in(run.ArchDistributions().depths, stage, run.depths[stage]);
      }
    }
  }
  return gene >= 0 && gene < static_cast<int>(impl_->genotype.size()) &&
                 impl_->genotype[gene] == value
             ? 1.0
             : 0.0;
}

namespace {

// The searched genotype with every active bitwidth at the argmax of its row of `weights`
// (as ActiveRows gives them).
Genotype ArgmaxGenotype(const Supernet& supernet, Genotype genotype, const std::vector<int>& active,
                        const std::vector<std::array<int, kBitwidths>>& bits_genes,
                        const std::vector<std::array<std::vector<double>, 4>>& weights) {
  const std::vector<int>& bits = supernet.spec().bit_choices;
  for (size_t i = 0; i < active.size(); ++i) {
    for (int b = 0; b < kBitwidths; ++b) {
      const std::vector<double>& p = weights[i][b];
      const auto most = std::max_element(p.begin(), p.end());
      genotype[bits_genes[active[i]][b]] = bits[most - p.begin()];
    }
  }
  return supernet.space().Canonical(genotype);
}

}  // namespace

Genotype PrecisionSearch::MostLikely() const {
  Genotype genotype = impl_->genotype;
  if (impl_->searches_architecture()) impl_->ArchArgmax(impl_->ArchDistributions(), &genotype);
  return ArgmaxGenotype(impl_->supernet, std::move(genotype), impl_->active, impl_->bits_genes,
                        Probabilities());
}

Genotype PrecisionSearch::SamplePolicy(uint64_t seed) const {
  // The argmax of logits plus Gumbel noise is a draw from their softmax, at any temperature.
  // The architecture's noise comes after the bits' from the same generator.
  torch::NoGradGuard no_grad;
  Rng rng(seed);
  const std::vector<std::array<std::vector<double>, 4>> bits =
      ActiveRows(impl_->ApplyFixed(impl_->SampleWith(1.0, &rng, /*detached=*/true)), impl_->active);
  Genotype genotype = impl_->genotype;
  if (impl_->searches_architecture()) {
    impl_->ArchArgmax(impl_->SampleArch(1.0, &rng, /*detached=*/true), &genotype);
  }
  return ArgmaxGenotype(impl_->supernet, std::move(genotype), impl_->active, impl_->bits_genes,
                        bits);
}

absl::StatusOr<std::string> PrecisionSearch::SaveState() const {
  const Impl& run = *impl_;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("tag", supernet_internal::TextTensor(kStateTag));
    torch::serialize::OutputArchive weights;
    run.module.save(weights);
    archive.write("module", weights);
    torch::serialize::OutputArchive sgd;
    run.weights_optimizer->save(sgd);
    archive.write("weights_optimizer", sgd);
    torch::serialize::OutputArchive adam;
    run.logits_optimizer->save(adam);
    archive.write("logits_optimizer", adam);
    archive.write("logits", run.logits.detach());
    const Rng::State& noise = run.noise.state();
    archive.write("noise", torch::tensor(std::vector<int64_t>(noise.begin(), noise.end())));
    archive.write("counters", torch::tensor(std::vector<int64_t>{run.step, run.options.steps}));
    archive.write("losses", torch::tensor(std::vector<double>{run.weight_loss, run.arch_loss},
                                          torch::kFloat64));
    std::vector<int64_t> fixed;
    for (const auto& layer : run.fixed) fixed.insert(fixed.end(), layer.begin(), layer.end());
    archive.write("fixed", torch::tensor(fixed, torch::kInt64));
    if (run.searches_architecture()) {
      archive.write("kernel_logits", run.kernel_logits.detach());
      archive.write("mid_logits", run.mid_logits.detach());
      archive.write("depth_logits", run.depth_logits.detach());
    }
    return supernet_internal::ArchiveToBytes(archive);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("precision search state: ", e.what()));
  }
}

absl::Status PrecisionSearch::RestoreState(absl::string_view state) {
  Impl& run = *impl_;
  const auto corrupt = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("precision search state: ", why));
  };
  try {
    torch::serialize::InputArchive archive;
    supernet_internal::ArchiveFromBytes(static_cast<std::string>(state), archive);
    if (supernet_internal::ReadText(archive, "tag") != kStateTag)
      return corrupt("not a search's state");
    const std::vector<int64_t> counters = supernet_internal::ReadInt64s(archive, "counters");
    if (counters.size() != 2 || counters[1] != run.options.steps || counters[0] < 0 ||
        counters[0] > run.options.steps) {
      return corrupt("written for another run");
    }
    torch::Tensor logits;
    archive.read("logits", logits);
    if (!logits.sizes().equals(run.logits.sizes())) return corrupt("logits of another shape");
    const std::vector<int64_t> noise = supernet_internal::ReadInt64s(archive, "noise");
    if (noise.size() != 4) return corrupt("random state");
    torch::Tensor kernel_logits, mid_logits, depth_logits;
    if (run.searches_architecture()) {
      if (!archive.try_read("kernel_logits", kernel_logits) ||
          !archive.try_read("mid_logits", mid_logits) ||
          !archive.try_read("depth_logits", depth_logits) ||
          !kernel_logits.sizes().equals(run.kernel_logits.sizes()) ||
          !mid_logits.sizes().equals(run.mid_logits.sizes()) ||
          !depth_logits.sizes().equals(run.depth_logits.sizes())) {
        return corrupt("architecture logits missing or of another shape");
      }
    }
    torch::serialize::InputArchive weights;
    archive.read("module", weights);
    run.module.load(weights);
    torch::serialize::InputArchive sgd;
    archive.read("weights_optimizer", sgd);
    run.weights_optimizer->load(sgd);
    torch::serialize::InputArchive adam;
    archive.read("logits_optimizer", adam);
    {
      torch::NoGradGuard no_grad;
      run.logits.copy_(logits);
      if (run.searches_architecture()) {
        run.kernel_logits.copy_(kernel_logits);
        run.mid_logits.copy_(mid_logits);
        run.depth_logits.copy_(depth_logits);
      }
    }
    run.logits_optimizer->load(adam);
    torch::Tensor losses;
    archive.read("losses", losses);
    // Absent from states written before sequential fixing: nothing fixed.
    torch::Tensor fixed_tensor;
    std::vector<std::array<int, kFixedFields>> fixed;
    if (archive.try_read("fixed", fixed_tensor)) {
      const torch::Tensor values = fixed_tensor.to(torch::kInt64).contiguous();
      if (values.dim() != 1 || values.numel() % kFixedFields != 0 ||
          values.numel() > int64_t{kFixedFields} * run.layers()) {
        return corrupt("fixed layers");
      }
      for (int64_t i = 0; i < values.numel(); i += kFixedFields) {
        std::array<int, kFixedFields> layer;
        for (int f = 0; f < kFixedFields; ++f)
          layer[f] = static_cast<int>(values[i + f].item<int64_t>());
        const bool known =
            std::find(run.active.begin(), run.active.end(), layer[0]) != run.active.end();
        if (!known || layer[1] < 0 || layer[1] > 1 || layer[2] < 0 || layer[2] >= run.num_bits ||
            layer[3] < 0 || layer[3] >= run.num_bits) {
          return corrupt("fixed layers");
        }
        fixed.push_back(layer);
      }
    }
    Rng::State noise_state;
    for (size_t i = 0; i < 4; ++i) noise_state[i] = static_cast<uint64_t>(noise[i]);
    run.noise.set_state(noise_state);
    run.step = counters[0];
    run.fixed.clear();
    run.fixed_mask.zero_();
    run.fixed_onehot.zero_();
    for (const auto& layer : fixed) run.MarkFixed(layer);
    const torch::Tensor values = losses.to(torch::kFloat64).contiguous();
    run.weight_loss = values[0].item<double>();
    run.arch_loss = values[1].item<double>();
  } catch (const std::exception& e) {
    return corrupt(supernet_internal::ErrorMessage(e));
  }
  return absl::OkStatus();
}

}  // namespace apq::oface
