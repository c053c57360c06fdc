#include "server/auth.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sha256.h"
#include "server/store/memory_store.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

std::optional<std::string_view> Bearer(const std::string& header) { return header; }

TEST(AuthTest, RolesAllowWhatTheirCallsNeed) {
  for (const Role role : {Role::kViewer, Role::kSubmitter, Role::kHardware, Role::kAdmin}) {
    EXPECT_TRUE(RoleAllows(role, Permission::kRead)) << RoleName(role);
    EXPECT_EQ(RoleFromName(RoleName(role)).value(), role);
  }
  EXPECT_FALSE(RoleAllows(Role::kViewer, Permission::kSubmit));
  EXPECT_FALSE(RoleAllows(Role::kHardware, Permission::kSubmit));
  EXPECT_TRUE(RoleAllows(Role::kSubmitter, Permission::kSubmit));
  EXPECT_FALSE(RoleAllows(Role::kSubmitter, Permission::kUploadTables));
  EXPECT_TRUE(RoleAllows(Role::kHardware, Permission::kUploadTables));
  for (const Role role : {Role::kViewer, Role::kSubmitter, Role::kHardware}) {
    EXPECT_FALSE(RoleAllows(role, Permission::kAdmin)) << RoleName(role);
  }
  for (const Permission permission :
       {Permission::kRead, Permission::kSubmit, Permission::kUploadTables, Permission::kAdmin}) {
    EXPECT_TRUE(RoleAllows(Role::kAdmin, permission));
  }
  EXPECT_EQ(RoleFromName("root").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuthTest, ATokenIsShownOnceAndOnlyItsHashIsStored) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator auth({}, store->tokens());
  absl::StatusOr<IssuedToken> issued = auth.CreateToken("ci bot", Role::kSubmitter, "tok-x");
  ASSERT_TRUE(issued.ok()) << issued.status();
  const BearerParts parts = ParseBearer(issued->bearer).value();
  EXPECT_EQ(parts.id, issued->record.id);
  const TokenRecord stored = store->tokens().GetToken(issued->record.id).value();
  EXPECT_EQ(stored.secret_sha256, Sha256Hex(parts.secret));
  EXPECT_EQ(stored.name, "ci bot");
  EXPECT_EQ(stored.created_by, "tok-x");
  EXPECT_EQ(stored.secret_sha256.find(parts.secret), std::string::npos);

  absl::StatusOr<Caller> caller = auth.Authenticate(Bearer("Bearer " + issued->bearer));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->token_id, issued->record.id);
  EXPECT_EQ(caller->role, Role::kSubmitter);
  // The scheme is case-insensitive, as HTTP's.
  EXPECT_TRUE(auth.Authenticate(Bearer("bearer " + issued->bearer)).ok());

  // Two tokens never share an id or a secret.
  const IssuedToken other = auth.CreateToken("ci bot", Role::kSubmitter, "tok-x").value();
  EXPECT_NE(other.record.id, issued->record.id);
  EXPECT_NE(other.bearer, issued->bearer);
}

TEST(AuthTest, MissingMalformedUnknownWrongOrRevokedTokensAreUnauthenticated) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator::Options options;
  options.cache_ttl = absl::Hours(1);
  Authenticator auth(options, store->tokens());
  const IssuedToken issued = auth.CreateToken("someone", Role::kAdmin, "bootstrap").value();
  std::string wrong_secret = issued.bearer;
  wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
  std::string unknown_id = issued.bearer;
  unknown_id[5] = unknown_id[5] == '0' ? '1' : '0';
  for (const std::optional<std::string_view> header :
       {std::optional<std::string_view>(), Bearer(""), Bearer("Bearer"), Bearer("Basic abc"),
        Bearer("Bearer " + issued.bearer + "0"), Bearer("Bearer " + issued.bearer.substr(1)),
        Bearer("Bearer APQ_" + issued.bearer.substr(4)), Bearer("Bearer " + wrong_secret),
        Bearer("Bearer " + unknown_id), Bearer(issued.bearer)}) {
    const absl::Status status = auth.Authenticate(header).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated)
        << (header ? std::string(*header) : "none");
    EXPECT_THAT(std::string(status.message()), HasSubstr("authorization: Bearer"));
  }
  const std::string good = "Bearer " + issued.bearer;
  ASSERT_TRUE(auth.Authenticate(Bearer(good)).ok());
  ASSERT_TRUE(auth.RevokeToken(issued.record.id).ok());
  // Forgotten at once, in spite of the hour-long cache.
  EXPECT_EQ(auth.Authenticate(Bearer(good)).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.RevokeToken(issued.record.id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(auth.RevokeToken("tok-0000000000000000").status().code(), absl::StatusCode::kNotFound);
}

TEST(AuthTest, AuthorizeNamesTheRoleAndWhatTheCallNeeds) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator auth({}, store->tokens());
  const IssuedToken viewer = auth.CreateToken("dashboard", Role::kViewer, "bootstrap").value();
  const std::string header = "Bearer " + viewer.bearer;
  EXPECT_TRUE(auth.Authorize(Bearer(header), Permission::kRead).ok());
  const absl::Status denied = auth.Authorize(Bearer(header), Permission::kSubmit).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("viewer role"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("the submitter or admin role"));
}

TEST(AuthTest, WithAuthenticationOffATokenlessCallIsTheAnonymousAdmin) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator::Options options;
  options.required = false;
  Authenticator auth(options, store->tokens());
  absl::StatusOr<Caller> anonymous = auth.Authorize(std::nullopt, Permission::kAdmin);
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  EXPECT_EQ(anonymous->token_id, "");
  // A token sent anyway is checked: a bad one is still refused.
  EXPECT_EQ(auth.Authenticate(Bearer("Bearer nonsense")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(auth.BootstrapAdmin().value().has_value());
  EXPECT_TRUE(store->tokens().ListTokens()->empty());
}

TEST(AuthTest, TheFirstStartCreatesOneAdminToken) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator auth({}, store->tokens());
  absl::StatusOr<std::optional<IssuedToken>> first = auth.BootstrapAdmin();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->record.role, Role::kAdmin);
  EXPECT_EQ((*first)->record.created_by, "bootstrap");
  EXPECT_TRUE(auth.Authorize(Bearer("Bearer " + (*first)->bearer), Permission::kAdmin).ok());
  EXPECT_FALSE(auth.BootstrapAdmin().value().has_value()) << "never a second time";
  EXPECT_EQ(store->tokens().ListTokens()->size(), 1u);
}

TEST(AuthTest, BadTokenNamesAreRefused) {
  std::unique_ptr<Store> store = NewMemoryStore();
  Authenticator auth({}, store->tokens());
  for (const std::string& name : {std::string(), std::string(129, 'a'), std::string("a\nb"),
                                  std::string("tab\there"), std::string("nul\0", 4)}) {
    EXPECT_EQ(auth.CreateToken(name, Role::kViewer, "bootstrap").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(store->tokens().ListTokens()->empty());
}

}  // namespace
}  // namespace apq::server
