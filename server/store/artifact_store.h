// Artifacts: byte blobs that engines produce or cache, with their provenance (records.h,
// ArtifactRecord). The contract shared by every store is in store.h.
#ifndef APQ_SERVER_STORE_ARTIFACT_STORE_H_
#define APQ_SERVER_STORE_ARTIFACT_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

// An artifact is named by (kind, key) and never changes once stored. One with a job_id
// belongs to that job: JobStore::DeleteJob and DeleteJobsFinishedBefore delete it with the
// job, in the same transaction (its name is then free again). A shared one (empty job_id,
// e.g. a cache entry) is never deleted. Keys order by their bytes.
class ArtifactStore {
 public:
  virtual ~ArtifactStore() = default;

  // Stores an artifact as given (its size_bytes is ignored). Checked in this order:
  //  - INVALID_ARGUMENT naming the field ("artifact <field>: ...": kind, key, created_unix_s,
  //    provenance, content_type, bytes) for a field out of the bounds of ArtifactRecord;
  //  - NOT_FOUND when job_id is not empty and names no job (or a deleted one);
  //  - ALREADY_EXISTS when (kind, key) is stored (artifacts are immutable).
  virtual absl::Status PutArtifact(const ArtifactRecord& artifact) = 0;

  // One artifact with its bytes; NOT_FOUND when unknown.
  virtual absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& kind,
                                                     const std::string& key) = 0;

  // A job's artifacts without their bytes (size_bytes set), ordered by (kind, key).
  // NOT_FOUND for an unknown or deleted job; an empty list for a job without artifacts.
  virtual absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(
      const std::string& job_id) = 0;

  // The artifacts of `kind` (and of `space` when it is not empty), jobs' and shared ones,
  // without their bytes (size_bytes set), ordered by key, at most `limit`.
  // INVALID_ARGUMENT naming "limit" unless 1 <= limit <= kMaxPageSize. An unknown kind gives
  // an empty list.
  virtual absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& kind,
                                                                    const std::string& space,
                                                                    int limit) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_ARTIFACT_STORE_H_
