// The assembled service: store, catalog, job manager and the gRPC server, with health and
// reflection services. Used by apqd's main and by tests that need a real server.
#ifndef APQ_SERVER_SERVER_H_
#define APQ_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "search/engine_registry.h"
#include "server/auth.h"
#include "server/catalog.h"
#include "server/dashboard.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/measurement_runs.h"
#include "server/rpc_metrics.h"
#include "server/services.h"
#include "server/store/store.h"
#include "server/training_manager.h"

namespace apq::server {

struct ServerOptions {
  std::string listen_address = "127.0.0.1:50051";  // Port 0 picks a free port.
  // A SQLite file (created if absent) or a postgresql:// URI (server/store/open_store.h).
  std::string database_path = "apq.db";
  std::string data_dir;  // Embedded defaults; empty = found next to the binary.
  // Fashion-MNIST *-ubyte.gz files, for supernet measurements and exports (read on first use).
  std::string dataset_dir = "/usr/share/datasets/fashion-mnist";
  int job_workers = 1;      // Searches that run at once.
  int queue_capacity = 64;  // Queued searches before SubmitSearch is refused.
  // Over a PostgreSQL store, this server is one of its replicas (JobManager::Options::replica):
  // its name in the job leases (default "<host>:<pid>") and the lease's length.
  std::string replica_id;
  absl::Duration job_lease = absl::Seconds(15);
  // How often a running search stores its steps (JobManager::Options::commit_interval).
  absl::Duration job_commit_interval = absl::Milliseconds(50);
  int rpc_threads = 2;           // Threads that serve cheap calls: store reads, submissions, costs.
  int rpc_queue_capacity = 256;  // Cheap calls waiting beyond which calls are refused.
  // Threads that serve calls running LibTorch (measured evaluations, TorchScript exports),
  // apart from the cheap ones so that a cheap call never waits behind a measurement.
  int torch_threads = 1;
  int torch_queue_capacity = 16;  // LibTorch calls waiting beyond which calls are refused.
  int predictor_threads = 2;      // LibTorch intra-op threads.
  // Threads that measure policy losses on a supernet at once (the iqp engine's sensitivities).
  int measurement_threads = 1;
  int max_message_bytes = 64 << 20;  // Largest request (table uploads).
  // The search engines jobs may pick; null means the product's (EngineRegistry::BuiltIn).
  std::shared_ptr<const search::EngineRegistry> engines;
  // Every call but the health checks needs an API token (server/auth.h). Off is allowed
  // only on a loopback listen address; then a call without a token is the anonymous admin.
  bool auth_required = true;
  // Quotas (0: none). Per job: candidates its engine plans and wall time; per token of
  // every role but admin: jobs queued or running at once, and calls per second (burst: at
  // once).
  int64_t max_candidates_per_job = 0;
  absl::Duration max_job_duration = absl::ZeroDuration();
  int64_t max_rows_per_job = 0;  // JobManager::Options::max_rows_per_job.
  int max_active_jobs_per_token = 0;
  double max_calls_per_second = 0;
  double max_call_burst = 0;
  // Per-role changes to the three above (server/quotas.h, RoleQuotas::Apply), e.g.
  // "viewer:max_calls_per_second=10;admin:max_calls_per_second=500".
  std::string role_quotas;
  // Ended jobs older than this are deleted, at start and then every hour. 0: kept forever.
  absl::Duration retention = absl::ZeroDuration();
  // TLS: the server's certificate chain and key (PEM files); both or neither. With
  // `tls_client_ca`, clients must present a certificate signed by it (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // The web dashboard, its JSON endpoints and /metrics (server/dashboard.h) on this
  // "host:port" (port 0 picks a free one); empty: none. Served over HTTPS with the TLS files
  // above when they are given. Without authentication it too must be a loopback address.
  std::string http_listen_address;
  int http_threads = 4;  // HTTP requests served at once.
  // Measurement runs (StartMeasurementRun, Verification.workers; server/measurement_runs.h):
  // the most workers of one run (0: runs are refused), how they start ("local" processes or
  // a "slurm" array), the measure_worker binary (empty: beside this one), the folder of
  // their logs, their LibTorch threads, their task lease, and sbatch's partition and time.
  int measure_workers = 4;
  std::string measure_launcher = "local";
  std::string measure_worker_binary;
  std::string measure_log_dir = "/tmp";
  int measure_worker_threads = 1;
  int measure_lease_seconds = 60;
  int measure_restarts = 2;  // MeasurementRunManager::Options::restarts.
  std::string slurm_partition;
  std::string slurm_time;
};

// True for addresses that only this machine can reach: 127.0.0.0/8, [::1], localhost,
// unix sockets.
bool IsLoopbackAddress(const std::string& listen_address);

// Where the embedded data is when no folder is given: ./data, else the runfiles of the
// running binary. NOT_FOUND when neither exists.
absl::StatusOr<std::string> DefaultDataDir();

class ApqServer {
 public:
  // Opens the store, recovers unfinished jobs and starts serving.
  static absl::StatusOr<std::unique_ptr<ApqServer>> Start(const ServerOptions& options);
  ~ApqServer();

  int port() const { return port_; }
  // The dashboard's port; 0 without one.
  int http_port() const { return dashboard_ != nullptr ? dashboard_->port() : 0; }
  // /metrics: jobs by state, the job queue, candidates scored, the executors' queues, and
  // every gRPC call by method and code with latency histograms (Prometheus text format).
  std::string MetricsText() const;
  // The admin token created at this start because authentication is on and the store held
  // no token (to be shown to the operator once), else nullopt.
  const std::optional<IssuedToken>& bootstrap_token() const { return bootstrap_token_; }
  // The executors of cheap calls and of LibTorch calls.
  Executor::Stats rpc_executor_stats() const { return pool_->stats(); }
  Executor::Stats torch_executor_stats() const { return torch_pool_->stats(); }
  // Blocks until Shutdown.
  void Wait();
  // Stops accepting calls, lets running calls end, stops the jobs between generations (they
  // stay running in the store and resume at the next start).
  void Shutdown();

 private:
  ApqServer() = default;

  std::unique_ptr<Store> store_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<TrainingManager> training_;
  std::unique_ptr<SupernetHost> supernets_;
  std::unique_ptr<MeasurementRunManager> measurements_;
  std::shared_ptr<const search::EngineRegistry> engines_;
  std::unique_ptr<Executor> pool_;
  std::unique_ptr<Executor> torch_pool_;
  std::unique_ptr<SearchServiceImpl> search_service_;
  std::unique_ptr<DeviceServiceImpl> device_service_;
  std::unique_ptr<PredictorServiceImpl> predictor_service_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<AccessServiceImpl> access_service_;
  std::unique_ptr<SpaceServiceImpl> space_service_;
  std::optional<IssuedToken> bootstrap_token_;
  // Deletes ended jobs past the retention, hourly, until stop_pruning_ is notified.
  absl::Notification stop_pruning_;
  std::thread pruner_;
  std::unique_ptr<RpcMetrics> rpc_metrics_ = std::make_unique<RpcMetrics>();
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Dashboard> dashboard_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace apq::server

#endif  // APQ_SERVER_SERVER_H_
