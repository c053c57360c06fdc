// The commands of accuracy predictors and the measurements they are trained on:
// upload-dataset, datasets, train, training, cancel-training, predictors and
// set-default-predictor.
#ifndef APQ_CLIENTS_PREDICTOR_COMMANDS_H_
#define APQ_CLIENTS_PREDICTOR_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

absl::Span<const Command> PredictorCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_PREDICTOR_COMMANDS_H_
