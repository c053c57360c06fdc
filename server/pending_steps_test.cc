#include "server/pending_steps.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"

namespace apq::server {
namespace {

class PendingStepsTest : public ::testing::Test {
 protected:
  // A network of the space with made-up figures.
  search::Individual Network(double accuracy, double latency_ms) {
    search::Individual individual;
    individual.genotype = space_->Sample(rng_);
    individual.accuracy = accuracy;
    individual.cost.latency_ms = latency_ms;
    return individual;
  }

  // The same network with a gene the canonical form ignores changed, when there is one.
  std::optional<search::Individual> SameNetworkOtherGenes(const search::Individual& individual) {
    const oface::Genotype canonical = space_->Canonical(individual.genotype);
    for (size_t gene = 0; gene < individual.genotype.size(); ++gene) {
      for (const int value : space_->genes()[gene].choices) {
        search::Individual other = individual;
        other.genotype[gene] = value;
        if (other.genotype != individual.genotype &&
            space_->Canonical(other.genotype) == canonical) {
          return other;
        }
      }
    }
    return std::nullopt;
  }

  static search::StepReport Report(int step, const std::vector<search::Individual>& scored,
                                   const std::vector<search::Individual>& rejected,
                                   int64_t rejected_total, int64_t evaluated,
                                   const search::Individual* best, int best_index) {
    search::StepReport report;
    report.step = step;
    report.scored = scored;
    report.rejected = rejected;
    report.rejected_total = rejected_total;
    report.candidates_evaluated = evaluated;
    report.best = best;
    report.best_index_in_step = best_index;
    report.write_checkpoint = [step] { return absl::StrCat("after ", step); };
    return report;
  }

  std::unique_ptr<oface::SearchSpace> space_ = oface::NewOfaMbv3Space();
  oface::Rng rng_{11};
};

TEST_F(PendingStepsTest, AGroupOfStepsIsOneBatchOfDistinctNetworksWithTheirCounts) {
  const search::Individual a = Network(0.8, 20);
  const search::Individual b = Network(0.7, 21);
  const search::Individual c = Network(0, 40);  // Over the budget.
  const search::Individual d = Network(0.75, 19);
  PendingSteps pending(*space_, /*keep_rejected=*/true, /*rejected_draws_before=*/10);
  EXPECT_TRUE(pending.empty());

  std::vector<search::Individual> step_zero = {a, b, a};
  step_zero[0].generation = 0;
  pending.Add(Report(0, step_zero, {c}, 1, 3, &step_zero[0], 0), /*with_checkpoint=*/true);
  std::vector<search::Individual> step_one = {b, d};
  pending.Add(Report(1, step_one, {c, c}, 5, 5, &step_zero[0], -1), /*with_checkpoint=*/false);
  EXPECT_FALSE(pending.has_current_checkpoint()) << "it follows step 0, not 1";
  EXPECT_EQ(pending.Take(0).checkpoint, "after 0");
  // Again, with step 1's checkpoint written this time.
  pending.Add(Report(0, step_zero, {c}, 1, 3, &step_zero[0], 0), /*with_checkpoint=*/false);
  pending.Add(Report(1, step_one, {c, c}, 5, 5, &step_zero[0], -1), /*with_checkpoint=*/true);
  EXPECT_TRUE(pending.has_current_checkpoint());
  EXPECT_FALSE(pending.empty());
  EXPECT_EQ(pending.first_step(), 0);
  EXPECT_EQ(pending.last_step(), 1);

  GenerationBatch batch = pending.Take(/*stored_best_id=*/0);
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(batch.first_generation, 0);
  EXPECT_EQ(batch.last_generation, 1);
  ASSERT_EQ(batch.candidates.size(), 4u);
  const std::vector<std::string> configs = {
      space_->ToJson(space_->Canonical(a.genotype)), space_->ToJson(space_->Canonical(b.genotype)),
      space_->ToJson(space_->Canonical(c.genotype)), space_->ToJson(space_->Canonical(d.genotype))};
  const std::vector<int64_t> counts = {2, 2, 3, 1};
  const std::vector<int> generations = {0, 0, 0, 1};
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(batch.candidates[i].config_json, configs[i]);
    EXPECT_EQ(batch.candidates[i].times_seen, counts[i]);
    EXPECT_EQ(batch.candidates[i].generation, generations[i]);
  }
  EXPECT_FALSE(batch.candidates[2].feasible);
  EXPECT_FALSE(batch.candidates[2].accuracy.has_value());
  EXPECT_EQ(batch.candidates[0].accuracy, 0.8);
  EXPECT_EQ(batch.candidates_evaluated, 5);
  EXPECT_EQ(batch.rejected_draws, 22) << "the draws before, and every one reported (the first "
                                         "group of steps 0-1 counted too)";
  EXPECT_EQ(batch.checkpoint, "after 1");
  ASSERT_TRUE(batch.best.has_value());
  EXPECT_EQ(batch.best_batch_index, 0) << "step 0 bred the best";

  // The next group: the best is the stored one, and a network met before is new to it.
  pending.Add(Report(2, {b}, {c}, 1, 6, &step_zero[0], -1), /*with_checkpoint=*/true);
  batch = pending.Take(/*stored_best_id=*/42);
  EXPECT_EQ(batch.first_generation, 2);
  ASSERT_EQ(batch.candidates.size(), 2u);
  EXPECT_EQ(batch.candidates[0].generation, 2);
  EXPECT_EQ(batch.rejected_draws, 23);
  EXPECT_EQ(batch.best_batch_index, -1);
  EXPECT_EQ(batch.best->id, 42);
}

TEST_F(PendingStepsTest, RejectedDrawsAreOnlyCountedUnlessKeptAndGenotypesOfOneNetworkMerge) {
  const search::Individual a = Network(0.8, 20);
  const std::optional<search::Individual> a_again = SameNetworkOtherGenes(a);
  ASSERT_TRUE(a_again.has_value()) << "ofa_mbv3 has genes its depths leave inactive";
  PendingSteps pending(*space_, /*keep_rejected=*/false, /*rejected_draws_before=*/0);
  pending.Add(Report(0, {a, *a_again}, {Network(0, 40)}, 7, 2, nullptr, -1), true);
  const GenerationBatch batch = pending.Take(0);
  ASSERT_EQ(batch.candidates.size(), 1u);
  EXPECT_EQ(batch.candidates[0].times_seen, 2);
  EXPECT_TRUE(batch.candidates[0].feasible);
  EXPECT_EQ(batch.rejected_draws, 7);
  EXPECT_FALSE(batch.best.has_value());
}

}  // namespace
}  // namespace apq::server
