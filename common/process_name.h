// A name for this process among others on other machines: "<host name>:<pid>", what replicas
// and measurement workers hold their leases under. Unique while the process lives.
#ifndef APQ_COMMON_PROCESS_NAME_H_
#define APQ_COMMON_PROCESS_NAME_H_

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace apq {

// "<host name>:<pid>"; `fallback_host` stands in for a host name the system does not give.
inline std::string HostAndPid(const std::string& fallback_host) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? std::string(host) : fallback_host, ":", getpid());
}

}  // namespace apq

#endif  // APQ_COMMON_PROCESS_NAME_H_
