#include "server/store/memory_store.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "server/store/memory_database.h"
#include "server/store/record_checks.h"

namespace apq::server {
namespace {

using memory_internal::MemoryDatabase;
using memory_internal::StoredDataset;
using memory_internal::StoredDouble;
using memory_internal::StoredTrainingJob;
using store_internal::ArtifactExists;
using store_internal::ArtifactNotFound;
using store_internal::CheckArtifact;
using store_internal::CheckDataset;
using store_internal::CheckLeaseHolder;
using store_internal::CheckLeaseTime;
using store_internal::CheckLeaseTimes;
using store_internal::CheckMeasurementRows;
using store_internal::CheckPage;
using store_internal::CheckTableVersion;
using store_internal::CheckToken;
using store_internal::CheckTrainingEnd;
using store_internal::DatasetExists;
using store_internal::DatasetNotFound;
using store_internal::DeviceNotFound;
using store_internal::LeaseNotHeld;
using store_internal::NoDefaultPredictor;
using store_internal::PredictorNotFound;
using store_internal::TableVersionNotFound;
using store_internal::TokenExists;
using store_internal::TokenNotFound;
using store_internal::TokenRevoked;
using store_internal::TrainingJobEnded;
using store_internal::TrainingJobNotFound;

class MemoryDeviceStore final : public DeviceStore {
 public:
  explicit MemoryDeviceStore(MemoryDatabase& db) : db_(db) {}

  absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) override {
    RETURN_IF_ERROR(CheckTableVersion(table));
    absl::MutexLock lock(&db_.mutex);
    TableVersionRecord stored = table;
    ASSIGN_OR_RETURN(
        stored.uploaded_unix_s,
        StoredDouble(table.uploaded_unix_s, "uploaded_unix_s",
                     absl::StrCat("adding a table version for device ", table.device)));
    std::vector<TableVersionRecord>& versions = db_.tables[table.device];
    stored.version = static_cast<int64_t>(versions.size()) + 1;
    versions.push_back(std::move(stored));
    return versions.back().version;
  }

  absl::StatusOr<std::vector<std::string>> ListDevices() override {
    absl::MutexLock lock(&db_.mutex);
    std::vector<std::string> devices;
    for (const auto& [device, versions] : db_.tables) devices.push_back(device);
    return devices;
  }

  absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) override {
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.tables.find(device);
    if (found == db_.tables.end()) return DeviceNotFound(device);
    std::vector<TableVersionRecord> versions = found->second;
    for (TableVersionRecord& version : versions) version.files.clear();
    return versions;
  }

  absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                     int64_t version) override {
    if (version < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("table version must be >= 0 (0: latest), got ", version));
    }
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.tables.find(device);
    if (found == db_.tables.end()) return TableVersionNotFound(device, version, false);
    const std::vector<TableVersionRecord>& versions = found->second;
    if (version > static_cast<int64_t>(versions.size())) {
      return TableVersionNotFound(device, version, true);
    }
    return version == 0 ? versions.back() : versions[version - 1];
  }

 private:
  MemoryDatabase& db_;
};

class MemoryDatasetStore final : public DatasetStore {
 public:
  explicit MemoryDatasetStore(MemoryDatabase& db) : db_(db) {}

  absl::Status CreateDataset(const DatasetRecord& dataset,
                             const std::vector<MeasurementRow>& rows) override {
    RETURN_IF_ERROR(CheckDataset(dataset));
    RETURN_IF_ERROR(CheckMeasurementRows(rows));
    const std::string operation = absl::StrCat("creating dataset ", dataset.name);
    absl::MutexLock lock(&db_.mutex);
    if (db_.datasets.count(dataset.name) > 0) return DatasetExists(dataset.name);
    StoredDataset stored;
    stored.record = dataset;
    ASSIGN_OR_RETURN(stored.record.created_unix_s,
                     StoredDouble(dataset.created_unix_s, "created_unix_s", operation));
    stored.record.records = 0;
    stored.record.fp32_records = 0;
    RETURN_IF_ERROR(db_.AppendMeasurements(stored, rows, operation));
    db_.datasets.emplace(dataset.name, std::move(stored));
    return absl::OkStatus();
  }

  absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) override {
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.datasets.find(name);
    if (found == db_.datasets.end()) return DatasetNotFound(name);
    return WithCounts(found->second);
  }

  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() override {
    absl::MutexLock lock(&db_.mutex);
    std::vector<DatasetRecord> datasets;
    for (const auto& [name, dataset] : db_.datasets) datasets.push_back(WithCounts(dataset));
    return datasets;
  }

  absl::Status AddMeasurements(const std::string& dataset,
                               const std::vector<MeasurementRow>& rows) override {
    RETURN_IF_ERROR(CheckMeasurementRows(rows));
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.datasets.find(dataset);
    if (found == db_.datasets.end()) return DatasetNotFound(dataset);
    return db_.AppendMeasurements(found->second, rows,
                                  absl::StrCat("adding measurements to dataset ", dataset));
  }

  absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) override {
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.datasets.find(dataset);
    if (found == db_.datasets.end()) return DatasetNotFound(dataset);
    std::vector<MeasurementRow> rows;
    for (const MeasurementRow& row : found->second.rows) {
      if (!method.has_value() || row.method == *method) rows.push_back(row);
    }
    return rows;
  }

 private:
  static DatasetRecord WithCounts(const StoredDataset& dataset) {
    DatasetRecord record = dataset.record;
    record.records = static_cast<int64_t>(dataset.rows.size());
    // "fp32" is oface::kMeasuredFp32; the store does not depend on oface.
    record.fp32_records =
        std::count_if(dataset.rows.begin(), dataset.rows.end(),
                      [](const MeasurementRow& row) { return row.method == "fp32"; });
    record.split = dataset.rows.empty() ? std::string() : dataset.rows.front().split;
    return record;
  }

  MemoryDatabase& db_;
};

class MemoryPredictorStore final : public PredictorStore {
 public:
  explicit MemoryPredictorStore(MemoryDatabase& db) : db_(db) {}

  absl::Status AddPredictor(const PredictorRecord& predictor) override {
    absl::MutexLock lock(&db_.mutex);
    return db_.InsertPredictor(predictor, absl::StrCat("adding predictor ", predictor.version,
                                                       " of space ", predictor.space));
  }

  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override {
    absl::MutexLock lock(&db_.mutex);
    std::vector<PredictorRecord> predictors;
    auto found = db_.predictors.find(space);
    if (found == db_.predictors.end()) return predictors;
    predictors = found->second;
    for (PredictorRecord& predictor : predictors) predictor.artifact.clear();
    return predictors;
  }

  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override {
    absl::MutexLock lock(&db_.mutex);
    const PredictorRecord* predictor = db_.FindPredictor(space, version);
    if (predictor == nullptr) return PredictorNotFound(space, version);
    return *predictor;
  }

  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override {
    absl::MutexLock lock(&db_.mutex);
    const PredictorRecord* predictor = FindDefault(space);
    if (predictor == nullptr) return NoDefaultPredictor(space);
    return *predictor;
  }

  absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) override {
    absl::MutexLock lock(&db_.mutex);
    const PredictorRecord* predictor = FindDefault(space);
    if (predictor == nullptr) return NoDefaultPredictor(space);
    return predictor->version;
  }

  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override {
    absl::MutexLock lock(&db_.mutex);
    if (db_.FindPredictor(space, version) == nullptr) return PredictorNotFound(space, version);
    db_.MakeDefault(space, version);
    return absl::OkStatus();
  }

  absl::Status ClearDefaultPredictor(const std::string& space) override {
    absl::MutexLock lock(&db_.mutex);
    // No stored version is "" (CheckPredictor): none stays the default.
    db_.MakeDefault(space, "");
    return absl::OkStatus();
  }

 private:
  // The space's default predictor, or null when it has none.
  const PredictorRecord* FindDefault(const std::string& space) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    auto found = db_.predictors.find(space);
    if (found == db_.predictors.end()) return nullptr;
    for (const PredictorRecord& predictor : found->second) {
      if (predictor.is_default) return &predictor;
    }
    return nullptr;
  }

  MemoryDatabase& db_;
};

class MemoryTrainingJobStore final : public TrainingJobStore {
 public:
  explicit MemoryTrainingJobStore(MemoryDatabase& db) : db_(db) {}

  absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) override {
    absl::MutexLock lock(&db_.mutex);
    StoredTrainingJob stored;
    ASSIGN_OR_RETURN(stored.record.created_unix_s,
                     StoredDouble(job.created_unix_s, "created_unix_s", "creating a training job"));
    stored.record.id = absl::StrCat("train-", db_.training_jobs.size() + 1);
    stored.record.space = job.space;
    stored.record.dataset = job.dataset;
    stored.record.request = job.request;
    db_.training_job_index[stored.record.id] = db_.training_jobs.size();
    db_.training_jobs.push_back(std::move(stored));
    return db_.training_jobs.back().record.id;
  }

  absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) override {
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredTrainingJob * stored, Unfinished(job_id));
    ASSIGN_OR_RETURN(double started,
                     StoredDouble(started_unix_s, "started_unix_s",
                                  absl::StrCat("marking training job ", job_id, " running")));
    // A job run again after a restart starts over: its progress is reset.
    TrainingJobRecord& job = stored->record;
    job.state = JobState::kRunning;
    job.started_unix_s = started;
    job.stage.clear();
    job.epoch = 0;
    job.max_epochs = 0;
    job.validation_rmse = 0;
    return absl::OkStatus();
  }

  absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                      int epoch, int max_epochs, double validation_rmse) override {
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredTrainingJob * stored, Unfinished(job_id));
    ASSIGN_OR_RETURN(double rmse,
                     StoredDouble(validation_rmse, "validation_rmse",
                                  absl::StrCat("recording the progress of training job ", job_id)));
    TrainingJobRecord& job = stored->record;
    job.stage = stage;
    job.epoch = epoch;
    job.max_epochs = max_epochs;
    job.validation_rmse = rmse;
    return absl::OkStatus();
  }

  absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s,
                                 const PredictorRecord* predictor) override {
    RETURN_IF_ERROR(CheckTrainingEnd(state, predictor));
    const std::string operation = absl::StrCat("finishing training job ", job_id);
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredTrainingJob * stored, Unfinished(job_id));
    // Checked before the predictor is stored, so an error changes nothing.
    ASSIGN_OR_RETURN(double finished, StoredDouble(finished_unix_s, "finished_unix_s", operation));
    if (predictor != nullptr) {
      if (db_.FindPredictor(predictor->space, predictor->version) == nullptr) {
        RETURN_IF_ERROR(db_.InsertPredictor(*predictor, operation));
      } else if (predictor->is_default) {
        // Versions are content hashes: the job trained a predictor already stored.
        db_.MakeDefault(predictor->space, predictor->version);
      }
    }
    TrainingJobRecord& job = stored->record;
    job.state = state;
    job.error = error;
    job.finished_unix_s = finished;
    job.predictor_version = predictor != nullptr ? predictor->version : "";
    job.metrics_json = predictor != nullptr ? predictor->metrics_json : "{}";
    ClearLease(*stored);
    return absl::OkStatus();
  }

  absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) override {
    absl::MutexLock lock(&db_.mutex);
    const StoredTrainingJob* stored = db_.FindTrainingJob(job_id);
    if (stored == nullptr) return TrainingJobNotFound(job_id);
    return stored->record;
  }

  absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                  int64_t offset,
                                                                  int limit) override {
    RETURN_IF_ERROR(CheckPage(offset, limit));
    absl::MutexLock lock(&db_.mutex);
    std::vector<TrainingJobRecord> jobs;
    int64_t skipped = 0;
    for (auto it = db_.training_jobs.rbegin(); it != db_.training_jobs.rend(); ++it) {
      if (unfinished_only && IsTerminal(it->record.state)) continue;
      if (skipped++ < offset) continue;
      jobs.push_back(it->record);
      if (static_cast<int>(jobs.size()) == limit) break;
    }
    return jobs;
  }

  absl::StatusOr<std::optional<ClaimedTrainingJob>> ClaimTrainingJob(
      const std::string& holder, double now_unix_s, double expires_unix_s) override {
    RETURN_IF_ERROR(CheckLeaseHolder(holder));
    RETURN_IF_ERROR(CheckLeaseTimes(now_unix_s, expires_unix_s));
    absl::MutexLock lock(&db_.mutex);
    // db_.training_jobs is in creation order.
    for (StoredTrainingJob& stored : db_.training_jobs) {
      if (IsTerminal(stored.record.state) || stored.lease_expires_unix_s > now_unix_s) continue;
      stored.lease_holder = holder;
      stored.lease_expires_unix_s = expires_unix_s;
      return ClaimedTrainingJob{stored.record, stored.cancel_requested};
    }
    return std::nullopt;
  }

  absl::StatusOr<LeaseRenewal> RenewTrainingLease(const std::string& job_id,
                                                  const std::string& holder,
                                                  double expires_unix_s) override {
    RETURN_IF_ERROR(CheckLeaseHolder(holder));
    RETURN_IF_ERROR(CheckLeaseTime(expires_unix_s, "expires_unix_s"));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredTrainingJob * stored, Unfinished(job_id));
    if (stored->lease_holder != holder) return LeaseNotHeld(job_id, holder);
    stored->lease_expires_unix_s = expires_unix_s;
    return LeaseRenewal{stored->cancel_requested};
  }

  absl::Status ReleaseTrainingLease(const std::string& job_id, const std::string& holder) override {
    RETURN_IF_ERROR(CheckLeaseHolder(holder));
    absl::MutexLock lock(&db_.mutex);
    StoredTrainingJob* stored = db_.FindTrainingJob(job_id);
    if (stored == nullptr) return TrainingJobNotFound(job_id);
    // An ended job holds no lease (FinishTrainingJob clears it); another holder's stays.
    if (stored->lease_holder == holder) ClearLease(*stored);
    return absl::OkStatus();
  }

  absl::StatusOr<CancelRequestOutcome> RequestTrainingCancel(const std::string& job_id,
                                                             double now_unix_s) override {
    RETURN_IF_ERROR(CheckLeaseTime(now_unix_s, "now_unix_s"));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredTrainingJob * stored, Unfinished(job_id));
    TrainingJobRecord& job = stored->record;
    if (job.state == JobState::kQueued && stored->lease_expires_unix_s <= now_unix_s) {
      // As FinishTrainingJob(kCancelled) without a predictor would end it (a queued job has
      // no predictor version or metrics to clear).
      ASSIGN_OR_RETURN(
          job.finished_unix_s,
          StoredDouble(now_unix_s, "now_unix_s", absl::StrCat("cancelling training job ", job_id)));
      job.state = JobState::kCancelled;
      job.error = store_internal::kTrainingCancelledError;
      ClearLease(*stored);
      return CancelRequestOutcome::kEnded;
    }
    stored->cancel_requested = true;
    return CancelRequestOutcome::kRequested;
  }

 private:
  absl::StatusOr<StoredTrainingJob*> Unfinished(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    StoredTrainingJob* stored = db_.FindTrainingJob(job_id);
    if (stored == nullptr) return TrainingJobNotFound(job_id);
    if (IsTerminal(stored->record.state)) {
      return TrainingJobEnded(job_id, stored->record.state);
    }
    return stored;
  }

  static void ClearLease(StoredTrainingJob& job) {
    job.lease_holder.clear();
    job.lease_expires_unix_s = 0.0;
  }

  MemoryDatabase& db_;
};

class MemoryTokenStore final : public TokenStore {
 public:
  explicit MemoryTokenStore(MemoryDatabase& db) : db_(db) {}

  absl::Status AddToken(const TokenRecord& token) override {
    return Insert(token, /*only_first=*/false).status();
  }

  absl::StatusOr<bool> AddFirstToken(const TokenRecord& token) override {
    return Insert(token, /*only_first=*/true);
  }

 private:
  absl::StatusOr<bool> Insert(const TokenRecord& token, bool only_first) {
    RETURN_IF_ERROR(CheckToken(token));
    absl::MutexLock lock(&db_.mutex);
    if (only_first && !db_.tokens.empty()) return false;
    if (Find(token.id) != nullptr) return TokenExists(token.id);
    TokenRecord stored = token;
    const std::string operation = "adding a token";
    ASSIGN_OR_RETURN(stored.created_unix_s,
                     StoredDouble(token.created_unix_s, "created_unix_s", operation));
    ASSIGN_OR_RETURN(stored.revoked_unix_s,
                     StoredDouble(token.revoked_unix_s, "revoked_unix_s", operation));
    db_.tokens.push_back(std::move(stored));
    return true;
  }

 public:
  absl::StatusOr<TokenRecord> GetToken(const std::string& id) override {
    absl::MutexLock lock(&db_.mutex);
    const TokenRecord* token = Find(id);
    if (token == nullptr) return TokenNotFound(id);
    return *token;
  }

  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override {
    absl::MutexLock lock(&db_.mutex);
    return db_.tokens;
  }

  absl::Status RevokeToken(const std::string& id, double revoked_unix_s) override {
    if (!(revoked_unix_s > 0)) {
      return absl::InvalidArgumentError("revoked_unix_s: must be a positive time");
    }
    absl::MutexLock lock(&db_.mutex);
    TokenRecord* token = Find(id);
    if (token == nullptr) return TokenNotFound(id);
    if (token->revoked_unix_s > 0) return TokenRevoked(id);
    token->revoked_unix_s = revoked_unix_s;
    return absl::OkStatus();
  }

 private:
  TokenRecord* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    for (TokenRecord& token : db_.tokens) {
      if (token.id == id) return &token;
    }
    return nullptr;
  }

  MemoryDatabase& db_;
};

class MemoryArtifactStore final : public ArtifactStore {
 public:
  explicit MemoryArtifactStore(MemoryDatabase& db) : db_(db) {}

  absl::Status PutArtifact(const ArtifactRecord& artifact) override {
    RETURN_IF_ERROR(CheckArtifact(artifact));
    absl::MutexLock lock(&db_.mutex);
    if (!artifact.job_id.empty() && db_.FindJob(artifact.job_id) == nullptr) {
      return store_internal::JobNotFound(artifact.job_id);
    }
    auto [stored, added] =
        db_.artifacts.try_emplace(std::make_pair(artifact.kind, artifact.key), artifact);
    if (!added) return ArtifactExists(artifact.kind, artifact.key);
    // Checked finite by CheckArtifact; -0.0 is stored as 0.0.
    stored->second.created_unix_s = artifact.created_unix_s == 0.0 ? 0.0 : artifact.created_unix_s;
    stored->second.size_bytes = static_cast<int64_t>(artifact.bytes.size());
    return absl::OkStatus();
  }

  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& kind,
                                             const std::string& key) override {
    absl::MutexLock lock(&db_.mutex);
    auto found = db_.artifacts.find(std::make_pair(kind, key));
    if (found == db_.artifacts.end()) return ArtifactNotFound(kind, key);
    return found->second;
  }

  absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) override {
    absl::MutexLock lock(&db_.mutex);
    if (db_.FindJob(job_id) == nullptr) return store_internal::JobNotFound(job_id);
    std::vector<ArtifactRecord> artifacts;
    // The map is in (kind, key) order.
    for (const auto& [name, artifact] : db_.artifacts) {
      if (artifact.job_id == job_id) artifacts.push_back(WithoutBytes(artifact));
    }
    return artifacts;
  }

  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& kind,
                                                            const std::string& space,
                                                            int limit) override {
    RETURN_IF_ERROR(CheckPage(0, limit));
    absl::MutexLock lock(&db_.mutex);
    std::vector<ArtifactRecord> artifacts;
    // The artifacts of `kind` are one range of the map, in key order.
    for (auto it = db_.artifacts.lower_bound(std::make_pair(kind, std::string()));
         it != db_.artifacts.end() && it->first.first == kind &&
         static_cast<int>(artifacts.size()) < limit;
         ++it) {
      if (space.empty() || it->second.space == space) artifacts.push_back(WithoutBytes(it->second));
    }
    return artifacts;
  }

 private:
  static ArtifactRecord WithoutBytes(const ArtifactRecord& artifact) {
    ArtifactRecord listed;
    listed.kind = artifact.kind;
    listed.key = artifact.key;
    listed.job_id = artifact.job_id;
    listed.space = artifact.space;
    listed.created_unix_s = artifact.created_unix_s;
    listed.provenance = artifact.provenance;
    listed.content_type = artifact.content_type;
    listed.size_bytes = artifact.size_bytes;
    return listed;
  }

  MemoryDatabase& db_;
};

class MemoryStore final : public Store {
 public:
  MemoryStore()
      : jobs_(memory_internal::NewMemoryJobStore(db_)),
        devices_(db_),
        datasets_(db_),
        predictors_(db_),
        training_jobs_(db_),
        tokens_(db_),
        artifacts_(db_),
        measurement_runs_(memory_internal::NewMemoryMeasurementRunStore(db_)) {}

  JobStore& jobs() override { return *jobs_; }
  DeviceStore& devices() override { return devices_; }
  DatasetStore& datasets() override { return datasets_; }
  PredictorStore& predictors() override { return predictors_; }
  TrainingJobStore& training_jobs() override { return training_jobs_; }
  TokenStore& tokens() override { return tokens_; }
  ArtifactStore& artifacts() override { return artifacts_; }
  MeasurementRunStore& measurement_runs() override { return *measurement_runs_; }

 private:
  MemoryDatabase db_;  // Declared first: outlives the stores.
  const std::unique_ptr<JobStore> jobs_;
  MemoryDeviceStore devices_;
  MemoryDatasetStore datasets_;
  MemoryPredictorStore predictors_;
  MemoryTrainingJobStore training_jobs_;
  MemoryTokenStore tokens_;
  MemoryArtifactStore artifacts_;
  const std::unique_ptr<MeasurementRunStore> measurement_runs_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace apq::server
