#include "server/quotas.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace apq::server {
namespace {

constexpr Role kRoles[] = {Role::kViewer, Role::kSubmitter, Role::kHardware, Role::kAdmin};

absl::Status Malformed(std::string_view flag, absl::string_view item, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(absl::string_view(flag.data(), flag.size()), ": '", item, "': ", why));
}

absl::Status SetQuota(std::string_view flag, absl::string_view item, absl::string_view key,
                      absl::string_view value, RoleQuota* quota) {
  if (key == "max_active_jobs") {
    int jobs = 0;
    if (!absl::SimpleAtoi(value, &jobs) || jobs < 0) {
      return Malformed(flag, item, "max_active_jobs must be an integer >= 0");
    }
    quota->max_active_jobs = jobs;
    return absl::OkStatus();
  }
  double number = 0;
  if (!absl::SimpleAtod(value, &number) || !std::isfinite(number) || number < 0) {
    return Malformed(flag, item, absl::StrCat(key, " must be a finite number >= 0"));
  }
  if (key == "max_calls_per_second") {
    quota->calls_per_second = number;
  } else if (key == "max_call_burst") {
    quota->call_burst = number;
  } else {
    return Malformed(flag, item,
                     "the keys are max_calls_per_second, max_call_burst and max_active_jobs");
  }
  return absl::OkStatus();
}

std::string DescribeQuota(const RoleQuota& quota) {
  std::vector<std::string> parts;
  parts.push_back(quota.calls_per_second > 0
                      ? absl::StrCat(quota.calls_per_second, " calls/s (burst ",
                                     std::max(1.0, quota.call_burst), ")")
                      : "no call rate limit");
  parts.push_back(quota.max_active_jobs > 0 ? absl::StrCat(quota.max_active_jobs, " active jobs")
                                            : "no active-job limit");
  return absl::StrJoin(parts, ", ");
}

}  // namespace

RoleQuotas RoleQuotas::AllButAdmin(const RoleQuota& quota) {
  RoleQuotas quotas;
  for (const Role role : kRoles) {
    if (role != Role::kAdmin) quotas.For(role) = quota;
  }
  return quotas;
}

absl::Status RoleQuotas::Apply(std::string_view text, std::string_view flag) {
  RoleQuotas changed = *this;
  for (absl::string_view item :
       absl::StrSplit(absl::string_view(text.data(), text.size()), ';', absl::SkipEmpty())) {
    const std::vector<absl::string_view> role_and_settings =
        absl::StrSplit(item, absl::MaxSplits(':', 1));
    if (role_and_settings.size() != 2 || role_and_settings[1].empty()) {
      return Malformed(flag, item, "expected ROLE:KEY=VALUE[,KEY=VALUE...]");
    }
    const absl::StatusOr<Role> role =
        RoleFromName(std::string_view(role_and_settings[0].data(), role_and_settings[0].size()));
    if (!role.ok()) return Malformed(flag, item, role.status().message());
    for (absl::string_view setting : absl::StrSplit(role_and_settings[1], ',')) {
      const std::vector<absl::string_view> key_value =
          absl::StrSplit(setting, absl::MaxSplits('=', 1));
      if (key_value.size() != 2) return Malformed(flag, item, "expected KEY=VALUE");
      absl::Status set = SetQuota(flag, item, key_value[0], key_value[1], &changed.For(*role));
      if (!set.ok()) return set;
    }
  }
  *this = changed;
  return absl::OkStatus();
}

std::string RoleQuotas::Describe() const {
  std::vector<std::string> roles;
  for (const Role role : kRoles) {
    roles.push_back(absl::StrCat(RoleName(role), ": ", DescribeQuota(For(role))));
  }
  return absl::StrJoin(roles, "; ");
}

}  // namespace apq::server
