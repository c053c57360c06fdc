#include "server/error_details.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace apq::server {
namespace {

// The google.rpc.Status a grpc::Status carries.
google::rpc::Status RichOf(const grpc::Status& status) {
  google::rpc::Status rich;
  EXPECT_TRUE(rich.ParseFromString(status.error_details()));
  EXPECT_EQ(rich.code(), static_cast<int>(status.error_code()));
  EXPECT_EQ(rich.message(), status.error_message());
  return rich;
}

TEST(ErrorDetailsTest, LeadingFieldPathsAreTheConventionsPathsOnly) {
  EXPECT_EQ(LeadingFieldPath("space: required"), "space");
  EXPECT_EQ(LeadingFieldPath("engine.options.temperature_end: at most 5: anneals"),
            "engine.options.temperature_end");
  EXPECT_EQ(LeadingFieldPath("configs_json[2]: arch[1]: expected an object"), "configs_json[2]");
  EXPECT_EQ(LeadingFieldPath("engine.options[\"steps\"]: too many"), "engine.options[\"steps\"]");
  EXPECT_EQ(LeadingFieldPath("job \"job-3\" not found"), "");
  EXPECT_EQ(LeadingFieldPath("the call's deadline passed: it did not run"), "");
  EXPECT_EQ(LeadingFieldPath("3d: nothing"), "");
  EXPECT_EQ(LeadingFieldPath("a[: nothing"), "");
  EXPECT_EQ(LeadingFieldPath("a.: nothing"), "");
  EXPECT_EQ(LeadingFieldPath("a[x]: nothing"), "");
  EXPECT_EQ(LeadingFieldPath(""), "");
}

TEST(ErrorDetailsTest, InvalidArgumentCarriesTheFieldViolation) {
  const grpc::Status status = ToGrpcStatus(
      absl::InvalidArgumentError("budgets.max_bitops: must be finite and > 0, got -1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "budgets.max_bitops: must be finite and > 0, got -1");
  const google::rpc::Status rich = RichOf(status);
  ASSERT_EQ(rich.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(rich.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 1);
  EXPECT_EQ(bad_request.field_violations(0).field(), "budgets.max_bitops");
  EXPECT_EQ(bad_request.field_violations(0).description(), "must be finite and > 0, got -1");
  // Without a leading path: the whole message as the description, no field.
  google::rpc::BadRequest unnamed;
  ASSERT_TRUE(
      RichOf(ToGrpcStatus(absl::OutOfRangeError("past the end"))).details(0).UnpackTo(&unnamed));
  EXPECT_EQ(unnamed.field_violations(0).field(), "");
  EXPECT_EQ(unnamed.field_violations(0).description(), "past the end");
}

TEST(ErrorDetailsTest, PreconditionQuotaAndResourceDetails) {
  google::rpc::PreconditionFailure precondition;
  ASSERT_TRUE(RichOf(ToGrpcStatus(absl::FailedPreconditionError(
                         "budgets.max_bitops: 10 is below the cheapest bit policy (20)")))
                  .details(0)
                  .UnpackTo(&precondition));
  EXPECT_EQ(precondition.violations(0).type(), "STATE");
  EXPECT_EQ(precondition.violations(0).subject(), "budgets.max_bitops");

  google::rpc::QuotaFailure quota;
  ASSERT_TRUE(RichOf(ToGrpcStatus(absl::ResourceExhaustedError("3 active jobs: the quota")))
                  .details(0)
                  .UnpackTo(&quota));
  EXPECT_EQ(quota.violations(0).subject(), "caller");
  EXPECT_EQ(quota.violations(0).description(), "3 active jobs: the quota");

  const struct {
    const char* message;
    const char* type;
    const char* name;
  } resources[] = {
      {"job \"job-3\" not found", "job", "job-3"},
      {"training job \"train-1\" not found", "training job", "train-1"},
      {"unknown dataset \"d1\"", "dataset", "d1"},
      {"no token 'tok-9'", "token", "tok-9"},
      {"space: unknown space 'ofa'; known: a, b", "space", "ofa"},
      {"no sweep s-1", "", ""},
  };
  for (const auto& r : resources) {
    google::rpc::ResourceInfo info;
    ASSERT_TRUE(RichOf(ToGrpcStatus(absl::NotFoundError(r.message))).details(0).UnpackTo(&info));
    EXPECT_EQ(info.resource_type(), r.type) << r.message;
    EXPECT_EQ(info.resource_name(), r.name) << r.message;
    EXPECT_EQ(info.description(), r.message);
  }
  // Other codes: the status alone.
  EXPECT_EQ(RichOf(ToGrpcStatus(absl::InternalError("boom"))).details_size(), 0);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace apq::server
