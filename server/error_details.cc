#include "server/error_details.h"

#include <cctype>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace apq::server {
namespace {

bool IsIdentifierStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentifierPart(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Whether `text` is a field path: identifiers joined by '.', each followed by any number of
// [digits] or ["key"] subscripts.
bool IsFieldPath(absl::string_view text) {
  size_t i = 0;
  if (text.empty()) return false;
  while (true) {
    if (i >= text.size() || !IsIdentifierStart(text[i])) return false;
    while (i < text.size() && IsIdentifierPart(text[i])) ++i;
    while (i < text.size() && text[i] == '[') {
      ++i;
      if (i < text.size() && text[i] == '"') {
        const size_t close = text.find('"', i + 1);
        if (close == absl::string_view::npos || close + 1 >= text.size() ||
            text[close + 1] != ']') {
          return false;
        }
        i = close + 2;
      } else {
        const size_t digits = i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        if (i == digits || i >= text.size() || text[i] != ']') return false;
        ++i;
      }
    }
    if (i == text.size()) return true;
    if (text[i] != '.') return false;
    ++i;
  }
}

}  // namespace

std::string LeadingFieldPath(absl::string_view message) {
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos) return "";
  const absl::string_view prefix = message.substr(0, colon);
  return IsFieldPath(prefix) ? static_cast<std::string>(prefix) : "";
}

NamedResource ResourceOf(absl::string_view message) {
  NamedResource resource;
  const std::string field = LeadingFieldPath(message);
  absl::string_view rest = field.empty() ? message : message.substr(field.size() + 2);
  const size_t open = rest.find_first_of("\"'");
  if (open != absl::string_view::npos) {
    const size_t close = rest.find(rest[open], open + 1);
    if (close != absl::string_view::npos) {
      resource.name = static_cast<std::string>(rest.substr(open + 1, close - open - 1));
      // The words before the name, without a leading "unknown " or "no ".
      absl::string_view words = rest.substr(0, open);
      while (!words.empty() && words.back() == ' ') words.remove_suffix(1);
      for (const absl::string_view lead : {"unknown ", "no "}) {
        if (words.substr(0, lead.size()) == lead) words.remove_prefix(lead.size());
      }
      resource.type = static_cast<std::string>(words);
    }
  }
  if (!field.empty()) resource.type = field;
  return resource;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const std::string message(status.message());
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(status.code()));
  rich.set_message(message);
  const std::string field = LeadingFieldPath(message);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: {
      google::rpc::BadRequest bad_request;
      google::rpc::BadRequest::FieldViolation* violation = bad_request.add_field_violations();
      violation->set_field(field);
      violation->set_description(field.empty() ? message : message.substr(field.size() + 2));
      rich.add_details()->PackFrom(bad_request);
      break;
    }
    case absl::StatusCode::kFailedPrecondition: {
      google::rpc::PreconditionFailure failure;
      google::rpc::PreconditionFailure::Violation* violation = failure.add_violations();
      violation->set_type("STATE");
      violation->set_subject(field);
      violation->set_description(message);
      rich.add_details()->PackFrom(failure);
      break;
    }
    case absl::StatusCode::kResourceExhausted: {
      google::rpc::QuotaFailure quota;
      google::rpc::QuotaFailure::Violation* violation = quota.add_violations();
      violation->set_subject(field.empty() ? "caller" : field);
      violation->set_description(message);
      rich.add_details()->PackFrom(quota);
      break;
    }
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists: {
      const NamedResource named = ResourceOf(message);
      google::rpc::ResourceInfo resource;
      resource.set_resource_type(named.type);
      resource.set_resource_name(named.name);
      resource.set_description(message);
      rich.add_details()->PackFrom(resource);
      break;
    }
    default:
      break;
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message,
                      rich.SerializeAsString());
}

}  // namespace apq::server
