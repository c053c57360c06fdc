#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

// The columns ReadArtifact expects; the blob's length without the blob (which comes last in
// the table, so its pages are not read).
constexpr const char* kArtifactColumns =
    "kind, key, job_id, space, created_unix_s, provenance, content_type, length(bytes)";

// Reads kArtifactColumns, then the bytes if `with_bytes`.
ArtifactRecord ReadArtifact(const Statement& row, bool with_bytes) {
  ArtifactRecord artifact;
  artifact.kind = row.ColumnText(0);
  artifact.key = row.ColumnText(1);
  artifact.job_id = row.ColumnText(2);
  artifact.space = row.ColumnText(3);
  artifact.created_unix_s = row.ColumnDouble(4);
  artifact.provenance = row.ColumnText(5);
  artifact.content_type = row.ColumnText(6);
  artifact.size_bytes = row.ColumnInt64(7);
  if (with_bytes) artifact.bytes = row.ColumnBlob(8);
  return artifact;
}

// Steps `select` to its end, reading each row without its bytes.
absl::StatusOr<std::vector<ArtifactRecord>> ReadListing(Statement& select,
                                                        const std::string& operation) {
  std::vector<ArtifactRecord> artifacts;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step(operation));
    if (!row) break;
    artifacts.push_back(ReadArtifact(select, /*with_bytes=*/false));
  }
  return artifacts;
}

}  // namespace

absl::Status SqliteArtifactStore::CheckJobKnown(const std::string& job_id,
                                                const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT 1 FROM jobs WHERE id = ?1 AND deleted_unix_s = 0"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(operation));
  if (!row) return store_internal::JobNotFound(job_id);
  return absl::OkStatus();
}

absl::Status SqliteArtifactStore::PutArtifact(const ArtifactRecord& artifact) {
  RETURN_IF_ERROR(store_internal::CheckArtifact(artifact));
  const std::string operation = absl::StrCat("storing an artifact of kind ", artifact.kind, " (",
                                             artifact.bytes.size(), " bytes)");
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  if (!artifact.job_id.empty()) RETURN_IF_ERROR(CheckJobKnown(artifact.job_id, operation));
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare("SELECT 1 FROM artifacts WHERE kind = ?1 AND key = ?2"));
    select.BindText(1, artifact.kind);
    select.BindText(2, artifact.key);
    ASSIGN_OR_RETURN(bool stored, select.Step(operation));
    if (stored) return store_internal::ArtifactExists(artifact.kind, artifact.key);
  }
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare("INSERT INTO artifacts (kind, key, job_id, space, "
                                       "created_unix_s, provenance, content_type, bytes) "
                                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    insert.BindText(1, artifact.kind);
    insert.BindText(2, artifact.key);
    insert.BindText(3, artifact.job_id);
    insert.BindText(4, artifact.space);
    insert.BindDouble(5, artifact.created_unix_s, "created_unix_s");
    insert.BindText(6, artifact.provenance);
    insert.BindText(7, artifact.content_type);
    insert.BindBlob(8, artifact.bytes);
    RETURN_IF_ERROR(insert.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<ArtifactRecord> SqliteArtifactStore::GetArtifact(const std::string& kind,
                                                                const std::string& key) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kArtifactColumns,
                                                  ", bytes FROM artifacts "
                                                  "WHERE kind = ?1 AND key = ?2")));
  select.BindText(1, kind);
  select.BindText(2, key);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading an artifact of kind ", kind)));
  if (!row) return store_internal::ArtifactNotFound(kind, key);
  return ReadArtifact(select, /*with_bytes=*/true);
}

absl::StatusOr<std::vector<ArtifactRecord>> SqliteArtifactStore::ListJobArtifacts(
    const std::string& job_id) {
  const std::string operation = absl::StrCat("listing the artifacts of job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  // The job and its artifacts come from one snapshot.
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/false, operation));
  RETURN_IF_ERROR(CheckJobKnown(job_id, operation));
  std::vector<ArtifactRecord> artifacts;
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare(absl::StrCat("SELECT ", kArtifactColumns,
                                                    " FROM artifacts WHERE job_id = ?1 "
                                                    "ORDER BY kind, key")));
    select.BindText(1, job_id);
    ASSIGN_OR_RETURN(artifacts, ReadListing(select, operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return artifacts;
}

absl::StatusOr<std::vector<ArtifactRecord>> SqliteArtifactStore::ListArtifacts(
    const std::string& kind, const std::string& space, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(0, limit));
  const std::string operation = absl::StrCat("listing the artifacts of kind ", kind);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kArtifactColumns,
                                                  " FROM artifacts WHERE kind = ?1 AND "
                                                  "(?2 = '' OR space = ?2) ORDER BY key "
                                                  "LIMIT ?3")));
  select.BindText(1, kind);
  select.BindText(2, space);
  select.BindInt64(3, limit);
  return ReadListing(select, operation);
}

}  // namespace apq::server
