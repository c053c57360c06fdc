#include "server/dashboard.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "proto/apq/v1/apq.grpc.pb.h"
#include "server/dashboard_assets.h"
#include "server/rpc_metrics.h"

namespace apq::server {

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 412;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

namespace {

// How long a gateway call may take before it is answered 504.
constexpr std::chrono::seconds kCallDeadline(15);
// The longest Authorization header passed on (a bearer token is about 80 bytes).
constexpr size_t kMaxAuthorizationBytes = 1024;
constexpr size_t kMaxQueryValueBytes = 1024;

std::string ErrorJson(absl::string_view code, absl::string_view message) {
  nlohmann::json body;
  body["error"]["code"] = static_cast<std::string>(code);
  body["error"]["message"] = static_cast<std::string>(message);
  // The message may quote any bytes of a request: invalid UTF-8 is replaced, not thrown on.
  return body.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

void SendError(httplib::Response& response, int http_status, absl::string_view code,
               absl::string_view message) {
  response.status = http_status;
  response.set_content(ErrorJson(code, message), "application/json");
}

void SendBadParameter(httplib::Response& response, absl::string_view message) {
  SendError(response, 400, "INVALID_ARGUMENT", message);
}

// The request's query parameters, each at most once and named in `allowed`; else a 400 naming
// the parameter has been sent and nullopt is returned.
std::optional<std::map<std::string, std::string>> QueryParameters(
    const httplib::Request& request, httplib::Response& response,
    const std::set<std::string>& allowed) {
  std::map<std::string, std::string> parameters;
  for (const auto& [name, value] : request.params) {
    if (allowed.count(name) == 0) {
      SendBadParameter(response,
                       absl::StrCat(name.substr(0, 64), ": unknown query parameter (known: ",
                                    absl::StrJoin(allowed, ", "), ")"));
      return std::nullopt;
    }
    if (value.size() > kMaxQueryValueBytes) {
      SendBadParameter(response,
                       absl::StrCat(name, ": longer than ", kMaxQueryValueBytes, " bytes"));
      return std::nullopt;
    }
    if (!parameters.emplace(name, value).second) {
      SendBadParameter(response, absl::StrCat(name, ": given more than once"));
      return std::nullopt;
    }
  }
  return parameters;
}

// `text` as a page size, or a 400 naming page_size.
bool ParsePageSize(const std::map<std::string, std::string>& parameters,
                   httplib::Response& response, int32_t* page_size) {
  const auto found = parameters.find("page_size");
  if (found == parameters.end()) return true;
  if (!absl::SimpleAtoi(found->second, page_size)) {
    SendBadParameter(
        response, absl::StrCat("page_size: not an integer: '", found->second.substr(0, 32), "'"));
    return false;
  }
  return true;
}

// Parses an enum parameter given by its value name with or without the enum's prefix, in any
// case ("running", "JOB_STATE_RUNNING"); else sends a 400 naming the parameter and the names.
template <typename Enum>
bool ParseEnumParameter(const std::map<std::string, std::string>& parameters,
                        const std::string& name, const std::string& prefix,
                        bool (*parse)(const std::string&, Enum*),
                        const google::protobuf::EnumDescriptor* descriptor,
                        httplib::Response& response, Enum* value) {
  const auto found = parameters.find(name);
  if (found == parameters.end()) return true;
  std::string upper = absl::AsciiStrToUpper(found->second);
  if (!absl::StartsWith(upper, prefix)) upper = prefix + upper;
  if (parse(upper, value)) return true;
  std::vector<std::string> names;
  names.reserve(descriptor->value_count());
  for (int i = 0; i < descriptor->value_count(); ++i) {
    names.emplace_back(absl::StripPrefix(descriptor->value(i)->name(), prefix));
  }
  SendBadParameter(response, absl::StrCat(name, ": unknown value '", found->second.substr(0, 64),
                                          "' (one of ", absl::StrJoin(names, ", "), ")"));
  return false;
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> SplitListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  auto malformed = [&address](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: '", address, "' is not host:port (", why, ")"));
  };
  if (colon == std::string::npos || colon == 0) return malformed("no host or no port");
  std::string host = address.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']') return malformed("unclosed bracket");
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return malformed("the port must be 0-65535");
  }
  return std::make_pair(host, port);
}

namespace {

// Calls one of the server's gRPC methods for an HTTP request and answers with its reply as
// JSON, or with its status.
class Gateway {
 public:
  explicit Gateway(const std::shared_ptr<grpc::Channel>& channel)
      : search_(apq::v1::SearchService::NewStub(channel)),
        devices_(apq::v1::DeviceService::NewStub(channel)),
        predictors_(apq::v1::PredictorService::NewStub(channel)),
        spaces_(apq::v1::SpaceService::NewStub(channel)) {}

  apq::v1::SearchService::Stub& search() { return *search_; }
  apq::v1::DeviceService::Stub& devices() { return *devices_; }
  apq::v1::PredictorService::Stub& predictors() { return *predictors_; }
  apq::v1::SpaceService::Stub& spaces() { return *spaces_; }

  // Calls `method` of `stub` with the request's token and sends the reply.
  template <typename Stub, typename Request, typename Reply>
  void Call(const httplib::Request& http_request, httplib::Response& http_response, Stub& stub,
            grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Reply*),
            const Request& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    const std::string authorization = http_request.get_header_value("Authorization");
    if (!authorization.empty()) {
      if (authorization.size() > kMaxAuthorizationBytes) {
        SendError(
            http_response, 401, "UNAUTHENTICATED",
            absl::StrCat("Authorization header: longer than ", kMaxAuthorizationBytes, " bytes"));
        return;
      }
      for (const unsigned char c : authorization) {
        if (c < 0x20 || c >= 0x7f) {
          SendError(http_response, 401, "UNAUTHENTICATED",
                    "Authorization header: holds a byte that is not printable ASCII");
          return;
        }
      }
      context.AddMetadata("authorization", authorization);
    }
    Reply reply;
    const grpc::Status status = (stub.*method)(&context, request, &reply);
    if (!status.ok()) {
      SendError(http_response, HttpStatusOf(status.error_code()),
                StatusCodeName(static_cast<int>(status.error_code())), status.error_message());
      return;
    }
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    const auto printed = google::protobuf::util::MessageToJsonString(reply, &json, options);
    if (!printed.ok()) {
      SendError(http_response, 500, "INTERNAL", "the reply could not be written as JSON");
      return;
    }
    http_response.status = 200;
    http_response.set_content(json, "application/json");
  }

 private:
  std::unique_ptr<apq::v1::SearchService::Stub> search_;
  std::unique_ptr<apq::v1::DeviceService::Stub> devices_;
  std::unique_ptr<apq::v1::PredictorService::Stub> predictors_;
  std::unique_ptr<apq::v1::SpaceService::Stub> spaces_;
};

void Routes(httplib::Server& http, const std::shared_ptr<Gateway>& gateway, Authenticator& auth,
            const std::function<std::string()>& metrics_text) {
  // The single page answers every page path; its script shows the view the path names.
  const auto page = [](const httplib::Request&, httplib::Response& response) {
    response.set_content(DashboardIndexHtml(), "text/html; charset=utf-8");
  };
  http.Get("/", page);
  http.Get("/jobs", page);
  http.Get(R"(/jobs/[^/]{1,64})", page);
  http.Get("/devices", page);
  http.Get("/predictors", page);
  http.Get("/measurements", page);
  http.Get("/app.js", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(DashboardScript(), "text/javascript; charset=utf-8");
  });
  http.Get("/app.css", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(DashboardStyle(), "text/css; charset=utf-8");
  });

  http.Get("/api/v1/jobs",
           [gateway](const httplib::Request& http_request, httplib::Response& response) {
             const auto parameters = QueryParameters(
                 http_request, response,
                 {"state", "space", "device", "label", "owner", "page_size", "page_token"});
             if (!parameters) return;
             apq::v1::ListJobsRequest request;
             int32_t page_size = 0;
             if (!ParsePageSize(*parameters, response, &page_size)) return;
             request.set_page_size(page_size);
             apq::v1::JobState state = apq::v1::JOB_STATE_UNSPECIFIED;
             if (!ParseEnumParameter(*parameters, "state", "JOB_STATE_", &apq::v1::JobState_Parse,
                                     apq::v1::JobState_descriptor(), response, &state)) {
               return;
             }
             request.set_state(state);
             const auto text = [&parameters](const char* name) {
               const auto found = parameters->find(name);
               return found != parameters->end() ? found->second : std::string();
             };
             request.set_space(text("space"));
             request.set_device(text("device"));
             // Set only when given: an empty label asks for the jobs without one.
             if (parameters->count("label") > 0) request.set_label(text("label"));
             request.set_owner(text("owner"));
             request.set_page_token(text("page_token"));
             gateway->Call(http_request, response, gateway->search(),
                           &apq::v1::SearchService::Stub::ListJobs, request);
           });
  http.Get(R"(/api/v1/jobs/([^/]+))",
           [gateway](const httplib::Request& http_request, httplib::Response& response) {
             if (!QueryParameters(http_request, response, {})) return;
             apq::v1::GetJobRequest request;
             request.set_job_id(http_request.matches[1]);
             gateway->Call(http_request, response, gateway->search(),
                           &apq::v1::SearchService::Stub::GetJob, request);
           });
  http.Get(R"(/api/v1/jobs/([^/]+)/candidates)", [gateway](const httplib::Request& http_request,
                                                           httplib::Response& response) {
    const auto parameters =
        QueryParameters(http_request, response, {"page_size", "page_token", "feasibility"});
    if (!parameters) return;
    apq::v1::ListCandidatesRequest request;
    request.set_job_id(http_request.matches[1]);
    int32_t page_size = 0;
    if (!ParsePageSize(*parameters, response, &page_size)) return;
    request.set_page_size(page_size);
    apq::v1::Feasibility feasibility = apq::v1::FEASIBILITY_UNSPECIFIED;
    if (!ParseEnumParameter(*parameters, "feasibility", "FEASIBILITY_", &apq::v1::Feasibility_Parse,
                            apq::v1::Feasibility_descriptor(), response, &feasibility)) {
      return;
    }
    request.set_feasibility(feasibility);
    const auto token = parameters->find("page_token");
    if (token != parameters->end()) request.set_page_token(token->second);
    gateway->Call(http_request, response, gateway->search(),
                  &apq::v1::SearchService::Stub::ListCandidates, request);
  });
  http.Get("/api/v1/devices", [gateway](const httplib::Request& http_request,
                                        httplib::Response& response) {
    if (!QueryParameters(http_request, response, {})) return;
    gateway->Call(http_request, response, gateway->devices(),
                  &apq::v1::DeviceService::Stub::ListDevices, apq::v1::ListDevicesRequest());
  });
  http.Get("/api/v1/predictors",
           [gateway](const httplib::Request& http_request, httplib::Response& response) {
             const auto parameters = QueryParameters(http_request, response, {"space"});
             if (!parameters) return;
             apq::v1::ListPredictorsRequest request;
             const auto space = parameters->find("space");
             if (space != parameters->end()) request.set_space(space->second);
             gateway->Call(http_request, response, gateway->predictors(),
                           &apq::v1::PredictorService::Stub::ListPredictors, request);
           });
  http.Get("/api/v1/measurement_runs", [gateway](const httplib::Request& http_request,
                                                 httplib::Response& response) {
    const auto parameters = QueryParameters(http_request, response, {"page_size", "page_token"});
    if (!parameters) return;
    apq::v1::ListMeasurementRunsRequest request;
    int32_t page_size = 0;
    if (!ParsePageSize(*parameters, response, &page_size)) return;
    request.set_page_size(page_size);
    const auto token = parameters->find("page_token");
    if (token != parameters->end()) request.set_page_token(token->second);
    gateway->Call(http_request, response, gateway->predictors(),
                  &apq::v1::PredictorService::Stub::ListMeasurementRuns, request);
  });
  http.Get("/api/v1/spaces",
           [gateway](const httplib::Request& http_request, httplib::Response& response) {
             if (!QueryParameters(http_request, response, {})) return;
             gateway->Call(http_request, response, gateway->spaces(),
                           &apq::v1::SpaceService::Stub::ListSpaces, apq::v1::ListSpacesRequest());
           });
  http.Get("/metrics", [&auth, metrics_text](const httplib::Request& http_request,
                                             httplib::Response& response) {
    const std::string authorization = http_request.get_header_value("Authorization");
    const absl::StatusOr<Caller> caller = auth.Authorize(
        authorization.empty() ? std::nullopt : std::optional<std::string_view>(authorization),
        Permission::kRead);
    if (!caller.ok()) {
      const auto code = static_cast<grpc::StatusCode>(caller.status().code());
      SendError(response, HttpStatusOf(code), StatusCodeName(static_cast<int>(code)),
                caller.status().message());
      return;
    }
    response.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(
    const DashboardOptions& options, const std::shared_ptr<grpc::Channel>& channel,
    Authenticator& auth, const std::function<std::string()>& metrics_text) {
  if (options.threads < 1 || options.threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_threads: must be in [1, 64], got ", options.threads));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key: give both or neither");
  }
  auto address = SplitListenAddress(options.listen_address);
  if (!address.ok()) return address.status();
  std::unique_ptr<Dashboard> dashboard(new Dashboard());
  if (options.tls_cert_file.empty()) {
    dashboard->http_ = std::make_unique<httplib::Server>();
  } else {
    dashboard->http_ = std::make_unique<httplib::SSLServer>(
        options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
        options.tls_client_ca_file.empty() ? nullptr : options.tls_client_ca_file.c_str());
    if (!dashboard->http_->is_valid()) {
      return absl::InvalidArgumentError(
          "tls_cert, tls_key, tls_client_ca: the dashboard's TLS context could not be made "
          "from these files");
    }
  }
  httplib::Server& http = *dashboard->http_;
  const int threads = options.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_read_timeout(5, 0);
  http.set_write_timeout(15, 0);
  http.set_keep_alive_timeout(5);
  http.set_payload_max_length(1 << 16);  // Every route is a GET.
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                            {"Content-Security-Policy",
                             "default-src 'self'; style-src 'self'; script-src 'self'; "
                             "img-src 'self' data:; frame-ancestors 'none'"},
                            {"Cache-Control", "no-store"}});
  http.set_exception_handler([](const httplib::Request&, httplib::Response& response,
                                const std::exception_ptr& /*unused*/) {
    SendError(response, 500, "INTERNAL", "the dashboard failed to answer this request");
  });
  Routes(http, std::make_shared<Gateway>(channel), auth, metrics_text);
  http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (response.status == 404 && response.body.empty()) {
      SendError(response, 404, "NOT_FOUND",
                absl::StrCat("no page or endpoint at ", request.path.substr(0, 128)));
    }
  });
  const auto& [host, port] = *address;
  if (port == 0) {
    dashboard->port_ = http.bind_to_any_port(host);
    if (dashboard->port_ < 0) {
      return absl::UnavailableError(
          absl::StrCat("http_listen: cannot bind ", options.listen_address));
    }
  } else {
    if (!http.bind_to_port(host, port)) {
      return absl::UnavailableError(
          absl::StrCat("http_listen: cannot bind ", options.listen_address));
    }
    dashboard->port_ = port;
  }
  dashboard->serving_ = std::thread([&http] { http.listen_after_bind(); });
  return dashboard;
}

Dashboard::~Dashboard() {
  if (http_ != nullptr) http_->stop();
  if (serving_.joinable()) serving_.join();
}

}  // namespace apq::server
