#include "tests/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace apq::testing {
namespace {

std::atomic<int> counter{0};

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) {
    std::fprintf(stderr, "cannot start %s\n", args[0]);
    std::abort();
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
}

}  // namespace

std::string TempPath(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  // A fresh directory per call keeps the file's own name, which some inputs depend on
  // (an OFA table's resolution is in its file name).
  const std::string dir = std::string(base != nullptr ? base : "/tmp") + "/" +
                          std::to_string(getpid()) + "-" + std::to_string(counter++);
  mkdir(dir.c_str(), 0700);
  return dir + "/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  const std::string out_path = TempPath("out");
  const std::string err_path = TempPath("err");
  ProcessResult result;
  result.exit_code = WaitExit(Spawn(argv, out_path, err_path));
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

ServerProcess::ServerProcess(const std::string& database, const std::vector<std::string>& extra) {
  const std::string port_file = TempPath("port");
  log_path_ = TempPath("apqd.log");
  // Without authentication unless `extra` turns it on (a later flag wins).
  std::vector<std::string> argv = {"server/apqd",      "--listen=127.0.0.1:0",
                                   "--db=" + database, "--data_dir=data",
                                   "--auth=off",       "--port_file=" + port_file};
  argv.insert(argv.end(), extra.begin(), extra.end());
  pid_ = Spawn(argv, TempPath("apqd.out"), log_path_);
  for (int i = 0; i < 600; ++i) {
    const std::string port = ReadFile(port_file);
    if (!port.empty()) {
      port_ = std::atoi(port.c_str());
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      std::fprintf(stderr, "apqd exited at start:\n%s\n", ReadFile(log_path_).c_str());
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "apqd did not start in 60 s:\n%s\n", ReadFile(log_path_).c_str());
  std::abort();
}

int ServerProcess::Stop(int signal) {
  if (pid_ < 0) return 0;
  kill(pid_, signal);
  const int code = WaitExit(pid_);
  pid_ = -1;
  return code;
}

ServerProcess::~ServerProcess() { Stop(SIGKILL); }

ProcessResult RunClient(const std::string& address, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"clients/apq", "--server", address};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

}  // namespace apq::testing
