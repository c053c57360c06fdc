// Measurement jobs: the measured accuracies of sampled subnets of a trained Supernet
// (oface/supernet.h), the accuracy predictors' training data. A job is a pure function of
// (supernet weights, images, options): it samples its configs deterministically from a seed,
// evaluates each (BN recalibrated on the calibration images, then accuracy on the test
// images) and hands every record to a callback; where records are stored is the caller's
// business (CSV here; the server's SQLite store elsewhere). Resuming is skipping: the caller
// says which configs it already has.
//
// Thread safety: a job uses its Supernet exclusively while it runs.
#ifndef APQ_OFACE_SUBNET_MEASUREMENT_H_
#define APQ_OFACE_SUBNET_MEASUREMENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "oface/fashion_mnist.h"
#include "oface/measurement_csv.h"
#include "oface/search_space.h"
#include "oface/supernet.h"

namespace apq::oface {

// The images of an evaluation: BN recalibration on a seeded subset of the train split,
// accuracy on `split` (validation for every measurement that informs a choice; test only for
// final reports).
struct EvaluationImages {
  // SubsetIndices(train-split count, calibration_images, seed) of the train split.
  LabeledImages calibration;
  DataSplit split = DataSplit::kValidation;
  LabeledImages evaluated;  // The first eval_images of `split` (0: all).
};
// INVALID_ARGUMENT for calibration_images <= 0 or eval_images < 0; the reader's errors naming
// a missing or corrupt dataset file (oface/fashion_mnist.h).
absl::StatusOr<EvaluationImages> LoadEvaluationImages(const std::string& data_dir,
                                                      int calibration_images, int eval_images,
                                                      uint64_t seed, DataSplit split);

// How the bits genes of a measurement job's configs are drawn.
enum class BitSampling {
  kHighest,      // Every bits gene at its highest choice: the configs of fp32 records.
  kRandom,       // As SearchSpace::Sample draws them: independent per layer.
  kUniform,      // One width for every bits gene, drawn from the widths all of them offer.
  kNearUniform,  // kUniform, then 1 to 3 bits genes redrawn from their own choices.
  // kRandom, then each layer's activation bits set to its weight bits (BitsGenePairs): the
  // matched pairs (W8A8, W32A32, ...) a CPU with int8 and float kernels runs.
  kPaired,
};

// "highest", "random", "uniform", "near_uniform", "paired"; INVALID_ARGUMENT naming the
// choices.
absl::StatusOr<BitSampling> BitSamplingFromName(std::string_view name);
const char* BitSamplingName(BitSampling sampling);

struct MeasureOptions {
  int count = 0;           // Configs of the job (> 0).
  bool quantized = false;  // false: fp32 records; true: quant-from-supernet records.
  // How a quantized job draws its bits (ignored, kHighest, when !quantized).
  BitSampling quantized_bits = BitSampling::kRandom;
  uint64_t seed = 1;                         // Config sampling (SampleConfigsWithBits).
  DataSplit split = DataSplit::kValidation;  // What the evaluated images are; in each record.
  EvalOptions eval;                          // Batch sizes of recalibration and evaluation.
  // Called with each config's JSON before it is measured; true skips it (resume). May be
  // empty (nothing is skipped).
  std::function<bool(const std::string& config_json)> already_measured;
  // Receives each record as soon as it is measured; a non-OK status stops the job and is
  // returned. Required.
  std::function<absl::Status(const MeasurementRecord&)> on_record;
  // Polled between configs; true stops the job with CANCELLED. May be empty.
  std::function<bool()> cancelled;
};

struct MeasureSummary {
  int measured = 0;
  int skipped = 0;
  double seconds = 0.0;  // Sum of the measured records' seconds.
};

// The job's configs, in order: the first `count` distinct canonical genotypes of a stream
// sampled uniformly (SearchSpace::Sample) from Rng(seed); when !quantized, the bits genes are
// set to their highest choice before canonicalisation and deduplication (a genotype that then
// breaks a rule is redrawn). Fewer than `count` when the space runs out of new configs (after 100 x
// count draws).
std::vector<Genotype> SampleMeasurementConfigs(const SearchSpace& space, int count, bool quantized,
                                               uint64_t seed);

// As above with the bits drawn by `bits`: kHighest and kRandom are the streams of
// SampleMeasurementConfigs(quantized = false / true); kUniform and kNearUniform draw the
// architecture the same way and then the widths from the same Rng. A genotype that breaks a
// rule after its bits are set is redrawn.
std::vector<Genotype> SampleConfigsWithBits(const SearchSpace& space, int count, BitSampling bits,
                                            uint64_t seed);

// Measures the configs of SampleMeasurementConfigs(supernet.space(), ...) not already
// measured. INVALID_ARGUMENT naming the option for bad options or empty image sets; the
// callback's status; CANCELLED; INTERNAL from LibTorch. Leaves the supernet at the last
// measured config.
absl::StatusOr<MeasureSummary> MeasureSubnets(Supernet& supernet, const LabeledImages& calibration,
                                              const LabeledImages& test,
                                              const MeasureOptions& options);

}  // namespace apq::oface

#endif  // APQ_OFACE_SUBNET_MEASUREMENT_H_
