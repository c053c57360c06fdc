#include "clients/search_output.h"

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/output.h"

namespace apq::client {

using nlohmann::json;

json MetricsJson(const apq::v1::Metrics& metrics) {
  json out = json::object();
  if (metrics.has_accuracy()) out["accuracy"] = metrics.accuracy();
  if (metrics.has_latency_ms()) out["latency_ms"] = metrics.latency_ms();
  if (metrics.has_energy_mj()) out["energy_mj"] = metrics.energy_mj();
  if (metrics.has_size_mb()) out["size_mb"] = metrics.size_mb();
  if (metrics.has_bitops()) out["bitops"] = metrics.bitops();
  if (metrics.modelled_size() > 0) out["modelled"] = StringList(metrics.modelled());
  if (metrics.has_measured_accuracy()) {
    out["measured_accuracy"] = metrics.measured_accuracy();
    out["measured_method"] = metrics.measured_method();
    out["measured_seconds"] = metrics.measured_seconds();
    out["measured_split"] = metrics.measured_split();
  }
  return out;
}

std::string DescribeMetrics(const apq::v1::Metrics& metrics) {
  std::vector<std::string> parts;
  if (metrics.has_accuracy()) {
    // Beside a measured accuracy, say which one is predicted.
    parts.push_back(absl::StrFormat(
        "%s %.4f", metrics.has_measured_accuracy() ? "predicted accuracy" : "accuracy",
        metrics.accuracy()));
  }
  if (metrics.has_latency_ms()) {
    parts.push_back(absl::StrFormat("latency %.3f ms", metrics.latency_ms()));
  }
  if (metrics.has_energy_mj()) {
    parts.push_back(absl::StrFormat("energy %.3f mJ", metrics.energy_mj()));
  }
  if (metrics.has_size_mb()) parts.push_back(absl::StrFormat("size %.3f MB", metrics.size_mb()));
  if (metrics.has_bitops()) parts.push_back(absl::StrFormat("BitOps %.4g", metrics.bitops()));
  if (metrics.modelled_size() > 0) {
    parts.push_back(absl::StrCat("(modelled: ", absl::StrJoin(metrics.modelled(), ", "), ")"));
  }
  if (metrics.has_measured_accuracy()) {
    parts.push_back(absl::StrFormat("measured accuracy %.4f (%s, on %s, %.1f s)",
                                    metrics.measured_accuracy(), metrics.measured_method(),
                                    metrics.measured_split(), metrics.measured_seconds()));
  }
  return absl::StrJoin(parts, ", ");
}

namespace {

// A job's engine figures as "name value" pairs by name (a proto map has no order).
std::string DescribeEngineMetrics(const google::protobuf::Map<std::string, double>& metrics) {
  std::map<std::string, double> sorted(metrics.begin(), metrics.end());
  std::vector<std::string> parts;
  parts.reserve(sorted.size());
  for (const auto& [name, value] : sorted) parts.push_back(absl::StrFormat("%s %.4g", name, value));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

json ParseConfig(const std::string& config_json) {
  json parsed = json::parse(config_json, nullptr, false);
  return parsed.is_discarded() ? json(config_json) : parsed;
}

json JobJson(const apq::v1::Job& job) {
  json out = {{"job_id", job.id()},
              {"state", StateName(job.state())},
              {"space", job.request().space()},
              {"device", job.request().device()},
              {"generations_done", job.generations_done()},
              {"total_generations", job.total_generations()},
              {"engine", job.engine()},
              {"candidates_evaluated", job.candidates_evaluated()},
              {"rejected_draws", job.rejected_draws()},
              {"elapsed_s", job.elapsed_s()},
              {"table_version", job.table_version()},
              {"predictor_version", job.predictor_version()},
              {"seed", job.request().seed()},
              {"pareto_front_size", job.pareto_front_size()}};
  if (!job.request().label().empty()) out["label"] = job.request().label();
  if (job.request().uniform_bits() != 0) out["uniform_bits"] = job.request().uniform_bits();
  if (job.request().uncertainty_penalty() > 0.0) {
    out["uncertainty_penalty"] = job.request().uncertainty_penalty();
  }
  if (!job.request().fixed_architecture().empty()) {
    out["fixed_architecture"] = ParseConfig(job.request().fixed_architecture());
  }
  if (job.has_best()) {
    out["best_config"] = ParseConfig(job.best().config_json());
    out.update(MetricsJson(job.best().metrics()));
  }
  if (job.verification().top_k() > 0) {
    out["stage"] = job.stage() == apq::v1::JOB_STAGE_VERIFICATION ? "verification" : "search";
    out["verification"] = {{"top_k", job.verification().top_k()},
                           {"finalists", job.verification().finalists()},
                           {"measured", job.verification().measured()}};
    if (job.has_predicted_best()) {
      json predicted = MetricsJson(job.predicted_best().metrics());
      predicted["config"] = ParseConfig(job.predicted_best().config_json());
      out["predicted_best"] = predicted;
    }
  }
  if (!job.engine_metrics().empty()) {
    json metrics = json::object();
    for (const auto& [name, value] : job.engine_metrics()) metrics[name] = value;
    out["engine_metrics"] = metrics;
  }
  if (!job.error().empty()) out["error"] = job.error();
  return out;
}

void PrintJobText(const apq::v1::Job& job) {
  std::cout << "job " << job.id() << ": " << StateName(job.state()) << " after "
            << job.generations_done() << "/" << job.total_generations() << " generations, "
            << job.candidates_evaluated() << " candidates, " << job.rejected_draws()
            << " rejected draws, " << absl::StrFormat("%.2f s", job.elapsed_s()) << "\n";
  if (!job.error().empty()) std::cout << "error: " << job.error() << "\n";
  if (!job.engine_metrics().empty()) {
    std::cout << job.engine() << ": " << DescribeEngineMetrics(job.engine_metrics()) << "\n";
  }
  const apq::v1::VerificationProgress& verification = job.verification();
  if (verification.top_k() > 0) {
    std::cout << "verification: " << verification.measured() << "/"
              << (verification.finalists() > 0 ? verification.finalists() : verification.top_k())
              << " finalists measured\n";
  }
  if (job.has_best()) {
    std::cout << "best: " << DescribeMetrics(job.best().metrics()) << "\n"
              << "config: " << job.best().config_json() << "\n";
  }
  if (job.has_predicted_best() && job.predicted_best().id() != job.best().id()) {
    std::cout << "predicted best: " << DescribeMetrics(job.predicted_best().metrics()) << "\n"
              << "predicted best config: " << job.predicted_best().config_json() << "\n";
  }
}

json CandidateJson(const apq::v1::Candidate& candidate) {
  json out = {{"id", candidate.id()},
              {"name", candidate.name()},
              {"generation", candidate.generation()},
              {"times_seen", candidate.times_seen()},
              {"feasible", candidate.feasible()},
              {"on_pareto_front", candidate.on_pareto_front()},
              {"config", ParseConfig(candidate.config_json())}};
  out.update(MetricsJson(candidate.metrics()));
  return out;
}

std::string DescribeProgress(const apq::v1::JobProgress& progress) {
  constexpr int kBarWidth = 30;
  const std::string best =
      progress.has_best() ? DescribeMetrics(progress.best().metrics()) : std::string("-");
  if (progress.stage() == apq::v1::JOB_STAGE_VERIFICATION) {
    const apq::v1::VerificationProgress& verification = progress.verification();
    return absl::StrFormat(
        "[%s] verified %d/%d finalists  %.1fs  best: %s",
        ProgressBar(verification.measured(), verification.finalists(), kBarWidth),
        verification.measured(), verification.finalists(), progress.elapsed_s(), best);
  }
  std::string line =
      absl::StrFormat("[%s] gen %d/%d  %d candidates  %.1fs  best: %s",
                      ProgressBar(progress.generation(), progress.total_generations(), kBarWidth),
                      progress.generation(), progress.total_generations(),
                      progress.candidates_evaluated(), progress.elapsed_s(), best);
  if (!progress.engine_metrics().empty()) {
    absl::StrAppend(&line, "  (", DescribeEngineMetrics(progress.engine_metrics()), ")");
  }
  return line;
}

}  // namespace apq::client
