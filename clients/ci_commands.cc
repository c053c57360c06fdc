#include "clients/ci_commands.h"

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/ci_profile.h"
#include "clients/connection.h"
#include "clients/output.h"
#include "clients/search_commands.h"
#include "clients/search_output.h"

namespace apq::client {
namespace {

using apq::v1::SearchService;
using nlohmann::json;

// The table version a job of `request` runs with (its pinned one, else the device's latest)
// and the predictor version (the space's default), which make part of the reuse key.
grpc::Status ResolveVersions(Connection& connection, const apq::v1::SubmitSearchRequest& request,
                             int64_t* table_version, std::string* predictor_version) {
  *table_version = request.table_version();
  if (*table_version == 0) {
    apq::v1::GetDeviceRequest get;
    get.set_device(request.device());
    apq::v1::Device device;
    grpc::Status status =
        CallUnary(connection.devices(), &apq::v1::DeviceService::Stub::GetDevice, get, &device);
    if (!status.ok()) return status;
    if (device.versions().empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("device ", request.device(), " has no cost table"));
    }
    *table_version = device.versions(device.versions_size() - 1).version();
  }
  apq::v1::ListPredictorsRequest list;
  list.set_space(request.space());
  apq::v1::ListPredictorsResponse predictors;
  grpc::Status status = CallUnary(
      connection.predictors(), &apq::v1::PredictorService::Stub::ListPredictors, list, &predictors);
  if (!status.ok()) return status;
  *predictor_version = predictors.default_version();
  return grpc::Status::OK;
}

// The newest succeeded job labelled `label` that ran with these versions, if any.
grpc::Status FindReusableJob(Connection& connection, const apq::v1::SubmitSearchRequest& request,
                             const std::string& label, int64_t table_version,
                             const std::string& predictor_version,
                             std::optional<apq::v1::Job>* found) {
  apq::v1::ListJobsRequest list;
  list.set_space(request.space());
  list.set_device(request.device());
  list.set_label(label);
  list.set_state(apq::v1::JOB_STATE_SUCCEEDED);
  list.set_page_size(20);
  apq::v1::ListJobsResponse response;
  grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::ListJobs, list, &response);
  if (!status.ok()) return status;
  for (const apq::v1::Job& job : response.jobs()) {
    if (job.table_version() == table_version && job.predictor_version() == predictor_version) {
      *found = job;
      return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

// WriteOutputFile, creating the file's folder first (a CI job names paths under its own
// output folder).
bool WriteCiOutput(const std::string& path, const std::string& content) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    std::cerr << "apq ci: cannot create " << parent.string() << ": " << error.message() << "\n";
    return false;
  }
  return WriteOutputFile(path, content);
}

int Ci(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"profile"}, {"no-reuse"}, 0);
  const std::string profile_path = Require(args, "profile");
  const absl::StatusOr<CiProfile> profile = ParseCiProfile(ReadFileOrStdin(profile_path));
  if (!profile.ok()) {
    std::cerr << "apq ci: " << profile_path << ": " << profile.status().message() << "\n";
    return kExitUsage;
  }
  int64_t table_version = 0;
  std::string predictor_version;
  grpc::Status status =
      ResolveVersions(connection, profile->request, &table_version, &predictor_version);
  if (!status.ok()) return ReportRpcError(status);
  const std::string key = CiRequestKey(profile->request, table_version, predictor_version);
  const std::string label = "ci-" + key;

  std::optional<apq::v1::Job> job;
  if (!args.Has("no-reuse")) {
    status = FindReusableJob(connection, profile->request, label, table_version, predictor_version,
                             &job);
    if (!status.ok()) return ReportRpcError(status);
  }
  const bool reused = job.has_value();
  if (!reused) {
    apq::v1::SubmitSearchRequest request = profile->request;
    request.set_label(label);
    request.set_table_version(table_version);
    apq::v1::Job submitted;
    status =
        CallUnary(connection.search(), &SearchService::Stub::SubmitSearch, request, &submitted);
    if (!status.ok()) return ReportRpcError(status);
    std::cerr << "apq ci: running " << submitted.id() << " (no finished job of key " << key
              << ")\n";
    job.emplace();
    status = WaitForJobEnd(connection, submitted.id(), /*quiet=*/false, &*job);
    if (!status.ok()) return ReportRpcError(status);
  } else {
    std::cerr << "apq ci: reusing " << job->id() << " (same request, table version "
              << table_version << ", predictor " << predictor_version << ")\n";
  }

  json summary = {{"job_id", job->id()},
                  {"reused", reused},
                  {"request_key", key},
                  {"space", profile->request.space()},
                  {"device", profile->request.device()},
                  {"engine", job->engine()},
                  {"state", StateName(job->state())},
                  {"table_version", table_version},
                  {"predictor_version", predictor_version}};
  if (profile->min_accuracy.has_value()) summary["min_accuracy"] = *profile->min_accuracy;
  int exit_code = kExitOk;
  std::string verdict = "found";
  // A search that finds no network within the budgets fails with this reason (the job
  // manager's FAILED_PRECONDITION "no network of space S met the budgets ...").
  const bool found_nothing = job->state() == apq::v1::JOB_STATE_FAILED &&
                             absl::StartsWith(job->error(), "FAILED_PRECONDITION: no network");
  if (job->state() != apq::v1::JOB_STATE_SUCCEEDED && !found_nothing) {
    std::cerr << "apq ci: job " << job->id() << " ended " << StateName(job->state())
              << (job->error().empty() ? "" : ": " + job->error()) << "\n";
    return kExitFailed;
  }
  if (found_nothing || !job->has_best()) {
    verdict = "nothing_feasible";
    exit_code = kExitNothingFeasible;
  } else {
    const apq::v1::Metrics& metrics = job->best().metrics();
    const bool measured = metrics.has_measured_accuracy();
    const double accuracy = measured ? metrics.measured_accuracy() : metrics.accuracy();
    summary["metrics"] = MetricsJson(metrics);
    summary["accuracy"] = accuracy;
    summary["accuracy_kind"] = measured ? "measured" : "predicted";
    if (profile->min_accuracy.has_value() && accuracy < *profile->min_accuracy) {
      verdict = "below_min_accuracy";
      exit_code = kExitBelowMinimumAccuracy;
    }
  }
  summary["verdict"] = verdict;
  summary["exit_code"] = exit_code;

  if (exit_code == kExitOk &&
      (!profile->config_output.empty() || !profile->torchscript_output.empty())) {
    apq::v1::DescribeSpaceRequest describe;
    describe.set_space(profile->request.space());
    apq::v1::SpaceDescription space;
    status = CallUnary(connection.spaces(), &apq::v1::SpaceService::Stub::DescribeSpace, describe,
                       &space);
    if (!status.ok()) return ReportRpcError(status);
    const bool torchscript = !profile->torchscript_output.empty() && space.has_supernet();
    apq::v1::GetDeployableConfigRequest get;
    get.set_job_id(job->id());
    get.set_include_torchscript(torchscript);
    apq::v1::DeployableConfig config;
    status = CallUnary(connection.search(), &SearchService::Stub::GetDeployableConfig, get, &config,
                       torchscript ? kMeasureDeadline : kDefaultDeadline);
    if (!status.ok()) return ReportRpcError(status);
    json outputs = json::object();
    if (!profile->config_output.empty()) {
      if (!WriteCiOutput(profile->config_output,
                         ParseConfig(config.config_json()).dump(2) + "\n")) {
        return kExitFailed;
      }
      outputs["config"] = profile->config_output;
    }
    if (torchscript) {
      if (!WriteCiOutput(profile->torchscript_output, config.torchscript())) return kExitFailed;
      outputs["torchscript"] = profile->torchscript_output;
      if (config.has_torchscript_accuracy()) {
        summary["torchscript_test_accuracy"] = config.torchscript_accuracy();
      }
      summary["supernet_version"] = config.supernet_version();
      summary["torchscript_precision"] = config.torchscript_precision();
      if (!config.quantized_engine().empty()) {
        // The loading program sets it first: torch.backends.quantized.engine = "<engine>".
        summary["quantized_engine"] = config.quantized_engine();
      }
    } else if (!profile->torchscript_output.empty()) {
      outputs["torchscript_skipped"] =
          absl::StrCat("space ", profile->request.space(), " has no supernet to extract from");
    }
    summary["outputs"] = outputs;
  }
  if (!profile->summary_output.empty() &&
      !WriteCiOutput(profile->summary_output, summary.dump(2) + "\n")) {
    return kExitFailed;
  }
  PrintJson(summary);
  if (exit_code == kExitNothingFeasible) {
    std::cerr << "apq ci: no network of the space meets the budgets\n";
  } else if (exit_code == kExitBelowMinimumAccuracy) {
    std::cerr << absl::StrFormat("apq ci: the best network's %s accuracy %.4f is below %.4f\n",
                                 summary["accuracy_kind"].get<std::string>(),
                                 summary["accuracy"].get<double>(), *profile->min_accuracy);
  }
  return exit_code;
}

constexpr Command kCiCommands[] = {
    {"ci", R"(  ci --profile FILE [--no-reuse]
      For CI jobs: the deployable network of a profile (space, device, budgets, engine,
      minimum accuracy, outputs; a YAML subset, see docs/ci.md). Reuses the newest finished
      job of the identical request and the same table and predictor versions, else runs one
      (--no-reuse: always runs). Writes the config, the TorchScript module (spaces with a
      supernet) and a summary JSON as the profile's outputs say, and prints the summary.
      Exit codes: 0 found, 3 nothing feasible, 4 below min_accuracy, 2 usage or a bad
      profile (its line named), 1 any other error.
)",
     Ci},
};

}  // namespace

absl::Span<const Command> CiCommands() { return kCiCommands; }

}  // namespace apq::client
