// The commands of what can be searched: spaces, devices and upload-table.
#ifndef APQ_CLIENTS_DEVICE_COMMANDS_H_
#define APQ_CLIENTS_DEVICE_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

absl::Span<const Command> DeviceCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_DEVICE_COMMANDS_H_
