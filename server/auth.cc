#include "server/auth.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "server/sha256.h"

namespace apq::server {
namespace {

constexpr absl::string_view kBearerPrefix = "apq_";
constexpr size_t kIdHexLength = 16;
constexpr size_t kSecretHexLength = 64;
constexpr size_t kMaxTokenNameBytes = 128;

bool IsLowerHex(std::string_view text) {
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// `bytes` random bytes from the kernel, as lowercase hex.
absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!urandom.read(raw.data(), static_cast<std::streamsize>(bytes))) {
    return absl::InternalError("cannot read /dev/urandom for a token");
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes);
  for (const char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 15]);
  }
  return hex;
}

// Compares in time independent of where the texts differ (both are hashes of one length).
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

absl::Status Unauthenticated(std::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat(
      absl::string_view(why.data(), why.size()),
      "; send the metadata \"authorization: Bearer apq_<id>_<secret>\" (apq --token, or "
      "APQ_TOKEN)"));
}

}  // namespace

bool RoleAllows(Role role, Permission permission) {
  switch (permission) {
    case Permission::kRead:
      return true;
    case Permission::kSubmit:
      return role == Role::kSubmitter || role == Role::kAdmin;
    case Permission::kUploadTables:
      return role == Role::kHardware || role == Role::kAdmin;
    case Permission::kAdmin:
      return role == Role::kAdmin;
  }
  return false;
}

const char* PermissionNeeds(Permission permission) {
  switch (permission) {
    case Permission::kRead:
      return "any role";
    case Permission::kSubmit:
      return "the submitter or admin role";
    case Permission::kUploadTables:
      return "the hardware or admin role";
    case Permission::kAdmin:
      return "the admin role";
  }
  return "?";
}

absl::StatusOr<BearerParts> ParseBearer(std::string_view text) {
  const size_t expected = kBearerPrefix.size() + kIdHexLength + 1 + kSecretHexLength;
  if (text.size() != expected ||
      absl::string_view(text.data(), kBearerPrefix.size()) != kBearerPrefix ||
      text[kBearerPrefix.size() + kIdHexLength] != '_') {
    return absl::InvalidArgumentError("not a token of the form apq_<16 hex>_<64 hex>");
  }
  const std::string_view id = text.substr(kBearerPrefix.size(), kIdHexLength);
  const std::string_view secret = text.substr(kBearerPrefix.size() + kIdHexLength + 1);
  if (!IsLowerHex(id) || !IsLowerHex(secret)) {
    return absl::InvalidArgumentError("not a token of the form apq_<16 hex>_<64 hex>");
  }
  return BearerParts{absl::StrCat("tok-", absl::string_view(id.data(), id.size())),
                     std::string(secret)};
}

Authenticator::Authenticator(const Options& options, TokenStore& tokens)
    : options_(options), tokens_(tokens) {}

absl::StatusOr<TokenRecord> Authenticator::LoadToken(const std::string& id) {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mutex_);
    auto found = cache_.find(id);
    if (found != cache_.end() && now - found->second.read_at < options_.cache_ttl) {
      return found->second.record;
    }
  }
  ASSIGN_OR_RETURN(TokenRecord record, tokens_.GetToken(id));
  absl::MutexLock lock(&mutex_);
  // Bounded: at most one entry per stored token; entries of forgotten ids are refreshed.
  cache_[id] = Cached{record, now};
  return record;
}

absl::StatusOr<Caller> Authenticator::Authenticate(
    const std::optional<std::string_view>& authorization) {
  if (!authorization.has_value()) {
    if (options_.required) return Unauthenticated("this call needs an API token");
    Caller anonymous;
    anonymous.name = "anonymous (authentication off)";
    anonymous.role = Role::kAdmin;
    return anonymous;
  }
  std::string_view value = *authorization;
  constexpr std::string_view kScheme = "Bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(value.data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return Unauthenticated("the authorization metadata is not \"Bearer <token>\"");
  }
  value.remove_prefix(kScheme.size());
  absl::StatusOr<BearerParts> parts = ParseBearer(value);
  if (!parts.ok()) return Unauthenticated(absl::StrCat("the token is ", parts.status().message()));
  absl::StatusOr<TokenRecord> record = LoadToken(parts->id);
  if (absl::IsNotFound(record.status())) return Unauthenticated("unknown or revoked token");
  if (!record.ok()) return record.status();
  if (record->revoked_unix_s > 0 ||
      !ConstantTimeEqual(Sha256Hex(parts->secret), record->secret_sha256)) {
    return Unauthenticated("unknown or revoked token");
  }
  return Caller{record->id, record->name, record->role};
}

absl::StatusOr<Caller> Authenticator::Authorize(
    const std::optional<std::string_view>& authorization, Permission permission) {
  ASSIGN_OR_RETURN(Caller caller, Authenticate(authorization));
  if (!RoleAllows(caller.role, permission)) {
    return absl::PermissionDeniedError(
        absl::StrCat("token ", caller.token_id, " has the ", RoleName(caller.role),
                     " role; this call needs ", PermissionNeeds(permission)));
  }
  const RoleQuota& quota = options_.quotas.For(caller.role);
  if (!TakeCall(caller.token_id, quota)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("quota calls_per_second: token ", caller.token_id, " (", RoleName(caller.role),
                     ") may make ", quota.calls_per_second, " calls per second (",
                     std::max(1.0, quota.call_burst),
                     " at once); retry later (apqd --max_calls_per_second, --role_quotas)"));
  }
  return caller;
}

bool Authenticator::TakeCall(const std::string& token_id, const RoleQuota& quota) {
  if (quota.calls_per_second <= 0) return true;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mutex_);
  auto [found, inserted] = buckets_.try_emplace(token_id);
  Bucket& bucket = found->second;
  const double capacity = std::max(1.0, quota.call_burst);
  if (inserted) {
    bucket.tokens = capacity;
  } else {
    const double refill = absl::ToDoubleSeconds(now - bucket.refilled_at) * quota.calls_per_second;
    bucket.tokens = std::min(capacity, bucket.tokens + refill);
  }
  bucket.refilled_at = now;
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

absl::StatusOr<IssuedToken> Authenticator::NewToken(const std::string& name, Role role,
                                                    const std::string& created_by) {
  if (name.empty() || name.size() > kMaxTokenNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: between 1 and ", kMaxTokenNameBytes, " bytes, got ", name.size()));
  }
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("name: holds a control character");
    }
  }
  ASSIGN_OR_RETURN(const std::string id_hex, RandomHex(kIdHexLength / 2));
  ASSIGN_OR_RETURN(const std::string secret, RandomHex(kSecretHexLength / 2));
  IssuedToken issued;
  issued.record.id = absl::StrCat("tok-", id_hex);
  issued.record.name = name;
  issued.record.role = role;
  issued.record.secret_sha256 = Sha256Hex(secret);
  issued.record.created_unix_s = NowUnixSeconds();
  issued.record.created_by = created_by;
  issued.bearer = absl::StrCat(kBearerPrefix, id_hex, "_", secret);
  return issued;
}

absl::StatusOr<IssuedToken> Authenticator::CreateToken(const std::string& name, Role role,
                                                       const std::string& created_by) {
  ASSIGN_OR_RETURN(IssuedToken issued, NewToken(name, role, created_by));
  RETURN_IF_ERROR(tokens_.AddToken(issued.record));
  return issued;
}

absl::StatusOr<TokenRecord> Authenticator::RevokeToken(const std::string& id) {
  RETURN_IF_ERROR(tokens_.RevokeToken(id, NowUnixSeconds()));
  {
    absl::MutexLock lock(&mutex_);
    cache_.erase(id);
  }
  return tokens_.GetToken(id);
}

absl::StatusOr<std::optional<IssuedToken>> Authenticator::BootstrapAdmin() {
  if (!options_.required) return std::optional<IssuedToken>();
  ASSIGN_OR_RETURN(IssuedToken admin, NewToken("bootstrap admin", Role::kAdmin, "bootstrap"));
  // Atomic in the store: of replicas starting together on an empty store, one creates it.
  ASSIGN_OR_RETURN(const bool stored, tokens_.AddFirstToken(admin.record));
  if (!stored) return std::optional<IssuedToken>();
  return std::optional<IssuedToken>(std::move(admin));
}

}  // namespace apq::server
