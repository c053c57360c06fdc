#include "search/evolution.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "search/pareto.h"

namespace apq::search {
namespace {

absl::Status CheckProbability(double value, const char* field, bool allow_zero) {
  const bool ok = std::isfinite(value) && value <= 1.0 && (allow_zero ? value >= 0.0 : value > 0.0);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be in ", allow_zero ? "[0, 1]" : "(0, 1]", ", got ", value));
  }
  return absl::OkStatus();
}

int RoundToInt(double value) { return static_cast<int>(std::lround(value)); }

// Little-endian binary writer/reader for checkpoints; the format is private to this file.
// Version 2 stores every cost figure; version 1 (before size, BitOps and the modelled flag
// were kept) is still read, and its individuals are priced again on resume.
constexpr char kCheckpointMagic[] = "APQEVO2";
constexpr char kCheckpointMagicV1[] = "APQEVO1";

class Writer {
 public:
  template <typename T>
  void Put(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  void PutIndividual(const Individual& individual) {
    Put<uint32_t>(static_cast<uint32_t>(individual.genotype.size()));
    for (int gene : individual.genotype) Put<int32_t>(gene);
    Put<double>(individual.accuracy);
    Put<double>(individual.cost.latency_ms);
    Put<double>(individual.cost.energy_mj);
    Put<uint8_t>(individual.cost.has_energy ? 1 : 0);
    Put<double>(individual.cost.size_mb);
    Put<double>(individual.cost.bitops);
    Put<uint8_t>(individual.cost.has_size_and_bitops ? 1 : 0);
    Put<uint8_t>(individual.cost.modelled ? 1 : 0);
    Put<int32_t>(individual.generation);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(absl::string_view bytes, bool full_costs) : bytes_(bytes), full_costs_(full_costs) {}
  template <typename T>
  bool Get(T* value) {
    if (bytes_.size() - position_ < sizeof(T)) return false;
    std::memcpy(value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return true;
  }
  bool GetIndividual(Individual* individual) {
    uint32_t genes = 0;
    if (!Get(&genes) || genes > (bytes_.size() - position_) / sizeof(int32_t)) return false;
    individual->genotype.resize(genes);
    for (int& gene : individual->genotype) {
      int32_t value = 0;
      if (!Get(&value)) return false;
      gene = value;
    }
    uint8_t has_energy = 0;
    if (!Get(&individual->accuracy) || !Get(&individual->cost.latency_ms) ||
        !Get(&individual->cost.energy_mj) || !Get(&has_energy)) {
      return false;
    }
    individual->cost.has_energy = has_energy != 0;
    if (full_costs_) {
      uint8_t has_size_and_bitops = 0;
      uint8_t modelled = 0;
      if (!Get(&individual->cost.size_mb) || !Get(&individual->cost.bitops) ||
          !Get(&has_size_and_bitops) || !Get(&modelled)) {
        return false;
      }
      individual->cost.has_size_and_bitops = has_size_and_bitops != 0;
      individual->cost.modelled = modelled != 0;
    }
    int32_t generation = 0;
    if (!Get(&generation)) return false;
    individual->generation = generation;
    return true;
  }
  bool AtEnd() const { return position_ == bytes_.size(); }

 private:
  absl::string_view bytes_;
  const bool full_costs_;
  size_t position_ = 0;
};

}  // namespace

absl::Status ValidateParams(const EvolutionParams& params) {
  if (params.population_size < 2 || params.population_size > kMaxPopulationSize) {
    return absl::InvalidArgumentError(absl::StrCat("evolution.population_size: must be in [2, ",
                                                   kMaxPopulationSize, "], got ",
                                                   params.population_size));
  }
  if (params.generations < 1 || params.generations > kMaxGenerations) {
    return absl::InvalidArgumentError(absl::StrCat("evolution.generations: must be in [1, ",
                                                   kMaxGenerations, "], got ", params.generations));
  }
  RETURN_IF_ERROR(CheckProbability(params.parent_ratio, "evolution.parent_ratio", false));
  RETURN_IF_ERROR(CheckProbability(params.mutation_ratio, "evolution.mutation_ratio", true));
  RETURN_IF_ERROR(
      CheckProbability(params.mutate_probability, "evolution.mutate_probability", true));
  RETURN_IF_ERROR(CheckProbability(params.resolution_mutate_probability,
                                   "evolution.resolution_mutate_probability", true));
  if (RoundToInt(params.parent_ratio * params.population_size) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("evolution.parent_ratio: ", params.parent_ratio,
                                                   " of a population of ", params.population_size,
                                                   " leaves no parent"));
  }
  if (params.max_resample_attempts < 1 || params.max_resample_attempts > kMaxResampleAttempts) {
    return absl::InvalidArgumentError(
        absl::StrCat("evolution.max_resample_attempts: must be in [1, ", kMaxResampleAttempts,
                     "], got ", params.max_resample_attempts));
  }
  return absl::OkStatus();
}

std::string SerializeCheckpoint(const Checkpoint& checkpoint) {
  Writer writer;
  for (const char c : std::string(kCheckpointMagic)) writer.Put<char>(c);
  writer.Put<int32_t>(checkpoint.generations_done);
  for (uint64_t word : checkpoint.rng_state) writer.Put<uint64_t>(word);
  writer.Put<int64_t>(checkpoint.candidates_evaluated);
  writer.Put<uint32_t>(static_cast<uint32_t>(checkpoint.population.size()));
  for (const Individual& individual : checkpoint.population) writer.PutIndividual(individual);
  writer.Put<uint8_t>(checkpoint.best.has_value() ? 1 : 0);
  if (checkpoint.best) writer.PutIndividual(*checkpoint.best);
  return writer.Take();
}

absl::StatusOr<Checkpoint> ParseCheckpoint(absl::string_view bytes) {
  const auto corrupt = [] {
    return absl::DataLossError("search checkpoint is truncated or corrupt");
  };
  const absl::string_view magic(kCheckpointMagic);
  const bool version1 = absl::StartsWith(bytes, kCheckpointMagicV1);
  if (!version1 && !absl::StartsWith(bytes, magic)) return corrupt();
  Reader reader(bytes.substr(magic.size()), /*full_costs=*/!version1);
  Checkpoint checkpoint;
  checkpoint.costs_missing = version1;
  int32_t generations_done = 0;
  if (!reader.Get(&generations_done)) return corrupt();
  checkpoint.generations_done = generations_done;
  for (uint64_t& word : checkpoint.rng_state) {
    if (!reader.Get(&word)) return corrupt();
  }
  uint32_t population = 0;
  if (!reader.Get(&checkpoint.candidates_evaluated) || !reader.Get(&population) ||
      population > kMaxPopulationSize * 2) {
    return corrupt();
  }
  checkpoint.population.resize(population);
  for (Individual& individual : checkpoint.population) {
    if (!reader.GetIndividual(&individual)) return corrupt();
  }
  uint8_t has_best = 0;
  if (!reader.Get(&has_best)) return corrupt();
  if (has_best != 0) {
    checkpoint.best.emplace();
    if (!reader.GetIndividual(&*checkpoint.best)) return corrupt();
  }
  if (!reader.AtEnd()) return corrupt();
  return checkpoint;
}

EvolutionSearch::EvolutionSearch(const oface::SearchSpace& space,
                                 const hwmodels::LutCostModel& cost_model,
                                 predictor::AccuracyPredictor& predictor, Budgets budgets,
                                 EvolutionParams params, uint64_t seed)
    : space_(space),
      cost_model_(cost_model),
      predictor_(predictor),
      budgets_(budgets),
      params_(params),
      rng_(seed) {
  for (size_t g = 0; g < space_.genes().size(); ++g) {
    const oface::GeneSpec& gene = space_.genes()[g];
    if (oface::IsBitsGene(gene) && gene.choices.size() > 1)
      bits_genes_.push_back(static_cast<int>(g));
  }
}

bool EvolutionSearch::LowerBitsUntilFeasible(Individual* child) {
  std::vector<int> lowerable;
  for (const int gene : bits_genes_) {
    if (child->genotype[gene] > space_.genes()[gene].choices.front()) lowerable.push_back(gene);
  }
  const auto drop = [&](size_t index) {
    lowerable[index] = lowerable.back();
    lowerable.pop_back();
  };
  while (!lowerable.empty()) {
    const size_t index = rng_.Uniform(static_cast<uint32_t>(lowerable.size()));
    const int gene = lowerable[index];
    const std::vector<int>& choices = space_.genes()[gene].choices;
    const int previous = child->genotype[gene];
    // The next lower choice: `previous` is above the lowest, so one exists.
    child->genotype[gene] = *(std::lower_bound(choices.begin(), choices.end(), previous) - 1);
    if (!space_.SatisfiesRules(child->genotype)) {
      child->genotype[gene] = previous;
      drop(index);
      continue;
    }
    if (child->genotype[gene] == choices.front()) drop(index);
    child->cost = cost_model_.Evaluate(child->genotype);
    if (MeetsBudgets(child->cost, budgets_)) return true;
  }
  return false;
}

std::string EvolutionSearch::DescribeBudgets() const {
  std::vector<std::string> parts;
  if (budgets_.max_latency_ms)
    parts.push_back(absl::StrCat("max_latency_ms=", *budgets_.max_latency_ms));
  if (budgets_.max_energy_mj)
    parts.push_back(absl::StrCat("max_energy_mj=", *budgets_.max_energy_mj));
  if (budgets_.max_size_mb) parts.push_back(absl::StrCat("max_size_mb=", *budgets_.max_size_mb));
  if (budgets_.max_bitops) parts.push_back(absl::StrCat("max_bitops=", *budgets_.max_bitops));
  return parts.empty() ? "no budgets" : absl::StrJoin(parts, ", ");
}

std::vector<Individual> EvolutionSearch::SelectParents(std::vector<Individual> population,
                                                       int count) const {
  const size_t keep = std::min<size_t>(population.size(), count);
  if (params_.objective == Objective::kMaxAccuracy) {
    std::stable_sort(
        population.begin(), population.end(),
        [](const Individual& a, const Individual& b) { return a.accuracy > b.accuracy; });
    population.resize(keep);
    return population;
  }
  // NSGA-II order on (accuracy up, cost down): non-dominated rank, then crowding distance.
  // The population is a few hundred at most, so the quadratic sort is cheap next to scoring.
  const size_t n = population.size();
  std::vector<double> cost(n);
  for (size_t i = 0; i < n; ++i) cost[i] = CostValue(population[i].cost, params_.pareto_cost);
  const auto dominates = [&](size_t a, size_t b) {
    const double acc_a = population[a].accuracy, acc_b = population[b].accuracy;
    return acc_a >= acc_b && cost[a] <= cost[b] && (acc_a > acc_b || cost[a] < cost[b]);
  };
  std::vector<int> rank(n, -1);
  std::vector<double> crowding(n, 0.0);
  size_t ranked = 0;
  for (int front = 0; ranked < n; ++front) {
    std::vector<size_t> members;
    for (size_t i = 0; i < n; ++i) {
      if (rank[i] >= 0) continue;
      bool dominated = false;
      for (size_t j = 0; j < n && !dominated; ++j) {
        // Only networks not yet ranked compete for this front.
        dominated = j != i && rank[j] < 0 && dominates(j, i);
      }
      if (!dominated) members.push_back(i);
    }
    for (size_t i : members) rank[i] = front;
    ranked += members.size();
    // Crowding distance along the front, per objective, normalised by its range; the two
    // ends of each objective are always kept.
    for (int objective = 0; objective < 2; ++objective) {
      const auto value = [&](size_t i) {
        return objective == 0 ? static_cast<double>(population[i].accuracy) : cost[i];
      };
      std::vector<size_t> order = members;
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return value(a) < value(b); });
      const double range = value(order.back()) - value(order.front());
      crowding[order.front()] = crowding[order.back()] = std::numeric_limits<double>::infinity();
      if (!(range > 0.0) || !std::isfinite(range)) continue;
      for (size_t k = 1; k + 1 < order.size(); ++k) {
        crowding[order[k]] += (value(order[k + 1]) - value(order[k - 1])) / range;
      }
    }
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (rank[a] != rank[b]) return rank[a] < rank[b];
    return crowding[a] > crowding[b];
  });
  std::vector<Individual> parents;
  parents.reserve(keep);
  for (size_t k = 0; k < keep; ++k) parents.push_back(std::move(population[order[k]]));
  return parents;
}

absl::Status EvolutionSearch::DrawFeasibleChild(ChildKind kind,
                                                const std::vector<Individual>& parents,
                                                GenerationReport* report,
                                                std::vector<Individual>* pending) {
  for (int attempt = 0; attempt < params_.max_resample_attempts; ++attempt) {
    if (attempt > 0 && attempt % kDrawsPerCancelCheck == 0 && cancelled_ != nullptr &&
        *cancelled_ && (*cancelled_)()) {
      return absl::CancelledError("stopped between draws");
    }
    Individual child;
    switch (kind) {
      case ChildKind::kRandom:
        child.genotype = space_.Sample(rng_);
        break;
      case ChildKind::kMutant: {
        const Individual& parent = parents[rng_.Uniform(static_cast<uint32_t>(parents.size()))];
        child.genotype = space_.Mutate(parent.genotype, params_.mutate_probability,
                                       params_.resolution_mutate_probability, rng_);
        break;
      }
      case ChildKind::kCrossover: {
        const auto count = static_cast<uint32_t>(parents.size());
        const Individual& first = parents[rng_.Uniform(count)];
        const Individual& second = parents[rng_.Uniform(count)];
        child.genotype = space_.Crossover(first.genotype, second.genotype, rng_);
        break;
      }
    }
    child.cost = cost_model_.Evaluate(child.genotype);
    if (MeetsBudgets(child.cost, budgets_)) {
      pending->push_back(std::move(child));
      return absl::OkStatus();
    }
    ++report->rejected_total;
    if (params_.keep_every_rejected ||
        report->rejected.size() < static_cast<size_t>(params_.population_size)) {
      report->rejected.push_back(child);
    }
    if (kind == ChildKind::kRandom && params_.lower_bits_of_infeasible_draws &&
        LowerBitsUntilFeasible(&child)) {
      pending->push_back(std::move(child));
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("no network of space ", space_.name(), " met the budgets (", DescribeBudgets(),
                   ") in ", params_.max_resample_attempts, " draws; relax the budgets"));
}

absl::Status EvolutionSearch::Score(std::vector<Individual>* pending, GenerationReport* report) {
  // Networks are scored once per search: the memo is keyed by the canonical genotype, and
  // duplicates within a batch share one prediction.
  feature_batch_.Clear();
  pending_to_batch_.assign(pending->size(), -1);
  absl::flat_hash_map<oface::Genotype, int> batch_slot;
  std::vector<oface::Genotype> canonical(pending->size());
  for (size_t i = 0; i < pending->size(); ++i) {
    canonical[i] = space_.Canonical((*pending)[i].genotype);
    if (accuracy_memo_.contains(canonical[i])) continue;
    auto [slot, inserted] = batch_slot.try_emplace(canonical[i], feature_batch_.size());
    if (inserted) {
      space_.ActiveFeatures(canonical[i], feature_batch_.mutable_indices());
      feature_batch_.EndSample();
    }
    pending_to_batch_[i] = slot->second;
  }
  if (feature_batch_.size() > 0) {
    RETURN_IF_ERROR(predictor_.Predict(feature_batch_, &predictions_));
  }
  for (size_t i = 0; i < pending->size(); ++i) {
    Individual& child = (*pending)[i];
    child.generation = report->generation;
    if (pending_to_batch_[i] >= 0) {
      const float accuracy = predictions_[pending_to_batch_[i]];
      if (!std::isfinite(accuracy)) {
        return absl::InternalError(absl::StrCat("the accuracy predictor returned ", accuracy,
                                                " for ", space_.ToJson(canonical[i])));
      }
      accuracy_memo_.emplace(canonical[i], accuracy);
      child.accuracy = accuracy;
    } else {
      child.accuracy = accuracy_memo_.at(canonical[i]);
    }
    report->children.push_back(std::move(child));
  }
  pending->clear();
  return absl::OkStatus();
}

absl::StatusOr<SearchResult> EvolutionSearch::Run(const GenerationCallback& on_generation,
                                                  const CancelCheck& cancelled,
                                                  const Checkpoint* resume_from) {
  std::vector<Individual> population;
  std::optional<Individual> best;
  int64_t candidates_evaluated = 0;
  int next_generation = 0;
  if (resume_from != nullptr && resume_from->generations_done >= 0) {
    rng_.set_state(resume_from->rng_state);
    population = resume_from->population;
    best = resume_from->best;
    if (resume_from->costs_missing) {
      // The cost model is the one the job was priced with (its table version is pinned), so
      // pricing again gives the figures the old checkpoint dropped.
      for (Individual& individual : population) {
        individual.cost = cost_model_.Evaluate(individual.genotype);
      }
      if (best) best->cost = cost_model_.Evaluate(best->genotype);
    }
    candidates_evaluated = resume_from->candidates_evaluated;
    next_generation = resume_from->generations_done + 1;
  }

  const int parents_size = std::max(1, RoundToInt(params_.parent_ratio * params_.population_size));
  const int mutants = RoundToInt(params_.mutation_ratio * params_.population_size);
  std::vector<Individual> pending;
  std::vector<Individual> parents;
  pending.reserve(params_.population_size);

  SearchResult result;
  result.generations_done = next_generation - 1;
  cancelled_ = &cancelled;
  for (int generation = next_generation; generation <= params_.generations; ++generation) {
    if (cancelled && cancelled()) {
      result.cancelled = true;
      break;
    }
    GenerationReport report;
    report.generation = generation;
    absl::Status drawn = absl::OkStatus();
    if (generation == 0) {
      for (int i = 0; i < params_.population_size && drawn.ok(); ++i) {
        drawn = DrawFeasibleChild(ChildKind::kRandom, parents, &report, &pending);
      }
    } else {
      parents = SelectParents(std::move(population), parents_size);
      for (int i = 0; i < mutants && drawn.ok(); ++i) {
        drawn = DrawFeasibleChild(ChildKind::kMutant, parents, &report, &pending);
      }
      for (int i = mutants; i < params_.population_size && drawn.ok(); ++i) {
        drawn = DrawFeasibleChild(ChildKind::kCrossover, parents, &report, &pending);
      }
    }
    if (absl::IsCancelled(drawn)) {
      // Stopped midway: the generation is dropped, as a crash would drop it.
      result.cancelled = true;
      break;
    }
    RETURN_IF_ERROR(drawn);
    RETURN_IF_ERROR(Score(&pending, &report));
    candidates_evaluated += static_cast<int64_t>(report.children.size());
    for (size_t i = 0; i < report.children.size(); ++i) {
      const Individual& child = report.children[i];
      if (ReplacesBest(child.accuracy,
                       best ? std::optional<double>(best->accuracy) : std::nullopt)) {
        best = child;
        report.best_index = static_cast<int>(i);
      }
    }
    population = std::move(parents);
    parents.clear();
    population.insert(population.end(), report.children.begin(), report.children.end());

    report.candidates_evaluated = candidates_evaluated;
    report.best = best ? &*best : nullptr;
    Checkpoint checkpoint;
    checkpoint.generations_done = generation;
    checkpoint.rng_state = rng_.state();
    checkpoint.population = population;
    checkpoint.best = best;
    checkpoint.candidates_evaluated = candidates_evaluated;
    if (on_generation) RETURN_IF_ERROR(on_generation(report, checkpoint));
    result.generations_done = generation;
  }
  result.best = best;
  result.candidates_evaluated = candidates_evaluated;
  result.predictions = static_cast<int64_t>(accuracy_memo_.size());
  return result;
}

}  // namespace apq::search
