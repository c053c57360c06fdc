#include "oface/subnet_measurement.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "oface/restricted_space.h"
#include "oface/rng.h"

namespace apq::oface {

absl::StatusOr<EvaluationImages> LoadEvaluationImages(const std::string& data_dir,
                                                      int calibration_images, int eval_images,
                                                      uint64_t seed, DataSplit split) {
  if (calibration_images <= 0) {
    return absl::InvalidArgumentError("calibration_images must be > 0");
  }
  if (eval_images < 0) return absl::InvalidArgumentError("eval_images must be >= 0");
  if (split == DataSplit::kTrain) {
    return absl::InvalidArgumentError("split: accuracy is measured on validation or test");
  }
  // One read of the training file serves the calibration images (of the train split) and
  // the validation images: it is 60,000 compressed images.
  ASSIGN_OR_RETURN(const LabeledImages training_file, LoadTrainingFile(data_dir));
  EvaluationImages images;
  images.split = split;
  if (split == DataSplit::kTest) {
    ASSIGN_OR_RETURN(images.evaluated,
                     LoadFashionMnist(data_dir, FashionMnistSplit::kTest, eval_images));
  } else {
    images.evaluated = SelectTrainingFileSplit(training_file, split, eval_images);
  }
  // The seeded subset of the train split, as indices of the training file.
  const std::vector<int> train = TrainingFileIndices(DataSplit::kTrain);
  std::vector<int> calibration;
  for (const int index : SubsetIndices(static_cast<int>(train.size()), calibration_images, seed)) {
    calibration.push_back(train[index]);
  }
  images.calibration = SelectImages(training_file, calibration);
  return images;
}

absl::StatusOr<BitSampling> BitSamplingFromName(std::string_view name) {
  for (const BitSampling sampling :
       {BitSampling::kHighest, BitSampling::kRandom, BitSampling::kUniform,
        BitSampling::kNearUniform, BitSampling::kPaired}) {
    if (name == BitSamplingName(sampling)) return sampling;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", absl::string_view(name.data(), name.size()),
                   "' is not one of highest, random, uniform, near_uniform, paired"));
}

const char* BitSamplingName(BitSampling sampling) {
  switch (sampling) {
    case BitSampling::kHighest:
      return "highest";
    case BitSampling::kRandom:
      return "random";
    case BitSampling::kUniform:
      return "uniform";
    case BitSampling::kNearUniform:
      return "near_uniform";
    case BitSampling::kPaired:
      return "paired";
  }
  return "?";
}

std::vector<Genotype> SampleMeasurementConfigs(const SearchSpace& space, int count, bool quantized,
                                               uint64_t seed) {
  return SampleConfigsWithBits(space, count,
                               quantized ? BitSampling::kRandom : BitSampling::kHighest, seed);
}

std::vector<Genotype> SampleConfigsWithBits(const SearchSpace& space, int count, BitSampling bits,
                                            uint64_t seed) {
  std::vector<Genotype> configs;
  if (count <= 0) return configs;
  const std::vector<GeneSpec>& genes = space.genes();
  std::vector<size_t> bits_genes;
  std::vector<int> shared_widths;  // The widths every bits gene offers, ascending.
  for (size_t g = 0; g < genes.size(); ++g) {
    if (!IsBitsGene(genes[g])) continue;
    std::vector<int> choices = genes[g].choices;
    std::sort(choices.begin(), choices.end());
    if (bits_genes.empty()) {
      shared_widths = choices;
    } else {
      std::vector<int> common;
      std::set_intersection(shared_widths.begin(), shared_widths.end(), choices.begin(),
                            choices.end(), std::back_inserter(common));
      shared_widths = std::move(common);
    }
    bits_genes.push_back(g);
  }
  const bool one_width = bits == BitSampling::kUniform || bits == BitSampling::kNearUniform;
  if (one_width && (bits_genes.empty() || shared_widths.empty())) return configs;
  const std::vector<std::pair<int, int>> pairs = BitsGenePairs(space);
  std::set<Genotype> seen;
  Rng rng(seed);
  const int64_t max_draws = int64_t{100} * count;
  for (int64_t draw = 0; draw < max_draws && static_cast<int>(configs.size()) < count; ++draw) {
    Genotype genotype = space.Sample(rng);
    if (bits == BitSampling::kHighest) {
      for (const size_t g : bits_genes) genotype[g] = genes[g].choices.back();
    } else if (one_width) {
      const int width = shared_widths[rng.Uniform(static_cast<uint32_t>(shared_widths.size()))];
      for (const size_t g : bits_genes) genotype[g] = width;
      if (bits == BitSampling::kNearUniform) {
        const uint32_t redrawn = 1 + rng.Uniform(3);
        for (uint32_t i = 0; i < redrawn; ++i) {
          const size_t g = bits_genes[rng.Uniform(static_cast<uint32_t>(bits_genes.size()))];
          genotype[g] =
              genes[g].choices[rng.Uniform(static_cast<uint32_t>(genes[g].choices.size()))];
        }
      }
    }
    if (bits == BitSampling::kPaired) {
      for (const auto& [weight, activation] : pairs) {
        const std::vector<int>& allowed = genes[activation].choices;
        if (std::find(allowed.begin(), allowed.end(), genotype[weight]) != allowed.end()) {
          genotype[activation] = genotype[weight];
        }
      }
    }
    if (bits != BitSampling::kRandom && !space.SatisfiesRules(genotype)) continue;
    genotype = space.Canonical(genotype);
    if (seen.insert(genotype).second) configs.push_back(std::move(genotype));
  }
  return configs;
}

absl::StatusOr<MeasureSummary> MeasureSubnets(Supernet& supernet, const LabeledImages& calibration,
                                              const LabeledImages& test,
                                              const MeasureOptions& options) {
  if (options.count <= 0) return absl::InvalidArgumentError("count must be positive");
  if (!options.on_record) return absl::InvalidArgumentError("on_record is required");
  if (calibration.count <= 0) return absl::InvalidArgumentError("no calibration images");
  if (test.count <= 0) return absl::InvalidArgumentError("no test images");
  if (options.eval.calibration_batch_size <= 0 || options.eval.eval_batch_size <= 0) {
    return absl::InvalidArgumentError("eval: batch sizes must be > 0");
  }
  const std::string method = options.quantized ? kMeasuredQuantFromSupernet : kMeasuredFp32;
  MeasureSummary summary;
  for (const Genotype& genotype : SampleConfigsWithBits(
           supernet.space(), options.count,
           options.quantized ? options.quantized_bits : BitSampling::kHighest, options.seed)) {
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("the measurement job was cancelled");
    }
    MeasurementRecord record;
    record.config_json = supernet.space().ToJson(genotype);
    if (options.already_measured && options.already_measured(record.config_json)) {
      ++summary.skipped;
      continue;
    }
    RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
    supernet.SetQuantized(options.quantized);
    ASSIGN_OR_RETURN(const EvalResult result, supernet.Evaluate(calibration, test, options.eval));
    record.accuracy = result.accuracy;
    record.method = method;
    record.seconds = result.seconds;
    record.seed = options.seed;
    record.split = DataSplitName(options.split);
    RETURN_IF_ERROR(options.on_record(record));
    ++summary.measured;
    summary.seconds += result.seconds;
  }
  return summary;
}

}  // namespace apq::oface
