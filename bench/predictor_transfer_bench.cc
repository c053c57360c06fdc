// APQ's predictor-transfer experiment on a Fashion-MNIST space's own measurements: how well
// the quantization-aware accuracy predictor ranks (subnet, bit policy) pairs of architectures
// it never saw when trained (a) from scratch on N quantized records, (b) by transfer from the
// full-precision predictor then fine-tuned on the same N, (c) XGBoost on the same N, and (d)
// the mean of (b) and (c); plus the fp32 predictor alone (bits ignored) as the
// no-quantized-data baseline.
//
//   bazel run //bench:predictor_transfer_bench -- --space fmnist_lowbit
//       --measurements data/fmnist_lowbit/measurements.csv [--seeds 10] [--test_fraction 0.2]
//       [--threads 1]
//
// The test set holds out whole architectures: the quantized records are split once (seed
// 1000) by architecture, and the fp32 records of the test architectures are dropped too, so
// no predictor sees a test architecture in its fp32 or its quantized training data. For each
// seed, the first N records of a seeded shuffle of the remaining quantized records are the
// training records (each trainer then holds out its own validation part for early stopping).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_training.h"
#include "predictor/ranking_metrics.h"
#include "predictor/training_data.h"
#include "predictor/xgb_predictor.h"
#include "server/measurement_samples.h"

ABSL_FLAG(std::string, space, "fmnist_mbv2", "The measurements' space (oface/mbconv_spec.h).");
ABSL_FLAG(std::string, measurements, "data/fmnist_mbv2/measurements.csv",
          "CSV of measurement records (fp32 and quant-from-supernet).");
ABSL_FLAG(int, seeds, 3, "Seeds per training-set size.");
ABSL_FLAG(double, test_fraction, 0.2, "Share of the quantized records held out for testing.");
ABSL_FLAG(int, threads, 2, "LibTorch and XGBoost threads.");

namespace {

using apq::predictor::RankingMetrics;
using apq::predictor::TrainingSample;

struct Summary {
  std::vector<double> rmse;
  std::vector<double> tau;
  std::vector<double> pairwise;
  void Add(const RankingMetrics& metrics) {
    rmse.push_back(metrics.rmse);
    tau.push_back(metrics.kendall_tau);
    pairwise.push_back(metrics.pairwise_accuracy);
  }
};

std::string MeanStd(const std::vector<double>& values, double scale, int digits) {
  if (values.empty()) return "-";
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  double squared = 0.0;
  for (const double value : values) squared += (value - mean) * (value - mean);
  const double std_dev = values.size() > 1 ? std::sqrt(squared / (values.size() - 1)) : 0.0;
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f +- %.*f", digits, mean * scale, digits, std_dev * scale);
  return text;
}

// Scores the mean of two predictors' predictions.
absl::StatusOr<RankingMetrics> ScoreMean(apq::predictor::AccuracyPredictor& first,
                                         apq::predictor::AccuracyPredictor& second,
                                         const std::vector<TrainingSample>& test) {
  ASSIGN_OR_RETURN(std::vector<double> mean, apq::predictor::PredictSamples(first, test));
  ASSIGN_OR_RETURN(std::vector<double> other, apq::predictor::PredictSamples(second, test));
  for (size_t i = 0; i < mean.size(); ++i) mean[i] = 0.5 * (mean[i] + other[i]);
  return apq::predictor::ComputeRankingMetrics(mean, apq::predictor::MeasuredAccuracies(test));
}

absl::Status Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int seeds = absl::GetFlag(FLAGS_seeds);
  if (threads <= 0) return absl::InvalidArgumentError("--threads must be > 0");
  if (seeds <= 0) return absl::InvalidArgumentError("--seeds must be > 0");
  at::set_num_threads(threads);
  ASSIGN_OR_RETURN(apq::oface::MbConvSpec spec,
                   apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space)));
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::SearchSpace> space,
                   apq::oface::NewMbConvQuantSpace(spec));
  ASSIGN_OR_RETURN(std::vector<apq::oface::MeasurementRecord> records,
                   apq::oface::ReadMeasurementCsv(absl::GetFlag(FLAGS_measurements)));
  const int arch_inputs = space->arch_feature_size();
  const int bit_inputs = space->feature_size() - arch_inputs;
  ASSIGN_OR_RETURN(
      apq::server::MeasurementSamples samples,
      apq::server::SamplesFromMeasurements(*space, records, absl::GetFlag(FLAGS_measurements)));
  const std::vector<TrainingSample>& quant = samples.quantized;
  std::vector<std::string> quant_keys;
  quant_keys.reserve(quant.size());
  for (const TrainingSample& sample : quant) {
    quant_keys.push_back(apq::predictor::ArchitectureKey(sample, arch_inputs));
  }
  std::set<std::string> fp32_keys;
  for (const TrainingSample& sample : samples.fp32) {
    fp32_keys.insert(apq::predictor::ArchitectureKey(sample, arch_inputs));
  }
  const std::set<std::string> quant_architectures(quant_keys.begin(), quant_keys.end());
  int shared = 0;
  for (const std::string& key : quant_architectures) shared += fp32_keys.count(key);
  std::printf(
      "%zu fp32 records (%zu architectures) and %zu quantized records (%zu architectures, %d "
      "of them also measured at fp32); %d architecture + %d bit features\n",
      samples.fp32.size(), fp32_keys.size(), quant.size(), quant_architectures.size(), shared,
      arch_inputs, bit_inputs);
  if (quant_architectures.size() < 2) {
    return absl::FailedPreconditionError("need quantized records of at least 2 architectures");
  }

  // The fixed test set: every quantized record of the held-out architectures.
  const std::vector<int> test_indices =
      apq::predictor::GroupedValidationSplit(quant_keys, absl::GetFlag(FLAGS_test_fraction), 1000);
  std::vector<char> in_test(quant.size(), 0);
  std::set<std::string> test_architectures;
  for (const int index : test_indices) {
    in_test[index] = 1;
    test_architectures.insert(quant_keys[index]);
  }
  std::vector<TrainingSample> test;
  std::vector<TrainingSample> pool;
  for (size_t i = 0; i < quant.size(); ++i) (in_test[i] ? test : pool).push_back(quant[i]);
  std::vector<TrainingSample> fp32;
  for (const TrainingSample& sample : samples.fp32) {
    if (test_architectures.count(apq::predictor::ArchitectureKey(sample, arch_inputs)) == 0) {
      fp32.push_back(sample);
    }
  }
  std::printf(
      "test: %zu quantized records of %zu held-out architectures; %zu fp32 records of them "
      "dropped; pool: %zu quantized records\n",
      test.size(), test_architectures.size(), samples.fp32.size() - fp32.size(), pool.size());

  // The full-precision predictor, on every fp32 record.
  apq::predictor::MlpTrainingOptions fp32_options;
  fp32_options.name = absl::StrCat(spec.name, "_fp32");
  fp32_options.arch_inputs = arch_inputs;
  fp32_options.threads = threads;
  apq::predictor::MlpTrainingReport fp32_report;
  ASSIGN_OR_RETURN(apq::predictor::MlpWeights fp32_weights,
                   apq::predictor::TrainMlp(fp32, fp32_options, &fp32_report));
  std::printf(
      "fp32 predictor: %d train / %d validation records, validation RMSE %.4f "
      "(mean predictor %.4f), best epoch %d of %d, %.1f s\n",
      fp32_report.train_samples, fp32_report.validation_samples, fp32_report.validation_rmse,
      fp32_report.initial_validation_rmse, fp32_report.best_epoch, fp32_report.epochs_run,
      fp32_report.seconds);
  // The fp32 predictor on quantized configs: it reads the architecture part only.
  apq::predictor::MlpWeights fp32_on_quant = fp32_weights;
  fp32_on_quant.bits = apq::predictor::MlpWeights::Linear{
      "bits", bit_inputs, fp32_weights.layers[0].out,
      std::vector<float>(static_cast<size_t>(bit_inputs) * fp32_weights.layers[0].out, 0.0f),
      std::vector<float>(fp32_weights.layers[0].out, 0.0f)};
  ASSIGN_OR_RETURN(std::unique_ptr<apq::predictor::MlpPredictor> fp32_predictor,
                   apq::predictor::MlpPredictor::Create(fp32_on_quant, {}));
  ASSIGN_OR_RETURN(RankingMetrics baseline, apq::predictor::ScoreOnSamples(*fp32_predictor, test));
  std::printf(
      "fp32 predictor on the %zu quantized test records: RMSE %.4f, tau %.3f, "
      "pairwise %.3f\n\n",
      test.size(), baseline.rmse, baseline.kendall_tau, baseline.pairwise_accuracy);

  std::vector<int> sizes;
  for (const int size : {25, 50, 100, 200}) {
    if (size < static_cast<int>(pool.size())) sizes.push_back(size);
  }
  sizes.push_back(static_cast<int>(pool.size()));
  std::printf("| N | method | RMSE (points) | Kendall tau | pairwise accuracy |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const int size : sizes) {
    std::map<std::string, Summary> summaries;
    for (int seed = 1; seed <= seeds; ++seed) {
      std::vector<TrainingSample> train = pool;
      std::mt19937_64 rng(seed);
      std::shuffle(train.begin(), train.end(), rng);
      train.resize(size);

      apq::predictor::MlpTrainingOptions options;
      options.name = absl::StrCat(spec.name, "_quant");
      options.arch_inputs = arch_inputs;
      options.bit_inputs = bit_inputs;
      options.seed = seed;
      options.threads = threads;
      ASSIGN_OR_RETURN(apq::predictor::MlpWeights scratch,
                       apq::predictor::TrainMlp(train, options, nullptr));
      options.init = fp32_weights;
      ASSIGN_OR_RETURN(apq::predictor::MlpWeights transfer,
                       apq::predictor::TrainMlp(train, options, nullptr));
      ASSIGN_OR_RETURN(auto scratch_predictor, apq::predictor::MlpPredictor::Create(scratch, {}));
      ASSIGN_OR_RETURN(auto transfer_predictor, apq::predictor::MlpPredictor::Create(transfer, {}));
      apq::predictor::XgbTrainingOptions xgb_options;
      xgb_options.input_size = arch_inputs + bit_inputs;
      xgb_options.seed = seed;
      xgb_options.threads = threads;
      ASSIGN_OR_RETURN(auto xgb, apq::predictor::XgbPredictor::Train(train, xgb_options, nullptr));
      ASSIGN_OR_RETURN(RankingMetrics m1, apq::predictor::ScoreOnSamples(*scratch_predictor, test));
      ASSIGN_OR_RETURN(RankingMetrics m2,
                       apq::predictor::ScoreOnSamples(*transfer_predictor, test));
      ASSIGN_OR_RETURN(RankingMetrics m3, apq::predictor::ScoreOnSamples(*xgb, test));
      ASSIGN_OR_RETURN(RankingMetrics m4, ScoreMean(*transfer_predictor, *xgb, test));
      summaries["a. MLP from scratch"].Add(m1);
      summaries["b. MLP by transfer"].Add(m2);
      summaries["c. XGBoost"].Add(m3);
      summaries["d. mean of b and c"].Add(m4);
    }
    for (const auto& [method, summary] : summaries) {
      std::printf("| %d | %s | %s | %s | %s |\n", size, method.c_str(),
                  MeanStd(summary.rmse, 100.0, 2).c_str(), MeanStd(summary.tau, 1.0, 3).c_str(),
                  MeanStd(summary.pairwise, 1.0, 3).c_str());
    }
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  return apq::RunTool("predictor_transfer_bench", argc, argv, Run);
}
