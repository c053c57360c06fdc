// Starts the workers of a measurement run (server/measure_worker_main.cc) and follows them:
// as local processes, or as one Slurm array job (sbatch, tracked with squeue). The workers
// themselves find their tasks in the store; the launcher only starts them and tells when they
// are gone.
#ifndef APQ_SERVER_MEASUREMENT_LAUNCHER_H_
#define APQ_SERVER_MEASUREMENT_LAUNCHER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace apq::server {

struct WorkerLaunch {
  std::string worker_binary;           // measure_worker, a path every node sees.
  std::vector<std::string> arguments;  // Its flags (--db, --run, ...).
  int workers = 1;                     // Processes, or array tasks.
  int cpus_per_worker = 1;             // Slurm: --cpus-per-task.
  std::string log_dir;                 // Each worker's output: worker_<i>.log (Slurm: %A_%a).
  std::string slurm_partition;         // Empty: the cluster's default.
  std::string slurm_time_limit;        // sbatch --time; empty: the partition's.
  // "NAME=value" entries the workers get besides this process's environment (PGPASSWORD:
  // never on a command line or in the batch script); sbatch exports them to the array's tasks.
  std::vector<std::string> environment;
};

// Runs `argv` (no shell), with `environment` ("NAME=value") added to this process's, and
// returns its exit code and standard output; INTERNAL when it cannot start. Standard error is
// passed through.
struct CommandResult {
  int exit_code = -1;
  std::string out;
};
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& environment = {});

// `text` quoted for a POSIX shell (single quotes).
std::string ShellQuote(const std::string& text);

// Local processes: their pids. INTERNAL naming the binary when one cannot start.
absl::StatusOr<std::vector<pid_t>> LaunchLocalWorkers(const WorkerLaunch& launch);
// How many of `pids` still run (reaping those that ended).
int RunningLocalWorkers(std::vector<pid_t>& pids);

// One Slurm array job of `launch.workers` tasks (a batch script in log_dir, readable by its
// owner only, that execs the worker; the environment, PGPASSWORD included, goes with the job
// as sbatch exports it by default); returns the Slurm job id. FAILED_PRECONDITION when sbatch is
// missing or refuses (its message).
absl::StatusOr<std::string> SubmitSlurmArray(const WorkerLaunch& launch);
// Tasks of the Slurm job still pending or running (squeue); 0 once it has left the queue
// (while the controller still remembers it, MinJobAge); UNAVAILABLE when squeue fails (an id
// the controller forgot, or a controller that does not answer).
absl::StatusOr<int> ActiveSlurmTasks(const std::string& job_id);

// How a run's workers are started.
enum class WorkerLauncher { kLocal, kSlurm };
// "local" or "slurm"; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<WorkerLauncher> WorkerLauncherFromName(const std::string& field,
                                                      const std::string& name);

// The workers started for one run (local processes or one Slurm array job) and whether any
// of them still runs. Not thread-safe.
class StartedWorkers {
 public:
  // Starts `launch.workers` workers as `launcher` says: LaunchLocalWorkers' and
  // SubmitSlurmArray's errors.
  static absl::StatusOr<StartedWorkers> Start(WorkerLauncher launcher, const WorkerLaunch& launch);

  // "local <n>" or "slurm <job id> (array of <n>)".
  const std::string& description() const { return description_; }
  // Workers still running (local ones that ended are reaped), or Slurm tasks pending or
  // running. A Slurm controller that does not answer (or forgot the job) is taken as the job
  // being gone only after 5 failures in a row; until then the last count stands.
  int Active();
  // Asks every worker to stop: SIGTERM to local ones (then reaped by Active), scancel of the
  // Slurm job. Workers also stop on their own once their run has ended.
  void Stop();

 private:
  WorkerLauncher launcher_ = WorkerLauncher::kLocal;
  std::vector<pid_t> pids_;
  std::string slurm_job_;
  std::string description_;
  int last_active_ = 0;
  int failed_queries_ = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_MEASUREMENT_LAUNCHER_H_
