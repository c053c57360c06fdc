#include "search/qbitopt_engine.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "oface/fashion_mnist.h"
#include "oface/subnet_finetune.h"
#include "oface/supernet.h"
#include "search/bit_allocation.h"
#include "search/separable_allocation.h"

namespace apq::search {
namespace {

constexpr char kCheckpointTag[] = "qbitopt1";

int Updates(const EngineOptions& options) {
  const int64_t steps = IntOption(options, "steps");
  const int64_t every = IntOption(options, "update_every");
  return static_cast<int>((steps + every - 1) / every);
}

std::string SerializeCheckpoint(int update, const std::string& trainer_state) {
  return absl::StrCat(kCheckpointTag, "\n", update, "\n", trainer_state);
}

// The checkpoint after `update`. When the trainer's state cannot be written (a LibTorch
// failure), a checkpoint that resumes to DATA_LOSS: the job then fails instead of restarting.
std::string WriteCheckpoint(const oface::SubnetTrainer& trainer, int update) {
  absl::StatusOr<std::string> state = trainer.SaveState();
  return state.ok() ? SerializeCheckpoint(update, *state) : SerializeCheckpoint(-1, "");
}

// The update the checkpoint was written after, and the trainer's state.
absl::StatusOr<std::pair<int, absl::string_view>> ParseCheckpoint(absl::string_view checkpoint,
                                                                  int updates) {
  const size_t first = checkpoint.find('\n');
  const size_t second = first == absl::string_view::npos ? first : checkpoint.find('\n', first + 1);
  int update = -1;
  if (second == absl::string_view::npos || checkpoint.substr(0, first) != kCheckpointTag ||
      !absl::SimpleAtoi(checkpoint.substr(first + 1, second - first - 1), &update) || update < 0 ||
      update > updates) {
    return absl::DataLossError("qbitopt checkpoint: not one of this run's");
  }
  return std::make_pair(update, checkpoint.substr(second + 1));
}

class QbitoptEngine final : public Engine {
 public:
  QbitoptEngine() : specs_(Specs()) {}

  std::string name() const override { return kQbitoptEngineName; }
  std::string description() const override {
    return "bit allocation of one architecture (fixed_architecture) during its "
           "quantization-aware fine-tune, as QBitOpt: gradient-based sensitivities, a convex "
           "relaxation solved under the budgets at every update; the job's output is the "
           "fine-tuned TorchScript module";
  }
  const std::vector<OptionSpec>& option_specs() const override { return specs_; }
  // Updates 0..U-1, then the final step U.
  int TotalSteps(const EngineOptions& options) const override { return Updates(options); }
  std::optional<int64_t> PlannedCandidates(const EngineOptions& options) const override {
    return Updates(options) + 1;
  }

  absl::Status ValidateOptions(const EngineOptions& options,
                               absl::string_view field_prefix) const override {
    if (IntOption(options, "update_every") > IntOption(options, "steps")) {
      return absl::InvalidArgumentError(absl::StrCat(field_prefix, "update_every: at most steps (",
                                                     IntOption(options, "steps"), "), got ",
                                                     IntOption(options, "update_every")));
    }
    constexpr int64_t kTrainImages = oface::kTrainingFileImages - oface::kValidationImages;
    if (IntOption(options, "gradient_batches") * IntOption(options, "batch_size") > kTrainImages) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "gradient_batches: gradient_batches x batch_size must be at most the ",
          "train split's ", kTrainImages, " images"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckProblem(const SearchProblem& problem,
                            const EngineOptions& options) const override {
    RETURN_IF_ERROR(CheckOneNetworkWithSupernet(problem, problem.subnet_training != nullptr,
                                                kQbitoptEngineName, "fine-tunes"));
    ASSIGN_OR_RETURN(
        const BitAllocation allocation,
        BuildBitAllocation(problem, ChoiceOption(options, "activations"), kQbitoptEngineName));
    for (size_t s = 0; s < allocation.weight_gene.size(); ++s) {
      if (allocation.weight_gene[s] < 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("fixed_architecture: slot ", allocation.view.slots[s].name,
                         " has no weight bits for engine qbitopt to allocate"));
      }
    }
    return CheckCheapestPolicyFits(allocation, AllocationBudgets(problem, allocation));
  }

  absl::StatusOr<EngineResult> Run(const SearchProblem& problem, const EngineOptions& options,
                                   uint64_t seed, const StepCallback& on_step,
                                   const CancelCheck& cancelled,
                                   absl::string_view resume_checkpoint) const override {
    RETURN_IF_ERROR(CheckProblem(problem, options));
    ASSIGN_OR_RETURN(
        const BitAllocation allocation,
        BuildBitAllocation(problem, ChoiceOption(options, "activations"), kQbitoptEngineName));
    SeparableAllocation program;
    program.choices_per_slot = allocation.choices_per_slot();
    program.budgets = AllocationBudgets(problem, allocation);
    const int updates = Updates(options);
    const int64_t steps = IntOption(options, "steps");
    const int64_t every = IntOption(options, "update_every");

    oface::FineTuneOptions training;
    training.steps = steps;
    training.batch_size = static_cast<int>(IntOption(options, "batch_size"));
    training.learning_rate = DoubleOption(options, "learning_rate");
    training.seed = seed;
    training.cancelled = cancelled;
    ASSIGN_OR_RETURN(std::unique_ptr<SubnetTrainingSession> session,
                     problem.subnet_training->Open());
    session->supernet().SetQuantized(true);
    ASSIGN_OR_RETURN(
        std::unique_ptr<oface::SubnetTrainer> trained,
        oface::SubnetTrainer::Create(session->supernet(), session->train(),
                                     allocation.Network(allocation.reference), training));
    oface::SubnetTrainer& trainer = *trained;
    EngineResult result;
    // Trains segment `update` (the steps up to the next update, or to the end); false when
    // cancelled.
    const auto train_segment = [&](int update) -> absl::StatusOr<bool> {
      const int64_t end = std::min(steps, (update + 1) * every);
      const absl::Status trained = trainer.Train(end - trainer.steps_done());
      if (absl::IsCancelled(trained)) return false;
      RETURN_IF_ERROR(trained);
      return true;
    };

    // Step `policy.generation`'s report: its one network, the best so far by definition (the
    // policy being trained), and the checkpoint after it.
    const auto report_policy = [&](const Individual& policy, bool final_step) -> absl::Status {
      if (!on_step) return absl::OkStatus();
      StepReport report;
      report.step = policy.generation;
      report.scored = absl::MakeConstSpan(&policy, 1);
      report.candidates_evaluated = policy.generation + 1;
      report.best = &policy;
      report.best_index_in_step = 0;
      report.write_checkpoint = [&] { return WriteCheckpoint(trainer, policy.generation); };
      report.final_step = final_step;
      return on_step(report);
    };

    int update = 0;
    if (!resume_checkpoint.empty()) {
      ASSIGN_OR_RETURN(const auto parsed, ParseCheckpoint(resume_checkpoint, updates));
      RETURN_IF_ERROR(trainer.RestoreState(parsed.second));
      result.last_step = parsed.first;
      update = parsed.first + 1;
      if (parsed.first < updates) {
        ASSIGN_OR_RETURN(const bool trained, train_segment(parsed.first));
        if (!trained) {
          result.cancelled = true;
          return result;
        }
      }
    }
    for (; update < updates; ++update) {
      if (update == 0) {
        const absl::Status gradients =
            trainer.AccumulateGradients(static_cast<int>(IntOption(options, "gradient_batches")));
        if (absl::IsCancelled(gradients)) {
          result.cancelled = true;
          return result;
        }
        RETURN_IF_ERROR(gradients);
      }
      // Sensitivities of every kept choice, from the gradients since the last update.
      program.sensitivity.clear();
      for (size_t s = 0; s < allocation.kept.size(); ++s) {
        const int gene = allocation.weight_gene[s];
        std::vector<int> widths;
        for (size_t k = 0; k < allocation.kept[s].size(); ++k) {
          widths.push_back(allocation.GeneValue(static_cast<int>(s), static_cast<int>(k), gene));
        }
        ASSIGN_OR_RETURN(const std::vector<double> sensitivity,
                         trainer.WeightSensitivity(gene, widths));
        program.sensitivity.insert(program.sensitivity.end(), sensitivity.begin(),
                                   sensitivity.end());
      }
      ASSIGN_OR_RETURN(const SeparableResult solved, SolveSeparableAllocation(program));
      const oface::Genotype network = allocation.Network(solved.choice);
      // Priced whole and checked against every budget before it is trained.
      ASSIGN_OR_RETURN(const Individual chosen,
                       PriceAndScore(problem, network, update, kQbitoptEngineName));
      RETURN_IF_ERROR(trainer.SetPolicy(network));
      trainer.ResetSensitivity();
      RETURN_IF_ERROR(report_policy(chosen, /*final_step=*/false));
      result.last_step = update;
      ASSIGN_OR_RETURN(const bool trained, train_segment(update));
      if (!trained) {
        result.cancelled = true;
        return result;
      }
    }
    if (cancelled && cancelled()) {
      result.cancelled = true;
      return result;
    }

    // The result: the trained policy with its weights.
    ASSIGN_OR_RETURN(const Individual best,
                     PriceAndScore(problem, trainer.policy(), updates, kQbitoptEngineName));
    if (problem.artifacts != nullptr) {
      ASSIGN_OR_RETURN(const std::string module, session->ExportTorchScript(trainer.policy()));
      const oface::FineTuneReport run = trainer.Report();
      const std::string provenance =
          absl::StrFormat(R"({"engine":"qbitopt","space":"%s","supernet_version":"%s","seed":%d,)"
                          R"("steps":%d,"update_every":%d,"batch_size":%d,"learning_rate":%.17g,)"
                          R"("activations":"%s","first_loss":%.17g,"last_loss":%.17g,"config":%s})",
                          problem.space->name(), problem.supernet_version, seed, steps, every,
                          IntOption(options, "batch_size"), DoubleOption(options, "learning_rate"),
                          ChoiceOption(options, "activations"), run.first_loss, run.last_loss,
                          problem.space->ToJson(best.genotype));
      RETURN_IF_ERROR(problem.artifacts->PutOutput(
          kQbitoptModuleKind, kQbitoptModuleName, "application/x-torchscript", provenance, module));
    }
    RETURN_IF_ERROR(report_policy(best, /*final_step=*/true));
    result.best = best;
    result.last_step = updates;
    result.candidates_evaluated = updates + 1;
    result.predictions = updates + 1;
    return result;
  }

 private:
  static std::vector<OptionSpec> Specs() {
    std::vector<OptionSpec> specs;
    specs.push_back(
        IntOptionSpec("steps", 300, 1, 100000, "fine-tune steps (SGD, batch_size images each)"));
    specs.push_back(
        IntOptionSpec("update_every", 50, 1, 100000,
                      "steps between two allocations (the first is before the first step)"));
    specs.push_back(IntOptionSpec("batch_size", 128, 1, 50000, "train-split images per step"));
    specs.push_back(
        IntOptionSpec("gradient_batches", 4, 1, 390,
                      "batches of gradients, without training, behind the first allocation"));
    OptionSpec rate;
    rate.name = "learning_rate";
    rate.type = OptionSpec::Type::kDouble;
    rate.default_value = 0.005;
    rate.min = 0;
    rate.min_exclusive = true;
    rate.max = 1;
    rate.description = "peak learning rate of the cosine schedule";
    specs.push_back(rate);
    specs.push_back(ChoiceOptionSpec(
        "activations", "highest", {"highest", "2", "3", "4", "6", "8"},
        "highest: allocate weight widths with activations at their highest; a width: with "
        "every activation at it (a slot without it is refused)"));
    return specs;
  }

  const std::vector<OptionSpec> specs_;
};

}  // namespace

std::unique_ptr<Engine> NewQbitoptEngine() { return std::make_unique<QbitoptEngine>(); }

}  // namespace apq::search
