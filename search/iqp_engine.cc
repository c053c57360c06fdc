#include "search/iqp_engine.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "hwmodels/cost_terms.h"
#include "search/bit_allocation.h"
#include "search/cross_layer_sensitivity.h"
#include "search/quadratic_allocation.h"

namespace apq::search {
namespace {

constexpr char kCheckpointTag[] = "iqp1";

std::string SerializeLosses(const std::vector<double>& losses, size_t total) {
  std::string text = absl::StrCat(kCheckpointTag, "\n", total, "\n");
  for (const double loss : losses) absl::StrAppend(&text, absl::StrFormat("%.17g", loss), "\n");
  return text;
}

absl::StatusOr<std::vector<double>> ParseLosses(absl::string_view checkpoint, size_t total) {
  const std::vector<absl::string_view> lines = absl::StrSplit(checkpoint, '\n', absl::SkipEmpty());
  size_t stored_total = 0;
  if (lines.size() < 2 || lines[0] != kCheckpointTag ||
      !absl::SimpleAtoi(lines[1], &stored_total) || stored_total != total ||
      lines.size() - 2 > total) {
    return absl::DataLossError("iqp checkpoint: not one of this allocation's measurements");
  }
  std::vector<double> losses;
  for (size_t i = 2; i < lines.size(); ++i) {
    double loss = 0;
    if (!absl::SimpleAtod(lines[i], &loss) || !std::isfinite(loss)) {
      return absl::DataLossError("iqp checkpoint: a loss is corrupt");
    }
    losses.push_back(loss);
  }
  return losses;
}

// Evaluations done after measurement step `step` (0-based) of `total`.
size_t EndOfStep(int step, size_t total) {
  return total * static_cast<size_t>(step + 1) / kIqpMeasurementSteps;
}

// The shared artifact of measured losses: every setting they depend on, readable.
std::string SensitivityCacheKey(const SearchProblem& problem, const BitAllocation& allocation,
                                const EngineOptions& options, uint64_t seed, bool pairs) {
  return absl::StrCat(
      problem.supernet_version, "|activations=", ChoiceOption(options, "activations"),
      "|images=", IntOption(options, "calibration_images"), "|seed=", seed,
      "|pairs=", pairs ? 1 : 0, "|", absl::StrJoin(allocation.Network(allocation.reference), ","));
}

std::string Provenance(const SearchProblem& problem, const EngineOptions& options, uint64_t seed,
                       bool pairs, size_t evaluations) {
  return absl::StrFormat(
      R"({"engine":"iqp","space":"%s","supernet_version":"%s","calibration_images":%d,)"
      R"("calibration_seed":%d,"calibration_split":"train","activations":"%s","pairs":%s,)"
      R"("evaluations":%d,"loss":"mean cross-entropy, batch norm recalibrated at the reference"})",
      problem.space->name(), problem.supernet_version, IntOption(options, "calibration_images"),
      seed, ChoiceOption(options, "activations"), pairs ? "true" : "false", evaluations);
}

// Losses of an earlier job with the same setting into `losses` (true), from the entry with
// pairs, or for single changes alone also from one with pairs (its prefix: single changes
// come first, search/cross_layer_sensitivity). An unreadable entry is measured again.
absl::StatusOr<bool> FindCachedLosses(const SearchProblem& problem, const BitAllocation& allocation,
                                      const EngineOptions& options, uint64_t seed, size_t needed,
                                      std::vector<double>* losses) {
  if (problem.artifacts == nullptr || problem.supernet_version.empty()) return false;
  const bool cross_layer = BoolOption(options, "cross_layer");
  for (const bool pairs : {cross_layer, true}) {
    ASSIGN_OR_RETURN(
        const std::optional<std::string> found,
        problem.artifacts->FindShared(
            kIqpSensitivityKind, SensitivityCacheKey(problem, allocation, options, seed, pairs)));
    if (!found.has_value()) continue;
    const absl::StatusOr<std::vector<double>> stored =
        ParseLosses(*found, SensitivityEvaluations(allocation.choices_per_slot(), pairs));
    if (!stored.ok() || stored->size() < needed) continue;
    losses->assign(stored->begin(), stored->begin() + static_cast<std::ptrdiff_t>(needed));
    return true;
  }
  return false;
}

class IqpEngine final : public Engine {
 public:
  IqpEngine() : specs_(Specs()) {}

  std::string name() const override { return kIqpEngineName; }
  std::string description() const override {
    return "bit allocation of one architecture (fixed_architecture) as CLADO: measured "
           "single and pairwise loss changes on the supernet, then an integer quadratic "
           "program solved by CBC under the budgets";
  }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }
  int TotalSteps(const EngineOptions& /*options*/) const override { return kIqpMeasurementSteps; }
  std::optional<int64_t> PlannedCandidates(const EngineOptions& /*options*/) const override {
    return 1;
  }

  absl::Status CheckProblem(const SearchProblem& problem,
                            const EngineOptions& options) const override {
    RETURN_IF_ERROR(CheckOneNetworkWithSupernet(problem, problem.policy_losses != nullptr,
                                                kIqpEngineName, "measures networks"));
    ASSIGN_OR_RETURN(
        const BitAllocation allocation,
        BuildBitAllocation(problem, ChoiceOption(options, "activations"), kIqpEngineName));
    const int evaluations =
        SensitivityEvaluations(allocation.choices_per_slot(), BoolOption(options, "cross_layer"));
    if (evaluations > IntOption(options, "max_evaluations")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "engine.options.max_evaluations: the sensitivity of this architecture takes ",
          evaluations, " loss evaluations, more than ", IntOption(options, "max_evaluations"),
          " (activations \"highest\" or cross_layer false take fewer)"));
    }
    return CheckCheapestPolicyFits(allocation, AllocationBudgets(problem, allocation));
  }

  absl::StatusOr<EngineResult> Run(const SearchProblem& problem, const EngineOptions& options,
                                   uint64_t seed, const StepCallback& on_step,
                                   const CancelCheck& cancelled,
                                   absl::string_view resume_checkpoint) const override {
    RETURN_IF_ERROR(CheckProblem(problem, options));
    const bool cross_layer = BoolOption(options, "cross_layer");
    ASSIGN_OR_RETURN(
        const BitAllocation allocation,
        BuildBitAllocation(problem, ChoiceOption(options, "activations"), kIqpEngineName));
    const std::vector<int> choices = allocation.choices_per_slot();
    const std::vector<std::vector<int>> policies =
        SensitivityPolicies(choices, allocation.reference, cross_layer);
    std::vector<double> losses;
    EngineResult result;
    int step = 0;
    bool from_cache = false;
    if (!resume_checkpoint.empty()) {
      ASSIGN_OR_RETURN(losses, ParseLosses(resume_checkpoint, policies.size()));
      // The steps whose measurements the checkpoint holds are stored already.
      while (step < kIqpMeasurementSteps && EndOfStep(step, policies.size()) <= losses.size()) {
        result.last_step = step++;
      }
    } else {
      ASSIGN_OR_RETURN(from_cache, FindCachedLosses(problem, allocation, options, seed,
                                                    policies.size(), &losses));
    }
    std::unique_ptr<PolicyLossSession> session;
    for (; step < kIqpMeasurementSteps; ++step) {
      const size_t end = EndOfStep(step, policies.size());
      while (losses.size() < end) {
        if (cancelled && cancelled()) {
          result.cancelled = true;
          return result;
        }
        if (session == nullptr) {
          absl::StatusOr<std::unique_ptr<PolicyLossSession>> opened = problem.policy_losses->Open(
              allocation.Network(allocation.reference),
              static_cast<int>(IntOption(options, "calibration_images")), seed, cancelled);
          if (absl::IsCancelled(opened.status())) {
            result.cancelled = true;
            return result;
          }
          ASSIGN_OR_RETURN(session, std::move(opened));
          // Opening waits while another job measures on the supernet: it may have been
          // measuring these very losses (a concurrent job of the same setting).
          std::vector<double> cached;
          ASSIGN_OR_RETURN(from_cache, FindCachedLosses(problem, allocation, options, seed,
                                                        policies.size(), &cached));
          if (from_cache) {
            losses = std::move(cached);
            session.reset();
            continue;
          }
        }
        // A few at a time (the session may measure them at once), the cancel check between.
        std::vector<oface::Genotype> batch;
        for (size_t i = losses.size(); i < end && batch.size() < kIqpMeasurementBatch; ++i) {
          batch.push_back(allocation.Network(policies[i]));
        }
        ASSIGN_OR_RETURN(const std::vector<double> measured, session->Losses(batch));
        losses.insert(losses.end(), measured.begin(), measured.end());
      }
      if (on_step) {
        StepReport report;
        report.step = step;
        report.write_checkpoint = [&] { return SerializeLosses(losses, policies.size()); };
        RETURN_IF_ERROR(on_step(report));
      }
      result.last_step = step;
    }
    // Stored while the session still holds the supernet: a job of the same setting waiting
    // for it then finds the losses when it gets it.
    if (!from_cache && problem.artifacts != nullptr && !problem.supernet_version.empty()) {
      RETURN_IF_ERROR(problem.artifacts->PutShared(
          kIqpSensitivityKind, SensitivityCacheKey(problem, allocation, options, seed, cross_layer),
          "text/plain", Provenance(problem, options, seed, cross_layer, policies.size()),
          SerializeLosses(losses, policies.size())));
    }
    session.reset();  // The supernet is free for others while CBC solves.
    if (cancelled && cancelled()) {
      result.cancelled = true;
      return result;
    }

    // The allocation: G from the measurements, the budgets, CBC.
    ASSIGN_OR_RETURN(std::vector<double> g,
                     AssembleSensitivity(choices, allocation.reference, cross_layer, losses));
    QuadraticAllocation program;
    program.choices_per_slot = choices;
    if (BoolOption(options, "clip_to_psd")) {
      ASSIGN_OR_RETURN(g, ClipToPositiveSemidefinite(g, program.num_choices()));
    }
    program.g = std::move(g);
    program.budgets = AllocationBudgets(problem, allocation);
    ASSIGN_OR_RETURN(const AllocationResult solved,
                     SolveQuadraticAllocation(
                         program, absl::Seconds(DoubleOption(options, "time_limit_s")), cancelled));
    ASSIGN_OR_RETURN(const Individual best,
                     PriceAndScore(problem, allocation.Network(solved.choice), kIqpMeasurementSteps,
                                   kIqpEngineName));
    if (problem.artifacts != nullptr) {
      // With G positive semi-definite no policy's x^T G x is below 0, a bound CBC's
      // linearisation does not see (its own bound is kept as cbc_bound).
      const double bound =
          BoolOption(options, "clip_to_psd") ? std::max(solved.best_bound, 0.0) : solved.best_bound;
      const double gap =
          solved.optimal ? 0.0
                         : (solved.objective - bound) / std::max(1e-9, std::fabs(solved.objective));
      const std::string solution = absl::StrFormat(
          R"({"objective":%.17g,"best_bound":%.17g,"relative_gap":%.17g,"cbc_bound":%.17g,)"
          R"("optimal":%s,"seconds":%.6f,"losses_from_cache":%s,"cross_layer":%s,)"
          R"("warm_start_objective":%s,"from_warm_start":%s,"config":%s})",
          solved.objective, bound, std::max(gap, 0.0), solved.best_bound,
          solved.optimal ? "true" : "false", solved.seconds, from_cache ? "true" : "false",
          cross_layer ? "true" : "false",
          std::isfinite(solved.warm_start_objective)
              ? absl::StrFormat("%.17g", solved.warm_start_objective)
              : std::string("null"),
          solved.from_warm_start ? "true" : "false", problem.space->ToJson(best.genotype));
      RETURN_IF_ERROR(problem.artifacts->PutOutput(
          kIqpSolutionKind, kIqpSolutionName, "application/json",
          Provenance(problem, options, seed, cross_layer, policies.size()), solution));
    }
    if (on_step) {
      StepReport report;
      report.step = kIqpMeasurementSteps;
      report.scored = absl::MakeConstSpan(&best, 1);
      report.candidates_evaluated = 1;
      report.best = &best;
      report.best_index_in_step = 0;
      report.write_checkpoint = [&] { return SerializeLosses(losses, policies.size()); };
      report.final_step = true;
      RETURN_IF_ERROR(on_step(report));
    }
    result.best = best;
    result.last_step = kIqpMeasurementSteps;
    result.candidates_evaluated = 1;
    result.predictions = 1;
    return result;
  }

 private:
  static std::vector<OptionSpec> Specs() {
    std::vector<OptionSpec> specs;
    OptionSpec images;
    images.name = "calibration_images";
    images.type = OptionSpec::Type::kInt;
    images.default_value = int64_t{512};
    images.min = 1;
    images.max = 50000;  // The train split (oface/fashion_mnist.h).
    images.description = "train-split images the losses are measured on";
    specs.push_back(images);
    OptionSpec cross;
    cross.name = "cross_layer";
    cross.type = OptionSpec::Type::kBool;
    cross.default_value = true;
    cross.description =
        "measure every pair of changes (CLADO); false: single changes only, the "
        "independent-sensitivity baseline";
    specs.push_back(cross);
    specs.push_back(ChoiceOptionSpec(
        "activations", "highest", {"highest", "searched", "2", "3", "4", "6", "8"},
        "highest: allocate weight widths with activations at their highest (as CLADO); a "
        "width: with every activation at it (a slot without it is refused); searched: every "
        "(weight, activation) setting"));
    OptionSpec time_limit;
    time_limit.name = "time_limit_s";
    time_limit.type = OptionSpec::Type::kDouble;
    time_limit.default_value = 60.0;
    time_limit.min = 0;
    time_limit.min_exclusive = true;
    time_limit.max = 3600;
    time_limit.description = "the solver's time limit; the best policy found by then is returned";
    specs.push_back(time_limit);
    OptionSpec evaluations;
    evaluations.name = "max_evaluations";
    evaluations.type = OptionSpec::Type::kInt;
    evaluations.default_value = int64_t{20000};
    evaluations.min = 1;
    evaluations.max = 1000000;
    evaluations.description =
        "loss evaluations the sensitivity may take (the job is refused above)";
    specs.push_back(evaluations);
    OptionSpec clip;
    clip.name = "clip_to_psd";
    clip.type = OptionSpec::Type::kBool;
    clip.default_value = true;
    clip.description = "clip G's negative eigenvalues (positive semi-definite, as CLADO)";
    specs.push_back(clip);
    return specs;
  }

  const std::vector<OptionSpec> specs_;
};

}  // namespace

std::unique_ptr<Engine> NewIqpEngine() { return std::make_unique<IqpEngine>(); }

}  // namespace apq::search
