// apq's side of the connection to apqd: the channel and its stubs, the deadlines of unary
// calls, the exit codes, and how a failed call is reported.
#ifndef APQ_CLIENTS_CONNECTION_H_
#define APQ_CLIENTS_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "proto/apq/v1/apq.grpc.pb.h"

namespace apq::client {

// The exit codes of every command.
inline constexpr int kExitOk = 0;
// The server refused the call, or the job failed or found nothing feasible.
inline constexpr int kExitFailed = 1;
// A bad command line.
inline constexpr int kExitUsage = 2;

// How long a unary call may take, from the moment it is made. Most calls answer at once;
// uploads carry and parse whole files; measuring subnets or exporting one takes seconds per
// configuration.
inline constexpr std::chrono::seconds kDefaultDeadline{60};
inline constexpr std::chrono::seconds kUploadDeadline{300};
inline constexpr std::chrono::seconds kMeasureDeadline{600};

// How apq reaches apqd: its address, the API token every call carries, and TLS.
struct ConnectionOptions {
  std::string address = "127.0.0.1:50051";  // A gRPC target.
  std::string token;                        // "apq_<id>_<secret>"; empty sends none.
  bool tls = false;                         // Implied by any of the PEM texts below.
  std::string ca_pem;                       // Roots to verify the server (default: system's).
  std::string cert_pem;                     // Client certificate chain, for mutual TLS.
  std::string key_pem;                      // Its private key.
};

// The channel to one apqd and a stub per service. Constructing it does not connect: the first
// call does, and fails with UNAVAILABLE when no server answers at the address.
class Connection {
 public:
  // Plaintext, without a token (tests).
  explicit Connection(const std::string& address);
  // Precondition: cert_pem and key_pem are both set or both empty.
  explicit Connection(const ConnectionOptions& options);

  apq::v1::SearchService::Stub& search() { return *search_; }
  apq::v1::DeviceService::Stub& devices() { return *devices_; }
  apq::v1::PredictorService::Stub& predictors() { return *predictors_; }
  apq::v1::AccessService::Stub& access() { return *access_; }
  apq::v1::SpaceService::Stub& spaces() { return *spaces_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<apq::v1::SearchService::Stub> search_;
  std::unique_ptr<apq::v1::DeviceService::Stub> devices_;
  std::unique_ptr<apq::v1::PredictorService::Stub> predictors_;
  std::unique_ptr<apq::v1::AccessService::Stub> access_;
  std::unique_ptr<apq::v1::SpaceService::Stub> spaces_;
};

// Calls the unary RPC `rpc` of `stub` with `request`, filling `response`; the call fails with
// DEADLINE_EXCEEDED when it takes longer than `deadline`.
template <typename Stub, typename Request, typename Response>
grpc::Status CallUnary(Stub& stub,
                       grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                       const Request& request, Response* response,
                       std::chrono::seconds deadline = kDefaultDeadline) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  return (stub.*rpc)(&context, request, response);
}

// Prints a failed call's status to stderr as "apq: CODE_NAME: message" and returns
// kExitFailed, the exit code of a command the server refused.
int ReportRpcError(const grpc::Status& status);

}  // namespace apq::client

#endif  // APQ_CLIENTS_CONNECTION_H_
