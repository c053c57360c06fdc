// Every engine respects what the device executes: on local-cpu (W8A8 or float) each engine
// searches fmnist_lowbit's bits (2-8) through the job manager and every network it stores,
// best included, runs at W8A8 only; the same request on bitfusion (which runs every 2-8 bit
// pair) is free to go lower. Evaluate's and export's refusals are in tests/e2e_test.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "oface/search_space.h"
#include "server/job_manager_testing.h"

namespace apq::server {
namespace {

class JobPrecisionTest : public LowBitJobTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // The engine's request with the short settings its own tests use.
  apq::v1::SubmitSearchRequest Request(double max_bitops, const std::string& device) const {
    const std::string& engine = GetParam();
    apq::v1::SubmitSearchRequest request = EngineRequest(engine, max_bitops, 3, device);
    auto& options = *request.mutable_engine_request()->mutable_options();
    if (engine == "evolution") {
      options["population_size"].set_int_value(12);
      options["generations"].set_int_value(3);
    } else if (engine == "iqp") {
      options["calibration_images"].set_int_value(64);
      options["time_limit_s"].set_double_value(30);
    } else if (engine == "qbitopt") {
      options["steps"].set_int_value(4);
      options["update_every"].set_int_value(2);
      options["batch_size"].set_int_value(32);
      options["gradient_batches"].set_int_value(1);
    } else {
      options["steps"].set_int_value(4);
      options["report_every"].set_int_value(2);
      options["batch_size"].set_int_value(16);
      options["warmup_steps"].set_int_value(0);
      options["samples"].set_int_value(2);
    }
    return request;
  }

  // Every bits gene of every stored network of the job (fixed architecture: all run).
  std::vector<int> StoredBits(const std::string& job_id) {
    std::vector<int> bits;
    for (const CandidateRecord& candidate : Candidates(job_id)) {
      const absl::StatusOr<oface::Genotype> genotype = space_->FromJson(candidate.config_json);
      EXPECT_TRUE(genotype.ok()) << genotype.status();
      if (!genotype.ok()) continue;
      for (size_t g = 0; g < genotype->size(); ++g) {
        if (oface::IsBitsGene(space_->genes()[g])) bits.push_back((*genotype)[g]);
      }
    }
    return bits;
  }
};

TEST_P(JobPrecisionTest, OnLocalCpuEveryStoredNetworkRunsAtW8A8) {
  // A budget only W8A8 networks of the smallest architecture meet on local-cpu: every one does.
  const double budget = Bitops(Smallest(8, 8));
  auto job = bed_.manager().Submit(Request(budget, "local-cpu"));
  ASSERT_TRUE(job.ok()) << job.status();
  const apq::v1::JobProgress last = bed_.AwaitEnd(job->id(), absl::Seconds(600));
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  const std::vector<int> bits = StoredBits(job->id());
  ASSERT_FALSE(bits.empty());
  for (const int value : bits) EXPECT_EQ(value, 8);

  // On bitfusion the same search may lower bits below 8 (the budget halved forces it).
  auto lower = bed_.manager().Submit(Request(budget / 2, "bitfusion"));
  ASSERT_TRUE(lower.ok()) << lower.status();
  const apq::v1::JobProgress done = bed_.AwaitEnd(lower->id(), absl::Seconds(600));
  ASSERT_EQ(done.state(), apq::v1::JOB_STATE_SUCCEEDED) << done.error();
  const std::vector<int> low = StoredBits(lower->id());
  EXPECT_TRUE(std::any_of(low.begin(), low.end(), [](int value) { return value < 8; }));

  // Halving the budget on local-cpu leaves no network that runs there: the job finds none,
  // or is refused as below every policy the device runs.
  auto none = bed_.manager().Submit(Request(budget / 2, "local-cpu"));
  if (none.ok()) {
    const apq::v1::JobProgress ended = bed_.AwaitEnd(none->id(), absl::Seconds(600));
    const std::vector<int> stored = StoredBits(none->id());
    for (const int value : stored) EXPECT_EQ(value, 8);
    auto record = bed_.store().jobs().GetJob(none->id());
    ASSERT_TRUE(record.ok());
    EXPECT_TRUE(!record->best.has_value() || ended.state() != apq::v1::JOB_STATE_SUCCEEDED ||
                std::all_of(stored.begin(), stored.end(), [](int value) { return value == 8; }));
  } else {
    EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition) << none.status();
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, JobPrecisionTest,
                         ::testing::Values("evolution", "iqp", "qbitopt", "dnas", "ssps"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace apq::server
