// API tokens (server/auth.h). The contract shared by every store is in store.h.
#ifndef APQ_SERVER_STORE_TOKEN_STORE_H_
#define APQ_SERVER_STORE_TOKEN_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

// Tokens are added and revoked, never changed otherwise nor deleted (a revoked token keeps
// naming the owner of its jobs).
class TokenStore {
 public:
  virtual ~TokenStore() = default;

  // Stores `token` as given. ALREADY_EXISTS for a taken id; INVALID_ARGUMENT for an empty id
  // or name, a role that is not a Role value, a secret hash that is not 64 lowercase hex
  // characters, or a NaN time.
  virtual absl::Status AddToken(const TokenRecord& token) = 0;

  // As AddToken, but only into a store that holds no token at all, decided atomically with
  // the write: of several servers bootstrapping one empty store at once, exactly one stores
  // its token. Returns whether it was stored (false: the store held a token).
  virtual absl::StatusOr<bool> AddFirstToken(const TokenRecord& token) = 0;

  // NOT_FOUND naming the id for an unknown token.
  virtual absl::StatusOr<TokenRecord> GetToken(const std::string& id) = 0;

  // Every token, revoked ones included, in the order they were added.
  virtual absl::StatusOr<std::vector<TokenRecord>> ListTokens() = 0;

  // Marks the token revoked at `revoked_unix_s` (> 0). NOT_FOUND for an unknown token;
  // FAILED_PRECONDITION when it is revoked already.
  virtual absl::Status RevokeToken(const std::string& id, double revoked_unix_s) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_TOKEN_STORE_H_
