// Search jobs and the candidates they evaluate. The contract shared by every store (nothing
// changes on error, status codes, doubles, thread safety) is in store.h.
#ifndef APQ_SERVER_STORE_JOB_STORE_H_
#define APQ_SERVER_STORE_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Stores a new job and returns its id, "job-<n>" with n = 1, 2, ... in creation order.
  // Only the job's identity (space, device, table_version, predictor_version, request) and
  // created_unix_s are taken from `job`: the state is kQueued and the progress fields start
  // empty, whatever the record says.
  virtual absl::StatusOr<std::string> CreateJob(const JobRecord& job) = 0;

  // Stores the jobs of a sweep in one transaction, as CreateJob would one by one (their ids
  // consecutive, in the given order), each with the sweep's id, "sweep-<n>" where job-<n> is
  // its first job. INVALID_ARGUMENT for no jobs; nothing is stored on any error.
  virtual absl::StatusOr<SweepIds> CreateSweep(const std::vector<JobRecord>& jobs) = 0;

  // The jobs of a sweep in creation order, without checkpoints. NOT_FOUND for an unknown
  // sweep.
  virtual absl::StatusOr<std::vector<JobRecord>> ListSweepJobs(const std::string& sweep_id) = 0;

  // Moves a queued or running job (a resumed one) to kRunning and sets its started time.
  // FAILED_PRECONDITION for a job that has ended.
  virtual absl::Status MarkRunning(const std::string& job_id, double started_unix_s) = 0;

  // Stores a group of generations (their networks, progress, best, checkpoint) in one
  // transaction and returns the id of the row of each of batch.candidates, in batch order.
  //  - Only the next generations are accepted: batch.first_generation must be 0 for the
  //    job's first batch, then generations_done + 1 (so generations_done is 0 both before
  //    and after generation 0; candidates_evaluated or the checkpoint tells them apart);
  //    FAILED_PRECONDITION otherwise, for a job that has ended and for one in its
  //    verification stage. A queued job accepts generations too.
  //  - One row per distinct network (config_json) of the job: a candidate whose network the
  //    job holds adds its times_seen to that row, which keeps its id, first generation and
  //    figures; a new network gets a row with the candidate's generation, count and figures
  //    (its `id`, `on_pareto_front` and `measured` are ignored) and an id above every id the
  //    store assigned before (to any job), ascending in batch order.
  //  - The batch's `best` replaces the job's best (unset clears it). With best_batch_index
  //    >= 0 its id is that of the row of candidates[best_batch_index]; otherwise best->id is
  //    kept as given.
  //  - INVALID_ARGUMENT, storing nothing, for last_generation < first_generation, a
  //    candidate's generation outside them or times_seen < 1, negative running totals, a
  //    best_batch_index out of range or without a best, and a NaN figure (each naming the
  //    field).
  virtual absl::StatusOr<std::vector<int64_t>> AppendGenerations(const std::string& job_id,
                                                                 const GenerationBatch& batch) = 0;

  // Ends the search stage of an unfinished job: its candidates are final, and `finalists` of
  // them are to be measured (RecordVerification). Sets stage to kVerification and
  // verification_finalists; from then on AppendGenerations is FAILED_PRECONDITION.
  // INVALID_ARGUMENT for finalists < 1; FAILED_PRECONDITION for a job that has ended, and
  // for one in verification already with another count. With the same count it is OK and
  // changes nothing (the retry of a write whose acknowledgement was lost).
  virtual absl::Status BeginVerification(const std::string& job_id, int finalists) = 0;

  // Stores the measurement of one finalist and names the job's measured best so far, in one
  // transaction: candidate `candidate_id` gets `measurement`, the job's verified_best becomes
  // candidate `verified_best_id`, and verification_measured counts the candidate the first
  // time it is measured. Which finalists and which best is the caller's to decide.
  //  - FAILED_PRECONDITION unless the job is unfinished and in its verification stage, and
  //    when a new candidate would exceed verification_finalists.
  //  - INVALID_ARGUMENT when either id is not a feasible candidate of the job, when
  //    verified_best_id is neither this candidate nor one measured before, and for a
  //    measurement whose accuracy is NaN or outside [0, 1], whose seconds are negative or
  //    NaN, or whose method or split is empty.
  //  - Idempotent per candidate: recording the measurement a candidate already holds is OK
  //    (and sets the verified best as named); another measurement of it is
  //    FAILED_PRECONDITION and changes nothing.
  virtual absl::Status RecordVerification(const std::string& job_id, int64_t candidate_id,
                                          const CandidateMeasurement& measurement,
                                          int64_t verified_best_id) = 0;

  // Moves a job to the terminal `state` (INVALID_ARGUMENT for a state that is not terminal)
  // and, in the same transaction, marks exactly the candidates `pareto_front_ids` as on the
  // job's Pareto front and sets its pareto_front_size to their count (an empty vector marks
  // none). The front is the caller's to compute (search/pareto.h). INVALID_ARGUMENT when an
  // id is not a feasible candidate of this job or appears twice; FAILED_PRECONDITION if the
  // job already ended. The checkpoint is kept.
  virtual absl::Status FinishJob(const std::string& job_id, JobState state,
                                 const std::string& error, double finished_unix_s, double elapsed_s,
                                 const std::vector<int64_t>& pareto_front_ids) = 0;

  // The job with its checkpoint, its best and verified best with their rows' measurements.
  // NOT_FOUND for an unknown job.
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& job_id) = 0;

  // Newest first, all jobs or those in `query.state` and (each when set) of `query.owner`,
  // `query.space` and `query.device`, after `query.after_job` when set; `offset`/`limit` page
  // through them. Checkpoints are not loaded. INVALID_ARGUMENT unless offset >= 0 and 1 <= limit <=
  // kMaxPageSize, for a state that is not a JobState value, and for an after_job this store never
  // gave.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobsPage(const JobQuery& query) = 0;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(std::optional<JobState> state,
                                                  const std::optional<std::string>& owner,
                                                  int64_t offset, int limit) {
    JobQuery query;
    query.state = state;
    query.owner = owner;
    query.offset = offset;
    query.limit = limit;
    return ListJobsPage(query);
  }

  // A page of the job's candidates in `query.order`; `total` counts every matching row.
  // Candidates with an unset metric come after all others in that metric's order; ties are
  // in id order. A page depends only on the rows, never on whether the job has ended (the
  // front's flags aside). With pareto_front_only, only the front's (all feasible) rows match. Rows
  // carry their measurements (RecordVerification).
  // NOT_FOUND for an unknown job; INVALID_ARGUMENT unless offset >= 0 and
  // 1 <= limit <= kMaxPageSize, and for an order that is not a CandidateOrder value. An
  // offset past the end gives no rows and the total.
  virtual absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) = 0;

  // Deletes an ended job, its candidates and its artifacts (ArtifactStore: those whose
  // job_id is this job; shared ones stay) in one transaction; from then on the job is
  // NOT_FOUND everywhere (its id is never given to another job). NOT_FOUND for an unknown or
  // deleted job; FAILED_PRECONDITION for one queued or running (cancel it first).
  virtual absl::Status DeleteJob(const std::string& job_id, double deleted_unix_s) = 0;

  // Deletes, oldest first, up to `limit` ended jobs that finished before
  // `finished_before_unix_s`, each as DeleteJob would, in one transaction; returns their ids.
  virtual absl::StatusOr<std::vector<std::string>> DeleteJobsFinishedBefore(
      double finished_before_unix_s, double deleted_unix_s, int limit) = 0;

  // How many jobs (deleted ones not counted) are in each state; states without jobs absent.
  virtual absl::StatusOr<std::map<JobState, int64_t>> CountJobsByState() = 0;

  // Up to `limit` jobs, deleted ones included, whose label the store does not know (stored
  // before it kept labels), each with its id and serialized request, oldest first; the
  // caller reads the label from the request and stores it with SetJobLabel. A store that
  // always knew labels returns none. INVALID_ARGUMENT unless 1 <= limit <= kMaxPageSize.
  virtual absl::StatusOr<std::vector<JobRecord>> JobsWithoutLabel(int limit) = 0;
  // Sets a job's label (deleted jobs too). NOT_FOUND for an unknown job.
  virtual absl::Status SetJobLabel(const std::string& job_id, const std::string& label) = 0;

  // Leases: several servers (replicas) over one store run each job on one of them. A replica
  // claims a job and holds it by a lease that it renews while the job runs; a replica that
  // dies stops renewing, and once its leases have expired another claims its jobs and
  // resumes them from their checkpoints. Holders are opaque non-empty names (at most 256
  // bytes; INVALID_ARGUMENT otherwise); times are the callers' clocks in Unix seconds
  // (replicas' clocks must agree to well within a lease). A job's lease is free when it has
  // none or it expired (expires <= now). Creating a job gives it no lease.

  // Claims the oldest (by creation) queued or running job whose lease is free at
  // `now_unix_s`: its lease becomes `holder`'s until `expires_unix_s` (> now_unix_s, else
  // INVALID_ARGUMENT). None when there is no such job. Concurrent claimers, in this process
  // or others, never get the same job while its lease holds.
  virtual absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& holder,
                                                             double now_unix_s,
                                                             double expires_unix_s) = 0;

  // Extends `holder`'s lease on an unfinished job to `expires_unix_s` and reports whether a
  // cancellation was requested (RequestCancel). FAILED_PRECONDITION when `holder` does not
  // hold the lease (it expired and another replica claimed the job, or it was released):
  // the holder must stop the job without writing to it. FAILED_PRECONDITION for a job that
  // ended; NOT_FOUND for an unknown one.
  virtual absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id,
                                                  const std::string& holder,
                                                  double expires_unix_s) = 0;

  // Gives up `holder`'s lease (a replica shutting down): the job stays unfinished, free for
  // any replica to claim at once. OK, changing nothing, when `holder` does not hold it or the
  // job ended; NOT_FOUND for an unknown job.
  virtual absl::Status ReleaseLease(const std::string& job_id, const std::string& holder) = 0;

  // Cancels a job from any replica. A queued job whose lease is free at `now_unix_s` ends
  // CANCELLED at once (finished at now_unix_s, elapsed 0, no front): kEnded. Otherwise its
  // holder is asked to stop (RenewLease reports it; a job claimed later with the request
  // pending is reported by ClaimJob): kRequested. FAILED_PRECONDITION for a job that ended;
  // NOT_FOUND for an unknown one.
  virtual absl::StatusOr<CancelRequestOutcome> RequestCancel(const std::string& job_id,
                                                             double now_unix_s) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_JOB_STORE_H_
