#include "server/measurement_runs.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "oface/measurement_csv.h"
#include "server/measurement_run_settings.h"
#include "server/store/open_store.h"

namespace apq::server {
namespace {

// INVALID_ARGUMENT naming `field` unless `value` is in [low, high].
absl::Status CheckRange(const char* field, int64_t value, int64_t low, int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be in [", low, ", ", high, "], got ", value));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MeasurementRunManager>> MeasurementRunManager::Create(
    const Options& options, Catalog& catalog, Store& store, SupernetHost& supernets) {
  RETURN_IF_ERROR(CheckRange("measure_workers", options.max_workers, 0, 10000));
  RETURN_IF_ERROR(CheckRange("measure_worker_threads", options.worker_threads, 1, 256));
  RETURN_IF_ERROR(CheckRange("measure_lease_seconds", options.lease_seconds, 3, 86400));
  RETURN_IF_ERROR(CheckRange("measure_restarts", options.restarts, 0, 100));
  if (options.max_workers > 0 && options.worker_binary.empty()) {
    return absl::InvalidArgumentError("measure_worker_binary: required");
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("poll_interval: must be > 0");
  }
  return std::unique_ptr<MeasurementRunManager>(
      new MeasurementRunManager(options, catalog, store, supernets));
}

MeasurementRunManager::MeasurementRunManager(const Options& options, Catalog& catalog, Store& store,
                                             SupernetHost& supernets)
    : options_(options), catalog_(catalog), store_(store), supernets_(supernets), follower_([this] {
        FollowLoop();
      }) {}

MeasurementRunManager::~MeasurementRunManager() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  follower_.join();
}

std::pair<int, int> MeasurementRunManager::RunImages(const MeasurementRunRecord& run) {
  absl::StatusOr<MeasurementRunSettings> settings = ParseMeasurementRunSettings(run.settings);
  if (!settings.ok()) return {0, 0};
  return {settings->eval_images, settings->calibration_images};
}

absl::StatusOr<std::vector<std::string>> MeasurementRunManager::Configs(
    const Request& request, const oface::SearchSpace& space) const {
  std::vector<std::string> configs;
  if (request.configs.empty()) {
    RETURN_IF_ERROR(CheckRange("count", request.count, 1, kMaxMeasurementTasks));
    const std::vector<oface::Genotype> sampled = oface::SampleConfigsWithBits(
        space, request.count,
        request.quantized ? request.bit_sampling : oface::BitSampling::kHighest, request.seed);
    configs.reserve(sampled.size());
    for (const oface::Genotype& genotype : sampled) configs.push_back(space.ToJson(genotype));
    return configs;
  }
  if (request.count != 0) {
    return absl::InvalidArgumentError("count: must be 0 when configs are given");
  }
  RETURN_IF_ERROR(
      CheckRange("configs", static_cast<int64_t>(request.configs.size()), 1, kMaxMeasurementTasks));
  std::set<std::string> seen;
  configs.reserve(request.configs.size());
  for (size_t i = 0; i < request.configs.size(); ++i) {
    absl::StatusOr<oface::Genotype> genotype = space.FromJson(request.configs[i]);
    if (!genotype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("configs[", i, "]: ", genotype.status().message()));
    }
    std::string config = space.ToJson(space.Canonical(*genotype));
    if (!seen.insert(config).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("configs[", i, "]: the same network as an earlier config"));
    }
    configs.push_back(std::move(config));
  }
  return configs;
}

absl::StatusOr<MeasurementRunRecord> MeasurementRunManager::Start(const Request& request) {
  RETURN_IF_ERROR(ValidateResourceName("dataset", request.dataset));
  if (request.space.empty()) return absl::InvalidArgumentError("space: required");
  RETURN_IF_ERROR(ValidateUserText("description", request.description, 4096, /*multiline=*/true));
  RETURN_IF_ERROR(CheckRange("images", request.images, 0, oface::kValidationImages));
  RETURN_IF_ERROR(CheckRange("calibration_images", request.calibration_images, 1,
                             oface::kTrainingFileImages - oface::kValidationImages));
  RETURN_IF_ERROR(CheckRange("max_attempts", request.max_attempts, 1, 100));
  if (request.split == oface::DataSplit::kTrain) {
    return absl::InvalidArgumentError(
        "split: accuracy is measured on validation or test, never on the images that train");
  }
  ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(request.space));
  const bool has_bits =
      std::any_of(space->genes().begin(), space->genes().end(), oface::IsBitsGene);
  if (request.quantized && !has_bits) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantized: space ", request.space, " has no bitwidths"));
  }
  if (options_.max_workers == 0) {
    return absl::FailedPreconditionError(
        "this server starts no measurement workers (apqd --measure_workers 0)");
  }
  RETURN_IF_ERROR(CheckRange("workers", request.workers, 1, options_.max_workers));
  ASSIGN_OR_RETURN(std::vector<std::string> configs, Configs(request, *space));
  ASSIGN_OR_RETURN(const std::string weights,
                   supernets_.WeightsFile(request.space, request.quantized));

  const std::string method =
      request.quantized ? oface::kMeasuredQuantFromSupernet : oface::kMeasuredFp32;
  const std::string split = oface::DataSplitName(request.split);
  absl::StatusOr<DatasetRecord> dataset = store_.datasets().GetDataset(request.dataset);
  if (!dataset.ok() && !absl::IsNotFound(dataset.status())) return dataset.status();
  if (dataset.ok()) {
    if (dataset->space != request.space) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset: ", request.dataset, " holds space ", dataset->space, ", not ", request.space));
    }
    // A dataset mixes no splits.
    if (dataset->records > 0 && dataset->split != split) {
      return absl::FailedPreconditionError(
          absl::StrCat("split: dataset ", request.dataset, " holds records measured on ",
                       dataset->split.empty() ? std::string("an unrecorded split")
                                              : absl::StrCat("split \"", dataset->split, "\""),
                       ", not ", split));
    }
    ASSIGN_OR_RETURN(std::vector<MeasurementRow> stored,
                     store_.datasets().ListMeasurements(request.dataset, method));
    std::set<std::string> done;
    for (const MeasurementRow& row : stored) done.insert(row.config_json);
    configs.erase(std::remove_if(configs.begin(), configs.end(),
                                 [&](const std::string& config) { return done.count(config) > 0; }),
                  configs.end());
    if (configs.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("dataset ", request.dataset,
                                                   " holds every config of the request already (",
                                                   method, ")"));
    }
  } else {
    RETURN_IF_ERROR(store_.datasets().CreateDataset(
        {request.dataset, request.space,
         request.description.empty()
             ? absl::StrCat("measured from ", supernets_.Version(request.space))
             : request.description,
         NowUnixSeconds(), 0},
        {}));
  }

  MeasurementRunSettings settings;
  settings.checkpoint = weights;
  settings.calibration_images = request.calibration_images;
  settings.eval_images = request.images;
  settings.eval_batch_size = supernets_.options().eval_batch_size;
  MeasurementRunRecord run;
  run.dataset = request.dataset;
  run.space = request.space;
  run.method = method;
  run.split = split;
  run.seed = request.seed;
  run.settings = SerializeMeasurementRunSettings(settings);
  run.max_attempts = request.max_attempts;
  run.created_unix_s = NowUnixSeconds();
  ASSIGN_OR_RETURN(const std::string run_id,
                   store_.measurement_runs().CreateMeasurementRun(run, configs));

  std::error_code error;
  const std::string dataset_dir =
      std::filesystem::absolute(supernets_.options().dataset_dir, error).string();
  WorkerLaunch launch;
  launch.worker_binary = options_.worker_binary;
  launch.arguments = {absl::StrCat("--db=", options_.worker_store), absl::StrCat("--run=", run_id),
                      absl::StrCat("--threads=", options_.worker_threads),
                      absl::StrCat("--lease_seconds=", options_.lease_seconds),
                      absl::StrCat("--data_dir=", dataset_dir)};
  launch.environment = options_.worker_environment;
  launch.workers = std::min<int>(request.workers, static_cast<int>(configs.size()));
  launch.cpus_per_worker = options_.worker_threads;
  launch.log_dir = absl::StrCat(options_.log_root, "/apq-", run_id);
  launch.slurm_partition = options_.slurm_partition;
  launch.slurm_time_limit = options_.slurm_time_limit;
  const auto give_up = [&](const absl::Status& why) -> absl::Status {
    // The run stays, cancelled, so its id is never given again; its dataset keeps nothing.
    store_.measurement_runs().CancelMeasurementRun(run_id, NowUnixSeconds()).IgnoreError();
    store_.measurement_runs()
        .SetMeasurementRunLauncher(run_id, static_cast<std::string>(why.message()).substr(0, 256))
        .IgnoreError();
    std::fprintf(stderr, "apqd: measurement run %s: %s\n", run_id.c_str(), why.ToString().c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("the workers of run ", run_id, " did not start: ", why.message()));
  };
  std::filesystem::create_directories(launch.log_dir, error);
  if (error) {
    return give_up(absl::InternalError(
        absl::StrCat("cannot create the log folder ", launch.log_dir, ": ", error.message())));
  }
  absl::StatusOr<StartedWorkers> started = StartedWorkers::Start(options_.launcher, launch);
  if (!started.ok()) return give_up(started.status());
  RETURN_IF_ERROR(
      store_.measurement_runs().SetMeasurementRunLauncher(run_id, started->description()));
  std::fprintf(stderr, "apqd: measurement run %s: %zu configs of %s to dataset %s, workers %s\n",
               run_id.c_str(), configs.size(), request.space.c_str(), request.dataset.c_str(),
               started->description().c_str());
  {
    absl::MutexLock lock(&mutex_);
    followed_.emplace(run_id, Followed{*std::move(started), launch, options_.restarts});
  }
  return store_.measurement_runs().GetMeasurementRun(run_id);
}

absl::StatusOr<MeasurementRunRecord> MeasurementRunManager::Cancel(const std::string& run_id) {
  RETURN_IF_ERROR(store_.measurement_runs().CancelMeasurementRun(run_id, NowUnixSeconds()));
  {
    absl::MutexLock lock(&mutex_);
    auto found = followed_.find(run_id);
    if (found != followed_.end()) {
      found->second.workers.Stop();
      followed_.erase(found);
    }
  }
  return store_.measurement_runs().GetMeasurementRun(run_id);
}

absl::StatusOr<MeasurementRunRecord> MeasurementRunManager::Get(const std::string& run_id) {
  return store_.measurement_runs().GetMeasurementRun(run_id);
}

absl::Status MeasurementRunManager::CancelRunsOf(const std::string& dataset) {
  constexpr int kPage = 500;
  std::vector<std::string> unfinished;
  for (int64_t offset = 0;; offset += kPage) {
    ASSIGN_OR_RETURN(std::vector<MeasurementRunRecord> runs,
                     store_.measurement_runs().ListMeasurementRuns(offset, kPage));
    for (const MeasurementRunRecord& run : runs) {
      if (run.dataset == dataset && !IsTerminal(run.state)) unfinished.push_back(run.id);
    }
    if (runs.size() < static_cast<size_t>(kPage)) break;
  }
  for (const std::string& run_id : unfinished) {
    absl::StatusOr<MeasurementRunRecord> cancelled = Cancel(run_id);
    // One that ended meanwhile is no longer in the way.
    if (!cancelled.ok() && !absl::IsFailedPrecondition(cancelled.status())) {
      return cancelled.status();
    }
  }
  return absl::OkStatus();
}

void MeasurementRunManager::FollowLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), options_.poll_interval);
      if (stopping_) return;
    }
    FollowOnce();
  }
}

void MeasurementRunManager::FollowOnce() {
  std::vector<std::string> run_ids;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [run_id, followed] : followed_) run_ids.push_back(run_id);
  }
  for (const std::string& run_id : run_ids) {
    absl::StatusOr<MeasurementRunRecord> run = store_.measurement_runs().GetMeasurementRun(run_id);
    if (!run.ok()) continue;  // The store, for a moment: looked at again next time.
    absl::MutexLock lock(&mutex_);
    auto found = followed_.find(run_id);
    if (found == followed_.end()) continue;
    Followed& followed = found->second;
    const int active = followed.workers.Active();
    if (IsTerminal(run->state)) {
      // Workers leave on their own once the run ended; a cancelled run's are told to.
      if (run->state == JobState::kCancelled && active > 0) followed.workers.Stop();
      if (active == 0) followed_.erase(found);
      continue;
    }
    if (active > 0) continue;
    // Every worker is gone with tasks left. The last one may have settled the last task
    // just now: the run is read again first.
    absl::StatusOr<MeasurementRunRecord> again =
        store_.measurement_runs().GetMeasurementRun(run_id);
    if (!again.ok() || IsTerminal(again->state)) continue;
    const int64_t left = again->tasks_total - again->tasks_done - again->tasks_failed;
    if (followed.restarts_left == 0) {
      const std::string note =
          absl::StrCat(followed.workers.description(), "; every worker died with ", left,
                       " tasks left, ", options_.restarts, " restarts spent: cancelled");
      store_.measurement_runs().CancelMeasurementRun(run_id, NowUnixSeconds()).IgnoreError();
      store_.measurement_runs()
          .SetMeasurementRunLauncher(run_id, note.substr(0, 256))
          .IgnoreError();
      std::fprintf(stderr, "apqd: measurement run %s: %s (logs in %s)\n", run_id.c_str(),
                   note.c_str(), followed.launch.log_dir.c_str());
      followed_.erase(found);
      continue;
    }
    --followed.restarts_left;
    absl::StatusOr<StartedWorkers> restarted =
        StartedWorkers::Start(options_.launcher, followed.launch);
    if (!restarted.ok()) {
      std::fprintf(stderr, "apqd: measurement run %s: restarting its workers: %s\n", run_id.c_str(),
                   restarted.status().ToString().c_str());
      continue;  // Counted as a restart; tried again next time.
    }
    const int restart = options_.restarts - followed.restarts_left;
    followed.workers = *std::move(restarted);
    const std::string note =
        absl::StrCat(followed.workers.description(), " (restart ", restart, " of ",
                     options_.restarts, ": ", left, " tasks were left)");
    store_.measurement_runs().SetMeasurementRunLauncher(run_id, note.substr(0, 256)).IgnoreError();
    std::fprintf(stderr, "apqd: measurement run %s: every worker was gone; %s\n", run_id.c_str(),
                 note.c_str());
  }
}

}  // namespace apq::server
