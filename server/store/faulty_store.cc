#include "server/store/faulty_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace apq::server {

void FaultPlan::FailNthWrite(int64_t nth, Mode mode, std::string method) {
  absl::MutexLock lock(&mutex_);
  armed_.push_back(Fault{nth, mode, std::move(method)});
}

void FaultPlan::Clear() {
  absl::MutexLock lock(&mutex_);
  armed_.clear();
}

int64_t FaultPlan::writes() const {
  absl::MutexLock lock(&mutex_);
  return writes_;
}

int64_t FaultPlan::writes(absl::string_view method) const {
  absl::MutexLock lock(&mutex_);
  auto found = writes_by_method_.find(method);
  return found == writes_by_method_.end() ? 0 : found->second;
}

int64_t FaultPlan::faults_injected() const {
  absl::MutexLock lock(&mutex_);
  return faults_injected_;
}

std::optional<FaultPlan::Mode> FaultPlan::OnWrite(absl::string_view method) {
  absl::MutexLock lock(&mutex_);
  ++writes_;
  ++writes_by_method_[std::string(method.data(), method.size())];
  std::optional<Mode> fault;
  for (auto it = armed_.begin(); it != armed_.end();) {
    if ((!it->method.empty() && it->method != method) || --it->remaining > 0) {
      ++it;
      continue;
    }
    if (!fault.has_value() || it->mode == Mode::kBeforeWrite) fault = it->mode;
    it = armed_.erase(it);
  }
  if (fault.has_value()) ++faults_injected_;
  return fault;
}

namespace {

// Runs the write `call` of `method` with the plan's fault, if any. `Result` is absl::Status
// or an absl::StatusOr.
template <typename Result, typename Call>
Result Write(FaultPlan& plan, absl::string_view method, Call call) {
  const std::optional<FaultPlan::Mode> fault = plan.OnWrite(method);
  if (fault == FaultPlan::Mode::kBeforeWrite) {
    return absl::InternalError(absl::StrCat("injected fault: ", method, " was not written"));
  }
  Result result = call();
  if (fault == FaultPlan::Mode::kAfterCommit && result.ok()) {
    return absl::InternalError(
        absl::StrCat("injected fault: ", method, " was committed, its acknowledgement lost"));
  }
  return result;
}

class FaultyJobStore final : public JobStore {
 public:
  FaultyJobStore(JobStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::StatusOr<std::string> CreateJob(const JobRecord& job) override {
    return Write<absl::StatusOr<std::string>>(plan_, "CreateJob",
                                              [&] { return base_.CreateJob(job); });
  }
  absl::StatusOr<SweepIds> CreateSweep(const std::vector<JobRecord>& jobs) override {
    return Write<absl::StatusOr<SweepIds>>(plan_, "CreateSweep",
                                           [&] { return base_.CreateSweep(jobs); });
  }
  absl::StatusOr<std::vector<JobRecord>> ListSweepJobs(const std::string& sweep_id) override {
    return base_.ListSweepJobs(sweep_id);
  }
  absl::Status MarkRunning(const std::string& job_id, double started_unix_s) override {
    return Write<absl::Status>(plan_, "MarkRunning",
                               [&] { return base_.MarkRunning(job_id, started_unix_s); });
  }
  absl::StatusOr<std::vector<int64_t>> AppendGenerations(const std::string& job_id,
                                                         const GenerationBatch& batch) override {
    return Write<absl::StatusOr<std::vector<int64_t>>>(
        plan_, "AppendGenerations", [&] { return base_.AppendGenerations(job_id, batch); });
  }
  absl::Status BeginVerification(const std::string& job_id, int finalists) override {
    return Write<absl::Status>(plan_, "BeginVerification",
                               [&] { return base_.BeginVerification(job_id, finalists); });
  }
  absl::Status RecordVerification(const std::string& job_id, int64_t candidate_id,
                                  const CandidateMeasurement& measurement,
                                  int64_t verified_best_id) override {
    return Write<absl::Status>(plan_, "RecordVerification", [&] {
      return base_.RecordVerification(job_id, candidate_id, measurement, verified_best_id);
    });
  }
  absl::Status FinishJob(const std::string& job_id, JobState state, const std::string& error,
                         double finished_unix_s, double elapsed_s,
                         const std::vector<int64_t>& pareto_front_ids) override {
    return Write<absl::Status>(plan_, "FinishJob", [&] {
      return base_.FinishJob(job_id, state, error, finished_unix_s, elapsed_s, pareto_front_ids);
    });
  }
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override {
    return base_.GetJob(job_id);
  }
  absl::Status DeleteJob(const std::string& job_id, double deleted_unix_s) override {
    return Write<absl::Status>(plan_, "DeleteJob",
                               [&] { return base_.DeleteJob(job_id, deleted_unix_s); });
  }
  absl::StatusOr<std::vector<std::string>> DeleteJobsFinishedBefore(double finished_before_unix_s,
                                                                    double deleted_unix_s,
                                                                    int limit) override {
    return Write<absl::StatusOr<std::vector<std::string>>>(plan_, "DeleteJobsFinishedBefore", [&] {
      return base_.DeleteJobsFinishedBefore(finished_before_unix_s, deleted_unix_s, limit);
    });
  }
  absl::StatusOr<std::vector<JobRecord>> ListJobsPage(const JobQuery& query) override {
    return base_.ListJobsPage(query);
  }
  absl::StatusOr<std::map<JobState, int64_t>> CountJobsByState() override {
    return base_.CountJobsByState();
  }
  absl::StatusOr<std::vector<JobRecord>> JobsWithoutLabel(int limit) override {
    return base_.JobsWithoutLabel(limit);
  }
  absl::Status SetJobLabel(const std::string& job_id, const std::string& label) override {
    return Write<absl::Status>(plan_, "SetJobLabel",
                               [&] { return base_.SetJobLabel(job_id, label); });
  }
  absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) override {
    return base_.ListCandidates(query);
  }
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& holder, double now_unix_s,
                                                     double expires_unix_s) override {
    return Write<absl::StatusOr<std::optional<ClaimedJob>>>(
        plan_, "ClaimJob", [&] { return base_.ClaimJob(holder, now_unix_s, expires_unix_s); });
  }
  absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id, const std::string& holder,
                                          double expires_unix_s) override {
    return Write<absl::StatusOr<LeaseRenewal>>(
        plan_, "RenewLease", [&] { return base_.RenewLease(job_id, holder, expires_unix_s); });
  }
  absl::Status ReleaseLease(const std::string& job_id, const std::string& holder) override {
    return Write<absl::Status>(plan_, "ReleaseLease",
                               [&] { return base_.ReleaseLease(job_id, holder); });
  }
  absl::StatusOr<CancelRequestOutcome> RequestCancel(const std::string& job_id,
                                                     double now_unix_s) override {
    return Write<absl::StatusOr<CancelRequestOutcome>>(
        plan_, "RequestCancel", [&] { return base_.RequestCancel(job_id, now_unix_s); });
  }

 private:
  JobStore& base_;
  FaultPlan& plan_;
};

class FaultyDeviceStore final : public DeviceStore {
 public:
  FaultyDeviceStore(DeviceStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::StatusOr<int64_t> AddTableVersion(const TableVersionRecord& table) override {
    return Write<absl::StatusOr<int64_t>>(plan_, "AddTableVersion",
                                          [&] { return base_.AddTableVersion(table); });
  }
  absl::StatusOr<std::vector<std::string>> ListDevices() override { return base_.ListDevices(); }
  absl::StatusOr<std::vector<TableVersionRecord>> ListTableVersions(
      const std::string& device) override {
    return base_.ListTableVersions(device);
  }
  absl::StatusOr<TableVersionRecord> GetTableVersion(const std::string& device,
                                                     int64_t version) override {
    return base_.GetTableVersion(device, version);
  }

 private:
  DeviceStore& base_;
  FaultPlan& plan_;
};

class FaultyDatasetStore final : public DatasetStore {
 public:
  FaultyDatasetStore(DatasetStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::Status CreateDataset(const DatasetRecord& dataset,
                             const std::vector<MeasurementRow>& rows) override {
    return Write<absl::Status>(plan_, "CreateDataset",
                               [&] { return base_.CreateDataset(dataset, rows); });
  }
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) override {
    return base_.GetDataset(name);
  }
  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() override {
    return base_.ListDatasets();
  }
  absl::Status AddMeasurements(const std::string& dataset,
                               const std::vector<MeasurementRow>& rows) override {
    return Write<absl::Status>(plan_, "AddMeasurements",
                               [&] { return base_.AddMeasurements(dataset, rows); });
  }
  absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) override {
    return base_.ListMeasurements(dataset, method);
  }

 private:
  DatasetStore& base_;
  FaultPlan& plan_;
};

class FaultyPredictorStore final : public PredictorStore {
 public:
  FaultyPredictorStore(PredictorStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::Status AddPredictor(const PredictorRecord& predictor) override {
    return Write<absl::Status>(plan_, "AddPredictor",
                               [&] { return base_.AddPredictor(predictor); });
  }
  absl::StatusOr<std::vector<PredictorRecord>> ListPredictors(const std::string& space) override {
    return base_.ListPredictors(space);
  }
  absl::StatusOr<PredictorRecord> GetPredictor(const std::string& space,
                                               const std::string& version) override {
    return base_.GetPredictor(space, version);
  }
  absl::StatusOr<PredictorRecord> GetDefaultPredictor(const std::string& space) override {
    return base_.GetDefaultPredictor(space);
  }
  absl::StatusOr<std::string> GetDefaultPredictorVersion(const std::string& space) override {
    return base_.GetDefaultPredictorVersion(space);
  }
  absl::Status SetDefaultPredictor(const std::string& space, const std::string& version) override {
    return Write<absl::Status>(plan_, "SetDefaultPredictor",
                               [&] { return base_.SetDefaultPredictor(space, version); });
  }
  absl::Status ClearDefaultPredictor(const std::string& space) override {
    return Write<absl::Status>(plan_, "ClearDefaultPredictor",
                               [&] { return base_.ClearDefaultPredictor(space); });
  }

 private:
  PredictorStore& base_;
  FaultPlan& plan_;
};

class FaultyTrainingJobStore final : public TrainingJobStore {
 public:
  FaultyTrainingJobStore(TrainingJobStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::StatusOr<std::string> CreateTrainingJob(const TrainingJobRecord& job) override {
    return Write<absl::StatusOr<std::string>>(plan_, "CreateTrainingJob",
                                              [&] { return base_.CreateTrainingJob(job); });
  }
  absl::Status MarkTrainingRunning(const std::string& job_id, double started_unix_s) override {
    return Write<absl::Status>(plan_, "MarkTrainingRunning",
                               [&] { return base_.MarkTrainingRunning(job_id, started_unix_s); });
  }
  absl::Status UpdateTrainingProgress(const std::string& job_id, const std::string& stage,
                                      int epoch, int max_epochs, double validation_rmse) override {
    return Write<absl::Status>(plan_, "UpdateTrainingProgress", [&] {
      return base_.UpdateTrainingProgress(job_id, stage, epoch, max_epochs, validation_rmse);
    });
  }
  absl::Status FinishTrainingJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s,
                                 const PredictorRecord* predictor) override {
    return Write<absl::Status>(plan_, "FinishTrainingJob", [&] {
      return base_.FinishTrainingJob(job_id, state, error, finished_unix_s, predictor);
    });
  }
  absl::StatusOr<TrainingJobRecord> GetTrainingJob(const std::string& job_id) override {
    return base_.GetTrainingJob(job_id);
  }
  absl::StatusOr<std::vector<TrainingJobRecord>> ListTrainingJobs(bool unfinished_only,
                                                                  int64_t offset,
                                                                  int limit) override {
    return base_.ListTrainingJobs(unfinished_only, offset, limit);
  }
  absl::StatusOr<std::optional<ClaimedTrainingJob>> ClaimTrainingJob(
      const std::string& holder, double now_unix_s, double expires_unix_s) override {
    return Write<absl::StatusOr<std::optional<ClaimedTrainingJob>>>(plan_, "ClaimTrainingJob", [&] {
      return base_.ClaimTrainingJob(holder, now_unix_s, expires_unix_s);
    });
  }
  absl::StatusOr<LeaseRenewal> RenewTrainingLease(const std::string& job_id,
                                                  const std::string& holder,
                                                  double expires_unix_s) override {
    return Write<absl::StatusOr<LeaseRenewal>>(plan_, "RenewTrainingLease", [&] {
      return base_.RenewTrainingLease(job_id, holder, expires_unix_s);
    });
  }
  absl::Status ReleaseTrainingLease(const std::string& job_id, const std::string& holder) override {
    return Write<absl::Status>(plan_, "ReleaseTrainingLease",
                               [&] { return base_.ReleaseTrainingLease(job_id, holder); });
  }
  absl::StatusOr<CancelRequestOutcome> RequestTrainingCancel(const std::string& job_id,
                                                             double now_unix_s) override {
    return Write<absl::StatusOr<CancelRequestOutcome>>(plan_, "RequestTrainingCancel", [&] {
      return base_.RequestTrainingCancel(job_id, now_unix_s);
    });
  }

 private:
  TrainingJobStore& base_;
  FaultPlan& plan_;
};

class FaultyTokenStore final : public TokenStore {
 public:
  FaultyTokenStore(TokenStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::Status AddToken(const TokenRecord& token) override {
    return Write<absl::Status>(plan_, "AddToken", [&] { return base_.AddToken(token); });
  }
  absl::StatusOr<bool> AddFirstToken(const TokenRecord& token) override {
    return Write<absl::StatusOr<bool>>(plan_, "AddFirstToken",
                                       [&] { return base_.AddFirstToken(token); });
  }
  absl::StatusOr<TokenRecord> GetToken(const std::string& id) override {
    return base_.GetToken(id);
  }
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override { return base_.ListTokens(); }
  absl::Status RevokeToken(const std::string& id, double revoked_unix_s) override {
    return Write<absl::Status>(plan_, "RevokeToken",
                               [&] { return base_.RevokeToken(id, revoked_unix_s); });
  }

 private:
  TokenStore& base_;
  FaultPlan& plan_;
};

class FaultyArtifactStore final : public ArtifactStore {
 public:
  FaultyArtifactStore(ArtifactStore& base, FaultPlan& plan) : base_(base), plan_(plan) {}

  absl::Status PutArtifact(const ArtifactRecord& artifact) override {
    return Write<absl::Status>(plan_, "PutArtifact", [&] { return base_.PutArtifact(artifact); });
  }
  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& kind,
                                             const std::string& key) override {
    return base_.GetArtifact(kind, key);
  }
  absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) override {
    return base_.ListJobArtifacts(job_id);
  }
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& kind,
                                                            const std::string& space,
                                                            int limit) override {
    return base_.ListArtifacts(kind, space, limit);
  }

 private:
  ArtifactStore& base_;
  FaultPlan& plan_;
};

class FaultyMeasurementRunStore final : public MeasurementRunStore {
 public:
  FaultyMeasurementRunStore(MeasurementRunStore& base, FaultPlan& plan)
      : base_(base), plan_(plan) {}

  absl::StatusOr<std::string> CreateMeasurementRun(
      const MeasurementRunRecord& run, const std::vector<std::string>& configs) override {
    return Write<absl::StatusOr<std::string>>(
        plan_, "CreateMeasurementRun", [&] { return base_.CreateMeasurementRun(run, configs); });
  }
  absl::StatusOr<MeasurementRunRecord> GetMeasurementRun(const std::string& run_id) override {
    return base_.GetMeasurementRun(run_id);
  }
  absl::StatusOr<std::vector<MeasurementRunRecord>> ListMeasurementRuns(int64_t offset,
                                                                        int limit) override {
    return base_.ListMeasurementRuns(offset, limit);
  }
  absl::Status SetMeasurementRunLauncher(const std::string& run_id,
                                         const std::string& launcher) override {
    return Write<absl::Status>(plan_, "SetMeasurementRunLauncher",
                               [&] { return base_.SetMeasurementRunLauncher(run_id, launcher); });
  }
  absl::StatusOr<std::vector<MeasurementTask>> ClaimMeasurementTasks(const std::string& run_id,
                                                                     const std::string& holder,
                                                                     double now_unix_s,
                                                                     double expires_unix_s,
                                                                     int max_tasks) override {
    return Write<absl::StatusOr<std::vector<MeasurementTask>>>(plan_, "ClaimMeasurementTasks", [&] {
      return base_.ClaimMeasurementTasks(run_id, holder, now_unix_s, expires_unix_s, max_tasks);
    });
  }
  absl::StatusOr<std::vector<int64_t>> RenewMeasurementTasks(const std::string& run_id,
                                                             const std::string& holder,
                                                             const std::vector<int64_t>& task_ids,
                                                             double expires_unix_s) override {
    return Write<absl::StatusOr<std::vector<int64_t>>>(plan_, "RenewMeasurementTasks", [&] {
      return base_.RenewMeasurementTasks(run_id, holder, task_ids, expires_unix_s);
    });
  }
  absl::Status CompleteMeasurementTask(const std::string& run_id, int64_t task_id,
                                       const std::string& holder,
                                       const MeasurementRow& row) override {
    return Write<absl::Status>(plan_, "CompleteMeasurementTask", [&] {
      return base_.CompleteMeasurementTask(run_id, task_id, holder, row);
    });
  }
  absl::Status FailMeasurementTask(const std::string& run_id, int64_t task_id,
                                   const std::string& holder, const std::string& error,
                                   int max_attempts, double now_unix_s) override {
    return Write<absl::Status>(plan_, "FailMeasurementTask", [&] {
      return base_.FailMeasurementTask(run_id, task_id, holder, error, max_attempts, now_unix_s);
    });
  }
  absl::Status CancelMeasurementRun(const std::string& run_id, double now_unix_s) override {
    return Write<absl::Status>(plan_, "CancelMeasurementRun",
                               [&] { return base_.CancelMeasurementRun(run_id, now_unix_s); });
  }

 private:
  MeasurementRunStore& base_;
  FaultPlan& plan_;
};

class FaultyStore final : public Store {
 public:
  FaultyStore(std::unique_ptr<Store> base, std::shared_ptr<FaultPlan> plan)
      : base_(std::move(base)),
        plan_(std::move(plan)),
        jobs_(base_->jobs(), *plan_),
        devices_(base_->devices(), *plan_),
        datasets_(base_->datasets(), *plan_),
        predictors_(base_->predictors(), *plan_),
        training_jobs_(base_->training_jobs(), *plan_),
        tokens_(base_->tokens(), *plan_),
        artifacts_(base_->artifacts(), *plan_),
        measurement_runs_(base_->measurement_runs(), *plan_) {}

  JobStore& jobs() override { return jobs_; }
  DeviceStore& devices() override { return devices_; }
  DatasetStore& datasets() override { return datasets_; }
  PredictorStore& predictors() override { return predictors_; }
  TrainingJobStore& training_jobs() override { return training_jobs_; }
  TokenStore& tokens() override { return tokens_; }
  ArtifactStore& artifacts() override { return artifacts_; }
  MeasurementRunStore& measurement_runs() override { return measurement_runs_; }

 private:
  // Declared first: they outlive the wrappers below.
  const std::unique_ptr<Store> base_;
  const std::shared_ptr<FaultPlan> plan_;
  FaultyJobStore jobs_;
  FaultyDeviceStore devices_;
  FaultyDatasetStore datasets_;
  FaultyPredictorStore predictors_;
  FaultyTrainingJobStore training_jobs_;
  FaultyTokenStore tokens_;
  FaultyArtifactStore artifacts_;
  FaultyMeasurementRunStore measurement_runs_;
};

}  // namespace

std::unique_ptr<Store> NewFaultyStore(std::unique_ptr<Store> base,
                                      std::shared_ptr<FaultPlan> plan) {
  return std::make_unique<FaultyStore>(std::move(base), std::move(plan));
}

}  // namespace apq::server
