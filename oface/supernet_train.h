// Training of the elastic supernet (oface/supernet.h) on Fashion-MNIST, resumable.
//
// Schedule, three phases, each with SGD (momentum 0.9, Nesterov) and its own cosine learning
// rate decay to 0 over the phase (the first phase warms up linearly over its first steps):
//   full      the largest subnet at full precision only (once-for-all's first phase), so the
//             shared weights start from a good network.
//   sandwich  elastic kernel, width and depth together, by the sandwich rule with in-place
//             distillation (BigNAS / AttentiveNAS): per step the largest subnet learns from
//             the labels, then the smallest and `random_subnets` uniformly sampled subnets
//             learn from the largest's soft predictions; the gradients of all of them are
//             summed before one optimizer step. The hidden channels are sorted by importance
//             (ReorganizeMiddleWeights) at the start of the phase.
//             Why not progressive shrinking: its four sequential phases each need their own
//             schedule and a separately trained teacher; on a 2-core budget of a few hours the
//             sandwich rule trains every dimension in every step, covers the smallest subnet
//             explicitly (the quality bar asks for it) and needs one phase.
//   quant     quantization-aware training over sampled bit policies, same sandwich: the
//             largest subnet at the highest bits learns from the labels, the smallest at the
//             lowest bits and random (subnet, bit policy) pairs learn from it.
// At each phase's end, the weights alone are saved as supernet_<phase>.pt in out_dir
// (supernet_sandwich.pt is the full-precision supernet, supernet_quant.pt the quantization-
// aware one) and, when asked, the largest and smallest subnets are evaluated on the test split
// with BN recalibrated on a training subset.
//
// Checkpoints (out_dir/checkpoint.pt, atomic): weights, the optimizer's state, phase, step
// within the phase, the seed and the schedule options. All randomness (data order, flips,
// sampled subnets) is a pure function of (seed, phase, step), so (seed, phase, step) is the
// whole RNG state and a resumed run continues exactly where the checkpoint left off.
#ifndef APQ_OFACE_SUPERNET_TRAIN_H_
#define APQ_OFACE_SUPERNET_TRAIN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"

namespace apq::oface {

enum class TrainPhase { kFull = 0, kSandwich = 1, kQuant = 2, kDone = 3 };
inline constexpr int kNumTrainPhases = 3;
const char* TrainPhaseName(TrainPhase phase);

struct TrainProgress {
  TrainPhase phase = TrainPhase::kFull;
  int64_t step = 0;  // Steps done in the phase.
  int64_t steps_in_phase = 0;
  double epoch = 0.0;     // Epochs done in the phase (fractional).
  double loss = 0.0;      // Mean over the steps since the last report, all subnets.
  double accuracy = 0.0;  // The largest subnet's training-batch accuracy, same steps.
  double learning_rate = 0.0;
  double images_per_second = 0.0;         // Batch images per wall second.
  double subnet_images_per_second = 0.0;  // Images x subnets trained per wall second.
  double eta_seconds = 0.0;  // Until the end of all phases at the phase's current speed.
};

struct TrainOptions {
  MbConvSpec spec = FashionMnistSpec();
  std::string out_dir;  // Required; created if missing.
  std::string data_dir = kDefaultFashionMnistDir;
  int threads = 2;  // torch::set_num_threads; LibTorch starts with one here.
  int batch_size = 128;
  // Epochs of the full, sandwich and quant phases (0 skips a phase).
  std::vector<double> phase_epochs = {3.0, 8.0, 3.0};
  std::vector<double> phase_learning_rates = {0.1, 0.05, 0.01};
  int warmup_steps = 200;      // Linear warm-up of the first phase (capped at a tenth of it).
  double weight_decay = 4e-5;  // Conv and classifier weights only.
  int random_subnets = 2;      // Sampled subnets per sandwich step besides largest/smallest.
  int checkpoint_every = 200;  // Steps between checkpoints (and at each phase end).
  int log_every = 50;          // Steps between progress reports.
  bool resume = false;         // Continue from out_dir/checkpoint.pt if present.
  // Non-empty: a fresh run (no checkpoint in out_dir) starts from these weights instead of the
  // seed's initialisation, read by Supernet::LoadWeightsOfSameNetwork (the same network, for
  // this or another spec: fmnist_mbv2's supernet_fp32.pt for fmnist_lowbit), and saves them in
  // this spec's format as out_dir/supernet_init.pt. Give the phases already done 0 epochs, e.g.
  // {0, 0, 3} for the quant phase alone. A resumed run takes its weights from the checkpoint
  // (which records the spec) and ignores this.
  std::string init_weights;
  uint64_t seed = 1;
  // Training and BN recalibration use the train split only; phase-end evaluations the
  // validation split (oface/fashion_mnist.h DataSplit).
  int train_limit = 0;            // > 0: only the first train_limit train-split images (tests).
  int eval_limit = 0;             // > 0: only the first eval_limit validation images at phase ends.
  int calibration_images = 2000;  // BN recalibration subset (of the train split) at phase ends.
  bool evaluate_at_phase_end = true;
  int64_t max_steps = 0;  // > 0: return OK after this many steps in this call.
  // Called with every progress report and with free-form log lines (phase changes,
  // evaluations, checkpoints). Either may be empty.
  std::function<void(const TrainProgress&)> on_progress;
  std::function<void(const std::string&)> on_log;
};

// Trains (or resumes) the supernet of options.spec. INVALID_ARGUMENT naming the option for bad
// options; FAILED_PRECONDITION when out_dir has a checkpoint and resume is false, or when the
// checkpoint was written for another spec or schedule (naming the field), or init_weights for
// another network; the reader's errors for missing or corrupt dataset and init_weights files.
// A kill loses at most checkpoint_every steps.
absl::Status TrainSupernet(const TrainOptions& options);

// Formats a progress report as one log line.
std::string FormatProgress(const TrainProgress& progress);

}  // namespace apq::oface

#endif  // APQ_OFACE_SUPERNET_TRAIN_H_
