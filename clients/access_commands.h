// The commands of API tokens: token-create, tokens, token-revoke, whoami.
#ifndef APQ_CLIENTS_ACCESS_COMMANDS_H_
#define APQ_CLIENTS_ACCESS_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

absl::Span<const Command> AccessCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_ACCESS_COMMANDS_H_
