#include "server/measurement_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace apq::server {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> pointers;
  pointers.reserve(argv.size() + 1);
  for (const std::string& arg : argv) pointers.push_back(const_cast<char*>(arg.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// This process's environment with `additions` ("NAME=value") replacing entries of the same
// name; the strings live in `storage`.
std::vector<char*> Environment(const std::vector<std::string>& additions,
                               std::vector<std::string>* storage) {
  *storage = additions;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const std::string name = text.substr(0, text.find('='));
    const bool replaced = std::any_of(
        additions.begin(), additions.end(),
        [&](const std::string& a) { return a.compare(0, name.size() + 1, name + "=") == 0; });
    if (!replaced) storage->push_back(text);
  }
  return Argv(*storage);
}

// Spawn attributes that give the child a clean signal state: apqd blocks SIGINT and SIGTERM
// in every thread (a dedicated one takes them), and a blocked mask is inherited; a worker
// must die of SIGTERM.
class CleanSignals {
 public:
  CleanSignals() {
    posix_spawnattr_init(&attributes_);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes_, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attributes_, &defaults);
    posix_spawnattr_setflags(&attributes_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  ~CleanSignals() { posix_spawnattr_destroy(&attributes_); }
  CleanSignals(const CleanSignals&) = delete;
  CleanSignals& operator=(const CleanSignals&) = delete;
  const posix_spawnattr_t* get() const { return &attributes_; }

 private:
  posix_spawnattr_t attributes_;
};

}  // namespace

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted.push_back(c);
    }
  }
  quoted.push_back('\'');
  return quoted;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& environment) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  pid_t pid = -1;
  std::vector<char*> pointers = Argv(argv);
  std::vector<std::string> environment_storage;
  std::vector<char*> envp = Environment(environment, &environment_storage);
  const int spawned =
      posix_spawnp(&pid, pointers[0], &actions, CleanSignals().get(), pointers.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("cannot run ", argv[0], ": ", std::strerror(spawned)));
  }
  CommandResult result;
  char buffer[4096];
  ssize_t got = 0;
  while ((got = read(pipe_fds[0], buffer, sizeof(buffer))) > 0 || (got < 0 && errno == EINTR)) {
    if (got > 0) result.out.append(buffer, static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

absl::StatusOr<std::vector<pid_t>> LaunchLocalWorkers(const WorkerLaunch& launch) {
  std::vector<pid_t> pids;
  std::vector<std::string> environment_storage;
  std::vector<char*> envp = Environment(launch.environment, &environment_storage);
  for (int i = 0; i < launch.workers; ++i) {
    const std::string log = absl::StrCat(launch.log_dir, "/worker_", i, ".log");
    std::vector<std::string> argv = {launch.worker_binary};
    argv.insert(argv.end(), launch.arguments.begin(), launch.arguments.end());
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    std::vector<char*> pointers = Argv(argv);
    const int spawned = posix_spawn(&pid, pointers[0], &actions, CleanSignals().get(),
                                    pointers.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      return absl::InternalError(
          absl::StrCat("cannot start worker ", launch.worker_binary, ": ", std::strerror(spawned)));
    }
    pids.push_back(pid);
  }
  return pids;
}

int RunningLocalWorkers(std::vector<pid_t>& pids) {
  int running = 0;
  for (pid_t& pid : pids) {
    if (pid <= 0) continue;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
    } else {
      ++running;
    }
  }
  return running;
}

absl::StatusOr<std::string> SubmitSlurmArray(const WorkerLaunch& launch) {
  // The batch script execs the worker with its flags, each quoted for the shell.
  const std::string script = absl::StrCat(launch.log_dir, "/worker.sbatch");
  {
    std::ofstream out(script, std::ios::trunc);
    out << "#!/bin/sh\n# A measurement worker (server/measure_worker_main.cc).\nexec "
        << ShellQuote(launch.worker_binary);
    for (const std::string& arg : launch.arguments) out << " " << ShellQuote(arg);
    out << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", script));
  }
  // Only its owner reads it: it names the store.
  chmod(script.c_str(), 0700);
  std::vector<std::string> argv = {"sbatch",
                                   "--parsable",
                                   "--job-name=apq-measure",
                                   absl::StrCat("--array=0-", launch.workers - 1),
                                   "--ntasks=1",
                                   absl::StrCat("--cpus-per-task=", launch.cpus_per_worker),
                                   absl::StrCat("--output=", launch.log_dir, "/worker_%A_%a.log")};
  if (!launch.slurm_partition.empty()) {
    argv.push_back(absl::StrCat("--partition=", launch.slurm_partition));
  }
  if (!launch.slurm_time_limit.empty()) {
    argv.push_back(absl::StrCat("--time=", launch.slurm_time_limit));
  }
  argv.push_back(script);
  absl::StatusOr<CommandResult> submitted = RunCommand(argv, launch.environment);
  if (!submitted.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "submitting to Slurm: ", submitted.status().message(), " (is slurm-client installed?)"));
  }
  // --parsable prints "<job id>[;<cluster>]".
  const std::string job_id(
      absl::StripAsciiWhitespace(submitted->out.substr(0, submitted->out.find(';'))));
  if (submitted->exit_code != 0 || job_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("sbatch refused the array job (exit ",
                                                      submitted->exit_code, "): ", submitted->out));
  }
  return job_id;
}

absl::StatusOr<int> ActiveSlurmTasks(const std::string& job_id) {
  absl::StatusOr<CommandResult> queued =
      RunCommand({"squeue", "--noheader", "--array", "--jobs", job_id, "--format", "%i %T"});
  if (!queued.ok()) return queued.status();
  if (queued->exit_code != 0) {
    // An id that has left the controller's memory, or a controller that does not answer: the
    // caller tells them apart by asking again.
    return absl::UnavailableError(
        absl::StrCat("squeue failed for job ", job_id, " (exit ", queued->exit_code, ")"));
  }
  const std::vector<absl::string_view> lines =
      absl::StrSplit(queued->out, '\n', absl::SkipWhitespace());
  return static_cast<int>(lines.size());
}

absl::StatusOr<WorkerLauncher> WorkerLauncherFromName(const std::string& field,
                                                      const std::string& name) {
  if (name == "local") return WorkerLauncher::kLocal;
  if (name == "slurm") return WorkerLauncher::kSlurm;
  return absl::InvalidArgumentError(absl::StrCat(field, ": '", name, "' is not local or slurm"));
}

absl::StatusOr<StartedWorkers> StartedWorkers::Start(WorkerLauncher launcher,
                                                     const WorkerLaunch& launch) {
  StartedWorkers started;
  started.launcher_ = launcher;
  if (launcher == WorkerLauncher::kLocal) {
    absl::StatusOr<std::vector<pid_t>> pids = LaunchLocalWorkers(launch);
    if (!pids.ok()) return pids.status();
    started.pids_ = *std::move(pids);
    started.description_ = absl::StrCat("local ", launch.workers);
  } else {
    absl::StatusOr<std::string> job = SubmitSlurmArray(launch);
    if (!job.ok()) return job.status();
    started.slurm_job_ = *std::move(job);
    started.description_ =
        absl::StrCat("slurm ", started.slurm_job_, " (array of ", launch.workers, ")");
  }
  started.last_active_ = launch.workers;
  return started;
}

int StartedWorkers::Active() {
  if (launcher_ == WorkerLauncher::kLocal) return RunningLocalWorkers(pids_);
  absl::StatusOr<int> queued = ActiveSlurmTasks(slurm_job_);
  if (queued.ok()) {
    failed_queries_ = 0;
    last_active_ = *queued;
  } else if (++failed_queries_ >= 5) {
    last_active_ = 0;
  }
  return last_active_;
}

void StartedWorkers::Stop() {
  if (launcher_ == WorkerLauncher::kLocal) {
    for (const pid_t pid : pids_) {
      if (pid > 0) kill(pid, SIGTERM);
    }
    return;
  }
  // Its output is of no use; a job that has left the queue makes scancel fail harmlessly.
  RunCommand({"scancel", slurm_job_}).IgnoreError();
}

}  // namespace apq::server
