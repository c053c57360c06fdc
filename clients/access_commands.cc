#include "clients/access_commands.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "clients/connection.h"
#include "clients/output.h"
#include "nlohmann/json.hpp"

namespace apq::client {
namespace {

using apq::v1::AccessService;
using nlohmann::json;

constexpr std::pair<std::string_view, apq::v1::Role> kRoles[] = {
    {"viewer", apq::v1::ROLE_VIEWER},
    {"submitter", apq::v1::ROLE_SUBMITTER},
    {"hardware", apq::v1::ROLE_HARDWARE},
    {"admin", apq::v1::ROLE_ADMIN}};

std::string RoleText(apq::v1::Role role) {
  std::string name = apq::v1::Role_Name(role);
  if (name.rfind("ROLE_", 0) == 0) name = name.substr(5);
  return absl::AsciiStrToLower(name);
}

json TokenJson(const apq::v1::Token& token) {
  return {{"id", token.id()},
          {"name", token.name()},
          {"role", RoleText(token.role())},
          {"created_unix_s", token.created_unix_s()},
          {"created_by", token.created_by()},
          {"revoked_unix_s", token.revoked_unix_s()}};
}

void PrintToken(const apq::v1::Token& token) {
  std::cout << token.id() << "  " << RoleText(token.role()) << "  " << token.name()
            << (token.revoked_unix_s() > 0 ? "  (revoked)" : "") << "\n";
}

// The token as JSON with --json, else as a line.
void ShowToken(const Args& args, const apq::v1::Token& token) {
  if (args.Has("json")) {
    PrintJson(TokenJson(token));
  } else {
    PrintToken(token);
  }
}

int CreateToken(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"name", "role"}, {"json"}, 0);
  if (!args.Has("name")) throw UsageError{"--name is required"};
  if (!args.Has("role")) throw UsageError{"--role is required"};
  apq::v1::CreateTokenRequest request;
  request.set_name(args.Get("name"));
  request.set_role(ParseChoice<apq::v1::Role>("role", args.Get("role"), kRoles));
  apq::v1::CreatedToken created;
  const grpc::Status status =
      CallUnary(connection.access(), &AccessService::Stub::CreateToken, request, &created);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("json")) {
    json out = TokenJson(created.token());
    out["secret"] = created.secret();
    PrintJson(out);
  } else {
    PrintToken(created.token());
    // The secret alone on stdout's last line, for scripts; it is not shown again.
    std::fprintf(stderr, "the token (shown once; pass it as --token or APQ_TOKEN):\n");
    std::cout << created.secret() << "\n";
  }
  return kExitOk;
}

int Tokens(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 0);
  apq::v1::ListTokensResponse response;
  const grpc::Status status = CallUnary(connection.access(), &AccessService::Stub::ListTokens,
                                        apq::v1::ListTokensRequest(), &response);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("json")) {
    json list = json::array();
    for (const apq::v1::Token& token : response.tokens()) list.push_back(TokenJson(token));
    PrintJson(list);
  } else {
    for (const apq::v1::Token& token : response.tokens()) PrintToken(token);
  }
  return kExitOk;
}

int RevokeToken(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 1);
  if (args.positional().empty()) throw UsageError{"the token id (tok-...) is required"};
  apq::v1::RevokeTokenRequest request;
  request.set_id(args.positional()[0]);
  apq::v1::Token token;
  const grpc::Status status =
      CallUnary(connection.access(), &AccessService::Stub::RevokeToken, request, &token);
  if (!status.ok()) return ReportRpcError(status);
  ShowToken(args, token);
  return kExitOk;
}

int WhoAmI(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 0);
  apq::v1::Token token;
  const grpc::Status status = CallUnary(connection.access(), &AccessService::Stub::WhoAmI,
                                        apq::v1::WhoAmIRequest(), &token);
  if (!status.ok()) return ReportRpcError(status);
  ShowToken(args, token);
  return kExitOk;
}

constexpr Command kCommands[] = {
    {"token-create", R"(  token-create --name NAME --role viewer|submitter|hardware|admin [--json]
      Create an API token (admin); prints its secret once.
)",
     CreateToken},
    {"tokens", R"(  tokens [--json]
      List every token (admin); secrets are never shown.
)",
     Tokens},
    {"token-revoke", R"(  token-revoke TOKEN_ID [--json]
      Revoke a token at once (admin).
)",
     RevokeToken},
    {"whoami", R"(  whoami [--json]
      The token this client sends, as the server sees it.
)",
     WhoAmI},
};

}  // namespace

absl::Span<const Command> AccessCommands() { return kCommands; }

}  // namespace apq::client
