#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/process_name.h"
#include "common/status_macros.h"
#include "server/store/open_store.h"
#include "server/store/postgres_store.h"

namespace apq::server {

absl::StatusOr<std::string> DefaultDataDir() {
  std::error_code error;
  if (std::filesystem::exists("data/ofa_mbv3", error)) return std::string("data");
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    for (const std::filesystem::path& candidate :
         {std::filesystem::path(exe.string() + ".runfiles") / "apq" / "data",
          exe.parent_path().parent_path() / "data"}) {
      if (std::filesystem::exists(candidate / "ofa_mbv3", error)) return candidate.string();
    }
  }
  return absl::NotFoundError(
      "cannot find the embedded data folder (./data or the binary's runfiles); pass --data_dir");
}

bool IsLoopbackAddress(const std::string& listen_address) {
  return absl::StartsWith(listen_address, "127.") || absl::StartsWith(listen_address, "[::1]:") ||
         absl::StartsWith(listen_address, "localhost:") ||
         absl::StartsWith(listen_address, "unix:");
}

namespace {

absl::StatusOr<std::string> ReadPemFlag(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::ostringstream content;
  content << in.rdbuf();
  if (content.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' holds no PEM block"));
  }
  return content.str();
}

// Insecure credentials, or TLS (mutual when a client CA is given) from the PEM files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key: give both or neither");
  }
  if (options.tls_cert_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("tls_client_ca: needs tls_cert and tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPemFlag("tls_cert", options.tls_cert_file));
  ASSIGN_OR_RETURN(pair.private_key, ReadPemFlag("tls_key", options.tls_key_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!options.tls_client_ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFlag("tls_client_ca", options.tls_client_ca_file));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApqServer>> ApqServer::Start(const ServerOptions& options) {
  if (options.rpc_threads < 1 || options.rpc_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("rpc_threads: must be in [1, 64], got ", options.rpc_threads));
  }
  if (options.measurement_threads < 1 || options.measurement_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("measurement_threads: must be in [1, 64], got ", options.measurement_threads));
  }
  if (options.predictor_threads < 1 || options.predictor_threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("predictor_threads: must be in [1, 256], got ", options.predictor_threads));
  }
  if (options.max_candidates_per_job < 0 || options.max_job_duration < absl::ZeroDuration() ||
      options.max_rows_per_job < 0 || options.max_active_jobs_per_token < 0 ||
      !(options.max_calls_per_second >= 0) || !(options.max_call_burst >= 0)) {
    return absl::InvalidArgumentError(
        "max_candidates_per_job, max_job_seconds, max_rows_per_job, max_active_jobs_per_token, "
        "max_calls_per_second, max_call_burst: must be >= 0 (0: no limit)");
  }
  RoleQuotas quotas = RoleQuotas::AllButAdmin(
      {options.max_calls_per_second, options.max_call_burst, options.max_active_jobs_per_token});
  RETURN_IF_ERROR(quotas.Apply(options.role_quotas, "role_quotas"));
  // Before anything starts: a bad dashboard address must not leave a gRPC server started.
  if (!options.http_listen_address.empty()) {
    RETURN_IF_ERROR(SplitListenAddress(options.http_listen_address).status());
  }
  if (!options.auth_required && !options.http_listen_address.empty() &&
      !IsLoopbackAddress(options.http_listen_address)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "auth: off is allowed only on loopback addresses; the dashboard's http_listen ",
        options.http_listen_address, " is not one"));
  }
  if (!options.auth_required && !IsLoopbackAddress(options.listen_address)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "auth: off is allowed only on a loopback address (anyone who reaches ",
        options.listen_address, " could change anything); listen on 127.0.0.1 or turn it on"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   ServerCredentialsFor(options));
  std::unique_ptr<ApqServer> server(new ApqServer());
  server->engines_ =
      options.engines != nullptr ? options.engines : search::EngineRegistry::BuiltIn();
  std::string data_dir = options.data_dir;
  if (data_dir.empty()) {
    ASSIGN_OR_RETURN(data_dir, DefaultDataDir());
  }
  StoreLocation store_location;
  store_location.location = options.database_path;
  ASSIGN_OR_RETURN(server->store_, OpenStore(store_location));
  Catalog::Options catalog_options;
  catalog_options.data_dir = data_dir;
  catalog_options.predictor_threads = options.predictor_threads;
  ASSIGN_OR_RETURN(server->catalog_, Catalog::Create(catalog_options, *server->store_));
  // Before the job manager: recovered jobs may be verifying their finalists on it.
  SupernetHost::Options supernet_options;
  supernet_options.data_dir = data_dir;
  supernet_options.dataset_dir = options.dataset_dir;
  supernet_options.measurement_threads = options.measurement_threads;
  ASSIGN_OR_RETURN(server->supernets_, SupernetHost::Create(supernet_options));
  ASSIGN_OR_RETURN(const WorkerLauncher launcher,
                   WorkerLauncherFromName("measure_launcher", options.measure_launcher));
  MeasurementRunManager::Options measure_options;
  const LocationWithoutPassword worker_store = SplitPassword(options.database_path);
  std::error_code error;
  measure_options.worker_store =
      PostgresStore::IsPostgresLocation(options.database_path)
          ? worker_store.location
          : std::filesystem::absolute(options.database_path, error).string();
  if (!worker_store.password.empty()) {
    measure_options.worker_environment = {absl::StrCat("PGPASSWORD=", worker_store.password)};
  }
  measure_options.worker_binary =
      options.measure_worker_binary.empty()
          ? (std::filesystem::read_symlink("/proc/self/exe", error).parent_path() /
             "measure_worker")
                .string()
          : options.measure_worker_binary;
  measure_options.launcher = launcher;
  measure_options.max_workers = options.measure_workers;
  measure_options.worker_threads = options.measure_worker_threads;
  measure_options.lease_seconds = options.measure_lease_seconds;
  measure_options.restarts = options.measure_restarts;
  measure_options.log_root = options.measure_log_dir;
  measure_options.slurm_partition = options.slurm_partition;
  measure_options.slurm_time_limit = options.slurm_time;
  ASSIGN_OR_RETURN(server->measurements_,
                   MeasurementRunManager::Create(measure_options, *server->catalog_,
                                                 *server->store_, *server->supernets_));
  JobManager::Options job_options;
  job_options.workers = options.job_workers;
  job_options.queue_capacity = options.queue_capacity;
  job_options.commit_interval = options.job_commit_interval;
  job_options.max_candidates_per_job = options.max_candidates_per_job;
  job_options.max_rows_per_job = options.max_rows_per_job;
  job_options.max_job_duration = options.max_job_duration;
  job_options.artifacts = &server->store_->artifacts();
  job_options.measurement_runs = server->measurements_.get();
  if (PostgresStore::IsPostgresLocation(options.database_path)) {
    // A shared store: this server is one of its replicas (any number may run).
    job_options.replica.holder =
        options.replica_id.empty() ? HostAndPid("apqd") : options.replica_id;
    job_options.replica.lease = options.job_lease;
    job_options.replica.poll_interval = std::min(absl::Milliseconds(250), options.job_lease / 4);
  }
  ASSIGN_OR_RETURN(
      server->jobs_,
      JobManager::Create(job_options, *server->catalog_, server->store_->jobs(),
                         server->store_->datasets(), *server->supernets_, *server->engines_));
  TrainingManager::Options training_options;
  training_options.threads = options.predictor_threads;
  // Over a shared store, training jobs are claimed and leased like searches.
  training_options.replica.holder = job_options.replica.holder;
  training_options.replica.lease = job_options.replica.lease;
  training_options.replica.poll_interval = job_options.replica.poll_interval;
  ASSIGN_OR_RETURN(server->training_,
                   TrainingManager::Create(training_options, *server->catalog_, *server->store_));
  Executor::Options pool_options;
  pool_options.name = "rpc";
  pool_options.threads = options.rpc_threads;
  pool_options.queue_capacity = options.rpc_queue_capacity;
  ASSIGN_OR_RETURN(server->pool_, Executor::Create(pool_options));
  Executor::Options torch_options;
  torch_options.name = "LibTorch";
  torch_options.threads = options.torch_threads;
  torch_options.queue_capacity = options.torch_queue_capacity;
  ASSIGN_OR_RETURN(server->torch_pool_, Executor::Create(torch_options));
  Authenticator::Options auth_options;
  auth_options.required = options.auth_required;
  auth_options.quotas = quotas;
  server->auth_ = std::make_unique<Authenticator>(auth_options, server->store_->tokens());
  ASSIGN_OR_RETURN(server->bootstrap_token_, server->auth_->BootstrapAdmin());
  server->search_service_ = std::make_unique<SearchServiceImpl>(
      *server->catalog_, server->store_->jobs(), server->store_->artifacts(), *server->jobs_,
      *server->supernets_, *server->engines_, *server->pool_, *server->torch_pool_, *server->auth_,
      quotas);
  server->device_service_ = std::make_unique<DeviceServiceImpl>(
      *server->catalog_, server->store_->devices(), *server->pool_, *server->auth_);
  server->predictor_service_ = std::make_unique<PredictorServiceImpl>(
      *server->catalog_, *server->store_, *server->training_, *server->measurements_,
      *server->pool_, *server->auth_);
  server->access_service_ =
      std::make_unique<AccessServiceImpl>(*server->auth_, server->store_->tokens(), *server->pool_);
  server->space_service_ =
      std::make_unique<SpaceServiceImpl>(*server->catalog_, server->store_->devices(),
                                         *server->supernets_, *server->pool_, *server->auth_);
  if (options.retention > absl::ZeroDuration()) {
    ApqServer* raw = server.get();
    const absl::Duration retention = options.retention;
    raw->pruner_ = std::thread([raw, retention] {
      do {
        absl::StatusOr<int64_t> deleted = raw->jobs_->DeleteFinishedBefore(retention);
        if (!deleted.ok()) {
          std::fprintf(stderr, "apqd: pruning ended jobs: %s\n",
                       deleted.status().ToString().c_str());
        } else if (*deleted > 0) {
          std::fprintf(stderr, "apqd: deleted %lld ended jobs older than %s\n",
                       static_cast<long long>(*deleted), absl::FormatDuration(retention).c_str());
        }
      } while (!raw->stop_pruning_.WaitForNotificationWithTimeout(absl::Hours(1)));
    });
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(server->search_service_.get());
  builder.RegisterService(server->device_service_.get());
  builder.RegisterService(server->predictor_service_.get());
  builder.RegisterService(server->access_service_.get());
  builder.RegisterService(server->space_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcMetricsInterceptor(server->rpc_metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address, " (address in use?)"));
  }
  // Health checks name a service or none (""); each of ours answers SERVING.
  for (const char* service :
       {apq::v1::SearchService::service_full_name(), apq::v1::DeviceService::service_full_name(),
        apq::v1::PredictorService::service_full_name(), apq::v1::AccessService::service_full_name(),
        apq::v1::SpaceService::service_full_name()}) {
    server->server_->GetHealthCheckService()->SetServingStatus(service, true);
  }
  if (!options.http_listen_address.empty()) {
    DashboardOptions dashboard_options;
    dashboard_options.listen_address = options.http_listen_address;
    dashboard_options.threads = options.http_threads;
    dashboard_options.tls_cert_file = options.tls_cert_file;
    dashboard_options.tls_key_file = options.tls_key_file;
    dashboard_options.tls_client_ca_file = options.tls_client_ca_file;
    // In process: the dashboard's calls skip the network and TLS, and pass the same
    // authentication, quotas and validation as any client's.
    const ApqServer* raw = server.get();
    ASSIGN_OR_RETURN(server->dashboard_,
                     Dashboard::Start(dashboard_options,
                                      server->server_->InProcessChannel(grpc::ChannelArguments()),
                                      *server->auth_, [raw] { return raw->MetricsText(); }));
  }
  return server;
}

std::string ApqServer::MetricsText() const {
  PrometheusWriter writer;
  writer.Family("apq_jobs", "gauge",
                "Search jobs in the store by state (deleted ones not counted).");
  const absl::StatusOr<std::map<JobState, int64_t>> counts = store_->jobs().CountJobsByState();
  if (counts.ok()) {
    for (const auto& [state, name] :
         std::vector<std::pair<JobState, const char*>>{{JobState::kQueued, "queued"},
                                                       {JobState::kRunning, "running"},
                                                       {JobState::kSucceeded, "succeeded"},
                                                       {JobState::kFailed, "failed"},
                                                       {JobState::kCancelled, "cancelled"}}) {
      const auto found = counts->find(state);
      writer.Sample("apq_jobs", {{"state", name}},
                    found != counts->end() ? static_cast<double>(found->second) : 0.0);
    }
  }
  writer.Family("apq_job_counts_unreadable", "gauge",
                "1 when this page could not read the job counts from the store (apq_jobs is "
                "then absent), else 0.");
  writer.Sample("apq_job_counts_unreadable", {}, counts.ok() ? 0.0 : 1.0);
  writer.Family("apq_job_queue_depth", "gauge", "Search jobs queued for a worker of this server.");
  writer.Sample("apq_job_queue_depth", {}, static_cast<double>(jobs_->queued_jobs()));
  writer.Family("apq_candidates_scored_total", "counter",
                "Feasible candidates scored by this server's jobs since it started (its rate is "
                "candidates scored per second).");
  writer.Sample("apq_candidates_scored_total", {}, static_cast<double>(jobs_->candidates_scored()));
  writer.Family("apq_executor_calls_total", "counter",
                "Calls handed to an executor (cheap calls: rpc; LibTorch calls: torch), by "
                "outcome: ran, expired (the deadline passed while it waited), refused (full).");
  for (const auto& [name, executor] :
       {std::make_pair("rpc", pool_.get()), std::make_pair("torch", torch_pool_.get())}) {
    const Executor::Stats stats = executor->stats();
    for (const auto& [outcome, calls] :
         {std::make_pair("ran", stats.ran), std::make_pair("expired", stats.expired),
          std::make_pair("refused", stats.refused)}) {
      writer.Sample("apq_executor_calls_total", {{"executor", name}, {"outcome", outcome}},
                    static_cast<double>(calls));
    }
  }
  writer.RpcFamilies(*rpc_metrics_);
  return writer.text();
}

void ApqServer::Wait() { server_->Wait(); }

void ApqServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  dashboard_.reset();  // Its calls go to the server below.
  // Open streams (WatchJob) are cancelled after the deadline instead of holding shutdown.
  // Health checks say NOT_SERVING from now on, so balancers stop sending calls.
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

ApqServer::~ApqServer() {
  stop_pruning_.Notify();
  if (pruner_.joinable()) pruner_.join();
  if (server_ != nullptr) Shutdown();
  // Order: no more calls, then no more jobs, then the pool drains, then the store closes.
  server_.reset();
  jobs_.reset();
  measurements_.reset();
  training_.reset();
  pool_.reset();
  torch_pool_.reset();
  supernets_.reset();
}

}  // namespace apq::server
