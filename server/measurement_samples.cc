#include "server/measurement_samples.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace apq::server {

absl::StatusOr<MeasurementSamples> SamplesFromMeasurements(
    const oface::SearchSpace& space, const std::vector<oface::MeasurementRecord>& records,
    const std::string& source) {
  const int arch_inputs = space.arch_feature_size();
  MeasurementSamples samples;
  for (size_t i = 0; i < records.size(); ++i) {
    absl::StatusOr<oface::Genotype> genotype = space.FromJson(records[i].config_json);
    if (!genotype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " line ", i + 2, ": ", genotype.status().message()));
    }
    predictor::TrainingSample sample;
    space.ActiveFeatures(*genotype, &sample.features);
    sample.accuracy = records[i].accuracy;
    if (records[i].method == oface::kMeasuredFp32) {
      sample.features.erase(
          std::remove_if(sample.features.begin(), sample.features.end(),
                         [arch_inputs](int32_t index) { return index >= arch_inputs; }),
          sample.features.end());
      samples.fp32.push_back(std::move(sample));
    } else {
      samples.quantized.push_back(std::move(sample));
    }
  }
  return samples;
}

}  // namespace apq::server
