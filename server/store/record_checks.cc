#include "server/store/record_checks.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace apq::server::store_internal {

absl::Status CheckPage(int64_t offset, int limit) {
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", offset));
  }
  if (limit < 1 || limit > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be in [1, ", kMaxPageSize, "], got ", limit));
  }
  return absl::OkStatus();
}

bool IsValidState(JobState state) {
  const int value = static_cast<int>(state);
  return value >= static_cast<int>(JobState::kQueued) &&
         value <= static_cast<int>(JobState::kCancelled);
}

bool IsValidOrder(CandidateOrder order) {
  const int value = static_cast<int>(order);
  return value >= static_cast<int>(CandidateOrder::kId) &&
         value <= static_cast<int>(CandidateOrder::kBitopsAsc);
}

absl::Status CheckTerminal(JobState state, absl::string_view method) {
  if (IsTerminal(state)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(method, " needs a terminal state, got ", static_cast<int>(state)));
}

absl::Status CheckGenerationBatch(const GenerationBatch& batch) {
  if (batch.last_generation < batch.first_generation) {
    return absl::InvalidArgumentError(absl::StrCat("last_generation ", batch.last_generation,
                                                   " is before first_generation ",
                                                   batch.first_generation));
  }
  if (batch.candidates_evaluated < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("candidates_evaluated must be >= 0, got ", batch.candidates_evaluated));
  }
  if (batch.rejected_draws < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rejected_draws must be >= 0, got ", batch.rejected_draws));
  }
  if (batch.engine_metrics.size() > kMaxEngineMetrics) {
    return absl::InvalidArgumentError(absl::StrCat("engine_metrics: at most ", kMaxEngineMetrics,
                                                   ", got ", batch.engine_metrics.size()));
  }
  for (size_t i = 0; i < batch.engine_metrics.size(); ++i) {
    const auto& [name, value] = batch.engine_metrics[i];
    const bool well_formed =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
    if (!well_formed) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine_metrics[", i, "]: a name of 1 to 64 characters of [a-z0-9_], got \"",
                       absl::CHexEscape(name.substr(0, 64)), "\""));
    }
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine_metrics[", i, "] (", name, "): must be finite"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (batch.engine_metrics[j].first == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("engine_metrics[", i, "]: ", name, " appears twice"));
      }
    }
  }
  for (size_t i = 0; i < batch.candidates.size(); ++i) {
    const CandidateRecord& candidate = batch.candidates[i];
    if (candidate.generation < batch.first_generation ||
        candidate.generation > batch.last_generation) {
      return absl::InvalidArgumentError(absl::StrCat(
          "candidates[", i, "].generation ", candidate.generation, " is outside the batch's ",
          batch.first_generation, "..", batch.last_generation));
    }
    if (candidate.times_seen < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("candidates[", i, "].times_seen must be >= 1, got ", candidate.times_seen));
    }
  }
  if (batch.best_batch_index < 0) return absl::OkStatus();
  if (!batch.best.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("best_batch_index ", batch.best_batch_index, " is set without a best"));
  }
  if (static_cast<size_t>(batch.best_batch_index) >= batch.candidates.size()) {
    return absl::InvalidArgumentError(absl::StrCat("best_batch_index ", batch.best_batch_index,
                                                   " is out of range (", batch.candidates.size(),
                                                   " candidates)"));
  }
  return absl::OkStatus();
}

std::string AppendOperation(const std::string& job_id, const GenerationBatch& batch) {
  if (batch.first_generation == batch.last_generation) {
    return absl::StrCat("appending generation ", batch.first_generation, " to job ", job_id);
  }
  return absl::StrCat("appending generations ", batch.first_generation, "..", batch.last_generation,
                      " to job ", job_id);
}

absl::Status CheckDistinctIds(const std::vector<int64_t>& ids) {
  absl::flat_hash_set<int64_t> seen;
  for (const int64_t id : ids) {
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("Pareto front candidate ", id, " is given twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTableVersion(const TableVersionRecord& table) {
  if (table.device.empty()) return absl::InvalidArgumentError("device name is empty");
  absl::flat_hash_set<absl::string_view> names;
  for (const TableFileRecord& file : table.files) {
    if (!names.insert(file.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("table file \"", file.name, "\" is given twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDataset(const DatasetRecord& dataset) {
  if (dataset.name.empty()) return absl::InvalidArgumentError("dataset name is empty");
  if (dataset.space.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset \"", dataset.name, "\": space is empty"));
  }
  return absl::OkStatus();
}

namespace {

// The checks of one row by itself; `what` names it in errors.
absl::Status CheckMeasurementRowAlone(const MeasurementRow& row, absl::string_view what) {
  if (!(row.accuracy >= 0.0 && row.accuracy <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": accuracy ", row.accuracy, " is not in [0, 1]"));
  }
  if (!(row.seconds >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": seconds ", row.seconds, " is not >= 0"));
  }
  if (row.config_json.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": config_json is empty"));
  }
  if (row.method.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": method is empty"));
  }
  if (!row.split.empty() && row.split != "train" && row.split != "validation" &&
      row.split != "test") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": split \"", row.split, "\" is not train, validation, test or empty"));
  }
  return absl::OkStatus();
}

}  // namespace

// Checked before writing rather than left to a table's constraints, so the error names the
// row.
absl::Status CheckMeasurementRows(const std::vector<MeasurementRow>& rows) {
  absl::flat_hash_set<std::pair<absl::string_view, absl::string_view>> seen;
  for (size_t i = 0; i < rows.size(); ++i) {
    const MeasurementRow& row = rows[i];
    const std::string what = absl::StrCat("measurement ", i);
    if (absl::Status alone = CheckMeasurementRowAlone(row, what); !alone.ok()) return alone;
    if (!seen.emplace(row.method, row.config_json).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": repeats an earlier row's config for method ", row.method));
    }
  }
  return absl::OkStatus();
}

absl::Status SplitMismatch(const std::string& dataset, size_t index, const MeasurementRow& row,
                           const std::string& held_split) {
  const auto name = [](const std::string& split) {
    return split.empty() ? std::string("an unrecorded split") : absl::StrCat("\"", split, "\"");
  };
  return absl::FailedPreconditionError(absl::StrCat(
      "dataset ", dataset, ": measurement ", index, " was measured on ", name(row.split),
      " but the dataset holds measurements of ", name(held_split), "; a dataset mixes no splits"));
}

absl::Status CheckRowsSplit(const std::string& dataset, const std::vector<MeasurementRow>& rows,
                            const std::string* held_split) {
  if (rows.empty()) return absl::OkStatus();
  const std::string& split = held_split != nullptr ? *held_split : rows[0].split;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].split != split) return SplitMismatch(dataset, i, rows[i], split);
  }
  return absl::OkStatus();
}

absl::Status CheckPredictor(const PredictorRecord& predictor) {
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"space", &predictor.space},
        {"version", &predictor.version},
        {"kind", &predictor.kind}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("predictor ", field, " is empty"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTrainingEnd(JobState state, const PredictorRecord* predictor) {
  if (!IsTerminal(state)) return CheckTerminal(state, "FinishTrainingJob");
  if (predictor != nullptr && state != JobState::kSucceeded) {
    return absl::InvalidArgumentError("FinishTrainingJob: only a succeeded job has a predictor");
  }
  return absl::OkStatus();
}

absl::Status CheckNotNan(double value, absl::string_view field, absl::string_view operation) {
  if (!std::isnan(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(operation, ": ", field, " is NaN"));
}

absl::Status CheckFiguresNotNan(const CandidateRecord& candidate, absl::string_view what,
                                absl::string_view operation) {
  for (const auto& [field, figure] : kCandidateFigures) {
    const std::optional<double>& value = candidate.*figure;
    if (!value.has_value()) continue;
    absl::Status checked = CheckNotNan(*value, absl::StrCat(what, " ", field), operation);
    if (!checked.ok()) return checked;
  }
  return absl::OkStatus();
}

absl::Status JobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

absl::Status TrainingJobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("training job \"", job_id, "\" not found"));
}

absl::Status CheckCandidateMeasurement(const CandidateMeasurement& measurement) {
  if (std::isnan(measurement.accuracy) || measurement.accuracy < 0 || measurement.accuracy > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("measured accuracy must be in [0, 1], got ", measurement.accuracy));
  }
  if (std::isnan(measurement.seconds) || measurement.seconds < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("measured seconds must be >= 0, got ", measurement.seconds));
  }
  if (measurement.method.empty()) return absl::InvalidArgumentError("measured method is empty");
  if (measurement.split.empty()) return absl::InvalidArgumentError("measured split is empty");
  return absl::OkStatus();
}

absl::Status CheckFinalists(int finalists) {
  if (finalists >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("a verification stage needs finalists >= 1, got ", finalists));
}

absl::StatusOr<bool> CheckBeginVerification(const std::string& job_id, int finalists,
                                            JobStage stage, int held_finalists) {
  if (stage != JobStage::kVerification) return true;
  if (held_finalists == finalists) return false;
  return absl::FailedPreconditionError(absl::StrCat(
      "job \"", job_id, "\" verifies ", held_finalists, " finalists already, not ", finalists));
}

absl::StatusOr<bool> CheckRecordVerification(const std::string& job_id, int64_t candidate_id,
                                             const CandidateMeasurement& measurement,
                                             int64_t verified_best_id,
                                             const VerificationTarget& target) {
  if (target.stage != JobStage::kVerification) {
    return absl::FailedPreconditionError(
        absl::StrCat("job \"", job_id, "\" is not in its verification stage"));
  }
  for (const auto& [id, row] : {std::pair{candidate_id, target.candidate},
                                std::pair{verified_best_id, target.verified_best}}) {
    if (row == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("candidate ", id, " is not a feasible candidate of job \"", job_id, "\""));
    }
  }
  if (verified_best_id != candidate_id && !target.verified_best->measured.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("verified best ", verified_best_id, " of job \"",
                                                   job_id, "\" has no measurement"));
  }
  if (const std::optional<CandidateMeasurement>& held = target.candidate->measured) {
    if (held->accuracy == measurement.accuracy && held->method == measurement.method &&
        held->split == measurement.split && held->seconds == measurement.seconds) {
      return false;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "candidate ", candidate_id, " of job \"", job_id, "\" is measured already (accuracy ",
        held->accuracy, ", ", held->method, ", ", held->split, ")"));
  }
  if (target.measured >= target.finalists) {
    return absl::FailedPreconditionError(absl::StrCat("job \"", job_id, "\" has measured all ",
                                                      target.finalists, " of its finalists"));
  }
  return true;
}

absl::Status JobNotEnded(const std::string& job_id, JobState state) {
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job_id, " is ", state == JobState::kQueued ? "queued" : "running",
                   "; cancel it before deleting it"));
}

absl::Status JobEnded(const std::string& job_id, JobState state) {
  return absl::FailedPreconditionError(
      absl::StrCat("job \"", job_id, "\" has ended (state ", static_cast<int>(state), ")"));
}

absl::Status TrainingJobEnded(const std::string& job_id, JobState state) {
  return absl::FailedPreconditionError(absl::StrCat(
      "training job \"", job_id, "\" has ended (state ", static_cast<int>(state), ")"));
}

absl::Status SearchStageEnded(const std::string& job_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("job \"", job_id, "\" has ended its search stage (it verifies finalists)"));
}

absl::Status GenerationOutOfOrder(const std::string& job_id, int64_t expected, int got) {
  return absl::FailedPreconditionError(
      absl::StrCat("job \"", job_id, "\" expects generation ", expected, ", got ", got));
}

absl::Status NotAFrontCandidate(const std::string& job_id, int64_t id) {
  return absl::InvalidArgumentError(absl::StrCat(
      "Pareto front candidate ", id, " is not a feasible candidate of job \"", job_id, "\""));
}

absl::Status DeviceNotFound(const std::string& device) {
  return absl::NotFoundError(absl::StrCat("device \"", device, "\" has no cost tables"));
}

absl::Status TableVersionNotFound(const std::string& device, int64_t version, bool device_known) {
  const std::string wanted = version == 0 ? "latest" : absl::StrCat(version);
  if (!device_known) {
    return absl::NotFoundError(absl::StrCat(
        "device \"", device, "\" has no cost tables (asked for version ", wanted, ")"));
  }
  return absl::NotFoundError(absl::StrCat("device \"", device, "\" has no table version ", wanted));
}

absl::Status DatasetNotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("unknown dataset \"", name, "\""));
}

absl::Status DatasetExists(const std::string& name) {
  return absl::AlreadyExistsError(absl::StrCat("dataset \"", name, "\" already exists"));
}

absl::Status MeasurementStored(const std::string& dataset, size_t index,
                               const MeasurementRow& row) {
  return absl::AlreadyExistsError(absl::StrCat("measurement ", index, ": dataset ", dataset,
                                               " already holds its config for method ",
                                               row.method));
}

absl::Status PredictorNotFound(const std::string& space, const std::string& version) {
  return absl::NotFoundError(
      absl::StrCat("space ", space, " has no predictor version '", version, "'"));
}

absl::Status CheckCursor(const CandidateQuery& query) {
  if (!query.after.has_value()) return absl::OkStatus();
  if (query.offset != 0) {
    return absl::InvalidArgumentError("a candidate cursor pages by itself: offset must be 0");
  }
  if (query.after->key.has_value() && std::isnan(*query.after->key)) {
    return absl::InvalidArgumentError("candidate cursor key is NaN");
  }
  return absl::OkStatus();
}

absl::Status CheckToken(const TokenRecord& token) {
  if (token.id.empty()) return absl::InvalidArgumentError("token id is empty");
  if (token.name.empty()) return absl::InvalidArgumentError("token name is empty");
  const int role = static_cast<int>(token.role);
  if (role < static_cast<int>(Role::kViewer) || role > static_cast<int>(Role::kAdmin)) {
    return absl::InvalidArgumentError(absl::StrCat("token role: unknown value ", role));
  }
  const bool hex = token.secret_sha256.size() == 64 &&
                   std::all_of(token.secret_sha256.begin(), token.secret_sha256.end(), [](char c) {
                     return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                   });
  if (!hex) {
    return absl::InvalidArgumentError("token secret_sha256: not 64 lowercase hex characters");
  }
  if (absl::Status created = CheckNotNan(token.created_unix_s, "created_unix_s", "adding a token");
      !created.ok()) {
    return created;
  }
  return CheckNotNan(token.revoked_unix_s, "revoked_unix_s", "adding a token");
}

absl::Status TokenNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no token '", id, "'"));
}

absl::Status TokenExists(const std::string& id) {
  return absl::AlreadyExistsError(absl::StrCat("token '", id, "' exists"));
}

absl::Status TokenRevoked(const std::string& id) {
  return absl::FailedPreconditionError(absl::StrCat("token '", id, "' is revoked already"));
}

absl::Status PredictorExists(const PredictorRecord& predictor) {
  return absl::AlreadyExistsError(absl::StrCat("predictor ", predictor.version, " of space ",
                                               predictor.space, " is already stored"));
}

absl::Status NoDefaultPredictor(const std::string& space) {
  return absl::NotFoundError(absl::StrCat("space ", space, " has no default predictor"));
}

namespace {

// `value` for an error message: quoted, with control characters and bytes that are not
// ASCII escaped.
std::string Quoted(absl::string_view value) {
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

}  // namespace

absl::Status CheckArtifact(const ArtifactRecord& artifact) {
  const bool kind_ok = !artifact.kind.empty() && artifact.kind.size() <= kMaxArtifactKindBytes &&
                       std::all_of(artifact.kind.begin(), artifact.kind.end(), [](char c) {
                         return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                       });
  if (!kind_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact kind: must be 1 to ", kMaxArtifactKindBytes, " characters of [a-z0-9_], got ",
        artifact.kind.size() <= kMaxArtifactKindBytes
            ? Quoted(artifact.kind)
            : absl::StrCat(artifact.kind.size(), " bytes")));
  }
  if (artifact.key.empty() || artifact.key.size() > kMaxArtifactKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact key: must be 1 to ", kMaxArtifactKeyBytes, " bytes, got ", artifact.key.size()));
  }
  for (size_t i = 0; i < artifact.key.size(); ++i) {
    const auto byte = static_cast<unsigned char>(artifact.key[i]);
    if (byte < 0x20 || byte == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "artifact key: byte ", i, " is a control character (", Quoted(artifact.key), ")"));
    }
  }
  if (!std::isfinite(artifact.created_unix_s) || artifact.created_unix_s < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact created_unix_s: must be finite and >= 0, got ", artifact.created_unix_s));
  }
  if (artifact.provenance.size() > kMaxArtifactProvenanceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact provenance: ", artifact.provenance.size(), " bytes, more than ",
                     kMaxArtifactProvenanceBytes));
  }
  if (artifact.content_type.size() > kMaxArtifactContentTypeBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact content_type: ", artifact.content_type.size(), " bytes, more than ",
                     kMaxArtifactContentTypeBytes));
  }
  if (artifact.bytes.size() > kMaxArtifactBytes) {
    return absl::InvalidArgumentError(absl::StrCat("artifact bytes: ", artifact.bytes.size(),
                                                   " bytes, more than ", kMaxArtifactBytes));
  }
  return absl::OkStatus();
}

absl::Status ArtifactNotFound(const std::string& kind, const std::string& key) {
  return absl::NotFoundError(
      absl::StrCat("no artifact of kind ", Quoted(kind), " with key ", Quoted(key)));
}

absl::Status ArtifactExists(const std::string& kind, const std::string& key) {
  return absl::AlreadyExistsError(absl::StrCat("artifact of kind ", Quoted(kind), " with key ",
                                               Quoted(key), " is already stored"));
}

absl::Status CheckLeaseHolder(const std::string& holder) {
  if (holder.empty()) return absl::InvalidArgumentError("lease holder: is empty");
  if (holder.size() > kMaxLeaseHolderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease holder: ", holder.size(), " bytes, more than ", kMaxLeaseHolderBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckLeaseTime(double unix_s, absl::string_view field) {
  if (!std::isnan(unix_s)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("lease ", field, ": is NaN"));
}

absl::Status CheckLeaseTimes(double now_unix_s, double expires_unix_s) {
  if (absl::Status now = CheckLeaseTime(now_unix_s, "now_unix_s"); !now.ok()) return now;
  if (absl::Status expires = CheckLeaseTime(expires_unix_s, "expires_unix_s"); !expires.ok()) {
    return expires;
  }
  if (expires_unix_s > now_unix_s) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("lease expires_unix_s: ", expires_unix_s,
                                                 " is not after now_unix_s ", now_unix_s));
}

absl::Status LeaseNotHeld(const std::string& job_id, const std::string& holder) {
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", job_id, ": ", holder, " does not hold its lease (it expired or was released)"));
}

namespace {

// A config for an error message: quoted and escaped, its first 64 bytes only.
std::string QuotedConfig(absl::string_view config) {
  return config.size() <= 64
             ? Quoted(config)
             : absl::StrCat(Quoted(config.substr(0, 64)), "... (", config.size(), " bytes)");
}

}  // namespace

absl::Status CheckMeasurementRun(const MeasurementRunRecord& run,
                                 const std::vector<std::string>& configs) {
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"dataset", &run.dataset},
        {"space", &run.space},
        {"method", &run.method},
        {"split", &run.split}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("measurement run ", field, ": is empty"));
    }
  }
  if (run.settings.size() > kMaxMeasurementSettingsBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("measurement run settings: ", run.settings.size(), " bytes, more than ",
                     kMaxMeasurementSettingsBytes));
  }
  if (std::isnan(run.created_unix_s)) {
    return absl::InvalidArgumentError("measurement run created_unix_s: is NaN");
  }
  if (run.max_attempts < 1 || run.max_attempts > kMaxMeasurementAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("measurement run max_attempts: must be in [1, ",
                                                   kMaxMeasurementAttempts, "], got ",
                                                   run.max_attempts));
  }
  if (configs.empty()) {
    return absl::InvalidArgumentError("measurement run configs: none given");
  }
  if (configs.size() > static_cast<size_t>(kMaxMeasurementTasks)) {
    return absl::InvalidArgumentError(absl::StrCat("measurement run configs: ", configs.size(),
                                                   ", more than ", kMaxMeasurementTasks));
  }
  absl::flat_hash_map<absl::string_view, size_t> first_of;
  first_of.reserve(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    if (configs[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("measurement run configs[", i, "]: is empty"));
    }
    auto [first, added] = first_of.emplace(configs[i], i);
    if (!added) {
      return absl::InvalidArgumentError(absl::StrCat("measurement run configs[", i,
                                                     "]: repeats configs[", first->second, "] ",
                                                     QuotedConfig(configs[i])));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRunSplit(const std::string& dataset, const std::string* held_split,
                           const std::string& run_split) {
  if (held_split == nullptr || *held_split == run_split) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("dataset \"", dataset, "\" holds records measured on split \"", *held_split,
                   "\"; a run measuring on \"", run_split, "\" would mix splits"));
}

absl::Status DatasetOfAnotherSpace(const std::string& dataset, const std::string& dataset_space,
                                   const std::string& run_space) {
  return absl::FailedPreconditionError(
      absl::StrCat("dataset \"", dataset, "\" holds space ", dataset_space, ", not ", run_space));
}

absl::Status CheckMeasurementRow(const MeasurementTask& task, const MeasurementRunRecord& run,
                                 const MeasurementRow& row) {
  const std::string what = absl::StrCat("task ", task.index, " of run ", run.id);
  if (row.config_json != task.config_json) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": config_json ", QuotedConfig(row.config_json), " is not the task's ",
                     QuotedConfig(task.config_json)));
  }
  if (row.method != run.method) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": method ", Quoted(row.method),
                                                   " is not the run's ", Quoted(run.method)));
  }
  if (row.split != run.split) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": split ", Quoted(row.split), " is not the run's ", Quoted(run.split)));
  }
  if (std::isnan(row.created_unix_s)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": created_unix_s is NaN"));
  }
  return CheckMeasurementRowAlone(row, what);
}

absl::Status MeasurementRunNotFound(const std::string& run_id) {
  return absl::NotFoundError(absl::StrCat("measurement run \"", run_id, "\" not found"));
}

absl::Status MeasurementTaskNotFound(const std::string& run_id, int64_t task_id) {
  return absl::NotFoundError(
      absl::StrCat("measurement run \"", run_id, "\" has no task ", task_id));
}

absl::Status MeasurementTaskNotHeld(const std::string& run_id, int64_t task_id,
                                    const std::string& holder) {
  return absl::FailedPreconditionError(
      absl::StrCat("task ", task_id, " of measurement run ", run_id, ": ", holder,
                   " does not hold it (its lease was lost, it settled or the run was cancelled)"));
}

absl::Status MeasurementRunEnded(const std::string& run_id, JobState state) {
  return absl::FailedPreconditionError(absl::StrCat(
      "measurement run \"", run_id, "\" has ended (state ", static_cast<int>(state), ")"));
}

absl::Status CheckLauncher(const std::string& launcher) {
  if (launcher.size() <= kMaxMeasurementLauncherBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "launcher: ", launcher.size(), " bytes, more than ", kMaxMeasurementLauncherBytes));
}

absl::Status CheckMaxTasks(int max_tasks) {
  if (max_tasks >= 1 && max_tasks <= kMaxMeasurementTasksPerClaim) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "max_tasks: must be in [1, ", kMaxMeasurementTasksPerClaim, "], got ", max_tasks));
}

absl::Status CheckMaxAttempts(int max_attempts) {
  if (max_attempts >= 1 && max_attempts <= kMaxMeasurementAttempts) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("max_attempts: must be in [1, ",
                                                 kMaxMeasurementAttempts, "], got ", max_attempts));
}

std::string KeptTaskError(const std::string& error) {
  if (error.size() <= kMaxMeasurementErrorBytes) return error;
  size_t end = kMaxMeasurementErrorBytes;
  // Back over continuation bytes (10xxxxxx) to the start of the character cut in two.
  while (end > 0 && (static_cast<unsigned char>(error[end]) & 0xC0) == 0x80) --end;
  return error.substr(0, end);
}

std::string WorkerStoppedError(int attempts) {
  return absl::StrCat("its worker stopped renewing the lease ", attempts,
                      " times (killed or out of memory?)");
}

std::string RunErrorOfTask(int64_t index, const std::string& kept_error) {
  return absl::StrCat("task ", index, ": ", kept_error);
}

void EndRunIfSettled(MeasurementRunRecord& run, double now_unix_s) {
  if (run.tasks_done + run.tasks_failed < run.tasks_total) return;
  run.state = run.tasks_failed > 0 ? JobState::kFailed : JobState::kSucceeded;
  run.finished_unix_s = now_unix_s == 0.0 ? 0.0 : now_unix_s;
}

std::string EncodeEngineMetrics(const std::vector<std::pair<std::string, double>>& metrics) {
  std::string text;
  for (const auto& [name, value] : metrics) {
    absl::StrAppend(&text, name, "=", absl::StrFormat("%.17g", value), "\n");
  }
  return text;
}

std::vector<std::pair<std::string, double>> DecodeEngineMetrics(absl::string_view text) {
  std::vector<std::pair<std::string, double>> metrics;
  for (const absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const size_t equals = line.find('=');
    double value = 0.0;
    if (equals == absl::string_view::npos || !absl::SimpleAtod(line.substr(equals + 1), &value)) {
      continue;
    }
    metrics.emplace_back(static_cast<std::string>(line.substr(0, equals)), value);
  }
  return metrics;
}

}  // namespace apq::server::store_internal
