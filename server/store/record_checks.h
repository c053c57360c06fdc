// Argument checks and error statuses shared by the store backends, so that every backend
// refuses the same arguments with the same codes and messages. Internal to //server/store.
#ifndef APQ_SERVER_STORE_RECORD_CHECKS_H_
#define APQ_SERVER_STORE_RECORD_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/records.h"

namespace apq::server::store_internal {

// INVALID_ARGUMENT unless offset >= 0 and 1 <= limit <= kMaxPageSize.
absl::Status CheckPage(int64_t offset, int limit);
// INVALID_ARGUMENT for a cursor with an offset, or with a NaN key.
absl::Status CheckCursor(const CandidateQuery& query);
// True for the values JobState names.
bool IsValidState(JobState state);
bool IsValidOrder(CandidateOrder order);
// INVALID_ARGUMENT naming `method` unless `state` is terminal.
absl::Status CheckTerminal(JobState state, absl::string_view method);
// The checks of JobStore::AppendGenerations that need no stored row: INVALID_ARGUMENT for
// generations out of order, a candidate's generation outside the batch or times_seen < 1,
// negative running totals, and a best_batch_index out of range or without a best. NaN
// figures are the backends' to refuse as they store them.
absl::Status CheckGenerationBatch(const GenerationBatch& batch);
// "appending generations <first>..<last> to job <id>" (or "generation <n>" for one), for
// errors.
std::string AppendOperation(const std::string& job_id, const GenerationBatch& batch);
// INVALID_ARGUMENT for an id given twice.
absl::Status CheckDistinctIds(const std::vector<int64_t>& ids);
// INVALID_ARGUMENT for an empty device name or two files with one name.
absl::Status CheckTableVersion(const TableVersionRecord& table);
// INVALID_ARGUMENT for an empty name or space.
absl::Status CheckDataset(const DatasetRecord& dataset);
// The checks of DatasetStore::AddMeasurements that need no stored rows, naming the row.
absl::Status CheckMeasurementRows(const std::vector<MeasurementRow>& rows);
// INVALID_ARGUMENT for an empty space, version or kind.
absl::Status CheckPredictor(const PredictorRecord& predictor);
// INVALID_ARGUMENT for a state that is not terminal or a predictor for a job that failed.
absl::Status CheckTrainingEnd(JobState state, const PredictorRecord* predictor);
// The figures of a candidate, by their names in errors.
inline constexpr std::pair<const char*, std::optional<double> CandidateRecord::*>
    kCandidateFigures[] = {{"accuracy", &CandidateRecord::accuracy},
                           {"latency_ms", &CandidateRecord::latency_ms},
                           {"energy_mj", &CandidateRecord::energy_mj},
                           {"size_mb", &CandidateRecord::size_mb},
                           {"bitops", &CandidateRecord::bitops}};
// CheckNotNan of each of the candidate's figures, named "<what> <figure>".
absl::Status CheckFiguresNotNan(const CandidateRecord& candidate, absl::string_view what,
                                absl::string_view operation);
// INVALID_ARGUMENT "<operation>: <field> is NaN" for a NaN.
absl::Status CheckNotNan(double value, absl::string_view field, absl::string_view operation);

// INVALID_ARGUMENT for a measurement whose accuracy is NaN or outside [0, 1], whose seconds
// are negative or NaN, or whose method or split is empty.
absl::Status CheckCandidateMeasurement(const CandidateMeasurement& measurement);
// INVALID_ARGUMENT for finalists < 1.
absl::Status CheckFinalists(int finalists);
// BeginVerification's checks on an unfinished job of `stage` holding `held_finalists`:
// true when the write is to be made, false when it is made already (same count).
absl::StatusOr<bool> CheckBeginVerification(const std::string& job_id, int finalists,
                                            JobStage stage, int held_finalists);
// The state RecordVerification checks: the unfinished job's stage and counts, and its
// feasible candidate rows of the two ids (null when the id is no feasible candidate of it).
struct VerificationTarget {
  JobStage stage = JobStage::kSearch;
  int finalists = 0;
  int measured = 0;
  const CandidateRecord* candidate = nullptr;
  const CandidateRecord* verified_best = nullptr;
};
// RecordVerification's checks after CheckCandidateMeasurement: true when the candidate is
// measured for the first time, false when it holds `measurement` already.
absl::StatusOr<bool> CheckRecordVerification(const std::string& job_id, int64_t candidate_id,
                                             const CandidateMeasurement& measurement,
                                             int64_t verified_best_id,
                                             const VerificationTarget& target);

absl::Status JobNotFound(const std::string& job_id);
absl::Status TrainingJobNotFound(const std::string& job_id);
// FAILED_PRECONDITION for a write to a job that has ended.
absl::Status JobEnded(const std::string& job_id, JobState state);
// FAILED_PRECONDITION for deleting a job that has not ended.
absl::Status JobNotEnded(const std::string& job_id, JobState state);
absl::Status TrainingJobEnded(const std::string& job_id, JobState state);
// FAILED_PRECONDITION for a generation of a job whose search stage has ended.
absl::Status SearchStageEnded(const std::string& job_id);
absl::Status GenerationOutOfOrder(const std::string& job_id, int64_t expected, int got);
// INVALID_ARGUMENT for a front id that is no feasible candidate of the job.
absl::Status NotAFrontCandidate(const std::string& job_id, int64_t id);
absl::Status DeviceNotFound(const std::string& device);
// NOT_FOUND for GetTableVersion of an unknown device or version (0: latest).
absl::Status TableVersionNotFound(const std::string& device, int64_t version, bool device_known);
absl::Status DatasetNotFound(const std::string& name);
absl::Status DatasetExists(const std::string& name);
// FAILED_PRECONDITION for rows[index], measured on another split than the dataset's
// (`held_split`) or than rows[0]: a dataset mixes no splits.
absl::Status SplitMismatch(const std::string& dataset, size_t index, const MeasurementRow& row,
                           const std::string& held_split);
// SplitMismatch for the first row of `rows` whose split differs from `held_split`; `held_split`
// null means the dataset holds no row yet (then rows[0] sets the split).
absl::Status CheckRowsSplit(const std::string& dataset, const std::vector<MeasurementRow>& rows,
                            const std::string* held_split);
// ALREADY_EXISTS for rows[index], whose (method, config) the dataset holds.
absl::Status MeasurementStored(const std::string& dataset, size_t index, const MeasurementRow& row);
absl::Status PredictorNotFound(const std::string& space, const std::string& version);
// TokenStore::AddToken's checks of the record alone.
absl::Status CheckToken(const TokenRecord& token);
absl::Status TokenNotFound(const std::string& id);
absl::Status TokenExists(const std::string& id);
absl::Status TokenRevoked(const std::string& id);
absl::Status PredictorExists(const PredictorRecord& predictor);
absl::Status NoDefaultPredictor(const std::string& space);
// ArtifactStore::PutArtifact's checks of the record alone: INVALID_ARGUMENT
// "artifact <field>: ..." for the first field out of the bounds of ArtifactRecord.
absl::Status CheckArtifact(const ArtifactRecord& artifact);
absl::Status ArtifactNotFound(const std::string& kind, const std::string& key);
absl::Status ArtifactExists(const std::string& kind, const std::string& key);

// The longest lease holder name, in bytes (JobStore's and TrainingJobStore's leases).
inline constexpr size_t kMaxLeaseHolderBytes = 256;
// INVALID_ARGUMENT "lease holder: ..." for an empty holder or one longer than
// kMaxLeaseHolderBytes.
absl::Status CheckLeaseHolder(const std::string& holder);
// INVALID_ARGUMENT "lease now_unix_s: ..." or "lease expires_unix_s: ..." for a NaN time and
// for expires_unix_s <= now_unix_s (JobStore::ClaimJob, TrainingJobStore::ClaimTrainingJob).
absl::Status CheckLeaseTimes(double now_unix_s, double expires_unix_s);
// INVALID_ARGUMENT "lease <field>: is NaN" for a NaN time, where the call has one time only
// (RenewLease's and RenewTrainingLease's expires_unix_s, RequestCancel's and
// RequestTrainingCancel's now_unix_s).
absl::Status CheckLeaseTime(double unix_s, absl::string_view field);
// FAILED_PRECONDITION for RenewLease (or RenewTrainingLease) by a holder that lost (or never
// had) the job's lease.
absl::Status LeaseNotHeld(const std::string& job_id, const std::string& holder);
// The error of a training job that RequestTrainingCancel ends at once.
inline constexpr char kTrainingCancelledError[] = "cancelled by request";

// Measurement runs (MeasurementRunStore).

// How a measurement task stands, as every backend stores it.
enum class MeasurementTaskStatus {
  kPending = 1,    // Free to claim.
  kHeld = 2,       // Claimed; free again once its lease expires.
  kDone = 3,       // Settled with a record (CompleteMeasurementTask).
  kFailed = 4,     // Settled without one (FailMeasurementTask's last attempt).
  kCancelled = 5,  // Unsettled when its run was cancelled.
};
// The bounds of a run's settings and launcher note, of the tasks one claim takes, of
// FailMeasurementTask's max_attempts, and of a failed task's error kept.
inline constexpr size_t kMaxMeasurementSettingsBytes = size_t{1} << 20;
inline constexpr size_t kMaxMeasurementLauncherBytes = 256;
inline constexpr int kMaxMeasurementTasksPerClaim = 1000;
inline constexpr int kMaxMeasurementAttempts = 100;
inline constexpr size_t kMaxMeasurementErrorBytes = 4096;

// CreateMeasurementRun's checks of its arguments alone: INVALID_ARGUMENT "measurement run
// <field>: ..." for an empty dataset, space, method or split, settings over
// kMaxMeasurementSettingsBytes, a NaN created_unix_s or a max_attempts outside
// [1, kMaxMeasurementAttempts], and "measurement run configs...: ..."
// for no configs, more than kMaxMeasurementTasks, or an empty or repeated configs[<i>].
absl::Status CheckMeasurementRun(const MeasurementRunRecord& run,
                                 const std::vector<std::string>& configs);
// FAILED_PRECONDITION for a run on a dataset whose records (when it holds any: `held_split`
// not null) were measured on another split than the run's: a dataset mixes no splits.
absl::Status CheckRunSplit(const std::string& dataset, const std::string* held_split,
                           const std::string& run_split);

// FAILED_PRECONDITION for a run whose dataset holds another space.
absl::Status DatasetOfAnotherSpace(const std::string& dataset, const std::string& dataset_space,
                                   const std::string& run_space);
// CompleteMeasurementTask's checks of `row` against the stored task and run: INVALID_ARGUMENT
// "task <i> of run <id>: <field> ..." for a config_json other than the task's, a method or
// split other than the run's, a NaN created_unix_s, and each check AddMeasurements makes of a
// row by itself (CheckMeasurementRows). The seed is not checked: the run's is stored.
absl::Status CheckMeasurementRow(const MeasurementTask& task, const MeasurementRunRecord& run,
                                 const MeasurementRow& row);
absl::Status MeasurementRunNotFound(const std::string& run_id);
// NOT_FOUND for a task id that is no task of the run.
absl::Status MeasurementTaskNotFound(const std::string& run_id, int64_t task_id);
// FAILED_PRECONDITION for a task `holder` does not hold (its lease was lost, it settled, or
// its run was cancelled).
absl::Status MeasurementTaskNotHeld(const std::string& run_id, int64_t task_id,
                                    const std::string& holder);
// FAILED_PRECONDITION for CancelMeasurementRun of a run that ended.
absl::Status MeasurementRunEnded(const std::string& run_id, JobState state);
// INVALID_ARGUMENT "launcher: ..." for a note over kMaxMeasurementLauncherBytes.
absl::Status CheckLauncher(const std::string& launcher);
// INVALID_ARGUMENT "max_tasks: ..." unless 1 <= max_tasks <= kMaxMeasurementTasksPerClaim.
absl::Status CheckMaxTasks(int max_tasks);
// INVALID_ARGUMENT "max_attempts: ..." unless 1 <= max_attempts <= kMaxMeasurementAttempts.
absl::Status CheckMaxAttempts(int max_attempts);
// A failed task's error as kept: its first kMaxMeasurementErrorBytes bytes, cut back to a
// UTF-8 character boundary (so that a backend storing text takes it).
std::string KeptTaskError(const std::string& error);
// The error kept for a task that settles as failed at a claim because its lease expired on
// its last attempt (MeasurementRunRecord::max_attempts): "its worker stopped renewing the
// lease <attempts> times (killed or out of memory?)".
std::string WorkerStoppedError(int attempts);
// The run's error for its first failed task: "task <index>: <kept error>".
std::string RunErrorOfTask(int64_t index, const std::string& kept_error);
// Ends `run` when its last task has settled: kSucceeded, or kFailed when any task failed,
// finished at `now_unix_s` (not NaN; -0.0 as 0.0).
void EndRunIfSettled(MeasurementRunRecord& run, double now_unix_s);

// A job's engine_metrics as the SQLite and PostgreSQL stores keep them: "name=value" lines,
// the values round-tripping (%.17g). Names are [a-z0-9_] (CheckGenerationBatch), so neither
// '=' nor a newline occurs in them.
std::string EncodeEngineMetrics(const std::vector<std::pair<std::string, double>>& metrics);
// The inverse; a line that does not parse is skipped (the figures are informative only).
std::vector<std::pair<std::string, double>> DecodeEngineMetrics(absl::string_view text);

}  // namespace apq::server::store_internal

#endif  // APQ_SERVER_STORE_RECORD_CHECKS_H_
