#include "clients/connection.h"

#include <cstdio>
#include <string>

#include "absl/status/status.h"

namespace apq::client {

Connection::Connection(const std::string& address) {
  grpc::ChannelArguments arguments;
  // Cost tables, measurement datasets and TorchScript exports outgrow gRPC's 4 MB default.
  arguments.SetMaxSendMessageSize(64 << 20);
  arguments.SetMaxReceiveMessageSize(64 << 20);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
  search_ = apq::v1::SearchService::NewStub(channel_);
  devices_ = apq::v1::DeviceService::NewStub(channel_);
  predictors_ = apq::v1::PredictorService::NewStub(channel_);
}

int ReportRpcError(const grpc::Status& status) {
  // gRPC's codes are Abseil's, which names them; it names no code outside their range.
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  if (name.empty()) name = "UNKNOWN";
  std::fprintf(stderr, "apq: %s: %s\n", name.c_str(), status.error_message().c_str());
  return kExitFailed;
}

}  // namespace apq::client
