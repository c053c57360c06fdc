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

// The space's layer slots: one ks[i] gene each.
int SlotCount(const SearchSpace& space) {
  return static_cast<int>(
      std::count_if(space.genes().begin(), space.genes().end(),
                    [](const GeneSpec& g) { return g.name.rfind("ks[", 0) == 0; }));
}

// Architecture search's table: slot s at kernel k and width m costs (s + 1) m w a / 8 in its
// pointwise layers and (s + 1) k^2 m w a / 64 in its depthwise layer.
BitCostTable ArchitectureCosts(const Supernet& supernet) {
  BitCostTable costs;
  costs.fixed = 50.0;
  const SearchSpace& space = supernet.space();
  const int slots = SlotCount(space);
  const std::vector<int>& bits = supernet.spec().bit_choices;
  for (int s = 0; s < slots; ++s) {
    std::vector<std::array<std::vector<double>, 2>> settings;
    for (const int k : space.genes()[s].choices) {
      for (const int m : space.genes()[slots + s].choices) {
        std::array<std::vector<double>, 2> tables;
        for (const int w : bits) {
          for (const int a : bits) {
            tables[0].push_back((s + 1) * m * w * a / 8.0);
            tables[1].push_back((s + 1) * k * k * m * w * a / 64.0);
          }
        }
        settings.push_back(tables);
      }
    }
    costs.by_architecture.push_back(settings);
  }
  return costs;
}

PrecisionSearchOptions ArchitectureOptions(int64_t steps) {
  PrecisionSearchOptions options = Options(steps);
  options.search_architecture = true;
  return options;
}

TEST(PrecisionSearchTest, SearchingTheArchitectureTheRelaxedCostIsTheExpectedCostAndFalls) {
  std::unique_ptr<Supernet> supernet = Tiny();
  const SearchSpace& space = supernet->space();
  const BitCostTable costs = ArchitectureCosts(*supernet);
  auto search = PrecisionSearch::Create(*supernet, supernet->SmallestGenotype(), RealSplits().train,
                                        RealSplits().validation, costs, ArchitectureOptions(30))
                    .value();
  // Uniform distributions, by hand: slot j of a stage runs with probability P(depth > j), and
  // then costs the mean of its tables over kernels, widths and bit pairs.
  const int slots = SlotCount(space);
  double expected = costs.fixed;
  int slot = 0;
  for (size_t g = 0; g < space.genes().size(); ++g) {
    if (space.genes()[g].name.rfind("d[", 0) != 0) continue;
    const std::vector<int>& depths = space.genes()[g].choices;
    const int deepest = *std::max_element(depths.begin(), depths.end());
    for (int j = 0; j < deepest; ++j, ++slot) {
      const double runs = static_cast<double>(std::count_if(depths.begin(), depths.end(),
                                                            [j](int d) { return d > j; })) /
                          static_cast<double>(depths.size());
      double mean = 0.0;
      int count = 0;
      for (const auto& setting : costs.by_architecture[slot]) {
        for (const auto& table : setting) {
          for (const double cost : table) mean += cost / static_cast<double>(table.size());
        }
        ++count;
      }
      expected += runs * mean / count;
    }
  }
  ASSERT_EQ(slot, slots);
  // (Uniform probabilities such as 1/3 in float32: a relative 1e-7 apart.)
  EXPECT_NEAR(search->ExpectedCost(), expected, 1e-6 * expected);
  EXPECT_NEAR(search->RelaxedCost(), expected, 1e-6 * expected);
  ASSERT_TRUE(search->Train(30).ok());
  EXPECT_NEAR(search->RelaxedCost(), search->ExpectedCost(), 1e-6 * search->ExpectedCost());
  // A strong cost term moves kernels, widths, depths and bits towards the cheaper ones.
  EXPECT_LT(search->ExpectedCost(), expected);
  const Genotype most_likely = search->MostLikely();
  ASSERT_TRUE(space.Validate(most_likely).ok());
  // Every architecture gene's distribution sums to 1 and the most likely genotype takes its
  // most likely value (genes of slots its depths skip are canonical, not searched values).
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const GeneSpec& gene = space.genes()[g];
    if (IsBitsGene(gene)) continue;
    double total = 0.0;
    double most = 0.0;
    for (const int value : gene.choices) {
      const double p = search->Probability(static_cast<int>(g), value);
      total += p;
      most = std::max(most, p);
    }
    EXPECT_NEAR(total, 1.0, 1e-6) << gene.name;
    if (gene.name.rfind("d[", 0) == 0) {
      EXPECT_NEAR(search->Probability(static_cast<int>(g), most_likely[g]), most, 1e-12)
          << gene.name;
    }
  }
  // The depth distributions moved: the architecture is searched, not held.
  bool depth_moved = false;
  for (size_t g = 0; g < space.genes().size(); ++g) {
    if (space.genes()[g].name.rfind("d[", 0) != 0) continue;
    const double p = search->Probability(static_cast<int>(g), space.genes()[g].choices.front());
    depth_moved = depth_moved || std::fabs(p - 1.0 / space.genes()[g].choices.size()) > 1e-3;
  }
  EXPECT_TRUE(depth_moved);
  // Samples are valid genotypes and differ between seeds somewhere in their architecture.
  bool differ = false;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const Genotype sampled = search->SamplePolicy(seed);
    EXPECT_TRUE(space.Validate(sampled).ok());
    EXPECT_EQ(sampled, search->SamplePolicy(seed));
    differ = differ || sampled != search->SamplePolicy(seed + 100);
  }
  EXPECT_TRUE(differ);
}

TEST(PrecisionSearchTest, AResumedArchitectureSearchEndsWhereAnUninterruptedOneDoes) {
  std::unique_ptr<Supernet> whole = Tiny();
  const Genotype start = whole->LargestGenotype();
  auto straight =
      PrecisionSearch::Create(*whole, start, RealSplits().train, RealSplits().validation,
                              ArchitectureCosts(*whole), ArchitectureOptions(10))
          .value();
  ASSERT_TRUE(straight->Train(10).ok());
  std::unique_ptr<Supernet> first = Tiny();
  auto interrupted =
      PrecisionSearch::Create(*first, start, RealSplits().train, RealSplits().validation,
                              ArchitectureCosts(*first), ArchitectureOptions(10))
          .value();
  ASSERT_TRUE(interrupted->Train(6).ok());
  const std::string state = interrupted->SaveState().value();
  std::unique_ptr<Supernet> second = Tiny();
  auto resumed =
      PrecisionSearch::Create(*second, start, RealSplits().train, RealSplits().validation,
                              ArchitectureCosts(*second), ArchitectureOptions(10))
          .value();
  ASSERT_TRUE(resumed->RestoreState(state).ok());
  ASSERT_TRUE(resumed->Train(4).ok());
  EXPECT_EQ(resumed->ExpectedCost(), straight->ExpectedCost());
  EXPECT_EQ(resumed->MostLikely(), straight->MostLikely());
  EXPECT_EQ(resumed->last_arch_loss(), straight->last_arch_loss());
  // A bits-only search's state lacks the architecture's logits.
  std::unique_ptr<Supernet> third = Tiny();
  auto bits_only = PrecisionSearch::Create(*third, start, RealSplits().train,
                                           RealSplits().validation, Costs(*third), Options(10))
                       .value();
  EXPECT_EQ(resumed->RestoreState(bits_only->SaveState().value()).code(),
            absl::StatusCode::kDataLoss);
}

TEST(PrecisionSearchTest, ArchitectureSearchRefusesSinglePathAndMisshapenCosts) {
  std::unique_ptr<Supernet> supernet = Tiny();
  const auto refused = [&](const PrecisionSearchOptions& options, BitCostTable costs) {
    return PrecisionSearch::Create(*supernet, supernet->LargestGenotype(), RealSplits().train,
                                   RealSplits().validation, std::move(costs), options)
        .status();
  };
  PrecisionSearchOptions single_path = ArchitectureOptions(30);
  single_path.relaxation = PrecisionRelaxation::kSinglePath;
  EXPECT_THAT(refused(single_path, ArchitectureCosts(*supernet)).message(),
              HasSubstr("search_architecture"));
  // The bits-only table where one per (kernel, width) is needed.
  EXPECT_THAT(refused(ArchitectureOptions(30), Costs(*supernet)).message(), HasSubstr("costs"));
  BitCostTable short_slot = ArchitectureCosts(*supernet);
  short_slot.by_architecture[1].pop_back();
  const absl::Status status = refused(ArchitectureOptions(30), short_slot);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("slot 1"));
  BitCostTable negative = ArchitectureCosts(*supernet);
  negative.by_architecture[0][2][1][3] = -1;
  EXPECT_THAT(refused(ArchitectureOptions(30), negative).message(), HasSubstr("slot 0"));
}

}  // namespace
}  // namespace apq::oface
