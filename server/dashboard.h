// The web dashboard of `apqd --http_listen`: a small single-page UI (jobs with live progress;
// a job's page with every candidate's accuracy against a cost, the Pareto front, the budget
// line and the best config; devices with their table versions and coverage; predictors with
// their held-out metrics), the JSON endpoints it reads, and `/metrics` in Prometheus text.
//
// The JSON endpoints are a gateway onto the server's own gRPC services over an in-process
// channel: each forwards the request's "Authorization: Bearer <token>" header as the call's
// metadata, so the same tokens, roles, quotas and validation apply as to a gRPC client, and a
// gRPC status comes back as its HTTP status with a JSON body {"error": {"code", "message"}}.
// Pages and scripts hold no data and need no token; the page reads a token from its URL
// fragment (#token=...), keeps it in the tab's sessionStorage and sends it as the header.
//
//   GET /api/v1/jobs?state=&space=&device=&label=&owner=&page_size=&page_token=  ListJobs
//   GET /api/v1/jobs/{id}                                                        GetJob
//   GET /api/v1/jobs/{id}/candidates?page_size=&page_token=&feasibility=         ListCandidates
//   GET /api/v1/devices                                                          ListDevices
//   GET /api/v1/predictors?space=                                                ListPredictors
//   GET /api/v1/spaces                                                           ListSpaces
//   GET /metrics   (a viewer token when authentication is on)
// Unknown query parameters and malformed values are 400 naming the parameter; JSON field names
// are the proto's, enums by name, 64-bit integers as strings (proto3's JSON mapping).
#ifndef APQ_SERVER_DASHBOARD_H_
#define APQ_SERVER_DASHBOARD_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "server/auth.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace apq::server {

struct DashboardOptions {
  // "host:port" (port 0 picks a free one); IPv6 hosts in brackets.
  std::string listen_address;
  // HTTPS with these PEM files (the gRPC server's, so one certificate serves both); both or
  // neither. With `tls_client_ca`, clients must present a certificate signed by it.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  int threads = 4;  // Requests served at once; more wait for a thread.
};

class Dashboard {
 public:
  // Serves until destroyed. `channel` reaches this server's gRPC services; `auth` guards
  // /metrics; `metrics_text` renders it. All must outlive the dashboard.
  // INVALID_ARGUMENT naming http_listen for a malformed address, UNAVAILABLE when it cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(
      const DashboardOptions& options, const std::shared_ptr<grpc::Channel>& channel,
      Authenticator& auth, const std::function<std::string()>& metrics_text);
  ~Dashboard();

  int port() const { return port_; }

 private:
  Dashboard() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread serving_;
  int port_ = 0;
};

// Splits an http_listen address "host:port" (IPv6 host in brackets, port 0-65535).
// INVALID_ARGUMENT naming http_listen when it is not one.
absl::StatusOr<std::pair<std::string, int>> SplitListenAddress(const std::string& address);

// The HTTP status that stands for a gRPC status code.
int HttpStatusOf(grpc::StatusCode code);

}  // namespace apq::server

#endif  // APQ_SERVER_DASHBOARD_H_
