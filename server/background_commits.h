// Stores a running search's groups of steps on a thread of its own while the search goes
// on, so that a search does not wait for its own writes (about a quarter of a job's time on
// SQLite). Groups are stored one at a time and in the order given; each is one transaction
// with its checkpoint (JobStore::AppendGenerations), so a crash still loses only groups not
// yet stored, and the job resumes after the last one stored.
//
// After a group fails, the later ones are dropped unstored (their steps would follow a gap)
// and the failure is what status() and Wait() return from then on.
//
// Thread safety: one thread (the job's worker) calls Submit, idle, status and Wait; `store`
// runs on the committer's own thread.
#ifndef APQ_SERVER_BACKGROUND_COMMITS_H_
#define APQ_SERVER_BACKGROUND_COMMITS_H_

#include <functional>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/store/records.h"

namespace apq::server {

class BackgroundCommits {
 public:
  // `store` stores one group and says how it went; it may change the group (ids it knows
  // only once the previous group is stored).
  explicit BackgroundCommits(std::function<absl::Status(GenerationBatch&)> store);
  // Waits for the group in flight, then stops the thread.
  ~BackgroundCommits();
  BackgroundCommits(const BackgroundCommits&) = delete;
  BackgroundCommits& operator=(const BackgroundCommits&) = delete;

  // Hands over the next group; when a group is still being stored, waits for it first (at
  // most one group is in flight, which bounds the memory held). Dropped after a failure.
  void Submit(GenerationBatch batch);
  // Whether no group is being stored: a Submit now would not wait.
  bool idle() const;
  // The first failure of a group so far (OK if none), without waiting.
  absl::Status status() const;
  // Waits until every group handed over is stored (or dropped); then status().
  absl::Status Wait();

 private:
  void Loop();

  const std::function<absl::Status(GenerationBatch&)> store_;
  mutable absl::Mutex mutex_;
  std::optional<GenerationBatch> next_ ABSL_GUARDED_BY(mutex_);
  bool storing_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_BACKGROUND_COMMITS_H_
