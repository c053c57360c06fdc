#include "server/pending_steps.h"

#include <utility>

namespace apq::server {
namespace {

// Table-priced metrics that the fallback model priced (partly), comma-separated.
std::string ModelledMetrics(const hwmodels::NetworkCost& cost) {
  if (!cost.modelled) return "";
  return cost.has_energy ? "latency_ms,energy_mj" : "latency_ms";
}

}  // namespace

namespace {

// CandidateFromIndividual, given the canonical genotype of the individual's network.
CandidateRecord CandidateFromCanonical(const oface::SearchSpace& space,
                                       const oface::Genotype& canonical,
                                       const search::Individual& individual, int generation,
                                       bool feasible) {
  CandidateRecord record;
  record.generation = generation;
  record.config_json = space.ToJson(canonical);
  if (feasible) record.accuracy = individual.accuracy;
  record.latency_ms = individual.cost.latency_ms;
  if (individual.cost.has_energy) record.energy_mj = individual.cost.energy_mj;
  if (individual.cost.has_size_and_bitops) {
    record.size_mb = individual.cost.size_mb;
    record.bitops = individual.cost.bitops;
  }
  record.modelled = ModelledMetrics(individual.cost);
  record.feasible = feasible;
  return record;
}

}  // namespace

CandidateRecord CandidateFromIndividual(const oface::SearchSpace& space,
                                        const search::Individual& individual, int generation,
                                        bool feasible) {
  return CandidateFromCanonical(space, space.Canonical(individual.genotype), individual, generation,
                                feasible);
}

PendingSteps::PendingSteps(const oface::SearchSpace& space, bool keep_rejected,
                           int64_t rejected_draws_before)
    : space_(space), keep_rejected_(keep_rejected), rejected_draws_(rejected_draws_before) {}

size_t PendingSteps::IndexOf(const search::Individual& individual, int step, bool feasible) {
  auto [by_genotype, new_genotype] =
      index_of_genotype_.try_emplace(individual.genotype, candidates_.size());
  if (!new_genotype) return by_genotype->second;
  oface::Genotype canonical = space_.Canonical(individual.genotype);
  auto [by_canonical, new_canonical] =
      index_of_canonical_.try_emplace(std::move(canonical), candidates_.size());
  if (new_canonical) {
    CandidateRecord candidate =
        CandidateFromCanonical(space_, by_canonical->first, individual, step, feasible);
    candidate.times_seen = 0;
    candidates_.push_back(std::move(candidate));
  }
  by_genotype->second = by_canonical->second;
  return by_canonical->second;
}

void PendingSteps::Add(const search::StepReport& report, bool with_checkpoint) {
  if (!first_step_.has_value()) first_step_ = report.step;
  last_step_ = report.step;
  for (size_t i = 0; i < report.scored.size(); ++i) {
    const size_t index = IndexOf(report.scored[i], report.step, /*feasible=*/true);
    ++candidates_[index].times_seen;
    if (static_cast<int>(i) == report.best_index_in_step) best_index_ = static_cast<int>(index);
  }
  if (keep_rejected_) {
    for (const search::Individual& rejected : report.rejected) {
      ++candidates_[IndexOf(rejected, report.step, /*feasible=*/false)].times_seen;
    }
  }
  candidates_evaluated_ = report.candidates_evaluated;
  rejected_draws_ += report.rejected_total;
  engine_metrics_ = report.metrics;
  if (report.best != nullptr) {
    best_ = CandidateFromIndividual(space_, *report.best, report.best->generation, true);
  } else {
    best_.reset();
  }
  if (with_checkpoint) {
    checkpoint_ = report.write_checkpoint();
    checkpoint_step_ = report.step;
  }
}

GenerationBatch PendingSteps::Take(int64_t stored_best_id) {
  GenerationBatch batch;
  batch.first_generation = first_step();
  batch.last_generation = last_step();
  batch.candidates = std::move(candidates_);
  batch.candidates_evaluated = candidates_evaluated_;
  batch.rejected_draws = rejected_draws_;
  batch.best = best_;
  if (batch.best.has_value()) {
    batch.best->id = stored_best_id;
    batch.best_batch_index = best_index_;
  }
  batch.checkpoint = std::move(checkpoint_);
  batch.engine_metrics = std::move(engine_metrics_);

  first_step_.reset();
  last_step_.reset();
  candidates_.clear();
  index_of_genotype_.clear();
  index_of_canonical_.clear();
  best_index_ = -1;
  checkpoint_.clear();
  checkpoint_step_.reset();
  engine_metrics_.clear();
  return batch;
}

}  // namespace apq::server
