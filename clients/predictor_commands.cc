#include "clients/predictor_commands.h"

#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/connection.h"
#include "clients/dataset_records.h"
#include "clients/output.h"
#include "nlohmann/json.hpp"

namespace apq::client {
namespace {

using apq::v1::PredictorService;
using nlohmann::json;

// The kinds of predictor by their names on the command line and in printed jobs.
constexpr std::pair<std::string_view, apq::v1::PredictorKind> kPredictorKinds[] = {
    {"transfer", apq::v1::PREDICTOR_KIND_MLP_TRANSFER},
    {"scratch", apq::v1::PREDICTOR_KIND_MLP_SCRATCH},
    {"xgboost", apq::v1::PREDICTOR_KIND_XGBOOST},
    {"ensemble", apq::v1::PREDICTOR_KIND_ENSEMBLE}};

// The kind's name; an unspecified kind trains as "transfer", the server's default.
std::string KindName(apq::v1::PredictorKind kind) {
  for (const auto& [name, value] : kPredictorKinds) {
    if (value == kind) return std::string(name);
  }
  return "transfer";
}

json DatasetJson(const apq::v1::Dataset& dataset) {
  return {{"name", dataset.name()},
          {"space", dataset.space()},
          {"description", dataset.description()},
          {"fp32_records", dataset.fp32_records()},
          {"quantized_records", dataset.quantized_records()},
          {"split", dataset.split()},
          {"created_unix_s", dataset.created_unix_s()}};
}

json PredictorMetricsJson(const apq::v1::PredictorMetrics& metrics) {
  return {{"heldout_records", metrics.heldout_records()},
          {"rmse", metrics.rmse()},
          {"kendall_tau", metrics.kendall_tau()},
          {"pairwise_accuracy", metrics.pairwise_accuracy()},
          {"train_records", metrics.train_records()},
          {"validation_records", metrics.validation_records()},
          {"train_seconds", metrics.train_seconds()}};
}

json PredictorJson(const apq::v1::Predictor& predictor) {
  json out = {{"space", predictor.space()},
              {"version", predictor.version()},
              {"kind", predictor.kind()},
              {"dataset", predictor.dataset()},
              {"input_size", predictor.input_size()},
              {"is_default", predictor.is_default()},
              {"shipped", predictor.shipped()}};
  if (!predictor.shipped()) {
    out["metrics"] = PredictorMetricsJson(predictor.metrics());
    out["training_job"] = predictor.training_job();
  }
  return out;
}

json TrainingJobJson(const apq::v1::TrainingJob& job) {
  json out = {{"job_id", job.id()},
              {"state", StateName(job.state())},
              {"space", job.request().space()},
              {"dataset", job.request().dataset()},
              {"kind", KindName(job.request().kind())},
              {"seed", job.request().seed()},
              {"stage", job.stage()},
              {"epoch", job.epoch()},
              {"max_epochs", job.max_epochs()},
              {"validation_rmse", job.validation_rmse()}};
  if (!job.predictor_version().empty()) {
    out["predictor_version"] = job.predictor_version();
    out["metrics"] = PredictorMetricsJson(job.metrics());
  }
  if (!job.error().empty()) out["error"] = job.error();
  return out;
}

// Prints the job's state, progress, error and the predictor it made to stdout as text.
void PrintTrainingJobText(const apq::v1::TrainingJob& job) {
  std::cout << "training job " << job.id() << ": " << StateName(job.state()) << " ("
            << KindName(job.request().kind()) << " on " << job.request().dataset() << ")";
  if (!job.stage().empty()) {
    std::cout << absl::StrFormat(", %s epoch %d/%d, validation RMSE %.4f", job.stage(), job.epoch(),
                                 job.max_epochs(), job.validation_rmse());
  }
  std::cout << "\n";
  if (!job.error().empty()) std::cout << "error: " << job.error() << "\n";
  if (!job.predictor_version().empty()) {
    const apq::v1::PredictorMetrics& metrics = job.metrics();
    std::cout << absl::StrFormat(
        "predictor %s: on %d held-out records RMSE %.4f, Kendall tau %.3f, pairwise accuracy "
        "%.3f (trained on %d, validated on %d, %.1f s)\n",
        job.predictor_version(), metrics.heldout_records(), metrics.rmse(), metrics.kendall_tau(),
        metrics.pairwise_accuracy(), metrics.train_records(), metrics.validation_records(),
        metrics.train_seconds());
  }
}

grpc::Status GetTrainingJob(Connection& connection, const std::string& job_id,
                            apq::v1::TrainingJob* job) {
  apq::v1::GetTrainingJobRequest request;
  request.set_job_id(job_id);
  return CallUnary(connection.predictors(), &PredictorService::Stub::GetTrainingJob, request, job);
}

int UploadDataset(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"name", "space", "description"}, {"json"}, 1);
  const std::string path = RequirePositional(args, "a records file");
  apq::v1::UploadDatasetRequest request;
  request.set_name(Require(args, "name"));
  request.set_space(Require(args, "space"));
  request.set_description(args.Get("description"));
  AddRecordsFromFile(path, &request);
  apq::v1::Dataset dataset;
  const grpc::Status status =
      CallUnary(connection.predictors(), &PredictorService::Stub::UploadDataset, request, &dataset,
                kUploadDeadline);
  if (!status.ok()) return ReportRpcError(status);
  PrintItem(dataset, args.Has("json"), DatasetJson, [](const apq::v1::Dataset& stored) {
    std::cout << "dataset " << stored.name() << " (" << stored.space()
              << "): " << stored.fp32_records() << " fp32 and " << stored.quantized_records()
              << " quantized records\n";
  });
  return kExitOk;
}

int Datasets(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"space"}, {"json"}, 0);
  apq::v1::ListDatasetsRequest request;
  request.set_space(args.Get("space"));
  apq::v1::ListDatasetsResponse response;
  const grpc::Status status =
      CallUnary(connection.predictors(), &PredictorService::Stub::ListDatasets, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  PrintListing(
      response.datasets(), args.Has("json"), DatasetJson, [](const apq::v1::Dataset& dataset) {
        std::cout << dataset.name() << "  " << dataset.space() << "  " << dataset.fp32_records()
                  << " fp32, " << dataset.quantized_records() << " quantized  "
                  << (dataset.split().empty() ? "split not recorded" : dataset.split()) << "  "
                  << dataset.description() << "\n";
      });
  return kExitOk;
}

// Polls a training job until it ends (a progress line on a terminal), then prints it. Exit 1
// unless it succeeded.
int FollowTraining(Connection& connection, const std::string& job_id, bool as_json) {
  ProgressLine progress_line(as_json);
  apq::v1::TrainingJob job;
  while (true) {
    const grpc::Status status = GetTrainingJob(connection, job_id, &job);
    if (!status.ok()) return ReportRpcError(status);
    progress_line.Show(absl::StrFormat("%s: %s %s epoch %d/%d, validation RMSE %.4f", job_id,
                                       StateName(job.state()), job.stage(), job.epoch(),
                                       job.max_epochs(), job.validation_rmse()));
    if (job.state() != apq::v1::JOB_STATE_QUEUED && job.state() != apq::v1::JOB_STATE_RUNNING) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  progress_line.End();
  PrintItem(job, as_json, TrainingJobJson, PrintTrainingJobText);
  return job.state() == apq::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

int Train(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(
      argv,
      {"space", "dataset", "kind", "seed", "holdout", "max-epochs", "learning-rate", "description"},
      {"make-default", "wait", "json"}, 0);
  apq::v1::TrainPredictorRequest request;
  request.set_space(Require(args, "space"));
  request.set_dataset(Require(args, "dataset"));
  request.set_kind(
      ParseChoice<apq::v1::PredictorKind>("kind", args.Get("kind", "transfer"), kPredictorKinds));
  if (args.Has("seed")) request.set_seed(ParseSeed(args));
  if (args.Has("holdout")) request.set_holdout_fraction(ParseDouble(args, "holdout"));
  if (args.Has("max-epochs")) request.set_max_epochs(ParseInt32(args, "max-epochs"));
  if (args.Has("learning-rate")) request.set_learning_rate(ParseDouble(args, "learning-rate"));
  request.set_make_default(args.Has("make-default"));
  request.set_description(args.Get("description"));
  apq::v1::TrainingJob job;
  const grpc::Status status =
      CallUnary(connection.predictors(), &PredictorService::Stub::TrainPredictor, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("wait")) return FollowTraining(connection, job.id(), args.Has("json"));
  PrintItem(job, args.Has("json"), TrainingJobJson, PrintJobId<apq::v1::TrainingJob>);
  return kExitOk;
}

int Training(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"limit"}, {"wait", "json"}, 1);
  if (!args.positional().empty()) {
    const std::string& job_id = args.positional()[0];
    if (args.Has("wait")) return FollowTraining(connection, job_id, args.Has("json"));
    apq::v1::TrainingJob job;
    const grpc::Status status = GetTrainingJob(connection, job_id, &job);
    if (!status.ok()) return ReportRpcError(status);
    PrintItem(job, args.Has("json"), TrainingJobJson, PrintTrainingJobText);
    return kExitOk;
  }
  if (args.Has("wait")) throw UsageError{"--wait needs a training job"};
  apq::v1::ListTrainingJobsRequest request;
  if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
  apq::v1::ListTrainingJobsResponse response;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::ListTrainingJobs, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  PrintListing(response.jobs(), args.Has("json"), TrainingJobJson, PrintTrainingJobText);
  return kExitOk;
}

int CancelTraining(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {}, 1);
  apq::v1::CancelTrainingJobRequest request;
  request.set_job_id(RequirePositional(args, "a training job id"));
  apq::v1::TrainingJob job;
  const grpc::Status status =
      CallUnary(connection.predictors(), &PredictorService::Stub::CancelTrainingJob, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  PrintCancellationRequested(job.id(), job.state());
  return kExitOk;
}

json MeasurementRunJson(const apq::v1::MeasurementRun& run) {
  return {{"run_id", run.id()},
          {"state", StateName(run.state())},
          {"dataset", run.dataset()},
          {"space", run.space()},
          {"method", run.method()},
          {"split", run.split()},
          {"seed", run.seed()},
          {"images", run.images()},
          {"calibration_images", run.calibration_images()},
          {"tasks_total", run.tasks_total()},
          {"tasks_done", run.tasks_done()},
          {"tasks_failed", run.tasks_failed()},
          {"tasks_held", run.tasks_held()},
          {"max_attempts", run.max_attempts()},
          {"launcher", run.launcher()},
          {"error", run.error()},
          {"created_unix_s", run.created_unix_s()},
          {"finished_unix_s", run.finished_unix_s()}};
}

void PrintMeasurementRunText(const apq::v1::MeasurementRun& run) {
  std::cout << absl::StrFormat(
      "measurement run %s: %s, %d of %d measured, %d failed, %d in hand (%s of %s to dataset %s, "
      "%s split; workers %s)\n",
      run.id(), StateName(run.state()), run.tasks_done(), run.tasks_total(), run.tasks_failed(),
      run.tasks_held(), run.method(), run.space(), run.dataset(), run.split(), run.launcher());
  if (!run.error().empty()) std::cout << "  error: " << run.error() << "\n";
}

grpc::Status GetMeasurementRun(Connection& connection, const std::string& run_id,
                               apq::v1::MeasurementRun* run) {
  apq::v1::GetMeasurementRunRequest request;
  request.set_run_id(run_id);
  return CallUnary(connection.predictors(), &PredictorService::Stub::GetMeasurementRun, request,
                   run);
}

// Polls a measurement run until it ends (a progress line on a terminal), then prints it. Exit 1
// unless it succeeded.
int FollowMeasurementRun(Connection& connection, const std::string& run_id, bool as_json) {
  ProgressLine progress_line(as_json);
  apq::v1::MeasurementRun run;
  while (true) {
    const grpc::Status status = GetMeasurementRun(connection, run_id, &run);
    if (!status.ok()) return ReportRpcError(status);
    progress_line.Show(absl::StrFormat("%s: %s %d/%d measured, %d failed, %d in hand", run_id,
                                       StateName(run.state()), run.tasks_done(), run.tasks_total(),
                                       run.tasks_failed(), run.tasks_held()));
    if (run.state() != apq::v1::JOB_STATE_QUEUED && run.state() != apq::v1::JOB_STATE_RUNNING) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  progress_line.End();
  PrintItem(run, as_json, MeasurementRunJson, PrintMeasurementRunText);
  return run.state() == apq::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

int Measure(Connection& connection, const std::vector<std::string>& argv) {
  const Args args =
      Args::Parse(argv,
                  {"dataset", "space", "count", "configs", "seed", "bits", "split", "images",
                   "calibration-images", "workers", "max-attempts", "description"},
                  {"quantized", "wait", "json"}, 0);
  apq::v1::StartMeasurementRunRequest request;
  request.set_dataset(Require(args, "dataset"));
  request.set_space(Require(args, "space"));
  if (args.Has("configs") == args.Has("count")) {
    throw UsageError{"give --count N (sampled configs) or --configs FILE, one of them"};
  }
  if (args.Has("count")) request.set_count(ParseInt32(args, "count"));
  if (args.Has("configs")) {
    // One config's JSON per line of the file.
    for (const absl::string_view line :
         absl::StrSplit(ReadFileOrStdin(args.Get("configs")), '\n', absl::SkipWhitespace())) {
      request.add_configs(static_cast<std::string>(line));
    }
  }
  if (args.Has("seed")) request.set_seed(ParseSeed(args));
  request.set_quantized(args.Has("quantized"));
  request.set_bit_sampling(args.Get("bits"));
  request.set_split(args.Get("split"));
  if (args.Has("images")) request.set_images(ParseInt32(args, "images"));
  if (args.Has("calibration-images")) {
    request.set_calibration_images(ParseInt32(args, "calibration-images"));
  }
  if (args.Has("workers")) request.set_workers(ParseInt32(args, "workers"));
  if (args.Has("max-attempts")) request.set_max_attempts(ParseInt32(args, "max-attempts"));
  request.set_description(args.Get("description"));
  apq::v1::MeasurementRun run;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::StartMeasurementRun, request, &run);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("wait")) return FollowMeasurementRun(connection, run.id(), args.Has("json"));
  PrintItem(run, args.Has("json"), MeasurementRunJson,
            [](const apq::v1::MeasurementRun& started) { std::cout << started.id() << "\n"; });
  return kExitOk;
}

int Measurements(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"limit"}, {"wait", "json"}, 1);
  if (!args.positional().empty()) {
    const std::string& run_id = args.positional()[0];
    if (args.Has("wait")) return FollowMeasurementRun(connection, run_id, args.Has("json"));
    apq::v1::MeasurementRun run;
    const grpc::Status status = GetMeasurementRun(connection, run_id, &run);
    if (!status.ok()) return ReportRpcError(status);
    PrintItem(run, args.Has("json"), MeasurementRunJson, PrintMeasurementRunText);
    return kExitOk;
  }
  if (args.Has("wait")) throw UsageError{"--wait needs a measurement run"};
  apq::v1::ListMeasurementRunsRequest request;
  if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
  apq::v1::ListMeasurementRunsResponse response;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::ListMeasurementRuns, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  PrintListing(response.runs(), args.Has("json"), MeasurementRunJson, PrintMeasurementRunText);
  return kExitOk;
}

int CancelMeasurement(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {}, 1);
  apq::v1::CancelMeasurementRunRequest request;
  request.set_run_id(RequirePositional(args, "a measurement run id"));
  apq::v1::MeasurementRun run;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::CancelMeasurementRun, request, &run);
  if (!status.ok()) return ReportRpcError(status);
  std::cout << "measurement run " << run.id() << ": " << StateName(run.state()) << ", "
            << run.tasks_done() << " of " << run.tasks_total() << " measured\n";
  return kExitOk;
}

// "* " marks the space's default; stored predictors show their held-out metrics.
void PrintPredictor(const apq::v1::Predictor& predictor) {
  std::cout << (predictor.is_default() ? "* " : "  ") << predictor.version() << "  "
            << predictor.kind();
  if (predictor.shipped()) {
    std::cout << "  shipped";
  } else {
    const apq::v1::PredictorMetrics& metrics = predictor.metrics();
    std::cout << absl::StrFormat("  dataset %s  held-out %d: RMSE %.4f, tau %.3f, pairwise %.3f",
                                 predictor.dataset(), metrics.heldout_records(), metrics.rmse(),
                                 metrics.kendall_tau(), metrics.pairwise_accuracy());
  }
  std::cout << "\n";
}

int Predictors(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"space"}, {"json"}, 0);
  apq::v1::ListPredictorsRequest request;
  request.set_space(Require(args, "space"));
  apq::v1::ListPredictorsResponse response;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::ListPredictors, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  PrintListing(response.predictors(), args.Has("json"), PredictorJson, PrintPredictor);
  return kExitOk;
}

int SetDefaultPredictor(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"space"}, {}, 1);
  const std::string version = RequirePositional(args, "a predictor version");
  apq::v1::SetDefaultPredictorRequest request;
  request.set_space(Require(args, "space"));
  request.set_version(version);
  apq::v1::Predictor predictor;
  const grpc::Status status = CallUnary(
      connection.predictors(), &PredictorService::Stub::SetDefaultPredictor, request, &predictor);
  if (!status.ok()) return ReportRpcError(status);
  std::cout << request.space() << ": searches now use " << predictor.version() << "\n";
  return kExitOk;
}

constexpr Command kPredictorCommands[] = {
    {"upload-dataset", R"(  upload-dataset --name N --space S [--description T] FILE [--json]
      Upload measured (config, accuracy) records: a CSV as measure_subnets writes it, or a
      JSON list of {"config": <config>, "accuracy": A, "method": "fp32"|"quantized"|...,
      "seconds": S} (method and seconds optional).
)",
     UploadDataset},
    {"datasets", R"(  datasets [--space S] [--json]
)",
     Datasets},
    {"train",
     R"(  train --space S --dataset D [--kind transfer|scratch|xgboost|ensemble] [--seed N] [--holdout F]
      [--max-epochs N] [--learning-rate X] [--make-default] [--description T] [--wait] [--json]
      Train a predictor (a job): transfer = APQ's fp32 predictor transferred to the
      quantization-aware one (default), scratch = the quantization-aware MLP alone, xgboost =
      gradient-boosted trees, ensemble = the mean of transfer and xgboost. --make-default
      makes the space's searches use it once trained.
)",
     Train},
    {"training", R"(  training [JOB] [--wait] [--limit N] [--json]
      List training jobs, or show one (--wait follows it to its end).
)",
     Training},
    {"cancel-training", R"(  cancel-training JOB
)",
     CancelTraining},
    {"predictors", R"(  predictors --space S [--json]
      The space's predictors (shipped and stored) with their held-out metrics; * marks the
      one its searches use.
)",
     Predictors},
    {"set-default-predictor", R"(  set-default-predictor --space S VERSION
      Make a stored predictor (or the shipped one) the space's default.
)",
     SetDefaultPredictor},
    {"measure",
     R"(  measure --dataset D --space S (--count N [--seed N] [--bits random|uniform|near_uniform|paired] |
      --configs FILE) [--quantized] [--split validation|test] [--images N]
      [--calibration-images N] [--workers N] [--max-attempts N] [--description T] [--wait] [--json]
      Measure subnets on the space's supernet with worker processes the server starts (locally
      or as a Slurm array), each record added to dataset D (created if absent) as it is
      measured: N configs sampled with the seed, or those of FILE (one JSON per line).
      --quantized measures each at its bit policy, else at full precision. Configs D holds
      already are skipped. --wait follows the run to its end.
)",
     Measure},
    {"measurements", R"(  measurements [RUN] [--wait] [--limit N] [--json]
      List measurement runs, or show one (--wait follows it to its end).
)",
     Measurements},
    {"cancel-measurement", R"(  cancel-measurement RUN
      Stop a measurement run; the records measured so far stay in its dataset.
)",
     CancelMeasurement},
};

}  // namespace

absl::Span<const Command> PredictorCommands() { return kPredictorCommands; }

}  // namespace apq::client
