#include "server/page_tokens.h"

#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/records.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

CandidateQuery Listing() {
  CandidateQuery query;
  query.job_id = "job-7";
  query.order = CandidateOrder::kLatencyAsc;
  query.feasible = true;
  return query;
}

TEST(PageTokensTest, ACandidateTokenCarriesTheLastRowsKeyExactly) {
  CandidateRecord last;
  last.id = 1234;
  last.latency_ms = 0.1 + 0.2;  // Not a short decimal: read back bit for bit.
  const std::string token = CandidatePageToken(Listing(), last);
  CandidateQuery next = Listing();
  ASSERT_TRUE(ApplyCandidatePageToken(token, &next).ok());
  ASSERT_TRUE(next.after.has_value());
  EXPECT_EQ(next.after->id, 1234);
  EXPECT_EQ(next.after->key, 0.1 + 0.2);
  // A row without the figure: a cursor without a key.
  last.latency_ms.reset();
  next = Listing();
  ASSERT_TRUE(ApplyCandidatePageToken(CandidatePageToken(Listing(), last), &next).ok());
  EXPECT_FALSE(next.after->key.has_value());
  // No token: the first page.
  next = Listing();
  EXPECT_TRUE(ApplyCandidatePageToken("", &next).ok());
  EXPECT_FALSE(next.after.has_value());
}

TEST(PageTokensTest, TokensOfOtherListingsOrNotIssuedAreRefused) {
  CandidateRecord last;
  last.id = 9;
  last.latency_ms = 3;
  const std::string token = CandidatePageToken(Listing(), last);
  const auto refused = [&](CandidateQuery query, const std::string& text) {
    const absl::Status status = ApplyCandidatePageToken(text, &query);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(status.message()), HasSubstr("page_token: "));
    EXPECT_FALSE(query.after.has_value());
  };
  CandidateQuery other = Listing();
  other.job_id = "job-8";
  refused(other, token);
  other = Listing();
  other.order = CandidateOrder::kAccuracyDesc;
  refused(other, token);
  other = Listing();
  other.feasible.reset();
  refused(other, token);
  other = Listing();
  other.pareto_front_only = true;
  refused(other, token);
  for (const std::string& text :
       {std::string(" +7 "), std::string("7"), std::string("100"), std::string("%%%"),
        std::string(2000, 'A'), OffsetPageToken("jobs", 7),
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|-|+9"),
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|zz|9"),
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|-|0"),
        // Keys no stored row has: NaN (found by tests/fuzz:rpc_token_fuzz) and infinities.
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|7ff8000000000000|17"),
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|7ff0000000000000|17"),
        absl::WebSafeBase64Escape("c1|job-7|2|t|0|fff0000000000000|17")}) {
    refused(Listing(), text);
  }
}

TEST(PageTokensTest, OffsetTokensRoundTripAndRefuseAnythingElse) {
  EXPECT_EQ(ParseOffsetPageToken("jobs", "").value(), 0);
  EXPECT_EQ(ParseOffsetPageToken("jobs", OffsetPageToken("jobs", 350)).value(), 350);
  for (const std::string& text :
       {std::string(" +7 "), std::string("7"), std::string("-1"),
        OffsetPageToken("training_jobs", 5), absl::WebSafeBase64Escape("o1|jobs| 7"),
        absl::WebSafeBase64Escape("o1|jobs|+7"), absl::WebSafeBase64Escape("o1|jobs|007"),
        absl::WebSafeBase64Escape("o1|jobs|-3")}) {
    const absl::StatusOr<int64_t> offset = ParseOffsetPageToken("jobs", text);
    EXPECT_EQ(offset.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(PageTokensTest, AJobTokenCarriesTheLastJobForTheSameFiltersOnly) {
  JobQuery listing;
  listing.state = JobState::kQueued;
  listing.owner = "tok-0123|weird";  // Caller's text: escaped inside the token.
  const std::string token = JobPageToken(listing, "job-17");
  JobQuery next = listing;
  ASSERT_TRUE(ApplyJobPageToken(token, &next).ok());
  EXPECT_EQ(next.after_job, "job-17");
  JobQuery first = listing;
  ASSERT_TRUE(ApplyJobPageToken("", &first).ok());
  EXPECT_EQ(first.after_job, "");

  const auto refused = [](JobQuery query, const std::string& text) {
    const absl::Status status = ApplyJobPageToken(text, &query);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(status.message()), HasSubstr("page_token: "));
    EXPECT_EQ(query.after_job, "");
  };
  JobQuery other = listing;
  other.state.reset();
  refused(other, token);
  other = listing;
  other.owner.reset();
  refused(other, token);
  other = listing;
  other.owner = "tok-0123";
  refused(other, token);
  // Space and device filters bind the token too.
  JobQuery in_space = listing;
  in_space.space = "fmnist_lowbit";
  const std::string space_token = JobPageToken(in_space, "job-9");
  refused(listing, space_token);
  other = in_space;
  other.device = "bitfusion";
  refused(other, space_token);
  other = in_space;
  other.space = "apq_mbv2";
  refused(other, space_token);
  other = in_space;
  ASSERT_TRUE(ApplyJobPageToken(space_token, &other).ok());
  EXPECT_EQ(other.after_job, "job-9");
  other = listing;
  other.device = "bitfusion";
  refused(other, token);
  for (const std::string& text :
       {OffsetPageToken("jobs", 50), std::string("job-17"),
        absl::WebSafeBase64Escape("j1|1|-|job-07"), absl::WebSafeBase64Escape("j1|-|-|job-0"),
        absl::WebSafeBase64Escape("j1|-|-|job--3"), absl::WebSafeBase64Escape("j1|-|-|run-3"),
        absl::WebSafeBase64Escape("j1|-|-|job-3|x")}) {
    refused(JobQuery(), text);
  }
  JobQuery any;
  ASSERT_TRUE(ApplyJobPageToken(absl::WebSafeBase64Escape("j1|-|-|job-3"), &any).ok());
  EXPECT_EQ(any.after_job, "job-3");
}

}  // namespace
}  // namespace apq::server
