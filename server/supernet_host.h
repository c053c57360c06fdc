// The trained supernets the server measures accuracies and exports subnets with: for a space
// of the supernet family (oface::FashionMnistSpecs: fmnist_mbv2, fmnist_lowbit) whose weights
// data/<space>/ holds, its full-precision weights (fp32 measurements) and its
// quantization-aware weights (measurements at a bit policy, deployable subnets), with the
// dataset's calibration and test images, loaded on first use. (fmnist_lowbit ships no weights
// yet: it has no supernet, and its measurements and exports are refused.)
//
// Measurements use the measurement jobs' settings (server/measure_subnets_main.cc defaults):
// BN recalibrated on the seed-1 subset of 2,000 training images, evaluation batches of 250,
// so Evaluate reproduces the stored records.
//
// Thread safety: all methods may be called concurrently; work on one supernet runs one call
// at a time (a Supernet holds its active subnet and BN statistics).
#ifndef APQ_SERVER_SUPERNET_HOST_H_
#define APQ_SERVER_SUPERNET_HOST_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/search_space.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "search/engine.h"

namespace apq::server {

class SupernetHost {
 public:
  struct Options {
    std::string data_dir = "data";  // Holds <space>/supernet_fp32.pt and supernet_quant.pt.
    std::string dataset_dir = oface::kDefaultFashionMnistDir;
    int calibration_images = 2000;
    uint64_t calibration_seed = 1;
    int eval_batch_size = 250;
    // Threads that measure policy losses at once (PolicyLosses sessions), each forward on
    // one of them with LibTorch's intra-op threads at the process's setting; at least 1.
    int measurement_threads = 1;
  };

  // Loads the weights of every supernet whose files exist under data_dir; a space without
  // them simply has no supernet. FAILED_PRECONDITION naming the file when weights exist but
  // do not load (another spec, corrupt).
  static absl::StatusOr<std::unique_ptr<SupernetHost>> Create(const Options& options);

  bool Has(absl::string_view space) const;
  const Options& options() const { return options_; }
  // The absolute path of the weights file Measure reads for `space` (the quantization-aware
  // supernet's or the full-precision one's), for measurement workers that measure as Measure
  // does. FAILED_PRECONDITION when the space has no supernet.
  absl::StatusOr<std::string> WeightsFile(absl::string_view space, bool quantized) const;
  // "<space>@<first 12 hex digits of the sha256 of both weight files>"; empty without one.
  std::string Version(absl::string_view space) const;

  struct Measurement {
    double accuracy = 0.0;
    std::string method;  // oface::kMeasuredFp32 or oface::kMeasuredQuantFromSupernet.
    double seconds = 0.0;
    oface::DataSplit split = oface::DataSplit::kValidation;
  };
  // Measures each genotype (of the space's SearchSpace) on the first `images` images of
  // `split` (0: all), BN recalibrated on the train split. FAILED_PRECONDITION when the space
  // has no supernet or the dataset cannot be read (naming the file); INVALID_ARGUMENT for
  // images < 0 or the train split; CANCELLED when `cancelled` (polled per batch; may be
  // empty) returns true.
  // Genotypes measured by Measure so far (each completed measurement counts once): how tests
  // tell a measurement made from one restored.
  int64_t measurements() const { return measurements_.load(); }

  absl::StatusOr<std::vector<Measurement>> Measure(absl::string_view space,
                                                   const std::vector<oface::Genotype>& genotypes,
                                                   bool quantized, oface::DataSplit split,
                                                   int images,
                                                   const std::function<bool()>& cancelled);

  struct Export {
    std::string torchscript;  // The file's bytes (oface/subnet_export.h).
    double accuracy = 0.0;  // Of the returned bytes loaded as a user loads them, on the whole test
                            // split (a report).
    std::string supernet_version;
  };
  // Extracts `genotype` from the quantization-aware supernet at its bit policy, BN
  // recalibrated, and exports it: fake-quantized, or with `int8_engine` as a true int8 module
  // for that engine (oface::ExtractInt8Subnet: FAILED_PRECONDITION naming a layer not at W8A8);
  // errors as Measure.
  absl::StatusOr<Export> ExportSubnet(absl::string_view space, const oface::Genotype& genotype,
                                      const std::function<bool()>& cancelled,
                                      std::optional<oface::QuantizedEngine> int8_engine = {});

  // The losses of `space`'s networks at any bit policy on its quantization-aware supernet, for
  // engines that measure (search::PolicyLossProvider; null when the space has no supernet).
  // A session recalibrates batch norm at its reference on the calibration images Measure uses
  // and measures on `images` train-split images drawn with its seed; it holds the space's
  // supernet while it lives, so measured evaluations of the space wait for it.
  std::shared_ptr<const search::PolicyLossProvider> PolicyLosses(absl::string_view space);

  // Training on `space`'s supernet, for engines that train (search::SubnetTrainingProvider;
  // null when the space has no supernet). A session holds a private copy of the space's
  // quantization-aware supernet (its weights file read again) and the train and validation
  // splits, so it holds nothing others wait for; its export recalibrates batch norm on the
  // calibration images Measure uses.
  std::shared_ptr<const search::SubnetTrainingProvider> SubnetTraining(absl::string_view space);

 private:
  struct Entry {
    std::unique_ptr<oface::Supernet> fp32;
    std::unique_ptr<oface::Supernet> quant;
    std::string version;
    std::string fp32_path;   // The file `fp32` was read from (absolute).
    std::string quant_path;  // The file `quant` was read from (absolute).
    absl::Mutex mutex;       // Serializes the use of fp32 and quant.
  };

  class PolicyLossSource;
  class SubnetTrainingSource;
  explicit SupernetHost(Options options) : options_(std::move(options)) {}
  // The space's entry or FAILED_PRECONDITION.
  absl::StatusOr<Entry*> FindEntry(absl::string_view space) const;
  // The calibration images and those of `split`, read on first use.
  absl::StatusOr<std::shared_ptr<const oface::EvaluationImages>> Images(oface::DataSplit split);

  const Options options_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  std::atomic<int64_t> measurements_{0};
  absl::Mutex images_mutex_;
  std::map<oface::DataSplit, std::shared_ptr<const oface::EvaluationImages>> images_
      ABSL_GUARDED_BY(images_mutex_);
};

}  // namespace apq::server

#endif  // APQ_SERVER_SUPERNET_HOST_H_
