#include "oface/precision_search.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/supernet.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

struct Splits {
  LabeledImages train;
  LabeledImages validation;
};

// 600 real training-file images: 400 to train the weights, 200 to steer the distributions.
const Splits& RealSplits() {
  static const Splits* splits = [] {
    const LabeledImages all =
        LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, 600).value();
    std::vector<int> first(400);
    std::vector<int> last(200);
    for (int i = 0; i < 400; ++i) first[i] = i;
    for (int i = 0; i < 200; ++i) last[i] = 400 + i;
    return new Splits{SelectImages(all, first), SelectImages(all, last)};
  }();
  return *splits;
}

// BitOps-like costs: slot s's layers cost (s + 1) x weight bits x activation bits.
BitCostTable Costs(const Supernet& supernet) {
  BitCostTable costs;
  costs.fixed = 100.0;
  const std::vector<int>& bits = supernet.spec().bit_choices;
  for (int s = 0; s < supernet.space().genes().size() / 6; ++s) {
    std::array<std::vector<double>, 2> tables;
    for (int kind = 0; kind < 2; ++kind) {
      for (const int w : bits) {
        for (const int a : bits) tables[kind].push_back((s + 1) * (kind + 1) * w * a);
      }
    }
    costs.slots.push_back(tables);
  }
  return costs;
}

PrecisionSearchOptions Options(int64_t steps) {
  PrecisionSearchOptions options;
  options.steps = steps;
  options.batch_size = 40;
  options.arch_lr = 0.05;
  options.cost_alpha = 0.5;
  options.cost_beta = 2.0;
  options.seed = 3;
  return options;
}

std::unique_ptr<Supernet> Tiny() { return Supernet::Create(TinyLowBitSpec(), 5).value(); }

TEST(PrecisionSearchTest, TheRelaxedCostIsTheExpectedCostAndTheCostTermPullsItDown) {
  std::unique_ptr<Supernet> supernet = Tiny();
  const Genotype architecture = supernet->LargestGenotype();
  auto search = PrecisionSearch::Create(*supernet, architecture, RealSplits().train,
                                        RealSplits().validation, Costs(*supernet), Options(30))
                    .value();
  const double uniform = search->ExpectedCost();
  EXPECT_NEAR(search->RelaxedCost(), uniform, 1e-9 * uniform);
  // Uniform distributions over {2, 3, 4, 8}: the entropy of four equal choices.
  EXPECT_NEAR(search->MeanEntropy(), std::log(4.0), 1e-6);
  ASSERT_TRUE(search->Train(30).ok());
  EXPECT_EQ(search->steps_done(), 30);
  EXPECT_NEAR(search->RelaxedCost(), search->ExpectedCost(), 1e-6 * search->ExpectedCost());
  // A strong cost term moves the distributions towards fewer bits.
  EXPECT_LT(search->ExpectedCost(), uniform);
  EXPECT_LT(search->MeanEntropy(), std::log(4.0));
  EXPECT_NEAR(search->temperature(), Options(30).temperature_end, 1e-9);
  const Genotype most_likely = search->MostLikely();
  EXPECT_TRUE(supernet->space().Validate(most_likely).ok());
  // The architecture is kept: only bits genes differ.
  for (size_t g = 0; g < most_likely.size(); ++g) {
    if (!IsBitsGene(supernet->space().genes()[g])) {
      EXPECT_EQ(most_likely[g], supernet->space().Canonical(architecture)[g]);
    }
  }
}

TEST(PrecisionSearchTest, BelowItsFloorTheCostTermDoesNotPull) {
  std::unique_ptr<Supernet> free_supernet = Tiny();
  const Genotype architecture = free_supernet->LargestGenotype();
  auto free = PrecisionSearch::Create(*free_supernet, architecture, RealSplits().train,
                                      RealSplits().validation, Costs(*free_supernet), Options(30))
                  .value();
  const double uniform = free->ExpectedCost();
  ASSERT_TRUE(free->Train(30).ok());
  // A floor above every policy's cost (8 bits everywhere costs 4x the uniform expectation
  // at most): the same search steered by cross-entropy alone ends dearer.
  std::unique_ptr<Supernet> floored_supernet = Tiny();
  PrecisionSearchOptions options = Options(30);
  options.cost_floor = 10 * uniform;
  auto floored = PrecisionSearch::Create(*floored_supernet, architecture, RealSplits().train,
                                         RealSplits().validation, Costs(*floored_supernet), options)
                     .value();
  ASSERT_TRUE(floored->Train(30).ok());
  EXPECT_LT(free->ExpectedCost(), uniform);
  EXPECT_GT(floored->ExpectedCost(), free->ExpectedCost());
}

TEST(PrecisionSearchTest, NearTemperatureZeroASampleIsOneHot) {
  std::unique_ptr<Supernet> supernet = Tiny();
  auto search = PrecisionSearch::Create(*supernet, supernet->LargestGenotype(), RealSplits().train,
                                        RealSplits().validation, Costs(*supernet), Options(4))
                    .value();
  ASSERT_TRUE(search->Train(4).ok());
  int distributions = 0;
  for (const auto& slot : search->GumbelSample(1e-4, 7)) {
    for (const std::vector<double>& weights : slot) {
      double total = 0.0;
      double largest = 0.0;
      for (const double w : weights) {
        total += w;
        largest = std::max(largest, w);
      }
      EXPECT_NEAR(total, 1.0, 1e-9);
      EXPECT_GT(largest, 1.0 - 1e-9);
      ++distributions;
    }
  }
  EXPECT_GT(distributions, 0);
  // At a high temperature a sample spreads, and one seed gives one sample.
  const auto hot = search->GumbelSample(100.0, 7);
  EXPECT_LT(*std::max_element(hot[0][0].begin(), hot[0][0].end()), 0.9);
  EXPECT_EQ(search->GumbelSample(2.0, 9), search->GumbelSample(2.0, 9));
}

TEST(PrecisionSearchTest, AResumedSearchEndsWhereAnUninterruptedOneDoes) {
  std::unique_ptr<Supernet> whole = Tiny();
  const Genotype architecture = whole->SmallestGenotype();
  auto straight = PrecisionSearch::Create(*whole, architecture, RealSplits().train,
                                          RealSplits().validation, Costs(*whole), Options(12))
                      .value();
  ASSERT_TRUE(straight->Train(12).ok());

  std::unique_ptr<Supernet> first = Tiny();
  auto interrupted = PrecisionSearch::Create(*first, architecture, RealSplits().train,
                                             RealSplits().validation, Costs(*first), Options(12))
                         .value();
  ASSERT_TRUE(interrupted->Train(7).ok());
  const std::string state = interrupted->SaveState().value();
  std::unique_ptr<Supernet> second = Tiny();
  auto resumed = PrecisionSearch::Create(*second, architecture, RealSplits().train,
                                         RealSplits().validation, Costs(*second), Options(12))
                     .value();
  ASSERT_TRUE(resumed->RestoreState(state).ok());
  EXPECT_EQ(resumed->steps_done(), 7);
  ASSERT_TRUE(resumed->Train(5).ok());
  EXPECT_EQ(resumed->Probabilities(), straight->Probabilities());
  EXPECT_EQ(resumed->last_weight_loss(), straight->last_weight_loss());
  EXPECT_EQ(resumed->last_arch_loss(), straight->last_arch_loss());
  EXPECT_EQ(resumed->RestoreState("garbage").code(), absl::StatusCode::kDataLoss);
}

PrecisionSearchOptions SinglePath(int64_t steps, int64_t warmup, int64_t fix_every,
                                  FixingCertainty certainty) {
  PrecisionSearchOptions options = Options(steps);
  options.relaxation = PrecisionRelaxation::kSinglePath;
  options.sequential_fixing = true;
  options.warmup_steps = warmup;
  options.fix_every = fix_every;
  options.certainty = certainty;
  return options;
}

// The genotype's bits of layer (slot, kind) as {weight, activation}.
std::pair<int, int> LayerBits(const Supernet& supernet, const Genotype& genotype, int slot,
                              int kind) {
  const std::string prefix = kind == 0 ? "pw_" : "dw_";
  int weight = -1;
  int activation = -1;
  const auto& genes = supernet.space().genes();
  for (size_t g = 0; g < genes.size(); ++g) {
    if (genes[g].name == prefix + "w_bits_setting[" + std::to_string(slot) + "]") {
      weight = genotype[g];
    }
    if (genes[g].name == prefix + "a_bits_setting[" + std::to_string(slot) + "]") {
      activation = genotype[g];
    }
  }
  return {weight, activation};
}

TEST(PrecisionSearchTest, SequentialFixingFixesOneLayerPerIntervalAndNeverUnfixes) {
  for (const FixingCertainty certainty :
       {FixingCertainty::kMaxProbability, FixingCertainty::kMargin,
        FixingCertainty::kNegativeEntropy}) {
    std::unique_ptr<Supernet> supernet = Tiny();
    const int64_t warmup = 2;
    const int64_t every = 2;
    auto search =
        PrecisionSearch::Create(*supernet, supernet->LargestGenotype(), RealSplits().train,
                                RealSplits().validation, Costs(*supernet),
                                SinglePath(40, warmup, every, certainty))
            .value();
    const int layers = search->layers();
    ASSERT_GT(layers, 2);
    ASSERT_LE(warmup + every * layers, 40) << "the run must reach every fix";
    EXPECT_EQ(search->fix_interval(), every);
    std::vector<std::pair<int, int>> before;
    std::map<std::pair<int, int>, std::pair<int, int>> fixed_bits;
    for (int64_t step = 1; step <= 40; ++step) {
      ASSERT_TRUE(search->Train(1).ok());
      const std::vector<std::pair<int, int>> now = search->FixedLayers();
      const int64_t expected =
          std::min<int64_t>(layers, step <= warmup ? 0 : (step - warmup) / every);
      ASSERT_EQ(static_cast<int64_t>(now.size()), expected) << "after step " << step;
      // Never unfixed, never changed: the earlier fixes are a prefix, at the same bits.
      ASSERT_TRUE(std::equal(before.begin(), before.end(), now.begin())) << step;
      const Genotype most_likely = search->MostLikely();
      for (const auto& layer : now) {
        const auto bits = LayerBits(*supernet, most_likely, layer.first, layer.second);
        const auto first = fixed_bits.emplace(layer, bits).first;
        EXPECT_EQ(first->second, bits) << "layer " << layer.first << "/" << layer.second;
      }
      before = now;
    }
    // Every layer fixed: the distributions are one-hot, so the expected cost is the cost of
    // the one policy left and the entropy is 0.
    EXPECT_NEAR(search->MeanEntropy(), 0.0, 1e-12);
    EXPECT_NEAR(search->RelaxedCost(), search->ExpectedCost(), 1e-6 * search->ExpectedCost());
    for (const auto& slot : search->Probabilities()) {
      for (const std::vector<double>& p : slot) {
        EXPECT_EQ(*std::max_element(p.begin(), p.end()), 1.0);
      }
    }
  }
}

TEST(PrecisionSearchTest, ASinglePathSearchPullsTheCostDownAndResumesExactly) {
  std::unique_ptr<Supernet> whole = Tiny();
  const Genotype architecture = whole->LargestGenotype();
  const PrecisionSearchOptions options = SinglePath(16, 3, 0, FixingCertainty::kMargin);
  auto straight = PrecisionSearch::Create(*whole, architecture, RealSplits().train,
                                          RealSplits().validation, Costs(*whole), options)
                      .value();
  const double uniform = straight->ExpectedCost();
  // Spread evenly: the last layer is fixed by the last step.
  EXPECT_EQ(straight->fix_interval(), std::max<int64_t>(1, 13 / straight->layers()));
  ASSERT_TRUE(straight->Train(16).ok());
  EXPECT_LT(straight->ExpectedCost(), uniform);
  EXPECT_EQ(static_cast<int64_t>(straight->FixedLayers().size()),
            std::min<int64_t>(straight->layers(), 13 / straight->fix_interval()));

  std::unique_ptr<Supernet> first = Tiny();
  auto interrupted = PrecisionSearch::Create(*first, architecture, RealSplits().train,
                                             RealSplits().validation, Costs(*first), options)
                         .value();
  ASSERT_TRUE(interrupted->Train(9).ok());
  ASSERT_FALSE(interrupted->FixedLayers().empty()) << "the state must carry fixed layers";
  const std::string state = interrupted->SaveState().value();
  std::unique_ptr<Supernet> second = Tiny();
  auto resumed = PrecisionSearch::Create(*second, architecture, RealSplits().train,
                                         RealSplits().validation, Costs(*second), options)
                     .value();
  ASSERT_TRUE(resumed->RestoreState(state).ok());
  EXPECT_EQ(resumed->FixedLayers(), interrupted->FixedLayers());
  ASSERT_TRUE(resumed->Train(7).ok());
  EXPECT_EQ(resumed->FixedLayers(), straight->FixedLayers());
  EXPECT_EQ(resumed->Probabilities(), straight->Probabilities());
  EXPECT_EQ(resumed->last_weight_loss(), straight->last_weight_loss());
  EXPECT_EQ(resumed->last_arch_loss(), straight->last_arch_loss());
}

TEST(PrecisionSearchTest, BadOptionsAndCostsAreNamedBeforeAnyWork) {
  std::unique_ptr<Supernet> supernet = Tiny();
  const Genotype architecture = supernet->LargestGenotype();
  const auto refused = [&](const PrecisionSearchOptions& options, BitCostTable costs) {
    return PrecisionSearch::Create(*supernet, architecture, RealSplits().train,
                                   RealSplits().validation, std::move(costs), options)
        .status();
  };
  const struct {
    const char* field;
    void (*apply)(PrecisionSearchOptions&);
  } cases[] = {
      {"steps", [](PrecisionSearchOptions& o) { o.steps = 0; }},
      {"batch_size", [](PrecisionSearchOptions& o) { o.batch_size = 201; }},
      {"weight_lr", [](PrecisionSearchOptions& o) { o.weight_lr = 0; }},
      {"arch_lr", [](PrecisionSearchOptions& o) { o.arch_lr = 2; }},
      {"temperature_start", [](PrecisionSearchOptions& o) { o.temperature_start = -1; }},
      {"temperature_end", [](PrecisionSearchOptions& o) { o.temperature_end = 6; }},
      {"cost_alpha", [](PrecisionSearchOptions& o) { o.cost_alpha = 0; }},
      {"cost_beta", [](PrecisionSearchOptions& o) { o.cost_beta = 11; }},
      {"warmup_steps", [](PrecisionSearchOptions& o) { o.warmup_steps = 31; }},
      {"sequential_fixing", [](PrecisionSearchOptions& o) { o.sequential_fixing = true; }},
      {"fix_every", [](PrecisionSearchOptions& o) { o.fix_every = 31; }},
      {"fix_every", [](PrecisionSearchOptions& o) { o.fix_every = -1; }},
      {"cost_floor", [](PrecisionSearchOptions& o) { o.cost_floor = -1; }},
      {"cost_scale", [](PrecisionSearchOptions& o) { o.cost_scale = 0; }},
      {"cost_floor", [](PrecisionSearchOptions& o) { o.cost_floor = std::nan(""); }},
  };
  for (const auto& c : cases) {
    PrecisionSearchOptions options = Options(30);
    c.apply(options);
    const absl::Status status = refused(options, Costs(*supernet));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
  }
  BitCostTable short_table = Costs(*supernet);
  short_table.slots[0][1].pop_back();
  EXPECT_THAT(refused(Options(30), short_table).message(), HasSubstr("slot 0"));
  BitCostTable negative = Costs(*supernet);
  negative.slots[1][0][0] = -1;
  EXPECT_EQ(refused(Options(30), negative).code(), absl::StatusCode::kInvalidArgument);
  BitCostTable missing = Costs(*supernet);
  missing.slots.pop_back();
  EXPECT_THAT(refused(Options(30), missing).message(), HasSubstr("costs"));
}

}  // namespace
}  // namespace apq::oface
