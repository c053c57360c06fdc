#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

// The columns ReadArtifact expects; the blob's length without the blob (a TOASTed value's
// length is read from its header, without fetching it).
constexpr const char* kArtifactColumns =
    "kind, key, job_id, space, created_unix_s, provenance, content_type, length(bytes)";

// Reads kArtifactColumns, then the bytes if `with_bytes`.
ArtifactRecord ReadArtifact(const pqxx::row& row, bool with_bytes) {
  ArtifactRecord artifact;
  artifact.kind = FieldBytes(row[0]);
  artifact.key = FieldBytes(row[1]);
  artifact.job_id = FieldBytes(row[2]);
  artifact.space = FieldBytes(row[3]);
  artifact.created_unix_s = FieldDouble(row[4]);
  artifact.provenance = FieldBytes(row[5]);
  artifact.content_type = FieldBytes(row[6]);
  artifact.size_bytes = FieldInt(row[7]);
  if (with_bytes) artifact.bytes = FieldBytes(row[8]);
  return artifact;
}

// Every row of `rows`, without their bytes.
std::vector<ArtifactRecord> ReadListing(const pqxx::result& rows) {
  std::vector<ArtifactRecord> artifacts;
  artifacts.reserve(rows.size());
  for (const pqxx::row& row : rows) artifacts.push_back(ReadArtifact(row, /*with_bytes=*/false));
  return artifacts;
}

// NOT_FOUND unless the job is stored and not deleted. With `lock_row` (in a write
// transaction) the job's row is share-locked until the transaction ends, so that a deletion
// of the job (which deletes its artifacts) either comes first, and the job is not found, or
// waits for the caller's write and then deletes what it wrote.
absl::Status CheckJobKnown(PostgresTransaction& tx, const std::string& job_id, bool lock_row) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   tx.Exec(absl::StrCat("SELECT 1 FROM jobs WHERE id = $1 AND deleted_unix_s = 0",
                                        lock_row ? " FOR SHARE" : ""),
                           PostgresParams().Bytes(job_id)));
  if (rows.empty()) return store_internal::JobNotFound(job_id);
  return absl::OkStatus();
}

}  // namespace

absl::Status PostgresArtifactStore::PutArtifact(const ArtifactRecord& artifact) {
  RETURN_IF_ERROR(store_internal::CheckArtifact(artifact));
  return database_.Transact(
      PostgresDatabase::Mode::kWrite,
      absl::StrCat("storing an artifact of kind ", artifact.kind, " (", artifact.bytes.size(),
                   " bytes)"),
      [&](PostgresTransaction& tx) -> absl::Status {
        if (!artifact.job_id.empty()) {
          RETURN_IF_ERROR(CheckJobKnown(tx, artifact.job_id, /*lock_row=*/true));
        }
        // Replicas storing one (kind, key) take turns: the second gets ALREADY_EXISTS.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kArtifacts));
        ASSIGN_OR_RETURN(const pqxx::result stored,
                         tx.Exec("SELECT 1 FROM artifacts WHERE kind = $1 AND key = $2",
                                 PostgresParams().Bytes(artifact.kind).Bytes(artifact.key)));
        if (!stored.empty()) return store_internal::ArtifactExists(artifact.kind, artifact.key);
        return tx
            .Run(
                "INSERT INTO artifacts (kind, key, job_id, space, created_unix_s, provenance, "
                "content_type, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                PostgresParams()
                    .Bytes(artifact.kind)
                    .Bytes(artifact.key)
                    .Bytes(artifact.job_id)
                    .Bytes(artifact.space)
                    .Double(artifact.created_unix_s, "created_unix_s")
                    .Bytes(artifact.provenance)
                    .Bytes(artifact.content_type)
                    .Bytes(artifact.bytes))
            .status();
      });
}

absl::StatusOr<ArtifactRecord> PostgresArtifactStore::GetArtifact(const std::string& kind,
                                                                  const std::string& key) {
  ArtifactRecord artifact;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading an artifact of kind ", kind),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kArtifactColumns,
                                              ", bytes FROM artifacts "
                                              "WHERE kind = $1 AND key = $2"),
                                 PostgresParams().Bytes(kind).Bytes(key)));
        if (rows.empty()) return store_internal::ArtifactNotFound(kind, key);
        artifact = ReadArtifact(rows[0], /*with_bytes=*/true);
        return absl::OkStatus();
      }));
  return artifact;
}

absl::StatusOr<std::vector<ArtifactRecord>> PostgresArtifactStore::ListJobArtifacts(
    const std::string& job_id) {
  std::vector<ArtifactRecord> artifacts;
  // The job and its artifacts come from one snapshot.
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("listing the artifacts of job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        artifacts.clear();
        RETURN_IF_ERROR(CheckJobKnown(tx, job_id, /*lock_row=*/false));
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kArtifactColumns,
                                              " FROM artifacts WHERE job_id = $1 "
                                              "ORDER BY kind, key"),
                                 PostgresParams().Bytes(job_id)));
        artifacts = ReadListing(rows);
        return absl::OkStatus();
      }));
  return artifacts;
}

absl::StatusOr<std::vector<ArtifactRecord>> PostgresArtifactStore::ListArtifacts(
    const std::string& kind, const std::string& space, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  std::vector<ArtifactRecord> artifacts;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("listing the artifacts of kind ", kind),
      [&](PostgresTransaction& tx) -> absl::Status {
        artifacts.clear();
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kArtifactColumns,
                                 " FROM artifacts WHERE kind = $1 AND "
                                 "($2::bytea = ''::bytea OR space = $2) ORDER BY key LIMIT $3"),
                    PostgresParams().Bytes(kind).Bytes(space).Int(limit)));
        artifacts = ReadListing(rows);
        return absl::OkStatus();
      }));
  return artifacts;
}

}  // namespace apq::server
