// What a measurement run's workers need besides its tasks (MeasurementRunRecord::settings):
// the supernet's weights and the images of each measurement. Written by the launcher
// (measure_subnets --launcher), read by each worker (measure_worker).
#ifndef APQ_SERVER_MEASUREMENT_RUN_SETTINGS_H_
#define APQ_SERVER_MEASUREMENT_RUN_SETTINGS_H_

#include <string>

#include "absl/status/statusor.h"

namespace apq::server {

struct MeasurementRunSettings {
  // The supernet's weights: a path every worker's machine sees (a shared file system).
  std::string checkpoint;
  int calibration_images = 2000;  // Train-split images for BN recalibration (seeded subset).
  int eval_images = 0;            // First N images of the split (0: all).
  int calibration_batch_size = 200;
  int eval_batch_size = 250;
};

// A JSON object with the fields above.
std::string SerializeMeasurementRunSettings(const MeasurementRunSettings& settings);
// INVALID_ARGUMENT naming the field for a missing or out-of-range one, or text that is not
// such an object.
absl::StatusOr<MeasurementRunSettings> ParseMeasurementRunSettings(const std::string& text);

}  // namespace apq::server

#endif  // APQ_SERVER_MEASUREMENT_RUN_SETTINGS_H_
