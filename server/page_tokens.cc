#include "server/page_tokens.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace apq::server {
namespace {

constexpr absl::string_view kCandidatesTag = "c1";
constexpr absl::string_view kOffsetTag = "o1";
constexpr absl::string_view kJobsTag = "j1";

// A listing's filters as token text: state, then owner and, when any is set, space and
// device, then label when set, as one field (a caller's text, escaped so that it cannot split
// the token; without the later filters the text is what servers wrote before them, so their
// tokens stay good).
std::string JobFilterText(const JobQuery& query) {
  const auto text = [](const std::optional<std::string>& value) {
    return value.has_value() ? "o" + absl::WebSafeBase64Escape(*value) : std::string("-");
  };
  std::string filters = text(query.owner);
  if (query.space.has_value() || query.device.has_value() || query.label.has_value()) {
    absl::StrAppend(&filters, ",", text(query.space), ",", text(query.device));
  }
  if (query.label.has_value()) absl::StrAppend(&filters, ",", text(query.label));
  return absl::StrCat(query.state.has_value() ? absl::StrCat(static_cast<int>(*query.state)) : "-",
                      "|", filters);
}

absl::Status NotOurs(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("page_token: ", why, "; pass the next_page_token of the same listing"));
}

std::string FeasibilityText(const std::optional<bool>& feasible) {
  return !feasible.has_value() ? "a" : (*feasible ? "t" : "f");
}

// A double as the 16 hex digits of its bits: read back exactly.
std::string DoubleText(double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  return absl::StrCat(absl::Hex(bits, absl::kZeroPad16));
}

// Only finite keys: a stored figure is never NaN or infinite, and a NaN cursor would compare
// false with every row.
bool ParseDoubleText(absl::string_view text, double* value) {
  uint64_t bits = 0;
  if (text.size() != 16 || !absl::SimpleHexAtoi(text, &bits)) return false;
  std::memcpy(value, &bits, sizeof(bits));
  return std::isfinite(*value);
}

// The parts of `token` after its tag, or an error.
absl::StatusOr<std::vector<std::string>> Parts(absl::string_view token, absl::string_view tag) {
  std::string decoded;
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, &decoded)) {
    return NotOurs("not a token this server issued");
  }
  std::vector<std::string> parts = absl::StrSplit(decoded, '|');
  if (parts.empty() || parts[0] != tag) return NotOurs("not a token of this listing");
  parts.erase(parts.begin());
  return parts;
}

}  // namespace

std::string CandidatePageToken(const CandidateQuery& query, const CandidateRecord& last) {
  std::optional<double> CandidateRecord::*metric = CandidateOrderMetric(query.order);
  const std::optional<double> key = metric != nullptr ? last.*metric : std::nullopt;
  return absl::WebSafeBase64Escape(
      absl::StrCat(kCandidatesTag, "|", query.job_id, "|", static_cast<int>(query.order), "|",
                   FeasibilityText(query.feasible), "|", query.pareto_front_only ? "1" : "0", "|",
                   key.has_value() ? DoubleText(*key) : "-", "|", last.id));
}

absl::Status ApplyCandidatePageToken(absl::string_view token, CandidateQuery* query) {
  if (token.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> parts = Parts(token, kCandidatesTag);
  if (!parts.ok()) return parts.status();
  if (parts->size() != 6) return NotOurs("not a token this server issued");
  const std::vector<std::string>& p = *parts;
  if (p[0] != query->job_id || p[1] != absl::StrCat(static_cast<int>(query->order)) ||
      p[2] != FeasibilityText(query->feasible) || p[3] != (query->pareto_front_only ? "1" : "0")) {
    return NotOurs("issued for another job, order or filter");
  }
  CandidateCursor cursor;
  if (p[4] != "-") {
    double key = 0;
    if (!ParseDoubleText(p[4], &key)) return NotOurs("not a token this server issued");
    cursor.key = key;
  }
  if (!absl::SimpleAtoi(p[5], &cursor.id) || cursor.id <= 0 || p[5] != absl::StrCat(cursor.id)) {
    return NotOurs("not a token this server issued");
  }
  query->after = cursor;
  return absl::OkStatus();
}

std::string JobPageToken(const JobQuery& query, const std::string& last_job_id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kJobsTag, "|", JobFilterText(query), "|", last_job_id));
}

absl::Status ApplyJobPageToken(absl::string_view token, JobQuery* query) {
  if (token.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> parts = Parts(token, kJobsTag);
  if (!parts.ok()) return parts.status();
  if (parts->size() != 3) return NotOurs("not a token this server issued");
  const std::vector<std::string>& p = *parts;
  if (absl::StrCat(p[0], "|", p[1]) != JobFilterText(*query)) {
    return NotOurs("issued for another state, owner, space or device");
  }
  // A job id as the store gives them: "job-" and a positive number without leading zeros.
  int64_t sequence = 0;
  if (!absl::StartsWith(p[2], "job-") || !absl::SimpleAtoi(p[2].substr(4), &sequence) ||
      sequence <= 0 || p[2] != absl::StrCat("job-", sequence)) {
    return NotOurs("not a token this server issued");
  }
  query->after_job = p[2];
  return absl::OkStatus();
}

std::string OffsetPageToken(absl::string_view listing, int64_t offset) {
  return absl::WebSafeBase64Escape(absl::StrCat(kOffsetTag, "|", listing, "|", offset));
}

absl::StatusOr<int64_t> ParseOffsetPageToken(absl::string_view listing, absl::string_view token) {
  if (token.empty()) return 0;
  absl::StatusOr<std::vector<std::string>> parts = Parts(token, kOffsetTag);
  if (!parts.ok()) return parts.status();
  int64_t offset = 0;
  // Exactly the text this server writes: no sign, space or leading zero slips through.
  if (parts->size() != 2 || (*parts)[0] != listing || !absl::SimpleAtoi((*parts)[1], &offset) ||
      offset < 0 || (*parts)[1] != absl::StrCat(offset)) {
    return NotOurs("not a token of this listing");
  }
  return offset;
}

}  // namespace apq::server
