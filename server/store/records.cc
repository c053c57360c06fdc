#include "server/store/records.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace apq::server {

int64_t NetworkHash(absl::string_view config_json) {
  uint64_t hash = 14695981039346656037ULL;  // FNV-1a offset basis.
  for (const char c : config_json) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;  // FNV prime.
  }
  return static_cast<int64_t>(hash);
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
    case Role::kHardware:
      return "hardware";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Role> RoleFromName(std::string_view name) {
  for (const Role role : {Role::kViewer, Role::kSubmitter, Role::kHardware, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("role: '", absl::string_view(name.data(), name.size()),
                   "' is not one of viewer, submitter, hardware, admin"));
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::optional<double> CandidateRecord::*CandidateOrderMetric(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kAccuracyDesc:
      return &CandidateRecord::accuracy;
    case CandidateOrder::kLatencyAsc:
      return &CandidateRecord::latency_ms;
    case CandidateOrder::kEnergyAsc:
      return &CandidateRecord::energy_mj;
    case CandidateOrder::kSizeAsc:
      return &CandidateRecord::size_mb;
    case CandidateOrder::kBitopsAsc:
      return &CandidateRecord::bitops;
    case CandidateOrder::kId:
      break;
  }
  return nullptr;
}

}  // namespace apq::server
