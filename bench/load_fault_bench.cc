// Load and fault harness of apqd (issue 14): many clients with real API tokens against one
// server, first undisturbed, then with the server SIGKILLed and restarted during the run.
//
// Each phase starts apqd (authentication on) on a fresh database, creates a token per client
// (submitters, hardware teams, viewers) with the bootstrap admin token, and runs the clients
// for --seconds:
//   submitter  Evaluate of 1-4 ofa_mbv3 configs on note10 (half of its calls), ListCandidates
//              of a finished job (a quarter), SubmitSearch of a small evolution search and
//              WatchJob to its end (a quarter); a watch broken by a kill is opened again;
//   hardware   UploadCostTable of a conv table for its own device, then GetDevice;
//   viewer     ListJobs, GetJob and ListCandidates of any job.
// In the kill phase the server is SIGKILLed at 1/3 and 2/3 of the run and restarted on the
// same database and port at once. After the run every submitted job is waited for, and the
// harness checks what was acknowledged: every job a SubmitSearch answered exists and
// succeeded, every candidate row a ListCandidates returned is still stored with the same
// config, every table version an upload answered is still listed with the same hash, and a
// job of the kill phase with the same seed as one of the undisturbed phase ended with the
// same best and the same number of rows. Prints, per phase, p50/p99 latency per RPC, errors
// by code (UNAVAILABLE outside a kill window is flagged), apqd's RSS before and after, and
// the checks; --out also writes them as JSON. Exits 1 when a check fails.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "proto/apq/v1/apq.grpc.pb.h"

ABSL_FLAG(std::string, apqd, "bazel-bin/server/apqd", "the apqd binary");
ABSL_FLAG(std::string, data_dir, "data", "apqd's embedded defaults folder");
ABSL_FLAG(std::string, work_dir, "/tmp/apq-load-fault", "databases and logs (emptied first)");
ABSL_FLAG(int, submitters, 24, "submitter clients");
ABSL_FLAG(int, hardware_clients, 4, "hardware clients (table uploads)");
ABSL_FLAG(int, viewers, 4, "viewer clients");
ABSL_FLAG(int, seconds, 60, "length of each phase's load");
ABSL_FLAG(std::string, phases, "steady,kills", "phases to run, in order: steady, kills");
ABSL_FLAG(int, kills, 2, "SIGKILLs in the kills phase, evenly spread");
ABSL_FLAG(int, population, 50, "population of each submitted search");
ABSL_FLAG(int, generations, 100, "generations of each submitted search");
ABSL_FLAG(std::string, out, "", "optional JSON file of the figures");

namespace {

using Clock = std::chrono::steady_clock;
using apq::v1::AccessService;
using apq::v1::DeviceService;
using apq::v1::SearchService;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "load_fault_bench: %s\n", message.c_str());
  std::exit(1);
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) Die("cannot read " + path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// A port the kernel had free a moment ago: the server binds it on every start, so that
// clients keep one address across restarts.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) Die("bind");
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// apqd on one database and port, started, killed and restarted.
class Server {
 public:
  Server(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}
  ~Server() {
    if (pid_ > 0) Kill(SIGKILL);
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string token_file() const { return dir_ + "/bootstrap_token"; }

  // Starts apqd and waits until it serves (its port file appears).
  void Start() {
    const std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    const std::vector<std::string> args = {absl::GetFlag(FLAGS_apqd),
                                           "--db=" + dir_ + "/apq.db",
                                           "--listen=" + address(),
                                           "--data_dir=" + absl::GetFlag(FLAGS_data_dir),
                                           "--bootstrap_token_file=" + token_file(),
                                           "--port_file=" + port_file};
    // The child's freopen would flush a copy of this process's unwritten output.
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ < 0) Die("fork");
    if (pid_ == 0) {
      const std::string log = dir_ + "/apqd.log";
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const Clock::time_point start = Clock::now();
    while (!std::filesystem::exists(port_file)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) Die("apqd exited at start; see " + dir_);
      if (SecondsSince(start) > 120) Die("apqd did not serve within 120 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void Kill(int signal) {
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // VmRSS and VmHWM of the running apqd, MiB.
  std::pair<double, double> Memory() const {
    std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
    double rss = 0;
    double peak = 0;
    for (std::string line; std::getline(status, line);) {
      int64_t kib = 0;
      if (std::sscanf(line.c_str(), "VmRSS: %" SCNd64 " kB", &kib) == 1) rss = kib / 1024.0;
      if (std::sscanf(line.c_str(), "VmHWM: %" SCNd64 " kB", &kib) == 1) peak = kib / 1024.0;
    }
    return {rss, peak};
  }

 private:
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

// The clients' channels try to reconnect after 100 ms, then at most every second (gRPC's
// default backoff grows to 120 s, which would time the client's patience, not the server).
// Each attempt keeps gRPC's default connect timeout (20 s): a shorter one fails the
// handshakes of a server that is busy resuming its jobs.
constexpr double kMaxReconnectBackoffS = 1.0;

std::shared_ptr<grpc::Channel> ClientChannel(const std::string& address) {
  grpc::ChannelArguments arguments;
  // A connection of its own per client, as separate client processes would have (channels
  // with equal arguments otherwise share one).
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                   static_cast<int>(kMaxReconnectBackoffS * 1000));
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
}

struct CallRecord {
  std::string rpc;
  double start_s = 0;
  double end_s = 0;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
};

// What the clients were told and must still hold at the end.
struct Acknowledged {
  std::mutex mutex;
  // Job id -> (client, k): the seed's origin, to pair jobs across phases.
  std::map<std::string, std::pair<int, int>> jobs;
  std::vector<std::string> finished_jobs;                       // Seen SUCCEEDED: listed by others.
  std::map<std::pair<std::string, int64_t>, std::string> rows;  // (job, row id) -> config
  std::map<std::pair<std::string, int64_t>, std::string> table_versions;  // -> sha256
  int64_t rows_seen = 0;
};

struct Phase {
  std::string name;
  Clock::time_point start;
  std::vector<std::pair<double, double>> kill_windows;  // [killed, serving again], seconds
  std::mutex records_mutex;
  std::vector<CallRecord> records;
  Acknowledged acknowledged;
  std::atomic<bool> stop{false};

  void Record(std::string rpc, double start_s, const grpc::Status& status) {
    const double end_s = SecondsSince(start);
    std::lock_guard<std::mutex> lock(records_mutex);
    records.push_back(
        {std::move(rpc), start_s, end_s, status.error_code(), status.error_message()});
  }
  // A call overlapping [killed, serving again + the clients' longest reconnect backoff].
  bool InKillWindow(const CallRecord& record) const {
    for (const auto& [killed, serving] : kill_windows) {
      if (record.end_s >= killed && record.start_s <= serving + kMaxReconnectBackoffS) return true;
    }
    return false;
  }
};

// A client's channel and stubs. After UNAVAILABLE the client opens a new channel, as a new
// client process would: gRPC 1.51's channels otherwise keep failing calls with the last
// connect error for seconds after a restarted server serves again (their reconnect state),
// which would time the client library instead of the server.
struct Connection {
  explicit Connection(std::string target) : address(std::move(target)) { Reopen(); }
  void Reopen() {
    channel = ClientChannel(address);
    search = SearchService::NewStub(channel);
    devices = DeviceService::NewStub(channel);
  }
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<SearchService::Stub> search;
  std::unique_ptr<DeviceService::Stub> devices;
};

struct ClientContextFactory {
  std::string bearer;
  Connection* connection = nullptr;  // Reopened after UNAVAILABLE.
  std::unique_ptr<grpc::ClientContext> New(double deadline_s) const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", "Bearer " + bearer);
    if (deadline_s > 0) {
      context->set_deadline(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
    }
    return context;
  }
};

// Calls `call` with a fresh context, records it, and returns its status.
template <typename Call>
grpc::Status Timed(Phase& phase, const ClientContextFactory& contexts, const std::string& rpc,
                   Call call) {
  const std::unique_ptr<grpc::ClientContext> context = contexts.New(10);
  const double start_s = SecondsSince(phase.start);
  grpc::Status status = call(context.get());
  phase.Record(rpc, start_s, status);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && contexts.connection != nullptr) {
    contexts.connection->Reopen();
  }
  return status;
}

void Backoff(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string RandomFinishedJob(Acknowledged& acknowledged, std::mt19937_64& rng) {
  std::lock_guard<std::mutex> lock(acknowledged.mutex);
  if (acknowledged.finished_jobs.empty()) return "";
  return acknowledged.finished_jobs[rng() % acknowledged.finished_jobs.size()];
}

void ListCandidatesOf(Phase& phase, const ClientContextFactory& contexts, const std::string& job,
                      bool remember_rows) {
  apq::v1::ListCandidatesRequest request;
  request.set_job_id(job);
  request.set_page_size(100);
  request.set_sort_by(apq::v1::SORT_METRIC_ACCURACY);
  apq::v1::ListCandidatesResponse response;
  const grpc::Status status =
      Timed(phase, contexts, "ListCandidates", [&](grpc::ClientContext* context) {
        return contexts.connection->search->ListCandidates(context, request, &response);
      });
  Backoff(status);
  if (!status.ok() || !remember_rows) return;
  std::lock_guard<std::mutex> lock(phase.acknowledged.mutex);
  for (const apq::v1::Candidate& candidate : response.candidates()) {
    phase.acknowledged.rows[{job, candidate.id()}] = candidate.config_json();
  }
  phase.acknowledged.rows_seen += response.candidates_size();
}

// Watches `job` until it ends or the phase's grace has passed, opening the stream again
// after a kill. True when it saw the job succeed.
bool WatchToEnd(Phase& phase, const ClientContextFactory& contexts, const std::string& job,
                double give_up_s) {
  while (SecondsSince(phase.start) < give_up_s) {
    const std::unique_ptr<grpc::ClientContext> context = contexts.New(0);
    apq::v1::WatchJobRequest request;
    request.set_job_id(job);
    const double start_s = SecondsSince(phase.start);
    std::unique_ptr<grpc::ClientReader<apq::v1::JobProgress>> reader =
        contexts.connection->search->WatchJob(context.get(), request);
    apq::v1::JobProgress progress;
    apq::v1::JobState last = apq::v1::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&progress)) last = progress.state();
    const grpc::Status status = reader->Finish();
    phase.Record("WatchJob (to the end)", start_s, status);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) contexts.connection->Reopen();
    if (last == apq::v1::JOB_STATE_SUCCEEDED) return true;
    if (last == apq::v1::JOB_STATE_FAILED || last == apq::v1::JOB_STATE_CANCELLED) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

apq::v1::SubmitSearchRequest SearchRequest(int client, int k) {
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.mutable_budgets()->set_max_latency_ms(20 + (client % 5) * 5);
  request.mutable_evolution()->set_population_size(absl::GetFlag(FLAGS_population));
  request.mutable_evolution()->set_generations(absl::GetFlag(FLAGS_generations));
  request.set_seed(static_cast<uint64_t>(client) * 1000 + k + 1);
  request.set_label(absl::StrCat("load c", client, " k", k));
  return request;
}

void RunSubmitter(Phase& phase, const ClientContextFactory& contexts, int client,
                  const std::vector<std::string>& configs, double end_s) {
  std::mt19937_64 rng(client + 1);
  int k = 0;
  while (SecondsSince(phase.start) < end_s) {
    const double choice = std::uniform_real_distribution<double>(0, 1)(rng);
    if (choice < 0.5) {
      apq::v1::EvaluateRequest request;
      request.set_space("ofa_mbv3");
      request.set_device("note10");
      const int count = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < count; ++i) request.add_configs_json(configs[rng() % configs.size()]);
      apq::v1::EvaluateResponse response;
      Backoff(Timed(phase, contexts, "Evaluate", [&](grpc::ClientContext* context) {
        return contexts.connection->search->Evaluate(context, request, &response);
      }));
    } else if (choice < 0.75) {
      const std::string job = RandomFinishedJob(phase.acknowledged, rng);
      if (!job.empty()) ListCandidatesOf(phase, contexts, job, /*remember_rows=*/true);
    } else {
      const apq::v1::SubmitSearchRequest request = SearchRequest(client, k);
      apq::v1::Job job;
      const grpc::Status status =
          Timed(phase, contexts, "SubmitSearch", [&](grpc::ClientContext* context) {
            return contexts.connection->search->SubmitSearch(context, request, &job);
          });
      Backoff(status);
      if (!status.ok()) continue;
      {
        std::lock_guard<std::mutex> lock(phase.acknowledged.mutex);
        phase.acknowledged.jobs[job.id()] = {client, k};
      }
      ++k;
      if (WatchToEnd(phase, contexts, job.id(), end_s + 120)) {
        std::lock_guard<std::mutex> lock(phase.acknowledged.mutex);
        phase.acknowledged.finished_jobs.push_back(job.id());
      }
    }
  }
}

void RunHardware(Phase& phase, const ClientContextFactory& contexts, int client,
                 const std::string& table, double end_s) {
  const std::string device = absl::StrCat("load-hw-", client);
  while (SecondsSince(phase.start) < end_s) {
    apq::v1::UploadCostTableRequest request;
    request.set_device(device);
    request.set_format(apq::v1::TABLE_FORMAT_CONV_JSON);
    request.set_description("load test");
    apq::v1::TableFile* file = request.add_files();
    file->set_name("table.json");
    file->set_content(table);
    apq::v1::Device uploaded;
    const grpc::Status status =
        Timed(phase, contexts, "UploadCostTable", [&](grpc::ClientContext* context) {
          return contexts.connection->devices->UploadCostTable(context, request, &uploaded);
        });
    Backoff(status);
    if (status.ok() && uploaded.versions_size() > 0) {
      const apq::v1::TableVersion& latest = uploaded.versions(uploaded.versions_size() - 1);
      std::lock_guard<std::mutex> lock(phase.acknowledged.mutex);
      phase.acknowledged.table_versions[{device, latest.version()}] = latest.sha256();
    }
    apq::v1::GetDeviceRequest get;
    get.set_device(device);
    apq::v1::Device got;
    Backoff(Timed(phase, contexts, "GetDevice", [&](grpc::ClientContext* context) {
      return contexts.connection->devices->GetDevice(context, get, &got);
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void RunViewer(Phase& phase, const ClientContextFactory& contexts, int client, double end_s) {
  std::mt19937_64 rng(1000 + client);
  while (SecondsSince(phase.start) < end_s) {
    apq::v1::ListJobsRequest list;
    list.set_page_size(50);
    apq::v1::ListJobsResponse jobs;
    Backoff(Timed(phase, contexts, "ListJobs", [&](grpc::ClientContext* context) {
      return contexts.connection->search->ListJobs(context, list, &jobs);
    }));
    const std::string job = RandomFinishedJob(phase.acknowledged, rng);
    if (job.empty()) continue;
    apq::v1::GetJobRequest get;
    get.set_job_id(job);
    apq::v1::Job got;
    Backoff(Timed(phase, contexts, "GetJob", [&](grpc::ClientContext* context) {
      return contexts.connection->search->GetJob(context, get, &got);
    }));
    ListCandidatesOf(phase, contexts, job, /*remember_rows=*/true);
  }
}

std::string ReadBearer(const std::string& path) {
  std::string text = ReadWholeFile(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string CreateToken(AccessService::Stub& access, const ClientContextFactory& admin,
                        const std::string& name, apq::v1::Role role) {
  apq::v1::CreateTokenRequest request;
  request.set_name(name);
  request.set_role(role);
  apq::v1::CreatedToken created;
  const std::unique_ptr<grpc::ClientContext> context = admin.New(10);
  const grpc::Status status = access.CreateToken(context.get(), request, &created);
  if (!status.ok()) Die("CreateToken: " + status.error_message());
  return created.secret();
}

// Every candidate of `job`: id -> config.
std::map<int64_t, std::string> AllRows(SearchService::Stub& search,
                                       const ClientContextFactory& admin, const std::string& job) {
  std::map<int64_t, std::string> rows;
  std::string token;
  do {
    apq::v1::ListCandidatesRequest request;
    request.set_job_id(job);
    request.set_page_size(10000);
    request.set_page_token(token);
    apq::v1::ListCandidatesResponse response;
    const std::unique_ptr<grpc::ClientContext> context = admin.New(60);
    const grpc::Status status = search.ListCandidates(context.get(), request, &response);
    if (!status.ok()) Die("ListCandidates at the end: " + status.error_message());
    for (const apq::v1::Candidate& candidate : response.candidates()) {
      rows[candidate.id()] = candidate.config_json();
    }
    token = response.next_page_token();
  } while (!token.empty());
  return rows;
}

struct JobOutcome {
  apq::v1::JobState state = apq::v1::JOB_STATE_UNSPECIFIED;
  std::string best;
  int64_t rows = 0;
};

// NOLINTNEXTLINE(bugprone-exception-escape): json's moves may throw; the harness dies on any.
struct PhaseResult {
  std::string name;
  nlohmann::json figures;
  std::map<std::pair<int, int>, JobOutcome> outcomes;  // By (client, k).
};

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  return values[index];
}

PhaseResult RunPhase(const std::string& name, int kills, const std::string& table,
                     const std::vector<std::string>& configs) {
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_work_dir), "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Server server(dir, FreePort());
  server.Start();
  Connection admin_connection(server.address());
  const ClientContextFactory admin{ReadBearer(server.token_file()), &admin_connection};
  AccessService::Stub access(admin_connection.channel);
  SearchService::Stub& admin_search = *admin_connection.search;

  struct ClientSpec {
    apq::v1::Role role;
    int index;
    std::string bearer;
  };
  std::vector<ClientSpec> clients;
  clients.reserve(absl::GetFlag(FLAGS_submitters) + absl::GetFlag(FLAGS_hardware_clients) +
                  absl::GetFlag(FLAGS_viewers));
  for (int i = 0; i < absl::GetFlag(FLAGS_submitters); ++i) {
    clients.push_back(
        {apq::v1::ROLE_SUBMITTER, i,
         CreateToken(access, admin, absl::StrCat("submitter ", i), apq::v1::ROLE_SUBMITTER)});
  }
  for (int i = 0; i < absl::GetFlag(FLAGS_hardware_clients); ++i) {
    clients.push_back(
        {apq::v1::ROLE_HARDWARE, i,
         CreateToken(access, admin, absl::StrCat("hardware ", i), apq::v1::ROLE_HARDWARE)});
  }
  for (int i = 0; i < absl::GetFlag(FLAGS_viewers); ++i) {
    clients.push_back(
        {apq::v1::ROLE_VIEWER, i,
         CreateToken(access, admin, absl::StrCat("viewer ", i), apq::v1::ROLE_VIEWER)});
  }

  Phase phase;
  phase.name = name;
  // One finished job before the clients start, so that listings have something to list.
  {
    apq::v1::Job job;
    const std::unique_ptr<grpc::ClientContext> context = admin.New(30);
    if (!admin_search.SubmitSearch(context.get(), SearchRequest(999, 0), &job).ok()) {
      Die("the warm-up search was refused");
    }
    phase.start = Clock::now();
    if (!WatchToEnd(phase, admin, job.id(), 120)) Die("the warm-up search failed");
    phase.acknowledged.finished_jobs.push_back(job.id());
    phase.records.clear();
  }
  const auto [rss_before, peak_before] = server.Memory();

  const double seconds = absl::GetFlag(FLAGS_seconds);
  phase.start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(clients.size());
  for (const ClientSpec& client : clients) {
    threads.emplace_back([&, client] {
      Connection connection(server.address());
      const ClientContextFactory contexts{client.bearer, &connection};
      switch (client.role) {
        case apq::v1::ROLE_SUBMITTER:
          RunSubmitter(phase, contexts, client.index, configs, seconds);
          break;
        case apq::v1::ROLE_HARDWARE:
          RunHardware(phase, contexts, client.index, table, seconds);
          break;
        default:
          RunViewer(phase, contexts, client.index, seconds);
          break;
      }
    });
  }
  for (int kill = 1; kill <= kills; ++kill) {
    const double at = seconds * kill / (kills + 1);
    while (SecondsSince(phase.start) < at)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const double killed = SecondsSince(phase.start);
    server.Kill(SIGKILL);
    server.Start();
    phase.kill_windows.emplace_back(killed, SecondsSince(phase.start));
  }
  for (std::thread& thread : threads) thread.join();
  const double load_end_s = SecondsSince(phase.start);
  const auto [rss_after, peak_after] = server.Memory();

  // Every acknowledged job ends (the submitters stopped watching at most 120 s after the
  // load ended; a job still queued then is waited for here).
  PhaseResult result;
  result.name = name;
  int jobs_not_succeeded = 0;
  int64_t rows_lost = 0;
  int64_t rows_checked = 0;
  std::map<std::string, std::map<int64_t, std::string>> stored_rows;
  for (const auto& [job_id, origin] : phase.acknowledged.jobs) {
    apq::v1::Job job;
    const Clock::time_point waiting = Clock::now();
    while (true) {
      apq::v1::GetJobRequest get;
      get.set_job_id(job_id);
      const std::unique_ptr<grpc::ClientContext> context = admin.New(10);
      const grpc::Status status = admin_search.GetJob(context.get(), get, &job);
      if (!status.ok()) Die("GetJob " + job_id + " at the end: " + status.error_message());
      if (job.state() != apq::v1::JOB_STATE_QUEUED && job.state() != apq::v1::JOB_STATE_RUNNING) {
        break;
      }
      if (SecondsSince(waiting) > 600) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (job.state() != apq::v1::JOB_STATE_SUCCEEDED) ++jobs_not_succeeded;
    std::map<int64_t, std::string>& rows = stored_rows[job_id];
    rows = AllRows(admin_search, admin, job_id);
    result.outcomes[origin] = {job.state(), job.has_best() ? job.best().config_json() : "",
                               static_cast<int64_t>(rows.size())};
  }
  for (const auto& [key, config] : phase.acknowledged.rows) {
    ++rows_checked;
    auto job_rows = stored_rows.find(key.first);
    if (job_rows == stored_rows.end())
      job_rows = stored_rows.emplace(key.first, AllRows(admin_search, admin, key.first)).first;
    const auto found = job_rows->second.find(key.second);
    if (found == job_rows->second.end() || found->second != config) ++rows_lost;
  }
  int tables_lost = 0;
  DeviceService::Stub& admin_devices = *admin_connection.devices;
  for (const auto& [key, sha256] : phase.acknowledged.table_versions) {
    apq::v1::GetDeviceRequest get;
    get.set_device(key.first);
    apq::v1::Device device;
    const std::unique_ptr<grpc::ClientContext> context = admin.New(10);
    bool found = false;
    if (admin_devices.GetDevice(context.get(), get, &device).ok()) {
      for (const apq::v1::TableVersion& version : device.versions()) {
        found = found || (version.version() == key.second && version.sha256() == sha256);
      }
    }
    if (!found) ++tables_lost;
  }

  // Latency and errors per RPC.
  std::map<std::string, std::vector<double>> latencies;
  std::map<std::string, std::map<std::string, int64_t>> errors;
  int64_t unavailable_outside_windows = 0;
  for (const CallRecord& record : phase.records) {
    if (record.code == grpc::StatusCode::OK) {
      latencies[record.rpc].push_back((record.end_s - record.start_s) * 1000);
      continue;
    }
    const bool in_window = phase.InKillWindow(record);
    const std::string code = absl::StrCat(record.code, in_window ? " (kill window)" : "");
    ++errors[record.rpc][code];
    if (record.code == grpc::StatusCode::UNAVAILABLE && !in_window) {
      ++unavailable_outside_windows;
    }
  }
  nlohmann::json rpcs = nlohmann::json::object();
  std::set<std::string> names;
  for (const auto& [rpc, values] : latencies) names.insert(rpc);
  for (const auto& [rpc, codes] : errors) names.insert(rpc);
  for (const std::string& rpc : names) {
    const std::vector<double>& values = latencies[rpc];
    rpcs[rpc] = {{"ok", values.size()},
                 {"p50_ms", Percentile(values, 0.5)},
                 {"p99_ms", Percentile(values, 0.99)},
                 {"errors", errors[rpc]}};
  }
  nlohmann::json windows = nlohmann::json::array();
  for (const auto& [killed, serving] : phase.kill_windows) windows.push_back({killed, serving});
  result.figures = {{"phase", name},
                    {"clients", clients.size()},
                    {"load_seconds", load_end_s},
                    {"rpcs", rpcs},
                    {"kill_windows_s", windows},
                    {"unavailable_outside_kill_windows", unavailable_outside_windows},
                    {"rss_mib_before", rss_before},
                    {"rss_mib_after", rss_after},
                    {"peak_rss_mib_before", peak_before},
                    {"peak_rss_mib_after", peak_after},
                    {"jobs_acknowledged", phase.acknowledged.jobs.size()},
                    {"jobs_not_succeeded", jobs_not_succeeded},
                    {"rows_checked", rows_checked},
                    {"rows_lost", rows_lost},
                    {"table_versions_checked", phase.acknowledged.table_versions.size()},
                    {"table_versions_lost", tables_lost}};
  server.Kill(SIGTERM);
  return result;
}

std::string RpcCodeName(const std::string& code_text) {
  static const std::map<std::string, std::string> kCodeNames = {
      {"1", "CANCELLED"},         {"4", "DEADLINE_EXCEEDED"},  {"5", "NOT_FOUND"},
      {"7", "PERMISSION_DENIED"}, {"8", "RESOURCE_EXHAUSTED"}, {"9", "FAILED_PRECONDITION"},
      {"13", "INTERNAL"},         {"14", "UNAVAILABLE"},       {"16", "UNAUTHENTICATED"}};
  const std::vector<std::string> parts = absl::StrSplit(code_text, absl::MaxSplits(' ', 1));
  const auto found = kCodeNames.find(parts[0]);
  std::string name = found != kCodeNames.end() ? found->second : "code " + parts[0];
  if (parts.size() > 1) absl::StrAppend(&name, " ", parts[1]);
  return name;
}

void PrintPhase(const PhaseResult& result) {
  const nlohmann::json& f = result.figures;
  std::printf("\n## %s: %d clients, %.0f s of load", f["phase"].get<std::string>().c_str(),
              f["clients"].get<int>(), f["load_seconds"].get<double>());
  for (const auto& window : f["kill_windows_s"]) {
    std::printf("; SIGKILL at %.1f s, serving again at %.1f s", window[0].get<double>(),
                window[1].get<double>());
  }
  std::printf("\n\n| RPC | ok | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n");
  for (const auto& [rpc, figures] : f["rpcs"].items()) {
    std::vector<std::string> errors;
    for (const auto& [code, count] : figures["errors"].items()) {
      errors.push_back(absl::StrCat(RpcCodeName(code), ": ", count.get<int64_t>()));
    }
    std::printf("| %s | %lld | %.1f | %.1f | %s |\n", rpc.c_str(),
                static_cast<long long>(figures["ok"].get<int64_t>()),
                figures["p50_ms"].get<double>(), figures["p99_ms"].get<double>(),
                errors.empty() ? "none" : absl::StrJoin(errors, ", ").c_str());
  }
  std::printf(
      "\napqd RSS %.0f MiB before the load, %.0f MiB after (peak %.0f); UNAVAILABLE outside kill "
      "windows: %lld; jobs acknowledged %lld, not succeeded %lld; rows read by clients "
      "%lld, lost %lld; table versions acknowledged %lld, lost %lld\n",
      f["rss_mib_before"].get<double>(), f["rss_mib_after"].get<double>(),
      f["peak_rss_mib_after"].get<double>(),
      static_cast<long long>(f["unavailable_outside_kill_windows"].get<int64_t>()),
      static_cast<long long>(f["jobs_acknowledged"].get<int64_t>()),
      static_cast<long long>(f["jobs_not_succeeded"].get<int64_t>()),
      static_cast<long long>(f["rows_checked"].get<int64_t>()),
      static_cast<long long>(f["rows_lost"].get<int64_t>()),
      static_cast<long long>(f["table_versions_checked"].get<int64_t>()),
      static_cast<long long>(f["table_versions_lost"].get<int64_t>()));
}

// The phases and the report.
int Run() {
  const std::string data = absl::GetFlag(FLAGS_data_dir);
  const std::string table = ReadWholeFile(data + "/local_cpu/fmnist_mbv2_conv_table.json");
  // Configs to evaluate: the golden configurations of the OFA space.
  std::vector<std::string> configs;
  {
    const nlohmann::json golden =
        nlohmann::json::parse(ReadWholeFile("tests/testdata/golden_values.json"));
    for (const auto& [name, value] : golden.items()) {
      if (value.contains("arch")) configs.push_back(value["arch"].dump());
    }
    if (configs.empty()) Die("no configs in tests/testdata/golden_values.json");
  }
  std::vector<PhaseResult> results;
  const std::vector<std::string> phases = absl::StrSplit(absl::GetFlag(FLAGS_phases), ',');
  for (const std::string& phase : phases) {
    if (phase != "steady" && phase != "kills") Die("unknown phase " + phase);
    results.push_back(
        RunPhase(phase, phase == "kills" ? absl::GetFlag(FLAGS_kills) : 0, table, configs));
    PrintPhase(results.back());
  }
  nlohmann::json out = nlohmann::json::array();
  for (const PhaseResult& result : results) out.push_back(result.figures);
  if (results.size() == 2) {
    // The same seed in both phases: the kill phase's job ends as the undisturbed one did.
    int compared = 0;
    int differing = 0;
    for (const auto& [origin, steady] : results[0].outcomes) {
      const auto killed = results[1].outcomes.find(origin);
      if (killed == results[1].outcomes.end()) continue;
      if (steady.state != apq::v1::JOB_STATE_SUCCEEDED ||
          killed->second.state != apq::v1::JOB_STATE_SUCCEEDED) {
        continue;
      }
      ++compared;
      if (steady.best != killed->second.best || steady.rows != killed->second.rows) ++differing;
    }
    std::printf(
        "\nJobs of the same seed in both phases: %d compared, %d with another best or "
        "another number of rows\n",
        compared, differing);
    out.push_back({{"same_seed_jobs_compared", compared}, {"same_seed_jobs_differing", differing}});
  }
  if (!absl::GetFlag(FLAGS_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_out)) << out.dump(1) << "\n";
  }
  // Exit 1 when anything acknowledged was lost or a call failed outside a kill window.
  bool failed = false;
  for (const PhaseResult& result : results) {
    const nlohmann::json& f = result.figures;
    failed = failed || f["rows_lost"].get<int64_t>() > 0 ||
             f["table_versions_lost"].get<int64_t>() > 0 ||
             f["jobs_not_succeeded"].get<int64_t>() > 0 ||
             f["unavailable_outside_kill_windows"].get<int64_t>() > 0;
  }
  for (const nlohmann::json& entry : out) {
    if (entry.contains("same_seed_jobs_differing")) {
      failed = failed || entry["same_seed_jobs_differing"].get<int>() > 0;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  try {
    return Run();
  } catch (const std::exception& error) {
    Die(std::string("unexpected error: ") + error.what());
  }
}
