// Final accuracy of a set of networks of a quantization-aware Fashion-MNIST supernet, with
// paired tests between them: what the mixed-vs-uniform experiment
// (bench/mixed_vs_uniform_experiment.sh) reports on the test split, and nothing chooses by.
//
//   bazel-bin/bench/final_accuracy --space fmnist_lowbit
//       --checkpoint data/fmnist_lowbit/supernet_quant.pt --networks networks.json
//       --out final.json [--finetune_steps 300] [--finetune_lr 0.005] [--compare a:b,c:d]
//       [--split test] [--threads 1]
//
// networks.json is a list of {"name": "...", "config": <a config of the space>}. For each
// network, at its bit policy (fake quantization): (1) from the supernet: BN recalibrated on
// 2,000 train-split images, then every image of --split; (2) with --finetune_steps > 0, after
// that many steps of quantization-aware fine-tuning of the subnet alone on the train split
// (oface/subnet_finetune.h; the same steps, learning rate and batches for every network; the
// supernet's weights are reloaded before each network), recalibrated and evaluated the same
// way. Each --compare pair "a:b" gets, at each stage, the accuracy difference a - b, the exact
// McNemar p-value over the images and a 95% paired-bootstrap interval (common/
// paired_comparison.h). Networks with the same config are evaluated once. --out (JSON,
// rewritten atomically after every config) keeps each config's per-image verdicts; a rerun
// with the same settings reuses the configs it holds, so an interrupted run resumes. A
// markdown table goes to stdout.
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/network_list.h"
#include "common/file_io.h"
#include "common/paired_comparison.h"
#include "common/status_macros.h"
#include "common/tensor_memory.h"
#include "common/tool_main.h"
#include "nlohmann/json.hpp"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_finetune.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"

ABSL_FLAG(std::string, space, "fmnist_lowbit", "The supernet's space (oface/mbconv_spec.h).");
ABSL_FLAG(std::string, checkpoint, "", "Quantization-aware supernet weights.");
ABSL_FLAG(std::string, networks, "", "JSON list of {\"name\", \"config\"}.");
ABSL_FLAG(std::string, out, "", "JSON results (also the resume state).");
ABSL_FLAG(std::string, split, "test",
          "Images judged: test (final reports) or validation (a dry run that chooses nothing).");
ABSL_FLAG(int, finetune_steps, 0, "Quantization-aware fine-tune steps per network (0: none).");
ABSL_FLAG(double, finetune_lr, 0.005, "Peak learning rate of the fine-tune (cosine to 0).");
ABSL_FLAG(int, finetune_batch_size, 128, "Batch size of the fine-tune.");
ABSL_FLAG(std::string, compare, "", "Comma-separated pairs first:second of network names.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files.");
ABSL_FLAG(int, calibration_images, 2000, "Train-split images for BN recalibration.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the calibration subset and of the fine-tune's batches.");
ABSL_FLAG(int, bootstrap_samples, 2000, "Paired-bootstrap resamples per comparison.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");

namespace {

using apq::bench::Network;
using apq::bench::ReadNetworks;
using json = nlohmann::json;

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParsePairs(
    const std::string& text, const std::vector<Network>& networks) {
  std::set<std::string> names;
  for (const Network& network : networks) names.insert(network.name);
  std::vector<std::pair<std::string, std::string>> pairs;
  if (text.empty()) return pairs;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    const std::vector<std::string> parts = absl::StrSplit(item, ':');
    if (parts.size() != 2 || names.count(parts[0]) == 0 || names.count(parts[1]) == 0 ||
        parts[0] == parts[1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--compare: '", item, "' is not first:second of two different network names"));
    }
    pairs.emplace_back(parts[0], parts[1]);
  }
  return pairs;
}

std::string Verdicts(const std::vector<uint8_t>& correct) {
  std::string text(correct.size(), '0');
  for (size_t i = 0; i < correct.size(); ++i) text[i] = correct[i] ? '1' : '0';
  return text;
}

std::vector<uint8_t> FromVerdicts(const std::string& text) {
  std::vector<uint8_t> correct(text.size());
  for (size_t i = 0; i < text.size(); ++i) correct[i] = text[i] == '1' ? 1 : 0;
  return correct;
}

absl::Status WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::filesystem::remove(temporary);
      return absl::DataLossError(absl::StrCat("cannot write ", temporary));
    }
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot rename ", temporary, " to ", path));
  return absl::OkStatus();
}

// The figures of network `name` (by its config).
const json& FiguresOf(const json& results, const std::string& name) {
  return results["evaluated"][results["networks"][name].get<std::string>()];
}

json ComparisonJson(const apq::PairedComparison& c) {
  return {{"difference", c.difference},       {"only_first", c.only_first},
          {"only_second", c.only_second},     {"mcnemar_p", c.mcnemar_p},
          {"bootstrap_low", c.bootstrap_low}, {"bootstrap_high", c.bootstrap_high}};
}

absl::Status Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) return absl::InvalidArgumentError("--threads must be > 0");
  at::set_num_threads(threads);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  if (checkpoint.empty()) return absl::InvalidArgumentError("--checkpoint is required");
  const int steps = absl::GetFlag(FLAGS_finetune_steps);
  if (steps < 0 || steps > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--finetune_steps: must be in [0, 100000], got ", steps));
  }
  const int bootstrap_samples = absl::GetFlag(FLAGS_bootstrap_samples);
  if (bootstrap_samples < 0 || bootstrap_samples > 100000) {
    return absl::InvalidArgumentError("--bootstrap_samples: must be in [0, 100000]");
  }
  absl::StatusOr<apq::oface::DataSplit> split =
      apq::oface::DataSplitFromName(absl::GetFlag(FLAGS_split));
  if (!split.ok() || *split == apq::oface::DataSplit::kTrain) {
    return absl::InvalidArgumentError("--split: must be test or validation");
  }
  ASSIGN_OR_RETURN(apq::oface::MbConvSpec spec,
                   apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space)));
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> supernet,
                   apq::oface::Supernet::Create(spec, 1));
  ASSIGN_OR_RETURN(std::vector<Network> networks,
                   ReadNetworks(absl::GetFlag(FLAGS_networks), supernet->space()));
  ASSIGN_OR_RETURN(auto pairs, ParsePairs(absl::GetFlag(FLAGS_compare), networks));
  apq::oface::FineTuneOptions finetune;
  finetune.steps = steps;
  finetune.learning_rate = absl::GetFlag(FLAGS_finetune_lr);
  finetune.batch_size = absl::GetFlag(FLAGS_finetune_batch_size);
  finetune.seed = absl::GetFlag(FLAGS_seed);

  // What a stored network's figures depend on besides its config.
  const json settings = {{"space", spec.name},
                         {"checkpoint", std::filesystem::absolute(checkpoint).string()},
                         {"split", apq::oface::DataSplitName(*split)},
                         {"calibration_images", absl::GetFlag(FLAGS_calibration_images)},
                         {"seed", finetune.seed},
                         {"finetune_steps", steps},
                         {"finetune_lr", finetune.learning_rate},
                         {"finetune_batch_size", finetune.batch_size}};
  // "evaluated": config JSON -> figures; "networks": name -> config JSON.
  json results = {{"settings", settings}, {"evaluated", json::object()}};
  if (std::filesystem::exists(out_path)) {
    ASSIGN_OR_RETURN(const std::string text, apq::ReadFileToString(out_path));
    const json stored = json::parse(text, nullptr, false);
    if (!stored.is_discarded() && stored.is_object() &&
        stored.value("settings", json()) == settings && stored.contains("evaluated") &&
        stored["evaluated"].is_object()) {
      results["evaluated"] = stored["evaluated"];
    } else {
      std::fprintf(stderr, "%s: other settings or unreadable; starting afresh\n", out_path.c_str());
    }
  }

  ASSIGN_OR_RETURN(apq::oface::EvaluationImages images,
                   apq::oface::LoadEvaluationImages(absl::GetFlag(FLAGS_data_dir),
                                                    absl::GetFlag(FLAGS_calibration_images), 0,
                                                    finetune.seed, *split));
  apq::oface::LabeledImages train;
  if (steps > 0) {
    ASSIGN_OR_RETURN(train, apq::oface::LoadFashionMnistSplit(absl::GetFlag(FLAGS_data_dir),
                                                              apq::oface::DataSplit::kTrain));
  }
  apq::oface::EvalOptions eval;
  eval.eval_batch_size = 250;

  for (const Network& network : networks) {
    results["networks"][network.name] = network.config_json;
  }
  for (const Network& network : networks) {
    json& stored = results["evaluated"][network.config_json];
    if (stored.is_object() && stored.contains("supernet")) continue;
    RETURN_IF_ERROR(supernet->LoadWeights(checkpoint));
    RETURN_IF_ERROR(supernet->SetActiveSubnet(network.genotype));
    supernet->SetQuantized(true);
    ASSIGN_OR_RETURN(apq::oface::EvalResult from_supernet,
                     supernet->Evaluate(images.calibration, images.evaluated, eval));
    json entry = {
        {"supernet",
         {{"accuracy", from_supernet.accuracy}, {"correct", Verdicts(from_supernet.correct)}}}};
    if (steps > 0) {
      ASSIGN_OR_RETURN(apq::oface::FineTuneReport report,
                       apq::oface::FineTuneActiveSubnet(*supernet, train, finetune));
      ASSIGN_OR_RETURN(apq::oface::EvalResult tuned,
                       supernet->Evaluate(images.calibration, images.evaluated, eval));
      entry["finetuned"] = {{"accuracy", tuned.accuracy},
                            {"correct", Verdicts(tuned.correct)},
                            {"first_loss", report.first_loss},
                            {"last_loss", report.last_loss},
                            {"seconds", report.seconds}};
    }
    stored = std::move(entry);
    std::fprintf(
        stderr, "%s: supernet %.4f%s\n", network.name.c_str(), from_supernet.accuracy,
        steps > 0
            ? absl::StrCat(", fine-tuned ", stored["finetuned"]["accuracy"].get<double>()).c_str()
            : "");
    RETURN_IF_ERROR(WriteAtomically(out_path, results.dump(1)));
  }

  std::vector<std::string> stages = {"supernet"};
  if (steps > 0) stages.push_back("finetuned");
  json comparisons = json::array();
  for (const auto& [first, second] : pairs) {
    json row = {{"first", first}, {"second", second}};
    for (const std::string& stage : stages) {
      ASSIGN_OR_RETURN(
          apq::PairedComparison comparison,
          apq::ComparePaired(
              FromVerdicts(FiguresOf(results, first)[stage]["correct"].get<std::string>()),
              FromVerdicts(FiguresOf(results, second)[stage]["correct"].get<std::string>()),
              bootstrap_samples, finetune.seed));
      row[stage] = ComparisonJson(comparison);
    }
    comparisons.push_back(std::move(row));
  }
  results["comparisons"] = comparisons;
  RETURN_IF_ERROR(WriteAtomically(out_path, results.dump(1)));

  std::printf("| network | %s accuracy, from the supernet |%s\n", apq::oface::DataSplitName(*split),
              steps > 0 ? absl::StrCat(" after ", steps, " fine-tune steps |").c_str() : "");
  std::printf("|---|---|%s\n", steps > 0 ? "---|" : "");
  for (const Network& network : networks) {
    const json& entry = FiguresOf(results, network.name);
    std::printf("| %s | %.2f%% |", network.name.c_str(),
                100.0 * entry["supernet"]["accuracy"].get<double>());
    if (steps > 0) std::printf(" %.2f%% |", 100.0 * entry["finetuned"]["accuracy"].get<double>());
    std::printf("\n");
  }
  if (!pairs.empty()) {
    std::printf("\n| first - second | stage | difference (points) | 95%% interval | McNemar p |\n");
    std::printf("|---|---|---|---|---|\n");
    for (const json& row : comparisons) {
      for (const std::string& stage : stages) {
        const json& c = row[stage];
        const double p_value = c["mcnemar_p"].get<double>();
        std::printf("| %s - %s | %s | %+.2f | [%+.2f, %+.2f] | %s |\n",
                    row["first"].get<std::string>().c_str(),
                    row["second"].get<std::string>().c_str(), stage.c_str(),
                    100.0 * c["difference"].get<double>(), 100.0 * c["bootstrap_low"].get<double>(),
                    100.0 * c["bootstrap_high"].get<double>(),
                    p_value < 1e-4 ? "< 0.0001" : absl::StrFormat("%.4f", p_value).c_str());
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  apq::KeepTensorMemoryForReuse();
  return apq::RunTool("final_accuracy", argc, argv, Run);
}
