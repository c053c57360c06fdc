#include "oface/policy_loss.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::oface {

double MeanCrossEntropy(const std::vector<float>& logits, const std::vector<uint8_t>& labels,
                        int classes) {
  double total = 0;
  for (size_t image = 0; image < labels.size(); ++image) {
    const float* row = logits.data() + image * classes;
    const double highest = *std::max_element(row, row + classes);
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += std::exp(double{row[c]} - highest);
    total += std::log(sum) + highest - double{row[labels[image]]};
  }
  return labels.empty() ? 0.0 : total / static_cast<double>(labels.size());
}

PolicyLoss::PolicyLoss(Supernet& supernet, Genotype reference, LabeledImages images)
    : supernet_(supernet), reference_(std::move(reference)), images_(std::move(images)) {}

absl::StatusOr<std::unique_ptr<PolicyLoss>> PolicyLoss::Create(Supernet& supernet,
                                                               const Genotype& reference,
                                                               const LabeledImages& calibration,
                                                               LabeledImages images) {
  if (images.count <= 0 || calibration.count <= 0) {
    return absl::InvalidArgumentError("images: the calibration and loss images must not be empty");
  }
  RETURN_IF_ERROR(supernet.SetActiveSubnet(reference));
  supernet.SetQuantized(true);
  RETURN_IF_ERROR(supernet.RecalibrateBatchNorm(calibration));
  return std::unique_ptr<PolicyLoss>(new PolicyLoss(supernet, reference, std::move(images)));
}

absl::Status PolicyLoss::CheckBitsOnly(const Genotype& genotype) const {
  const std::vector<GeneSpec>& genes = supernet_.space().genes();
  if (genotype.size() != genes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("genotype: ", genotype.size(), " genes, the space has ", genes.size()));
  }
  for (size_t gene = 0; gene < genes.size(); ++gene) {
    if (!IsBitsGene(genes[gene]) && genotype[gene] != reference_[gene]) {
      return absl::InvalidArgumentError(absl::StrCat(
          genes[gene].name, ": ", genotype[gene], " differs from the architecture held (",
          reference_[gene], "); only bitwidths may change"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> PolicyLoss::Loss(const Genotype& genotype) {
  RETURN_IF_ERROR(CheckBitsOnly(genotype));
  RETURN_IF_ERROR(supernet_.SetActiveSubnet(genotype));
  supernet_.SetQuantized(true);
  ASSIGN_OR_RETURN(const std::vector<float> logits, supernet_.Logits(images_));
  const int classes = static_cast<int>(logits.size() / std::max(1, images_.count));
  return MeanCrossEntropy(logits, images_.labels, classes);
}

absl::StatusOr<std::vector<double>> PolicyLoss::Losses(const std::vector<Genotype>& genotypes,
                                                       int threads) {
  for (const Genotype& genotype : genotypes) {
    RETURN_IF_ERROR(CheckBitsOnly(genotype));
    RETURN_IF_ERROR(supernet_.space().Validate(genotype));
  }
  supernet_.PrepareForEvaluation();
  std::vector<double> losses(genotypes.size(), 0.0);
  std::vector<absl::Status> statuses(genotypes.size());
  // Thread t measures genotypes t, t + threads, ...: each writes only its own entries.
  const auto measure = [&](size_t first, size_t stride) {
    for (size_t i = first; i < genotypes.size(); i += stride) {
      absl::StatusOr<std::vector<float>> logits =
          supernet_.LogitsOf(genotypes[i], /*quantized=*/true, images_);
      if (!logits.ok()) {
        statuses[i] = logits.status();
        continue;
      }
      const int classes = static_cast<int>(logits->size() / std::max(1, images_.count));
      losses[i] = MeanCrossEntropy(*logits, images_.labels, classes);
    }
  };
  const size_t workers = std::min(genotypes.size(), static_cast<size_t>(std::max(1, threads)));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(measure, t, workers);
  measure(0, std::max<size_t>(workers, 1));
  for (std::thread& thread : pool) thread.join();
  for (const absl::Status& status : statuses) RETURN_IF_ERROR(status);
  return losses;
}

}  // namespace apq::oface
