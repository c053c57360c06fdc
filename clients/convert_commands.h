// `apq convert`: configurations from the reference code's other formats (clients/config_convert.h).
#ifndef APQ_CLIENTS_CONVERT_COMMANDS_H_
#define APQ_CLIENTS_CONVERT_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

absl::Span<const Command> ConvertCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_CONVERT_COMMANDS_H_
