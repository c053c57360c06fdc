#include "clients/ci_profile.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"

namespace apq::client {
namespace {

constexpr const char* kFullProfile = R"(---
# deploy to BitFusion
space: fmnist_lowbit
device: bitfusion
budgets:
  max_latency_ms: 0.4   # ms
  max_bitops: 2.5e9
engine: dnas
engine_options:
  steps: 150
  arch_lr: 0.05
  architecture: "fixed"
  repair: true
seed: 7
objective: pareto
pareto_cost: bitops
verify_top_k: 5
min_accuracy: 0.85
outputs:
  config: 'out/config.json'
  torchscript: out/model.pt
  summary: out/summary.json
)";

TEST(CiProfileTest, ReadsEveryKeyIntoTheRequest) {
  const absl::StatusOr<CiProfile> profile = ParseCiProfile(kFullProfile);
  ASSERT_TRUE(profile.ok()) << profile.status();
  const apq::v1::SubmitSearchRequest& request = profile->request;
  EXPECT_EQ(request.space(), "fmnist_lowbit");
  EXPECT_EQ(request.device(), "bitfusion");
  EXPECT_DOUBLE_EQ(request.budgets().max_latency_ms(), 0.4);
  EXPECT_DOUBLE_EQ(request.budgets().max_bitops(), 2.5e9);
  EXPECT_FALSE(request.budgets().has_max_size_mb());
  ASSERT_TRUE(request.has_engine_request());
  EXPECT_EQ(request.engine_request().name(), "dnas");
  const auto& options = request.engine_request().options();
  EXPECT_EQ(options.at("steps").int_value(), 150);
  EXPECT_DOUBLE_EQ(options.at("arch_lr").double_value(), 0.05);
  EXPECT_EQ(options.at("architecture").choice_value(), "fixed");
  EXPECT_TRUE(options.at("repair").bool_value());
  EXPECT_EQ(request.seed(), 7u);
  EXPECT_EQ(request.objective(), apq::v1::OBJECTIVE_PARETO);
  EXPECT_EQ(request.pareto_cost(), apq::v1::COST_METRIC_BITOPS);
  EXPECT_EQ(request.verification().top_k(), 5);
  EXPECT_DOUBLE_EQ(profile->min_accuracy.value_or(-1), 0.85);
  EXPECT_EQ(profile->config_output, "out/config.json");
  EXPECT_EQ(profile->torchscript_output, "out/model.pt");
  EXPECT_EQ(profile->summary_output, "out/summary.json");
  EXPECT_TRUE(request.label().empty());
}

TEST(CiProfileTest, EvolutionOptionsGoToItsOwnMessage) {
  const absl::StatusOr<CiProfile> profile = ParseCiProfile(
      "space: ofa_mbv3\ndevice: note10\nbudgets:\n  max_latency_ms: 25\nengine_options:\n"
      "  population: 50\n  generations: 20\n  mutate_prob: 0.2\n");
  ASSERT_TRUE(profile.ok()) << profile.status();
  ASSERT_TRUE(profile->request.has_evolution());
  EXPECT_EQ(profile->request.evolution().population_size(), 50);
  EXPECT_EQ(profile->request.evolution().generations(), 20);
  EXPECT_DOUBLE_EQ(profile->request.evolution().mutate_probability(), 0.2);
  EXPECT_FALSE(profile->min_accuracy.has_value());
}

// Each bad profile fails naming its line and what is wrong there.
TEST(CiProfileTest, EveryMistakeNamesItsLine) {
  const std::string head = "space: ofa_mbv3\ndevice: note10\nbudgets:\n  max_latency_ms: 25\n";
  const struct {
    std::string text;
    std::string expected;
  } cases[] = {
      {head + "colour: blue\n", "line 5: unknown key 'colour'"},
      {head + "  max_speed: 3\n", "line 5: budgets: unknown key 'max_speed'"},
      {head + "seed: -1\n", "line 5: seed: must be >= 0"},
      {head + "seed: seven\n", "line 5: seed: not an integer"},
      {head + "min_accuracy: 85\n", "line 5: min_accuracy: a fraction"},
      {head + "objective: speed\n", "line 5: objective: 'speed' is not one of accuracy, pareto"},
      {head + "device: note10\n", "line 5: device: given twice"},
      {head + "budgets:\n", "line 5: budgets: given twice"},
      {head + "outputs:\n  model: x\n", "line 6: outputs: unknown key 'model'"},
      {head + "engine_options:\n  crossover: 3\n", "line 6: engine_options: 'crossover'"},
      {head + "\tseed: 1\n", "line 5: tabs are not allowed"},
      {head + "seed 1\n", "line 5: expected 'key: value'"},
      {head + "pareto_cost: [latency]\n", "line 5: only plain or quoted scalars"},
      {head + "engine: \"dnas\n", "line 5: unclosed quote"},
      {"  space: ofa_mbv3\n", "line 1: 'space' is indented but follows no section"},
      {"space: ofa_mbv3\ndevice: note10\nbudgets:\n", "line 3: 'budgets' with at least one of"},
      {"device: note10\nbudgets:\n  max_latency_ms: 1\n", "'space' is required"},
      {"space: ofa_mbv3\ndevice: note10\nbudgets:\n  max_latency_ms: fast\n",
       "line 4: max_latency_ms: not a number"},
      {"space: ofa_mbv3\ndevice: note10\nbudgets: 3\n", "line 3: budgets: a section"},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<CiProfile> profile = ParseCiProfile(c.text);
    ASSERT_FALSE(profile.ok()) << c.text;
    EXPECT_EQ(profile.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(profile.status().message(), c.expected))
        << c.text << "\n  got: " << profile.status().message();
  }
  EXPECT_FALSE(ParseCiProfile(std::string(70000, '#')).ok());
}

TEST(CiProfileTest, TheRequestKeyIgnoresTheLabelAndFollowsEverythingElse) {
  const apq::v1::SubmitSearchRequest request = ParseCiProfile(kFullProfile)->request;
  const std::string key = CiRequestKey(request, 1, "p1");
  EXPECT_EQ(key.size(), 16u);
  apq::v1::SubmitSearchRequest labelled = request;
  labelled.set_label("ci-anything");
  EXPECT_EQ(CiRequestKey(labelled, 1, "p1"), key);
  EXPECT_NE(CiRequestKey(request, 2, "p1"), key);
  EXPECT_NE(CiRequestKey(request, 1, "p2"), key);
  apq::v1::SubmitSearchRequest reseeded = request;
  reseeded.set_seed(8);
  EXPECT_NE(CiRequestKey(reseeded, 1, "p1"), key);
  // The same profile text always gives the same key (the map of options included).
  EXPECT_EQ(CiRequestKey(ParseCiProfile(kFullProfile)->request, 1, "p1"), key);
}

}  // namespace
}  // namespace apq::client
