// SHA-256 digests (OpenSSL's EVP interface) as lower-case hex.
#ifndef APQ_SERVER_SHA256_H_
#define APQ_SERVER_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace apq::server {

// The 64 hex digits of the SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace apq::server

#endif  // APQ_SERVER_SHA256_H_
