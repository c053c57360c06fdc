// The records the store keeps: search jobs and their candidates, devices' cost tables,
// measurement datasets, trained predictors and the jobs that train them, API tokens, and
// engines' artifacts. Plain values; the interfaces that persist them are in job_store.h,
// device_store.h, dataset_store.h, predictor_store.h, training_job_store.h, token_store.h and
// artifact_store.h, bundled by store.h.
#ifndef APQ_SERVER_STORE_RECORDS_H_
#define APQ_SERVER_STORE_RECORDS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace apq::server {

// The largest `limit` of a page of jobs, candidates or training jobs.
inline constexpr int kMaxPageSize = 10000;

// Values match apq.v1.JobState.
enum class JobState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };

bool IsTerminal(JobState state);

// How a candidate's accuracy was measured (a finalist of a job's verification stage).
struct CandidateMeasurement {
  double accuracy = 0.0;  // In [0, 1].
  // E.g. "fp32" or "quant-from-supernet" (oface/measurement_csv.h); not empty.
  std::string method;
  std::string split;     // The images, e.g. "validation" (oface/fashion_mnist.h); not empty.
  double seconds = 0.0;  // Time the measurement took (>= 0).
};

// One distinct network of a job (a job stores each network it met once, with its count).
struct CandidateRecord {
  int64_t id = 0;      // Assigned by the store, ascending in order of insertion.
  int generation = 0;  // The generation that first met the network.
  // Times the search met the network (>= 1): each feasible child scored and each infeasible
  // draw rejected that was this network. A row's figures are those of its first report: a
  // network's figures do not change within a job (its table and predictor are pinned).
  int64_t times_seen = 1;
  std::string config_json;  // The space's canonical JSON: a network's identity in its job.
  std::optional<double> accuracy;
  std::optional<double> latency_ms;
  std::optional<double> energy_mj;
  std::optional<double> size_mb;
  std::optional<double> bitops;
  bool feasible = true;
  // Metrics priced by an analytic model rather than looked up, comma-separated
  // (e.g. "latency_ms,energy_mj"); empty when every figure is from the table.
  std::string modelled;
  // On the job's Pareto front of accuracy against its front cost (set when the job ends;
  // filled by ListCandidates only).
  bool on_pareto_front = false;
  // Set by JobStore::RecordVerification (ignored by AppendGenerations).
  std::optional<CandidateMeasurement> measured;
};

// What a job does while it runs (apq.v1.JobStage values).
enum class JobStage {
  kSearch = 1,        // The engine runs; AppendGenerations stores its steps.
  kVerification = 2,  // The engine has finished; the finalists are being measured.
};

struct JobRecord {
  std::string id;  // Assigned by CreateJob ("job-<n>").
  std::string space;
  std::string device;
  int64_t table_version = 0;
  std::string predictor_version;
  std::string request;  // Serialized apq.v1.SubmitSearchRequest with defaults filled in.
  JobState state = JobState::kQueued;
  std::string error;
  int generations_done = 0;  // Generations whose candidates are stored.
  // Feasible children scored, all generations: the sum of times_seen over the job's
  // feasible rows.
  int64_t candidates_evaluated = 0;
  // Infeasible draws rejected, all generations. Only a job that keeps every draw
  // (SubmitSearchRequest.keep_all_draws) stores them as rows; then this is the sum of
  // times_seen over its infeasible rows. (A job stored before schema 8 counted only the draws
  // it kept: at most the population size per generation.)
  int64_t rejected_draws = 0;
  // The best as AppendGenerations stored it (the engine's, by predicted accuracy), with the
  // measurement and times_seen of its candidate row when that has one (else none and 1).
  std::optional<CandidateRecord> best;
  // kVerification from JobStore::BeginVerification on (it stays after the job ends).
  JobStage stage = JobStage::kSearch;
  int verification_finalists = 0;  // Finalists to measure, as BeginVerification set it.
  int verification_measured = 0;   // Finalists measured (RecordVerification).
  // The candidate row that the latest RecordVerification named the measured best, with its
  // measurement; unset before.
  std::optional<CandidateRecord> verified_best;
  double created_unix_s = 0;
  double started_unix_s = 0;
  double finished_unix_s = 0;
  double elapsed_s = 0;
  // Candidates on the job's Pareto front (set when the job ends).
  int64_t pareto_front_size = 0;
  // The engine's own figures after the last stored step (search::StepReport::metrics: a
  // training engine's losses, expected cost, entropy...), in the engine's order.
  std::vector<std::pair<std::string, double>> engine_metrics;
  // The engine's opaque state after `generations_done` generations, for resuming.
  std::string checkpoint;
  // The sweep the job belongs to (JobStore::CreateSweep), else empty.
  std::string sweep_id;
  // The id of the token that submitted the job (TokenRecord::id); empty when the server ran
  // without authentication.
  std::string owner;
  // The request's label (SubmitSearchRequest.label), kept beside it so that jobs can be listed
  // by it. A job stored before schema 14 has none until the server copies it from its request
  // (JobStore::JobsWithoutLabel).
  std::string label;
};

// A job a replica claimed (JobStore::ClaimJob).
struct ClaimedJob {
  std::string job_id;
  JobState state = JobState::kQueued;  // kRunning: another holder's lease expired.
  bool cancel_requested = false;       // JobStore::RequestCancel was called before.
};

// What a lease's renewal tells its holder (JobStore::RenewLease).
struct LeaseRenewal {
  bool cancel_requested = false;
};

// What JobStore::RequestCancel did.
enum class CancelRequestOutcome {
  kEnded = 1,      // The job was queued and unclaimed: it is CANCELLED now.
  kRequested = 2,  // Its holder will stop it (or the next claimer, at once).
};

// What an API token may do (server/auth.h). Stored as these numbers.
enum class Role {
  kViewer = 1,     // Reads everything.
  kSubmitter = 2,  // Reads; submits, evaluates and cancels its own jobs.
  kHardware = 3,   // Reads; uploads devices' cost tables.
  kAdmin = 4,      // Everything: predictors, datasets, training, tokens, any job.
};

// "viewer", "submitter", "hardware", "admin".
const char* RoleName(Role role);
// INVALID_ARGUMENT naming the choices for an unknown name.
absl::StatusOr<Role> RoleFromName(std::string_view name);

// An API token. The secret is never stored, only its SHA-256.
struct TokenRecord {
  std::string id;    // Public and unique; chosen by the caller ("tok-<hex>").
  std::string name;  // Who holds it.
  Role role = Role::kViewer;
  std::string secret_sha256;  // Lowercase hex, 64 characters.
  double created_unix_s = 0;
  std::string created_by;     // The id of the token that created it, or "bootstrap".
  double revoked_unix_s = 0;  // 0 while the token is valid.
};

// What JobStore::CreateSweep assigned.
struct SweepIds {
  std::string sweep_id;              // "sweep-<n>", n the number of its first job.
  std::vector<std::string> job_ids;  // In the order of the jobs given.
};

// What one group commit adds to a job: the generations first_generation..last_generation,
// stored atomically with the engine's checkpoint after the last of them.
struct GenerationBatch {
  // The first generation must be the job's next one (0 for the first batch, then
  // generations_done + 1); last_generation >= first_generation.
  int first_generation = 0;
  int last_generation = 0;
  // The networks these generations met, each with its count (times_seen) and the
  // generation, in [first_generation, last_generation], that met it first. A network may
  // appear more than once, and may be stored already: the store adds the counts to its row.
  std::vector<CandidateRecord> candidates;
  int64_t candidates_evaluated = 0;     // Running total after the last generation.
  int64_t rejected_draws = 0;           // Running total after the last generation.
  std::optional<CandidateRecord> best;  // Best feasible so far.
  // When >= 0, `best` is candidates[best_batch_index] and gets the id of its row; otherwise
  // best->id is stored as given (a best stored by an earlier batch).
  int best_batch_index = -1;
  std::string checkpoint;  // Resumes the engine after last_generation.
  double elapsed_s = 0;    // Running time so far.
  // Replaces the job's engine_metrics: at most kMaxEngineMetrics, names of 1 to 64 characters
  // of [a-z0-9_], each once, finite values.
  std::vector<std::pair<std::string, double>> engine_metrics;
};
inline constexpr size_t kMaxEngineMetrics = 16;

enum class CandidateOrder {
  kId,  // Order of evaluation.
  kAccuracyDesc,
  kLatencyAsc,
  kEnergyAsc,
  kSizeAsc,
  kBitopsAsc,
};

// The figure `order` sorts by; null for id order.
std::optional<double> CandidateRecord::*CandidateOrderMetric(CandidateOrder order);

// A position in a listing of candidates: the last row of the page before, by its id and the
// value it sorts by (unset for CandidateOrder::kId, or when the row has no such figure).
struct CandidateCursor {
  int64_t id = 0;
  std::optional<double> key;
};

// A page of ListJobs: newest first.
struct JobQuery {
  std::optional<JobState> state;      // Unset: every state.
  std::optional<std::string> owner;   // Unset: every owner.
  std::optional<std::string> space;   // Unset: every space.
  std::optional<std::string> device;  // Unset: every device.
  std::optional<std::string> label;   // Unset: every label.
  // Keyset paging: the jobs older than this one (which need not be listed or undeleted any
  // more); jobs submitted while a client pages never shift the pages after.
  std::string after_job;
  int64_t offset = 0;
  int limit = 50;
};

struct CandidateQuery {
  std::string job_id;
  CandidateOrder order = CandidateOrder::kId;
  std::optional<bool> feasible;  // Unset: both.
  bool pareto_front_only = false;
  int64_t offset = 0;
  int limit = 100;
  // Keyset paging: the page holds the rows after this one in the order (offset must be 0).
  // Rows stored meanwhile that sort after it are included; every row stored for the whole
  // listing is listed once, unlike with offsets while the job adds rows.
  std::optional<CandidateCursor> after;
};

struct CandidatePage {
  std::vector<CandidateRecord> candidates;
  int64_t total = 0;  // Matching rows in all pages.
};

struct TableFileRecord {
  std::string name;
  std::string content;
};

struct TableVersionRecord {
  std::string device;
  int64_t version = 0;  // Assigned by AddTableVersion: 1, 2, ... per device.
  int format = 0;       // apq.v1.TableFormat value.
  int64_t entries = 0;
  double uploaded_unix_s = 0;
  std::string sha256;
  std::string description;
  std::vector<TableFileRecord> files;  // Empty in listings; filled by GetTableVersion.
};

// A named set of measured (config, accuracy) records of one space: the accuracy predictors'
// training data (e.g. the measurements of a trained supernet's subnets).
struct DatasetRecord {
  std::string name;
  std::string space;
  std::string description;
  double created_unix_s = 0;
  int64_t records = 0;       // Filled by GetDataset and ListDatasets.
  int64_t fp32_records = 0;  // Of them, measured at full precision (method "fp32").
  // The split every record was measured on (filled by GetDataset and ListDatasets; empty when
  // the dataset has no record or its records do not say).
  std::string split;
};

struct MeasurementRow {
  int64_t id = 0;           // Assigned by the store, ascending in order of insertion.
  std::string config_json;  // The space's canonical JSON of the config.
  double accuracy = 0.0;    // In [0, 1].
  // How it was measured, e.g. "fp32" or "quant-from-supernet" (oface/measurement_csv.h).
  std::string method;
  double seconds = 0.0;  // Time spent measuring it (>= 0).
  uint64_t seed = 0;     // Seed of the job that sampled it.
  // The images it was measured on: "train", "validation", "test" (oface/fashion_mnist.h), or
  // empty when not recorded. Every row of a dataset has the same split.
  std::string split;
  double created_unix_s = 0;
};

// A measurement run (MeasurementRunStore): many subnets measured by workers that claim its
// tasks, each record written to `dataset`.
struct MeasurementRunRecord {
  std::string id;       // Assigned by CreateMeasurementRun ("measure-<n>").
  std::string dataset;  // Where the records go; it holds `space`.
  std::string space;
  std::string method;  // "fp32" or "quant-from-supernet" (oface/measurement_csv.h).
  std::string split;   // "validation" or "test".
  uint64_t seed = 0;   // The sampling and calibration seed, in every record.
  // What a worker needs besides the tasks, as the launcher wrote it (server/measure_worker:
  // the supernet's weights, image counts, batch sizes), opaque to the store.
  std::string settings;
  std::string launcher;  // SetMeasurementRunLauncher's note; empty before.
  // Claims of one task before it settles as failed, a claim whose lease expired (its worker
  // died) counting as one; set at creation.
  int max_attempts = 3;
  JobState state = JobState::kQueued;
  int64_t tasks_total = 0;
  int64_t tasks_done = 0;    // Settled with a record.
  int64_t tasks_failed = 0;  // Settled without one (FailMeasurementTask's last attempt).
  int64_t tasks_held = 0;    // Claimed by a worker whose lease has not been given up.
  double created_unix_s = 0;
  double finished_unix_s = 0;  // When the run ended; 0 before.
  std::string error;           // The first failed task's error ("task <i>: ..."), when any failed.
};

// The most tasks of one measurement run.
inline constexpr int64_t kMaxMeasurementTasks = 100000;

// One config of a measurement run, as a worker claims it.
struct MeasurementTask {
  int64_t id = 0;  // Unique in the store.
  std::string run_id;
  int64_t index = 0;  // Its place in the run's configs (0-based).
  std::string config_json;
  int attempts = 0;  // Claims so far, this one included.
};

// A job that trains an accuracy predictor from a dataset (server/training_manager.h).
struct TrainingJobRecord {
  std::string id;  // Assigned by CreateTrainingJob ("train-<n>").
  std::string space;
  std::string dataset;
  std::string request;  // Serialized apq.v1.TrainPredictorRequest with defaults filled in.
  JobState state = JobState::kQueued;
  std::string error;
  // Progress: the stage running ("fp32", "quantized", "xgboost"), its epochs done and
  // planned, and its latest validation RMSE.
  std::string stage;
  int epoch = 0;
  int max_epochs = 0;
  double validation_rmse = 0.0;
  std::string predictor_version;    // Set when it succeeded.
  std::string metrics_json = "{}";  // The predictor's metrics, when it succeeded.
  double created_unix_s = 0;
  double started_unix_s = 0;
  double finished_unix_s = 0;
};

// A training job as ClaimTrainingJob hands it to a replica.
struct ClaimedTrainingJob {
  TrainingJobRecord job;
  bool cancel_requested = false;  // RequestTrainingCancel was called before the claim.
};

// A trained accuracy predictor of a space, stored with how it was made and how well it does.
struct PredictorRecord {
  std::string space;
  std::string version;  // Unique per space, e.g. the predictor's content hash.
  // What `artifact` holds, e.g. "mlp-raw-f32" (server/predictor_artifact.h) or "xgboost-json".
  std::string kind;
  std::string artifact;
  std::string metrics_json = "{}";  // Held-out metrics and training report.
  std::string dataset;              // The dataset it was trained on ("" when shipped).
  double created_unix_s = 0;
  bool is_default = false;  // At most one per space.
};

// The bounds of an ArtifactRecord's fields (ArtifactStore::PutArtifact refuses a record out
// of them).
inline constexpr size_t kMaxArtifactKindBytes = 64;
inline constexpr size_t kMaxArtifactKeyBytes = 512;
inline constexpr size_t kMaxArtifactProvenanceBytes = size_t{64} << 10;  // 64 KiB.
inline constexpr size_t kMaxArtifactContentTypeBytes = 128;
inline constexpr size_t kMaxArtifactBytes = size_t{512} << 20;  // 512 MiB.

// A blob an engine produced or caches, with where it came from: e.g. a measured sensitivity
// matrix cached per (supernet version, architecture, calibration set), a solver's report for
// a job, a fine-tuned TorchScript module a job produced. Immutable once stored.
struct ArtifactRecord {
  // What it is, e.g. "iqp_sensitivity": 1 to 64 characters of [a-z0-9_].
  std::string kind;
  // Unique within its kind: 1 to 512 bytes, none a control character (0x00-0x1f, 0x7f).
  std::string key;
  // The job whose output it is (deleted with it), or empty for a shared one (a cache entry).
  std::string job_id;
  std::string space;            // The search space it belongs to; may be empty.
  double created_unix_s = 0.0;  // Finite, >= 0.
  // JSON text describing where it came from (not parsed by the store); at most 64 KiB.
  std::string provenance;
  // E.g. "application/json", "application/x-torchscript"; at most 128 bytes.
  std::string content_type;
  std::string bytes;  // The blob; at most 512 MiB. Empty in listings.
  // bytes.size() as stored, filled on every read (listings too); ignored by PutArtifact.
  int64_t size_bytes = 0;
};

// The key of a network among a job's candidate rows (their network_hash column): the 64-bit
// FNV-1a hash of its config_json's bytes, as a signed integer. Stable across builds and
// machines: stored hashes are compared with new ones.
int64_t NetworkHash(absl::string_view config_json);

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_RECORDS_H_
