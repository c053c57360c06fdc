// The status a failed RPC returns: the domain status's code and message, and beside them the
// google.rpc.Status of gRPC's rich error model (the grpc-status-details-bin trailer; grpc's
// Python, Node and Go clients decode it) with one standard detail, so that a client reads the
// offending field or resource without parsing the message:
//   INVALID_ARGUMENT, OUT_OF_RANGE   google.rpc.BadRequest: a field violation whose field is the
//                                    path the message starts with ("engine.options.steps",
//                                    "budgets.max_bitops", "configs_json[2]") and whose
//                                    description is the rest of the message;
//   FAILED_PRECONDITION              google.rpc.PreconditionFailure: a violation whose type is
//                                    "STATE", its subject the leading field path (when there
//                                    is one) and its description the message;
//   RESOURCE_EXHAUSTED               google.rpc.QuotaFailure: a violation whose subject is the
//                                    leading field path (or "caller") and the message;
//   NOT_FOUND, ALREADY_EXISTS        google.rpc.ResourceInfo: the resource's type (the words
//                                    before its quoted name, or the leading field path) and
//                                    name (the first quoted name in the message).
// Other codes carry the google.rpc.Status with its code and message only.
//
// The domain's convention makes this work: an error about a request field starts with that
// field's path and ": " (style.md).
#ifndef APQ_SERVER_ERROR_DETAILS_H_
#define APQ_SERVER_ERROR_DETAILS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace apq::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The field path `message` starts with: the text before its first ": " when that text is a
// path (identifiers joined by '.', each optionally followed by [index] or ["key"]), else "".
std::string LeadingFieldPath(absl::string_view message);

// The resource a NOT_FOUND or ALREADY_EXISTS message names: its type and name (both empty
// when it names none).
struct NamedResource {
  std::string type;
  std::string name;
};
NamedResource ResourceOf(absl::string_view message);

}  // namespace apq::server

#endif  // APQ_SERVER_ERROR_DETAILS_H_
