#include "server/store/memory_database.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/record_checks.h"

namespace apq::server::memory_internal {

absl::StatusOr<double> StoredDouble(double value, absl::string_view field,
                                    absl::string_view operation) {
  RETURN_IF_ERROR(store_internal::CheckNotNan(value, field, operation));
  return value == 0.0 ? 0.0 : value;
}

absl::StatusOr<CandidateRecord> StoredCandidate(CandidateRecord candidate, absl::string_view what,
                                                absl::string_view operation) {
  for (const auto& [field, figure] : store_internal::kCandidateFigures) {
    std::optional<double>& value = candidate.*figure;
    if (!value.has_value()) continue;
    ASSIGN_OR_RETURN(*value, StoredDouble(*value, absl::StrCat(what, " ", field), operation));
  }
  candidate.on_pareto_front = false;
  candidate.measured.reset();
  return candidate;
}

const CandidateRecord* StoredJob::FindCandidate(int64_t id) const {
  auto found = std::lower_bound(
      candidates.begin(), candidates.end(), id,
      [](const CandidateRecord& candidate, int64_t wanted) { return candidate.id < wanted; });
  return found == candidates.end() || found->id != id ? nullptr : &*found;
}

CandidateRecord* StoredJob::FindCandidate(int64_t id) {
  return const_cast<CandidateRecord*>(std::as_const(*this).FindCandidate(id));
}

JobRecord StoredJob::View() const {
  JobRecord view = record;
  if (view.best.has_value()) {
    // The measurement and count of the best's row; none and 1 when its id names no row.
    const CandidateRecord* row = FindCandidate(view.best->id);
    view.best->measured = row != nullptr ? row->measured : std::nullopt;
    view.best->times_seen = row != nullptr ? row->times_seen : 1;
  }
  if (verified_best_id.has_value()) {
    const CandidateRecord* row = FindCandidate(*verified_best_id);
    if (row != nullptr) {
      view.verified_best = *row;
      view.verified_best->on_pareto_front = false;
    }
  }
  return view;
}

StoredJob* MemoryDatabase::FindJob(const std::string& id) {
  auto found = job_index.find(id);
  if (found == job_index.end() || jobs[found->second].deleted) return nullptr;
  return &jobs[found->second];
}

StoredTrainingJob* MemoryDatabase::FindTrainingJob(const std::string& id) {
  auto found = training_job_index.find(id);
  return found == training_job_index.end() ? nullptr : &training_jobs[found->second];
}

PredictorRecord* MemoryDatabase::FindPredictor(const std::string& space,
                                               const std::string& version) {
  auto found = predictors.find(space);
  if (found == predictors.end()) return nullptr;
  for (PredictorRecord& predictor : found->second) {
    if (predictor.version == version) return &predictor;
  }
  return nullptr;
}

void MemoryDatabase::MakeDefault(const std::string& space, const std::string& version) {
  auto found = predictors.find(space);
  if (found == predictors.end()) return;
  for (PredictorRecord& predictor : found->second) {
    predictor.is_default = predictor.version == version;
  }
}

absl::Status MemoryDatabase::InsertPredictor(const PredictorRecord& predictor,
                                             absl::string_view operation) {
  RETURN_IF_ERROR(store_internal::CheckPredictor(predictor));
  if (FindPredictor(predictor.space, predictor.version) != nullptr) {
    return store_internal::PredictorExists(predictor);
  }
  PredictorRecord stored = predictor;
  ASSIGN_OR_RETURN(stored.created_unix_s,
                   StoredDouble(predictor.created_unix_s, "created_unix_s", operation));
  // The new one is the only default: no stored version is "" (CheckPredictor).
  if (stored.is_default) MakeDefault(stored.space, "");
  predictors[stored.space].push_back(std::move(stored));
  return absl::OkStatus();
}

absl::Status MemoryDatabase::AppendMeasurements(StoredDataset& dataset,
                                                const std::vector<MeasurementRow>& rows,
                                                absl::string_view operation) {
  RETURN_IF_ERROR(store_internal::CheckRowsSplit(
      dataset.record.name, rows, dataset.rows.empty() ? nullptr : &dataset.rows.front().split));
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const MeasurementRow& held : dataset.rows) {
      if (held.method == rows[i].method && held.config_json == rows[i].config_json) {
        return store_internal::MeasurementStored(dataset.record.name, i, rows[i]);
      }
    }
  }
  std::vector<MeasurementRow> stored = rows;
  for (size_t i = 0; i < stored.size(); ++i) {
    MeasurementRow& row = stored[i];
    row.id = next_measurement_id + static_cast<int64_t>(i);
    // Accuracy and seconds are checked: not NaN.
    ASSIGN_OR_RETURN(row.accuracy, StoredDouble(row.accuracy, "accuracy", operation));
    ASSIGN_OR_RETURN(row.seconds, StoredDouble(row.seconds, "seconds", operation));
    ASSIGN_OR_RETURN(row.created_unix_s,
                     StoredDouble(row.created_unix_s, "created_unix_s", operation));
  }
  next_measurement_id += static_cast<int64_t>(stored.size());
  dataset.rows.insert(dataset.rows.end(), std::make_move_iterator(stored.begin()),
                      std::make_move_iterator(stored.end()));
  return absl::OkStatus();
}

void MemoryDatabase::DeleteJobArtifacts(const std::string& job_id) {
  for (auto it = artifacts.begin(); it != artifacts.end();) {
    it = it->second.job_id == job_id ? artifacts.erase(it) : std::next(it);
  }
}

}  // namespace apq::server::memory_internal
