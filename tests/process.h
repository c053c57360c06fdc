// Child processes for end-to-end tests: the real apqd and apq binaries, run as a user would.
#ifndef APQ_TESTS_PROCESS_H_
#define APQ_TESTS_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace apq::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 if killed by a signal.
  std::string out;
  std::string err;
};

// Runs a program to completion, capturing its standard output and error.
ProcessResult RunProcess(const std::vector<std::string>& argv);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A running apqd on a loopback port chosen by the kernel.
class ServerProcess {
 public:
  // Starts apqd on `database` and waits until it serves (aborts the test binary on failure).
  explicit ServerProcess(const std::string& database, const std::vector<std::string>& extra = {});
  ~ServerProcess();

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // SIGTERM (graceful) or SIGKILL (crash); waits for the process. Returns its exit code, or
  // -signal when killed.
  int Stop(int signal);
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// Runs the apq client against `address`.
ProcessResult RunClient(const std::string& address, const std::vector<std::string>& args);

// A fresh path under the test's temporary folder.
std::string TempPath(const std::string& name);

}  // namespace apq::testing

#endif  // APQ_TESTS_PROCESS_H_
