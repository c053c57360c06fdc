#include "server/training_manager.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "oface/fashion_mnist.h"
#include "server/predictor_training.h"

namespace apq::server {
namespace {

constexpr size_t kMaxDescriptionBytes = 4096;
constexpr int kMaxEpochs = 100000;
// Progress is written to the store at most this often per job (and at every stage change).
constexpr absl::Duration kProgressInterval = absl::Seconds(1);

constexpr double kDefaultHoldoutFraction = 0.2;

const char* KindName(apq::v1::PredictorKind kind) {
  switch (kind) {
    case apq::v1::PREDICTOR_KIND_MLP_SCRATCH:
      return "mlp_scratch";
    case apq::v1::PREDICTOR_KIND_XGBOOST:
      return "xgboost";
    case apq::v1::PREDICTOR_KIND_ENSEMBLE:
      return "ensemble";
    default:
      return "mlp_transfer";
  }
}

// Fills in the defaults, in place, so the stored request says exactly what ran; then checks
// what needs no lookup.
absl::Status FillAndValidate(apq::v1::TrainPredictorRequest* request) {
  if (request->space().empty()) return absl::InvalidArgumentError("space: required");
  if (request->dataset().empty()) return absl::InvalidArgumentError("dataset: required");
  switch (request->kind()) {
    case apq::v1::PREDICTOR_KIND_UNSPECIFIED:
      request->set_kind(apq::v1::PREDICTOR_KIND_MLP_TRANSFER);
      break;
    case apq::v1::PREDICTOR_KIND_MLP_TRANSFER:
    case apq::v1::PREDICTOR_KIND_MLP_SCRATCH:
    case apq::v1::PREDICTOR_KIND_XGBOOST:
    case apq::v1::PREDICTOR_KIND_ENSEMBLE:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("kind: unknown value ", static_cast<int>(request->kind())));
  }
  const bool xgboost = request->kind() == apq::v1::PREDICTOR_KIND_XGBOOST;
  if (!request->has_holdout_fraction()) request->set_holdout_fraction(kDefaultHoldoutFraction);
  if (!request->has_max_epochs()) {
    request->set_max_epochs(xgboost ? kXgbDefaultRounds : kMlpDefaultEpochs);
  }
  if (!request->has_learning_rate()) {
    request->set_learning_rate(xgboost ? kXgbDefaultLearningRate : kMlpDefaultLearningRate);
  }
  if (!(request->holdout_fraction() >= 0.05 && request->holdout_fraction() <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat("holdout_fraction: must be in [0.05, 0.5], got ",
                                                   request->holdout_fraction()));
  }
  if (request->max_epochs() < 1 || request->max_epochs() > kMaxEpochs) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_epochs: must be in [1, ", kMaxEpochs, "], got ", request->max_epochs()));
  }
  if (!(std::isfinite(request->learning_rate()) && request->learning_rate() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate: must be finite and > 0, got ", request->learning_rate()));
  }
  if (xgboost && request->learning_rate() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "learning_rate: XGBoost's eta must be in (0, 1], got ", request->learning_rate()));
  }
  return ValidateUserText("description", request->description(), kMaxDescriptionBytes,
                          /*multiline=*/true);
}

}  // namespace

absl::StatusOr<std::vector<MeasurementRow>> MeasurementRowsFromUpload(
    const oface::SearchSpace& space, const apq::v1::UploadDatasetRequest& request) {
  constexpr size_t kMaxMethodBytes = 64;
  constexpr int kMaxRecords = 1000000;
  if (request.records().empty()) return absl::InvalidArgumentError("records: the dataset is empty");
  if (request.records_size() > kMaxRecords) {
    return absl::InvalidArgumentError(
        absl::StrCat("records: ", request.records_size(), " records; at most ", kMaxRecords));
  }
  if (request.records_size() < kMinDatasetRecords) {
    return absl::InvalidArgumentError(
        absl::StrCat("records: ", request.records_size(),
                     " records are too few to split; a dataset needs at least ", kMinDatasetRecords,
                     " (2 held out, 4 to train and validate on)"));
  }
  const bool has_bits = space.feature_size() > space.arch_feature_size();
  const double now = NowUnixSeconds();
  std::vector<MeasurementRow> rows;
  rows.reserve(request.records_size());
  std::map<std::pair<std::string, std::string>, int> first_seen;
  for (int i = 0; i < request.records_size(); ++i) {
    const apq::v1::MeasurementRecord& record = request.records(i);
    const std::string what = absl::StrCat("records[", i, "]");
    absl::StatusOr<oface::Genotype> genotype = space.FromJson(record.config_json());
    if (!genotype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": config_json: ", genotype.status().message()));
    }
    if (!(record.accuracy() >= 0.0 && record.accuracy() <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": accuracy ", record.accuracy(), " is not in [0, 1]"));
    }
    if (!(std::isfinite(record.seconds()) && record.seconds() >= 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": seconds ", record.seconds(), " is not a finite value >= 0"));
    }
    std::string method = record.method();
    if (method.empty()) method = has_bits ? "quantized" : "fp32";
    RETURN_IF_ERROR(ValidateUserText(absl::StrCat(what, ".method"), method, kMaxMethodBytes,
                                     /*multiline=*/false));
    if (!has_bits && method != "fp32") {
      return absl::InvalidArgumentError(absl::StrCat(what, ": method '", method, "': space ",
                                                     request.space(),
                                                     " has no bitwidths, its records are fp32"));
    }
    if (method == "fp32" && has_bits) {
      // Bits take no part in a full-precision measurement: stored at their highest choice
      // (as measurement jobs store them), so one architecture measured twice is a repeat.
      oface::Genotype top_bits = *genotype;
      const std::vector<oface::GeneSpec>& genes = space.genes();
      for (size_t g = 0; g < genes.size(); ++g) {
        if (oface::IsBitsGene(genes[g])) top_bits[g] = genes[g].choices.back();
      }
      if (space.SatisfiesRules(top_bits)) *genotype = space.Canonical(top_bits);
    }
    if (!record.split().empty() && !oface::DataSplitFromName(record.split()).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ".split: \"", record.split(),
                                                     "\" is not train, validation, test or empty"));
    }
    if (record.split() != request.records(0).split()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ".split: measured on \"", record.split(), "\" but records[0] on \"",
                       request.records(0).split(), "\"; a dataset mixes no splits"));
    }
    MeasurementRow row;
    row.config_json = space.ToJson(*genotype);
    row.accuracy = record.accuracy();
    row.method = std::move(method);
    row.seconds = record.seconds();
    row.split = record.split();
    row.created_unix_s = now;
    const auto [seen, inserted] =
        first_seen.emplace(std::make_pair(row.method, row.config_json), i);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": repeats records[", seen->second, "] (the same method and config)"));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void PredictorMetricsFromJson(const std::string& metrics_json, apq::v1::PredictorMetrics* metrics) {
  const nlohmann::json parsed = nlohmann::json::parse(metrics_json, nullptr, false);
  if (!parsed.is_object()) return;
  const auto number = [&parsed](const char* key) {
    const auto found = parsed.find(key);
    return found != parsed.end() && found->is_number() ? found->get<double>() : 0.0;
  };
  // Counts are clamped before the conversion (a stored value out of range must not be UB).
  const auto count = [&number](const char* key) {
    return static_cast<int32_t>(std::clamp(number(key), 0.0, static_cast<double>(INT32_MAX)));
  };
  metrics->set_heldout_records(count("heldout_records"));
  metrics->set_rmse(number("rmse"));
  metrics->set_kendall_tau(number("kendall_tau"));
  metrics->set_pairwise_accuracy(number("pairwise_accuracy"));
  metrics->set_train_records(count("train_records"));
  metrics->set_validation_records(count("validation_records"));
  metrics->set_train_seconds(number("train_seconds"));
}

apq::v1::TrainingJob TrainingJobToProto(const TrainingJobRecord& job) {
  apq::v1::TrainingJob proto;
  proto.set_id(job.id);
  // The request was serialized by Submit; a record that does not parse leaves it empty.
  proto.mutable_request()->ParseFromString(job.request);
  proto.set_state(static_cast<apq::v1::JobState>(job.state));
  proto.set_error(job.error);
  proto.set_stage(job.stage);
  proto.set_epoch(job.epoch);
  proto.set_max_epochs(job.max_epochs);
  proto.set_validation_rmse(job.validation_rmse);
  proto.set_predictor_version(job.predictor_version);
  if (!job.predictor_version.empty()) {
    PredictorMetricsFromJson(job.metrics_json, proto.mutable_metrics());
  }
  proto.set_created_unix_s(job.created_unix_s);
  proto.set_started_unix_s(job.started_unix_s);
  proto.set_finished_unix_s(job.finished_unix_s);
  return proto;
}

absl::StatusOr<std::unique_ptr<TrainingManager>> TrainingManager::Create(const Options& options,
                                                                         Catalog& catalog,
                                                                         Store& store) {
  if (options.queue_capacity < 1 || options.threads < 1) {
    return absl::InvalidArgumentError("training queue capacity and threads must be >= 1");
  }
  if (!options.replica.holder.empty() && (options.replica.lease < absl::Seconds(1) ||
                                          options.replica.poll_interval <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        "training replica lease must be >= 1 s and its poll interval > 0");
  }
  std::unique_ptr<TrainingManager> manager(new TrainingManager(options, catalog, store));
  std::vector<TrainingJobRecord> unfinished;
  // A replica recovers nothing: unfinished jobs are claimed from the store, by any replica,
  // once their leases are free.
  for (int64_t offset = 0; options.replica.holder.empty(); offset += 1000) {
    ASSIGN_OR_RETURN(
        std::vector<TrainingJobRecord> page,
        store.training_jobs().ListTrainingJobs(/*unfinished_only=*/true, offset, 1000));
    unfinished.insert(unfinished.end(), page.begin(), page.end());
    if (page.size() < 1000) break;
  }
  // Listed newest first; queued oldest first.
  std::vector<std::string> recovered;
  for (auto job = unfinished.rbegin(); job != unfinished.rend(); ++job) {
    recovered.push_back(job->id);
  }
  // One training at a time: it uses every LibTorch thread it is given.
  JobRunner::Work run = [raw = manager.get()](const std::string& job_id,
                                              const JobRunner::Control& control) {
    raw->RunJob(job_id, control);
  };
  ASSIGN_OR_RETURN(manager->runner_, JobRunner::Start({"training", 1, options.queue_capacity},
                                                      std::move(run), std::move(recovered)));
  if (manager->is_replica()) {
    manager->replica_thread_ = std::thread([raw = manager.get()] { raw->ReplicaLoop(); });
  }
  return manager;
}

TrainingManager::~TrainingManager() {
  if (replica_thread_.joinable()) {
    {
      absl::MutexLock lock(&replica_mutex_);
      stopping_ = true;
    }
    replica_thread_.join();
  }
  // Running jobs stop after their current epoch and stay unfinished.
  runner_->Stop();
  if (!is_replica()) return;
  std::vector<std::string> held;
  {
    absl::MutexLock lock(&replica_mutex_);
    for (const auto& [job_id, renewed] : held_) held.push_back(job_id);
  }
  for (const std::string& job_id : held) {
    // Another replica may claim it at once instead of after the lease.
    store_.training_jobs().ReleaseTrainingLease(job_id, options_.replica.holder).IgnoreError();
  }
}

void TrainingManager::ReplicaLoop() {
  while (true) {
    {
      absl::MutexLock lock(&replica_mutex_);
      const auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(replica_mutex_) {
        return stopping_ || wake_;
      };
      replica_mutex_.AwaitWithTimeout(absl::Condition(&woken), options_.replica.poll_interval);
      if (stopping_) return;
      wake_ = false;
    }
    RenewLeases();
    ClaimJobs();
  }
}

void TrainingManager::RenewLeases() {
  const absl::Time now = absl::Now();
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&replica_mutex_);
    for (const auto& [job_id, renewed] : held_) {
      if (now - renewed >= options_.replica.lease / 3) due.push_back(job_id);
    }
  }
  for (const std::string& job_id : due) {
    absl::StatusOr<LeaseRenewal> renewal = store_.training_jobs().RenewTrainingLease(
        job_id, options_.replica.holder,
        NowUnixSeconds() + absl::ToDoubleSeconds(options_.replica.lease));
    if (renewal.ok()) {
      {
        absl::MutexLock lock(&replica_mutex_);
        if (held_.count(job_id) > 0) held_[job_id] = now;
      }
      if (renewal->cancel_requested) runner_->Cancel(job_id);
      continue;
    }
    if (absl::IsFailedPrecondition(renewal.status()) || absl::IsNotFound(renewal.status())) {
      // Lost (another replica holds it now), or it ended: stop it here without ending it.
      runner_->Abandon(job_id);
      absl::MutexLock lock(&replica_mutex_);
      held_.erase(job_id);
      continue;
    }
    // The store, for a moment: the lease lasts three renewal periods.
    std::fprintf(stderr, "apqd: renewing the lease of training job %s: %s\n", job_id.c_str(),
                 renewal.status().ToString().c_str());
  }
}

void TrainingManager::ClaimJobs() {
  while (runner_->idle_workers() > 0) {
    const double now = NowUnixSeconds();
    absl::StatusOr<std::optional<ClaimedTrainingJob>> claimed =
        store_.training_jobs().ClaimTrainingJob(
            options_.replica.holder, now, now + absl::ToDoubleSeconds(options_.replica.lease));
    if (!claimed.ok()) {
      std::fprintf(stderr, "apqd: claiming a training job: %s\n",
                   claimed.status().ToString().c_str());
      return;
    }
    if (!claimed->has_value()) return;
    const std::string job_id = (*claimed)->job.id;
    {
      absl::MutexLock lock(&replica_mutex_);
      held_[job_id] = absl::Now();
    }
    if ((*claimed)->cancel_requested) {
      // Cancelled while nobody held it: it ends here, untrained.
      Finish(job_id, JobState::kCancelled, "cancelled", nullptr);
      absl::MutexLock lock(&replica_mutex_);
      held_.erase(job_id);
      continue;
    }
    runner_->EnqueueClaimed(job_id);
  }
}

absl::StatusOr<apq::v1::TrainingJob> TrainingManager::CancelShared(const std::string& job_id) {
  ASSIGN_OR_RETURN(const CancelRequestOutcome outcome,
                   store_.training_jobs().RequestTrainingCancel(job_id, NowUnixSeconds()));
  if (outcome == CancelRequestOutcome::kRequested) {
    // Held here: stopped at once, not at the next renewal.
    absl::MutexLock lock(&replica_mutex_);
    if (held_.count(job_id) > 0) runner_->Cancel(job_id);
  }
  ASSIGN_OR_RETURN(const TrainingJobRecord job, store_.training_jobs().GetTrainingJob(job_id));
  return TrainingJobToProto(job);
}

absl::StatusOr<apq::v1::TrainingJob> TrainingManager::Submit(
    const apq::v1::TrainPredictorRequest& original) {
  apq::v1::TrainPredictorRequest request = original;
  RETURN_IF_ERROR(FillAndValidate(&request));
  ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(request.space()));
  ASSIGN_OR_RETURN(DatasetRecord dataset, store_.datasets().GetDataset(request.dataset()));
  if (dataset.space != request.space()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: ", dataset.name,
                                                   " holds records of space ", dataset.space,
                                                   ", not ", request.space()));
  }
  RETURN_IF_ERROR(CheckRecordsSuffice(*space, static_cast<PredictorTrainingKind>(request.kind()),
                                      dataset.fp32_records, dataset.records - dataset.fp32_records,
                                      request.holdout_fraction()));
  TrainingJobRecord job;
  job.space = request.space();
  job.dataset = request.dataset();
  job.request = request.SerializeAsString();
  job.created_unix_s = NowUnixSeconds();
  if (is_replica()) {
    // Queued in the store for whichever replica claims it; the bound counts every replica's.
    ASSIGN_OR_RETURN(const std::vector<TrainingJobRecord> waiting,
                     store_.training_jobs().ListTrainingJobs(/*unfinished_only=*/true, 0,
                                                             options_.queue_capacity + 1));
    if (static_cast<int>(waiting.size()) > options_.queue_capacity) {
      return absl::ResourceExhaustedError(absl::StrCat("the training queue is full (",
                                                       options_.queue_capacity,
                                                       " unfinished jobs); try again later"));
    }
    ASSIGN_OR_RETURN(job.id, store_.training_jobs().CreateTrainingJob(job));
    {
      absl::MutexLock lock(&replica_mutex_);
      wake_ = true;
    }
    return TrainingJobToProto(job);
  }
  // Reserved before the row is written, so a full queue stores nothing; stored outside any
  // lock, so a slow store write does not stall the running job's progress.
  ASSIGN_OR_RETURN(JobRunner::Slot slot, runner_->Reserve());
  absl::StatusOr<std::string> id = store_.training_jobs().CreateTrainingJob(job);
  if (!id.ok()) return id.status();
  runner_->Enqueue(std::move(slot), *id);
  job.id = *std::move(id);
  return TrainingJobToProto(job);
}

absl::StatusOr<apq::v1::TrainingJob> TrainingManager::Cancel(const std::string& job_id) {
  if (is_replica()) return CancelShared(job_id);
  ASSIGN_OR_RETURN(TrainingJobRecord job, store_.training_jobs().GetTrainingJob(job_id));
  const auto ended = [&job_id] {
    return absl::FailedPreconditionError(
        absl::StrCat("training job ", job_id, " has already ended"));
  };
  if (IsTerminal(job.state)) return ended();
  const JobRunner::CancelOutcome outcome = runner_->Cancel(job_id);
  const bool running = outcome == JobRunner::CancelOutcome::kSignalled;
  if (!running) {
    // Queued, or held by no worker (a store write that failed earlier left it unfinished):
    // it ends here.
    const absl::Status cancelled = store_.training_jobs().FinishTrainingJob(
        job_id, JobState::kCancelled, "cancelled", NowUnixSeconds(), /*predictor=*/nullptr);
    if (!cancelled.ok()) {
      if (outcome == JobRunner::CancelOutcome::kDequeued) runner_->Requeue(job_id);
      return absl::IsFailedPrecondition(cancelled) ? ended() : cancelled;
    }
  }
  ASSIGN_OR_RETURN(job, store_.training_jobs().GetTrainingJob(job_id));
  // A running job that ended on its own meanwhile was not cancelled.
  if (running && IsTerminal(job.state) && job.state != JobState::kCancelled) return ended();
  return TrainingJobToProto(job);
}

void TrainingManager::Finish(const std::string& job_id, JobState state, const std::string& error,
                             const PredictorRecord* predictor) {
  // A job must not stay running: a failed write (a busy or full disk) is retried, then the
  // job ends failed without its predictor.
  const absl::Status finished = WriteWithRetries([&] {
    return store_.training_jobs().FinishTrainingJob(job_id, state, error, NowUnixSeconds(),
                                                    predictor);
  });
  if (absl::IsFailedPrecondition(finished)) {
    // The job has ended: by this write when its acknowledgement was lost (the retry found it
    // ended), or by a cancel. Either way the store holds a consistent end.
    absl::StatusOr<TrainingJobRecord> job = store_.training_jobs().GetTrainingJob(job_id);
    if (job.ok() && IsTerminal(job->state)) return;
  }
  if (!finished.ok() && predictor != nullptr && !absl::IsFailedPrecondition(finished)) {
    Finish(job_id, JobState::kFailed,
           absl::StrCat("storing the trained predictor: ", finished.message()), nullptr);
    return;
  }
  if (!finished.ok()) {
    std::fprintf(stderr, "apqd: cannot end training job %s: %s\n", job_id.c_str(),
                 finished.ToString().c_str());
  }
}

void TrainingManager::RunJob(const std::string& job_id, const JobRunner::Control& control) {
  // A replica holds the job's lease while it runs; the end of the job (FinishTrainingJob)
  // clears it in the store, a stop leaves it to be released or to expire.
  // A job stopped by shutdown stays held, so that the destructor releases its lease.
  struct Held {
    TrainingManager* manager;
    const std::string& job_id;
    const JobRunner::Control& control;
    ~Held() {
      if (!manager->is_replica() || control.shutting_down()) return;
      absl::MutexLock lock(&manager->replica_mutex_);
      manager->held_.erase(job_id);
    }
  } held{this, job_id, control};
  absl::StatusOr<TrainingJobRecord> job = store_.training_jobs().GetTrainingJob(job_id);
  if (!job.ok()) {
    Finish(job_id, JobState::kFailed, absl::StrCat("cannot load the job: ", job.status().message()),
           nullptr);
    return;
  }
  if (IsTerminal(job->state)) return;
  apq::v1::TrainPredictorRequest request;
  if (!request.ParseFromString(job->request)) {
    Finish(job_id, JobState::kFailed, "the stored request does not parse", nullptr);
    return;
  }
  if (const absl::Status running =
          store_.training_jobs().MarkTrainingRunning(job_id, NowUnixSeconds());
      !running.ok()) {
    Finish(job_id, JobState::kFailed, running.ToString(), nullptr);
    return;
  }
  absl::StatusOr<const oface::SearchSpace*> space = catalog_.FindSpace(request.space());
  if (!space.ok()) {
    Finish(job_id, JobState::kFailed, space.status().ToString(), nullptr);
    return;
  }
  absl::StatusOr<std::vector<MeasurementRow>> rows =
      store_.datasets().ListMeasurements(request.dataset(), std::nullopt);
  if (!rows.ok()) {
    Finish(job_id, JobState::kFailed, rows.status().ToString(), nullptr);
    return;
  }

  PredictorTrainingOptions options;
  options.kind = static_cast<PredictorTrainingKind>(request.kind());
  options.seed = request.seed();
  options.holdout_fraction = request.holdout_fraction();
  options.max_epochs = request.max_epochs();
  options.learning_rate = request.learning_rate();
  options.threads = options_.threads;
  options.name = absl::StrCat(request.space(), "-", KindName(request.kind()));
  ProgressThrottle throttle(kProgressInterval);
  // The latest progress, written once more when training ends (writes are throttled).
  struct Progress {
    std::string stage;
    int epoch = 0;
    int max_epochs = 0;
    double validation_rmse = 0.0;
  } latest;
  options.on_progress = [&](const std::string& stage, int epoch, int max_epochs,
                            double validation_rmse) {
    if (control.stop_requested()) return false;
    latest = {stage, epoch, max_epochs, validation_rmse};
    if (throttle.ShouldWrite(stage, epoch == max_epochs, absl::Now())) {
      // A failed progress write is not worth failing the training for; the next one retries.
      store_.training_jobs()
          .UpdateTrainingProgress(job_id, stage, epoch, max_epochs, validation_rmse)
          .IgnoreError();
    }
    return true;
  };
  absl::StatusOr<TrainedPredictor> trained = TrainPredictorFromRows(**space, *rows, options);
  if (control.shutting_down()) return;  // Stays running; the next process runs it again.
  if (!latest.stage.empty()) {
    store_.training_jobs()
        .UpdateTrainingProgress(job_id, latest.stage, latest.epoch, latest.max_epochs,
                                latest.validation_rmse)
        .IgnoreError();
  }
  if (!trained.ok()) {
    const bool cancelled = absl::IsCancelled(trained.status());
    Finish(job_id, cancelled ? JobState::kCancelled : JobState::kFailed,
           cancelled ? "cancelled" : static_cast<std::string>(trained.status().message()), nullptr);
    return;
  }
  // A cancel that came after the last epoch (early stopping, scoring) still wins.
  if (control.cancel_requested()) {
    Finish(job_id, JobState::kCancelled, "cancelled", nullptr);
    return;
  }
  PredictorRecord predictor;
  predictor.space = request.space();
  predictor.version = trained->version;
  predictor.kind = trained->kind;
  predictor.artifact = std::move(trained->artifact);
  predictor.metrics_json = PredictorMetricsJson(*trained, job_id);
  predictor.dataset = request.dataset();
  predictor.created_unix_s = NowUnixSeconds();
  predictor.is_default = request.make_default();
  Finish(job_id, JobState::kSucceeded, "", &predictor);
}

}  // namespace apq::server
