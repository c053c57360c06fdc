// The persistent record of the service: jobs, their candidates, devices and their cost
// tables. An interface so the job manager can be tested against a fault-injecting store;
// the product uses the SQLite implementation (sqlite_store.h).
//
// Contract shared by every method: on error nothing is changed (each write is one
// transaction). NOT_FOUND for an unknown job/device/version, INVALID_ARGUMENT for bad
// arguments, INTERNAL for a storage failure (the message carries SQLite's).
// Thread safety: implementations are safe to call from any thread.
#ifndef APQ_SERVER_STORE_H_
#define APQ_SERVER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace apq::server {

// Values match apq.v1.JobState.
enum class JobState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };

bool IsTerminal(JobState state);

struct CandidateRecord {
  int64_t id = 0;  // Assigned by the store, ascending in order of insertion.
  int generation = 0;
  std::string config_json;
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
  int64_t candidates_evaluated = 0;
  std::optional<CandidateRecord> best;
  double created_unix_s = 0;
  double started_unix_s = 0;
  double finished_unix_s = 0;
  double elapsed_s = 0;
  // Candidates on the job's Pareto front (computed when the job ends).
  int64_t pareto_front_size = 0;
  // The engine's opaque state after `generations_done` generations, for resuming.
  std::string checkpoint;
};

// What one generation adds to a job, stored atomically.
struct GenerationBatch {
  int generation = 0;  // Must be the job's generations_done + 1 (0 for the initial population).
  std::vector<CandidateRecord> candidates;
  int64_t candidates_evaluated = 0;     // Running total after this generation.
  std::optional<CandidateRecord> best;  // Best feasible so far.
  std::string checkpoint;
  double elapsed_s = 0;  // Running time so far.
};

enum class CandidateOrder {
  kId,  // Order of evaluation.
  kAccuracyDesc,
  kLatencyAsc,
  kEnergyAsc,
  kSizeAsc,
  kBitopsAsc,
};

struct CandidateQuery {
  std::string job_id;
  CandidateOrder order = CandidateOrder::kId;
  std::optional<bool> feasible;  // Unset: both.
  bool pareto_front_only = false;
  int64_t offset = 0;
  int limit = 100;
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
};

struct MeasurementRow {
  int64_t id = 0;           // Assigned by the store, ascending in order of insertion.
  std::string config_json;  // The space's canonical JSON of the config.
  double accuracy = 0.0;    // In [0, 1].
  // How it was measured, e.g. "fp32" or "quant-from-supernet" (oface/measurement_csv.h).
  std::string method;
  double seconds = 0.0;  // Time spent measuring it (>= 0).
  uint64_t seed = 0;     // Seed of the job that sampled it.
  double created_unix_s = 0;
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

class Store {
 public:
  virtual ~Store() = default;

  // Stores a new job in state kQueued; fills in and returns its id.
  virtual absl::StatusOr<std::string> CreateJob(const JobRecord& job) = 0;
  virtual absl::Status MarkRunning(const std::string& job_id, double started_unix_s) = 0;
  // Appends one generation (candidates, progress, best, checkpoint) in one transaction.
  // FAILED_PRECONDITION if batch.generation is not the next one or the job has ended.
  virtual absl::Status AppendGeneration(const std::string& job_id,
                                        const GenerationBatch& batch) = 0;
  // Moves a job to a terminal state. FAILED_PRECONDITION if it already ended. With
  // `pareto_cost` (an ascending cost order), the same transaction marks the job's Pareto
  // front: the feasible candidates, taken by ascending cost, whose accuracy beats every one
  // before them (one row per point: the first stored wins ties).
  virtual absl::Status FinishJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s, double elapsed_s,
                                 std::optional<CandidateOrder> pareto_cost) = 0;
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& job_id) = 0;
  // Newest first; `offset`/`limit` page through them. Checkpoints are not loaded.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(std::optional<JobState> state,
                                                          int64_t offset, int limit) = 0;
  virtual absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) = 0;

  // Stores a new immutable version of a device's table; returns the version number.
  virtual absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) = 0;
  // Every device name, ascending.
  virtual absl::StatusOr<std::vector<std::string>> ListDevices() = 0;
  // A device's versions ascending, without file contents. NOT_FOUND for an unknown device.
  virtual absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) = 0;
  // One version with its files; version 0 means the latest.
  virtual absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                             int64_t version) = 0;

  // Creates a dataset holding `rows`, in one transaction. INVALID_ARGUMENT for an empty name
  // or space and for bad rows (as AddMeasurements); ALREADY_EXISTS when the name is taken.
  virtual absl::Status CreateDataset(const DatasetRecord& dataset,
                                     const std::vector<MeasurementRow>& rows) = 0;
  virtual absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) = 0;
  // By name.
  virtual absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() = 0;
  // Appends `rows` to the dataset in one transaction (their ids are ignored). INVALID_ARGUMENT
  // naming the row (its index in `rows`) for an accuracy outside [0, 1] or NaN, a negative or
  // NaN seconds, an empty config or method, or a (method, config_json) pair that the dataset
  // already holds or that `rows` repeats. Nothing is stored on error.
  virtual absl::Status AddMeasurements(const std::string& dataset,
                                       const std::vector<MeasurementRow>& rows) = 0;
  // Stores a predictor; with is_default it becomes the space's default in the same
  // transaction. INVALID_ARGUMENT for an empty space, version or kind; ALREADY_EXISTS for a
  // (space, version) pair that is stored.
  virtual absl::Status AddPredictor(const PredictorRecord& predictor) = 0;
  // The space's predictors, oldest first, without their artifacts.
  virtual absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) = 0;
  // One predictor with its artifact; NOT_FOUND when unknown.
  virtual absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                                       const std::string& version) = 0;
  // The space's default predictor with its artifact; NOT_FOUND when the space has none.
  virtual absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) = 0;
  // Makes a stored predictor the space's default (the previous one stops being it).
  virtual absl::Status SetDefaultPredictor(const std::string& space,
                                           const std::string& version) = 0;

  // The space's stored predictors stop being its default (searches fall back to the shipped
  // one). No error when none was.
  virtual absl::Status ClearDefaultPredictor(const std::string& space) = 0;

  // The dataset's rows in id order, all methods or one.
  virtual absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) = 0;

  // Stores a new training job in state kQueued; returns its id.
  virtual absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) = 0;
  // Queued (or running, when a restarted server runs it again) to running.
  // FAILED_PRECONDITION for a job that has ended.
  virtual absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) = 0;
  // Records a running job's progress. FAILED_PRECONDITION for a job that has ended.
  virtual absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                              int epoch, int max_epochs,
                                              double validation_rmse) = 0;
  // Ends a job. With `predictor` (only for kSucceeded) the predictor is stored, and made the
  // space's default if it says so, in the same transaction: a job never succeeds without its
  // predictor, and a failed one leaves the predictors as they were. A predictor whose version
  // is stored already (versions are content hashes) is not stored twice. FAILED_PRECONDITION
  // if the job already ended; INVALID_ARGUMENT as AddPredictor.
  virtual absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                         const std::string& error, double finished_unix_s,
                                         const PredictorRecord* predictor) = 0;
  virtual absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) = 0;
  // Newest first; with `unfinished_only`, the queued and running ones.
  virtual absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                          int64_t offset,
                                                                          int limit) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_H_
