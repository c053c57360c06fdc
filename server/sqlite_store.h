// The product's Store: one SQLite database file in WAL mode.
//
// Beyond the Store contract:
//  - CreateJob stores the job's identity (space, device, table_version, predictor_version,
//    request) and created_unix_s; its state is kQueued and its progress fields start empty,
//    whatever the record says.
//  - AppendGeneration accepts only the next generation: 0 for the job's first batch, then
//    generations_done + 1 (so generations_done is 0 both before and after generation 0;
//    candidates_evaluated or the checkpoint tells them apart). A queued job accepts
//    generations too. The candidates are stored with the batch's generation (their own
//    `id` and `generation` fields are ignored) and get ascending ids. The batch's `best`
//    replaces the job's best (unset clears it). A best whose id is 0 gets the id of a stored
//    candidate of the job with the same config_json: the job's previous best if it matches,
//    else the first such candidate of this batch, else the earliest one stored; else it stays 0.
//  - MarkRunning moves a queued or running job to kRunning and sets its started time;
//    FAILED_PRECONDITION for a job that has ended.
//  - FinishJob takes a terminal state (INVALID_ARGUMENT otherwise) and keeps the checkpoint.
//  - ListJobs, ListCandidates: offset >= 0 and 1 <= limit <= kMaxPageSize, else
//    INVALID_ARGUMENT, as is an unknown JobState or CandidateOrder value. Candidates with an unset
//    metric come after all others in that metric's order; ties are in id order.
//  - AddTableVersion: INVALID_ARGUMENT for an empty device name or two files with one name.
//    Files are returned in the order they were given.
//  - Doubles read back bit for bit, except -0.0, which reads back as 0.0. A NaN anywhere a
//    double is stored is INVALID_ARGUMENT (SQLite would store it as NULL).
//
// Opening applies the schema migrations the file lacks, each in its own transaction.
// Several processes may open one file; SQLite serializes their writes (waiting up to
// busy_timeout_ms for a lock).
//
// Thread safety: all methods may be called concurrently; they run one at a time.
#ifndef APQ_SERVER_SQLITE_STORE_H_
#define APQ_SERVER_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace apq::server {

class SqliteStore : public Store {
 public:
  struct Options {
    std::string path;  // SQLite file, created if absent.
    int busy_timeout_ms = 5000;
  };

  static constexpr int kMaxPageSize = 10000;

  // The schema version this build creates and understands.
  static int SchemaVersion();

  // Opens or creates the database and brings its schema up to date. INVALID_ARGUMENT for an
  // empty path or a negative timeout; FAILED_PRECONDITION if the file's schema is newer than
  // SchemaVersion(); INTERNAL if SQLite cannot open, read or write it.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const Options& options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;

  absl::StatusOr<std::string> CreateJob(const JobRecord& job) override;
  absl::Status MarkRunning(const std::string& job_id, double started_unix_s) override;
  absl::Status AppendGeneration(const std::string& job_id, const GenerationBatch& batch) override;
  absl::Status FinishJob(const std::string& job_id, JobState state, const std::string& error,
                         double finished_unix_s, double elapsed_s,
                         std::optional<CandidateOrder> pareto_cost) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(std::optional<JobState> state, int64_t offset,
                                                  int limit) override;
  absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) override;

  absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) override;
  absl::StatusOr<std::vector<std::string>> ListDevices() override;
  absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) override;
  absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                     int64_t version) override;

  absl::Status CreateDataset(const DatasetRecord& dataset,
                             const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) override;
  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() override;
  absl::Status AddMeasurements(const std::string& dataset,
                               const std::vector<MeasurementRow>& rows) override;
  absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) override;
  absl::Status AddPredictor(const PredictorRecord& predictor) override;
  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override;
  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override;
  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override;
  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override;
  absl::Status ClearDefaultPredictor(const std::string& space) override;
  absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) override;
  absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) override;
  absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                      int epoch, int max_epochs, double validation_rmse) override;
  absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s,
                                 const PredictorRecord* predictor) override;
  absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                  int64_t offset,
                                                                  int limit) override;

 private:
  class Statement;
  class Transaction;

  explicit SqliteStore(sqlite3* db);

  // Configures the connection and migrates the schema.
  absl::Status Initialize(int busy_timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Applies the migrations the file lacks, each in its own transaction.
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<int> ReadSchemaVersion() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Runs SQL that returns no rows, uncached.
  absl::Status Exec(absl::string_view sql, absl::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The cached prepared statement for `sql`, reset and unbound when the result is destroyed.
  absl::StatusOr<Statement> Prepare(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Marks the job's Pareto front on `cost_column`, inside the caller's transaction.
  absl::Status MarkParetoFront(const std::string& job_id, const char* cost_column,
                               const std::string& operation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // The job's state; NOT_FOUND for an unknown job.
  absl::StatusOr<JobState> LoadJobState(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Inserts `rows` (validated) into `dataset` inside the caller's transaction; INVALID_ARGUMENT
  // naming the row for a (method, config) pair the dataset holds.
  absl::Status InsertMeasurements(const std::string& dataset,
                                  const std::vector<MeasurementRow>& rows,
                                  const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // NOT_FOUND unless the dataset exists.
  absl::Status CheckDatasetKnown(const std::string& dataset, const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // NOT_FOUND unless the device has a stored table.
  absl::Status CheckDeviceKnown(const std::string& device) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // AddPredictor's writes, inside the caller's transaction.
  absl::Status InsertPredictor(const PredictorRecord& predictor, const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<JobState> LoadTrainingJobState(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  absl::Mutex mutex_;
  sqlite3* const db_;  // Used only with mutex_ held.
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace apq::server

#endif  // APQ_SERVER_SQLITE_STORE_H_
