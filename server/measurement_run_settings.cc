#include "server/measurement_run_settings.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "oface/fashion_mnist.h"

namespace apq::server {

std::string SerializeMeasurementRunSettings(const MeasurementRunSettings& settings) {
  const nlohmann::json json = {{"checkpoint", settings.checkpoint},
                               {"calibration_images", settings.calibration_images},
                               {"eval_images", settings.eval_images},
                               {"calibration_batch_size", settings.calibration_batch_size},
                               {"eval_batch_size", settings.eval_batch_size}};
  return json.dump();
}

absl::StatusOr<MeasurementRunSettings> ParseMeasurementRunSettings(const std::string& text) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError("measurement run settings: not a JSON object");
  }
  MeasurementRunSettings settings;
  const auto integer = [&](const char* field, int low, int high, int* out) -> absl::Status {
    const auto found = json.find(field);
    if (found == json.end() || !found->is_number_integer() || found->get<int64_t>() < low ||
        found->get<int64_t>() > high) {
      return absl::InvalidArgumentError(absl::StrCat(
          "measurement run settings: ", field, " must be an integer in [", low, ", ", high, "]"));
    }
    *out = found->get<int>();
    return absl::OkStatus();
  };
  const auto checkpoint = json.find("checkpoint");
  if (checkpoint == json.end() || !checkpoint->is_string() ||
      checkpoint->get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        "measurement run settings: checkpoint must be a non-empty path");
  }
  settings.checkpoint = checkpoint->get<std::string>();
  for (const absl::Status& status :
       {integer("calibration_images", 1, oface::kTrainingFileImages - oface::kValidationImages,
                &settings.calibration_images),
        integer("eval_images", 0, oface::kValidationImages, &settings.eval_images),
        integer("calibration_batch_size", 1, 100000, &settings.calibration_batch_size),
        integer("eval_batch_size", 1, 100000, &settings.eval_batch_size)}) {
    if (!status.ok()) return status;
  }
  return settings;
}

}  // namespace apq::server
