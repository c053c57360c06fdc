#include "server/job_manager.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "oface/fashion_mnist.h"
#include "oface/search_space.h"
#include "search/pareto.h"
#include "server/background_commits.h"
#include "server/candidate_metrics.h"
#include "server/job_artifacts.h"
#include "server/pending_steps.h"
#include "server/running_front.h"
#include "server/search_request.h"

namespace apq::server {
namespace {

// Whether the space searches bitwidths: its finalists are measured at their bit policy.
bool HasBitsGenes(const oface::SearchSpace& space) {
  return std::any_of(space.genes().begin(), space.genes().end(), oface::IsBitsGene);
}

// The stage, the verification's progress, the deployable best and the engine's best of a
// stored job, into a Job or a JobProgress.
template <typename Message>
void FillStageAndBests(const JobRecord& job, const apq::v1::SubmitSearchRequest& request,
                       Message* out) {
  out->set_stage(job.stage == JobStage::kVerification ? apq::v1::JOB_STAGE_VERIFICATION
                                                      : apq::v1::JOB_STAGE_SEARCH);
  apq::v1::VerificationProgress* verification = out->mutable_verification();
  verification->set_top_k(request.verification().top_k());
  verification->set_finalists(job.verification_finalists);
  verification->set_measured(job.verification_measured);
  if (job.best) *out->mutable_predicted_best() = CandidateToProto(job.id, *job.best);
  if (job.verified_best) {
    *out->mutable_best() = CandidateToProto(job.id, *job.verified_best);
  } else if (job.best) {
    *out->mutable_best() = out->predicted_best();
  }
}

}  // namespace

apq::v1::Candidate CandidateToProto(const std::string& job_id, const CandidateRecord& candidate) {
  apq::v1::Candidate proto;
  proto.set_id(candidate.id);
  if (candidate.id > 0) proto.set_name(absl::StrCat("jobs/", job_id, "/candidates/", candidate.id));
  proto.set_generation(candidate.generation);
  proto.set_config_json(candidate.config_json);
  proto.set_feasible(candidate.feasible);
  apq::v1::Metrics* metrics = proto.mutable_metrics();
  if (candidate.accuracy) metrics->set_accuracy(*candidate.accuracy);
  if (candidate.latency_ms) metrics->set_latency_ms(*candidate.latency_ms);
  if (candidate.energy_mj) metrics->set_energy_mj(*candidate.energy_mj);
  if (candidate.size_mb) metrics->set_size_mb(*candidate.size_mb);
  if (candidate.bitops) metrics->set_bitops(*candidate.bitops);
  for (absl::string_view metric : absl::StrSplit(candidate.modelled, ',', absl::SkipEmpty())) {
    metrics->add_modelled(static_cast<std::string>(metric));
  }
  if (const std::optional<CandidateMeasurement>& measured = candidate.measured) {
    metrics->set_measured_accuracy(measured->accuracy);
    metrics->set_measured_method(measured->method);
    metrics->set_measured_seconds(measured->seconds);
    metrics->set_measured_split(measured->split);
  }
  proto.set_on_pareto_front(candidate.on_pareto_front);
  proto.set_times_seen(candidate.times_seen);
  return proto;
}

apq::v1::Job JobToProto(const JobRecord& job, const search::EngineRegistry& engines) {
  apq::v1::Job proto;
  proto.set_id(job.id);
  proto.set_state(static_cast<apq::v1::JobState>(job.state));
  if (proto.mutable_request()->ParseFromString(job.request)) {
    proto.set_engine(EngineName(proto.request()));
    proto.set_total_generations(TotalSteps(engines, proto.request()));
  }
  proto.set_generations_done(std::max(0, job.generations_done));
  proto.set_candidates_evaluated(job.candidates_evaluated);
  proto.set_rejected_draws(job.rejected_draws);
  FillStageAndBests(job, proto.request(), &proto);
  proto.set_error(job.error);
  proto.set_table_version(job.table_version);
  proto.set_predictor_version(job.predictor_version);
  proto.set_owner(job.owner);
  proto.set_created_unix_s(job.created_unix_s);
  proto.set_started_unix_s(job.started_unix_s);
  proto.set_finished_unix_s(job.finished_unix_s);
  proto.set_elapsed_s(job.elapsed_s);
  proto.set_pareto_front_size(job.pareto_front_size);
  proto.set_sweep_id(job.sweep_id);
  for (const auto& [name, value] : job.engine_metrics) {
    (*proto.mutable_engine_metrics())[name] = value;
  }
  return proto;
}

apq::v1::JobProgress JobManager::ProgressFromRecord(const JobRecord& job) const {
  apq::v1::JobProgress progress;
  progress.set_job_id(job.id);
  progress.set_state(static_cast<apq::v1::JobState>(job.state));
  progress.set_generation(std::max(0, job.generations_done));
  apq::v1::SubmitSearchRequest request;
  if (request.ParseFromString(job.request)) {
    progress.set_total_generations(TotalSteps(engines_, request));
  }
  progress.set_candidates_evaluated(job.candidates_evaluated);
  progress.set_rejected_draws(job.rejected_draws);
  FillStageAndBests(job, request, &progress);
  progress.set_elapsed_s(job.elapsed_s);
  progress.set_error(job.error);
  for (const auto& [name, value] : job.engine_metrics) {
    (*progress.mutable_engine_metrics())[name] = value;
  }
  return progress;
}

absl::Status CopyLabelsFromRequests(JobStore& store) {
  while (true) {
    ASSIGN_OR_RETURN(const std::vector<JobRecord> jobs, store.JobsWithoutLabel(500));
    if (jobs.empty()) return absl::OkStatus();
    for (const JobRecord& job : jobs) {
      apq::v1::SubmitSearchRequest request;
      // A request that cannot be read has no label to list it by.
      const std::string label =
          request.ParseFromString(job.request) ? request.label() : std::string();
      RETURN_IF_ERROR(store.SetJobLabel(job.id, label));
    }
  }
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    const Options& options, Catalog& catalog, JobStore& store, DatasetStore& datasets,
    SupernetHost& supernets, const search::EngineRegistry& engines) {
  if (options.commit_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("commit_interval: must be >= 0, got ",
                                                   absl::FormatDuration(options.commit_interval)));
  }
  if (!options.replica.holder.empty()) {
    if (options.replica.holder.size() > 256) {
      return absl::InvalidArgumentError("replica.holder: at most 256 bytes");
    }
    if (options.replica.lease < absl::Seconds(1)) {
      return absl::InvalidArgumentError(absl::StrCat("replica.lease: must be >= 1s, got ",
                                                     absl::FormatDuration(options.replica.lease)));
    }
    if (options.replica.poll_interval <= absl::ZeroDuration() ||
        options.replica.poll_interval >= options.replica.lease / 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("replica.poll_interval: must be > 0 and < lease / 3, got ",
                       absl::FormatDuration(options.replica.poll_interval)));
    }
  }
  RETURN_IF_ERROR(CopyLabelsFromRequests(store));
  std::unique_ptr<JobManager> manager(
      new JobManager(options, catalog, store, datasets, supernets, engines));
  // Oldest first, so recovered jobs keep their order in the queue. A replica recovers none:
  // it claims them.
  std::vector<JobRecord> unfinished;
  for (JobState state : {JobState::kRunning, JobState::kQueued}) {
    if (manager->is_replica()) break;
    for (int64_t offset = 0;; offset += 1000) {
      ASSIGN_OR_RETURN(std::vector<JobRecord> page,
                       store.ListJobs(state, std::nullopt, offset, 1000));
      unfinished.insert(unfinished.end(), page.begin(), page.end());
      if (page.size() < 1000) break;
    }
  }
  std::stable_sort(
      unfinished.begin(), unfinished.end(),
      [](const JobRecord& a, const JobRecord& b) { return a.created_unix_s < b.created_unix_s; });
  std::vector<std::string> recovered;
  {
    absl::MutexLock lock(&manager->mutex_);
    // The unfinished jobs of one sweep share predictions again.
    std::map<std::string, std::shared_ptr<predictor::SharedPredictions>> sweeps;
    for (const JobRecord& job : unfinished) {
      auto live = std::make_shared<LiveJob>();
      live->progress = manager->ProgressFromRecord(job);
      if (!job.sweep_id.empty()) {
        std::shared_ptr<predictor::SharedPredictions>& shared = sweeps[job.sweep_id];
        if (shared == nullptr) shared = std::make_shared<predictor::SharedPredictions>();
        live->sweep_predictions = shared;
      }
      manager->live_[job.id] = std::move(live);
      recovered.push_back(job.id);
    }
  }
  JobRunner::Work run = [raw = manager.get()](const std::string& job_id,
                                              const JobRunner::Control& control) {
    raw->RunJob(job_id, control);
    if (raw->is_replica()) {
      // Ended (the store cleared the lease), stopped by a shutdown (released: another replica
      // may resume it at once) or abandoned (held by another now: releasing changes nothing).
      static_cast<void>(raw->store_.ReleaseLease(job_id, raw->options_.replica.holder));
      absl::MutexLock lock(&raw->replica_mutex_);
      raw->held_.erase(job_id);
    }
  };
  ASSIGN_OR_RETURN(manager->runner_,
                   JobRunner::Start({"job", options.workers, options.queue_capacity},
                                    std::move(run), std::move(recovered)));
  if (manager->is_replica()) {
    manager->replica_thread_ = std::thread([raw = manager.get()] { raw->ReplicaLoop(); });
  }
  return manager;
}

JobManager::~JobManager() {
  // The workers stop first (running jobs between steps) while the replica thread still renews
  // their leases; it claims nothing once the runner stops.
  runner_->Stop();
  if (replica_thread_.joinable()) {
    {
      absl::MutexLock lock(&replica_mutex_);
      replica_stopping_ = true;
    }
    replica_thread_.join();
  }
  runner_.reset();
  // Claimed jobs that never started here: free for another replica at once.
  absl::MutexLock lock(&replica_mutex_);
  for (const auto& [job_id, renewed] : held_) {
    static_cast<void>(store_.ReleaseLease(job_id, options_.replica.holder));
  }
  held_.clear();
}

void JobManager::ReplicaLoop() {
  while (true) {
    {
      absl::MutexLock lock(&replica_mutex_);
      replica_mutex_.AwaitWithTimeout(
          absl::Condition(
              +[](JobManager* manager) ABSL_EXCLUSIVE_LOCKS_REQUIRED(manager->replica_mutex_) {
                return manager->replica_stopping_ || manager->claim_soon_;
              },
              this),
          options_.replica.poll_interval);
      if (replica_stopping_) return;
      claim_soon_ = false;
    }
    RenewLeases();
    ClaimJobs();
    RelayRemoteProgress();
  }
}

// The message FenceLease's FAILED_PRECONDITION starts with.
constexpr absl::string_view kLeaseLost = "lease lost: ";

bool JobManager::IsLeaseLost(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) && absl::StartsWith(status.message(), kLeaseLost);
}

absl::Status JobManager::FenceLease(const std::string& job_id) {
  if (!is_replica()) return absl::OkStatus();
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&replica_mutex_);
    auto held = held_.find(job_id);
    if (held == held_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat(kLeaseLost, "job ", job_id, " is not held by ", options_.replica.holder));
    }
    // Renewed less than half a lease ago: no other replica can claim it for at least half a
    // lease more, longer than a write takes.
    if (now - held->second < options_.replica.lease / 2) return absl::OkStatus();
  }
  absl::StatusOr<LeaseRenewal> renewal =
      store_.RenewLease(job_id, options_.replica.holder,
                        NowUnixSeconds() + absl::ToDoubleSeconds(options_.replica.lease));
  if (renewal.ok()) {
    absl::MutexLock lock(&replica_mutex_);
    auto held = held_.find(job_id);
    if (held != held_.end()) held->second = now;
    return absl::OkStatus();
  }
  if (absl::IsFailedPrecondition(renewal.status()) || absl::IsNotFound(renewal.status())) {
    // Claimed by another replica after the lease expired (or ended elsewhere): this replica
    // must not write to it again.
    runner_->Abandon(job_id);
    {
      absl::MutexLock lock(&replica_mutex_);
      held_.erase(job_id);
    }
    return absl::FailedPreconditionError(absl::StrCat(kLeaseLost, renewal.status().message()));
  }
  return renewal.status();  // Transient: the write's retries fence again.
}

void JobManager::RenewLeases() {
  std::vector<std::string> due;
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&replica_mutex_);
    for (const auto& [job_id, renewed] : held_) {
      if (now - renewed >= options_.replica.lease / 3) due.push_back(job_id);
    }
  }
  for (const std::string& job_id : due) {
    absl::StatusOr<LeaseRenewal> renewal =
        store_.RenewLease(job_id, options_.replica.holder,
                          NowUnixSeconds() + absl::ToDoubleSeconds(options_.replica.lease));
    if (renewal.ok()) {
      {
        absl::MutexLock lock(&replica_mutex_);
        auto held = held_.find(job_id);
        if (held != held_.end()) held->second = now;
      }
      if (renewal->cancel_requested && !StopForCancellation(job_id)) {
        // Neither running here nor to run here any more: given back, the next claim
        // (ClaimJob reports the request) ends it with its front.
        static_cast<void>(store_.ReleaseLease(job_id, options_.replica.holder));
        absl::MutexLock lock(&replica_mutex_);
        held_.erase(job_id);
      }
      continue;
    }
    bool lost = absl::IsFailedPrecondition(renewal.status()) || absl::IsNotFound(renewal.status());
    if (!lost) {
      // The database is unreachable for a moment: try again at the next turn. Once a whole
      // lease has passed since the last renewal another replica may hold the job: stop here.
      absl::MutexLock lock(&replica_mutex_);
      auto held = held_.find(job_id);
      lost = held != held_.end() && now - held->second >= options_.replica.lease;
    }
    if (lost) {
      // The lease was lost (another replica claimed the job after it expired) or the job
      // ended or was deleted elsewhere: stop it here without writing to it.
      runner_->Abandon(job_id);
      absl::MutexLock lock(&replica_mutex_);
      held_.erase(job_id);
    }
  }
}

bool JobManager::StopForCancellation(const std::string& job_id) {
  switch (runner_->Cancel(job_id)) {
    case JobRunner::CancelOutcome::kSignalled:
      return true;  // Its worker records the cancellation.
    case JobRunner::CancelOutcome::kDequeued:
    case JobRunner::CancelOutcome::kNotHeld:
      break;
  }
  return false;
}

void JobManager::ClaimJobs() {
  while (runner_->idle_workers() > 0) {
    const double now = NowUnixSeconds();
    absl::StatusOr<std::optional<ClaimedJob>> claimed = store_.ClaimJob(
        options_.replica.holder, now, now + absl::ToDoubleSeconds(options_.replica.lease));
    if (!claimed.ok() || !claimed->has_value()) return;
    // A job that could not be taken was released: no claiming again at once this turn.
    if (!TakeClaimedJob(**claimed)) return;
  }
}

bool JobManager::TakeClaimedJob(const ClaimedJob& claimed) {
  {
    absl::MutexLock lock(&replica_mutex_);
    if (held_.count(claimed.job_id) > 0) {
      // Claimed again after its lease lapsed while it still runs (or waits) here: it goes on
      // here under the new lease; a second copy would run it twice.
      held_[claimed.job_id] = absl::Now();
      return true;
    }
    held_[claimed.job_id] = absl::Now();
  }
  absl::StatusOr<JobRecord> job = store_.GetJob(claimed.job_id);
  if (!job.ok()) {
    static_cast<void>(store_.ReleaseLease(claimed.job_id, options_.replica.holder));
    absl::MutexLock lock(&replica_mutex_);
    held_.erase(claimed.job_id);
    return false;
  }
  {
    absl::MutexLock lock(&mutex_);
    std::shared_ptr<LiveJob>& live = live_[claimed.job_id];
    if (live == nullptr) {
      live = std::make_shared<LiveJob>();
      live->progress = ProgressFromRecord(*job);
    }
    live->sweep_id = job->sweep_id;
    if (!job->sweep_id.empty() && live->sweep_predictions == nullptr) {
      // The jobs of one sweep that run here share their predictions.
      for (const auto& [other_id, other] : live_) {
        if (other->sweep_predictions != nullptr && other->sweep_id == job->sweep_id) {
          live->sweep_predictions = other->sweep_predictions;
          break;
        }
      }
      if (live->sweep_predictions == nullptr) {
        live->sweep_predictions = std::make_shared<predictor::SharedPredictions>();
      }
    }
  }
  if (claimed.cancel_requested) {
    // Cancelled while its previous holder had it: it ends here, keeping what it stored, with
    // the front of what it stored.
    apq::v1::SubmitSearchRequest request;
    absl::StatusOr<search::CostMetric> pareto_cost =
        request.ParseFromString(job->request)
            ? CostMetricFromProto(request.pareto_cost(), "pareto_cost")
            : absl::StatusOr<search::CostMetric>(
                  absl::DataLossError("the stored request does not parse"));
    if (pareto_cost.ok()) {
      EndWithFront(claimed.job_id, JobState::kCancelled, "cancelled by request", job->elapsed_s,
                   *pareto_cost);
    } else {
      EndJob(claimed.job_id, JobState::kCancelled, "cancelled by request", job->elapsed_s, {});
    }
    absl::MutexLock lock(&replica_mutex_);
    held_.erase(claimed.job_id);
    return true;
  }
  runner_->EnqueueClaimed(claimed.job_id);
  return true;
}

void JobManager::RelayRemoteProgress() {
  // Live jobs this replica does not hold: submitted or watched here, run by another.
  std::vector<std::string> remote;
  {
    absl::MutexLock replica_lock(&replica_mutex_);
    absl::MutexLock lock(&mutex_);
    for (auto it = live_.begin(); it != live_.end();) {
      if (held_.count(it->first) > 0) {
        ++it;
      } else if (it->second->listeners.empty()) {
        // Nobody here watches it: nothing to relay (it is read again when watched).
        it = live_.erase(it);
      } else {
        remote.push_back(it->first);
        ++it;
      }
    }
  }
  for (const std::string& job_id : remote) {
    absl::StatusOr<JobRecord> job = store_.GetJob(job_id);
    if (absl::IsNotFound(job.status())) {
      // Ended and deleted through another replica between two reads: its watchers are told,
      // so that their streams end.
      apq::v1::JobProgress gone;
      gone.set_job_id(job_id);
      gone.set_state(apq::v1::JOB_STATE_CANCELLED);
      gone.set_error("the job was deleted");
      Publish(job_id, gone);
      continue;
    }
    if (!job.ok()) continue;
    const apq::v1::JobProgress progress = ProgressFromRecord(*job);
    {
      absl::MutexLock lock(&mutex_);
      auto found = live_.find(job_id);
      if (found == live_.end() ||
          found->second->progress.SerializeAsString() == progress.SerializeAsString()) {
        continue;
      }
    }
    Publish(job_id, progress);
  }
}

absl::Status JobManager::CheckSharedQueue(int adding) {
  ASSIGN_OR_RETURN(const auto counts, store_.CountJobsByState());
  const auto queued = counts.find(JobState::kQueued);
  const int64_t waiting = queued == counts.end() ? 0 : queued->second;
  if (waiting + adding > options_.queue_capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the job queue is full (", waiting, " jobs waiting over all replicas, ",
                     options_.queue_capacity, " at most); retry later"));
  }
  return absl::OkStatus();
}

void JobManager::ClaimSoon() {
  absl::MutexLock lock(&replica_mutex_);
  claim_soon_ = true;
}

absl::Status JobManager::CheckJobWork(const ResolvedSearch& resolved) const {
  if (options_.max_candidates_per_job <= 0) return absl::OkStatus();
  const std::optional<int64_t> planned = resolved.engine->PlannedCandidates(resolved.options);
  if (planned.has_value() && *planned > options_.max_candidates_per_job) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "quota max_candidates_per_job: engine ", resolved.engine->name(), " would score up to ",
        *planned, " candidates; this server allows ", options_.max_candidates_per_job,
        " per job (apqd --max_candidates_per_job): fewer generations or a smaller population"));
  }
  return absl::OkStatus();
}

absl::Status JobManager::CheckActiveJobs(const std::string& owner, int max_active_jobs,
                                         int adding) {
  if (max_active_jobs <= 0) return absl::OkStatus();
  int active = 0;
  for (const JobState state : {JobState::kQueued, JobState::kRunning}) {
    ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                     store_.ListJobs(state, owner, 0, std::min(max_active_jobs + 1, kMaxPageSize)));
    active += static_cast<int>(jobs.size());
  }
  if (active + adding > max_active_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "quota max_active_jobs: token ", owner, " has ", active,
        " jobs queued or running and may have ", max_active_jobs, " at once; this request adds ",
        adding, ". Wait for some to end or cancel them"));
  }
  return absl::OkStatus();
}

absl::StatusOr<apq::v1::Job> JobManager::Submit(const apq::v1::SubmitSearchRequest& request,
                                                const std::string& owner, int max_active_jobs) {
  ASSIGN_OR_RETURN(
      ResolvedSearch resolved,
      ResolveSearch(catalog_, engines_, request, request.table_version(), "", &supernets_));
  RETURN_IF_ERROR(CheckVerificationTargets(request));
  RETURN_IF_ERROR(CheckJobWork(resolved));
  absl::MutexLock submitting(&submit_mutex_);
  RETURN_IF_ERROR(CheckActiveJobs(owner, max_active_jobs, 1));
  apq::v1::SubmitSearchRequest filled = request;
  WriteResolvedEngine(resolved, &filled);
  filled.set_table_version(resolved.cost.table_version);

  // The queue slot is reserved before the row is written, so a full queue stores nothing. A
  // replica's queue is the store's queued jobs, claimed by any replica.
  std::optional<JobRunner::Slot> slot;
  if (is_replica()) {
    RETURN_IF_ERROR(CheckSharedQueue(1));
  } else {
    ASSIGN_OR_RETURN(slot, runner_->Reserve());
  }
  JobRecord job;
  job.owner = owner;
  job.space = filled.space();
  job.device = filled.device();
  job.label = filled.label();
  job.table_version = resolved.cost.table_version;
  job.predictor_version = resolved.predictor.version;
  job.request = filled.SerializeAsString();
  job.state = JobState::kQueued;
  job.created_unix_s = NowUnixSeconds();
  ASSIGN_OR_RETURN(job.id, store_.CreateJob(job));
  {
    auto live = std::make_shared<LiveJob>();
    live->progress = ProgressFromRecord(job);
    absl::MutexLock lock(&mutex_);
    live_[job.id] = std::move(live);
  }
  if (slot.has_value()) {
    runner_->Enqueue(*std::move(slot), job.id);
  } else {
    ClaimSoon();
  }
  return JobToProto(job, engines_);
}

namespace {

// The scenario's search: the common request with the scenario's device, budgets and label.
apq::v1::SubmitSearchRequest ScenarioRequest(const apq::v1::SubmitSearchRequest& common,
                                             const apq::v1::SweepScenario& scenario) {
  apq::v1::SubmitSearchRequest request = common;
  request.set_device(scenario.device());
  *request.mutable_budgets() = scenario.budgets();
  request.set_label(scenario.label());
  return request;
}

// `status` with its message prefixed by "scenarios[<i>]." (or "scenarios[<i>]: " when the
// message does not start with a field name).
absl::Status InScenario(const absl::Status& status, int i) {
  const absl::string_view message = status.message();
  const size_t colon = message.find(": ");
  const bool names_field = colon != absl::string_view::npos &&
                           message.substr(0, colon).find_first_of(" ") == absl::string_view::npos;
  return absl::Status(status.code(),
                      absl::StrCat("scenarios[", i, "]", names_field ? "." : ": ", message));
}

}  // namespace

absl::StatusOr<apq::v1::Sweep> JobManager::SubmitSweep(const apq::v1::SubmitSweepRequest& request,
                                                       const std::string& owner,
                                                       int max_active_jobs) {
  const apq::v1::SubmitSearchRequest& common = request.common();
  if (request.scenarios().empty()) {
    return absl::InvalidArgumentError("scenarios: at least one scenario is required");
  }
  if (request.scenarios_size() > kMaxSweepScenarios) {
    return absl::InvalidArgumentError(absl::StrCat("scenarios: at most ", kMaxSweepScenarios,
                                                   " per sweep, got ", request.scenarios_size()));
  }
  if (!common.device().empty()) {
    return absl::InvalidArgumentError("common.device: set per scenario (scenarios[i].device)");
  }
  if (common.has_budgets()) {
    return absl::InvalidArgumentError("common.budgets: set per scenario (scenarios[i].budgets)");
  }
  if (!common.label().empty()) {
    return absl::InvalidArgumentError("common.label: set per scenario (scenarios[i].label)");
  }
  RETURN_IF_ERROR(CheckVerificationTargets(common));
  // Every scenario resolves before anything is stored.
  std::vector<JobRecord> jobs;
  for (int i = 0; i < request.scenarios_size(); ++i) {
    apq::v1::SubmitSearchRequest scenario = ScenarioRequest(common, request.scenarios(i));
    absl::StatusOr<ResolvedSearch> resolved =
        ResolveSearch(catalog_, engines_, scenario, scenario.table_version(), "", &supernets_);
    if (!resolved.ok()) return InScenario(resolved.status(), i);
    RETURN_IF_ERROR(CheckJobWork(*resolved));
    WriteResolvedEngine(*resolved, &scenario);
    scenario.set_table_version(resolved->cost.table_version);
    JobRecord job;
    job.owner = owner;
    job.space = scenario.space();
    job.device = scenario.device();
    job.label = scenario.label();
    job.table_version = resolved->cost.table_version;
    job.predictor_version = resolved->predictor.version;
    job.request = scenario.SerializeAsString();
    job.created_unix_s = NowUnixSeconds();
    if (!jobs.empty() && job.predictor_version != jobs.front().predictor_version) {
      // The scenarios share predictions, so they must use one predictor.
      return absl::AbortedError(
          "the space's default predictor changed while the sweep was submitted; submit again");
    }
    jobs.push_back(std::move(job));
  }
  absl::MutexLock submitting(&submit_mutex_);
  RETURN_IF_ERROR(CheckActiveJobs(owner, max_active_jobs, static_cast<int>(jobs.size())));
  // The queue slots are reserved before the rows are written, so a full queue stores nothing.
  std::vector<JobRunner::Slot> slots;
  if (is_replica()) {
    const absl::Status fits = CheckSharedQueue(static_cast<int>(jobs.size()));
    if (!fits.ok()) {
      return absl::Status(fits.code(), absl::StrCat("the sweep's ", jobs.size(),
                                                    " scenarios do not fit: ", fits.message()));
    }
  }
  for (size_t i = 0; i < jobs.size() && !is_replica(); ++i) {
    absl::StatusOr<JobRunner::Slot> slot = runner_->Reserve();
    if (!slot.ok()) {
      return absl::Status(slot.status().code(),
                          absl::StrCat("the sweep's ", jobs.size(),
                                       " scenarios do not fit: ", slot.status().message()));
    }
    slots.push_back(*std::move(slot));
  }
  ASSIGN_OR_RETURN(SweepIds ids, store_.CreateSweep(jobs));
  auto shared = std::make_shared<predictor::SharedPredictions>();
  apq::v1::Sweep sweep;
  sweep.set_sweep_id(ids.sweep_id);
  {
    absl::MutexLock lock(&mutex_);
    for (size_t i = 0; i < jobs.size(); ++i) {
      jobs[i].id = ids.job_ids[i];
      jobs[i].sweep_id = ids.sweep_id;
      auto live = std::make_shared<LiveJob>();
      live->progress = ProgressFromRecord(jobs[i]);
      live->sweep_predictions = shared;
      live->sweep_id = ids.sweep_id;
      live_[jobs[i].id] = std::move(live);
    }
  }
  if (is_replica()) ClaimSoon();
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!is_replica()) runner_->Enqueue(std::move(slots[i]), jobs[i].id);
    apq::v1::SweepScenarioResult* result = sweep.add_scenarios();
    *result->mutable_scenario() = request.scenarios(static_cast<int>(i));
    *result->mutable_job() = JobToProto(jobs[i], engines_);
    sweep.set_steps_total(sweep.steps_total() + result->job().total_generations());
  }
  return sweep;
}

absl::StatusOr<apq::v1::Sweep> JobManager::GetSweep(const std::string& sweep_id, bool with_fronts) {
  ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_.ListSweepJobs(sweep_id));
  apq::v1::Sweep sweep;
  sweep.set_sweep_id(sweep_id);
  for (const JobRecord& job : jobs) {
    apq::v1::SweepScenarioResult* result = sweep.add_scenarios();
    *result->mutable_job() = JobToProto(job, engines_);
    const apq::v1::SubmitSearchRequest& request = result->job().request();
    result->mutable_scenario()->set_device(request.device());
    *result->mutable_scenario()->mutable_budgets() = request.budgets();
    result->mutable_scenario()->set_label(request.label());
    const int64_t total = result->job().total_generations();
    sweep.set_steps_total(sweep.steps_total() + total);
    if (!IsTerminal(job.state)) {
      sweep.set_steps_done(sweep.steps_done() + result->job().generations_done());
      continue;
    }
    sweep.set_scenarios_ended(sweep.scenarios_ended() + 1);
    sweep.set_steps_done(sweep.steps_done() + total);
    if (!with_fronts) continue;
    absl::StatusOr<search::CostMetric> cost =
        CostMetricFromProto(request.pareto_cost(), "pareto_cost");
    if (!cost.ok()) continue;  // A stored request is valid; an old one without it has no front.
    ASSIGN_OR_RETURN(std::vector<CandidateRecord> front, ParetoFront(job.id, *cost));
    for (const CandidateRecord& candidate : front) {
      *result->add_pareto_front() = CandidateToProto(job.id, candidate);
    }
  }
  return sweep;
}

absl::StatusOr<std::vector<CandidateRecord>> JobManager::ParetoFront(const std::string& job_id,
                                                                     search::CostMetric cost) {
  std::vector<CandidateRecord> front;
  CandidateQuery query;
  query.job_id = job_id;
  query.pareto_front_only = true;
  query.limit = kMaxPageSize;
  for (;; query.offset += query.limit) {
    ASSIGN_OR_RETURN(CandidatePage page, store_.ListCandidates(query));
    front.insert(front.end(), page.candidates.begin(), page.candidates.end());
    if (page.candidates.empty() || query.offset + query.limit >= page.total) break;
  }
  std::stable_sort(front.begin(), front.end(),
                   [cost](const CandidateRecord& a, const CandidateRecord& b) {
                     return CandidateCost(a, cost).value_or(0) < CandidateCost(b, cost).value_or(0);
                   });
  return front;
}

std::shared_ptr<predictor::SharedPredictions> JobManager::SweepPredictions(
    const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  const auto found = live_.find(job_id);
  return found == live_.end() ? nullptr : found->second->sweep_predictions;
}

absl::Status JobManager::CheckVerificationTargets(const apq::v1::SubmitSearchRequest& request) {
  const apq::v1::Verification& verification = request.verification();
  if (verification.top_k() == 0) return absl::OkStatus();
  if (!supernets_.Has(request.space())) {
    return absl::FailedPreconditionError(
        absl::StrCat("verification: space ", request.space(),
                     " has no trained supernet to measure its finalists with"));
  }
  if (verification.workers() > 0) {
    const int most =
        options_.measurement_runs != nullptr ? options_.measurement_runs->max_workers() : 0;
    if (most == 0) {
      return absl::FailedPreconditionError(
          "verification.workers: this server starts no measurement workers (apqd "
          "--measure_workers 0); measure in the job's process (0)");
    }
    if (verification.workers() > most) {
      return absl::InvalidArgumentError(absl::StrCat(
          "verification.workers: at most ", most, " on this server, got ", verification.workers()));
    }
  }
  return CheckVerificationDataset(request);
}

absl::Status JobManager::CheckVerificationDataset(const apq::v1::SubmitSearchRequest& request) {
  const apq::v1::Verification& verification = request.verification();
  if (verification.dataset().empty()) return absl::OkStatus();
  absl::StatusOr<DatasetRecord> dataset = datasets_.GetDataset(verification.dataset());
  if (absl::IsNotFound(dataset.status())) return absl::OkStatus();  // Created on first use.
  RETURN_IF_ERROR(dataset.status());
  if (dataset->space != request.space()) {
    return absl::FailedPreconditionError(absl::StrCat("verification.dataset: dataset ",
                                                      dataset->name, " holds records of space ",
                                                      dataset->space, ", not ", request.space()));
  }
  const char* validation = oface::DataSplitName(oface::DataSplit::kValidation);
  if (dataset->records > 0 && dataset->split != validation) {
    return absl::FailedPreconditionError(
        absl::StrCat("verification.dataset: dataset ", dataset->name,
                     " holds records measured on split \"", dataset->split,
                     "\"; finalists are measured on ", validation, " (a dataset mixes no splits)"));
  }
  return absl::OkStatus();
}

absl::Status JobManager::Delete(const std::string& job_id) {
  RETURN_IF_ERROR(store_.DeleteJob(job_id, NowUnixSeconds()));
  absl::MutexLock lock(&mutex_);
  live_.erase(job_id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> JobManager::DeleteFinishedBefore(absl::Duration age) {
  const double now = NowUnixSeconds();
  const double cutoff = now - absl::ToDoubleSeconds(age);
  int64_t deleted = 0;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<std::string> ids,
                     store_.DeleteJobsFinishedBefore(cutoff, now, /*limit=*/500));
    deleted += static_cast<int64_t>(ids.size());
    {
      absl::MutexLock lock(&mutex_);
      for (const std::string& id : ids) live_.erase(id);
    }
    if (ids.size() < 500) return deleted;
  }
}

absl::StatusOr<apq::v1::Job> JobManager::Cancel(const std::string& job_id) {
  ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(job_id));
  const auto ended = [&job_id](JobState state) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " already ended (",
                     apq::v1::JobState_Name(static_cast<apq::v1::JobState>(state)), ")"));
  };
  if (IsTerminal(job.state)) return ended(job.state);
  if (is_replica()) {
    // Through the store: a queued, unclaimed job ends there; a claimed one's holder (this
    // replica or another) stops it at its next lease renewal, this one at once.
    absl::StatusOr<CancelRequestOutcome> requested = store_.RequestCancel(job_id, NowUnixSeconds());
    if (!requested.ok()) {
      if (!absl::IsFailedPrecondition(requested.status())) return requested.status();
      ASSIGN_OR_RETURN(job, store_.GetJob(job_id));
      return ended(job.state);
    }
    if (*requested == CancelRequestOutcome::kRequested && !StopForCancellation(job_id)) {
      // Held here but only waiting in the local queue: given back, the next claim (ClaimJob
      // reports the request) ends it with its front. Held elsewhere: its holder stops it at
      // its next renewal.
      bool held_here = false;
      {
        absl::MutexLock lock(&replica_mutex_);
        held_here = held_.erase(job_id) > 0;
      }
      if (held_here) {
        static_cast<void>(store_.ReleaseLease(job_id, options_.replica.holder));
        ClaimSoon();
      }
    }
    ASSIGN_OR_RETURN(job, store_.GetJob(job_id));
    Publish(job_id, ProgressFromRecord(job));
    return JobToProto(job, engines_);
  }
  const JobRunner::CancelOutcome outcome = runner_->Cancel(job_id);
  if (outcome == JobRunner::CancelOutcome::kSignalled) {
    // A running job stops after its current step; its worker records the cancellation.
    return JobToProto(job, engines_);
  }
  // Queued, or held by no worker (a store write that failed earlier left it unfinished): it
  // ends here.
  const absl::Status cancelled =
      store_.FinishJob(job_id, JobState::kCancelled, "cancelled by request", NowUnixSeconds(),
                       job.elapsed_s, /*pareto_front_ids=*/{});
  if (!cancelled.ok()) {
    if (outcome == JobRunner::CancelOutcome::kDequeued) runner_->Requeue(job_id);
    if (!absl::IsFailedPrecondition(cancelled)) return cancelled;
    ASSIGN_OR_RETURN(job, store_.GetJob(job_id));
    return ended(job.state);
  }
  ASSIGN_OR_RETURN(job, store_.GetJob(job_id));
  Publish(job_id, ProgressFromRecord(job));
  return JobToProto(job, engines_);
}

absl::StatusOr<int64_t> JobManager::Watch(const std::string& job_id, Listener listener) {
  {
    absl::MutexLock lock(&mutex_);
    auto found = live_.find(job_id);
    if (found != live_.end()) {
      const int64_t subscription = next_subscription_++;
      listener(found->second->progress);
      found->second->listeners.emplace(subscription, std::move(listener));
      return subscription;
    }
  }
  // Not live: the job ended before this process saw it, or does not exist.
  ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(job_id));
  const apq::v1::JobProgress stored = ProgressFromRecord(job);
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found != live_.end()) {  // Submitted or recovered meanwhile.
    const int64_t subscription = next_subscription_++;
    listener(found->second->progress);
    found->second->listeners.emplace(subscription, std::move(listener));
    return subscription;
  }
  listener(stored);
  const int64_t subscription = next_subscription_++;
  if (is_replica() && !IsTerminal(job.state)) {
    // Run by another replica (or not claimed yet): its stored progress is relayed
    // (RelayRemoteProgress) until it ends.
    auto live = std::make_shared<LiveJob>();
    live->progress = stored;
    live->listeners.emplace(subscription, std::move(listener));
    live_[job_id] = std::move(live);
  }
  return subscription;
}

void JobManager::Unwatch(const std::string& job_id, int64_t subscription) {
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found != live_.end()) found->second->listeners.erase(subscription);
}

size_t JobManager::queued_jobs() const { return runner_->queued(); }

void JobManager::Publish(const std::string& job_id, const apq::v1::JobProgress& progress) {
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found == live_.end()) return;
  const int64_t newly_scored =
      progress.candidates_evaluated() - found->second->progress.candidates_evaluated();
  if (newly_scored > 0) candidates_scored_.fetch_add(newly_scored);
  found->second->progress = progress;
  for (auto& [subscription, listener] : found->second->listeners) listener(progress);
  const auto state = static_cast<JobState>(progress.state());
  if (IsTerminal(state)) live_.erase(found);
}

absl::Status JobManager::ForEachFeasibleCandidate(
    const std::string& job_id, CandidateOrder order, int page_size,
    const std::function<bool(CandidateRecord&)>& visit) {
  CandidateQuery query;
  query.job_id = job_id;
  query.order = order;
  query.feasible = true;
  query.limit = page_size;
  for (;; query.offset += query.limit) {
    ASSIGN_OR_RETURN(CandidatePage page, store_.ListCandidates(query));
    for (CandidateRecord& candidate : page.candidates) {
      if (!visit(candidate)) return absl::OkStatus();
    }
    if (query.offset + static_cast<int64_t>(page.candidates.size()) >= page.total ||
        page.candidates.empty()) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<std::vector<int64_t>> JobManager::ParetoFrontIds(const std::string& job_id,
                                                                search::CostMetric cost) {
  std::vector<int64_t> ids;
  std::vector<search::FrontPoint> points;
  RETURN_IF_ERROR(ForEachFeasibleCandidate(
      job_id, CandidateOrder::kId, kMaxPageSize, [&](CandidateRecord& candidate) {
        const std::optional<double> value = CandidateCost(candidate, cost);
        if (candidate.accuracy && value) {
          ids.push_back(candidate.id);
          points.push_back({*value, *candidate.accuracy});
        }
        return true;
      }));
  std::vector<int64_t> front;
  for (const size_t index : search::ParetoFront(points)) front.push_back(ids[index]);
  return front;
}

absl::StatusOr<JobManager::StoredSteps> JobManager::AppendSteps(const std::string& job_id,
                                                                const GenerationBatch& batch) {
  StoredSteps result;
  int64_t& best_id = result.best_id;
  best_id = batch.best ? batch.best->id : 0;
  const absl::Status stored = WriteWithRetries([&]() -> absl::Status {
    RETURN_IF_ERROR(FenceLease(job_id));
    absl::StatusOr<std::vector<int64_t>> ids = store_.AppendGenerations(job_id, batch);
    if (ids.ok()) {
      if (batch.best_batch_index >= 0) best_id = (*ids)[batch.best_batch_index];
      result.candidate_ids = *std::move(ids);
      return absl::OkStatus();
    }
    if (absl::IsFailedPrecondition(ids.status())) {
      // After a write whose acknowledgement was lost, the retry finds the steps stored: the
      // job holds exactly this batch's checkpoint and count.
      absl::StatusOr<JobRecord> job = store_.GetJob(job_id);
      if (job.ok() && !IsTerminal(job->state) && job->checkpoint == batch.checkpoint &&
          job->candidates_evaluated == batch.candidates_evaluated) {
        best_id = job->best ? job->best->id : 0;
        result.candidate_ids.reset();
        return absl::OkStatus();
      }
    }
    return ids.status();
  });
  if (!stored.ok()) {
    const std::string steps =
        batch.first_generation == batch.last_generation
            ? absl::StrCat("step ", batch.last_generation)
            : absl::StrCat("steps ", batch.first_generation, "..", batch.last_generation);
    return absl::Status(stored.code(),
                        absl::StrCat("storing ", steps, " of the search: ", stored.message()));
  }
  return result;
}

void JobManager::EndJob(const std::string& job_id, JobState state, const std::string& error,
                        double elapsed_s, const std::vector<int64_t>& pareto_front_ids) {
  const absl::Status finished = WriteWithRetries([&]() -> absl::Status {
    RETURN_IF_ERROR(FenceLease(job_id));
    return store_.FinishJob(job_id, state, error, NowUnixSeconds(), elapsed_s, pareto_front_ids);
  });
  if (IsLeaseLost(finished)) return;  // Another replica runs the job now: not ours to end.
  absl::StatusOr<JobRecord> job = store_.GetJob(job_id);
  // A write whose acknowledgement was lost is retried into FAILED_PRECONDITION: the store
  // holds the end already, and what it holds is what watchers are told.
  if (job.ok() && (finished.ok() || IsTerminal(job->state))) {
    Publish(job_id, ProgressFromRecord(*job));
    return;
  }
  apq::v1::JobProgress progress;
  progress.set_job_id(job_id);
  progress.set_state(apq::v1::JOB_STATE_FAILED);
  progress.set_error(absl::StrCat(error, " (and the store failed: ",
                                  finished.ok() ? job.status().ToString() : finished.ToString(),
                                  ")"));
  Publish(job_id, progress);
}

void JobManager::EndWithFront(const std::string& job_id, JobState state, const std::string& error,
                              double elapsed_s, search::CostMetric pareto_cost,
                              const std::vector<int64_t>* known_front) {
  if (known_front != nullptr) {
    EndJob(job_id, state, error, elapsed_s, *known_front);
    return;
  }
  absl::StatusOr<std::vector<int64_t>> front = ParetoFrontIds(job_id, pareto_cost);
  if (!front.ok()) {
    EndJob(job_id, JobState::kFailed,
           absl::StrCat("cannot read the job's candidates for its Pareto front: ",
                        front.status().ToString()),
           elapsed_s, {});
    return;
  }
  EndJob(job_id, state, error, elapsed_s, *front);
}

void JobManager::RunJob(const std::string& job_id, const JobRunner::Control& control) {
  absl::StatusOr<JobRecord> loaded = store_.GetJob(job_id);
  if (!loaded.ok()) {
    EndJob(job_id, JobState::kFailed,
           absl::StrCat("cannot load the job: ", loaded.status().ToString()), 0, {});
    return;
  }
  JobRecord job = *std::move(loaded);
  if (IsTerminal(job.state)) return;  // Cancelled while queued.
  const auto fail = [&](const std::string& reason) {
    EndJob(job_id, JobState::kFailed, reason, job.elapsed_s, {});
  };
  apq::v1::SubmitSearchRequest request;
  if (!request.ParseFromString(job.request)) return fail("the stored request does not parse");
  const double started = NowUnixSeconds();
  const auto mark_running = [&] {
    return WriteWithRetries([&] {
      RETURN_IF_ERROR(FenceLease(job_id));
      return store_.MarkRunning(job_id, job.started_unix_s > 0 ? job.started_unix_s : started);
    });
  };
  const double previous_elapsed = job.elapsed_s;
  const std::function<double()> elapsed_now = [&] {
    return previous_elapsed + (NowUnixSeconds() - started);
  };

  if (job.stage == JobStage::kVerification) {
    // The engine finished before a restart: its candidates are final, and only the
    // finalists without a stored measurement remain (no predictor or cost table is needed).
    absl::StatusOr<search::CostMetric> pareto_cost =
        CostMetricFromProto(request.pareto_cost(), "pareto_cost");
    if (!pareto_cost.ok())
      return fail(absl::StrCat("cannot run: ", pareto_cost.status().ToString()));
    if (absl::Status running = mark_running(); !running.ok()) {
      return fail(absl::StrCat("cannot start: ", running.ToString()));
    }
    Verify(job_id, request, *pareto_cost, control, elapsed_now);
    return;
  }

  // Pinned: the table version and predictor the job was submitted with, whatever the
  // device's latest table or the space's default predictor has become since.
  absl::StatusOr<ResolvedSearch> resolved = ResolveSearch(
      catalog_, engines_, request, job.table_version, job.predictor_version, &supernets_);
  if (!resolved.ok()) return fail(absl::StrCat("cannot run: ", resolved.status().ToString()));
  if (absl::Status running = mark_running(); !running.ok()) {
    return fail(absl::StrCat("cannot start: ", running.ToString()));
  }
  if (std::shared_ptr<predictor::SharedPredictions> shared = SweepPredictions(job_id)) {
    // The sweep's scenarios score each network once between them; the predictions are the
    // same as without sharing (predictor/shared_predictions.h).
    resolved->predictor.predictor = std::make_unique<predictor::CachingPredictor>(
        std::move(resolved->predictor.predictor), std::move(shared));
  }
  const oface::SearchSpace& space = *resolved->space;

  apq::v1::JobProgress progress = ProgressFromRecord(job);
  progress.set_state(apq::v1::JOB_STATE_RUNNING);
  progress.set_total_generations(resolved->engine->TotalSteps(resolved->options));
  Publish(job_id, progress);

  // Steps are stored in groups (group commits): the first at once, then whenever
  // commit_interval has passed since the last commit and the previous group is stored (with
  // a zero interval: every step), and what remains when the engine returns. Each group's rows,
  // progress, best and checkpoint go in one transaction, so a crash loses only steps whose
  // checkpoint was never stored: the job resumes before them and runs them again to the same
  // record. The groups are stored on a thread of their own while the search goes on
  // (BackgroundCommits); watchers hear of each group once it is stored.
  PendingSteps pending(space, request.keep_all_draws(), job.rejected_draws);
  // The stored best's id, carried while the best stays the one of an earlier group: only
  // the committing thread reads and writes it.
  int64_t best_id = job.best ? job.best->id : 0;
  // The front of the stored candidates, kept group by group so that the job ends without
  // reading its rows back: only from a fresh start (a resumed job's earlier rows are not
  // here) and while every group's row ids are known. Used by the committing thread until
  // commits.Wait().
  std::optional<RunningFront> front;
  if (job.checkpoint.empty()) front.emplace(resolved->pareto_cost);
  BackgroundCommits commits([&](GenerationBatch& batch) -> absl::Status {
    if (batch.best.has_value() && batch.best_batch_index < 0) batch.best->id = best_id;
    ASSIGN_OR_RETURN(StoredSteps stored_steps, AppendSteps(job_id, batch));
    best_id = stored_steps.best_id;
    if (front.has_value() && stored_steps.candidate_ids.has_value()) {
      front->Add(batch.candidates, *stored_steps.candidate_ids);
    } else {
      front.reset();
    }
    // Watchers are told what the store holds (a failed read skips one update).
    if (absl::StatusOr<JobRecord> stored = store_.GetJob(job_id); stored.ok()) {
      Publish(job_id, ProgressFromRecord(*stored));
    }
    return absl::OkStatus();
  });
  absl::Time last_commit = absl::InfinitePast();
  const auto commit = [&]() -> absl::Status {
    // A group that failed to store fails the job (its later steps could not be stored).
    RETURN_IF_ERROR(commits.status());
    GenerationBatch batch = pending.Take(/*stored_best_id=*/0);  // Set when stored.
    batch.elapsed_s = elapsed_now();
    commits.Submit(std::move(batch));
    last_commit = absl::Now();
    return absl::OkStatus();
  };
  const auto on_step = [&](const search::StepReport& report) -> absl::Status {
    // The engine's checkpoint is written only for a step that is stored at once, the run's
    // last, or one after which the job stops (the others' checkpoints are never stored).
    // With a zero interval every step is its own group (Submit waits for the one before).
    const bool commit_now = absl::Now() - last_commit >= options_.commit_interval &&
                            (commits.idle() || options_.commit_interval == absl::ZeroDuration());
    pending.Add(report, commit_now || report.final_step || control.stop_requested());
    return commit_now ? commit() : absl::OkStatus();
  };
  // The server's wall-time limit per job counts the time of every run of the job.
  const auto over_time = [&] {
    return options_.max_job_duration > absl::ZeroDuration() &&
           elapsed_now() > absl::ToDoubleSeconds(options_.max_job_duration);
  };
  // Its rows limit counts every row the job's steps reported (at least the rows they store:
  // a network met again shares its row), in every run.
  std::atomic<int64_t> reported_rows{job.candidates_evaluated +
                                     (request.keep_all_draws() ? job.rejected_draws : 0)};
  const auto over_rows = [&] {
    return options_.max_rows_per_job > 0 && reported_rows.load() >= options_.max_rows_per_job;
  };
  const auto count_and_store = [&](const search::StepReport& report) -> absl::Status {
    reported_rows += static_cast<int64_t>(report.scored.size()) +
                     (request.keep_all_draws() ? report.rejected_total : 0);
    return on_step(report);
  };
  search::SearchProblem problem = resolved->problem();
  std::optional<JobArtifactKeeper> artifacts;
  if (options_.artifacts != nullptr) {
    artifacts.emplace(*options_.artifacts, job_id, request.space());
    problem.artifacts = &*artifacts;
  }
  absl::StatusOr<search::EngineResult> result = resolved->engine->Run(
      problem, resolved->options, request.seed(), count_and_store,
      [&] { return control.stop_requested() || over_time() || over_rows(); }, job.checkpoint);
  const bool timed_out =
      result.ok() && result->cancelled && !control.stop_requested() && !over_rows();
  const bool too_many_rows =
      result.ok() && result->cancelled && !control.stop_requested() && !timed_out;
  if (result.ok() && result->cancelled && !control.cancel_requested() && !timed_out &&
      !too_many_rows) {
    // Server shutdown: the job stays running in the store and resumes on restart from its
    // last stored group, as after a crash; the steps since are run again then. (The
    // group in flight is stored before `commits` goes.)
    return;
  }
  if (!pending.empty() && pending.has_current_checkpoint()) {
    // After a failed commit nothing is pending (Take emptied it): these steps were run after
    // the last commit, and the job's record keeps them whatever ends it.
    if (absl::Status stored = commit(); !stored.ok() && result.ok()) result = stored;
  } else if (!pending.empty()) {
    // No checkpoint follows the last of these steps: a stop that came after its report and
    // before the engine's next check, or a failure. Stored without one, they could not be
    // resumed after; the job's record ends with its stored steps, as after a crash.
    pending.Take(/*stored_best_id=*/0);
    if (result.ok() && !result->cancelled) {
      result = absl::InternalError(
          absl::StrCat("engine ", resolved->engine->name(),
                       " returned without marking its last step (search::StepReport::final_step)"));
    }
  }
  // Every group stored before the job ends.
  if (absl::Status stored = commits.Wait(); !stored.ok() && result.ok()) result = stored;

  if (!result.ok()) {
    EndJob(job_id, JobState::kFailed, result.status().ToString(), elapsed_now(), {});
    return;
  }
  if (timed_out) {
    EndWithFront(job_id, JobState::kFailed,
                 absl::StrCat("stopped after ", absl::FormatDuration(options_.max_job_duration),
                              ", this server's limit per job (apqd --max_job_seconds); the "
                              "candidates stored so far are kept"),
                 elapsed_now(), resolved->pareto_cost, front.has_value() ? &front->ids() : nullptr);
  } else if (too_many_rows) {
    EndWithFront(job_id, JobState::kFailed,
                 absl::StrCat("stopped after ", reported_rows.load(),
                              " rows, this server's limit per job (apqd --max_rows_per_job); the "
                              "rows stored so far are kept"),
                 elapsed_now(), resolved->pareto_cost, front.has_value() ? &front->ids() : nullptr);
  } else if (result->cancelled) {
    EndWithFront(job_id, JobState::kCancelled, "cancelled by request", elapsed_now(),
                 resolved->pareto_cost, front.has_value() ? &front->ids() : nullptr);
  } else if (!result->best) {
    EndWithFront(job_id, JobState::kFailed, "the search found no feasible network", elapsed_now(),
                 resolved->pareto_cost, front.has_value() ? &front->ids() : nullptr);
  } else if (request.verification().top_k() > 0) {
    Verify(job_id, request, resolved->pareto_cost, control, elapsed_now);
  } else {
    EndWithFront(job_id, JobState::kSucceeded, "", elapsed_now(), resolved->pareto_cost,
                 front.has_value() ? &front->ids() : nullptr);
  }
}

absl::StatusOr<std::vector<CandidateRecord>> JobManager::Finalists(const std::string& job_id,
                                                                   int top_k) {
  std::vector<CandidateRecord> finalists;
  absl::flat_hash_set<std::string> configs;
  RETURN_IF_ERROR(ForEachFeasibleCandidate(
      job_id, CandidateOrder::kAccuracyDesc, 1000, [&](CandidateRecord& candidate) {
        if (candidate.accuracy && configs.insert(candidate.config_json).second) {
          finalists.push_back(std::move(candidate));
        }
        return static_cast<int>(finalists.size()) < top_k;
      }));
  return finalists;
}

absl::Status JobManager::AddToDataset(const std::string& dataset, const std::string& space,
                                      const std::string& job_id, const MeasurementRow& row) {
  absl::Status added = WriteWithRetries([&]() -> absl::Status {
    absl::StatusOr<DatasetRecord> held = datasets_.GetDataset(dataset);
    if (absl::IsNotFound(held.status())) {
      DatasetRecord created;
      created.name = dataset;
      created.space = space;
      created.description = absl::StrCat("finalists measured by verifying search ", job_id);
      created.created_unix_s = NowUnixSeconds();
      absl::Status stored = datasets_.CreateDataset(created, {row});
      // Created meanwhile (by another job, or by this write before a lost acknowledgement):
      // add to it as to any.
      if (!absl::IsAlreadyExists(stored)) return stored;
      held = datasets_.GetDataset(dataset);
    }
    RETURN_IF_ERROR(held.status());
    if (held->space != space) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset ", dataset, " holds records of space ", held->space, ", not ", space));
    }
    return datasets_.AddMeasurements(dataset, {row});
  });
  // The dataset holds the row's (method, config): after a restart, or after a write whose
  // acknowledgement was lost. The store checks that in the write's own transaction.
  if (absl::IsAlreadyExists(added)) return absl::OkStatus();
  return added;
}

void JobManager::Verify(const std::string& job_id, const apq::v1::SubmitSearchRequest& request,
                        search::CostMetric pareto_cost, const JobRunner::Control& control,
                        const std::function<double()>& elapsed_now) {
  const auto fail = [&](const std::string& reason) {
    EndJob(job_id, JobState::kFailed, reason, elapsed_now(), {});
  };
  // Cancelled: the job ends with the measurements stored so far. Shutdown: it stays running
  // in its verification stage and resumes at the next start.
  const auto stopped = [&] {
    if (control.cancel_requested()) {
      EndWithFront(job_id, JobState::kCancelled, "cancelled by request", elapsed_now(),
                   pareto_cost);
    }
  };
  const apq::v1::Verification& verification = request.verification();
  absl::StatusOr<const oface::SearchSpace*> space = catalog_.FindSpace(request.space());
  if (!space.ok()) return fail(absl::StrCat("cannot verify: ", space.status().ToString()));
  // Checked at submission, but the dataset may have been made since (by an upload or another
  // job) of another space or split: the job fails before any measurement is paid for.
  if (absl::Status dataset = CheckVerificationDataset(request); !dataset.ok()) {
    return fail(absl::StrCat("cannot verify: ", dataset.ToString()));
  }
  absl::StatusOr<std::vector<CandidateRecord>> finalists = Finalists(job_id, verification.top_k());
  if (!finalists.ok()) {
    return fail(absl::StrCat("cannot read the job's finalists: ", finalists.status().ToString()));
  }
  if (finalists->empty()) return fail("the search found no feasible network");
  // Idempotent: a job resumed in its verification stage finds it begun with this count.
  if (absl::Status begun = WriteWithRetries([&]() -> absl::Status {
        RETURN_IF_ERROR(FenceLease(job_id));
        return store_.BeginVerification(job_id, static_cast<int>(finalists->size()));
      });
      !begun.ok()) {
    return fail(absl::StrCat("cannot begin the verification stage: ", begun.ToString()));
  }
  const auto publish_stored = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(job_id));
    apq::v1::JobProgress progress = ProgressFromRecord(job);
    progress.set_elapsed_s(elapsed_now());
    Publish(job_id, progress);
    return absl::OkStatus();
  };
  if (absl::Status published = publish_stored(); !published.ok()) {
    return fail(absl::StrCat("cannot read the job: ", published.ToString()));
  }

  const bool quantized = HasBitsGenes(**space);
  const auto dataset_row = [&](const CandidateRecord& finalist) {
    MeasurementRow row;
    row.config_json = finalist.config_json;
    row.accuracy = finalist.measured->accuracy;
    row.method = finalist.measured->method;
    row.seconds = finalist.measured->seconds;
    row.seed = request.seed();
    row.split = finalist.measured->split;
    row.created_unix_s = NowUnixSeconds();
    return row;
  };
  const auto add_to_dataset = [&](const CandidateRecord& finalist) -> absl::Status {
    if (verification.dataset().empty()) return absl::OkStatus();
    absl::Status added =
        AddToDataset(verification.dataset(), request.space(), job_id, dataset_row(finalist));
    if (added.ok()) return added;
    return absl::Status(
        added.code(), absl::StrCat("adding the measurement of candidate ", finalist.id,
                                   " to dataset ", verification.dataset(), ": ", added.message()));
  };
  // Measurements stored before a restart reach the dataset first (a row it holds is skipped).
  for (const CandidateRecord& finalist : *finalists) {
    if (!finalist.measured) continue;
    if (absl::Status added = add_to_dataset(finalist); !added.ok()) return fail(added.ToString());
  }

  // Stores a finalist's measurement with the measured best so far, tells the watchers and
  // adds it to the request's dataset.
  const auto record = [&](CandidateRecord& finalist,
                          const CandidateMeasurement& measurement) -> absl::Status {
    finalist.measured = measurement;
    std::vector<search::MeasuredFinalist> scored;
    std::vector<int64_t> ids;
    for (const CandidateRecord& candidate : *finalists) {
      if (!candidate.measured) continue;
      scored.push_back({candidate.measured->accuracy, *candidate.accuracy, candidate.id});
      ids.push_back(candidate.id);
    }
    const int64_t best_id = ids[*search::VerifiedBest(scored)];
    if (absl::Status stored = WriteWithRetries([&]() -> absl::Status {
          RETURN_IF_ERROR(FenceLease(job_id));
          return store_.RecordVerification(job_id, finalist.id, *finalist.measured, best_id);
        });
        !stored.ok()) {
      return absl::Status(stored.code(), absl::StrCat("storing the measurement of finalist ",
                                                      finalist.id, ": ", stored.message()));
    }
    if (absl::Status published = publish_stored(); !published.ok()) {
      return absl::Status(published.code(),
                          absl::StrCat("cannot read the job: ", published.message()));
    }
    return add_to_dataset(finalist);
  };

  if (verification.workers() > 0) {
    if (!VerifyByWorkers(job_id, request, quantized, *finalists, record, control, fail, stopped)) {
      return;
    }
  }
  for (CandidateRecord& finalist : *finalists) {
    if (finalist.measured) continue;
    if (control.stop_requested()) return stopped();
    absl::StatusOr<oface::Genotype> genotype = (*space)->FromJson(finalist.config_json);
    if (!genotype.ok()) {
      return fail(absl::StrCat("finalist ", finalist.id,
                               " does not parse: ", genotype.status().ToString()));
    }
    absl::StatusOr<std::vector<SupernetHost::Measurement>> measured =
        supernets_.Measure(request.space(), {*genotype}, quantized, oface::DataSplit::kValidation,
                           verification.images(), [&control] { return control.stop_requested(); });
    if (!measured.ok()) {
      if (control.stop_requested()) return stopped();
      return fail(
          absl::StrCat("measuring finalist ", finalist.id, ": ", measured.status().ToString()));
    }
    const SupernetHost::Measurement& measurement = measured->front();
    if (absl::Status recorded =
            record(finalist, CandidateMeasurement{measurement.accuracy, measurement.method,
                                                  oface::DataSplitName(measurement.split),
                                                  measurement.seconds});
        !recorded.ok()) {
      return fail(recorded.ToString());
    }
  }
  EndWithFront(job_id, JobState::kSucceeded, "", elapsed_now(), pareto_cost);
}

bool JobManager::VerifyByWorkers(
    const std::string& job_id, const apq::v1::SubmitSearchRequest& request, bool quantized,
    std::vector<CandidateRecord>& finalists,
    const std::function<absl::Status(CandidateRecord&, const CandidateMeasurement&)>& record,
    const JobRunner::Control& control, const std::function<void(const std::string&)>& fail,
    const std::function<void()>& stopped) {
  const apq::v1::Verification& verification = request.verification();
  if (options_.measurement_runs == nullptr) {
    fail("cannot verify by workers: this server starts no measurement workers");
    return false;
  }
  MeasurementRunManager& runs = *options_.measurement_runs;
  const std::string dataset = FinalistsDataset(job_id);
  const std::string method = quantized ? oface::kMeasuredQuantFromSupernet : oface::kMeasuredFp32;
  // The job's dataset's records by config: measured by this job's runs, an earlier
  // process's included.
  const auto measured = [&]() -> absl::StatusOr<std::map<std::string, MeasurementRow>> {
    std::map<std::string, MeasurementRow> rows;
    absl::StatusOr<std::vector<MeasurementRow>> listed =
        datasets_.ListMeasurements(dataset, method);
    if (absl::IsNotFound(listed.status())) return rows;
    RETURN_IF_ERROR(listed.status());
    for (MeasurementRow& row : *listed) rows[row.config_json] = std::move(row);
    return rows;
  };
  // A run stores each config in the catalog space's canonical form, which can differ from a
  // view's (a device's view keeps unused layers' bits inside what the device runs).
  const absl::StatusOr<const oface::SearchSpace*> base = catalog_.FindSpace(request.space());
  const auto run_key = [&](const std::string& config) {
    if (!base.ok()) return config;
    const absl::StatusOr<oface::Genotype> genotype = (*base)->FromJson(config);
    return genotype.ok() ? (*base)->ToJson((*base)->Canonical(*genotype)) : config;
  };
  // Records it holds go to the finalists first; what is left becomes a run.
  const auto record_measured = [&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(const auto rows, measured());
    int left = 0;
    for (CandidateRecord& finalist : finalists) {
      if (finalist.measured) continue;
      const auto found = rows.find(run_key(finalist.config_json));
      if (found == rows.end()) {
        ++left;
        continue;
      }
      const MeasurementRow& row = found->second;
      RETURN_IF_ERROR(
          record(finalist, CandidateMeasurement{row.accuracy, row.method, row.split, row.seconds}));
    }
    return left;
  };
  absl::StatusOr<int> left = record_measured();
  if (!left.ok()) {
    fail(absl::StrCat("verifying by workers: ", left.status().ToString()));
    return false;
  }
  if (*left == 0) return true;
  // A run of an earlier process of this job is not followed by anyone: its workers may be
  // gone. It is cancelled and what it left is measured by a new one.
  if (absl::Status cancelled = runs.CancelRunsOf(dataset); !cancelled.ok()) {
    fail(absl::StrCat("verifying by workers: ", cancelled.ToString()));
    return false;
  }
  MeasurementRunManager::Request run_request;
  run_request.dataset = dataset;
  run_request.space = request.space();
  run_request.description = absl::StrCat("the finalists of job ", job_id);
  for (const CandidateRecord& finalist : finalists) {
    if (!finalist.measured) run_request.configs.push_back(finalist.config_json);
  }
  // Measured as SupernetHost::Measure measures them.
  run_request.seed = supernets_.options().calibration_seed;
  run_request.quantized = quantized;
  run_request.split = oface::DataSplit::kValidation;
  run_request.images = verification.images();
  run_request.calibration_images = supernets_.options().calibration_images;
  run_request.workers = verification.workers();
  absl::StatusOr<MeasurementRunRecord> run = runs.Start(run_request);
  if (!run.ok()) {
    fail(absl::StrCat("starting the finalists' measurement run: ", run.status().ToString()));
    return false;
  }
  const std::string run_id = run->id;
  while (true) {
    if (control.stop_requested()) {
      // Cancelled: so is the run. Shutdown: it goes on until the resumed job takes the records
      // it stored, cancels it and measures the rest by a new one.
      if (control.cancel_requested()) runs.Cancel(run_id).IgnoreError();
      stopped();
      return false;
    }
    absl::SleepFor(absl::Milliseconds(250));
    left = record_measured();
    if (!left.ok()) {
      fail(absl::StrCat("verifying by workers: ", left.status().ToString()));
      return false;
    }
    if (*left == 0) return true;
    absl::StatusOr<MeasurementRunRecord> current = runs.Get(run_id);
    if (!current.ok()) continue;  // The store, for a moment.
    if (IsTerminal(current->state)) {
      // Its last records may have landed after the read above.
      left = record_measured();
      if (left.ok() && *left == 0) return true;
      fail(absl::StrCat("measurement run ", run_id, " of the finalists ended ",
                        apq::v1::JobState_Name(static_cast<apq::v1::JobState>(current->state)),
                        " with ", left.ok() ? *left : -1, " finalists unmeasured",
                        current->error.empty() ? "" : absl::StrCat(": ", current->error)));
      return false;
    }
  }
}

std::string FinalistsDataset(const std::string& job_id) {
  return absl::StrCat(job_id, "-finalists");
}

}  // namespace apq::server
