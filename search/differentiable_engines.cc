#include "search/differentiable_engines.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "oface/precision_search.h"
#include "oface/supernet.h"
#include "search/bit_allocation.h"
#include "search/budget_repair.h"
#include "search/budgets.h"

namespace apq::search {
namespace {

int Reports(const EngineOptions& options) {
  const int64_t steps = IntOption(options, "steps");
  const int64_t every = IntOption(options, "report_every");
  return static_cast<int>((steps + every - 1) / every);
}

double MetricOf(const hwmodels::NetworkCost& cost, const std::string& metric) {
  if (metric == "latency") return cost.latency_ms;
  if (metric == "energy") return cost.energy_mj;
  if (metric == "size") return cost.size_mb;
  return cost.bitops;
}

// The metric of the `cost` option: itself, or for "budget" the metric of the job's budget
// (the first set of latency, energy, size and BitOps; BitOps when none is).
std::string CostMetricOf(const SearchProblem& problem, const EngineOptions& options) {
  const std::string& chosen = ChoiceOption(options, "cost");
  if (chosen != "budget") return chosen;
  const Budgets& budgets = problem.budgets;
  if (budgets.max_latency_ms) return "latency";
  if (budgets.max_energy_mj) return "energy";
  if (budgets.max_size_mb) return "size";
  return "bitops";
}

// The job's budget in `metric`, when it has one.
std::optional<double> BudgetIn(const Budgets& budgets, const std::string& metric) {
  if (metric == "latency") return budgets.max_latency_ms;
  if (metric == "energy") return budgets.max_energy_mj;
  if (metric == "size") return budgets.max_size_mb;
  return budgets.max_bitops;
}

// "pw_a_bits_setting[3]" -> layer 3, pointwise, activation.
struct BitsGene {
  int layer = -1;
  int kind = -1;  // 0: pointwise, 1: depthwise.
  bool activation = false;
};

BitsGene ParseBitsGene(const std::string& name) {
  BitsGene parsed;
  const struct {
    const char* prefix;
    int kind;
    bool activation;
  } forms[] = {{"pw_w_bits_setting[", 0, false},
               {"pw_a_bits_setting[", 0, true},
               {"dw_w_bits_setting[", 1, false},
               {"dw_a_bits_setting[", 1, true}};
  for (const auto& form : forms) {
    if (!absl::StartsWith(name, form.prefix) || !absl::EndsWith(name, "]")) continue;
    const absl::string_view digits = absl::string_view(name).substr(
        std::string(form.prefix).size(), name.size() - std::string(form.prefix).size() - 1);
    if (absl::SimpleAtoi(digits, &parsed.layer)) {
      parsed.kind = form.kind;
      parsed.activation = form.activation;
    }
  }
  return parsed;
}

// The per-term costs of a kBitwidths `view` (every setting) in `metric` as the search's table.
// A setting the space's rules exclude costs the slot's dearest one, so the search shuns it.
absl::StatusOr<oface::BitCostTable> CostTable(const SearchProblem& problem,
                                              const hwmodels::CostTermView& view,
                                              const std::vector<int>& bit_choices, int layers,
                                              const std::string& metric) {
  oface::BitCostTable table;
  table.fixed = MetricOf(view.fixed, metric);
  table.slots.resize(layers);
  const int n = static_cast<int>(bit_choices.size());
  for (size_t s = 0; s < view.slots.size(); ++s) {
    const hwmodels::PricedSlot& slot = view.slots[s];
    if (slot.genes.size() != 2) {
      return absl::FailedPreconditionError(
          absl::StrCat("fixed_architecture: slot ", slot.name,
                       " is not one layer's weight and activation bits"));
    }
    const BitsGene first = ParseBitsGene(problem.space->genes()[slot.genes[0]].name);
    const BitsGene second = ParseBitsGene(problem.space->genes()[slot.genes[1]].name);
    if (first.layer < 0 || first.layer >= layers || first.layer != second.layer ||
        first.kind != second.kind || first.activation == second.activation) {
      return absl::FailedPreconditionError(
          absl::StrCat("fixed_architecture: slot ", slot.name,
                       " is not one layer's weight and activation bits"));
    }
    const int weight_index = first.activation ? 1 : 0;
    std::vector<double> costs(static_cast<size_t>(n * n), -1.0);
    double dearest = 0.0;
    for (const hwmodels::PricedChoice& choice : slot.choices) {
      const auto w = std::find(bit_choices.begin(), bit_choices.end(), choice.values[weight_index]);
      const auto a =
          std::find(bit_choices.begin(), bit_choices.end(), choice.values[1 - weight_index]);
      if (w == bit_choices.end() || a == bit_choices.end()) {
        return absl::FailedPreconditionError(absl::StrCat("fixed_architecture: slot ", slot.name,
                                                          " has a width the supernet lacks"));
      }
      const double cost = MetricOf(choice.cost, metric);
      costs[(w - bit_choices.begin()) * n + (a - bit_choices.begin())] = cost;
      dearest = std::max(dearest, cost);
    }
    for (double& cost : costs) {
      if (cost < 0) cost = dearest;
    }
    table.slots[first.layer][first.kind] = std::move(costs);
  }
  return table;
}

// Every gene at its first choice (`largest` false: the smallest kernel, width, depth and
// bitwidth) or its last, canonical.
oface::Genotype ExtremeGenotype(const oface::SearchSpace& space, bool largest) {
  oface::Genotype genotype(space.genes().size());
  for (size_t g = 0; g < space.genes().size(); ++g) {
    const std::vector<int>& choices = space.genes()[g].choices;
    genotype[g] = largest ? choices.back() : choices.front();
  }
  return space.Canonical(genotype);
}

// The genes named `prefix`0], `prefix`1], ... while they exist.
std::vector<int> NumberedGenes(const oface::SearchSpace& space, const std::string& prefix) {
  std::vector<int> genes;
  for (int i = 0;; ++i) {
    const std::string name = absl::StrCat(prefix, i, "]");
    int found = -1;
    for (size_t g = 0; g < space.genes().size(); ++g) {
      if (space.genes()[g].name == name) found = static_cast<int>(g);
    }
    if (found < 0) return genes;
    genes.push_back(found);
  }
}

// The architecture search's table: per slot, per (kernel, width) setting, the slot's bit
// tables at that setting, from kBitwidths views of the deepest network with every slot at
// that setting (a slot's terms depend on its own genes only: hwmodels/cost_terms.h).
absl::StatusOr<oface::BitCostTable> ArchitectureCostTable(const SearchProblem& problem,
                                                          const std::vector<int>& bit_choices,
                                                          const std::string& metric) {
  const oface::SearchSpace& space = *problem.space;
  const std::vector<int> kernel_genes = NumberedGenes(space, "ks[");
  const std::vector<int> mid_genes = NumberedGenes(space, "mid[");
  const int layers = static_cast<int>(kernel_genes.size());
  if (layers == 0 || mid_genes.size() != kernel_genes.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine.options.architecture: space ", space.name(), " has no kernel and width genes"));
  }
  size_t most_kernels = 0;
  size_t most_mids = 0;
  for (int s = 0; s < layers; ++s) {
    most_kernels = std::max(most_kernels, space.genes()[kernel_genes[s]].choices.size());
    most_mids = std::max(most_mids, space.genes()[mid_genes[s]].choices.size());
  }
  oface::BitCostTable table;
  table.by_architecture.resize(layers);
  for (int s = 0; s < layers; ++s) {
    table.by_architecture[s].resize(space.genes()[kernel_genes[s]].choices.size() *
                                    space.genes()[mid_genes[s]].choices.size());
  }
  const oface::Genotype deepest = ExtremeGenotype(space, /*largest=*/true);
  for (size_t k = 0; k < most_kernels; ++k) {
    for (size_t m = 0; m < most_mids; ++m) {
      oface::Genotype genotype = deepest;
      for (int s = 0; s < layers; ++s) {
        const std::vector<int>& kernels = space.genes()[kernel_genes[s]].choices;
        const std::vector<int>& mids = space.genes()[mid_genes[s]].choices;
        genotype[kernel_genes[s]] = kernels[std::min(k, kernels.size() - 1)];
        genotype[mid_genes[s]] = mids[std::min(m, mids.size() - 1)];
      }
      ASSIGN_OR_RETURN(hwmodels::CostTermView exact,
                       hwmodels::DecomposeCost(*problem.cost_model, space.Canonical(genotype),
                                               oface::CostSplit::kBitwidths));
      // Per-slot costs: changes of precision between layers charged at their worst.
      const hwmodels::CostTermView view = hwmodels::SeparableUpperBound(std::move(exact));
      ASSIGN_OR_RETURN(oface::BitCostTable at,
                       CostTable(problem, view, bit_choices, layers, metric));
      table.fixed = at.fixed;
      for (int s = 0; s < layers; ++s) {
        const size_t kernels = space.genes()[kernel_genes[s]].choices.size();
        const size_t mids = space.genes()[mid_genes[s]].choices.size();
        if (k >= kernels || m >= mids) continue;
        if (at.slots[s][0].empty() || at.slots[s][1].empty()) {
          return absl::InternalError(
              absl::StrCat("architecture costs: slot ", s, " does not run in the deepest network"));
        }
        table.by_architecture[s][k * mids + m] = std::move(at.slots[s]);
      }
    }
  }
  return table;
}

// A network of the whole space repaired to the budgets over its blocks' settings at its
// depths (search/budget_repair; the preference of a setting: its genes' log-probabilities).
// When even the cheapest settings at those depths miss a budget, every stage first goes to
// its shallowest depth (`depths_lowered`).
struct BlockRepair {
  RepairResult result;
  oface::Genotype genotype;
  bool depths_lowered = false;
};

absl::StatusOr<BlockRepair> RepairBlocks(
    const SearchProblem& problem, oface::Genotype drawn,
    const std::function<double(int gene, int value)>& log_probability) {
  const oface::SearchSpace& space = *problem.space;
  for (int attempt = 0;; ++attempt) {
    BitAllocation blocks;
    ASSIGN_OR_RETURN(
        hwmodels::CostTermView view,
        hwmodels::DecomposeCost(*problem.cost_model, drawn, oface::CostSplit::kBlocks));
    // Repaired block by block: changes of precision between blocks charged at their worst.
    blocks.view = hwmodels::SeparableUpperBound(std::move(view));
    RepairProblem repair;
    for (const hwmodels::PricedSlot& slot : blocks.view.slots) {
      std::vector<int> every(slot.choices.size());
      for (size_t c = 0; c < every.size(); ++c) every[c] = static_cast<int>(c);
      blocks.kept.push_back(std::move(every));
      for (const hwmodels::PricedChoice& choice : slot.choices) {
        double preference = 0.0;
        for (size_t g = 0; g < slot.genes.size(); ++g) {
          preference += log_probability(slot.genes[g], choice.values[g]);
        }
        repair.preference.push_back(preference);
      }
    }
    repair.choices_per_slot = blocks.choices_per_slot();
    repair.budgets = AllocationBudgets(problem, blocks);
    absl::StatusOr<RepairResult> repaired =
        RepairToBudgets(repair, hwmodels::SelectedChoices(blocks.view));
    if (repaired.ok()) {
      BlockRepair out;
      out.genotype = space.Canonical(hwmodels::ApplyChoices(blocks.view, repaired->choice));
      out.result = *std::move(repaired);
      out.depths_lowered = attempt > 0;
      out.result.repaired = out.result.repaired || out.depths_lowered;
      return out;
    }
    if (!absl::IsFailedPrecondition(repaired.status()) || attempt > 0) return repaired.status();
    for (const int gene : NumberedGenes(space, "d["))
      drawn[gene] = space.genes()[gene].choices.front();
    drawn = space.Canonical(drawn);
  }
}

// A policy of the fixed architecture repaired to the budgets over its kept bit settings (the
// preference of a setting: its genes' log-probabilities). A setting the space's rules exclude
// (the search priced it dearest but may still favour it) becomes the slot's likeliest kept one.
absl::StatusOr<BlockRepair> RepairBits(
    const SearchProblem& problem, const BitAllocation& allocation, const oface::Genotype& drawn,
    const std::function<double(int gene, int value)>& log_probability) {
  RepairProblem repair;
  repair.choices_per_slot = allocation.choices_per_slot();
  repair.budgets = AllocationBudgets(problem, allocation);
  std::vector<int> policy(allocation.view.slots.size(), -1);
  for (size_t s = 0; s < allocation.view.slots.size(); ++s) {
    const hwmodels::PricedSlot& slot = allocation.view.slots[s];
    const size_t offset = repair.preference.size();
    int likeliest = 0;
    for (size_t k = 0; k < allocation.kept[s].size(); ++k) {
      const hwmodels::PricedChoice& choice = slot.choices[allocation.kept[s][k]];
      double preference = 0.0;
      bool same = true;
      for (size_t g = 0; g < slot.genes.size(); ++g) {
        preference += log_probability(slot.genes[g], choice.values[g]);
        same = same && drawn[slot.genes[g]] == choice.values[g];
      }
      repair.preference.push_back(preference);
      if (same) policy[s] = static_cast<int>(k);
      if (preference > repair.preference[offset + likeliest]) likeliest = static_cast<int>(k);
    }
    if (policy[s] < 0) policy[s] = likeliest;
  }
  BlockRepair out;
  ASSIGN_OR_RETURN(out.result, RepairToBudgets(repair, policy));
  out.genotype = allocation.Network(out.result.choice);
  return out;
}

// What tells the two engines apart.
struct Method {
  const char* name;
  const char* result_kind;
  const char* checkpoint_tag;
  const char* description;
  oface::PrecisionRelaxation relaxation;
};

constexpr Method kDnas{
    kDnasEngineName, kDnasResultKind, "dnas1",
    "differentiable bit search of one architecture (fixed_architecture) as DNAS: "
    "Gumbel-softmax over every layer's weight and activation widths on the supernet, the "
    "expected cost in the loss; the most likely policy and sampled ones, each repaired with the "
    "fewest changes when it misses a budget",
    oface::PrecisionRelaxation::kMixture};

constexpr Method kSsps{
    kSspsEngineName, kSspsResultKind, "ssps1",
    "single-path bit search of one architecture (fixed_architecture) as SSPS: each step "
    "quantizes every layer at one sampled width (straight-through), the expected cost in the "
    "loss, and the most certain layer is fixed at intervals until all are; the result "
    "repaired with the fewest changes when it misses a budget",
    oface::PrecisionRelaxation::kSinglePath};

constexpr const char* kCertainties[] = {"max_probability", "margin", "entropy"};

oface::FixingCertainty CertaintyOf(const std::string& name) {
  if (name == "margin") return oface::FixingCertainty::kMargin;
  if (name == "entropy") return oface::FixingCertainty::kNegativeEntropy;
  return oface::FixingCertainty::kMaxProbability;
}

// The search's figures after a step, for the job's progress.
std::vector<std::pair<std::string, double>> SearchMetrics(const oface::PrecisionSearch& search,
                                                          bool fixing) {
  std::vector<std::pair<std::string, double>> metrics = {{"weight_loss", search.last_weight_loss()},
                                                         {"arch_loss", search.last_arch_loss()},
                                                         {"expected_cost", search.ExpectedCost()},
                                                         {"mean_entropy", search.MeanEntropy()},
                                                         {"temperature", search.temperature()}};
  if (fixing) {
    metrics.emplace_back("layers_fixed", static_cast<double>(search.FixedLayers().size()));
    metrics.emplace_back("layers", static_cast<double>(search.layers()));
  }
  for (auto& metric : metrics) {
    if (!std::isfinite(metric.second)) metric.second = 0.0;
  }
  return metrics;
}

// The cost of the cheapest policy under `table`: every used layer at its cheapest setting.
double CheapestCost(const oface::BitCostTable& table) {
  double total = table.fixed;
  for (const auto& slot : table.slots) {
    for (const std::vector<double>& settings : slot) {
      if (!settings.empty()) total += *std::min_element(settings.begin(), settings.end());
    }
  }
  return total;
}

class DifferentiableEngine final : public Engine {
 public:
  explicit DifferentiableEngine(const Method& method) : method_(method), specs_(Specs(method)) {}

  std::string name() const override { return method_.name; }
  std::string description() const override { return method_.description; }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }
  int TotalSteps(const EngineOptions& options) const override { return Reports(options); }
  std::optional<int64_t> PlannedCandidates(const EngineOptions& options) const override {
    return Reports(options) + 1 + IntOption(options, "samples");
  }

  absl::Status ValidateOptions(const EngineOptions& options,
                               absl::string_view field_prefix) const override {
    const int64_t steps = IntOption(options, "steps");
    for (const char* bounded : {"report_every", "warmup_steps"}) {
      if (IntOption(options, bounded) > steps) {
        return absl::InvalidArgumentError(
            absl::StrCat(field_prefix, bounded, ": at most steps (", steps, ")"));
      }
    }
    if (is_ssps() && IntOption(options, "fix_every") > steps) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_prefix, "fix_every: at most steps (", steps, ")"));
    }
    if (DoubleOption(options, "temperature_end") > DoubleOption(options, "temperature_start")) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "temperature_end: at most temperature_start (the temperature anneals)"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckProblem(const SearchProblem& problem,
                            const EngineOptions& options) const override {
    RETURN_IF_ERROR(CheckOneNetworkWithSupernet(problem, problem.subnet_training != nullptr,
                                                method_.name, "searches"));
    if (SearchesArchitecture(options)) return CheckWholeSpaceProblem(problem, options);
    ASSIGN_OR_RETURN(const BitAllocation allocation,
                     BuildBitAllocation(problem, "searched", method_.name));
    const std::string metric = CostMetricOf(problem, options);
    if ((metric == "energy" && !allocation.view.fixed.has_energy) ||
        ((metric == "size" || metric == "bitops") && !allocation.view.fixed.has_size_and_bitops)) {
      return absl::FailedPreconditionError(
          absl::StrCat("engine.options.cost: the job's device or space does not price ", metric));
    }
    return CheckCheapestPolicyFits(allocation, AllocationBudgets(problem, allocation));
  }

  absl::StatusOr<EngineResult> Run(const SearchProblem& problem, const EngineOptions& options,
                                   uint64_t seed, const StepCallback& on_step,
                                   const CancelCheck& cancelled,
                                   absl::string_view resume_checkpoint) const override {
    RETURN_IF_ERROR(CheckProblem(problem, options));
    const bool architecture = SearchesArchitecture(options);
    // Bits only: the allocation problem of the fixed architecture (its slots, the kept
    // settings, the budgets' rows), which the repair works on too.
    std::optional<BitAllocation> allocation;
    if (!architecture) {
      ASSIGN_OR_RETURN(allocation, BuildBitAllocation(problem, "searched", method_.name));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<SubnetTrainingSession> session,
                     problem.subnet_training->Open());
    oface::Supernet& supernet = session->supernet();
    const std::string metric = CostMetricOf(problem, options);
    int layers = 0;
    for (const oface::GeneSpec& gene : problem.space->genes()) {
      layers = std::max(layers, ParseBitsGene(gene.name).layer + 1);
    }
    oface::BitCostTable table;
    double cheapest = 0.0;
    if (architecture) {
      ASSIGN_OR_RETURN(table, ArchitectureCostTable(problem, supernet.spec().bit_choices, metric));
      cheapest = MetricOf(
          problem.cost_model->Evaluate(ExtremeGenotype(*problem.space, /*largest=*/false)), metric);
    } else {
      ASSIGN_OR_RETURN(
          table, CostTable(problem, allocation->view, supernet.spec().bit_choices, layers, metric));
      cheapest = CheapestCost(table);
    }
    oface::PrecisionSearchOptions search_options = SearchOptions(problem, options, seed, cancelled);
    // Costs in units of the cheapest network's over e: the logarithm runs from 1 (the
    // cheapest) up, whatever the metric's units (a latency below 1 ms would make it negative).
    search_options.cost_scale = cheapest / std::exp(1.0);
    if (!(search_options.cost_scale > 0) || !std::isfinite(search_options.cost_scale)) {
      return absl::FailedPreconditionError(
          absl::StrCat("engine.options.cost: the cheapest policy costs nothing in ", metric));
    }
    ASSIGN_OR_RETURN(
        std::unique_ptr<oface::PrecisionSearch> search,
        oface::PrecisionSearch::Create(
            supernet,
            architecture ? ExtremeGenotype(*problem.space, /*largest=*/true)
                         : allocation->Network(allocation->reference),
            session->train(), session->validation(), std::move(table), search_options));
    const int reports = Reports(options);
    const int64_t every = IntOption(options, "report_every");
    EngineResult result;
    int report = 0;
    if (!resume_checkpoint.empty()) {
      const std::string tag = absl::StrCat(method_.checkpoint_tag, "\n");
      if (!absl::StartsWith(resume_checkpoint, tag)) {
        return absl::DataLossError(
            absl::StrCat(method_.name, " checkpoint: not one of this engine's"));
      }
      RETURN_IF_ERROR(search->RestoreState(resume_checkpoint.substr(tag.size())));
      report = static_cast<int>((search->steps_done() + every - 1) / every);
      result.last_step = report - 1;
    }
    std::optional<Individual> best;
    const auto write_checkpoint = [&] {
      absl::StatusOr<std::string> state = search->SaveState();
      return state.ok() ? absl::StrCat(method_.checkpoint_tag, "\n", *state)
                        : std::string("broken");
    };
    for (; report < reports; ++report) {
      const absl::Status trained =
          search->Train(std::min<int64_t>(IntOption(options, "steps"), (report + 1) * every) -
                        search->steps_done());
      if (absl::IsCancelled(trained)) {
        result.cancelled = true;
        return result;
      }
      RETURN_IF_ERROR(trained);
      Individual policy;
      policy.genotype = problem.space->Canonical(search->MostLikely());
      policy.cost = problem.cost_model->Evaluate(policy.genotype);
      policy.generation = report;
      const bool feasible = MeetsBudgets(policy.cost, problem.budgets);
      if (feasible) {
        ASSIGN_OR_RETURN(policy, PriceAndScore(problem, policy.genotype, report, method_.name));
        best = policy;
      }
      if (on_step) {
        StepReport step;
        step.step = report;
        if (feasible) {
          step.scored = absl::MakeConstSpan(&policy, 1);
          step.best_index_in_step = 0;
        } else {
          step.rejected = absl::MakeConstSpan(&policy, 1);
          step.rejected_total = 1;
        }
        step.candidates_evaluated = report + 1;
        step.best = best.has_value() ? &*best : nullptr;
        step.write_checkpoint = write_checkpoint;
        step.metrics = SearchMetrics(*search, is_ssps());
        RETURN_IF_ERROR(on_step(step));
      }
      result.last_step = report;
    }

    // The result: the most likely policy, then the sampled ones, each repaired when it misses
    // a budget. The repair's preference of a setting: the log-probability of its genes' values
    // under the final distributions (computed once per gene and value).
    std::vector<std::vector<double>> log_probabilities(problem.space->genes().size());
    for (size_t g = 0; g < problem.space->genes().size(); ++g) {
      for (const int value : problem.space->genes()[g].choices) {
        log_probabilities[g].push_back(
            std::log(std::max(1e-300, search->Probability(static_cast<int>(g), value))));
      }
    }
    const auto log_probability = [&](int gene, int value) {
      const std::vector<int>& choices = problem.space->genes()[gene].choices;
      const auto at = std::find(choices.begin(), choices.end(), value);
      return at == choices.end() ? std::log(1e-300) : log_probabilities[gene][at - choices.begin()];
    };
    const auto repair_drawn = [&](const oface::Genotype& drawn) -> absl::StatusOr<BlockRepair> {
      if (architecture) return RepairBlocks(problem, drawn, log_probability);
      return RepairBits(problem, *allocation, drawn, log_probability);
    };
    const oface::Genotype most_likely = problem.space->Canonical(search->MostLikely());
    std::vector<oface::Genotype> drawn = {most_likely};
    const int64_t samples = IntOption(options, "samples");
    for (int64_t k = 0; k < samples; ++k) {
      // Seeds of their own: the search's generator is untouched, so a resumed job draws alike.
      drawn.push_back(problem.space->Canonical(
          search->SamplePolicy(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(k) + 1)));
    }
    std::vector<Individual> finals;
    std::string samples_json;
    int repaired_count = 0;
    RepairResult most_likely_repair;
    bool most_likely_depths_lowered = false;
    for (size_t d = 0; d < drawn.size(); ++d) {
      ASSIGN_OR_RETURN(const BlockRepair drawn_repair, repair_drawn(drawn[d]));
      const RepairResult& repaired = drawn_repair.result;
      if (d == 0) {
        most_likely_repair = repaired;
        most_likely_depths_lowered = drawn_repair.depths_lowered;
      }
      repaired_count += repaired.repaired ? 1 : 0;
      const oface::Genotype& genotype = drawn_repair.genotype;
      if (d > 0) {
        absl::StrAppendFormat(&samples_json,
                              "%s{\"repaired\":%s,\"changed_slots\":%d,\"config\":%s}",
                              samples_json.empty() ? "" : ",", repaired.repaired ? "true" : "false",
                              repaired.changed_slots, problem.space->ToJson(genotype));
      }
      // The same network twice is one candidate (seen again).
      const bool seen = std::any_of(finals.begin(), finals.end(),
                                    [&](const Individual& f) { return f.genotype == genotype; });
      if (seen) continue;
      ASSIGN_OR_RETURN(Individual scored, PriceAndScore(problem, genotype, reports, method_.name));
      finals.push_back(std::move(scored));
    }
    if (problem.artifacts != nullptr) {
      std::string fixed_json;
      for (const auto& [slot, kind] : search->FixedLayers()) {
        absl::StrAppendFormat(&fixed_json, "%s{\"layer\":%d,\"convolutions\":\"%s\"}",
                              fixed_json.empty() ? "" : ",", slot,
                              kind == 0 ? "pointwise" : "depthwise");
      }
      const std::string report_json = absl::StrFormat(
          R"({"repaired":%s,"changed_slots":%d,"architecture":"%s","depths_lowered":%s,)"
          R"("expected_cost":%.17g,"cost":"%s","cost_floor":%.17g,)"
          R"("mean_entropy":%.17g,"layers":%d,"fixed_layers":[%s],"most_likely":%s,)"
          R"("config":%s,"samples":[%s],"samples_repaired":%d})",
          most_likely_repair.repaired ? "true" : "false", most_likely_repair.changed_slots,
          architecture ? "searched" : "fixed", most_likely_depths_lowered ? "true" : "false",
          search->ExpectedCost(), metric, search_options.cost_floor, search->MeanEntropy(),
          search->layers(), fixed_json, problem.space->ToJson(most_likely),
          problem.space->ToJson(finals.front().genotype), samples_json,
          repaired_count - (most_likely_repair.repaired ? 1 : 0));
      RETURN_IF_ERROR(problem.artifacts->PutOutput(
          method_.result_kind, kDifferentiableResultName, "application/json",
          absl::StrFormat(R"({"engine":"%s","space":"%s","supernet_version":"%s","seed":%d})",
                          method_.name, problem.space->name(), problem.supernet_version, seed),
          report_json));
    }
    const int64_t evaluated = reports + static_cast<int64_t>(finals.size());
    if (on_step) {
      StepReport step;
      step.step = reports;
      step.scored = absl::MakeConstSpan(finals);
      step.best_index_in_step = 0;
      step.best = &finals.front();
      step.candidates_evaluated = evaluated;
      step.write_checkpoint = write_checkpoint;
      step.final_step = true;
      step.metrics = SearchMetrics(*search, is_ssps());
      RETURN_IF_ERROR(on_step(step));
    }
    result.best = finals.front();
    result.last_step = reports;
    result.candidates_evaluated = evaluated;
    result.predictions = evaluated;
    return result;
  }

 private:
  bool is_ssps() const { return method_.relaxation == oface::PrecisionRelaxation::kSinglePath; }

  oface::PrecisionSearchOptions SearchOptions(const SearchProblem& problem,
                                              const EngineOptions& options, uint64_t seed,
                                              const CancelCheck& cancelled) const {
    oface::PrecisionSearchOptions search_options;
    search_options.steps = IntOption(options, "steps");
    search_options.batch_size = static_cast<int>(IntOption(options, "batch_size"));
    search_options.weight_lr = DoubleOption(options, "weight_lr");
    search_options.arch_lr = DoubleOption(options, "arch_lr");
    search_options.temperature_start = DoubleOption(options, "temperature_start");
    search_options.temperature_end = DoubleOption(options, "temperature_end");
    search_options.cost_alpha = DoubleOption(options, "cost_alpha");
    search_options.cost_beta = DoubleOption(options, "cost_beta");
    if (ChoiceOption(options, "cost_floor") == "budget") {
      search_options.cost_floor =
          BudgetIn(problem.budgets, CostMetricOf(problem, options)).value_or(0.0);
    }
    search_options.warmup_steps = IntOption(options, "warmup_steps");
    search_options.seed = seed;
    search_options.cancelled = cancelled;
    search_options.relaxation = method_.relaxation;
    search_options.search_architecture = SearchesArchitecture(options);
    if (is_ssps()) {
      search_options.sequential_fixing = true;
      search_options.fix_every = IntOption(options, "fix_every");
      search_options.certainty = CertaintyOf(ChoiceOption(options, "certainty"));
    }
    return search_options;
  }

  // dnas's `architecture` option is "searched".
  bool SearchesArchitecture(const EngineOptions& options) const {
    return !is_ssps() && ChoiceOption(options, "architecture") == "searched";
  }

  // The architecture search's problem: the whole space (no gene held), its cost metric priced,
  // and its cheapest network within the budgets.
  absl::Status CheckWholeSpaceProblem(const SearchProblem& problem,
                                      const EngineOptions& options) const {
    // Restricted views (oface/restricted_space.h) are named "<base>@<restriction>".
    if (absl::StrContains(problem.space->name(), "@")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "engine.options.architecture: searched searches kernels, widths, depths and bits over "
          "the whole space, but this job holds some of its genes (",
          problem.space->name(), "): drop fixed_architecture and uniform_bits"));
    }
    const oface::Genotype cheapest = ExtremeGenotype(*problem.space, /*largest=*/false);
    const hwmodels::NetworkCost cost = problem.cost_model->Evaluate(cheapest);
    const std::string metric = CostMetricOf(problem, options);
    if ((metric == "energy" && !cost.has_energy) ||
        ((metric == "size" || metric == "bitops") && !cost.has_size_and_bitops)) {
      return absl::FailedPreconditionError(
          absl::StrCat("engine.options.cost: the job's device or space does not price ", metric));
    }
    if (!MeetsBudgets(cost, problem.budgets)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "budgets: the space's cheapest network (every gene at its smallest choice) misses "
          "them: %.6g ms, %.6g mJ, %.6g MB, %.6g BitOps",
          cost.latency_ms, cost.energy_mj, cost.size_mb, cost.bitops));
    }
    return absl::OkStatus();
  }

  static std::vector<OptionSpec> Specs(const Method& method) {
    const bool ssps = method.relaxation == oface::PrecisionRelaxation::kSinglePath;
    std::vector<OptionSpec> specs;
    specs.push_back(IntOptionSpec("steps", 300, 1, 100000,
                                  "alternations (a weight step and a distribution step each)"));
    specs.push_back(IntOptionSpec("report_every", 50, 1, 100000,
                                  "steps between two reports of the most likely policy"));
    specs.push_back(IntOptionSpec("batch_size", 64, 1, 10000, "images per step"));
    specs.push_back(IntOptionSpec("warmup_steps", ssps ? 30 : 0, 0, 100000,
                                  "first steps that train the weights only"));
    specs.push_back(IntOptionSpec("samples", ssps ? 0 : 4, 0, 64,
                                  "policies drawn from the final distributions, besides the "
                                  "most likely one (candidates of the job)"));
    if (ssps) {
      specs.push_back(IntOptionSpec("fix_every", 0, 0, 100000,
                                    "steps between two layer fixes after the warm-up; 0 spreads "
                                    "them so the last layer is fixed by the last step"));
      specs.push_back(ChoiceOptionSpec(
          "certainty", "max_probability",
          std::vector<std::string>(std::begin(kCertainties), std::end(kCertainties)),
          "which layer is fixed next: the most likely (weight, activation) pair's probability, "
          "its margin over the second, or the lowest joint entropy"));
    }
    const auto add_double = [&](const char* name, double value, double max,
                                const char* description) {
      OptionSpec spec;
      spec.name = name;
      spec.type = OptionSpec::Type::kDouble;
      spec.default_value = value;
      spec.min = 0;
      spec.min_exclusive = true;
      spec.max = max;
      spec.description = description;
      specs.push_back(spec);
    };
    add_double("weight_lr", 0.005, 1, "SGD learning rate of the weights (cosine to 0)");
    add_double("arch_lr", 0.01, 1, "Adam learning rate of the distributions");
    add_double("temperature_start", 5.0, 100, "Gumbel-softmax temperature of the first step");
    add_double("temperature_end", 0.5, 100, "and of the last (annealed geometrically)");
    add_double("cost_alpha", 0.2, 10, "the loss is cross-entropy x (alpha log cost)^beta");
    add_double("cost_beta", 0.6, 10, "see cost_alpha");
    specs.push_back(ChoiceOptionSpec(
        "cost", "budget", {"budget", "bitops", "size", "latency", "energy"},
        "the cost in the loss, priced on the job's device; budget: the metric of the job's "
        "budget (the first of latency, energy, size, BitOps)"));
    specs.push_back(ChoiceOptionSpec(
        "cost_floor", "budget", {"budget", "none"},
        "budget: the cost term pushes only while the expected cost is above the job's budget "
        "in that metric (the constraint in the loss); none: DNAS's form, always pushing"));
    if (!ssps) {
      specs.push_back(ChoiceOptionSpec(
          "architecture", "fixed", {"fixed", "searched"},
          "fixed: the bits of the job's fixed_architecture; searched: every layer's kernel and "
          "width and every stage's depth too (DNAS's block search), over the whole space"));
    }
    return specs;
  }

  const Method& method_;
  const std::vector<OptionSpec> specs_;
};

}  // namespace

std::unique_ptr<Engine> NewDnasEngine() { return std::make_unique<DifferentiableEngine>(kDnas); }
std::unique_ptr<Engine> NewSspsEngine() { return std::make_unique<DifferentiableEngine>(kSsps); }

}  // namespace apq::search
