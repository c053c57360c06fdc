#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"
#include "server/store/sqlite_stores.h"

namespace apq::server {
namespace {

using Statement = SqliteDatabase::Statement;
using Transaction = SqliteDatabase::Transaction;

constexpr const char* kTrainingJobColumns =
    "id, space, dataset, request, state, error, stage, epoch, max_epochs, validation_rmse, "
    "predictor_version, metrics_json, created_unix_s, started_unix_s, finished_unix_s";
constexpr int kTrainingJobColumnCount = 15;

TrainingJobRecord ReadTrainingJob(const Statement& row) {
  TrainingJobRecord job;
  job.id = row.ColumnText(0);
  job.space = row.ColumnText(1);
  job.dataset = row.ColumnText(2);
  job.request = row.ColumnBlob(3);
  job.state = static_cast<JobState>(row.ColumnInt(4));
  job.error = row.ColumnText(5);
  job.stage = row.ColumnText(6);
  job.epoch = row.ColumnInt(7);
  job.max_epochs = row.ColumnInt(8);
  job.validation_rmse = row.ColumnDouble(9);
  job.predictor_version = row.ColumnText(10);
  job.metrics_json = row.ColumnText(11);
  job.created_unix_s = row.ColumnDouble(12);
  job.started_unix_s = row.ColumnDouble(13);
  job.finished_unix_s = row.ColumnDouble(14);
  return job;
}

}  // namespace

absl::StatusOr<JobState> SqliteTrainingJobStore::LoadState(const std::string& job_id) {
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare("SELECT state FROM training_jobs WHERE id = ?1"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading training job ", job_id)));
  if (!row) return store_internal::TrainingJobNotFound(job_id);
  return static_cast<JobState>(select.ColumnInt(0));
}

absl::StatusOr<std::string> SqliteTrainingJobStore::CreateTrainingJob(
    const TrainingJobRecord& job) {
  constexpr absl::string_view kOperation = "creating a training job";
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, kOperation));
  ASSIGN_OR_RETURN(const int64_t seq, database_.NextSequence("training_jobs", kOperation));
  const std::string id = absl::StrCat("train-", seq);
  {
    ASSIGN_OR_RETURN(Statement insert,
                     database_.Prepare("INSERT INTO training_jobs (id, seq, space, dataset, "
                                       "request, state, created_unix_s) "
                                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    insert.BindText(1, id);
    insert.BindInt64(2, seq);
    insert.BindText(3, job.space);
    insert.BindText(4, job.dataset);
    insert.BindBlob(5, job.request);
    insert.BindInt64(6, static_cast<int64_t>(JobState::kQueued));
    insert.BindDouble(7, job.created_unix_s, "created_unix_s");
    RETURN_IF_ERROR(insert.Run(kOperation));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return id;
}

absl::Status SqliteTrainingJobStore::MarkTrainingRunning(const std::string& job_id,
                                                         double started_unix_s) {
  const std::string operation = absl::StrCat("marking training job ", job_id, " running");
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadState(job_id));
  if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
  {
    // A job run again after a restart starts over: its progress is reset.
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET state = ?2, started_unix_s = ?3, "
                                       "stage = '', epoch = 0, max_epochs = 0, "
                                       "validation_rmse = 0 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    update.BindDouble(3, started_unix_s, "started_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteTrainingJobStore::UpdateTrainingProgress(const std::string& job_id,
                                                            const std::string& stage, int epoch,
                                                            int max_epochs,
                                                            double validation_rmse) {
  const std::string operation = absl::StrCat("recording the progress of training job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState state, LoadState(job_id));
  if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET stage = ?2, epoch = ?3, "
                                       "max_epochs = ?4, validation_rmse = ?5 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindText(2, stage);
    update.BindInt64(3, epoch);
    update.BindInt64(4, max_epochs);
    update.BindDouble(5, validation_rmse, "validation_rmse");
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::Status SqliteTrainingJobStore::FinishTrainingJob(const std::string& job_id, JobState state,
                                                       const std::string& error,
                                                       double finished_unix_s,
                                                       const PredictorRecord* predictor) {
  RETURN_IF_ERROR(store_internal::CheckTrainingEnd(state, predictor));
  const std::string operation = absl::StrCat("finishing training job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(JobState current, LoadState(job_id));
  if (IsTerminal(current)) return store_internal::TrainingJobEnded(job_id, current);
  if (predictor != nullptr) {
    ASSIGN_OR_RETURN(bool stored, sqlite_internal::PredictorStored(database_, predictor->space,
                                                                   predictor->version, operation));
    if (!stored) {
      RETURN_IF_ERROR(sqlite_internal::InsertPredictor(database_, *predictor, operation));
    } else if (predictor->is_default) {
      // Versions are content hashes: the job trained a predictor already stored.
      RETURN_IF_ERROR(
          sqlite_internal::MakeDefault(database_, predictor->space, predictor->version, operation));
    }
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET state = ?2, error = ?3, "
                                       "finished_unix_s = ?4, predictor_version = ?5, "
                                       "metrics_json = ?6, lease_holder = '', "
                                       "lease_expires_unix_s = 0 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(state));
    update.BindText(3, error);
    update.BindDouble(4, finished_unix_s, "finished_unix_s");
    // Named, not temporaries: bound text must outlive the statement's step.
    const std::string version = predictor != nullptr ? predictor->version : "";
    const std::string metrics_json = predictor != nullptr ? predictor->metrics_json : "{}";
    update.BindText(5, version);
    update.BindText(6, metrics_json);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<TrainingJobRecord> SqliteTrainingJobStore::GetTrainingJob(
    const std::string& job_id) {
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select,
                   database_.Prepare(absl::StrCat("SELECT ", kTrainingJobColumns,
                                                  " FROM training_jobs WHERE id = ?1")));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(bool row, select.Step(absl::StrCat("reading training job ", job_id)));
  if (!row) return store_internal::TrainingJobNotFound(job_id);
  return ReadTrainingJob(select);
}

absl::StatusOr<std::vector<TrainingJobRecord>> SqliteTrainingJobStore::ListTrainingJobs(
    bool unfinished_only, int64_t offset, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(offset, limit));
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Statement select, database_.Prepare(absl::StrCat(
                                         "SELECT ", kTrainingJobColumns, " FROM training_jobs",
                                         unfinished_only ? " WHERE state IN (1, 2)" : "",
                                         " ORDER BY seq DESC LIMIT ?1 OFFSET ?2")));
  select.BindInt64(1, limit);
  select.BindInt64(2, offset);
  std::vector<TrainingJobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step("listing training jobs"));
    if (!row) break;
    jobs.push_back(ReadTrainingJob(select));
  }
  return jobs;
}

absl::StatusOr<SqliteTrainingJobStore::LeaseState> SqliteTrainingJobStore::LoadUnfinishedLease(
    const std::string& job_id, const std::string& operation) {
  ASSIGN_OR_RETURN(Statement select, database_.Prepare("SELECT state, lease_holder, "
                                                       "lease_expires_unix_s, cancel_requested "
                                                       "FROM training_jobs WHERE id = ?1"));
  select.BindText(1, job_id);
  ASSIGN_OR_RETURN(const bool row, select.Step(operation));
  if (!row) return store_internal::TrainingJobNotFound(job_id);
  LeaseState lease;
  lease.state = static_cast<JobState>(select.ColumnInt(0));
  if (IsTerminal(lease.state)) return store_internal::TrainingJobEnded(job_id, lease.state);
  lease.holder = select.ColumnText(1);
  lease.expires_unix_s = select.ColumnDouble(2);
  lease.cancel_requested = select.ColumnInt(3) != 0;
  return lease;
}

absl::StatusOr<std::optional<ClaimedTrainingJob>> SqliteTrainingJobStore::ClaimTrainingJob(
    const std::string& holder, double now_unix_s, double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  constexpr absl::string_view kOperation = "claiming a training job";
  absl::MutexLock lock(&database_.mutex());
  // BEGIN IMMEDIATE: claimers in other processes wait for this one's commit, so the row read
  // free here is still free when its lease is written.
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, kOperation));
  ClaimedTrainingJob claimed;
  {
    ASSIGN_OR_RETURN(Statement select,
                     database_.Prepare(absl::StrCat(
                         "SELECT ", kTrainingJobColumns,
                         ", cancel_requested FROM training_jobs WHERE state IN (?1, ?2) AND "
                         "lease_expires_unix_s <= ?3 ORDER BY seq LIMIT 1")));
    select.BindInt64(1, static_cast<int64_t>(JobState::kQueued));
    select.BindInt64(2, static_cast<int64_t>(JobState::kRunning));
    select.BindDouble(3, now_unix_s, "now_unix_s");
    ASSIGN_OR_RETURN(const bool row, select.Step(kOperation));
    if (!row) return std::nullopt;
    claimed.job = ReadTrainingJob(select);
    claimed.cancel_requested = select.ColumnInt(kTrainingJobColumnCount) != 0;
  }
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET lease_holder = ?2, "
                                       "lease_expires_unix_s = ?3 WHERE id = ?1"));
    update.BindText(1, claimed.job.id);
    update.BindText(2, holder);
    update.BindDouble(3, expires_unix_s, "expires_unix_s");
    RETURN_IF_ERROR(update.Run(kOperation));
  }
  RETURN_IF_ERROR(transaction.Commit(kOperation));
  return claimed;
}

absl::StatusOr<LeaseRenewal> SqliteTrainingJobStore::RenewTrainingLease(const std::string& job_id,
                                                                        const std::string& holder,
                                                                        double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  const std::string operation = absl::StrCat("renewing the lease of training job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const LeaseState lease, LoadUnfinishedLease(job_id, operation));
  if (lease.holder != holder) return store_internal::LeaseNotHeld(job_id, holder);
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET lease_expires_unix_s = ?2 "
                                       "WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindDouble(2, expires_unix_s, "expires_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return LeaseRenewal{lease.cancel_requested};
}

absl::Status SqliteTrainingJobStore::ReleaseTrainingLease(const std::string& job_id,
                                                          const std::string& holder) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  const std::string operation = absl::StrCat("releasing the lease of training job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const JobState state, LoadState(job_id));
  // An ended job holds no lease (FinishTrainingJob clears it); another holder's stays.
  if (IsTerminal(state)) return absl::OkStatus();
  {
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET lease_holder = '', "
                                       "lease_expires_unix_s = 0 WHERE id = ?1 AND "
                                       "lease_holder = ?2"));
    update.BindText(1, job_id);
    update.BindText(2, holder);
    RETURN_IF_ERROR(update.Run(operation));
  }
  return transaction.Commit(operation);
}

absl::StatusOr<CancelRequestOutcome> SqliteTrainingJobStore::RequestTrainingCancel(
    const std::string& job_id, double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  const std::string operation = absl::StrCat("cancelling training job ", job_id);
  absl::MutexLock lock(&database_.mutex());
  ASSIGN_OR_RETURN(Transaction transaction, database_.Begin(/*write=*/true, operation));
  ASSIGN_OR_RETURN(const LeaseState lease, LoadUnfinishedLease(job_id, operation));
  const bool ends_now = lease.state == JobState::kQueued && lease.expires_unix_s <= now_unix_s;
  if (ends_now) {
    // As FinishTrainingJob(kCancelled) without a predictor would end it (a queued job has
    // no predictor version or metrics to clear).
    ASSIGN_OR_RETURN(Statement update,
                     database_.Prepare("UPDATE training_jobs SET state = ?2, error = ?3, "
                                       "finished_unix_s = ?4, lease_holder = '', "
                                       "lease_expires_unix_s = 0 WHERE id = ?1"));
    update.BindText(1, job_id);
    update.BindInt64(2, static_cast<int64_t>(JobState::kCancelled));
    update.BindText(3, store_internal::kTrainingCancelledError);
    update.BindDouble(4, now_unix_s, "now_unix_s");
    RETURN_IF_ERROR(update.Run(operation));
  } else {
    ASSIGN_OR_RETURN(Statement update, database_.Prepare("UPDATE training_jobs SET "
                                                         "cancel_requested = 1 WHERE id = ?1"));
    update.BindText(1, job_id);
    RETURN_IF_ERROR(update.Run(operation));
  }
  RETURN_IF_ERROR(transaction.Commit(operation));
  return ends_now ? CancelRequestOutcome::kEnded : CancelRequestOutcome::kRequested;
}

}  // namespace apq::server
