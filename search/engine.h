// The seam between the service and its search engines.
//
// An engine searches one space for the best network under hard budgets, given an accuracy
// predictor and a cost model, and reports each step's scored candidates to the caller,
// which stores them. Evolution (evolution_engine.h) is one engine; integer programming,
// differentiable search and others are added beside it and registered by name
// (engine_registry.h). The service knows engines only through this interface: it resolves a
// request's options against the engine's OptionSpecs, runs the engine on a job worker, stores
// its StepReports (a group of consecutive steps at a time, with the opaque checkpoint of the
// last), and hands the last stored checkpoint back on resume.
#ifndef APQ_SEARCH_ENGINE_H_
#define APQ_SEARCH_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/search_space.h"
#include "predictor/accuracy_predictor.h"
#include "search/budgets.h"

namespace apq::oface {
class Supernet;
struct LabeledImages;
}  // namespace apq::oface

namespace apq::search {

// One network an engine priced, and scored when feasible.
struct Individual {
  // As the engine holds it; it may carry genes a depth leaves inactive (evolution keeps them
  // so a later mutation can bring them back). Use SearchSpace::Canonical for output.
  oface::Genotype genotype;
  double accuracy = 0.0;  // Predicted; meaningful only when feasible.
  hwmodels::NetworkCost cost;
  int generation = 0;  // The step that produced it.
};

// Measured losses of networks on the space's trained supernet, for engines that measure
// (iqp). A session holds the supernet while it lives.
class PolicyLossSession {
 public:
  virtual ~PolicyLossSession() = default;
  // Mean cross-entropy of `genotype` (the session's architecture, any bitwidths) on the
  // session's images.
  virtual absl::StatusOr<double> Loss(const oface::Genotype& genotype) = 0;
  // The losses of `genotypes` in order, equal to Loss of each; a session may measure several
  // at once (the server's uses its measurement threads). By default one by one.
  virtual absl::StatusOr<std::vector<double>> Losses(
      const std::vector<oface::Genotype>& genotypes) {
    std::vector<double> losses;
    losses.reserve(genotypes.size());
    for (const oface::Genotype& genotype : genotypes) {
      absl::StatusOr<double> loss = Loss(genotype);
      if (!loss.ok()) return loss.status();
      losses.push_back(*loss);
    }
    return losses;
  }
};

class PolicyLossProvider {
 public:
  virtual ~PolicyLossProvider() = default;
  // A session for `reference`'s architecture: batch norm recalibrated at `reference`, the
  // loss measured on `images` images of the train split drawn with `seed`. It may wait while
  // another session holds the supernet, polling `cancelled` (may be empty): CANCELLED when it
  // says so. INVALID_ARGUMENT naming "images" outside [1, the train split's size];
  // FAILED_PRECONDITION when the data cannot be read.
  virtual absl::StatusOr<std::unique_ptr<PolicyLossSession>> Open(
      const oface::Genotype& reference, int images, uint64_t seed,
      const std::function<bool()>& cancelled) const = 0;
};

// A private copy of the space's trained quantization-aware supernet with the train and
// validation splits, for engines that train (qbitopt, dnas): other users of the space's
// supernet are unaffected. Validation images are for choices a search makes (never test).
class SubnetTrainingSession {
 public:
  virtual ~SubnetTrainingSession() = default;
  virtual oface::Supernet& supernet() = 0;
  virtual const oface::LabeledImages& train() const = 0;
  virtual const oface::LabeledImages& validation() const = 0;
  // `genotype` on the session's supernet at its current weights, quantized, as a TorchScript
  // file's bytes (oface/subnet_export.h), batch norm recalibrated on the train split's
  // calibration images. Leaves `genotype` active.
  virtual absl::StatusOr<std::string> ExportTorchScript(const oface::Genotype& genotype) = 0;
};

class SubnetTrainingProvider {
 public:
  virtual ~SubnetTrainingProvider() = default;
  // A new session; FAILED_PRECONDITION when the weights or the data cannot be read.
  virtual absl::StatusOr<std::unique_ptr<SubnetTrainingSession>> Open() const = 0;
};

// Where an engine keeps what it makes besides candidates (the store's artifacts, with their
// provenance: a JSON object): a job's outputs, and shared entries later jobs reuse (a cache).
class ArtifactKeeper {
 public:
  virtual ~ArtifactKeeper() = default;
  // The bytes of the shared artifact (kind, key), or nullopt when none is stored.
  virtual absl::StatusOr<std::optional<std::string>> FindShared(const std::string& kind,
                                                                const std::string& key) = 0;
  // Stores a shared artifact; when (kind, key) is stored already (a concurrent job made the
  // same), the stored one stays and this is OK.
  virtual absl::Status PutShared(const std::string& kind, const std::string& key,
                                 const std::string& content_type, const std::string& provenance,
                                 const std::string& bytes) = 0;
  // Stores an output of the running job under `name`; a resumed run storing the same name
  // again is OK.
  virtual absl::Status PutOutput(const std::string& kind, const std::string& name,
                                 const std::string& content_type, const std::string& provenance,
                                 const std::string& bytes) = 0;
};

// What every engine searches: all pointers outlive the run.
struct SearchProblem {
  const oface::SearchSpace* space = nullptr;
  const hwmodels::LutCostModel* cost_model = nullptr;  // Prices `space`.
  predictor::AccuracyPredictor* predictor = nullptr;   // Takes `space`'s encoding.
  Budgets budgets;                                     // Valid (ValidateBudgets).
  Objective objective = Objective::kMaxAccuracy;
  CostMetric pareto_cost = CostMetric::kLatency;  // Priceable by `cost_model`.
  // StepReport::rejected holds every infeasible draw of the step instead of a bounded sample
  // (an audit of all draws). Memory then grows with the draws of a step: under budgets the
  // space seldom meets, up to the engine's resampling limit per child. The search itself is
  // the same either way.
  bool report_every_rejected_draw = false;
  // Null when the space has no trained supernet (engines that measure refuse the problem).
  const PolicyLossProvider* policy_losses = nullptr;
  // Null when the space has no trained supernet (engines that train refuse the problem).
  const SubnetTrainingProvider* subnet_training = nullptr;
  // The trained supernet's version (SupernetHost::Version), for provenance and cache keys;
  // empty without one.
  std::string supernet_version;
  // Null when the caller keeps no artifacts (checks of a request before it is a job, tests):
  // engines then cache nothing and keep only their candidates.
  ArtifactKeeper* artifacts = nullptr;
};

// An option's value. Integers are int64_t; a double option also accepts an integer.
using OptionValue = std::variant<int64_t, double, bool, std::string>;
// Options by name. Resolved options (ResolveOptions) hold every option of the engine.
using EngineOptions = std::map<std::string, OptionValue>;

// An option range end meaning "no bound".
inline constexpr double kNoBound = 1e300;

// One option an engine takes, with its default and its valid range: enough for a client to
// render a form and for ResolveOptions to check a request.
struct OptionSpec {
  enum class Type { kInt, kDouble, kBool, kChoice };
  std::string name;
  Type type = Type::kInt;
  std::string description;
  OptionValue default_value;
  // When not empty, an unset option takes this other option's resolved value instead.
  std::string default_from;
  // kInt and kDouble: the valid range, both ends included unless `min_exclusive`.
  double min = -kNoBound;
  double max = kNoBound;
  bool min_exclusive = false;
  std::vector<std::string> choices;  // kChoice: the valid values.
};

// What one step (a generation of evolution, an iteration of a solver) produced. The spans
// and the best are valid during the callback only.
struct StepReport {
  int step = 0;                         // 0 for the first.
  absl::Span<const Individual> scored;  // Feasible candidates scored in this step.
  // Infeasible ones priced: a bounded sample, or every one with
  // SearchProblem::report_every_rejected_draw.
  absl::Span<const Individual> rejected;
  int64_t rejected_total = 0;        // Every infeasible draw of this step.
  int64_t candidates_evaluated = 0;  // Scored candidates so far, all steps.
  const Individual* best = nullptr;  // Best feasible so far (null when none yet).
  // Index in `scored` of the best when this step found it, else -1 (the best is older).
  int best_index_in_step = -1;
  // Writes the engine's own bytes: given back to Run, they resume the search after this step
  // and the resumed run reports exactly what an uninterrupted one would have. Callable only
  // while the callback runs (the engine's state moves on after it returns), so a caller that
  // stores a checkpoint now and then does not pay for the others (an evolution checkpoint is
  // tens of KB).
  std::function<std::string()> write_checkpoint;
  // True on the report of the last step of a run that ends by completing it (not
  // cancelled): Run returns after its callback. A caller that stores checkpoints now and then
  // takes this one.
  bool final_step = false;
  // The engine's own figures after this step, shown with the job's progress (a training
  // engine's losses, expected cost, entropy, layers fixed): names of [a-z0-9_], at most
  // kMaxStepMetrics of them, finite values.
  std::vector<std::pair<std::string, double>> metrics;
};
inline constexpr int kMaxStepMetrics = 16;

struct EngineResult {
  std::optional<Individual> best;  // Unset when cancelled before any feasible candidate.
  int last_step = -1;              // The last step completed, in all runs; -1 for none.
  int64_t candidates_evaluated = 0;
  int64_t predictions = 0;  // Distinct networks this run sent to the predictor.
  bool cancelled = false;   // Stopped by the cancel check before finishing.
};

// A non-OK status stops the run and is returned by Run.
using StepCallback = std::function<absl::Status(const StepReport& report)>;
// Polled between steps (and inside long steps); true stops the run.
using CancelCheck = std::function<bool()>;

// An engine is stateless between runs and may serve several jobs at once: Run keeps its
// state on its own stack.
class Engine {
 public:
  virtual ~Engine() = default;

  // The registry name, e.g. "evolution"; lower case, digits and '_'.
  virtual std::string name() const = 0;
  // One sentence for ListEngines.
  virtual std::string description() const = 0;
  virtual const std::vector<OptionSpec>& option_specs() const = 0;
  // Checks beyond each option's own range, on resolved options. INVALID_ARGUMENT naming
  // `field_prefix` + the option.
  virtual absl::Status ValidateOptions(const EngineOptions& options,
                                       absl::string_view field_prefix) const {
    return absl::OkStatus();
  }
  // What the engine needs of the problem beyond what every engine gets (e.g. an objective it
  // supports, a space with bitwidths): INVALID_ARGUMENT or FAILED_PRECONDITION naming the
  // request field.
  virtual absl::Status CheckProblem(const SearchProblem& problem,
                                    const EngineOptions& options) const {
    return absl::OkStatus();
  }
  // The step number of a complete run's last report (progress shows step of this).
  virtual int TotalSteps(const EngineOptions& options) const = 0;
  // At most how many candidates a run with `options` scores, when the engine knows (the
  // server caps the work per job with it); nullopt when it cannot say.
  virtual std::optional<int64_t> PlannedCandidates(const EngineOptions& options) const {
    return std::nullopt;
  }

  // Runs with resolved `options`; from the start when `resume_checkpoint` is empty, else
  // after the step whose report carried it. Deterministic for (problem, options, seed).
  // DATA_LOSS for a checkpoint it cannot read; FAILED_PRECONDITION when the budgets admit
  // nothing it can find; errors of the predictor and of `on_step` pass through.
  virtual absl::StatusOr<EngineResult> Run(const SearchProblem& problem,
                                           const EngineOptions& options, uint64_t seed,
                                           const StepCallback& on_step,
                                           const CancelCheck& cancelled,
                                           absl::string_view resume_checkpoint) const = 0;
};

// An integer option valid in [min, max].
OptionSpec IntOptionSpec(const std::string& name, int64_t default_value, double min, double max,
                         const std::string& description);
// A choice among `choices`; `default_value` must be one of them.
OptionSpec ChoiceOptionSpec(const std::string& name, const std::string& default_value,
                            std::vector<std::string> choices, const std::string& description);

// Fills unset options with their defaults and checks every value against its spec, then
// the engine's ValidateOptions. INVALID_ARGUMENT naming `field_prefix` + the option for an
// unknown option, a value of the wrong type, or one out of range.
absl::StatusOr<EngineOptions> ResolveOptions(const Engine& engine, const EngineOptions& given,
                                             absl::string_view field_prefix);

// Typed reads of resolved options; the spec guarantees presence and type.
int64_t IntOption(const EngineOptions& options, const std::string& name);
double DoubleOption(const EngineOptions& options, const std::string& name);
bool BoolOption(const EngineOptions& options, const std::string& name);
const std::string& ChoiceOption(const EngineOptions& options, const std::string& name);

// "7", "0.25", "true", "\"name\"": for messages and listings.
std::string OptionValueText(const OptionValue& value);

}  // namespace apq::search

#endif  // APQ_SEARCH_ENGINE_H_
