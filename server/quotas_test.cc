#include "server/quotas.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

TEST(RoleQuotasTest, TheFlagsGiveEveryRoleButAdminTheSameQuota) {
  const RoleQuotas quotas = RoleQuotas::AllButAdmin({50, 200, 16});
  for (const Role role : {Role::kViewer, Role::kSubmitter, Role::kHardware}) {
    EXPECT_EQ(quotas.For(role).calls_per_second, 50);
    EXPECT_EQ(quotas.For(role).call_burst, 200);
    EXPECT_EQ(quotas.For(role).max_active_jobs, 16);
  }
  EXPECT_EQ(quotas.For(Role::kAdmin).calls_per_second, 0);
  EXPECT_EQ(quotas.For(Role::kAdmin).max_active_jobs, 0);
}

TEST(RoleQuotasTest, ATableChangesTheNamedRolesAndKeysOnly) {
  RoleQuotas quotas = RoleQuotas::AllButAdmin({50, 200, 16});
  ASSERT_TRUE(quotas
                  .Apply("viewer:max_calls_per_second=10;submitter:max_active_jobs=4,"
                         "max_call_burst=20.5;admin:max_calls_per_second=500;")
                  .ok());
  EXPECT_EQ(quotas.For(Role::kViewer).calls_per_second, 10);
  EXPECT_EQ(quotas.For(Role::kViewer).call_burst, 200);
  EXPECT_EQ(quotas.For(Role::kSubmitter).max_active_jobs, 4);
  EXPECT_EQ(quotas.For(Role::kSubmitter).call_burst, 20.5);
  EXPECT_EQ(quotas.For(Role::kSubmitter).calls_per_second, 50);
  EXPECT_EQ(quotas.For(Role::kHardware).calls_per_second, 50);
  EXPECT_EQ(quotas.For(Role::kAdmin).calls_per_second, 500);
  EXPECT_EQ(quotas.For(Role::kAdmin).max_active_jobs, 0);
  EXPECT_THAT(quotas.Describe(), HasSubstr("viewer: 10 calls/s (burst 200), 16 active jobs"));
  EXPECT_THAT(quotas.Describe(), HasSubstr("admin: 500 calls/s (burst 1), no active-job limit"));
  EXPECT_TRUE(quotas.Apply("").ok());
}

TEST(RoleQuotasTest, AMalformedTableIsRefusedNamingTheItemAndChangesNothing) {
  struct Case {
    std::string text;
    std::string says;
  };
  const Case cases[] = {
      {"viewer", "expected ROLE:KEY=VALUE"},
      {"viewer:", "expected ROLE:KEY=VALUE"},
      {"owner:max_active_jobs=1", "is not one of viewer, submitter, hardware, admin"},
      {"viewer:max_active_jobs", "expected KEY=VALUE"},
      {"viewer:max_active_jobs=-1", "max_active_jobs must be an integer >= 0"},
      {"viewer:max_active_jobs=1.5", "max_active_jobs must be an integer >= 0"},
      {"viewer:max_calls_per_second=nan", "max_calls_per_second must be a finite number >= 0"},
      {"viewer:max_call_burst=inf", "max_call_burst must be a finite number >= 0"},
      {"viewer:max_calls_per_second=-2", "must be a finite number >= 0"},
      {"viewer:max_rows=5",
       "the keys are max_calls_per_second, max_call_burst and max_active_jobs"},
      {"submitter:max_active_jobs=2;viewer:bogus=1", "'viewer:bogus=1'"},
  };
  for (const Case& c : cases) {
    RoleQuotas quotas = RoleQuotas::AllButAdmin({50, 200, 16});
    const absl::Status status = quotas.Apply(c.text, "--role_quotas");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(status.message()), HasSubstr("--role_quotas: ")) << c.text;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.says)) << c.text;
    EXPECT_EQ(quotas.For(Role::kSubmitter).max_active_jobs, 16) << c.text;
    EXPECT_EQ(quotas.For(Role::kViewer).calls_per_second, 50) << c.text;
  }
}

}  // namespace
}  // namespace apq::server
