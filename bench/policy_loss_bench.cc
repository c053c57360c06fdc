// Policy-loss measurement (oface/policy_loss.h, what the iqp engine's sensitivities cost) on
// fmnist_lowbit's shipped supernet: the largest architecture, batch norm calibrated at 8 bits,
// `--images` train-split images; each round measures the same `--policies` policies (the
// uniform ones, then every bitwidth gene lowered one at a time) one by one (Loss) and with
// PolicyLoss::Losses on 1 and on `--threads` threads, in an order that rotates every round so
// that the machine's load falls on every variant alike. Prints the seconds per policy of each
// variant, per round and as a median, and the speed-up of the threaded one; checks that every
// variant measured the same losses.
//
//   bazel run -c opt //bench:policy_loss_bench -- [--weights data/fmnist_lowbit/supernet_quant.pt]
//       [--images 512] [--policies 24] [--threads 2] [--rounds 3]
//
// LibTorch's intra-op threads are 1 (the server measures with one thread per forward).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/policy_loss.h"
#include "oface/supernet.h"

ABSL_FLAG(std::string, weights, "data/fmnist_lowbit/supernet_quant.pt", "Supernet weights.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir, "Fashion-MNIST folder.");
ABSL_FLAG(int, images, 512, "Images each loss is measured on.");
ABSL_FLAG(int, policies, 24, "Policies measured per variant and round.");
ABSL_FLAG(int, threads, 2, "Threads of the threaded variant.");
ABSL_FLAG(int, rounds, 3, "Rounds (each measures every variant once).");

namespace {

using apq::oface::Genotype;
using apq::oface::PolicyLoss;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

absl::Status Run() {
  const int images = absl::GetFlag(FLAGS_images);
  const int policies = absl::GetFlag(FLAGS_policies);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (images < 1 || images > 50000 || policies < 1 || policies > 10000 || threads < 1 ||
      threads > 64 || rounds < 1 || rounds > 100) {
    return absl::InvalidArgumentError(
        "--images in [1, 50000], --policies in [1, 10000], --threads in [1, 64], --rounds in "
        "[1, 100]");
  }
  at::set_num_threads(1);
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> supernet,
                   apq::oface::Supernet::Create(apq::oface::FashionMnistLowBitSpec(), 1));
  RETURN_IF_ERROR(supernet->LoadWeights(absl::GetFlag(FLAGS_weights)));
  ASSIGN_OR_RETURN(
      const apq::oface::LabeledImages train,
      apq::oface::LoadFashionMnist(absl::GetFlag(FLAGS_data_dir),
                                   apq::oface::FashionMnistSplit::kTrain, images + 2000));
  const apq::oface::LabeledImages calibration =
      apq::oface::SelectImages(train, apq::oface::SubsetIndices(train.count, 2000, 1));
  const apq::oface::LabeledImages measured =
      apq::oface::SelectImages(train, apq::oface::SubsetIndices(train.count, images, 2));
  const Genotype reference = supernet->LargestGenotype(8);
  ASSIGN_OR_RETURN(std::unique_ptr<PolicyLoss> loss,
                   PolicyLoss::Create(*supernet, reference, calibration, measured));
  std::vector<Genotype> genotypes;
  for (const int bits : supernet->spec().bit_choices) {
    if (static_cast<int>(genotypes.size()) < policies) {
      genotypes.push_back(supernet->LargestGenotype(bits));
    }
  }
  const auto& genes = supernet->space().genes();
  for (size_t g = 0; g < genes.size() && static_cast<int>(genotypes.size()) < policies; ++g) {
    if (!apq::oface::IsBitsGene(genes[g])) continue;
    Genotype lowered = reference;
    lowered[g] = supernet->spec().bit_choices.front();
    genotypes.push_back(lowered);
  }
  std::printf("policy losses: %zu policies of %d images, intra-op threads 1\n", genotypes.size(),
              images);
  const std::vector<std::string> names = {"one by one", "Losses, 1 thread",
                                          absl::StrCat("Losses, ", threads, " threads")};
  std::vector<std::vector<double>> seconds(names.size());
  std::vector<std::vector<double>> losses(names.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t k = 0; k < names.size(); ++k) {
      const size_t variant = (k + round) % names.size();
      const auto start = std::chrono::steady_clock::now();
      if (variant == 0) {
        losses[0].clear();
        for (const Genotype& genotype : genotypes) {
          ASSIGN_OR_RETURN(const double value, loss->Loss(genotype));
          losses[0].push_back(value);
        }
      } else {
        ASSIGN_OR_RETURN(losses[variant], loss->Losses(genotypes, variant == 1 ? 1 : threads));
      }
      seconds[variant].push_back(SecondsSince(start) / static_cast<double>(genotypes.size()));
      std::printf("round %d  %-20s %.4f s per policy\n", round, names[variant].c_str(),
                  seconds[variant].back());
    }
    for (size_t variant = 1; variant < names.size(); ++variant) {
      if (losses[variant] != losses[0]) {
        return absl::InternalError(absl::StrCat(names[variant], " measured other losses"));
      }
    }
  }
  for (size_t variant = 0; variant < names.size(); ++variant) {
    std::printf("median %-20s %.4f s per policy\n", names[variant].c_str(),
                Median(seconds[variant]));
  }
  std::printf("speed-up of %d threads over one by one: %.2fx\n", threads,
              Median(seconds[0]) / Median(seconds[2]));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("policy_loss_bench", argc, argv, Run); }
