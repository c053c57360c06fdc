#include "oface/search_space.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/rng.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

// Two genes a in {3, 5, 7} and b in {2, 4} with the rule "not (a == 7 and b == 4)", like
// apq_mbv2's kernel-7 / 4-bit ban; everything else is minimal.
class RuleSpace : public SearchSpace {
 public:
  RuleSpace()
      : genes_({{"a", {3, 5, 7}}, {"b", {2, 4}}}),
        groups_({{MutationKind::kResolution, {1}}, {MutationKind::kBlock, {0}}}) {}

  const std::string& name() const override { return name_; }
  const std::vector<GeneSpec>& genes() const override { return genes_; }
  const std::vector<MutationGroup>& mutation_groups() const override { return groups_; }
  bool SatisfiesRules(const Genotype& genotype) const override {
    return !(genotype[0] == 7 && genotype[1] == 4);
  }
  absl::Status CheckRules(const Genotype& genotype) const override {
    if (SatisfiesRules(genotype)) return absl::OkStatus();
    return absl::InvalidArgumentError("layer 0: a = 7 needs b != 4");
  }
  Genotype Canonical(const Genotype& genotype) const override { return genotype; }
  int feature_size() const override { return 0; }
  void ActiveFeatures(const Genotype&, std::vector<int32_t>*) const override {}
  int num_cost_terms() const override { return 0; }
  std::string CostTermKey(int) const override { return ""; }
  void CostTerms(const Genotype&, std::vector<int32_t>*) const override {}
  std::string ToJson(const Genotype&) const override { return ""; }
  absl::StatusOr<Genotype> FromJson(std::string_view) const override {
    return absl::UnimplementedError("not needed by these tests");
  }

 private:
  const std::string name_ = "rule_space";
  std::vector<GeneSpec> genes_;
  std::vector<MutationGroup> groups_;
};

TEST(SearchSpaceValidateTest, AcceptsValidGenotypes) {
  RuleSpace space;
  EXPECT_TRUE(space.Validate({3, 2}).ok());
  EXPECT_TRUE(space.Validate({7, 2}).ok());
  EXPECT_TRUE(space.Validate({5, 4}).ok());
}

TEST(SearchSpaceValidateTest, LengthMismatch) {
  RuleSpace space;
  const absl::Status status = space.Validate({3});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "genotype has 1 genes, the space has 2");
  EXPECT_EQ(space.Validate({3, 2, 2}).message(), "genotype has 3 genes, the space has 2");
  EXPECT_EQ(space.Validate({}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SearchSpaceValidateTest, ValueNotAChoiceNamesTheGene) {
  RuleSpace space;
  absl::Status status = space.Validate({4, 2});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "a: 4 is not one of {3, 5, 7}");
  status = space.Validate({3, -1});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "b: -1 is not one of {2, 4}");
}

TEST(SearchSpaceValidateTest, ChecksRulesAfterChoices) {
  RuleSpace space;
  const absl::Status status = space.Validate({7, 4});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("a = 7 needs b != 4"));
}

TEST(SearchSpaceOperatorsTest, SampleRedrawsUntilTheRulesHold) {
  RuleSpace space;
  Rng rng(1);
  int counts[3][2] = {};
  for (int i = 0; i < 20000; ++i) {
    const Genotype genotype = space.Sample(rng);
    ASSERT_TRUE(space.Validate(genotype).ok()) << genotype[0] << "," << genotype[1];
    ++counts[(genotype[0] - 3) / 2][genotype[1] / 2 - 1];
  }
  // Five allowed pairs, uniform after rejection (~4000 each).
  EXPECT_EQ(counts[2][1], 0);
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 2; ++b) {
      if (a == 2 && b == 1) continue;
      EXPECT_GT(counts[a][b], 3500) << a << "," << b;
      EXPECT_LT(counts[a][b], 4500) << a << "," << b;
    }
  }
}

TEST(SearchSpaceOperatorsTest, MutateAndCrossoverRespectTheRules) {
  RuleSpace space;
  Rng rng(2);
  for (int i = 0; i < 20000; ++i) {
    const Genotype mutant = space.Mutate({7, 2}, 1.0, 1.0, rng);
    ASSERT_TRUE(space.SatisfiesRules(mutant));
    const Genotype child = space.Crossover({7, 2}, {5, 4}, rng);
    ASSERT_TRUE(space.SatisfiesRules(child));
    ASSERT_TRUE(child[0] == 7 || child[0] == 5);
    ASSERT_TRUE(child[1] == 2 || child[1] == 4);
  }
}

TEST(SearchSpaceOperatorsTest, MutateUsesTheGroupProbabilities) {
  RuleSpace space;
  Rng rng(3);
  bool b_changed = false;
  for (int i = 0; i < 1000; ++i) {
    // Only the kResolution group (gene b) may change.
    const Genotype mutant = space.Mutate({3, 2}, 0.0, 1.0, rng);
    ASSERT_EQ(mutant[0], 3);
    b_changed |= mutant[1] != 2;
    // Only the kBlock group (gene a) may change.
    ASSERT_EQ(space.Mutate({3, 2}, 1.0, 0.0, rng)[1], 2);
  }
  EXPECT_TRUE(b_changed);
}

}  // namespace
}  // namespace apq::oface
