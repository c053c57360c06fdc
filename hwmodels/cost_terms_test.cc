#include "hwmodels/cost_terms.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table_testing.h"
#include "hwmodels/bitfusion_analytic.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "nlohmann/json.hpp"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"

namespace apq::hwmodels {
namespace {

using oface::CostSplit;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two sums of the same non-negative terms in different orders (N < 100 terms): the header's
// bound, 2 N 2^-53 relative, with room to spare; far below the 1e-9 the contract promises.
constexpr double kRelative = 1e-12;

nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

void ExpectClose(double actual, double expected, double scale, const std::string& what) {
  EXPECT_LE(std::fabs(actual - expected), kRelative * scale)
      << what << ": " << actual << " vs " << expected;
}

// The view's total of a network against Evaluate of the same network.
void ExpectSameCost(const NetworkCost& total, const NetworkCost& evaluated,
                    const std::string& what) {
  ExpectClose(total.latency_ms, evaluated.latency_ms, evaluated.latency_ms, what + " latency");
  EXPECT_EQ(total.has_energy, evaluated.has_energy) << what;
  ExpectClose(total.energy_mj, evaluated.energy_mj, evaluated.energy_mj, what + " energy");
  EXPECT_EQ(total.has_size_and_bitops, evaluated.has_size_and_bitops) << what;
  ExpectClose(total.size_mb, evaluated.size_mb, evaluated.size_mb, what + " size");
  EXPECT_EQ(total.bitops, evaluated.bitops) << what;  // Integers below 2^53.
  EXPECT_EQ(total.modelled, evaluated.modelled) << what;
}

// Changing slot s from choice `from` to `to` changes the network's Evaluate cost by the
// difference of the two choices' costs (up to the rounding of the two whole sums).
void ExpectChangeIsTheTermDifference(const NetworkCost& before, const NetworkCost& after,
                                     const NetworkCost& from, const NetworkCost& to,
                                     const std::string& what) {
  ExpectClose(after.latency_ms - before.latency_ms, to.latency_ms - from.latency_ms,
              std::max(before.latency_ms, after.latency_ms), what + " latency change");
  ExpectClose(after.energy_mj - before.energy_mj, to.energy_mj - from.energy_mj,
              std::max(before.energy_mj, after.energy_mj), what + " energy change");
  ExpectClose(after.size_mb - before.size_mb, to.size_mb - from.size_mb,
              std::max(before.size_mb, after.size_mb), what + " size change");
  EXPECT_EQ(after.bitops - before.bitops, to.bitops - from.bitops) << what;
}

struct Checked {
  int views = 0;
  int slots = 0;
  int networks = 0;  // Networks priced both ways.
  int modelled_choices = 0;
  int looked_up_choices = 0;
  NetworkCost last_total;  // The view's total of the last view's own genotype.
};

// The view of `genotype` under `split` against Evaluate: the genotype's own network, `combos`
// random networks of the view and, with `swaps`, every network one slot away from it.
void ExpectViewMatchesEvaluate(const LutCostModel& model, const oface::Genotype& genotype,
                               CostSplit split, int combos, bool swaps, oface::Rng& rng,
                               Checked* checked) {
  const oface::SearchSpace& space = model.space();
  SCOPED_TRACE(space.ToJson(genotype));
  const absl::StatusOr<CostTermView> view = DecomposeCost(model, genotype, split);
  ASSERT_TRUE(view.ok()) << view.status();
  ++checked->views;
  checked->slots += static_cast<int>(view->slots.size());
  EXPECT_EQ(view->genotype, genotype);
  const std::vector<int> selected = SelectedChoices(*view);
  ASSERT_EQ(ApplyChoices(*view, selected), genotype);
  const NetworkCost own = model.Evaluate(genotype);
  checked->last_total = TotalCost(*view, selected);
  ExpectSameCost(checked->last_total, own, "own choices");
  ++checked->networks;
  for (const PricedSlot& slot : view->slots) {
    for (const PricedChoice& choice : slot.choices) {
      (choice.cost.modelled ? checked->modelled_choices : checked->looked_up_choices) += 1;
    }
  }

  for (int k = 0; k < combos; ++k) {
    std::vector<int> choices;
    for (const PricedSlot& slot : view->slots) {
      choices.push_back(static_cast<int>(rng.Uniform(static_cast<uint32_t>(slot.choices.size()))));
    }
    const oface::Genotype network = ApplyChoices(*view, choices);
    ASSERT_TRUE(space.Validate(network).ok()) << space.Validate(network);
    ExpectSameCost(TotalCost(*view, choices), model.Evaluate(network),
                   absl::StrCat("random choices ", k));
    ++checked->networks;
  }
  if (!swaps) return;
  for (size_t s = 0; s < view->slots.size(); ++s) {
    const PricedSlot& slot = view->slots[s];
    for (size_t c = 0; c < slot.choices.size(); ++c) {
      if (static_cast<int>(c) == slot.selected) continue;
      std::vector<int> choices = selected;
      choices[s] = static_cast<int>(c);
      const oface::Genotype network = ApplyChoices(*view, choices);
      const NetworkCost changed = model.Evaluate(network);
      const std::string what = absl::StrCat(slot.name, " choice ", c);
      ExpectChangeIsTheTermDifference(own, changed, slot.choices[slot.selected].cost,
                                      slot.choices[c].cost, what);
      ExpectSameCost(TotalCost(*view, choices), changed, what);
      ++checked->networks;
    }
  }
}

// Each choice (and the fixed part) is `modelled` iff one of its terms is a key `table` lacks.
void ExpectModelledIffKeyMissing(const LutCostModel& model, const CostTable& table,
                                 const oface::Genotype& genotype, CostSplit split) {
  const oface::SearchSpace& space = model.space();
  const auto any_missing = [&](absl::Span<const int32_t> terms) {
    return std::any_of(terms.begin(), terms.end(), [&](int32_t term) {
      return !table.entries.contains(space.CostTermKey(term));
    });
  };
  const std::optional<oface::CostDecomposition> terms = space.DecomposeCosts(genotype, split);
  const absl::StatusOr<CostTermView> view = DecomposeCost(model, genotype, split);
  ASSERT_TRUE(terms.has_value());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->fixed.modelled, any_missing(terms->fixed_terms));
  ASSERT_EQ(view->slots.size(), terms->slots.size());
  for (size_t s = 0; s < view->slots.size(); ++s) {
    ASSERT_EQ(view->slots[s].choices.size(), terms->slots[s].choices.size());
    for (size_t c = 0; c < view->slots[s].choices.size(); ++c) {
      EXPECT_EQ(view->slots[s].choices[c].cost.modelled,
                any_missing(terms->slots[s].choices[c].terms))
          << view->slots[s].name << " choice " << c;
    }
  }
}

std::unique_ptr<LutCostModel> NewModel(const oface::SearchSpace& space, const CostTable& table,
                                       const TermEstimator* fallback = nullptr) {
  absl::StatusOr<std::unique_ptr<LutCostModel>> model =
      LutCostModel::Create(space, table, fallback);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

std::vector<oface::Genotype> Samples(const oface::SearchSpace& space, uint64_t seed, int count) {
  oface::Rng rng(seed);
  std::vector<oface::Genotype> genotypes;
  genotypes.reserve(count);
  for (int n = 0; n < count; ++n) genotypes.push_back(space.Sample(rng));
  return genotypes;
}

// ExpectViewMatchesEvaluate on `count` sampled genotypes of the model's space.
Checked ExpectSampledViewsMatchEvaluate(const LutCostModel& model, CostSplit split, uint64_t seed,
                                        int count, int combos, bool swaps) {
  oface::Rng rng(seed);
  Checked checked;
  for (const oface::Genotype& genotype : Samples(model.space(), seed + 1, count)) {
    ExpectViewMatchesEvaluate(model, genotype, split, combos, swaps, rng, &checked);
  }
  EXPECT_EQ(checked.views, count);
  return checked;
}

// ofa_mbv3 on the Note10 tables.

oface::Genotype OfaGenotypeOf(const nlohmann::json& arch) {
  oface::Genotype genotype;
  for (const char* field : {"ks", "e", "d"}) {
    for (const auto& value : arch.at(field)) genotype.push_back(value.get<int>());
  }
  genotype.push_back(arch.at("r").get<int>());
  return genotype;
}

class OfaNote10CostTermsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<CostTable> table = LoadOfaYamlDirectory("data/ofa_mbv3/note10_lut");
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
    model_ = NewModel(*space_, table_);
    ASSERT_NE(model_, nullptr);
  }

  const std::unique_ptr<oface::SearchSpace> space_ = oface::NewOfaMbv3Space();
  CostTable table_;
  std::unique_ptr<LutCostModel> model_;
};

TEST_F(OfaNote10CostTermsTest, EveryGoldenConfigAndTheReferenceLatency) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_ofa_mbv3_note10.json");
  ASSERT_EQ(golden.size(), 300);
  oface::Rng rng(1);
  Checked checked;
  for (const auto& entry : golden) {
    const oface::Genotype genotype = OfaGenotypeOf(entry);
    ExpectViewMatchesEvaluate(*model_, genotype, CostSplit::kBlocks, 10, true, rng, &checked);
    // The reference's own figure, too.
    const double reference = entry.at("note10_latency_ms").get<double>();
    ExpectClose(checked.last_total.latency_ms, reference, reference,
                absl::StrCat("index ", entry.at("index").get<int>()));
    EXPECT_FALSE(checked.last_total.has_energy);
    EXPECT_FALSE(checked.last_total.has_size_and_bitops);
  }
  const nlohmann::json values = LoadJson("tests/testdata/golden_values.json");
  for (const char* name :
       {"ofa_mbv3_w1.2_tutorial_note10_25ms", "ofa_mbv3_w1.2_max", "ofa_mbv3_w1.2_min"}) {
    ExpectViewMatchesEvaluate(*model_, OfaGenotypeOf(values.at(name).at("arch")),
                              CostSplit::kBlocks, 10, true, rng, &checked);
  }
  EXPECT_EQ(checked.views, 303);
  // 8 alternatives per active block (at least 10 blocks a network).
  EXPECT_GT(checked.networks, 303 * (1 + 10 + 8 * 10));
}

TEST_F(OfaNote10CostTermsTest, SampledConfigs) {
  ExpectSampledViewsMatchEvaluate(*model_, CostSplit::kBlocks, 2, 3000, 3, true);
}

TEST_F(OfaNote10CostTermsTest, BlockSlotsAndTheirLatencies) {
  const oface::Genotype genotype = Samples(*space_, 4, 1).front();
  const CostTermView view = DecomposeCost(*model_, genotype, CostSplit::kBlocks).value();
  ASSERT_FALSE(view.slots.empty());
  const PricedSlot& block0 = view.slots.front();
  EXPECT_EQ(block0.name, "block 0");
  EXPECT_EQ(block0.genes, (std::vector<int>{0, 20}));
  ASSERT_EQ(block0.choices.size(), 9);
  // Block 0 at (ks 7, e 6) is the table's entry for that block at the genotype's resolution.
  const int r = genotype[45];
  const int f = (r + 1) / 2;
  const int out = (f - 1) / 2 + 1;
  const std::string key =
      absl::StrCat(r, "/expanded_conv-input:", f, "x", f, "x24-output:", out, "x", out,
                   "x32-expand:144-kernel:7-stride:2-idskip:0-se:0-hs:0");
  ASSERT_TRUE(table_.entries.contains(key)) << key;
  EXPECT_THAT(block0.choices[8].values, ElementsAre(7, 6));
  EXPECT_EQ(block0.choices[8].cost.latency_ms, table_.entries.at(key).latency_ms);
  EXPECT_FALSE(block0.choices[8].cost.modelled);
}

TEST_F(OfaNote10CostTermsTest, NoBitwidthsToSplit) {
  const absl::StatusOr<CostTermView> view =
      DecomposeCost(*model_, Samples(*space_, 5, 1).front(), CostSplit::kBitwidths);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(view.status().message(), HasSubstr("space ofa_mbv3 has no bitwidths split"));
}

TEST_F(OfaNote10CostTermsTest, InvalidGenotypesAreRejected) {
  oface::Genotype genotype = Samples(*space_, 6, 1).front();
  genotype[3] = 4;
  const absl::StatusOr<CostTermView> view = DecomposeCost(*model_, genotype, CostSplit::kBlocks);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(view.status().message(), HasSubstr("ks[3]: 4 is not one of {3, 5, 7}"));
  genotype.pop_back();
  EXPECT_EQ(DecomposeCost(*model_, genotype, CostSplit::kBlocks).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// apq_mbv2 on APQ's BitFusion table, with energy.

class ApqBitFusionCostTermsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = NewModel(*space_, ShippedBitFusionTable());
    ASSERT_NE(model_, nullptr);
    ASSERT_TRUE(model_->has_energy());
  }

  const std::unique_ptr<oface::SearchSpace> space_ = oface::NewApqMbv2Space();
  std::unique_ptr<LutCostModel> model_;
};

TEST_F(ApqBitFusionCostTermsTest, EveryGoldenConfigAndTheReferenceFigures) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_apq_bitfusion.json");
  ASSERT_EQ(golden.size(), 300);
  oface::Rng rng(11);
  Checked bits;
  Checked blocks;
  int n = 0;
  for (const auto& entry : golden) {
    const absl::StatusOr<oface::Genotype> genotype = space_->FromJson(entry.at("arch_json").dump());
    ASSERT_TRUE(genotype.ok()) << genotype.status();
    ExpectViewMatchesEvaluate(*model_, *genotype, CostSplit::kBitwidths, 10, true, rng, &bits);
    // Every block setting of a layer is a network apart: the swaps of two configs only.
    ExpectViewMatchesEvaluate(*model_, *genotype, CostSplit::kBlocks, 10, n++ < 2, rng, &blocks);
    // The reference's own figures, too.
    for (const NetworkCost& total : {bits.last_total, blocks.last_total}) {
      const double latency = entry.at("latency_ms").get<double>();
      const double energy = entry.at("energy_mJ").get<double>();
      ExpectClose(total.latency_ms, latency, latency, "reference latency");
      ExpectClose(total.energy_mj, energy, energy, "reference energy");
      EXPECT_EQ(total.bitops, static_cast<double>(space_->StaticCosts(*genotype)->bitops));
    }
  }
  EXPECT_EQ(bits.views, 300);
  EXPECT_EQ(blocks.views, 300);
  EXPECT_EQ(bits.slots, 2 * blocks.slots);
  EXPECT_EQ(bits.modelled_choices + blocks.modelled_choices, 0);
}

// Every uniform config of golden_values.json, named
// "apq_bitfusion_uniform_ks<k>_e<e>_d<d>_w<b>a<b>".
TEST_F(ApqBitFusionCostTermsTest, UniformConfigsOfGoldenValues) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_values.json");
  oface::Rng rng(12);
  Checked checked;
  for (const auto& [name, expected] : golden.items()) {
    int ks = 0, e = 0, d = 0, w_bits = 0, a_bits = 0;
    if (std::sscanf(name.c_str(), "apq_bitfusion_uniform_ks%d_e%d_d%d_w%da%d", &ks, &e, &d, &w_bits,
                    &a_bits) != 5) {
      continue;
    }
    ASSERT_EQ(w_bits, a_bits) << name;
    const nlohmann::json arch =
        nlohmann::json::array({{{"wid", nullptr},
                                {"ks", std::vector<int>(21, ks)},
                                {"e", std::vector<int>(21, e)},
                                {"d", std::vector<int>(6, d)}},
                               {{"pw_w_bits_setting", std::vector<int>(21, w_bits)},
                                {"pw_a_bits_setting", std::vector<int>(21, w_bits)},
                                {"dw_w_bits_setting", std::vector<int>(21, w_bits)},
                                {"dw_a_bits_setting", std::vector<int>(21, w_bits)}}});
    const oface::Genotype genotype = space_->FromJson(arch.dump()).value();
    ExpectViewMatchesEvaluate(*model_, genotype, CostSplit::kBitwidths, 10, true, rng, &checked);
    // golden_values.json rounds its figures.
    const double latency = expected.at("latency_ms").get<double>();
    const double energy = expected.at("energy_mJ").get<double>();
    EXPECT_LE(std::fabs(checked.last_total.latency_ms - latency), 1e-6 * latency) << name;
    EXPECT_LE(std::fabs(checked.last_total.energy_mj - energy), 1e-6 * energy) << name;
  }
  EXPECT_EQ(checked.views, 4);
}

TEST_F(ApqBitFusionCostTermsTest, SampledConfigs) {
  ExpectSampledViewsMatchEvaluate(*model_, CostSplit::kBitwidths, 13, 3000, 3, true);
  ExpectSampledViewsMatchEvaluate(*model_, CostSplit::kBlocks, 15, 100, 20, false);
}

TEST_F(ApqBitFusionCostTermsTest, OneLayersBitChoiceChangesTheCostByItsTerms) {
  const oface::Genotype genotype = Samples(*space_, 16, 1).front();
  const CostTermView view = DecomposeCost(*model_, genotype, CostSplit::kBitwidths).value();
  // Layer 0 always runs: its pw slot is first, on genes pw_w[0] = 42 and pw_a[0] = 63.
  const PricedSlot& pw = view.slots[0];
  ASSERT_EQ(pw.name, "layer 0 pw");
  ASSERT_EQ(pw.genes, (std::vector<int>{42, 63}));
  ASSERT_EQ(pw.choices.size(), 9);
  // From W8A8 to W4A4, written into the genotype by hand rather than through the view.
  oface::Genotype eight = genotype;
  eight[42] = eight[63] = 8;
  oface::Genotype four = genotype;
  four[42] = four[63] = 4;
  const NetworkCost at_eight = model_->Evaluate(eight);
  const NetworkCost at_four = model_->Evaluate(four);
  const NetworkCost& w8a8 = pw.choices[8].cost;
  const NetworkCost& w4a4 = pw.choices[0].cost;
  EXPECT_LT(w4a4.latency_ms, w8a8.latency_ms);
  EXPECT_LT(w4a4.bitops, w8a8.bitops);
  ExpectChangeIsTheTermDifference(at_eight, at_four, w8a8, w4a4, "layer 0 pw W8A8 -> W4A4");
  // Both 1x1 convs of layer 0 (16 -> mid at 112 x 112, mid -> 24 at 56 x 56): BitOps by hand.
  const double mid = genotype[21];
  const double macs = 112 * 112 * 16 * mid + 56 * 56 * mid * 24;
  EXPECT_EQ(w8a8.bitops, macs * 64);
  EXPECT_EQ(w4a4.bitops, macs * 16);
  EXPECT_EQ(at_eight.bitops - at_four.bitops, macs * 48);
}

// fmnist_mbv2: the shipped local-cpu table, and APQ's BitFusion table with the analytic model
// for the shapes it lacks.

class FashionMnistCostTermsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    space_ = oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value().release();
    absl::StatusOr<CostTable> table =
        LoadConvTableFile("data/local_cpu/fmnist_mbv2_conv_table.json");
    ASSERT_TRUE(table.ok()) << table.status();
    local_cpu_ = new CostTable(*std::move(table));
    absl::StatusOr<std::unique_ptr<BitFusionAnalyticModel>> analytic =
        BitFusionAnalyticModel::Fit(ShippedBitFusionTable());
    ASSERT_TRUE(analytic.ok()) << analytic.status();
    analytic_ = analytic->release();
    // The measured configs shipped with the supernet, fp32 and quantized.
    const absl::StatusOr<std::vector<oface::MeasurementRecord>> records =
        oface::ReadMeasurementCsv("data/fmnist_mbv2/measurements.csv");
    ASSERT_TRUE(records.ok()) << records.status();
    configs_ = new std::vector<oface::Genotype>();
    for (const oface::MeasurementRecord& record : *records) {
      absl::StatusOr<oface::Genotype> genotype = space_->FromJson(record.config_json);
      ASSERT_TRUE(genotype.ok()) << genotype.status();
      configs_->push_back(*std::move(genotype));
    }
  }
  static void TearDownTestSuite() {
    delete configs_;
    delete analytic_;
    delete local_cpu_;
    delete space_;
  }

  void SetUp() override { ASSERT_EQ(configs_->size(), 1600); }

  // Both splits on every shipped config (swaps of blocks on the first five).
  static void ExpectEveryConfig(const LutCostModel& model, Checked* bits, Checked* blocks) {
    oface::Rng rng(21);
    for (size_t n = 0; n < configs_->size(); ++n) {
      const oface::Genotype& genotype = (*configs_)[n];
      ExpectViewMatchesEvaluate(model, genotype, CostSplit::kBitwidths, 5, true, rng, bits);
      ExpectViewMatchesEvaluate(model, genotype, CostSplit::kBlocks, 5, n < 5, rng, blocks);
    }
  }

  static oface::SearchSpace* space_;
  static CostTable* local_cpu_;
  static BitFusionAnalyticModel* analytic_;
  static std::vector<oface::Genotype>* configs_;
};

oface::SearchSpace* FashionMnistCostTermsTest::space_ = nullptr;
CostTable* FashionMnistCostTermsTest::local_cpu_ = nullptr;
BitFusionAnalyticModel* FashionMnistCostTermsTest::analytic_ = nullptr;
std::vector<oface::Genotype>* FashionMnistCostTermsTest::configs_ = nullptr;

TEST_F(FashionMnistCostTermsTest, LocalCpuTable) {
  const std::unique_ptr<LutCostModel> model = NewModel(*space_, *local_cpu_);
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(model->has_energy());
  Checked bits;
  Checked blocks;
  ExpectEveryConfig(*model, &bits, &blocks);
  EXPECT_EQ(bits.views, 1600);
  EXPECT_EQ(blocks.views, 1600);
  ExpectSampledViewsMatchEvaluate(*model, CostSplit::kBitwidths, 22, 2000, 3, true);
  EXPECT_EQ(bits.modelled_choices + blocks.modelled_choices, 0);
  // The stem and tail are five conv keys of the table.
  const CostTermView view = DecomposeCost(*model, configs_->front(), CostSplit::kBitwidths).value();
  EXPECT_GT(view.fixed.latency_ms, 0.0);
  EXPECT_TRUE(view.fixed.has_size_and_bitops);
  EXPECT_FALSE(view.fixed.modelled);
}

TEST_F(FashionMnistCostTermsTest, BitFusionWithTheAnalyticFallback) {
  const std::unique_ptr<LutCostModel> model = NewModel(*space_, ShippedBitFusionTable(), analytic_);
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(model->has_energy());
  ASSERT_GT(model->modelled_terms(), 0);
  Checked bits;
  Checked blocks;
  ExpectEveryConfig(*model, &bits, &blocks);
  EXPECT_GT(bits.modelled_choices, 0);
  ExpectSampledViewsMatchEvaluate(*model, CostSplit::kBitwidths, 23, 2000, 3, true);
  for (const oface::Genotype& genotype : *configs_) {
    ExpectModelledIffKeyMissing(*model, ShippedBitFusionTable(), genotype, CostSplit::kBitwidths);
  }
  for (size_t n = 0; n < 50; ++n) {
    ExpectModelledIffKeyMissing(*model, ShippedBitFusionTable(), (*configs_)[n],
                                CostSplit::kBlocks);
  }
}

// The local-cpu table's W4A4 entries priced by the analytic model instead: networks, slots and
// choices mix looked-up and modelled terms (the stem and tail, at 8 bits, are looked up), each
// part says which it is, and a network is modelled iff one of its choices is.
TEST_F(FashionMnistCostTermsTest, PartlyModelledTable) {
  CostTable table = *local_cpu_;
  std::vector<std::string> w4a4;
  for (const auto& [key, entry] : table.entries) {
    if (absl::EndsWith(key, "-W4A4")) w4a4.push_back(key);
  }
  ASSERT_FALSE(w4a4.empty());
  for (const std::string& key : w4a4) table.entries.erase(key);
  const std::unique_ptr<LutCostModel> model = NewModel(*space_, table, analytic_);
  ASSERT_NE(model, nullptr);
  oface::Rng rng(31);
  Checked checked;
  int modelled_networks = 0;
  for (const oface::Genotype& genotype : *configs_) {
    ExpectViewMatchesEvaluate(*model, genotype, CostSplit::kBitwidths, 5, true, rng, &checked);
    ExpectModelledIffKeyMissing(*model, table, genotype, CostSplit::kBitwidths);
    modelled_networks += model->Evaluate(genotype).modelled;
  }
  EXPECT_FALSE(DecomposeCost(*model, configs_->front(), CostSplit::kBitwidths)->fixed.modelled);
  for (size_t n = 0; n < 20; ++n) {
    ExpectViewMatchesEvaluate(*model, (*configs_)[n], CostSplit::kBlocks, 20, false, rng, &checked);
    ExpectModelledIffKeyMissing(*model, table, (*configs_)[n], CostSplit::kBlocks);
  }
  EXPECT_GT(checked.modelled_choices, 1000);
  EXPECT_GT(checked.looked_up_choices, 1000);
  EXPECT_GT(modelled_networks, 0);
  EXPECT_LT(modelled_networks, static_cast<int>(configs_->size()));
}

// fmnist_int8float on local-cpu's int8/float table: each layer W8A8 or float, and the table
// prices the change of precision where an int8 and a float layer meet, which two slots decide
// together (a coupling).
class Int8FloatCostTermsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    space_ = oface::NewMbConvQuantSpace(oface::FashionMnistInt8FloatSpec()).value();
    absl::StatusOr<CostTable> table =
        LoadConvTableFile("data/local_cpu/fmnist_mbv2_int8_float_table.json");
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
    model_ = NewModel(*space_, table_);
    ASSERT_NE(model_, nullptr);
  }

  // A sample with each layer's activation bits set to its weight bits (W8A8 or float, what
  // the device runs).
  std::vector<oface::Genotype> PairedSamples(uint64_t seed, int count) const {
    std::vector<oface::Genotype> genotypes = Samples(*space_, seed, count);
    const std::vector<oface::GeneSpec>& genes = space_->genes();
    for (oface::Genotype& genotype : genotypes) {
      for (size_t g = 0; g < genes.size(); ++g) {
        for (const char* layer : {"pw", "dw"}) {
          const std::string weight = absl::StrCat(layer, "_w_bits_setting[");
          if (genes[g].name.rfind(weight, 0) != 0) continue;
          const std::string activation =
              absl::StrCat(layer, "_a_bits_setting[", genes[g].name.substr(weight.size()));
          for (size_t a = 0; a < genes.size(); ++a) {
            if (genes[a].name == activation) genotype[a] = genotype[g];
          }
        }
      }
    }
    return genotypes;
  }

  double Entry(const std::string& key) const {
    const auto found = table_.entries.find(key);
    EXPECT_NE(found, table_.entries.end()) << key;
    return found == table_.entries.end() ? 0.0 : found->second.latency_ms;
  }

  std::unique_ptr<oface::SearchSpace> space_;
  CostTable table_;
  std::unique_ptr<LutCostModel> model_;
};

TEST_F(Int8FloatCostTermsTest, ViewsWithCouplingsMatchEvaluate) {
  oface::Rng rng(51);
  Checked bits;
  Checked blocks;
  const std::vector<oface::Genotype> genotypes = PairedSamples(52, 200);
  int with_changes = 0;
  for (size_t n = 0; n < genotypes.size(); ++n) {
    ExpectViewMatchesEvaluate(*model_, genotypes[n], CostSplit::kBitwidths, 20, false, rng, &bits);
    if (n < 10) {
      ExpectViewMatchesEvaluate(*model_, genotypes[n], CostSplit::kBlocks, 20, false, rng, &blocks);
    }
    const CostTermView view = DecomposeCost(*model_, genotypes[n], CostSplit::kBitwidths).value();
    EXPECT_EQ(view.couplings.size(), view.slots.size() - 1);
    for (const PricedCoupling& coupling : view.couplings) {
      // Only int8 with float: the device runs no mixed pair, so two cases per coupling.
      EXPECT_EQ(coupling.cases.size(), 2);
      for (const PricedCouplingCase& one : coupling.cases) EXPECT_GT(one.cost.latency_ms, 0.0);
    }
    const NetworkCost bound = TotalCost(SeparableUpperBound(view), SelectedChoices(view));
    const NetworkCost exact = TotalCost(view, SelectedChoices(view));
    EXPECT_GE(bound.latency_ms, exact.latency_ms);
    EXPECT_EQ(bound.size_mb, exact.size_mb);
    EXPECT_EQ(bound.bitops, exact.bitops);
    CostTermView uncoupled = view;
    uncoupled.couplings.clear();
    with_changes +=
        exact.latency_ms > TotalCost(uncoupled, SelectedChoices(view)).latency_ms + 1e-9;
  }
  EXPECT_EQ(bits.views, 200);
  EXPECT_GT(bits.networks, 200 * 20);
  EXPECT_EQ(blocks.views, 10);
  // Random int8/float layers: nearly every network changes precision between some two.
  EXPECT_GT(with_changes, 190);
}

// Every network of a view costs no more exactly than its separable bound; the bound is exact
// where no coupling has a case (a space without a float choice).
TEST_F(Int8FloatCostTermsTest, SeparableUpperBoundBoundsEveryNetwork) {
  oface::Rng rng(53);
  int strictly_above = 0;
  for (const oface::Genotype& genotype : PairedSamples(54, 50)) {
    const CostTermView view = DecomposeCost(*model_, genotype, CostSplit::kBitwidths).value();
    const CostTermView bound = SeparableUpperBound(view);
    EXPECT_TRUE(bound.couplings.empty());
    ASSERT_EQ(bound.slots.size(), view.slots.size());
    for (int k = 0; k < 50; ++k) {
      std::vector<int> choices;
      for (const PricedSlot& slot : view.slots) {
        choices.push_back(
            static_cast<int>(rng.Uniform(static_cast<uint32_t>(slot.choices.size()))));
      }
      const NetworkCost exact = TotalCost(view, choices);
      const NetworkCost bounded = TotalCost(bound, choices);
      EXPECT_GE(bounded.latency_ms, exact.latency_ms - 1e-12);
      strictly_above += bounded.latency_ms > exact.latency_ms + 1e-9;
      ExpectSameCost(exact, model_->Evaluate(ApplyChoices(view, choices)), "random choices");
    }
  }
  EXPECT_GT(strictly_above, 0);

  const std::unique_ptr<oface::SearchSpace> mbv2 =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
  const std::unique_ptr<LutCostModel> int8_only = NewModel(*mbv2, table_);
  ASSERT_NE(int8_only, nullptr);
  oface::Genotype all_int8;
  for (const oface::GeneSpec& gene : mbv2->genes()) {
    all_int8.push_back(gene.name.find("bits") != std::string::npos ? 8 : gene.choices.front());
  }
  all_int8 = mbv2->Canonical(all_int8);
  const CostTermView plain = DecomposeCost(*int8_only, all_int8, CostSplit::kBitwidths).value();
  EXPECT_TRUE(plain.couplings.empty());
  const CostTermView same = SeparableUpperBound(plain);
  for (size_t s = 0; s < plain.slots.size(); ++s) {
    for (size_t c = 0; c < plain.slots[s].choices.size(); ++c) {
      EXPECT_EQ(same.slots[s].choices[c].cost.latency_ms,
                plain.slots[s].choices[c].cost.latency_ms);
    }
  }
}

// An all-float network pays its conv entries and the changes where the int8 stem and tail meet
// it: the first block's output and residual input (16 channels at 14x14) dequantized, the last
// block's (48 at 4x4, a residual block at depth 2) quantized.
TEST_F(Int8FloatCostTermsTest, AllFloatNetworkPaysTheChangesAtTheStemAndTail) {
  oface::Genotype all_float;
  oface::Genotype all_int8;
  for (const oface::GeneSpec& gene : space_->genes()) {
    const bool is_bits = gene.name.find("bits") != std::string::npos;
    all_float.push_back(is_bits ? 32 : gene.choices.front());
    all_int8.push_back(is_bits ? 8 : gene.choices.front());
  }
  std::vector<int32_t> terms;
  space_->CostTerms(all_float, &terms);
  double convs = 0.0;
  for (const int32_t term : terms) {
    const std::string key = space_->CostTermKey(term);
    if (key.find("quantize") == std::string::npos) convs += Entry(key);
  }
  const double changes = 2 * Entry("(16, 14)-dequantize") + 2 * Entry("(48, 4)-quantize");
  EXPECT_GT(changes, 0.0);
  EXPECT_NEAR(model_->Evaluate(all_float).latency_ms, convs + changes, 1e-12);
  // All int8: no change at all.
  terms.clear();
  space_->CostTerms(all_int8, &terms);
  double int8_convs = 0.0;
  for (const int32_t term : terms) int8_convs += Entry(space_->CostTermKey(term));
  EXPECT_NEAR(model_->Evaluate(all_int8).latency_ms, int8_convs, 1e-12);
}

}  // namespace
}  // namespace apq::hwmodels
