// `apq ci --profile FILE`: what a CI job runs to get a deployable network for a device and
// budgets (clients/ci_profile.h), reusing an identical finished job when there is one.
#ifndef APQ_CLIENTS_CI_COMMANDS_H_
#define APQ_CLIENTS_CI_COMMANDS_H_

#include "absl/types/span.h"
#include "clients/command_line.h"

namespace apq::client {

// Exit codes of apq ci besides kExitOk (found), kExitFailed (any other error) and kExitUsage
// (a bad command line or profile).
inline constexpr int kExitNothingFeasible = 3;
inline constexpr int kExitBelowMinimumAccuracy = 4;

absl::Span<const Command> CiCommands();

}  // namespace apq::client

#endif  // APQ_CLIENTS_CI_COMMANDS_H_
