#include "server/supernet_host.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "oface/mbconv_spec.h"
#include "oface/policy_loss.h"
#include "oface/subnet_export.h"
#include "oface/subnet_finetune.h"
#include "oface/subnet_measurement.h"
#include "server/sha256.h"

namespace apq::server {
namespace {

constexpr char kFp32Weights[] = "supernet_fp32.pt";
constexpr char kQuantWeights[] = "supernet_quant.pt";

// Loads `path` into a new supernet of `spec`; any failure is the server's precondition.
absl::StatusOr<std::unique_ptr<oface::Supernet>> LoadSupernet(const oface::MbConvSpec& spec,
                                                              const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<oface::Supernet> supernet, oface::Supernet::Create(spec, 1));
  const absl::Status loaded = supernet->LoadWeights(path);
  if (!loaded.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("supernet weights ", path, " do not load: ", loaded.message()));
  }
  return supernet;
}

// The first `count` images of `images` (all when count is 0 or too large).
oface::LabeledImages FirstImages(const oface::LabeledImages& images, int count) {
  if (count <= 0 || count >= images.count) return images;
  std::vector<int> indices(count);
  for (int i = 0; i < count; ++i) indices[i] = i;
  return oface::SelectImages(images, indices);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SupernetHost>> SupernetHost::Create(const Options& options) {
  std::unique_ptr<SupernetHost> host(new SupernetHost(options));
  for (const oface::MbConvSpec& spec : oface::FashionMnistSpecs()) {
    const std::string folder = absl::StrCat(options.data_dir, "/", spec.name, "/");
    const std::string fp32_path = folder + kFp32Weights;
    const std::string quant_path = folder + kQuantWeights;
    const bool has_fp32 = std::filesystem::exists(fp32_path);
    const bool has_quant = std::filesystem::exists(quant_path);
    if (!has_fp32 && !has_quant) continue;
    if (has_fp32 != has_quant) {
      return absl::FailedPreconditionError(
          absl::StrCat("supernet ", spec.name, ": ", has_fp32 ? quant_path : fp32_path,
                       " is missing (both weight files are needed)"));
    }
    auto entry = std::make_unique<Entry>();
    ASSIGN_OR_RETURN(entry->fp32, LoadSupernet(spec, fp32_path));
    ASSIGN_OR_RETURN(entry->quant, LoadSupernet(spec, quant_path));
    std::error_code error;
    entry->fp32_path = std::filesystem::absolute(fp32_path, error).string();
    entry->quant_path = std::filesystem::absolute(quant_path, error).string();
    ASSIGN_OR_RETURN(std::string fp32_bytes, ReadFileToString(fp32_path));
    ASSIGN_OR_RETURN(std::string quant_bytes, ReadFileToString(quant_path));
    entry->version =
        absl::StrCat(spec.name, "@", Sha256Hex(fp32_bytes + quant_bytes).substr(0, 12));
    host->entries_.emplace(spec.name, std::move(entry));
  }
  return host;
}

bool SupernetHost::Has(absl::string_view space) const {
  return entries_.find(space) != entries_.end();
}

std::string SupernetHost::Version(absl::string_view space) const {
  auto found = entries_.find(space);
  return found == entries_.end() ? std::string() : found->second->version;
}

absl::StatusOr<std::string> SupernetHost::WeightsFile(absl::string_view space,
                                                      bool quantized) const {
  ASSIGN_OR_RETURN(Entry * entry, FindEntry(space));
  return quantized ? entry->quant_path : entry->fp32_path;
}

absl::StatusOr<SupernetHost::Entry*> SupernetHost::FindEntry(absl::string_view space) const {
  auto found = entries_.find(space);
  if (found == entries_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("space ", space, " has no trained supernet to measure or export with"));
  }
  return found->second.get();
}

absl::StatusOr<std::shared_ptr<const oface::EvaluationImages>> SupernetHost::Images(
    oface::DataSplit split) {
  if (split == oface::DataSplit::kTrain) {
    return absl::InvalidArgumentError("split: accuracy is measured on validation or test");
  }
  absl::MutexLock lock(&images_mutex_);
  std::shared_ptr<const oface::EvaluationImages>& cached = images_[split];
  if (cached == nullptr) {
    absl::StatusOr<oface::EvaluationImages> images =
        oface::LoadEvaluationImages(options_.dataset_dir, options_.calibration_images,
                                    /*eval_images=*/0, options_.calibration_seed, split);
    if (!images.ok()) {
      // The file paths are the operator's to see, not the caller's.
      std::fprintf(stderr, "apqd: the supernet's dataset is unavailable: %s\n",
                   images.status().ToString().c_str());
      return absl::FailedPreconditionError(
          "the supernet's dataset (Fashion-MNIST) is unavailable on this server; its log names "
          "the missing or unreadable file");
    }
    cached = std::make_shared<const oface::EvaluationImages>(*std::move(images));
  }
  return cached;
}

absl::StatusOr<std::vector<SupernetHost::Measurement>> SupernetHost::Measure(
    absl::string_view space, const std::vector<oface::Genotype>& genotypes, bool quantized,
    oface::DataSplit split, int image_count, const std::function<bool()>& cancelled) {
  if (image_count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("measure_test_images: must be >= 0, got ", image_count));
  }
  ASSIGN_OR_RETURN(Entry * entry, FindEntry(space));
  ASSIGN_OR_RETURN(std::shared_ptr<const oface::EvaluationImages> images, Images(split));
  const oface::LabeledImages test = FirstImages(images->evaluated, image_count);
  oface::EvalOptions eval;
  eval.eval_batch_size = options_.eval_batch_size;
  eval.cancelled = cancelled;
  std::vector<Measurement> measurements;
  absl::MutexLock lock(&entry->mutex);
  oface::Supernet& supernet = quantized ? *entry->quant : *entry->fp32;
  supernet.SetQuantized(quantized);
  for (const oface::Genotype& genotype : genotypes) {
    RETURN_IF_ERROR(supernet.SetActiveSubnet(genotype));
    ASSIGN_OR_RETURN(oface::EvalResult result, supernet.Evaluate(images->calibration, test, eval));
    measurements.push_back({result.accuracy,
                            quantized ? oface::kMeasuredQuantFromSupernet : oface::kMeasuredFp32,
                            result.seconds, split});
    ++measurements_;
  }
  return measurements;
}

namespace {

// The TorchScript file's bytes of `subnet`, through a private temporary file
// (torch::jit::Module::save writes files).
absl::StatusOr<std::string> TorchScriptBytes(const oface::ExtractedSubnet& subnet) {
  const std::string path =
      (std::filesystem::temp_directory_path() /
       absl::StrCat("apqd-export-", ::getpid(), "-", reinterpret_cast<uintptr_t>(&subnet), ".pt"))
          .string();
  const absl::Status saved = subnet.Save(path);
  absl::StatusOr<std::string> bytes =
      saved.ok() ? ReadFileToString(path) : absl::StatusOr<std::string>(saved);
  std::remove(path.c_str());
  return bytes;
}

}  // namespace

absl::StatusOr<SupernetHost::Export> SupernetHost::ExportSubnet(
    absl::string_view space, const oface::Genotype& genotype,
    const std::function<bool()>& cancelled, std::optional<oface::QuantizedEngine> int8_engine) {
  ASSIGN_OR_RETURN(Entry * entry, FindEntry(space));
  // The export's accuracy is a final report: on the test split.
  ASSIGN_OR_RETURN(std::shared_ptr<const oface::EvaluationImages> images,
                   Images(oface::DataSplit::kTest));
  oface::EvalOptions eval;
  eval.eval_batch_size = options_.eval_batch_size;
  eval.cancelled = cancelled;
  Export result;
  result.supernet_version = entry->version;
  {
    absl::MutexLock lock(&entry->mutex);
    ASSIGN_OR_RETURN(oface::ExtractedSubnet subnet,
                     int8_engine.has_value()
                         ? oface::ExtractInt8Subnet(*entry->quant, genotype, images->calibration,
                                                    *int8_engine, eval)
                         : oface::ExtractSubnet(*entry->quant, genotype, /*quantized=*/true,
                                                images->calibration, eval));
    ASSIGN_OR_RETURN(result.torchscript, TorchScriptBytes(subnet));
    if (cancelled && cancelled()) return absl::CancelledError("export cancelled");
    // Measured on the bytes returned, loaded as the user's program loads them: an int8 module
    // in this process and loaded from its file classify a few test images differently.
    ASSIGN_OR_RETURN(
        result.accuracy,
        oface::VerifyExportBytes(result.torchscript, images->evaluated, options_.eval_batch_size));
  }
  return result;
}

namespace {

// A mutex this object holds until it goes (taken by the caller).
class HeldMutex {
 public:
  explicit HeldMutex(absl::Mutex& mutex) ABSL_NO_THREAD_SAFETY_ANALYSIS : mutex_(mutex) {}
  ~HeldMutex() ABSL_NO_THREAD_SAFETY_ANALYSIS { mutex_.Unlock(); }
  HeldMutex(const HeldMutex&) = delete;
  HeldMutex& operator=(const HeldMutex&) = delete;

 private:
  absl::Mutex& mutex_;
};

// Takes `mutex`, polling `cancelled` (may be empty) every 50 ms while another holds it.
absl::StatusOr<std::unique_ptr<HeldMutex>> LockUnlessCancelled(
    absl::Mutex& mutex, const std::function<bool()>& cancelled) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  while (!mutex.TryLock()) {
    if (cancelled && cancelled()) {
      return absl::CancelledError("cancelled while waiting for the supernet");
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return std::make_unique<HeldMutex>(mutex);
}

// Holds the space's supernet (its entry's mutex) while a job measures with it.
class HostPolicyLossSession final : public search::PolicyLossSession {
 public:
  HostPolicyLossSession(std::unique_ptr<HeldMutex> lock, std::unique_ptr<oface::PolicyLoss> loss,
                        int threads)
      : lock_(std::move(lock)), loss_(std::move(loss)), threads_(threads) {}
  absl::StatusOr<double> Loss(const oface::Genotype& genotype) override {
    return loss_->Loss(genotype);
  }
  absl::StatusOr<std::vector<double>> Losses(
      const std::vector<oface::Genotype>& genotypes) override {
    return loss_->Losses(genotypes, threads_);
  }

 private:
  std::unique_ptr<HeldMutex> lock_;  // Released last: declared first.
  std::unique_ptr<oface::PolicyLoss> loss_;
  const int threads_;
};

}  // namespace

class SupernetHost::PolicyLossSource final : public search::PolicyLossProvider {
 public:
  PolicyLossSource(SupernetHost& host, std::string space) : host_(host), space_(std::move(space)) {}

  absl::StatusOr<std::unique_ptr<search::PolicyLossSession>> Open(
      const oface::Genotype& reference, int images, uint64_t seed,
      const std::function<bool()>& cancelled) const override {
    if (images < 1 || images > (oface::kTrainingFileImages - oface::kValidationImages)) {
      return absl::InvalidArgumentError(
          absl::StrCat("images: must be in [1, ",
                       (oface::kTrainingFileImages - oface::kValidationImages), "], got ", images));
    }
    ASSIGN_OR_RETURN(Entry * entry, host_.FindEntry(space_));
    ASSIGN_OR_RETURN(std::shared_ptr<const oface::EvaluationImages> standard,
                     host_.Images(oface::DataSplit::kValidation));
    // `images` train-split images drawn with `seed`: LoadEvaluationImages's calibration set.
    absl::StatusOr<oface::EvaluationImages> drawn = oface::LoadEvaluationImages(
        host_.options_.dataset_dir, images, /*eval_images=*/1, seed, oface::DataSplit::kValidation);
    if (!drawn.ok()) {
      std::fprintf(stderr, "apqd: the supernet's dataset is unavailable: %s\n",
                   drawn.status().ToString().c_str());
      return absl::FailedPreconditionError(
          "the supernet's dataset (Fashion-MNIST) is unavailable on this server; its log names "
          "the missing or unreadable file");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<HeldMutex> lock, LockUnlessCancelled(entry->mutex, cancelled));
    ASSIGN_OR_RETURN(std::unique_ptr<oface::PolicyLoss> loss,
                     oface::PolicyLoss::Create(*entry->quant, reference, standard->calibration,
                                               std::move(drawn->calibration)));
    return std::make_unique<HostPolicyLossSession>(std::move(lock), std::move(loss),
                                                   std::max(1, host_.options_.measurement_threads));
  }

 private:
  SupernetHost& host_;
  const std::string space_;
};

std::shared_ptr<const search::PolicyLossProvider> SupernetHost::PolicyLosses(
    absl::string_view space) {
  if (!Has(space)) return nullptr;
  return std::make_shared<PolicyLossSource>(*this, static_cast<std::string>(space));
}

namespace {

// A private supernet and the splits.
class HostSubnetTrainingSession final : public search::SubnetTrainingSession {
 public:
  HostSubnetTrainingSession(std::unique_ptr<oface::Supernet> supernet, oface::LabeledImages train,
                            oface::LabeledImages validation,
                            std::shared_ptr<const oface::EvaluationImages> calibration)
      : supernet_(std::move(supernet)),
        train_(std::move(train)),
        validation_(std::move(validation)),
        calibration_(std::move(calibration)) {}

  oface::Supernet& supernet() override { return *supernet_; }
  const oface::LabeledImages& train() const override { return train_; }
  const oface::LabeledImages& validation() const override { return validation_; }

  absl::StatusOr<std::string> ExportTorchScript(const oface::Genotype& genotype) override {
    ASSIGN_OR_RETURN(oface::ExtractedSubnet subnet,
                     oface::ExtractSubnet(*supernet_, genotype, /*quantized=*/true,
                                          calibration_->calibration, oface::EvalOptions{}));
    return TorchScriptBytes(subnet);
  }

 private:
  std::unique_ptr<oface::Supernet> supernet_;
  const oface::LabeledImages train_;
  const oface::LabeledImages validation_;
  std::shared_ptr<const oface::EvaluationImages> calibration_;
};

}  // namespace

class SupernetHost::SubnetTrainingSource final : public search::SubnetTrainingProvider {
 public:
  SubnetTrainingSource(SupernetHost& host, std::string space)
      : host_(host), space_(std::move(space)) {}

  absl::StatusOr<std::unique_ptr<search::SubnetTrainingSession>> Open() const override {
    ASSIGN_OR_RETURN(Entry * entry, host_.FindEntry(space_));
    ASSIGN_OR_RETURN(std::shared_ptr<const oface::EvaluationImages> standard,
                     host_.Images(oface::DataSplit::kValidation));
    absl::StatusOr<oface::LabeledImages> file = oface::LoadTrainingFile(host_.options_.dataset_dir);
    if (!file.ok()) {
      std::fprintf(stderr, "apqd: the supernet's dataset is unavailable: %s\n",
                   file.status().ToString().c_str());
      return absl::FailedPreconditionError(
          "the supernet's dataset (Fashion-MNIST) is unavailable on this server; its log names "
          "the missing or unreadable file");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<oface::Supernet> supernet,
                     LoadSupernet(entry->quant->spec(), entry->quant_path));
    return std::make_unique<HostSubnetTrainingSession>(
        std::move(supernet), oface::SelectTrainingFileSplit(*file, oface::DataSplit::kTrain),
        oface::SelectTrainingFileSplit(*file, oface::DataSplit::kValidation), std::move(standard));
  }

 private:
  SupernetHost& host_;
  const std::string space_;
};

std::shared_ptr<const search::SubnetTrainingProvider> SupernetHost::SubnetTraining(
    absl::string_view space) {
  if (!Has(space)) return nullptr;
  return std::make_shared<SubnetTrainingSource>(*this, static_cast<std::string>(space));
}

}  // namespace apq::server
