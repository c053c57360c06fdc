#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/sqlite_store.h"

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

absl::StatusOr<std::unique_ptr<ApqServer>> ApqServer::Start(const ServerOptions& options) {
  if (options.rpc_threads < 1 || options.rpc_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("rpc_threads: must be in [1, 64], got ", options.rpc_threads));
  }
  if (options.predictor_threads < 1 || options.predictor_threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("predictor_threads: must be in [1, 256], got ", options.predictor_threads));
  }
  std::unique_ptr<ApqServer> server(new ApqServer());
  server->engines_ =
      options.engines != nullptr ? options.engines : search::EngineRegistry::BuiltIn();
  std::string data_dir = options.data_dir;
  if (data_dir.empty()) {
    ASSIGN_OR_RETURN(data_dir, DefaultDataDir());
  }
  SqliteStore::Options store_options;
  store_options.path = options.database_path;
  ASSIGN_OR_RETURN(server->store_, SqliteStore::Open(store_options));
  Catalog::Options catalog_options;
  catalog_options.data_dir = data_dir;
  catalog_options.predictor_threads = options.predictor_threads;
  ASSIGN_OR_RETURN(server->catalog_, Catalog::Create(catalog_options, *server->store_));
  // Before the job manager: recovered jobs may be verifying their finalists on it.
  SupernetHost::Options supernet_options;
  supernet_options.data_dir = data_dir;
  supernet_options.dataset_dir = options.dataset_dir;
  ASSIGN_OR_RETURN(server->supernets_, SupernetHost::Create(supernet_options));
  JobManager::Options job_options;
  job_options.workers = options.job_workers;
  job_options.queue_capacity = options.queue_capacity;
  job_options.commit_interval = options.job_commit_interval;
  ASSIGN_OR_RETURN(
      server->jobs_,
      JobManager::Create(job_options, *server->catalog_, server->store_->jobs(),
                         server->store_->datasets(), *server->supernets_, *server->engines_));
  TrainingManager::Options training_options;
  training_options.threads = options.predictor_threads;
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
  server->search_service_ = std::make_unique<SearchServiceImpl>(
      *server->catalog_, server->store_->jobs(), *server->jobs_, *server->supernets_,
      *server->engines_, *server->pool_, *server->torch_pool_);
  server->device_service_ = std::make_unique<DeviceServiceImpl>(
      *server->catalog_, server->store_->devices(), *server->pool_);
  server->predictor_service_ = std::make_unique<PredictorServiceImpl>(
      *server->catalog_, *server->store_, *server->training_, *server->pool_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(server->search_service_.get());
  builder.RegisterService(server->device_service_.get());
  builder.RegisterService(server->predictor_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address, " (address in use?)"));
  }
  return server;
}

void ApqServer::Wait() { server_->Wait(); }

void ApqServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Open streams (WatchJob) are cancelled after the deadline instead of holding shutdown.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

ApqServer::~ApqServer() {
  if (server_ != nullptr) Shutdown();
  // Order: no more calls, then no more jobs, then the pool drains, then the store closes.
  server_.reset();
  jobs_.reset();
  training_.reset();
  pool_.reset();
  torch_pool_.reset();
  supernets_.reset();
}

}  // namespace apq::server
