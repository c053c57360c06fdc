// The page tokens of the listing RPCs: opaque (web-safe base64) and checked when they come
// back: a token that this server did not issue, or that was issued for another listing, is
// INVALID_ARGUMENT naming page_token. Candidates and jobs page by keyset (the last row's sort
// key and id: rows added while a client pages are neither repeated nor make it skip others);
// other listings by offset.
#ifndef APQ_SERVER_PAGE_TOKENS_H_
#define APQ_SERVER_PAGE_TOKENS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/records.h"

namespace apq::server {

// The token of the page after `last` in `query`'s listing (job, order and filters).
std::string CandidatePageToken(const CandidateQuery& query, const CandidateRecord& last);

// Sets query->after from `token` (empty: the first page, nothing set). INVALID_ARGUMENT
// "page_token: ..." when it is malformed or was issued for another job, order or filter.
absl::Status ApplyCandidatePageToken(absl::string_view token, CandidateQuery* query);

// The token of the page after the job `last_job_id` in `query`'s listing (its filters).
std::string JobPageToken(const JobQuery& query, const std::string& last_job_id);

// Sets query->after_job from `token` (empty: the first page, nothing set). INVALID_ARGUMENT
// "page_token: ..." when it is malformed or was issued for another state or owner.
absl::Status ApplyJobPageToken(absl::string_view token, JobQuery* query);

// The token of the page at `offset` of the listing called `listing` ("training_jobs", ...).
std::string OffsetPageToken(absl::string_view listing, int64_t offset);

// The offset of `token` (0 for an empty one); INVALID_ARGUMENT "page_token: ..." otherwise.
absl::StatusOr<int64_t> ParseOffsetPageToken(absl::string_view listing, absl::string_view token);

}  // namespace apq::server

#endif  // APQ_SERVER_PAGE_TOKENS_H_
