// The commands of searches and their jobs: evaluate, search, watch, jobs, candidates, config
// and cancel.
#ifndef APQ_CLIENTS_SEARCH_COMMANDS_H_
#define APQ_CLIENTS_SEARCH_COMMANDS_H_

#include <string>

#include "absl/types/span.h"
#include "clients/command_line.h"
#include "clients/connection.h"
#include "proto/apq/v1/apq.pb.h"

namespace apq::client {

absl::Span<const Command> SearchCommands();

// Follows the job's progress to its end (a progress line on a terminal's stderr unless
// `quiet`), then reads the ended job into `job`.
grpc::Status WaitForJobEnd(Connection& connection, const std::string& job_id, bool quiet,
                           apq::v1::Job* job);

}  // namespace apq::client

#endif  // APQ_CLIENTS_SEARCH_COMMANDS_H_
