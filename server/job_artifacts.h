// The artifacts of search jobs: what an engine keeps besides candidates (search::ArtifactKeeper)
// stored in the store's artifacts (server/store/artifact_store.h). A job's outputs are named
// "<job id>/<name>" and belong to the job (deleted with it); shared entries (caches) belong to
// no job and carry the job that made them in their provenance only.
#ifndef APQ_SERVER_JOB_ARTIFACTS_H_
#define APQ_SERVER_JOB_ARTIFACTS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "search/engine.h"
#include "server/store/artifact_store.h"

namespace apq::server {

// The key of job `job_id`'s output `name`.
std::string JobOutputKey(const std::string& job_id, const std::string& name);

class JobArtifactKeeper final : public search::ArtifactKeeper {
 public:
  // `store` outlives the keeper; `space` is recorded on every artifact.
  JobArtifactKeeper(ArtifactStore& store, std::string job_id, std::string space);

  absl::StatusOr<std::optional<std::string>> FindShared(const std::string& kind,
                                                        const std::string& key) override;
  absl::Status PutShared(const std::string& kind, const std::string& key,
                         const std::string& content_type, const std::string& provenance,
                         const std::string& bytes) override;
  absl::Status PutOutput(const std::string& kind, const std::string& name,
                         const std::string& content_type, const std::string& provenance,
                         const std::string& bytes) override;

 private:
  // Stores `artifact`; one already stored under its name is kept (a resumed run or a
  // concurrent job made the same).
  absl::Status Put(ArtifactRecord artifact);

  ArtifactStore& store_;
  const std::string job_id_;
  const std::string space_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_JOB_ARTIFACTS_H_
