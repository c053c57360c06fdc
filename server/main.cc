// apqd: the search server.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/tensor_memory.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to serve on; port 0 picks a free one");
ABSL_FLAG(std::string, db, "apq.db", "SQLite database file (created if absent)");
ABSL_FLAG(std::string, data_dir, "", "embedded defaults folder (default: ./data or runfiles)");
ABSL_FLAG(std::string, dataset_dir, "/usr/share/datasets/fashion-mnist",
          "Fashion-MNIST files for supernet measurements and exports (read on first use)");
ABSL_FLAG(int, workers, 0,
          "searches that run at once (0: one per CPU core this process may run on); each runs "
          "on one thread");
ABSL_FLAG(int, queue_capacity, 64, "queued searches before new ones are refused");
ABSL_FLAG(int, commit_interval_ms, 50,
          "a running search stores its steps in one transaction at most this often (0: every "
          "step); a crash loses at most this much search time, which the job runs again");
ABSL_FLAG(int, rpc_threads, 2, "threads serving store reads, submissions and cost evaluations");
ABSL_FLAG(int, torch_threads, 1,
          "threads serving calls that run LibTorch (measured evaluations, TorchScript exports)");
ABSL_FLAG(int, predictor_threads, 1,
          "LibTorch threads for accuracy prediction, per search (one: on a 2-core machine "
          "under load, two threads made batches 4-5x slower)");
ABSL_FLAG(std::string, port_file, "", "if set, the bound port is written there once serving");

namespace {

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
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    // Still here: exec failed; run with the default policy.
  }
  // Finalist verification and measured evaluations run LibTorch in this process.
  apq::KeepTensorMemoryForReuse();
  absl::SetProgramUsageMessage("apqd: hardware-aware architecture/pruning/quantization search");
  absl::ParseCommandLine(argc, argv);

  // SIGINT/SIGTERM are taken by a dedicated thread (blocked everywhere else).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  apq::server::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.database_path = absl::GetFlag(FLAGS_db);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.dataset_dir = absl::GetFlag(FLAGS_dataset_dir);
  options.job_workers = absl::GetFlag(FLAGS_workers);
  if (options.job_workers == 0) options.job_workers = UsableCores();
  options.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  options.job_commit_interval = absl::Milliseconds(absl::GetFlag(FLAGS_commit_interval_ms));
  options.rpc_threads = absl::GetFlag(FLAGS_rpc_threads);
  options.torch_threads = absl::GetFlag(FLAGS_torch_threads);
  options.predictor_threads = absl::GetFlag(FLAGS_predictor_threads);
  auto server = apq::server::ApqServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "apqd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "apqd: serving on port %d (database %s)\n", (*server)->port(),
               options.database_path.c_str());
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    // Written to a temporary name and renamed, so a reader never sees a partial file.
    const std::string temporary = port_file + ".tmp";
    std::ofstream(temporary) << (*server)->port() << "\n";
    std::rename(temporary.c_str(), port_file.c_str());
  }

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
