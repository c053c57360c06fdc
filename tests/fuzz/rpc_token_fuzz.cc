// Fuzzes the tokens a caller sends in RPC fields and metadata: the page tokens of the listing
// RPCs (keyset for candidates and jobs, offsets for the others) and the bearer API token.
// Properties: a refused page token is INVALID_ARGUMENT naming page_token and leaves the query as it
// was; an accepted one carries a cursor the server could have issued (a positive id, a finite sort
// key or none) that reissues to the same cursor, or an offset >= 0; an accepted bearer token splits
// into a "tok-" id of 16 lowercase hex digits and a 64-digit secret.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "server/auth.h"
#include "server/page_tokens.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using apq::server::CandidateQuery;

void CheckCandidateToken(const std::string& token) {
  CandidateQuery query;
  query.job_id = "job-7";
  query.order = apq::server::CandidateOrder::kLatencyAsc;
  query.feasible = true;
  const absl::Status status = apq::server::ApplyCandidatePageToken(token, &query);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(status.message(), "page_token: "));
    FUZZ_CHECK(!query.after.has_value());
    return;
  }
  if (token.empty()) {
    FUZZ_CHECK(!query.after.has_value());
    return;
  }
  FUZZ_CHECK(query.after.has_value());
  FUZZ_CHECK(query.after->id > 0);
  FUZZ_CHECK(!query.after->key.has_value() || std::isfinite(*query.after->key));
  apq::server::CandidateRecord last;
  last.id = query.after->id;
  last.latency_ms = query.after->key;
  CandidateQuery again = query;
  again.after.reset();
  FUZZ_CHECK(
      apq::server::ApplyCandidatePageToken(apq::server::CandidatePageToken(query, last), &again)
          .ok());
  FUZZ_CHECK(again.after->id == query.after->id);
  FUZZ_CHECK(again.after->key == query.after->key);
}

void CheckJobToken(const std::string& token) {
  apq::server::JobQuery query;
  query.state = apq::server::JobState::kRunning;
  const absl::Status status = apq::server::ApplyJobPageToken(token, &query);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(status.message(), "page_token: "));
    FUZZ_CHECK(query.after_job.empty());
    return;
  }
  if (token.empty()) {
    FUZZ_CHECK(query.after_job.empty());
    return;
  }
  FUZZ_CHECK(absl::StartsWith(query.after_job, "job-"));
  apq::server::JobQuery again = query;
  again.after_job.clear();
  FUZZ_CHECK(
      apq::server::ApplyJobPageToken(apq::server::JobPageToken(query, query.after_job), &again)
          .ok());
  FUZZ_CHECK(again.after_job == query.after_job);
}

void CheckOffsetToken(const std::string& token) {
  const absl::StatusOr<int64_t> offset = apq::server::ParseOffsetPageToken("jobs", token);
  if (!offset.ok()) {
    FUZZ_CHECK(offset.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(offset.status().message(), "page_token: "));
    return;
  }
  FUZZ_CHECK(*offset >= 0);
  FUZZ_CHECK(*apq::server::ParseOffsetPageToken(
                 "jobs", apq::server::OffsetPageToken("jobs", *offset)) == *offset);
}

void CheckBearer(std::string_view text) {
  const absl::StatusOr<apq::server::BearerParts> parts = apq::server::ParseBearer(text);
  if (!parts.ok()) {
    FUZZ_CHECK(parts.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(parts->id.size() == 4 + 16 && absl::StartsWith(parts->id, "tok-"));
  FUZZ_CHECK(parts->secret.size() == 64);
  for (const char c : parts->id.substr(4) + parts->secret) {
    FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckCandidateToken(text);
  CheckJobToken(text);
  CheckOffsetToken(text);
  CheckBearer(text);
  return 0;
}
