// The commands of searches and their jobs: evaluate, search, watch, jobs, candidates, config
// and cancel.
#ifndef APQ_CLIENTS_SEARCH_COMMANDS_H_
#define APQ_CLIENTS_SEARCH_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

absl::Span<const Command> SearchCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_SEARCH_COMMANDS_H_
