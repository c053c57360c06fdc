// A measurement worker: claims tasks of one measurement run from the service's store
// (MeasurementRunStore), measures each config on the run's supernet and writes its record
// to the run's dataset, until the run has ended. Any number of workers may serve one run, on
// any machines that reach the store (PostgreSQL for several machines) and see the run's
// supernet weights; measure_subnets --launcher starts them as local processes or as a Slurm
// array. Each task is held by a lease the worker renews every lease / 3 on a thread of its
// own; a worker that dies stops renewing, and once its leases have expired another worker
// claims its tasks again.
//
//   bazel-bin/server/measure_worker --db postgresql://... --run measure-3
//
// Exit codes: 0 the run ended (whatever its outcome) or there was nothing left to claim for
// --max_idle_seconds; 1 an error (store unreachable, weights or images that do not load).
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/process_name.h"
#include "common/status_macros.h"
#include "common/tensor_memory.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "server/measurement_run_settings.h"
#include "server/store/open_store.h"

ABSL_FLAG(std::string, db, "", "The service's store (a SQLite file or a postgresql:// URI).");
ABSL_FLAG(std::string, run, "", "The measurement run to serve (measure-<n>).");
ABSL_FLAG(std::string, holder, "",
          "This worker's name in the task leases (default <host>:<pid>, with the Slurm array "
          "task id when there is one).");
ABSL_FLAG(int, batch, 1, "Tasks claimed at a time (each measured, then written, in turn).");
ABSL_FLAG(int, lease_seconds, 60,
          "A task's lease; a worker that stops renewing (it died) loses its tasks this long "
          "after its last renewal. Longer than one measurement needs is not required: leases "
          "are renewed while measuring.");
ABSL_FLAG(int, max_idle_seconds, 0,
          "Stop after this long without a task to claim while the run goes on (tasks held by "
          "other workers); 0: twice the lease, so that a dead worker's tasks are claimed.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files on this machine.");

namespace {

// "<host>:<pid>[:<array task>]".
std::string DefaultHolder() {
  std::string holder = apq::HostAndPid("worker");
  if (const char* task = std::getenv("SLURM_ARRAY_TASK_ID"); task != nullptr) {
    absl::StrAppend(&holder, ":", task);
  }
  return holder;
}

// Renews the leases of the tasks in hand every lease / 3 until stopped; drops from the hand
// the tasks the store no longer gives this worker.
class LeaseKeeper {
 public:
  LeaseKeeper(apq::server::MeasurementRunStore& store, std::string run_id, std::string holder,
              absl::Duration lease)
      : store_(store),
        run_id_(std::move(run_id)),
        holder_(std::move(holder)),
        lease_(lease),
        thread_([this] { Loop(); }) {}
  ~LeaseKeeper() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Hold(const std::vector<apq::server::MeasurementTask>& tasks) {
    absl::MutexLock lock(&mutex_);
    for (const apq::server::MeasurementTask& task : tasks) held_.insert(task.id);
  }
  void Drop(int64_t task_id) {
    absl::MutexLock lock(&mutex_);
    held_.erase(task_id);
  }

 private:
  void Loop() {
    while (true) {
      std::vector<int64_t> ids;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.AwaitWithTimeout(absl::Condition(&stopping_), lease_ / 3);
        if (stopping_) return;
        ids.assign(held_.begin(), held_.end());
      }
      if (ids.empty()) continue;
      absl::StatusOr<std::vector<int64_t>> renewed = store_.RenewMeasurementTasks(
          run_id_, holder_, ids, apq::NowUnixSeconds() + absl::ToDoubleSeconds(lease_));
      if (!renewed.ok()) {
        // The store is unreachable for a moment: the lease lasts three renewal periods.
        std::fprintf(stderr, "measure_worker: renewing leases: %s\n",
                     renewed.status().ToString().c_str());
        continue;
      }
      if (renewed->size() != ids.size()) {
        std::fprintf(stderr, "measure_worker: %zu of %zu tasks were claimed by another worker\n",
                     ids.size() - renewed->size(), ids.size());
      }
    }
  }

  apq::server::MeasurementRunStore& store_;
  const std::string run_id_;
  const std::string holder_;
  const absl::Duration lease_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::set<int64_t> held_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;  // Last: started once the members above exist.
};

// Runs a store call again while it fails for a reason that may pass (UNAVAILABLE, INTERNAL:
// the database restarting, a network blip): up to 8 times over about two minutes.
template <typename Call>
auto RetryTransient(const Call& call) -> decltype(call()) {
  absl::Duration wait = absl::Milliseconds(500);
  for (int attempt = 1;; ++attempt) {
    auto result = call();
    absl::Status status;
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      status = result;
    } else {
      status = result.status();
    }
    if (status.ok() || attempt == 8 ||
        (!absl::IsUnavailable(status) && !absl::IsInternal(status))) {
      return result;
    }
    std::fprintf(stderr, "measure_worker: %s; retrying in %s\n", status.ToString().c_str(),
                 absl::FormatDuration(wait).c_str());
    absl::SleepFor(wait);
    wait *= 2;
  }
}

absl::Status Run() {
  const std::string db = absl::GetFlag(FLAGS_db);
  const std::string run_id = absl::GetFlag(FLAGS_run);
  if (db.empty()) return absl::InvalidArgumentError("--db is required");
  if (run_id.empty()) return absl::InvalidArgumentError("--run is required");
  const int batch = absl::GetFlag(FLAGS_batch);
  const int lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  if (batch < 1 || batch > 1000) return absl::InvalidArgumentError("--batch must be in [1, 1000]");
  if (lease_seconds < 3 || lease_seconds > 86400) {
    return absl::InvalidArgumentError("--lease_seconds must be in [3, 86400]");
  }
  if (absl::GetFlag(FLAGS_max_idle_seconds) < 0) {
    return absl::InvalidArgumentError("--max_idle_seconds must be >= 0");
  }
  if (absl::GetFlag(FLAGS_threads) < 1) return absl::InvalidArgumentError("--threads must be > 0");
  const std::string holder =
      absl::GetFlag(FLAGS_holder).empty() ? DefaultHolder() : absl::GetFlag(FLAGS_holder);
  const absl::Duration lease = absl::Seconds(lease_seconds);
  const absl::Duration max_idle = absl::GetFlag(FLAGS_max_idle_seconds) > 0
                                      ? absl::Seconds(absl::GetFlag(FLAGS_max_idle_seconds))
                                      : 2 * lease;
  at::set_num_threads(absl::GetFlag(FLAGS_threads));

  ASSIGN_OR_RETURN(std::unique_ptr<apq::server::Store> store, apq::server::OpenStore({db}));
  apq::server::MeasurementRunStore& runs = store->measurement_runs();
  ASSIGN_OR_RETURN(const apq::server::MeasurementRunRecord run, runs.GetMeasurementRun(run_id));
  if (apq::server::IsTerminal(run.state)) {
    std::fprintf(stderr, "measure_worker: run %s has ended\n", run_id.c_str());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const apq::server::MeasurementRunSettings settings,
                   apq::server::ParseMeasurementRunSettings(run.settings));
  ASSIGN_OR_RETURN(const apq::oface::MbConvSpec spec, apq::oface::FindFashionMnistSpec(run.space));
  ASSIGN_OR_RETURN(const apq::oface::DataSplit split, apq::oface::DataSplitFromName(run.split));
  ASSIGN_OR_RETURN(
      apq::oface::EvaluationImages images,
      apq::oface::LoadEvaluationImages(absl::GetFlag(FLAGS_data_dir), settings.calibration_images,
                                       settings.eval_images, run.seed, split));
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> supernet,
                   apq::oface::Supernet::Create(spec, run.seed));
  RETURN_IF_ERROR(supernet->LoadWeights(settings.checkpoint));
  const bool quantized = run.method == apq::oface::kMeasuredQuantFromSupernet;
  apq::oface::EvalOptions eval;
  eval.calibration_batch_size = settings.calibration_batch_size;
  eval.eval_batch_size = settings.eval_batch_size;

  LeaseKeeper keeper(runs, run_id, holder, lease);
  int measured = 0;
  absl::Time last_claim = absl::Now();
  std::fprintf(stderr, "measure_worker %s: run %s, %lld tasks, dataset %s\n", holder.c_str(),
               run_id.c_str(), static_cast<long long>(run.tasks_total), run.dataset.c_str());
  while (true) {
    const double now = apq::NowUnixSeconds();
    ASSIGN_OR_RETURN(std::vector<apq::server::MeasurementTask> tasks, RetryTransient([&] {
                       return runs.ClaimMeasurementTasks(run_id, holder, now,
                                                         now + absl::ToDoubleSeconds(lease), batch);
                     }));
    if (tasks.empty()) {
      ASSIGN_OR_RETURN(const apq::server::MeasurementRunRecord current,
                       RetryTransient([&] { return runs.GetMeasurementRun(run_id); }));
      if (apq::server::IsTerminal(current.state)) break;
      if (absl::Now() - last_claim > max_idle) {
        std::fprintf(stderr, "measure_worker: nothing to claim for %s; leaving\n",
                     absl::FormatDuration(max_idle).c_str());
        break;
      }
      // Tasks held by other workers: theirs, or free once their leases expire.
      absl::SleepFor(std::min(absl::Seconds(1), lease / 3));
      continue;
    }
    last_claim = absl::Now();
    keeper.Hold(tasks);
    for (const apq::server::MeasurementTask& task : tasks) {
      absl::StatusOr<apq::oface::EvalResult> result =
          [&]() -> absl::StatusOr<apq::oface::EvalResult> {
        ASSIGN_OR_RETURN(const apq::oface::Genotype genotype,
                         supernet->space().FromJson(task.config_json));
        RETURN_IF_ERROR(supernet->SetActiveSubnet(genotype));
        supernet->SetQuantized(quantized);
        return supernet->Evaluate(images.calibration, images.evaluated, eval);
      }();
      absl::Status written;
      if (result.ok()) {
        apq::server::MeasurementRow row;
        row.config_json = task.config_json;
        row.accuracy = result->accuracy;
        row.method = run.method;
        row.seconds = result->seconds;
        row.seed = run.seed;
        row.split = run.split;
        row.created_unix_s = apq::NowUnixSeconds();
        written = RetryTransient(
            [&] { return runs.CompleteMeasurementTask(run_id, task.id, holder, row); });
        if (written.ok()) {
          ++measured;
          std::fprintf(stderr, "[%s] task %lld accuracy=%.4f seconds=%.2f\n", holder.c_str(),
                       static_cast<long long>(task.index), result->accuracy, result->seconds);
        }
      } else {
        written = RetryTransient([&] {
          return runs.FailMeasurementTask(run_id, task.id, holder, result.status().ToString(),
                                          run.max_attempts, apq::NowUnixSeconds());
        });
      }
      keeper.Drop(task.id);
      if (!written.ok()) {
        // Lost to another worker (its lease expired) or the run was cancelled: not an
        // error of this worker; anything else is.
        if (!absl::IsFailedPrecondition(written)) return written;
        std::fprintf(stderr, "measure_worker: task %lld: %s\n", static_cast<long long>(task.index),
                     written.ToString().c_str());
      }
    }
  }
  std::fprintf(stderr, "measure_worker %s: measured %d\n", holder.c_str(), measured);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  apq::KeepTensorMemoryForReuse();
  return apq::RunTool("measure_worker", argc, argv, Run);
}
