// A Store wrapper for tests that fails chosen writes, after LevelDB's fault-injecting Env:
// a test arms a shared FaultPlan, runs the code under test against the wrapper, and checks
// that the code copes with a store that refuses a write or loses a commit's acknowledgement.
//
// Writes are the calls of the mutating methods of every record kind: JobStore's CreateJob,
// CreateSweep, MarkRunning, AppendGenerations, BeginVerification, RecordVerification, FinishJob,
// DeleteJob, DeleteJobsFinishedBefore, SetJobLabel, ClaimJob, RenewLease, ReleaseLease and
// RequestCancel; DeviceStore's AddTableVersion; DatasetStore's
// CreateDataset and AddMeasurements; PredictorStore's AddPredictor, SetDefaultPredictor and
// ClearDefaultPredictor; TrainingJobStore's CreateTrainingJob, MarkTrainingRunning,
// UpdateTrainingProgress, FinishTrainingJob, ClaimTrainingJob, RenewTrainingLease,
// ReleaseTrainingLease and RequestTrainingCancel; TokenStore's AddToken and RevokeToken;
// ArtifactStore's PutArtifact; MeasurementRunStore's CreateMeasurementRun,
// SetMeasurementRunLauncher, ClaimMeasurementTasks, RenewMeasurementTasks,
// CompleteMeasurementTask, FailMeasurementTask and CancelMeasurementRun. Every call of one
// counts, whatever its result. Reads pass through untouched.
//
// Thread safety: the plan and the wrapper may be used from any thread.
#ifndef APQ_SERVER_STORE_FAULTY_STORE_H_
#define APQ_SERVER_STORE_FAULTY_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace apq::server {

class FaultPlan {
 public:
  enum class Mode {
    // The write is not made; it returns INTERNAL.
    kBeforeWrite,
    // The write is made and committed, then INTERNAL replaces its result: the caller cannot
    // tell it from a write that failed. A write that fails by itself keeps its own error.
    kAfterCommit,
  };

  // Fails the `nth` write (1: the next one) counted from this call among the writes of
  // `method` (its name, e.g. "AppendGenerations"), or of every method when `method` is empty.
  // Each armed fault fires once; when two fire at one write, kBeforeWrite wins.
  void FailNthWrite(int64_t nth, Mode mode, std::string method = "") ABSL_LOCKS_EXCLUDED(mutex_);
  // Disarms the faults that have not fired.
  void Clear() ABSL_LOCKS_EXCLUDED(mutex_);

  // Writes seen since the plan was made: all of them, or those of `method`.
  int64_t writes() const ABSL_LOCKS_EXCLUDED(mutex_);
  int64_t writes(absl::string_view method) const ABSL_LOCKS_EXCLUDED(mutex_);
  // Faults that have fired.
  int64_t faults_injected() const ABSL_LOCKS_EXCLUDED(mutex_);

  // Counts a write of `method` and returns the fault to inject into it, if any. Called by
  // the wrapper.
  std::optional<Mode> OnWrite(absl::string_view method) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Fault {
    int64_t remaining;  // Matching writes until it fires, this one included.
    Mode mode;
    std::string method;
  };

  mutable absl::Mutex mutex_;
  std::vector<Fault> armed_ ABSL_GUARDED_BY(mutex_);
  int64_t writes_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::flat_hash_map<std::string, int64_t> writes_by_method_ ABSL_GUARDED_BY(mutex_);
  int64_t faults_injected_ ABSL_GUARDED_BY(mutex_) = 0;
};

// The stores of `base` with the faults of `plan` injected into their writes.
std::unique_ptr<Store> NewFaultyStore(std::unique_ptr<Store> base, std::shared_ptr<FaultPlan> plan);

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_FAULTY_STORE_H_
