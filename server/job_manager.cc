#include "server/job_manager.h"

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "oface/uniform_bits_space.h"
#include "search/evolution.h"
#include "search/pareto.h"

namespace apq::server {
namespace {

constexpr size_t kMaxLabelBytes = 256;

// Everything a job needs to run, resolved from its request.
struct ResolvedJob {
  const oface::SearchSpace* space = nullptr;  // The catalog's, or uniform_bits_view.
  std::shared_ptr<const oface::SearchSpace> uniform_bits_view;
  Catalog::CostModelHandle cost;
  Catalog::PredictorInstance predictor;
  search::Budgets budgets;
  search::EvolutionParams params;
};

absl::StatusOr<search::CostMetric> ParetoCost(apq::v1::CostMetric metric) {
  switch (metric) {
    case apq::v1::COST_METRIC_UNSPECIFIED:
    case apq::v1::COST_METRIC_LATENCY:
      return search::CostMetric::kLatency;
    case apq::v1::COST_METRIC_ENERGY:
      return search::CostMetric::kEnergy;
    case apq::v1::COST_METRIC_SIZE:
      return search::CostMetric::kSize;
    case apq::v1::COST_METRIC_BITOPS:
      return search::CostMetric::kBitops;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("pareto_cost: unknown value ", static_cast<int>(metric)));
  }
}

// The candidate's figure of the cost its job's front is drawn against.
std::optional<double> FrontCost(const CandidateRecord& candidate, search::CostMetric metric) {
  switch (metric) {
    case search::CostMetric::kLatency:
      return candidate.latency_ms;
    case search::CostMetric::kEnergy:
      return candidate.energy_mj;
    case search::CostMetric::kSize:
      return candidate.size_mb;
    case search::CostMetric::kBitops:
      return candidate.bitops;
  }
  return candidate.latency_ms;
}

// The ids of the job's Pareto front of accuracy against `metric` over its stored feasible
// candidates (search::ParetoFront, ties to the first stored); a candidate without the cost
// is no point of it.
absl::StatusOr<std::vector<int64_t>> ParetoFrontIds(JobStore& store, const std::string& job_id,
                                                    search::CostMetric metric) {
  std::vector<int64_t> ids;
  std::vector<search::FrontPoint> points;
  CandidateQuery query;
  query.job_id = job_id;
  query.order = CandidateOrder::kId;
  query.feasible = true;
  query.limit = kMaxPageSize;
  while (true) {
    ASSIGN_OR_RETURN(CandidatePage page, store.ListCandidates(query));
    for (const CandidateRecord& candidate : page.candidates) {
      ids.push_back(candidate.id);
      points.push_back(
          {FrontCost(candidate, metric).value_or(std::numeric_limits<double>::infinity()),
           candidate.accuracy.value_or(std::numeric_limits<double>::quiet_NaN())});
    }
    query.offset += static_cast<int64_t>(page.candidates.size());
    if (page.candidates.empty() || query.offset >= page.total) break;
  }
  std::vector<int64_t> front;
  for (const size_t index : search::ParetoFront(points)) front.push_back(ids[index]);
  return front;
}

// Fills unset engine parameters with the reference defaults, in place, so the stored request
// says exactly what ran.
void FillDefaults(apq::v1::SubmitSearchRequest* request) {
  const search::EvolutionParams defaults;
  apq::v1::EvolutionParams* evolution = request->mutable_evolution();
  if (!evolution->has_population_size()) evolution->set_population_size(defaults.population_size);
  if (!evolution->has_generations()) evolution->set_generations(defaults.generations);
  if (!evolution->has_parent_ratio()) evolution->set_parent_ratio(defaults.parent_ratio);
  if (!evolution->has_mutation_ratio()) evolution->set_mutation_ratio(defaults.mutation_ratio);
  if (!evolution->has_mutate_probability()) {
    evolution->set_mutate_probability(defaults.mutate_probability);
  }
  if (!evolution->has_resolution_mutate_probability()) {
    evolution->set_resolution_mutate_probability(evolution->mutate_probability());
  }
  if (!evolution->has_max_resample_attempts()) {
    evolution->set_max_resample_attempts(defaults.max_resample_attempts);
  }
}

// Validates a request whose defaults are filled in. The checks that need no lookup come
// first, so a malformed request is INVALID_ARGUMENT whatever the server holds.
absl::StatusOr<ResolvedJob> Resolve(Catalog& catalog, const apq::v1::SubmitSearchRequest& request,
                                    int64_t table_version) {
  ResolvedJob job;
  if (request.space().empty()) return absl::InvalidArgumentError("space: required");
  if (request.device().empty()) return absl::InvalidArgumentError("device: required");
  if (request.label().size() > kMaxLabelBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("label: longer than ", kMaxLabelBytes, " bytes"));
  }
  if (table_version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table_version: must be 0 (latest) or a version, got ", table_version));
  }
  const apq::v1::Budgets& budgets = request.budgets();
  if (budgets.has_max_latency_ms()) job.budgets.max_latency_ms = budgets.max_latency_ms();
  if (budgets.has_max_energy_mj()) job.budgets.max_energy_mj = budgets.max_energy_mj();
  if (budgets.has_max_size_mb()) job.budgets.max_size_mb = budgets.max_size_mb();
  if (budgets.has_max_bitops()) job.budgets.max_bitops = budgets.max_bitops();
  RETURN_IF_ERROR(search::ValidateBudgets(job.budgets));
  switch (request.objective()) {
    case apq::v1::OBJECTIVE_UNSPECIFIED:
    case apq::v1::OBJECTIVE_MAX_ACCURACY:
      job.params.objective = search::Objective::kMaxAccuracy;
      break;
    case apq::v1::OBJECTIVE_PARETO:
      job.params.objective = search::Objective::kPareto;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("objective: unknown value ", static_cast<int>(request.objective())));
  }
  ASSIGN_OR_RETURN(job.params.pareto_cost, ParetoCost(request.pareto_cost()));
  const apq::v1::EvolutionParams& evolution = request.evolution();
  job.params.population_size = evolution.population_size();
  job.params.generations = evolution.generations();
  job.params.parent_ratio = evolution.parent_ratio();
  job.params.mutation_ratio = evolution.mutation_ratio();
  job.params.mutate_probability = evolution.mutate_probability();
  job.params.resolution_mutate_probability = evolution.resolution_mutate_probability();
  job.params.max_resample_attempts = evolution.max_resample_attempts();
  RETURN_IF_ERROR(search::ValidateParams(job.params));

  ASSIGN_OR_RETURN(job.space, catalog.FindSpace(request.space()));
  if (request.uniform_bits() != 0) {
    ASSIGN_OR_RETURN(job.uniform_bits_view,
                     oface::NewUniformBitsSpace(*job.space, request.uniform_bits()));
    job.space = job.uniform_bits_view.get();
  }
  ASSIGN_OR_RETURN(job.cost, catalog.CostModel(request.space(), request.device(), table_version));
  RETURN_IF_ERROR(search::CheckBudgetsPriceable(
      job.budgets, *job.cost.model,
      absl::StrCat(request.device(), " (table v", job.cost.table_version, ")")));
  hwmodels::NetworkCost probe;
  probe.has_energy = job.cost.model->has_energy();
  probe.has_size_and_bitops = job.cost.model->has_size_and_bitops();
  if (std::isinf(search::CostValue(probe, job.params.pareto_cost))) {
    return absl::FailedPreconditionError(
        absl::StrCat("pareto_cost: ", search::CostMetricName(job.params.pareto_cost),
                     " is not available for ", request.space(), " on device ", request.device()));
  }
  ASSIGN_OR_RETURN(job.predictor, catalog.NewPredictor(request.space()));
  return job;
}

// Table-priced metrics that the fallback model priced (partly), comma-separated.
std::string ModelledMetrics(const hwmodels::NetworkCost& cost) {
  if (!cost.modelled) return "";
  return cost.has_energy ? "latency_ms,energy_mj" : "latency_ms";
}

CandidateRecord ToRecord(const oface::SearchSpace& space, const search::Individual& individual,
                         int generation, bool feasible) {
  CandidateRecord record;
  record.generation = generation;
  record.config_json = space.ToJson(space.Canonical(individual.genotype));
  if (feasible) record.accuracy = individual.accuracy;
  record.latency_ms = individual.cost.latency_ms;
  if (individual.cost.has_energy) record.energy_mj = individual.cost.energy_mj;
  if (individual.cost.has_size_and_bitops) {
    record.size_mb = individual.cost.size_mb;
    record.bitops = individual.cost.bitops;
  }
  record.modelled = ModelledMetrics(individual.cost);
  record.feasible = feasible;
  return record;
}

apq::v1::JobProgress ProgressFromRecord(const JobRecord& job) {
  apq::v1::JobProgress progress;
  progress.set_job_id(job.id);
  progress.set_state(static_cast<apq::v1::JobState>(job.state));
  progress.set_generation(std::max(0, job.generations_done));
  apq::v1::SubmitSearchRequest request;
  if (request.ParseFromString(job.request)) {
    progress.set_total_generations(request.evolution().generations());
  }
  progress.set_candidates_evaluated(job.candidates_evaluated);
  if (job.best) *progress.mutable_best() = CandidateToProto(*job.best);
  progress.set_elapsed_s(job.elapsed_s);
  progress.set_error(job.error);
  return progress;
}

}  // namespace

apq::v1::Candidate CandidateToProto(const CandidateRecord& candidate) {
  apq::v1::Candidate proto;
  proto.set_id(candidate.id);
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
  proto.set_on_pareto_front(candidate.on_pareto_front);
  return proto;
}

apq::v1::Job JobToProto(const JobRecord& job) {
  apq::v1::Job proto;
  proto.set_id(job.id);
  proto.set_state(static_cast<apq::v1::JobState>(job.state));
  proto.mutable_request()->ParseFromString(job.request);
  proto.set_generations_done(std::max(0, job.generations_done));
  proto.set_candidates_evaluated(job.candidates_evaluated);
  if (job.best) *proto.mutable_best() = CandidateToProto(*job.best);
  proto.set_error(job.error);
  proto.set_table_version(job.table_version);
  proto.set_predictor_version(job.predictor_version);
  proto.set_created_unix_s(job.created_unix_s);
  proto.set_started_unix_s(job.started_unix_s);
  proto.set_finished_unix_s(job.finished_unix_s);
  proto.set_elapsed_s(job.elapsed_s);
  proto.set_pareto_front_size(job.pareto_front_size);
  return proto;
}

JobManager::JobManager(const Options& options, Catalog& catalog, JobStore& store)
    : options_(options), catalog_(catalog), store_(store) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const Options& options,
                                                               Catalog& catalog, JobStore& store) {
  if (options.workers < 1 || options.workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be in [1, 64], got ", options.workers));
  }
  if (options.queue_capacity < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_capacity: must be >= 1, got ", options.queue_capacity));
  }
  std::unique_ptr<JobManager> manager(new JobManager(options, catalog, store));
  RETURN_IF_ERROR(manager->Recover());
  for (int i = 0; i < options.workers; ++i) {
    manager->workers_.emplace_back([raw = manager.get()] { raw->WorkerLoop(); });
  }
  return manager;
}

JobManager::~JobManager() {
  shutting_down_ = true;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

absl::Status JobManager::Recover() {
  // Oldest first, so recovered jobs keep their order in the queue.
  std::vector<JobRecord> unfinished;
  for (JobState state : {JobState::kRunning, JobState::kQueued}) {
    for (int64_t offset = 0;; offset += 1000) {
      ASSIGN_OR_RETURN(std::vector<JobRecord> page, store_.ListJobs(state, offset, 1000));
      unfinished.insert(unfinished.end(), page.begin(), page.end());
      if (page.size() < 1000) break;
    }
  }
  std::sort(unfinished.begin(), unfinished.end(), [](const JobRecord& a, const JobRecord& b) {
    return a.created_unix_s < b.created_unix_s;
  });
  absl::MutexLock lock(&mutex_);
  for (const JobRecord& job : unfinished) {
    auto live = std::make_shared<LiveJob>();
    live->progress = ProgressFromRecord(job);
    live_[job.id] = live;
    queue_.push_back(job.id);
  }
  return absl::OkStatus();
}

absl::StatusOr<apq::v1::Job> JobManager::Submit(const apq::v1::SubmitSearchRequest& request) {
  apq::v1::SubmitSearchRequest filled = request;
  FillDefaults(&filled);
  ASSIGN_OR_RETURN(ResolvedJob resolved, Resolve(catalog_, filled, filled.table_version()));
  filled.set_table_version(resolved.cost.table_version);

  // The queue slot is reserved before the row is written, so a full queue stores nothing.
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
    if (queue_.size() + reserved_slots_ >= static_cast<size_t>(options_.queue_capacity)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the job queue is full (", options_.queue_capacity, " jobs waiting); retry later"));
    }
    ++reserved_slots_;
  }
  JobRecord job;
  job.space = filled.space();
  job.device = filled.device();
  job.table_version = resolved.cost.table_version;
  job.predictor_version = resolved.predictor.version;
  job.request = filled.SerializeAsString();
  job.state = JobState::kQueued;
  job.created_unix_s = NowUnixSeconds();
  absl::StatusOr<std::string> id = store_.CreateJob(job);
  absl::MutexLock lock(&mutex_);
  --reserved_slots_;
  if (!id.ok()) return id.status();
  job.id = *id;
  auto live = std::make_shared<LiveJob>();
  live->progress = ProgressFromRecord(job);
  live_[job.id] = live;
  queue_.push_back(job.id);
  return JobToProto(job);
}

std::shared_ptr<JobManager::LiveJob> JobManager::FindLive(const std::string& job_id) {
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  return found == live_.end() ? nullptr : found->second;
}

absl::StatusOr<apq::v1::Job> JobManager::Cancel(const std::string& job_id) {
  ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(job_id));
  if (IsTerminal(job.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " already ended (",
                     apq::v1::JobState_Name(static_cast<apq::v1::JobState>(job.state)), ")"));
  }
  bool was_queued = false;
  {
    absl::MutexLock lock(&mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == job_id) {
        queue_.erase(it);
        was_queued = true;
        break;
      }
    }
    auto found = live_.find(job_id);
    if (found != live_.end()) found->second->cancel_requested = true;
  }
  if (was_queued) {
    RETURN_IF_ERROR(store_.FinishJob(job_id, JobState::kCancelled, "cancelled by request",
                                     NowUnixSeconds(), job.elapsed_s, {}));
    ASSIGN_OR_RETURN(job, store_.GetJob(job_id));
    Publish(job_id, ProgressFromRecord(job));
    return JobToProto(job);
  }
  // A running job stops after its current generation; its worker records the cancellation.
  return JobToProto(job);
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
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found != live_.end()) {  // Submitted or recovered meanwhile.
    const int64_t subscription = next_subscription_++;
    listener(found->second->progress);
    found->second->listeners.emplace(subscription, std::move(listener));
    return subscription;
  }
  listener(ProgressFromRecord(job));
  return next_subscription_++;
}

void JobManager::Unwatch(const std::string& job_id, int64_t subscription) {
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found != live_.end()) found->second->listeners.erase(subscription);
}

void JobManager::Publish(const std::string& job_id, const apq::v1::JobProgress& progress) {
  absl::MutexLock lock(&mutex_);
  auto found = live_.find(job_id);
  if (found == live_.end()) return;
  found->second->progress = progress;
  for (auto& [subscription, listener] : found->second->listeners) listener(progress);
  const auto state = static_cast<JobState>(progress.state());
  if (IsTerminal(state)) live_.erase(found);
}

void JobManager::FailJob(const std::string& job_id, const std::string& reason, double elapsed_s) {
  absl::Status finished =
      store_.FinishJob(job_id, JobState::kFailed, reason, NowUnixSeconds(), elapsed_s, {});
  absl::StatusOr<JobRecord> job = store_.GetJob(job_id);
  if (finished.ok() && job.ok()) {
    Publish(job_id, ProgressFromRecord(*job));
    return;
  }
  apq::v1::JobProgress progress;
  progress.set_job_id(job_id);
  progress.set_state(apq::v1::JOB_STATE_FAILED);
  progress.set_error(absl::StrCat(reason, " (and the store failed: ",
                                  finished.ok() ? job.status().ToString() : finished.ToString(),
                                  ")"));
  Publish(job_id, progress);
}

void JobManager::WorkerLoop() {
  while (true) {
    std::string job_id;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](JobManager* manager) ABSL_EXCLUSIVE_LOCKS_REQUIRED(manager->mutex_) {
            return manager->stopping_ || !manager->queue_.empty();
          },
          this));
      if (stopping_) return;
      job_id = std::move(queue_.front());
      queue_.pop_front();
    }
    RunJob(job_id);
  }
}

void JobManager::RunJob(const std::string& job_id) {
  absl::StatusOr<JobRecord> loaded = store_.GetJob(job_id);
  if (!loaded.ok()) {
    FailJob(job_id, absl::StrCat("cannot load the job: ", loaded.status().ToString()), 0);
    return;
  }
  JobRecord job = *std::move(loaded);
  if (IsTerminal(job.state)) return;  // Cancelled while queued.
  std::shared_ptr<LiveJob> live = FindLive(job_id);
  if (live == nullptr) return;

  apq::v1::SubmitSearchRequest request;
  if (!request.ParseFromString(job.request)) {
    FailJob(job_id, "the stored request does not parse", job.elapsed_s);
    return;
  }
  absl::StatusOr<ResolvedJob> resolved = Resolve(catalog_, request, job.table_version);
  if (!resolved.ok()) {
    FailJob(job_id, absl::StrCat("cannot run: ", resolved.status().ToString()), job.elapsed_s);
    return;
  }
  if (resolved->predictor.version != job.predictor_version) {
    FailJob(job_id,
            absl::StrCat("cannot resume: the job used predictor ", job.predictor_version,
                         ", this server has ", resolved->predictor.version),
            job.elapsed_s);
    return;
  }
  std::optional<search::Checkpoint> checkpoint;
  if (!job.checkpoint.empty()) {
    absl::StatusOr<search::Checkpoint> parsed = search::ParseCheckpoint(job.checkpoint);
    if (!parsed.ok()) {
      FailJob(job_id, absl::StrCat("cannot resume: ", parsed.status().ToString()), job.elapsed_s);
      return;
    }
    checkpoint = *std::move(parsed);
  }
  const double started = NowUnixSeconds();
  if (absl::Status running =
          store_.MarkRunning(job_id, job.started_unix_s > 0 ? job.started_unix_s : started);
      !running.ok()) {
    FailJob(job_id, absl::StrCat("cannot start: ", running.ToString()), job.elapsed_s);
    return;
  }
  const double previous_elapsed = job.elapsed_s;
  const auto elapsed_now = [&] { return previous_elapsed + (NowUnixSeconds() - started); };
  const oface::SearchSpace& space = *resolved->space;

  apq::v1::JobProgress progress;
  progress.set_job_id(job_id);
  progress.set_state(apq::v1::JOB_STATE_RUNNING);
  progress.set_total_generations(resolved->params.generations);
  progress.set_generation(std::max(0, job.generations_done));
  progress.set_candidates_evaluated(job.candidates_evaluated);
  if (job.best) *progress.mutable_best() = CandidateToProto(*job.best);
  Publish(job_id, progress);

  // The job's best as last stored, with its id.
  std::optional<CandidateRecord> stored_best = job.best;
  search::EvolutionSearch engine(space, *resolved->cost.model, *resolved->predictor.predictor,
                                 resolved->budgets, resolved->params, request.seed());
  auto on_generation = [&](const search::GenerationReport& report,
                           const search::Checkpoint& state) -> absl::Status {
    GenerationBatch batch;
    batch.generation = report.generation;
    batch.candidates.reserve(report.children.size() + report.rejected.size());
    for (const search::Individual& child : report.children) {
      batch.candidates.push_back(ToRecord(space, child, report.generation, true));
    }
    for (const search::Individual& child : report.rejected) {
      batch.candidates.push_back(ToRecord(space, child, report.generation, false));
    }
    batch.candidates_evaluated = report.candidates_evaluated;
    if (report.best != nullptr) {
      batch.best = ToRecord(space, *report.best, report.best->generation, true);
      if (stored_best.has_value() && stored_best->config_json == batch.best->config_json) {
        batch.best->id = stored_best->id;
      } else {
        // Bred this generation: the first child of its config.
        for (size_t i = 0; i < report.children.size(); ++i) {
          if (batch.candidates[i].config_json == batch.best->config_json) {
            batch.best_batch_index = static_cast<int>(i);
            break;
          }
        }
      }
    }
    batch.checkpoint = search::SerializeCheckpoint(state);
    batch.elapsed_s = elapsed_now();
    ASSIGN_OR_RETURN(std::vector<int64_t> ids, store_.AppendGeneration(job_id, batch));
    stored_best = batch.best;
    if (batch.best_batch_index >= 0) stored_best->id = ids[batch.best_batch_index];
    progress.set_generation(report.generation);
    progress.set_candidates_evaluated(report.candidates_evaluated);
    if (stored_best) *progress.mutable_best() = CandidateToProto(*stored_best);
    progress.set_elapsed_s(batch.elapsed_s);
    Publish(job_id, progress);
    return absl::OkStatus();
  };
  auto stop_requested = [&] { return live->cancel_requested.load() || shutting_down_.load(); };
  absl::StatusOr<search::SearchResult> result =
      engine.Run(on_generation, stop_requested, checkpoint ? &*checkpoint : nullptr);

  if (!result.ok()) {
    FailJob(job_id, result.status().ToString(), elapsed_now());
    return;
  }
  if (result->cancelled && !live->cancel_requested.load()) {
    return;  // Server shutdown: the job stays running in the store and resumes on restart.
  }
  JobState final_state = JobState::kSucceeded;
  std::string error;
  if (result->cancelled) {
    final_state = JobState::kCancelled;
    error = "cancelled by request";
  } else if (!result->best) {
    final_state = JobState::kFailed;
    error = "the search found no feasible network";
  }
  absl::StatusOr<std::vector<int64_t>> front =
      ParetoFrontIds(store_, job_id, resolved->params.pareto_cost);
  absl::Status finished = front.status();
  if (front.ok()) {
    finished =
        store_.FinishJob(job_id, final_state, error, NowUnixSeconds(), elapsed_now(), *front);
  }
  absl::StatusOr<JobRecord> ended = store_.GetJob(job_id);
  if (!finished.ok() || !ended.ok()) {
    FailJob(job_id,
            absl::StrCat("cannot record the end of the job: ",
                         finished.ok() ? ended.status().ToString() : finished.ToString()),
            elapsed_now());
    return;
  }
  Publish(job_id, ProgressFromRecord(*ended));
}

}  // namespace apq::server
