// Measurement records (oface/subnet_measurement.h) as predictor training samples
// (predictor/training_data.h): the one place that decides which features each kind of
// record feeds its predictor.
#ifndef APQ_SERVER_MEASUREMENT_SAMPLES_H_
#define APQ_SERVER_MEASUREMENT_SAMPLES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "oface/measurement_csv.h"
#include "oface/search_space.h"
#include "predictor/training_data.h"

namespace apq::server {

struct MeasurementSamples {
  // fp32 records, architecture features only (indices < space.arch_feature_size()): the
  // full-precision predictor's inputs.
  std::vector<predictor::TrainingSample> fp32;
  // Every other record (quantized), the full encoding.
  std::vector<predictor::TrainingSample> quantized;
};

// INVALID_ARGUMENT "<source> line <n>: ..." (n counts the CSV header as line 1) for a config
// outside `space`.
absl::StatusOr<MeasurementSamples> SamplesFromMeasurements(
    const oface::SearchSpace& space, const std::vector<oface::MeasurementRecord>& records,
    const std::string& source);

}  // namespace apq::server

#endif  // APQ_SERVER_MEASUREMENT_SAMPLES_H_
