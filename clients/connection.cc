#include "clients/connection.h"

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace apq::client {

namespace {

// Adds "authorization: Bearer <token>" to every call of the channel, streams included (call
// credentials would not be sent over a plaintext channel).
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string& header) : header_(header) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string token) : header_("Bearer " + std::move(token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerInterceptor(header_);
  }

 private:
  const std::string header_;  // Outlives the channel's calls: the factory lives in the channel.
};

}  // namespace

Connection::Connection(const std::string& address)
    : Connection(ConnectionOptions{address, "", false, "", "", ""}) {}

Connection::Connection(const ConnectionOptions& options) {
  grpc::ChannelArguments arguments;
  // Cost tables, measurement datasets and TorchScript exports outgrow gRPC's 4 MB default.
  arguments.SetMaxSendMessageSize(64 << 20);
  arguments.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls || !options.ca_pem.empty() || !options.cert_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    ssl.pem_cert_chain = options.cert_pem;
    ssl.pem_private_key = options.key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!options.token.empty()) {
    interceptors.push_back(std::make_unique<BearerInterceptorFactory>(options.token));
  }
  channel_ = grpc::experimental::CreateCustomChannelWithInterceptors(
      options.address, credentials, arguments, std::move(interceptors));
  search_ = apq::v1::SearchService::NewStub(channel_);
  devices_ = apq::v1::DeviceService::NewStub(channel_);
  predictors_ = apq::v1::PredictorService::NewStub(channel_);
  access_ = apq::v1::AccessService::NewStub(channel_);
  spaces_ = apq::v1::SpaceService::NewStub(channel_);
}

int ReportRpcError(const grpc::Status& status) {
  // gRPC's codes are Abseil's, which names them; it names no code outside their range.
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  if (name.empty()) name = "UNKNOWN";
  std::fprintf(stderr, "apq: %s: %s\n", name.c_str(), status.error_message().c_str());
  return kExitFailed;
}

}  // namespace apq::client
