// Who is calling and what they may do: API tokens ("apq_<id>_<secret>", only the SHA-256 of
// the secret stored), four roles, and the permission each call needs. gRPC-free: the services
// hand over the "authorization" metadata value.
#ifndef APQ_SERVER_AUTH_H_
#define APQ_SERVER_AUTH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/quotas.h"
#include "server/store/records.h"
#include "server/store/token_store.h"

namespace apq::server {

// What a call needs.
enum class Permission {
  kRead,          // Any role.
  kSubmit,        // Submitter, admin: searches, sweeps, evaluations, cancelling one's jobs.
  kUploadTables,  // Hardware, admin.
  kAdmin,         // Admin: predictors, datasets, training, tokens, anyone's jobs.
};

bool RoleAllows(Role role, Permission permission);
// What a permission names in PERMISSION_DENIED messages ("the submitter or admin role").
const char* PermissionNeeds(Permission permission);

// The authenticated caller of one call.
struct Caller {
  // The token's id; empty for the anonymous caller of a server without authentication.
  std::string token_id;
  std::string name;
  Role role = Role::kViewer;
};

// A token as created: its record and the bearer text, which is never stored.
struct IssuedToken {
  TokenRecord record;
  std::string bearer;  // "apq_<id>_<secret>"
};

// Thread-safe.
class Authenticator {
 public:
  struct Options {
    // Off: a call without a token is the anonymous admin (the server must listen on loopback
    // only; apqd checks). A call with a token is still checked, and its jobs are owned.
    bool required = true;
    // How long a token read from the store is trusted before it is read again (a token
    // revoked through this server is forgotten at once).
    absl::Duration cache_ttl = absl::Seconds(5);
    // Calls per second one token of each role may make on average, and at once after a
    // pause (a token bucket); beyond them a call is RESOURCE_EXHAUSTED naming the quota.
    RoleQuotas quotas;
  };

  // `tokens` must outlive the authenticator.
  Authenticator(const Options& options, TokenStore& tokens);

  // The caller of a call whose "authorization" metadata is `authorization` (nullopt when the
  // call has none). UNAUTHENTICATED, saying only what the caller can fix, for a missing token
  // (when required), a value that is not "Bearer apq_<id>_<secret>", an unknown or revoked
  // token, or a wrong secret; INTERNAL when the store fails.
  absl::StatusOr<Caller> Authenticate(const std::optional<std::string_view>& authorization);

  // Authenticate, then PERMISSION_DENIED naming the caller's role and what the call needs
  // when the role does not allow `permission`, then RESOURCE_EXHAUSTED naming the quota when
  // the token is over its role's call rate.
  absl::StatusOr<Caller> Authorize(const std::optional<std::string_view>& authorization,
                                   Permission permission);

  // Stores a new token. INVALID_ARGUMENT for a name that is empty, longer than 128 bytes or
  // holds a control character.
  absl::StatusOr<IssuedToken> CreateToken(const std::string& name, Role role,
                                          const std::string& created_by);

  // Revokes the token in the store and forgets it here; errors as TokenStore::RevokeToken.
  absl::StatusOr<TokenRecord> RevokeToken(const std::string& id);

  // With authentication required and no token stored, creates the first admin token
  // (created_by "bootstrap") and returns it; nullopt otherwise. Of several servers starting
  // together on one empty store, exactly one creates it (TokenStore::AddFirstToken).
  absl::StatusOr<std::optional<IssuedToken>> BootstrapAdmin();

  bool required() const { return options_.required; }

 private:
  // A new token's record and bearer, not stored; CreateToken's errors.
  absl::StatusOr<IssuedToken> NewToken(const std::string& name, Role role,
                                       const std::string& created_by);

  struct Cached {
    TokenRecord record;
    absl::Time read_at;
  };
  struct Bucket {
    double tokens = 0;
    absl::Time refilled_at;
  };
  // Takes one call from the caller's bucket (of its role's size and rate); false when it is
  // empty.
  bool TakeCall(const std::string& token_id, const RoleQuota& quota);
  absl::StatusOr<TokenRecord> LoadToken(const std::string& id);

  const Options options_;
  TokenStore& tokens_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mutex_);
  // One per token that called (bounded by the stored tokens).
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mutex_);
};

// The bearer token's parts; INVALID_ARGUMENT unless `text` is "apq_<16 hex>_<64 hex>".
struct BearerParts {
  std::string id;
  std::string secret;
};
absl::StatusOr<BearerParts> ParseBearer(std::string_view text);

}  // namespace apq::server

#endif  // APQ_SERVER_AUTH_H_
