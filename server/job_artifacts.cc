#include "server/job_artifacts.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace apq::server {

std::string JobOutputKey(const std::string& job_id, const std::string& name) {
  return absl::StrCat(job_id, "/", name);
}

JobArtifactKeeper::JobArtifactKeeper(ArtifactStore& store, std::string job_id, std::string space)
    : store_(store), job_id_(std::move(job_id)), space_(std::move(space)) {}

absl::StatusOr<std::optional<std::string>> JobArtifactKeeper::FindShared(const std::string& kind,
                                                                         const std::string& key) {
  absl::StatusOr<ArtifactRecord> found = store_.GetArtifact(kind, key);
  if (absl::IsNotFound(found.status())) return std::nullopt;
  if (!found.ok()) return found.status();
  return std::move(found->bytes);
}

absl::Status JobArtifactKeeper::PutShared(const std::string& kind, const std::string& key,
                                          const std::string& content_type,
                                          const std::string& provenance, const std::string& bytes) {
  ArtifactRecord artifact;
  artifact.kind = kind;
  artifact.key = key;
  artifact.content_type = content_type;
  // A shared artifact names the job that made it in its provenance (a JSON object).
  artifact.provenance = absl::StartsWith(provenance, "{")
                            ? absl::StrCat("{\"made_by_job\":\"", job_id_, "\"",
                                           provenance.size() > 2 ? "," : "", provenance.substr(1))
                            : provenance;
  artifact.bytes = bytes;
  return Put(std::move(artifact));
}

absl::Status JobArtifactKeeper::PutOutput(const std::string& kind, const std::string& name,
                                          const std::string& content_type,
                                          const std::string& provenance, const std::string& bytes) {
  ArtifactRecord artifact;
  artifact.kind = kind;
  artifact.key = JobOutputKey(job_id_, name);
  artifact.job_id = job_id_;
  artifact.content_type = content_type;
  artifact.provenance = provenance;
  artifact.bytes = bytes;
  return Put(std::move(artifact));
}

absl::Status JobArtifactKeeper::Put(ArtifactRecord artifact) {
  artifact.space = space_;
  artifact.created_unix_s = NowUnixSeconds();
  const absl::Status stored = store_.PutArtifact(artifact);
  return absl::IsAlreadyExists(stored) ? absl::OkStatus() : stored;
}

}  // namespace apq::server
