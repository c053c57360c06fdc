// The Pareto front of a running job's stored candidates, kept up to date group by group, so
// that a job ends without reading all its rows back (for a joint-space search, 14,000 rows
// and a tenth of the job's time). Exactly the front search::ParetoFront computes over every
// stored feasible candidate in id order: a point off the front of earlier rows is dominated by
// a front point stored before it, and stays off whatever comes later.
//
// Not thread-safe: used by one thread at a time.
#ifndef APQ_SERVER_RUNNING_FRONT_H_
#define APQ_SERVER_RUNNING_FRONT_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "search/engine.h"
#include "search/pareto.h"
#include "server/store/records.h"

namespace apq::server {

class RunningFront {
 public:
  explicit RunningFront(search::CostMetric cost) : cost_(cost) {}

  // Adds a stored group: `candidates` and the row ids the store gave them (the same length;
  // a network stored earlier comes back with its earlier id). Infeasible candidates and
  // those without the cost are no points of the front.
  void Add(const std::vector<CandidateRecord>& candidates, const std::vector<int64_t>& ids);

  // The front's row ids, by ascending cost (ParetoFront's order).
  const std::vector<int64_t>& ids() const { return front_ids_; }

 private:
  const search::CostMetric cost_;
  std::vector<std::pair<int64_t, search::FrontPoint>> front_;  // By ascending id.
  std::vector<int64_t> front_ids_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_RUNNING_FRONT_H_
