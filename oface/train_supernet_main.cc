// Trains the Fashion-MNIST supernet (oface/supernet_train.h), resumably:
//   bazel-bin/oface/train_supernet --out_dir DIR --threads 2 [--phase_epochs 3,8,3] [--resume]
// The low-bit space's quantization-aware phase alone, from fmnist_mbv2's full-precision weights
// (one command line):
//   bazel-bin/oface/train_supernet --space fmnist_lowbit --out_dir DIR --threads 2
//       --init_weights data/fmnist_mbv2/supernet_fp32.pt --phase_epochs 0,0,3
// Progress and log lines go to stdout and are appended to DIR/train.log.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tensor_memory.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/supernet_train.h"

ABSL_FLAG(std::string, space, "fmnist_mbv2",
          "The supernet's space: fmnist_mbv2 or fmnist_lowbit (oface/mbconv_spec.h).");
ABSL_FLAG(std::string, out_dir, "", "Folder of checkpoints, phase-end weights and train.log.");
ABSL_FLAG(std::string, init_weights, "",
          "Start a fresh run from these supernet weights (the same network, of this or another "
          "space) instead of a random initialisation; skip the phases they already did with "
          "--phase_epochs (e.g. 0,0,3). Ignored when resuming.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, batch_size, 128, "Training batch size.");
ABSL_FLAG(std::string, phase_epochs, "3,8,3", "Epochs of the full, sandwich and quant phases.");
ABSL_FLAG(std::string, phase_lrs, "0.1,0.05,0.01",
          "Peak learning rates of the full, sandwich and quant phases.");
ABSL_FLAG(int, random_subnets, 2, "Random subnets per sandwich step.");
ABSL_FLAG(int, checkpoint_every, 200, "Steps between checkpoints.");
ABSL_FLAG(int, log_every, 50, "Steps between progress lines.");
ABSL_FLAG(bool, resume, false, "Continue from out_dir/checkpoint.pt.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of initialisation, data order and subnet sampling.");
ABSL_FLAG(int, train_limit, 0, "Use only the first N images of the train split (0: all).");
ABSL_FLAG(int, eval_limit, 0,
          "Use only the first N validation images at phase-end evaluations (0: all).");
ABSL_FLAG(int64_t, max_steps, 0, "Stop (with a checkpoint) after N steps of this run (0: none).");

namespace {

bool ParseDoubles(const std::string& text, std::vector<double>* values) {
  values->clear();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    double value = 0;
    if (!absl::SimpleAtod(part, &value)) return false;
    values->push_back(value);
  }
  return true;
}

std::string Now() {
  char buffer[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  apq::KeepTensorMemoryForReuse();
  absl::ParseCommandLine(argc, argv);
  apq::oface::TrainOptions options;
  absl::StatusOr<apq::oface::MbConvSpec> spec =
      apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space));
  if (!spec.ok()) {
    const std::string message(spec.status().message());
    std::fprintf(stderr, "--space: %s\n", message.c_str());
    return 2;
  }
  options.spec = *std::move(spec);
  options.init_weights = absl::GetFlag(FLAGS_init_weights);
  options.out_dir = absl::GetFlag(FLAGS_out_dir);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (!ParseDoubles(absl::GetFlag(FLAGS_phase_epochs), &options.phase_epochs)) {
    std::fprintf(stderr, "--phase_epochs: expected comma-separated numbers\n");
    return 2;
  }
  if (!ParseDoubles(absl::GetFlag(FLAGS_phase_lrs), &options.phase_learning_rates)) {
    std::fprintf(stderr, "--phase_lrs: expected comma-separated numbers\n");
    return 2;
  }
  options.random_subnets = absl::GetFlag(FLAGS_random_subnets);
  options.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  options.log_every = absl::GetFlag(FLAGS_log_every);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.train_limit = absl::GetFlag(FLAGS_train_limit);
  options.eval_limit = absl::GetFlag(FLAGS_eval_limit);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  if (options.out_dir.empty()) {
    std::fprintf(stderr, "--out_dir is required\n");
    return 2;
  }

  std::ofstream log_file;
  const auto emit = [&](const std::string& line) {
    const std::string stamped = absl::StrCat(Now(), " ", line);
    std::printf("%s\n", stamped.c_str());
    std::fflush(stdout);
    if (!log_file.is_open())
      log_file.open(absl::StrCat(options.out_dir, "/train.log"), std::ios::app);
    if (log_file.is_open()) log_file << stamped << std::endl;
  };
  options.on_log = emit;
  options.on_progress = [&](const apq::oface::TrainProgress& progress) {
    emit(apq::oface::FormatProgress(progress));
  };
  emit(absl::StrCat("train_supernet spec=", options.spec.name, " threads=", options.threads,
                    " batch_size=", options.batch_size,
                    " phase_epochs=", absl::GetFlag(FLAGS_phase_epochs), " resume=", options.resume,
                    options.init_weights.empty() ? "" : " init_weights=", options.init_weights));
  const absl::Status status = apq::oface::TrainSupernet(options);
  if (!status.ok()) {
    emit(absl::StrCat("error: ", status.ToString()));
    return 1;
  }
  emit("training finished");
  return 0;
}
