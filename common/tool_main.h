// The main() of the project's command-line tools: parse the Abseil flags, run the tool, and
// turn its status into the exit code (0, or 1 with "<name>: <status>" on stderr).
#ifndef APQ_COMMON_TOOL_MAIN_H_
#define APQ_COMMON_TOOL_MAIN_H_

#include <cstdio>

#include "absl/flags/parse.h"
#include "absl/status/status.h"

namespace apq {

inline int RunTool(const char* name, int argc, char** argv, absl::Status (*run)()) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = run();
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace apq

#endif  // APQ_COMMON_TOOL_MAIN_H_
