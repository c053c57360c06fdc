// The steps of a running search that are not stored yet, gathered for one group commit
// (JobStore::AppendGenerations): the distinct networks they met, each with how many times
// and the step that met it first, and the running totals, best and checkpoint after the
// last of them. The job manager stores them every commit interval, so that a search writes
// a transaction every few hundred milliseconds instead of one per generation, and each
// network once per commit instead of once per child.
//
// Not thread-safe: one per running job, used by its worker.
#ifndef APQ_SERVER_PENDING_STEPS_H_
#define APQ_SERVER_PENDING_STEPS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "oface/search_space.h"
#include "search/engine.h"
#include "server/store/records.h"

namespace apq::server {

// A network an engine priced, as a candidate row stores it: its canonical config, its
// figures (predicted accuracy only when feasible) and which figures a fallback model priced.
// Met once, in `generation`.
CandidateRecord CandidateFromIndividual(const oface::SearchSpace& space,
                                        const search::Individual& individual, int generation,
                                        bool feasible);

class PendingSteps {
 public:
  // `space` (the one the engine searches) must outlive it. With `keep_rejected`, the
  // rejected draws that reports carry become infeasible candidates too; otherwise they are
  // only counted. `rejected_draws_before`: the job's count before the first step added (a
  // resumed job's stored count).
  PendingSteps(const oface::SearchSpace& space, bool keep_rejected, int64_t rejected_draws_before);

  // Adds the report of the step after the last one added (or stored); with
  // `with_checkpoint`, also the engine's checkpoint after it (report.write_checkpoint, during
  // the engine's callback). Without, the checkpoint held stays an earlier step's.
  void Add(const search::StepReport& report, bool with_checkpoint);
  // Whether the checkpoint held is the one after the last step added: a batch of these
  // steps may be stored (a job resumes from a stored checkpoint after the stored steps).
  bool has_current_checkpoint() const { return checkpoint_step_ == last_step_; }

  bool empty() const { return !last_step_.has_value(); }
  // The steps added since the last Take.
  int first_step() const { return first_step_.value_or(-1); }
  int last_step() const { return last_step_.value_or(-1); }

  // The batch that stores every step added since the last Take, and forgets them (the
  // running totals carry on). Its elapsed_s is left 0 for the caller to set. When no step of
  // the batch bred the best, the best gets `stored_best_id`: the id its row got when stored.
  GenerationBatch Take(int64_t stored_best_id);

 private:
  // The index in candidates_ of the network of `individual`, added (met 0 times) if new.
  size_t IndexOf(const search::Individual& individual, int step, bool feasible);

  const oface::SearchSpace& space_;
  const bool keep_rejected_;
  int64_t rejected_draws_;
  int64_t candidates_evaluated_ = 0;

  std::optional<int> first_step_;
  std::optional<int> last_step_;
  std::vector<CandidateRecord> candidates_;
  // Both lead to candidates_: the engine's genotype saves canonicalising a repeat again; the
  // canonical genotype (one per config: ToJson is one-to-one on canonical genotypes) merges
  // genotypes that differ only in inactive genes, before any JSON is written.
  absl::flat_hash_map<oface::Genotype, size_t> index_of_genotype_;
  absl::flat_hash_map<oface::Genotype, size_t> index_of_canonical_;
  std::optional<CandidateRecord> best_;
  int best_index_ = -1;  // In candidates_, when a step added bred the best.
  std::string checkpoint_;
  std::optional<int> checkpoint_step_;  // The step checkpoint_ follows.
  // The last step's StepReport::metrics.
  std::vector<std::pair<std::string, double>> engine_metrics_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_PENDING_STEPS_H_
