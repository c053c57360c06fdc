// Every command of apq, found by name, and the usage text that lists them.
#ifndef APQ_CLIENTS_COMMANDS_H_
#define APQ_CLIENTS_COMMANDS_H_

#include <string>
#include <string_view>

#include "clients/command_line.h"

namespace apq::client {

// The command called `name` in any group, or null when there is none.
const Command* FindCommand(std::string_view name);

// The text of `apq --help`: the global flags, then every command's usage under its heading.
std::string UsageText();

}  // namespace apq::client

#endif  // APQ_CLIENTS_COMMANDS_H_
