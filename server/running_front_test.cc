#include "server/running_front.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "search/pareto.h"

namespace apq::server {
namespace {

CandidateRecord Candidate(double latency_ms, double accuracy, bool feasible) {
  CandidateRecord candidate;
  candidate.latency_ms = latency_ms;
  if (feasible) candidate.accuracy = accuracy;
  candidate.feasible = feasible;
  return candidate;
}

// Groups of rows as a job stores them (new rows with growing ids, networks met again with
// their earlier ids, infeasible ones, ties in cost and accuracy): the running front is the
// front of every stored feasible row, after every group.
TEST(RunningFrontTest, EqualsTheFrontOfEveryStoredRowAfterEachGroup) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    // Coarse values, so that equal costs and equal accuracies are common.
    std::uniform_int_distribution<int> level(0, 12);
    std::bernoulli_distribution feasible(0.8);
    std::bernoulli_distribution met_again(0.2);
    RunningFront running(search::CostMetric::kLatency);
    std::vector<CandidateRecord> stored;  // Index = id - 1.
    for (int group = 0; group < 15; ++group) {
      std::vector<CandidateRecord> candidates;
      std::vector<int64_t> ids;
      const int size = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < size; ++i) {
        if (!stored.empty() && met_again(rng)) {
          const int64_t id = 1 + static_cast<int64_t>(rng() % stored.size());
          candidates.push_back(stored[id - 1]);
          ids.push_back(id);
          continue;
        }
        stored.push_back(Candidate(level(rng), 0.5 + level(rng) / 100.0, feasible(rng)));
        candidates.push_back(stored.back());
        ids.push_back(static_cast<int64_t>(stored.size()));
      }
      running.Add(candidates, ids);

      std::vector<search::FrontPoint> points;
      std::vector<int64_t> point_ids;
      for (size_t i = 0; i < stored.size(); ++i) {
        if (!stored[i].feasible) continue;
        points.push_back({*stored[i].latency_ms, *stored[i].accuracy});
        point_ids.push_back(static_cast<int64_t>(i + 1));
      }
      std::vector<int64_t> expected;
      for (const size_t index : search::ParetoFront(points)) expected.push_back(point_ids[index]);
      ASSERT_EQ(running.ids(), expected) << "seed " << seed << ", group " << group;
    }
  }
}

TEST(RunningFrontTest, CandidatesWithoutTheCostAreNoPoints) {
  RunningFront running(search::CostMetric::kEnergy);
  CandidateRecord priced = Candidate(1.0, 0.9, true);
  priced.energy_mj = 2.0;
  running.Add({Candidate(0.5, 0.95, true), priced}, {1, 2});
  EXPECT_EQ(running.ids(), std::vector<int64_t>{2});
}

}  // namespace
}  // namespace apq::server
