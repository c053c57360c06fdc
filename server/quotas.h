// Per-role quotas: how many calls a token of each role may make, and how many jobs it may
// have queued or running. apqd's --max_calls_per_second, --max_call_burst and
// --max_active_jobs_per_token give every role but admin the same; --role_quotas changes any
// role's, admin's included (admins have none by default).
#ifndef APQ_SERVER_QUOTAS_H_
#define APQ_SERVER_QUOTAS_H_

#include <array>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/store/records.h"

namespace apq::server {

// 0 in a field: no limit.
struct RoleQuota {
  double calls_per_second = 0;  // A token bucket's refill rate...
  double call_burst = 0;        // ...and its size (calls at once after a pause; at least 1).
  int max_active_jobs = 0;      // Jobs one token may have queued or running.
};

class RoleQuotas {
 public:
  // Every role without limits.
  RoleQuotas() = default;
  // Viewer, submitter and hardware with `quota`; admin without limits.
  static RoleQuotas AllButAdmin(const RoleQuota& quota);

  const RoleQuota& For(Role role) const { return quotas_[static_cast<size_t>(role) - 1]; }
  RoleQuota& For(Role role) { return quotas_[static_cast<size_t>(role) - 1]; }

  // Applies `text`: "ROLE:KEY=VALUE[,KEY=VALUE...][;ROLE:...]", ROLE one of viewer, submitter,
  // hardware, admin and KEY one of max_calls_per_second, max_call_burst (numbers >= 0) and
  // max_active_jobs (an integer >= 0), e.g.
  // "viewer:max_calls_per_second=10;submitter:max_active_jobs=4,max_call_burst=50". An empty
  // text changes nothing. INVALID_ARGUMENT naming `flag` and the item for a malformed one;
  // nothing is changed then.
  absl::Status Apply(std::string_view text, std::string_view flag = "--role_quotas");

  // "viewer: 50 calls/s (burst 200), 16 active jobs; ...": what the server enforces.
  std::string Describe() const;

 private:
  std::array<RoleQuota, 4> quotas_{};
};

}  // namespace apq::server

#endif  // APQ_SERVER_QUOTAS_H_
