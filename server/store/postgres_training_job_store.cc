#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/postgres_database.h"
#include "server/store/postgres_stores.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

constexpr const char* kTrainingJobColumns =
    "id, space, dataset, request, state, error, stage, epoch, max_epochs, validation_rmse, "
    "predictor_version, metrics_json, created_unix_s, started_unix_s, finished_unix_s";
constexpr int kTrainingJobColumnCount = 15;

TrainingJobRecord ReadTrainingJob(const pqxx::row& row) {
  TrainingJobRecord job;
  job.id = FieldBytes(row[0]);
  job.space = FieldBytes(row[1]);
  job.dataset = FieldBytes(row[2]);
  job.request = FieldBytes(row[3]);
  job.state = static_cast<JobState>(FieldInt(row[4]));
  job.error = FieldBytes(row[5]);
  job.stage = FieldBytes(row[6]);
  job.epoch = static_cast<int>(FieldInt(row[7]));
  job.max_epochs = static_cast<int>(FieldInt(row[8]));
  job.validation_rmse = FieldDouble(row[9]);
  job.predictor_version = FieldBytes(row[10]);
  job.metrics_json = FieldBytes(row[11]);
  job.created_unix_s = FieldDouble(row[12]);
  job.started_unix_s = FieldDouble(row[13]);
  job.finished_unix_s = FieldDouble(row[14]);
  return job;
}

// The job's state, its row locked until the caller's write transaction ends: a write that
// checks the state is not interleaved with another that changes it. NOT_FOUND for an unknown
// job.
absl::StatusOr<JobState> LockState(PostgresTransaction& tx, const std::string& job_id) {
  ASSIGN_OR_RETURN(const pqxx::result rows,
                   tx.Exec("SELECT state FROM training_jobs WHERE id = $1 FOR UPDATE",
                           PostgresParams().Bytes(job_id)));
  if (rows.empty()) return store_internal::TrainingJobNotFound(job_id);
  return static_cast<JobState>(FieldInt(rows[0][0]));
}

}  // namespace

absl::StatusOr<std::string> PostgresTrainingJobStore::CreateTrainingJob(
    const TrainingJobRecord& job) {
  std::string id;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, "creating a training job",
      [&](PostgresTransaction& tx) -> absl::Status {
        // Ids are numbered from the stored ones: replicas creating jobs take turns.
        RETURN_IF_ERROR(tx.Lock(PostgresLock::kTrainingJobIds));
        ASSIGN_OR_RETURN(const pqxx::result next,
                         tx.Exec("SELECT COALESCE(MAX(seq), 0) + 1 FROM training_jobs"));
        if (next.empty()) {
          return absl::InternalError(absl::StrCat(tx.operation(), ": no sequence number"));
        }
        const int64_t seq = FieldInt(next[0][0]);
        id = absl::StrCat("train-", seq);
        return tx
            .Run(
                "INSERT INTO training_jobs (id, seq, space, dataset, request, state, "
                "created_unix_s) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                PostgresParams()
                    .Bytes(id)
                    .Int(seq)
                    .Bytes(job.space)
                    .Bytes(job.dataset)
                    .Bytes(job.request)
                    .Int(static_cast<int64_t>(JobState::kQueued))
                    .Double(job.created_unix_s, "created_unix_s"))
            .status();
      }));
  return id;
}

absl::Status PostgresTrainingJobStore::MarkTrainingRunning(const std::string& job_id,
                                                           double started_unix_s) {
  return database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("marking training job ", job_id, " running"),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const JobState state, LockState(tx, job_id));
        if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
        // A job run again after a restart starts over: its progress is reset.
        return tx
            .Run(
                "UPDATE training_jobs SET state = $2, started_unix_s = $3, stage = ''::bytea, "
                "epoch = 0, max_epochs = 0, validation_rmse = 0 WHERE id = $1",
                PostgresParams()
                    .Bytes(job_id)
                    .Int(static_cast<int64_t>(JobState::kRunning))
                    .Double(started_unix_s, "started_unix_s"))
            .status();
      });
}

absl::Status PostgresTrainingJobStore::UpdateTrainingProgress(const std::string& job_id,
                                                              const std::string& stage, int epoch,
                                                              int max_epochs,
                                                              double validation_rmse) {
  return database_.Transact(
      PostgresDatabase::Mode::kWrite,
      absl::StrCat("recording the progress of training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const JobState state, LockState(tx, job_id));
        if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
        return tx
            .Run(
                "UPDATE training_jobs SET stage = $2, epoch = $3, max_epochs = $4, "
                "validation_rmse = $5 WHERE id = $1",
                PostgresParams()
                    .Bytes(job_id)
                    .Bytes(stage)
                    .Int(epoch)
                    .Int(max_epochs)
                    .Double(validation_rmse, "validation_rmse"))
            .status();
      });
}

absl::Status PostgresTrainingJobStore::FinishTrainingJob(const std::string& job_id, JobState state,
                                                         const std::string& error,
                                                         double finished_unix_s,
                                                         const PredictorRecord* predictor) {
  RETURN_IF_ERROR(store_internal::CheckTrainingEnd(state, predictor));
  return database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("finishing training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const JobState current, LockState(tx, job_id));
        if (IsTerminal(current)) return store_internal::TrainingJobEnded(job_id, current);
        if (predictor != nullptr) {
          // The predictor writes of every replica take turns (postgres_internal's contract).
          RETURN_IF_ERROR(tx.Lock(PostgresLock::kPredictors));
          ASSIGN_OR_RETURN(const bool stored, postgres_internal::PredictorStored(
                                                  tx, predictor->space, predictor->version));
          if (!stored) {
            RETURN_IF_ERROR(postgres_internal::InsertPredictor(tx, *predictor));
          } else if (predictor->is_default) {
            // Versions are content hashes: the job trained a predictor already stored.
            RETURN_IF_ERROR(
                postgres_internal::MakeDefault(tx, predictor->space, predictor->version));
          }
        }
        return tx
            .Run(
                "UPDATE training_jobs SET state = $2, error = $3, finished_unix_s = $4, "
                "predictor_version = $5, metrics_json = $6, lease_holder = '', "
                "lease_expires_unix_s = 0 WHERE id = $1",
                PostgresParams()
                    .Bytes(job_id)
                    .Int(static_cast<int64_t>(state))
                    .Bytes(error)
                    .Double(finished_unix_s, "finished_unix_s")
                    .Bytes(predictor != nullptr ? predictor->version : "")
                    .Bytes(predictor != nullptr ? predictor->metrics_json : "{}"))
            .status();
      });
}

absl::StatusOr<TrainingJobRecord> PostgresTrainingJobStore::GetTrainingJob(
    const std::string& job_id) {
  TrainingJobRecord job;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, absl::StrCat("reading training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kTrainingJobColumns,
                                              " FROM training_jobs WHERE id = $1"),
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return store_internal::TrainingJobNotFound(job_id);
        job = ReadTrainingJob(rows[0]);
        return absl::OkStatus();
      }));
  return job;
}

absl::StatusOr<std::vector<TrainingJobRecord>> PostgresTrainingJobStore::ListTrainingJobs(
    bool unfinished_only, int64_t offset, int limit) {
  RETURN_IF_ERROR(store_internal::CheckPage(offset, limit));
  std::vector<TrainingJobRecord> jobs;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kRead, "listing training jobs",
      [&](PostgresTransaction& tx) -> absl::Status {
        jobs.clear();
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec(absl::StrCat("SELECT ", kTrainingJobColumns, " FROM training_jobs",
                                              unfinished_only ? " WHERE state IN (1, 2)" : "",
                                              " ORDER BY seq DESC LIMIT $1 OFFSET $2"),
                                 PostgresParams().Int(limit).Int(offset)));
        for (const pqxx::row& row : rows) jobs.push_back(ReadTrainingJob(row));
        return absl::OkStatus();
      }));
  return jobs;
}

absl::StatusOr<std::optional<ClaimedTrainingJob>> PostgresTrainingJobStore::ClaimTrainingJob(
    const std::string& holder, double now_unix_s, double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
  std::optional<ClaimedTrainingJob> claimed;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, "claiming a training job",
      [&](PostgresTransaction& tx) -> absl::Status {
        claimed.reset();
        // SKIP LOCKED: a job another claimer is taking right now is passed over, not waited
        // for, so claimers never queue behind each other and never get one job twice (the
        // row stays locked until this transaction commits the new lease).
        ASSIGN_OR_RETURN(
            const pqxx::result rows,
            tx.Exec(absl::StrCat("SELECT ", kTrainingJobColumns,
                                 ", cancel_requested FROM training_jobs WHERE state IN "
                                 "($1::int4, $2::int4) AND lease_expires_unix_s <= $3::float8 "
                                 "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"),
                    PostgresParams()
                        .Int(static_cast<int64_t>(JobState::kQueued))
                        .Int(static_cast<int64_t>(JobState::kRunning))
                        .Double(now_unix_s, "now_unix_s")));
        if (rows.empty()) return absl::OkStatus();
        ClaimedTrainingJob job;
        job.job = ReadTrainingJob(rows[0]);
        job.cancel_requested = FieldBool(rows[0][kTrainingJobColumnCount]);
        RETURN_IF_ERROR(tx.Run("UPDATE training_jobs SET lease_holder = $2, "
                               "lease_expires_unix_s = $3 WHERE id = $1::bytea",
                               PostgresParams()
                                   .Bytes(job.job.id)
                                   .Bytes(holder)
                                   .Double(expires_unix_s, "expires_unix_s"))
                            .status());
        claimed = std::move(job);
        return absl::OkStatus();
      }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> PostgresTrainingJobStore::RenewTrainingLease(const std::string& job_id,
                                                                          const std::string& holder,
                                                                          double expires_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
  LeaseRenewal renewal;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("renewing the lease of training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT state, lease_holder, cancel_requested FROM "
                                 "training_jobs WHERE id = $1::bytea FOR UPDATE",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return store_internal::TrainingJobNotFound(job_id);
        const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
        if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
        if (FieldBytes(rows[0][1]) != holder) return store_internal::LeaseNotHeld(job_id, holder);
        renewal.cancel_requested = FieldBool(rows[0][2]);
        return tx
            .Run("UPDATE training_jobs SET lease_expires_unix_s = $2 WHERE id = $1::bytea",
                 PostgresParams().Bytes(job_id).Double(expires_unix_s, "expires_unix_s"))
            .status();
      }));
  return renewal;
}

absl::Status PostgresTrainingJobStore::ReleaseTrainingLease(const std::string& job_id,
                                                            const std::string& holder) {
  RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
  return database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("releasing the lease of training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT 1 FROM training_jobs WHERE id = $1::bytea",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return store_internal::TrainingJobNotFound(job_id);
        // An ended job holds no lease (FinishTrainingJob clears it); another holder's stays.
        return tx
            .Run(
                "UPDATE training_jobs SET lease_holder = '', lease_expires_unix_s = 0 WHERE id = "
                "$1::bytea AND lease_holder = $2::bytea AND state IN ($3::int4, $4::int4)",
                PostgresParams()
                    .Bytes(job_id)
                    .Bytes(holder)
                    .Int(static_cast<int64_t>(JobState::kQueued))
                    .Int(static_cast<int64_t>(JobState::kRunning)))
            .status();
      });
}

absl::StatusOr<CancelRequestOutcome> PostgresTrainingJobStore::RequestTrainingCancel(
    const std::string& job_id, double now_unix_s) {
  RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
  CancelRequestOutcome outcome = CancelRequestOutcome::kRequested;
  RETURN_IF_ERROR(database_.Transact(
      PostgresDatabase::Mode::kWrite, absl::StrCat("cancelling training job ", job_id),
      [&](PostgresTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(const pqxx::result rows,
                         tx.Exec("SELECT state, lease_expires_unix_s FROM training_jobs WHERE "
                                 "id = $1::bytea FOR UPDATE",
                                 PostgresParams().Bytes(job_id)));
        if (rows.empty()) return store_internal::TrainingJobNotFound(job_id);
        const auto state = static_cast<JobState>(FieldInt(rows[0][0]));
        if (IsTerminal(state)) return store_internal::TrainingJobEnded(job_id, state);
        const bool lease_free = FieldDouble(rows[0][1]) <= now_unix_s;
        if (state == JobState::kQueued && lease_free) {
          // As FinishTrainingJob(kCancelled) without a predictor would end it (a queued job
          // has no predictor version or metrics to clear).
          outcome = CancelRequestOutcome::kEnded;
          return tx
              .Run(
                  "UPDATE training_jobs SET state = $2, error = $3, finished_unix_s = $4, "
                  "lease_holder = '', lease_expires_unix_s = 0 WHERE id = $1::bytea",
                  PostgresParams()
                      .Bytes(job_id)
                      .Int(static_cast<int64_t>(JobState::kCancelled))
                      .Bytes(store_internal::kTrainingCancelledError)
                      .Double(now_unix_s, "now_unix_s"))
              .status();
        }
        outcome = CancelRequestOutcome::kRequested;
        return tx
            .Run("UPDATE training_jobs SET cancel_requested = TRUE WHERE id = $1::bytea",
                 PostgresParams().Bytes(job_id))
            .status();
      }));
  return outcome;
}

}  // namespace apq::server
