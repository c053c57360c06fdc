// apqd: the search server.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/tensor_memory.h"
#include "server/server.h"
#include "server/store/open_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to serve on; port 0 picks a free one");
ABSL_FLAG(std::string, db, "apq.db",
          "The store: a SQLite database file (created if absent) or a PostgreSQL database, "
          "postgresql://user@host:port/database");
ABSL_FLAG(std::string, data_dir, "", "embedded defaults folder (default: ./data or runfiles)");
ABSL_FLAG(std::string, dataset_dir, "/usr/share/datasets/fashion-mnist",
          "Fashion-MNIST files for supernet measurements and exports (read on first use)");
ABSL_FLAG(int, workers, 0,
          "searches that run at once (0: one per CPU core this process may run on); each runs "
          "on one thread");
ABSL_FLAG(int, queue_capacity, 64, "queued searches before new ones are refused");
ABSL_FLAG(std::string, replica_id, "",
          "Over a PostgreSQL --db: this replica's name in job leases, unique among the "
          "replicas (default <host>:<pid>)");
ABSL_FLAG(int, lease_seconds, 15,
          "Over a PostgreSQL --db: a job's lease; a replica that stops renewing it (it died) "
          "loses its jobs to another replica this long after its last renewal");
ABSL_FLAG(int, commit_interval_ms, 50,
          "a running search stores its steps in one transaction at most this often (0: every "
          "step); a crash loses at most this much search time, which the job runs again");
ABSL_FLAG(int, rpc_threads, 2, "threads serving store reads, submissions and cost evaluations");
ABSL_FLAG(int, torch_threads, 1,
          "threads serving calls that run LibTorch (measured evaluations, TorchScript exports)");
ABSL_FLAG(int, predictor_threads, 1,
          "LibTorch threads for accuracy prediction, per search (one: on a 2-core machine "
          "under load, two threads made batches 4-5x slower)");
ABSL_FLAG(int, measurement_threads, 0,
          "threads that measure policy losses on a supernet at once, for the iqp engine (0: one "
          "per CPU core this process may run on); each forward runs on one thread");
ABSL_FLAG(std::string, port_file, "", "if set, the bound port is written there once serving");
ABSL_FLAG(std::string, auth, "on",
          "on: every call needs an API token (apq token ...); off: calls without a token act as "
          "admin, allowed only on a loopback --listen address");
ABSL_FLAG(std::string, bootstrap_token_file, "",
          "if set, the admin token created at the first start with --auth=on is also written "
          "there (mode 0600) instead of only to stderr");
ABSL_FLAG(std::string, tls_cert, "", "TLS certificate chain (PEM); with --tls_key serves TLS");
ABSL_FLAG(std::string, tls_key, "", "TLS private key (PEM)");
ABSL_FLAG(int64_t, max_candidates_per_job, 20000000,
          "largest search a job may plan, in candidates scored (evolution: population x "
          "(generations + 1)); 0: no limit");
ABSL_FLAG(int64_t, max_job_seconds, int64_t{6} * 3600,
          "wall time after which a running search stops and fails, keeping what it stored; 0: "
          "no limit");
ABSL_FLAG(int64_t, max_rows_per_job, 50000000,
          "rows one job may store (scored networks, and infeasible draws with keep_all_draws); "
          "a job reaching it fails, keeping its rows (0: no limit)");
ABSL_FLAG(int, max_active_jobs_per_token, 16,
          "jobs one non-admin token may have queued or running at once; 0: no limit");
ABSL_FLAG(double, max_calls_per_second, 50,
          "calls per second one non-admin token may make on average; 0: no limit");
ABSL_FLAG(double, max_call_burst, 200, "calls one non-admin token may make at once");
ABSL_FLAG(std::string, role_quotas, "",
          "per-role changes to the three quotas above, admin's included: "
          "ROLE:KEY=VALUE[,KEY=VALUE...][;ROLE:...] with KEY max_calls_per_second, "
          "max_call_burst or max_active_jobs, e.g. "
          "\"viewer:max_calls_per_second=10;submitter:max_active_jobs=4\"");
ABSL_FLAG(int, retention_days, 0,
          "ended jobs older than this many days are deleted with their candidates (at start, "
          "then hourly); 0: kept forever");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA (PEM) that client certificates must be signed by: mutual TLS");
ABSL_FLAG(std::string, http_listen, "",
          "host:port of the web dashboard, its JSON API and /metrics (port 0 picks a free one; "
          "HTTPS with --tls_cert/--tls_key); empty: none");
ABSL_FLAG(int, http_threads, 4, "HTTP requests the dashboard serves at once");
ABSL_FLAG(std::string, http_port_file, "",
          "once the dashboard listens, its port is written to this file (for scripts using "
          "--http_listen with port 0)");

ABSL_FLAG(int, measure_workers, 4,
          "measurement runs (StartMeasurementRun, Verification.workers): the most workers of "
          "one run; 0: none are started and such calls are refused");
ABSL_FLAG(std::string, measure_launcher, "local",
          "how measurement workers start: local (processes on this machine) or slurm (one "
          "sbatch array per run; sbatch, squeue and scancel on PATH, the store and "
          "--measure_worker_binary reachable from every node)");
ABSL_FLAG(std::string, measure_worker_binary, "",
          "the measure_worker binary (default: beside apqd)");
ABSL_FLAG(std::string, measure_log_dir, "/tmp",
          "each measurement run's worker logs go to <dir>/apq-<run id>/ (a folder every Slurm "
          "node can write)");
ABSL_FLAG(int, measure_worker_threads, 1, "LibTorch threads (Slurm CPUs) of each worker");
ABSL_FLAG(int, measure_lease_seconds, 60,
          "a measurement task's lease: a dead worker's task is measured again this long after "
          "its last renewal");
ABSL_FLAG(int, measure_restarts, 2,
          "times the workers of a measurement run that all died with tasks left are started "
          "again before the run is cancelled");
ABSL_FLAG(std::string, slurm_partition, "", "sbatch --partition of measurement workers");
ABSL_FLAG(std::string, slurm_time, "", "sbatch --time of measurement workers");

namespace {

// Set in the environment of apqd's restart of itself (see main).
constexpr char kRestartedMark[] = "APQD_RESTARTED_WITH_SIGNALS_BLOCKED";

// The CPU cores this process may run on (its affinity mask), at least 1.
int UsableCores() {
  cpu_set_t cores;
  CPU_ZERO(&cores);
  if (sched_getaffinity(0, sizeof(cores), &cores) == 0) return std::max(1, CPU_COUNT(&cores));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

int main(int argc, char** argv) {
  // LibTorch's OpenMP teams busy-wait between parallel regions by default. apqd runs LibTorch
  // from several threads (job workers predicting, the RPC pool measuring on the supernet), and
  // their spinning teams starve each other on a small machine: a measured Evaluate took 12 s
  // instead of 3 s here. libgomp reads the policy when it loads, before main, so apqd restarts
  // itself once with it set (unless the caller chose a policy).
  // OpenBLAS (under LibTorch's dense products) sizes its own pool the same way: apqd
  // parallelises by running searches on separate workers, one thread each, so OpenBLAS gets
  // one thread per caller (unless the caller chose).
  //
  // SIGINT and SIGTERM must reach the signal thread below, so no other thread may take them;
  // but OpenBLAS starts its threads before main, with the signals unblocked. A signal mask
  // survives exec: apqd blocks them and restarts itself (once, marked in the environment),
  // so every thread of the new image, the libraries' too, starts with them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (std::getenv(kRestartedMark) == nullptr) {
    setenv(kRestartedMark, "1", 1);
    if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
      setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
      if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) setenv("OPENBLAS_NUM_THREADS", "1", 1);
    }
    // The binary's own path (not /proc/self/exe), so that ps names the process apqd.
    std::error_code error;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe", error).string();
    execv(error ? "/proc/self/exe" : self.c_str(), argv);
    // Still here: exec failed; run as we are (a signal may then end the process abruptly).
  }
  unsetenv(kRestartedMark);
  // Finalist verification and measured evaluations run LibTorch in this process.
  apq::KeepTensorMemoryForReuse();
  absl::SetProgramUsageMessage("apqd: hardware-aware architecture/pruning/quantization search");
  absl::ParseCommandLine(argc, argv);

  // SIGINT/SIGTERM are taken by a dedicated thread (blocked everywhere else, above).

  apq::server::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.database_path = absl::GetFlag(FLAGS_db);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.dataset_dir = absl::GetFlag(FLAGS_dataset_dir);
  options.job_workers = absl::GetFlag(FLAGS_workers);
  if (options.job_workers == 0) options.job_workers = UsableCores();
  // Negative values reach ApqServer::Start, which refuses them naming the flag.
  options.measurement_threads = absl::GetFlag(FLAGS_measurement_threads);
  if (options.measurement_threads == 0) options.measurement_threads = UsableCores();
  options.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  options.job_commit_interval = absl::Milliseconds(absl::GetFlag(FLAGS_commit_interval_ms));
  options.replica_id = absl::GetFlag(FLAGS_replica_id);
  if (absl::GetFlag(FLAGS_lease_seconds) < 1 || absl::GetFlag(FLAGS_lease_seconds) > 3600) {
    std::fprintf(stderr, "apqd: --lease_seconds must be in [1, 3600], got %d\n",
                 absl::GetFlag(FLAGS_lease_seconds));
    return 2;
  }
  options.job_lease = absl::Seconds(absl::GetFlag(FLAGS_lease_seconds));
  options.rpc_threads = absl::GetFlag(FLAGS_rpc_threads);
  options.torch_threads = absl::GetFlag(FLAGS_torch_threads);
  options.predictor_threads = absl::GetFlag(FLAGS_predictor_threads);
  const std::string auth = absl::GetFlag(FLAGS_auth);
  if (auth != "on" && auth != "off") {
    std::fprintf(stderr, "apqd: --auth: '%s' is not on or off\n", auth.c_str());
    return 2;
  }
  options.auth_required = auth == "on";
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.http_listen_address = absl::GetFlag(FLAGS_http_listen);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  options.max_candidates_per_job = absl::GetFlag(FLAGS_max_candidates_per_job);
  options.max_rows_per_job = absl::GetFlag(FLAGS_max_rows_per_job);
  options.max_job_duration = absl::Seconds(absl::GetFlag(FLAGS_max_job_seconds));
  options.max_active_jobs_per_token = absl::GetFlag(FLAGS_max_active_jobs_per_token);
  options.max_calls_per_second = absl::GetFlag(FLAGS_max_calls_per_second);
  options.max_call_burst = absl::GetFlag(FLAGS_max_call_burst);
  options.role_quotas = absl::GetFlag(FLAGS_role_quotas);
  if (absl::GetFlag(FLAGS_retention_days) < 0) {
    std::fprintf(stderr, "apqd: --retention_days: must be >= 0\n");
    return 2;
  }
  options.retention = absl::Hours(24) * absl::GetFlag(FLAGS_retention_days);
  // Ranges are checked by ApqServer::Start, naming the flag.
  options.measure_workers = absl::GetFlag(FLAGS_measure_workers);
  options.measure_launcher = absl::GetFlag(FLAGS_measure_launcher);
  options.measure_worker_binary = absl::GetFlag(FLAGS_measure_worker_binary);
  options.measure_log_dir = absl::GetFlag(FLAGS_measure_log_dir);
  options.measure_worker_threads = absl::GetFlag(FLAGS_measure_worker_threads);
  options.measure_lease_seconds = absl::GetFlag(FLAGS_measure_lease_seconds);
  options.measure_restarts = absl::GetFlag(FLAGS_measure_restarts);
  options.slurm_partition = absl::GetFlag(FLAGS_slurm_partition);
  options.slurm_time = absl::GetFlag(FLAGS_slurm_time);
  auto server = apq::server::ApqServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "apqd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "apqd: serving on port %d (database %s, authentication %s, %s)\n",
               (*server)->port(), apq::server::RedactedLocation(options.database_path).c_str(),
               auth.c_str(), options.tls_cert_file.empty() ? "plaintext" : "TLS");
  if (const auto& bootstrap = (*server)->bootstrap_token(); bootstrap.has_value()) {
    // Shown this once: only its hash is stored.
    std::fprintf(stderr,
                 "apqd: first start with authentication on: admin token %s (id %s); keep it, "
                 "it is not shown again\n",
                 bootstrap->bearer.c_str(), bootstrap->record.id.c_str());
    const std::string token_file = absl::GetFlag(FLAGS_bootstrap_token_file);
    if (!token_file.empty()) {
      const int fd = open(token_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0 || write(fd, bootstrap->bearer.data(), bootstrap->bearer.size()) < 0 ||
          close(fd) != 0) {
        std::fprintf(stderr, "apqd: --bootstrap_token_file: cannot write %s\n", token_file.c_str());
      }
    }
  }
  if ((*server)->http_port() != 0) {
    std::fprintf(stderr, "apqd: dashboard (%s) on port %d (--http_listen %s)\n",
                 options.tls_cert_file.empty() ? "http" : "https", (*server)->http_port(),
                 options.http_listen_address.c_str());
  }
  // Written to a temporary name and renamed, so a reader never sees a partial file.
  const auto write_port_file = [](const std::string& path, int port) {
    if (path.empty()) return;
    const std::string temporary = path + ".tmp";
    std::ofstream(temporary) << port << "\n";
    std::rename(temporary.c_str(), path.c_str());
  };
  // The dashboard's first: a script that waits for --port_file finds both.
  write_port_file(absl::GetFlag(FLAGS_http_port_file), (*server)->http_port());
  write_port_file(absl::GetFlag(FLAGS_port_file), (*server)->port());

  std::thread signal_waiter([&] {
    int received = 0;
    sigwait(&signals, &received);
    std::fprintf(stderr, "apqd: signal %d, shutting down\n", received);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_waiter.join();
  server->reset();
  std::fprintf(stderr, "apqd: stopped\n");
  return 0;
}
