// Measurement runs as a service (apq.proto's StartMeasurementRun and the calls after it, and
// verification by workers): a run's configs are stored as tasks (MeasurementRunStore) and its
// workers (server/measure_worker_main.cc) started as local processes or as one Slurm array
// job; the workers claim the tasks with leases and write each record to the run's dataset.
// This server then follows the workers it started: when all of them are gone with tasks
// left (killed, a node lost, a Slurm time limit), it starts them again, up to
// Options::restarts times, then cancels the run saying so in its launcher note. Workers
// measure exactly as SupernetHost::Measure does (same weights files, calibration subset and
// batch sizes), so a run's records equal the server's own measurements.
//
// A run outlives the server that started it: its workers go on and end the run; after a
// restart it is no longer followed (workers that then die leave it unfinished until
// cancelled).
//
// Thread safety: all methods may be called concurrently.
#ifndef APQ_SERVER_MEASUREMENT_RUNS_H_
#define APQ_SERVER_MEASUREMENT_RUNS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "oface/fashion_mnist.h"
#include "oface/subnet_measurement.h"
#include "server/catalog.h"
#include "server/measurement_launcher.h"
#include "server/store/store.h"
#include "server/supernet_host.h"

namespace apq::server {

class MeasurementRunManager {
 public:
  struct Options {
    // The store as the workers open it (apqd's --db without its password: SplitPassword),
    // and what their environment adds to this process's (the password as PGPASSWORD, never
    // on their command lines).
    std::string worker_store;
    std::vector<std::string> worker_environment;
    std::string worker_binary;  // measure_worker, a path every node sees.
    WorkerLauncher launcher = WorkerLauncher::kLocal;
    int max_workers = 4;     // Per run; 0: runs are refused (FAILED_PRECONDITION).
    int worker_threads = 1;  // LibTorch threads (Slurm CPUs) per worker.
    int lease_seconds = 60;
    std::string log_root = "/tmp";  // Each run's logs in <log_root>/apq-<run id>/.
    std::string slurm_partition;
    std::string slurm_time_limit;
    int restarts = 2;  // Times the workers of a run that all died are started again.
    absl::Duration poll_interval = absl::Seconds(1);
  };

  // What to measure (apq.proto's StartMeasurementRunRequest, decoded).
  struct Request {
    std::string dataset;
    std::string space;
    std::string description;           // Of a dataset the run creates.
    std::vector<std::string> configs;  // Or, when empty, `count` sampled with `seed`.
    int count = 0;
    uint64_t seed = 1;
    bool quantized = false;
    oface::BitSampling bit_sampling = oface::BitSampling::kRandom;
    oface::DataSplit split = oface::DataSplit::kValidation;
    int images = 0;  // First N of the split; 0: all.
    int calibration_images = 2000;
    int workers = 2;
    int max_attempts = 3;
  };

  // INVALID_ARGUMENT naming the option when one is out of range. All references must outlive
  // the manager.
  static absl::StatusOr<std::unique_ptr<MeasurementRunManager>> Create(const Options& options,
                                                                       Catalog& catalog,
                                                                       Store& store,
                                                                       SupernetHost& supernets);
  // Stops following; the workers go on and end their runs.
  ~MeasurementRunManager();

  int max_workers() const { return options_.max_workers; }

  // Validates the request (INVALID_ARGUMENT naming the request's field; NOT_FOUND for an
  // unknown space; FAILED_PRECONDITION for a space without a supernet, a dataset of another
  // space or split, or max_workers 0; ALREADY_EXISTS when the dataset holds every config),
  // creates the dataset when absent, stores the run of the configs the dataset lacks and
  // starts its workers. Workers that do not start leave the run cancelled and the error
  // (FAILED_PRECONDITION naming the reason) is returned.
  absl::StatusOr<MeasurementRunRecord> Start(const Request& request);

  // Cancels the run in the store and stops the workers this server started for it.
  // FAILED_PRECONDITION for a run that ended; NOT_FOUND for an unknown one.
  absl::StatusOr<MeasurementRunRecord> Cancel(const std::string& run_id);

  absl::StatusOr<MeasurementRunRecord> Get(const std::string& run_id);

  // Cancels every unfinished run whose records go to `dataset` (as Cancel does).
  absl::Status CancelRunsOf(const std::string& dataset);

  // The images and calibration images a run's settings name (0, 0 when they do not parse).
  static std::pair<int, int> RunImages(const MeasurementRunRecord& run);

 private:
  struct Followed {
    StartedWorkers workers;
    WorkerLaunch launch;
    int restarts_left = 0;
  };

  MeasurementRunManager(const Options& options, Catalog& catalog, Store& store,
                        SupernetHost& supernets);
  // The configs of `request` (validated, canonical JSON), in order.
  absl::StatusOr<std::vector<std::string>> Configs(const Request& request,
                                                   const oface::SearchSpace& space) const;
  void FollowLoop();
  // One look at every followed run: ended ones are dropped, dead workers started again.
  void FollowOnce();

  const Options options_;
  Catalog& catalog_;
  Store& store_;
  SupernetHost& supernets_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::map<std::string, Followed> followed_ ABSL_GUARDED_BY(mutex_);
  std::thread follower_;  // Last: started once the members above exist.
};

}  // namespace apq::server

#endif  // APQ_SERVER_MEASUREMENT_RUNS_H_
