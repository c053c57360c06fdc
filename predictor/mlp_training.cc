#include "predictor/mlp_training.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::predictor {
namespace {

// The smallest standard deviation targets are divided by (accuracy units).
constexpr double kMinTargetScale = 1e-4;

// The name a layer's tensors carry (MlpWeights::Linear::name's default).
std::string LayerName(const MlpWeights::Linear& layer, size_t index) {
  return layer.name.empty() ? std::to_string(2 * index) : layer.name;
}

absl::Status CheckOptions(const MlpTrainingOptions& options) {
  if (options.arch_inputs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("arch_inputs must be > 0, got ", options.arch_inputs));
  }
  if (options.bit_inputs < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bit_inputs must be >= 0, got ", options.bit_inputs));
  }
  if (options.hidden.empty()) return absl::InvalidArgumentError("hidden: at least one layer");
  for (size_t i = 0; i < options.hidden.size(); ++i) {
    if (options.hidden[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("hidden[", i, "] must be > 0"));
    }
  }
  if (!(options.validation_fraction > 0.0 && options.validation_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation_fraction must be in (0, 1), got ", options.validation_fraction));
  }
  if (options.batch_size <= 0) return absl::InvalidArgumentError("batch_size must be > 0");
  if (options.max_epochs < 0) return absl::InvalidArgumentError("max_epochs must be >= 0");
  if (options.patience <= 0) return absl::InvalidArgumentError("patience must be > 0");
  if (!(options.learning_rate > 0.0) || !std::isfinite(options.learning_rate)) {
    return absl::InvalidArgumentError("learning_rate must be a finite number > 0");
  }
  if (!(options.weight_decay >= 0.0) || !std::isfinite(options.weight_decay)) {
    return absl::InvalidArgumentError("weight_decay must be a finite number >= 0");
  }
  if (options.threads <= 0) return absl::InvalidArgumentError("threads must be > 0");
  return absl::OkStatus();
}

// The network being trained: layers[0] on the architecture features, the optional branch on
// the bit features added after layers[0]'s ReLU, then ReLU layers and a 1-output layer.
struct Network : torch::nn::Module {
  explicit Network(const MlpTrainingOptions& options) : arch_inputs(options.arch_inputs) {
    int in = options.arch_inputs;
    for (size_t i = 0; i <= options.hidden.size(); ++i) {
      const int out = i < options.hidden.size() ? options.hidden[i] : 1;
      layers.push_back(register_module(std::to_string(2 * i), torch::nn::Linear(in, out)));
      in = out;
    }
    if (options.bit_inputs > 0) {
      bits = register_module("bits", torch::nn::Linear(options.bit_inputs, options.hidden[0]));
    }
  }

  torch::Tensor forward(const torch::Tensor& inputs) {
    torch::Tensor hidden = torch::relu(layers[0]->forward(inputs.narrow(1, 0, arch_inputs)));
    if (bits) {
      hidden = hidden + bits->forward(inputs.narrow(1, arch_inputs, inputs.size(1) - arch_inputs));
    }
    for (size_t i = 1; i < layers.size(); ++i) {
      hidden = layers[i]->forward(hidden);
      if (i + 1 < layers.size()) hidden = torch::relu(hidden);
    }
    return hidden.squeeze(1);
  }

  int arch_inputs;
  std::vector<torch::nn::Linear> layers;
  torch::nn::Linear bits{nullptr};
};

MlpWeights::Linear ExportLinear(const std::string& name, torch::nn::Linear& linear) {
  MlpWeights::Linear out;
  out.name = name;
  const torch::Tensor weight = linear->weight.detach().contiguous();
  const torch::Tensor bias = linear->bias.detach().contiguous();
  out.out = static_cast<int>(weight.size(0));
  out.in = static_cast<int>(weight.size(1));
  out.weight.assign(weight.data_ptr<float>(), weight.data_ptr<float>() + weight.numel());
  out.bias.assign(bias.data_ptr<float>(), bias.data_ptr<float>() + bias.numel());
  return out;
}

// Copies the layers of `init` whose name and shape match; returns their names.
std::vector<std::string> Transfer(const MlpWeights& init, Network& network) {
  std::vector<std::pair<std::string, const MlpWeights::Linear*>> sources;
  for (size_t i = 0; i < init.layers.size(); ++i) {
    sources.emplace_back(LayerName(init.layers[i], i), &init.layers[i]);
  }
  if (init.bits) sources.emplace_back("bits", &*init.bits);
  std::vector<std::string> copied;
  torch::NoGradGuard no_grad;
  const auto copy_into = [&](const std::string& name, torch::nn::Linear& linear) {
    for (const auto& [source_name, source] : sources) {
      if (source_name != name || source->out != linear->weight.size(0) ||
          source->in != linear->weight.size(1)) {
        continue;
      }
      linear->weight.copy_(torch::from_blob(const_cast<float*>(source->weight.data()),
                                            {source->out, source->in}, torch::kFloat32));
      linear->bias.copy_(torch::from_blob(const_cast<float*>(source->bias.data()), {source->out},
                                          torch::kFloat32));
      copied.push_back(name);
    }
  };
  for (size_t i = 0; i < network.layers.size(); ++i) {
    copy_into(std::to_string(2 * i), network.layers[i]);
  }
  if (network.bits) copy_into("bits", network.bits);
  return copied;
}

// Draws the layers' initial weights again, from `generator`: the same draws in the same order
// as torch::nn::Linear's own reset_parameters (weight kaiming-uniform with a = sqrt(5), then
// bias uniform in +-1/sqrt(fan_in)), layers in construction order. From a generator seeded
// like LibTorch's global one after manual_seed, the result is what construction alone gave
// single-threaded; but no other thread of the process (a supernet being built, another
// training) can draw in between and change it.
void ResetParameters(Network& network, const at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const auto reset = [&generator](torch::nn::Linear& linear) {
    const auto fan_in = static_cast<double>(linear->weight.size(1));
    const double gain = std::sqrt(2.0 / (1 + std::pow(std::sqrt(5.0), 2)));
    const double weight_bound = std::sqrt(3.0) * (gain / std::sqrt(fan_in));
    linear->weight.uniform_(-weight_bound, weight_bound, generator);
    const double bias_bound = 1 / std::sqrt(fan_in);
    linear->bias.uniform_(-bias_bound, bias_bound, generator);
  };
  for (torch::nn::Linear& layer : network.layers) reset(layer);
  if (network.bits) reset(network.bits);
}

double Rmse(Network& network, const torch::Tensor& inputs, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  network.eval();
  const torch::Tensor error = network.forward(inputs) - targets;
  return std::sqrt(error.pow(2).mean().item<double>());
}

}  // namespace

absl::StatusOr<MlpWeights> TrainMlp(const std::vector<TrainingSample>& samples,
                                    const MlpTrainingOptions& options, MlpTrainingReport* report) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckOptions(options));
  const int inputs = options.arch_inputs + options.bit_inputs;
  RETURN_IF_ERROR(ValidateTrainingSamples(samples, inputs));
  MlpTrainingReport local_report;
  MlpTrainingReport& out = report != nullptr ? *report : local_report;
  out = MlpTrainingReport();

  const int count = static_cast<int>(samples.size());
  out.validation_indices = ValidationSplit(count, options.validation_fraction, options.seed);
  std::vector<char> is_validation(count, 0);
  for (const int index : out.validation_indices) is_validation[index] = 1;
  out.validation_samples = static_cast<int>(out.validation_indices.size());
  out.train_samples = count - out.validation_samples;

  try {
    torch::set_num_threads(options.threads);
    // The training's own random stream (initialisation, batch order): LibTorch's global one is
    // shared by every thread of the process.
    const at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
    // Dense 0/1 inputs: a few thousand records of at most a few thousand features.
    torch::Tensor train_x = torch::zeros({out.train_samples, inputs});
    torch::Tensor train_y = torch::empty({out.train_samples});
    torch::Tensor val_x = torch::zeros({out.validation_samples, inputs});
    torch::Tensor val_y = torch::empty({out.validation_samples});
    {
      auto train_xa = train_x.accessor<float, 2>();
      auto train_ya = train_y.accessor<float, 1>();
      auto val_xa = val_x.accessor<float, 2>();
      auto val_ya = val_y.accessor<float, 1>();
      int train_row = 0;
      int val_row = 0;
      for (int i = 0; i < count; ++i) {
        const bool validation = is_validation[i] != 0;
        const int row = validation ? val_row++ : train_row++;
        for (const int32_t index : samples[i].features) {
          (validation ? val_xa[row][index] : train_xa[row][index]) = 1.0f;
        }
        (validation ? val_ya[row] : train_ya[row]) = static_cast<float>(samples[i].accuracy);
      }
    }

    // Standardised targets: y = mean + scale * output.
    const double mean = train_y.mean().item<double>();
    const double scale =
        std::max(out.train_samples > 1 ? train_y.std().item<double>() : 0.0, kMinTargetScale);
    train_y = (train_y - mean) / scale;
    val_y = (val_y - mean) / scale;

    Network network(options);
    ResetParameters(network, generator);
    {
      torch::NoGradGuard no_grad;
      torch::nn::Linear& output = network.layers.back();
      if (options.init.has_value()) {
        out.transferred_layers = Transfer(*options.init, network);
        if (out.transferred_layers.empty()) {
          return absl::InvalidArgumentError(
              "init: no layer of the given predictor matches the new network's names and shapes");
        }
        // The transferred output layer, in standardised units; a new branch adds nothing yet.
        output->weight.div_(scale);
        output->bias.sub_(mean).div_(scale);
        const bool branch_transferred =
            std::find(out.transferred_layers.begin(), out.transferred_layers.end(), "bits") !=
            out.transferred_layers.end();
        if (network.bits && !branch_transferred) {
          network.bits->weight.zero_();
          network.bits->bias.zero_();
        }
      } else {
        // The mean predictor.
        output->weight.zero_();
        output->bias.zero_();
      }
    }
    torch::optim::Adam optimizer(
        network.parameters(),
        torch::optim::AdamOptions(options.learning_rate).weight_decay(options.weight_decay));

    out.initial_validation_rmse = scale * Rmse(network, val_x, val_y);
    double best_rmse = out.initial_validation_rmse;
    std::vector<torch::Tensor> best_state;
    for (const torch::Tensor& parameter : network.parameters()) {
      best_state.push_back(parameter.detach().clone());
    }
    int since_best = 0;
    for (int epoch = 1; epoch <= options.max_epochs; ++epoch) {
      network.train();
      const torch::Tensor order = torch::randperm(out.train_samples, generator);
      double loss_sum = 0.0;
      int batches = 0;
      for (int64_t begin = 0; begin < out.train_samples; begin += options.batch_size) {
        const int64_t size = std::min<int64_t>(options.batch_size, out.train_samples - begin);
        const torch::Tensor rows = order.narrow(0, begin, size);
        optimizer.zero_grad();
        const torch::Tensor loss = torch::mse_loss(network.forward(train_x.index_select(0, rows)),
                                                   train_y.index_select(0, rows));
        const double value = loss.item<double>();
        if (!std::isfinite(value)) {
          return absl::AbortedError(
              absl::StrCat("training diverged: the loss is ", value, " at epoch ", epoch));
        }
        loss.backward();
        optimizer.step();
        loss_sum += value;
        ++batches;
      }
      out.epochs_run = epoch;
      const double validation_rmse = scale * Rmse(network, val_x, val_y);
      if (!std::isfinite(validation_rmse)) {
        return absl::AbortedError(
            absl::StrCat("training diverged: validation RMSE is ", validation_rmse));
      }
      if (validation_rmse < best_rmse) {
        best_rmse = validation_rmse;
        out.best_epoch = epoch;
        since_best = 0;
        size_t k = 0;
        for (const torch::Tensor& parameter : network.parameters()) {
          best_state[k++].copy_(parameter.detach());
        }
      } else if (++since_best >= options.patience) {
        break;
      }
      if (options.on_epoch && !options.on_epoch(epoch, loss_sum / batches, validation_rmse)) {
        return absl::CancelledError(absl::StrCat("training cancelled at epoch ", epoch));
      }
    }
    {
      torch::NoGradGuard no_grad;
      size_t k = 0;
      for (torch::Tensor& parameter : network.parameters()) parameter.copy_(best_state[k++]);
    }
    out.validation_rmse = scale * Rmse(network, val_x, val_y);
    out.train_rmse = scale * Rmse(network, train_x, train_y);
    {
      // Back to accuracy units.
      torch::NoGradGuard no_grad;
      torch::nn::Linear& output = network.layers.back();
      output->weight.mul_(scale);
      output->bias.mul_(scale).add_(mean);
    }

    MlpWeights weights;
    weights.name = options.name;
    for (size_t i = 0; i < network.layers.size(); ++i) {
      weights.layers.push_back(ExportLinear("", network.layers[i]));
    }
    if (network.bits) weights.bits = ExportLinear("bits", network.bits);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return weights;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("predictor training failed: ", e.what()));
  }
}

absl::StatusOr<MlpWeights> TrainMlpByTransfer(
    const std::vector<TrainingSample>& fp32, const std::vector<TrainingSample>& quantized,
    const MlpTrainingOptions& options,
    const std::function<bool(int, double, double)>& on_fp32_epoch, MlpTrainingReport* fp32_report,
    MlpTrainingReport* quantized_report) {
  if (options.bit_inputs <= 0) {
    return absl::InvalidArgumentError(
        "bit_inputs: a transfer trains a quantization-aware MLP, which needs bit features");
  }
  MlpTrainingOptions full_precision = options;
  full_precision.name = absl::StrCat(options.name, "-fp32");
  full_precision.bit_inputs = 0;
  full_precision.init.reset();
  full_precision.on_epoch = on_fp32_epoch;
  MlpTrainingOptions quantization_aware = options;
  ASSIGN_OR_RETURN(quantization_aware.init, TrainMlp(fp32, full_precision, fp32_report));
  return TrainMlp(quantized, quantization_aware, quantized_report);
}

}  // namespace apq::predictor
