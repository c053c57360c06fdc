#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/store/memory_database.h"
#include "server/store/record_checks.h"

namespace apq::server::memory_internal {
namespace {

using store_internal::CheckDistinctIds;
using store_internal::CheckGenerationBatch;
using store_internal::CheckPage;
using store_internal::CheckTerminal;
using store_internal::GenerationOutOfOrder;
using store_internal::IsValidOrder;
using store_internal::IsValidState;
using store_internal::JobEnded;
using store_internal::JobNotFound;
using store_internal::NotAFrontCandidate;

class MemoryJobStore final : public JobStore {
 public:
  explicit MemoryJobStore(MemoryDatabase& db) : db_(db) {}

  absl::StatusOr<std::string> CreateJob(const JobRecord& job) override {
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob stored, NewJob(job, "creating a job"));
    return Insert(std::move(stored));
  }

  absl::StatusOr<SweepIds> CreateSweep(const std::vector<JobRecord>& jobs) override {
    if (jobs.empty()) return absl::InvalidArgumentError("a sweep needs at least one job");
    absl::MutexLock lock(&db_.mutex);
    // Every job is checked before any is stored.
    std::vector<StoredJob> stored;
    for (const JobRecord& job : jobs) {
      ASSIGN_OR_RETURN(StoredJob next, NewJob(job, "creating a sweep"));
      stored.push_back(std::move(next));
    }
    SweepIds ids;
    ids.sweep_id = absl::StrCat("sweep-", db_.jobs.size() + 1);
    for (StoredJob& job : stored) {
      job.record.sweep_id = ids.sweep_id;
      ids.job_ids.push_back(Insert(std::move(job)));
    }
    return ids;
  }

  absl::StatusOr<std::vector<JobRecord>> ListSweepJobs(const std::string& sweep_id) override {
    absl::MutexLock lock(&db_.mutex);
    std::vector<JobRecord> jobs;
    for (const StoredJob& job : db_.jobs) {
      if (job.deleted) continue;
      if (sweep_id.empty() || job.record.sweep_id != sweep_id) continue;
      jobs.push_back(job.View());
      jobs.back().checkpoint.clear();
    }
    if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no sweep ", sweep_id));
    return jobs;
  }

  absl::Status MarkRunning(const std::string& job_id, double started_unix_s) override {
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    ASSIGN_OR_RETURN(double started,
                     StoredDouble(started_unix_s, "started_unix_s",
                                  absl::StrCat("marking job ", job_id, " running")));
    job->record.state = JobState::kRunning;
    job->record.started_unix_s = started;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<int64_t>> AppendGenerations(const std::string& job_id,
                                                         const GenerationBatch& batch) override {
    RETURN_IF_ERROR(CheckGenerationBatch(batch));
    const std::string operation = store_internal::AppendOperation(job_id, batch);
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    if (job->record.stage != JobStage::kSearch) return store_internal::SearchStageEnded(job_id);
    if (batch.first_generation != job->next_generation) {
      return GenerationOutOfOrder(job_id, job->next_generation, batch.first_generation);
    }
    // Everything is checked before anything changes: new networks and the counts of stored
    // ones are gathered first.
    std::vector<CandidateRecord> new_rows;
    absl::flat_hash_map<absl::string_view, size_t> new_row_of_config;
    std::vector<std::pair<size_t, int64_t>> stored_counts;  // (row index, count to add)
    std::vector<int64_t> ids;
    ids.reserve(batch.candidates.size());
    for (const CandidateRecord& candidate : batch.candidates) {
      ASSIGN_OR_RETURN(CandidateRecord stored, StoredCandidate(candidate, "candidate", operation));
      if (auto held = job->row_of_config.find(candidate.config_json);
          held != job->row_of_config.end()) {
        stored_counts.emplace_back(held->second, candidate.times_seen);
        ids.push_back(job->candidates[held->second].id);
      } else if (auto added = new_row_of_config.find(candidate.config_json);
                 added != new_row_of_config.end()) {
        new_rows[added->second].times_seen += candidate.times_seen;
        ids.push_back(new_rows[added->second].id);
      } else {
        stored.id = db_.next_candidate_id + static_cast<int64_t>(new_rows.size());
        ids.push_back(stored.id);
        new_row_of_config.emplace(candidate.config_json, new_rows.size());
        new_rows.push_back(std::move(stored));
      }
    }
    std::optional<CandidateRecord> best;
    if (batch.best.has_value()) {
      ASSIGN_OR_RETURN(best, StoredCandidate(*batch.best, "best", operation));
      if (batch.best_batch_index >= 0) best->id = ids[batch.best_batch_index];
    }
    ASSIGN_OR_RETURN(double elapsed, StoredDouble(batch.elapsed_s, "elapsed_s", operation));

    for (const auto& [row, count] : stored_counts) job->candidates[row].times_seen += count;
    db_.next_candidate_id += static_cast<int64_t>(new_rows.size());
    for (CandidateRecord& row : new_rows) {
      job->row_of_config.emplace(row.config_json, job->candidates.size());
      job->candidates.push_back(std::move(row));
    }
    job->next_generation = batch.last_generation + 1;
    job->record.generations_done = batch.last_generation;
    job->record.candidates_evaluated = batch.candidates_evaluated;
    job->record.rejected_draws = batch.rejected_draws;
    job->record.engine_metrics = batch.engine_metrics;
    job->record.best = std::move(best);
    job->record.checkpoint = batch.checkpoint;
    job->record.elapsed_s = elapsed;
    return ids;
  }

  absl::Status BeginVerification(const std::string& job_id, int finalists) override {
    RETURN_IF_ERROR(store_internal::CheckFinalists(finalists));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    ASSIGN_OR_RETURN(bool write,
                     store_internal::CheckBeginVerification(job_id, finalists, job->record.stage,
                                                            job->record.verification_finalists));
    if (write) {
      job->record.stage = JobStage::kVerification;
      job->record.verification_finalists = finalists;
    }
    return absl::OkStatus();
  }

  absl::Status RecordVerification(const std::string& job_id, int64_t candidate_id,
                                  const CandidateMeasurement& measurement,
                                  int64_t verified_best_id) override {
    RETURN_IF_ERROR(store_internal::CheckCandidateMeasurement(measurement));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    CandidateRecord* candidate = job->FindCandidate(candidate_id);
    const CandidateRecord* best = job->FindCandidate(verified_best_id);
    store_internal::VerificationTarget target;
    target.stage = job->record.stage;
    target.finalists = job->record.verification_finalists;
    target.measured = job->record.verification_measured;
    target.candidate = candidate != nullptr && candidate->feasible ? candidate : nullptr;
    target.verified_best = best != nullptr && best->feasible ? best : nullptr;
    ASSIGN_OR_RETURN(bool first, store_internal::CheckRecordVerification(
                                     job_id, candidate_id, measurement, verified_best_id, target));
    if (first) {
      CandidateMeasurement stored = measurement;
      stored.accuracy = measurement.accuracy == 0.0 ? 0.0 : measurement.accuracy;  // Not -0.0.
      stored.seconds = measurement.seconds == 0.0 ? 0.0 : measurement.seconds;
      candidate->measured = std::move(stored);
      ++job->record.verification_measured;
    }
    job->verified_best_id = verified_best_id;
    return absl::OkStatus();
  }

  absl::Status FinishJob(const std::string& job_id, JobState state, const std::string& error,
                         double finished_unix_s, double elapsed_s,
                         const std::vector<int64_t>& pareto_front_ids) override {
    RETURN_IF_ERROR(CheckTerminal(state, "FinishJob"));
    RETURN_IF_ERROR(CheckDistinctIds(pareto_front_ids));
    const std::string operation = absl::StrCat("finishing job ", job_id);
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    ASSIGN_OR_RETURN(double finished, StoredDouble(finished_unix_s, "finished_unix_s", operation));
    ASSIGN_OR_RETURN(double elapsed, StoredDouble(elapsed_s, "elapsed_s", operation));
    std::vector<CandidateRecord*> front;
    for (const int64_t id : pareto_front_ids) {
      CandidateRecord* found = job->FindCandidate(id);
      if (found == nullptr || !found->feasible) return NotAFrontCandidate(job_id, id);
      front.push_back(found);
    }
    for (CandidateRecord* candidate : front) candidate->on_pareto_front = true;
    job->record.state = state;
    job->record.error = error;
    job->record.finished_unix_s = finished;
    job->record.elapsed_s = elapsed;
    job->record.pareto_front_size = static_cast<int64_t>(front.size());
    ClearLease(*job);
    return absl::OkStatus();
  }

  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override {
    absl::MutexLock lock(&db_.mutex);
    const StoredJob* job = db_.FindJob(job_id);
    if (job == nullptr) return JobNotFound(job_id);
    return job->View();
  }

  absl::StatusOr<std::vector<JobRecord>> ListJobsPage(const JobQuery& query) override {
    RETURN_IF_ERROR(CheckPage(query.offset, query.limit));
    if (query.state.has_value() && !IsValidState(*query.state)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown job state ", static_cast<int>(*query.state)));
    }
    absl::MutexLock lock(&db_.mutex);
    auto it = db_.jobs.rbegin();
    if (!query.after_job.empty()) {
      // Deleted jobs stay in the list (marked), so a page after one still has its place.
      while (it != db_.jobs.rend() && it->record.id != query.after_job) ++it;
      if (it == db_.jobs.rend()) {
        return absl::InvalidArgumentError(
            absl::StrCat("after_job: ", query.after_job, " is not a job of this store"));
      }
      ++it;
    }
    std::vector<JobRecord> jobs;
    int64_t skipped = 0;
    for (; it != db_.jobs.rend(); ++it) {
      if (it->deleted) continue;
      if (query.state.has_value() && it->record.state != *query.state) continue;
      if (query.owner.has_value() && it->record.owner != *query.owner) continue;
      if (query.space.has_value() && it->record.space != *query.space) continue;
      if (query.device.has_value() && it->record.device != *query.device) continue;
      if (query.label.has_value() && it->record.label != *query.label) continue;
      if (skipped++ < query.offset) continue;
      jobs.push_back(it->View());
      jobs.back().checkpoint.clear();
      if (static_cast<int>(jobs.size()) == query.limit) break;
    }
    return jobs;
  }

  absl::StatusOr<CandidatePage> ListCandidates(const CandidateQuery& query) override {
    RETURN_IF_ERROR(CheckPage(query.offset, query.limit));
    RETURN_IF_ERROR(store_internal::CheckCursor(query));
    if (!IsValidOrder(query.order)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown candidate order ", static_cast<int>(query.order)));
    }
    absl::MutexLock lock(&db_.mutex);
    const StoredJob* job = db_.FindJob(query.job_id);
    if (job == nullptr) return JobNotFound(query.job_id);
    std::vector<const CandidateRecord*> matching;
    for (const CandidateRecord& candidate : job->candidates) {
      if (query.feasible.has_value() && candidate.feasible != *query.feasible) continue;
      if (query.pareto_front_only && !candidate.on_pareto_front) continue;
      matching.push_back(&candidate);
    }
    // (sort key, id) in the query's order: unset figures last, ties by id.
    std::optional<double> CandidateRecord::*metric = CandidateOrderMetric(query.order);
    const bool descending = query.order == CandidateOrder::kAccuracyDesc;
    const auto before = [&](const std::optional<double>& x, int64_t x_id,
                            const std::optional<double>& y, int64_t y_id) {
      if (metric != nullptr && (x.has_value() != y.has_value())) return x.has_value();
      if (metric != nullptr && x.has_value() && *x != *y) return descending ? *x > *y : *x < *y;
      return x_id < y_id;
    };
    std::sort(
        matching.begin(), matching.end(), [&](const CandidateRecord* a, const CandidateRecord* b) {
          return metric != nullptr ? before(a->*metric, a->id, b->*metric, b->id) : a->id < b->id;
        });
    CandidatePage page;
    page.total = static_cast<int64_t>(matching.size());
    size_t first = static_cast<size_t>(std::min<int64_t>(query.offset, page.total));
    if (query.after.has_value()) {
      const std::optional<double> key = metric != nullptr ? query.after->key : std::nullopt;
      first = 0;
      while (first < matching.size() &&
             !before(key, query.after->id,
                     metric != nullptr ? matching[first]->*metric : std::nullopt,
                     matching[first]->id)) {
        ++first;
      }
    }
    for (size_t i = first;
         i < matching.size() && static_cast<int>(page.candidates.size()) < query.limit; ++i) {
      page.candidates.push_back(*matching[i]);
    }
    return page;
  }

  absl::Status DeleteJob(const std::string& job_id, double deleted_unix_s) override {
    absl::MutexLock lock(&db_.mutex);
    return DeleteLocked(job_id, deleted_unix_s);
  }

  absl::StatusOr<std::map<JobState, int64_t>> CountJobsByState() override {
    absl::MutexLock lock(&db_.mutex);
    std::map<JobState, int64_t> counts;
    for (const StoredJob& job : db_.jobs) {
      if (!job.deleted) ++counts[job.record.state];
    }
    return counts;
  }

  // Every job is created with its label here.
  absl::StatusOr<std::vector<JobRecord>> JobsWithoutLabel(int limit) override {
    RETURN_IF_ERROR(CheckPage(0, limit));
    return std::vector<JobRecord>();
  }

  absl::Status SetJobLabel(const std::string& job_id, const std::string& label) override {
    absl::MutexLock lock(&db_.mutex);
    for (StoredJob& job : db_.jobs) {
      if (job.record.id != job_id) continue;
      job.record.label = label;
      return absl::OkStatus();
    }
    return JobNotFound(job_id);
  }

  absl::StatusOr<std::vector<std::string>> DeleteJobsFinishedBefore(double finished_before_unix_s,
                                                                    double deleted_unix_s,
                                                                    int limit) override {
    RETURN_IF_ERROR(CheckPage(0, limit));
    if (!(deleted_unix_s > 0)) {
      return absl::InvalidArgumentError("deleted_unix_s: must be a positive time");
    }
    absl::MutexLock lock(&db_.mutex);
    std::vector<std::string> ids;
    for (const StoredJob& job : db_.jobs) {
      if (static_cast<int>(ids.size()) == limit) break;
      if (!job.deleted && IsTerminal(job.record.state) && job.record.finished_unix_s > 0 &&
          job.record.finished_unix_s < finished_before_unix_s) {
        ids.push_back(job.record.id);
      }
    }
    for (const std::string& id : ids) RETURN_IF_ERROR(DeleteLocked(id, deleted_unix_s));
    return ids;
  }

  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& holder, double now_unix_s,
                                                     double expires_unix_s) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    RETURN_IF_ERROR(store_internal::CheckLeaseTimes(now_unix_s, expires_unix_s));
    absl::MutexLock lock(&db_.mutex);
    // db_.jobs is in creation order.
    for (StoredJob& job : db_.jobs) {
      if (job.deleted || IsTerminal(job.record.state) || job.lease_expires_unix_s > now_unix_s) {
        continue;
      }
      job.lease_holder = holder;
      job.lease_expires_unix_s = expires_unix_s;
      return ClaimedJob{job.record.id, job.record.state, job.cancel_requested};
    }
    return std::nullopt;
  }

  absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id, const std::string& holder,
                                          double expires_unix_s) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    RETURN_IF_ERROR(store_internal::CheckLeaseTime(expires_unix_s, "expires_unix_s"));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    if (job->lease_holder != holder) return store_internal::LeaseNotHeld(job_id, holder);
    job->lease_expires_unix_s = expires_unix_s;
    return LeaseRenewal{job->cancel_requested};
  }

  absl::Status ReleaseLease(const std::string& job_id, const std::string& holder) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseHolder(holder));
    absl::MutexLock lock(&db_.mutex);
    StoredJob* job = db_.FindJob(job_id);
    if (job == nullptr) return JobNotFound(job_id);
    // An ended job holds no lease (FinishJob clears it); another holder's stays.
    if (job->lease_holder == holder) ClearLease(*job);
    return absl::OkStatus();
  }

  absl::StatusOr<CancelRequestOutcome> RequestCancel(const std::string& job_id,
                                                     double now_unix_s) override {
    RETURN_IF_ERROR(store_internal::CheckLeaseTime(now_unix_s, "now_unix_s"));
    absl::MutexLock lock(&db_.mutex);
    ASSIGN_OR_RETURN(StoredJob * job, Unfinished(job_id));
    if (job->record.state == JobState::kQueued && job->lease_expires_unix_s <= now_unix_s) {
      // As FinishJob(kCancelled) with no front would end it.
      job->record.state = JobState::kCancelled;
      ASSIGN_OR_RETURN(
          job->record.finished_unix_s,
          StoredDouble(now_unix_s, "now_unix_s", absl::StrCat("cancelling job ", job_id)));
      job->record.elapsed_s = 0.0;
      job->record.pareto_front_size = 0;
      ClearLease(*job);
      return CancelRequestOutcome::kEnded;
    }
    job->cancel_requested = true;
    return CancelRequestOutcome::kRequested;
  }

 private:
  absl::Status DeleteLocked(const std::string& job_id, double deleted_unix_s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    if (!(deleted_unix_s > 0)) {
      return absl::InvalidArgumentError("deleted_unix_s: must be a positive time");
    }
    StoredJob* job = db_.FindJob(job_id);
    if (job == nullptr) return JobNotFound(job_id);
    if (!IsTerminal(job->record.state)) {
      return store_internal::JobNotEnded(job_id, job->record.state);
    }
    job->deleted = true;
    db_.DeleteJobArtifacts(job_id);
    job->candidates.clear();
    job->candidates.shrink_to_fit();
    job->row_of_config.clear();
    job->record.request.clear();
    job->record.checkpoint.clear();
    ClearLease(*job);
    return absl::OkStatus();
  }

  static void ClearLease(StoredJob& job) {
    job.lease_holder.clear();
    job.lease_expires_unix_s = 0.0;
  }

  // A queued job with `job`'s identity (no id yet).
  static absl::StatusOr<StoredJob> NewJob(const JobRecord& job, absl::string_view operation) {
    StoredJob stored;
    ASSIGN_OR_RETURN(stored.record.created_unix_s,
                     StoredDouble(job.created_unix_s, "created_unix_s", operation));
    stored.record.space = job.space;
    stored.record.device = job.device;
    stored.record.table_version = job.table_version;
    stored.record.predictor_version = job.predictor_version;
    stored.record.request = job.request;
    stored.record.owner = job.owner;
    stored.record.label = job.label;
    return stored;
  }
  // Gives `stored` the next id and keeps it; returns the id.
  std::string Insert(StoredJob stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    stored.record.id = absl::StrCat("job-", db_.jobs.size() + 1);
    db_.job_index[stored.record.id] = db_.jobs.size();
    db_.jobs.push_back(std::move(stored));
    return db_.jobs.back().record.id;
  }

  // The job, unless it is unknown (NOT_FOUND) or has ended (FAILED_PRECONDITION).
  absl::StatusOr<StoredJob*> Unfinished(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_.mutex) {
    StoredJob* job = db_.FindJob(job_id);
    if (job == nullptr) return JobNotFound(job_id);
    if (IsTerminal(job->record.state)) return JobEnded(job_id, job->record.state);
    return job;
  }

  MemoryDatabase& db_;
};

}  // namespace

std::unique_ptr<JobStore> NewMemoryJobStore(MemoryDatabase& db) {
  return std::make_unique<MemoryJobStore>(db);
}

}  // namespace apq::server::memory_internal
