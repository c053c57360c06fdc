// apq: command-line client of the apqd search service.
//
// Exit codes: 0 success; 1 the server refused or the job failed / found nothing feasible;
// 2 bad command line.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "oface/measurement_csv.h"
#include "proto/apq/v1/apq.grpc.pb.h"

namespace apq::client {
namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] = R"(usage: apq [--server ADDR] COMMAND [flags]

Commands:
  devices [NAME] [--json]
      List devices and their cost-table versions (or one device).
  evaluate --space S [--device D] [--table-version N] (--config FILE | --configs FILE)
      [--measure fp32|quantized [--test-images N]] [--json]
      Score configurations in the space's reference format: --config holds one, --configs a
      JSON list of them (- reads stdin). Without --device, accuracy and (for quantized
      spaces) model size and BitOps only. --measure also measures each one's accuracy on the
      space's trained supernet (at most 20; seconds each), on the first N test images.
  search --space S --device D [budgets] [engine] [--seed N] [--label L] [--wait] [--json]
      Submit a search. Budgets: --max-latency-ms X --max-energy-mj X --max-size-mb X
      --max-bitops X. Engine: --population N --generations N --parent-ratio X
      --mutation-ratio X --mutate-prob X --resolution-mutate-prob X. Objective:
      --objective accuracy|pareto, --pareto-cost latency|energy|size|bitops (the cost of the
      job's Pareto front). --uniform-bits B fixes every bitwidth at B (the uniform-precision
      baseline of a mixed-precision space). --wait follows it to the end (progress bar on a terminal);
      --json prints one JSON object.
  watch JOB [--json]
      Follow a job until it ends.
  jobs [--state queued|running|succeeded|failed|cancelled] [--limit N] [--json]
  candidates JOB [--sort accuracy|latency|energy|size|bitops] [--feasible|--infeasible]
      [--front] [--limit N] [--json]
      --front: only the job's Pareto front of accuracy against its Pareto cost.
  config JOB [--output FILE] [--torchscript FILE] [--json]
      The best configuration of a finished job, in the reference arch format. --torchscript
      also writes the subnet extracted from the space's supernet (quantized at its bit
      policy) as a TorchScript file and prints its measured test accuracy.
  cancel JOB
  upload-table --device D --format ofa-yaml|apq-bitfusion|conv-json [--description T] FILE...
      Upload a new version of a device's cost table.

Accuracy predictors:
  upload-dataset --name N --space S [--description T] FILE [--json]
      Upload measured (config, accuracy) records: a CSV as measure_subnets writes it, or a
      JSON list of {"config": <config>, "accuracy": A, "method": "fp32"|"quantized"|...,
      "seconds": S} (method and seconds optional).
  datasets [--space S] [--json]
  train --space S --dataset D [--kind transfer|scratch|xgboost|ensemble] [--seed N] [--holdout F]
      [--max-epochs N] [--learning-rate X] [--make-default] [--description T] [--wait] [--json]
      Train a predictor (a job): transfer = APQ's fp32 predictor transferred to the
      quantization-aware one (default), scratch = the quantization-aware MLP alone, xgboost =
      gradient-boosted trees, ensemble = the mean of transfer and xgboost. --make-default
      makes the space's searches use it once trained.
  training [JOB] [--wait] [--limit N] [--json]
      List training jobs, or show one (--wait follows it to its end).
  cancel-training JOB
  predictors --space S [--json]
      The space's predictors (shipped and stored) with their held-out metrics; * marks the
      one its searches use.
  set-default-predictor --space S VERSION
      Make a stored predictor (or the shipped one) the space's default.

The server address defaults to $APQ_SERVER or 127.0.0.1:50051.
)";

// A command line split into positional arguments and --flags (with or without values).
class Args {
 public:
  // `boolean_flags` take no value; every other flag takes the next argument.
  static std::optional<Args> Parse(const std::vector<std::string>& argv,
                                   const std::vector<std::string>& value_flags,
                                   const std::vector<std::string>& boolean_flags,
                                   std::string* error) {
    Args args;
    for (size_t i = 0; i < argv.size(); ++i) {
      const std::string& arg = argv[i];
      if (arg.rfind("--", 0) != 0 || arg == "-") {
        args.positional_.push_back(arg);
        continue;
      }
      std::string name = arg.substr(2);
      std::optional<std::string> inline_value;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const bool is_value =
          std::find(value_flags.begin(), value_flags.end(), name) != value_flags.end();
      const bool is_boolean =
          std::find(boolean_flags.begin(), boolean_flags.end(), name) != boolean_flags.end();
      if (!is_value && !is_boolean) {
        *error = absl::StrCat("unknown flag --", name);
        return std::nullopt;
      }
      if (is_boolean) {
        if (inline_value) {
          *error = absl::StrCat("--", name, " takes no value");
          return std::nullopt;
        }
        args.values_[name] = "true";
        continue;
      }
      if (inline_value) {
        args.values_[name] = *inline_value;
      } else if (i + 1 < argv.size()) {
        args.values_[name] = argv[++i];
      } else {
        *error = absl::StrCat("--", name, " needs a value");
        return std::nullopt;
      }
    }
    return args;
  }

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto found = values_.find(name);
    return found == values_.end() ? fallback : found->second;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

struct UsageError {
  std::string message;
};

double ParseDouble(const Args& args, const std::string& name) {
  double value = 0;
  if (!absl::SimpleAtod(args.Get(name), &value) || !std::isfinite(value)) {
    throw UsageError{absl::StrCat("--", name, ": '", args.Get(name), "' is not a finite number")};
  }
  return value;
}

int64_t ParseInt(const Args& args, const std::string& name) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(args.Get(name), &value)) {
    throw UsageError{absl::StrCat("--", name, ": '", args.Get(name), "' is not an integer")};
  }
  return value;
}

int32_t ParseInt32(const Args& args, const std::string& name) {
  const int64_t value = ParseInt(args, name);
  if (value < INT32_MIN || value > INT32_MAX) {
    throw UsageError{absl::StrCat("--", name, ": ", value, " is out of range")};
  }
  return static_cast<int32_t>(value);
}

std::string Require(const Args& args, const std::string& name) {
  if (!args.Has(name) || args.Get(name).empty())
    throw UsageError{absl::StrCat("--", name, " is required")};
  return args.Get(name);
}

std::string ReadFileOrStdin(const std::string& path) {
  std::stringstream content;
  if (path == "-") {
    content << std::cin.rdbuf();
    return content.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError{absl::StrCat("cannot read ", path)};
  content << in.rdbuf();
  return content.str();
}

int ReportRpcError(const grpc::Status& status) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int code = status.error_code();
  const char* name = code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
  std::fprintf(stderr, "apq: %s: %s\n", name, status.error_message().c_str());
  return kExitFailed;
}

std::string StateName(apq::v1::JobState state) {
  std::string name = apq::v1::JobState_Name(state);
  const std::string prefix = "JOB_STATE_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name;
}

json MetricsJson(const apq::v1::Metrics& metrics) {
  json out = json::object();
  if (metrics.has_accuracy()) out["accuracy"] = metrics.accuracy();
  if (metrics.has_latency_ms()) out["latency_ms"] = metrics.latency_ms();
  if (metrics.has_energy_mj()) out["energy_mj"] = metrics.energy_mj();
  if (metrics.has_size_mb()) out["size_mb"] = metrics.size_mb();
  if (metrics.has_bitops()) out["bitops"] = metrics.bitops();
  if (metrics.modelled_size() > 0) {
    out["modelled"] =
        std::vector<std::string>(metrics.modelled().begin(), metrics.modelled().end());
  }
  if (metrics.has_measured_accuracy()) {
    out["measured_accuracy"] = metrics.measured_accuracy();
    out["measured_method"] = metrics.measured_method();
    out["measured_seconds"] = metrics.measured_seconds();
  }
  return out;
}

json ParseConfig(const std::string& text) {
  json parsed = json::parse(text, nullptr, false);
  return parsed.is_discarded() ? json(text) : parsed;
}

json JobJson(const apq::v1::Job& job) {
  json out = {{"job_id", job.id()},
              {"state", StateName(job.state())},
              {"space", job.request().space()},
              {"device", job.request().device()},
              {"generations_done", job.generations_done()},
              {"total_generations", job.request().evolution().generations()},
              {"candidates_evaluated", job.candidates_evaluated()},
              {"elapsed_s", job.elapsed_s()},
              {"table_version", job.table_version()},
              {"predictor_version", job.predictor_version()},
              {"seed", job.request().seed()},
              {"pareto_front_size", job.pareto_front_size()}};
  if (job.request().uniform_bits() != 0) out["uniform_bits"] = job.request().uniform_bits();
  if (job.has_best()) {
    out["best_config"] = ParseConfig(job.best().config_json());
    // The metrics object must outlive the loop: items() only refers to it.
    const json metrics = MetricsJson(job.best().metrics());
    for (const auto& [key, value] : metrics.items()) out[key] = value;
  }
  if (!job.error().empty()) out["error"] = job.error();
  return out;
}

std::string DescribeMetrics(const apq::v1::Metrics& metrics) {
  std::vector<std::string> parts;
  if (metrics.has_accuracy()) parts.push_back(absl::StrFormat("accuracy %.4f", metrics.accuracy()));
  if (metrics.has_latency_ms())
    parts.push_back(absl::StrFormat("latency %.3f ms", metrics.latency_ms()));
  if (metrics.has_energy_mj())
    parts.push_back(absl::StrFormat("energy %.3f mJ", metrics.energy_mj()));
  if (metrics.has_size_mb()) parts.push_back(absl::StrFormat("size %.3f MB", metrics.size_mb()));
  if (metrics.has_bitops()) parts.push_back(absl::StrFormat("BitOps %.4g", metrics.bitops()));
  if (metrics.modelled_size() > 0) {
    parts.push_back(absl::StrCat("(modelled: ", absl::StrJoin(metrics.modelled(), ", "), ")"));
  }
  if (metrics.has_measured_accuracy()) {
    parts.push_back(absl::StrFormat("measured accuracy %.4f (%s, %.1f s)",
                                    metrics.measured_accuracy(), metrics.measured_method(),
                                    metrics.measured_seconds()));
  }
  return absl::StrJoin(parts, ", ");
}

class Client {
 public:
  explicit Client(const std::string& address) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxSendMessageSize(64 << 20);
    arguments.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
    search_ = apq::v1::SearchService::NewStub(channel_);
    devices_ = apq::v1::DeviceService::NewStub(channel_);
    predictors_ = apq::v1::PredictorService::NewStub(channel_);
  }

  int Run(const std::string& command, const std::vector<std::string>& argv) {
    if (command == "devices") return Devices(argv);
    if (command == "evaluate") return Evaluate(argv);
    if (command == "search") return Search(argv);
    if (command == "watch") return Watch(argv);
    if (command == "jobs") return Jobs(argv);
    if (command == "candidates") return Candidates(argv);
    if (command == "config") return Config(argv);
    if (command == "cancel") return Cancel(argv);
    if (command == "upload-table") return UploadTable(argv);
    if (command == "upload-dataset") return UploadDataset(argv);
    if (command == "datasets") return Datasets(argv);
    if (command == "train") return Train(argv);
    if (command == "training") return Training(argv);
    if (command == "cancel-training") return CancelTraining(argv);
    if (command == "predictors") return Predictors(argv);
    if (command == "set-default-predictor") return SetDefaultPredictor(argv);
    throw UsageError{absl::StrCat("unknown command '", command, "'")};
  }

 private:
  static void SetDeadline(grpc::ClientContext* context, int seconds = 60) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  static Args ParseOrThrow(const std::vector<std::string>& argv,
                           const std::vector<std::string>& value_flags,
                           const std::vector<std::string>& boolean_flags, size_t positional) {
    std::string error;
    std::optional<Args> args = Args::Parse(argv, value_flags, boolean_flags, &error);
    if (!args) throw UsageError{error};
    if (args->positional().size() > positional) {
      throw UsageError{absl::StrCat("unexpected argument '", args->positional()[positional], "'")};
    }
    return *args;
  }

  static std::string JobArgument(const Args& args) {
    if (args.positional().empty()) throw UsageError{"a job id is required"};
    return args.positional()[0];
  }

  int Devices(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {}, {"json"}, 1);
    std::vector<apq::v1::Device> devices;
    grpc::ClientContext context;
    SetDeadline(&context);
    if (!args.positional().empty()) {
      apq::v1::GetDeviceRequest request;
      request.set_device(args.positional()[0]);
      apq::v1::Device device;
      grpc::Status status = devices_->GetDevice(&context, request, &device);
      if (!status.ok()) return ReportRpcError(status);
      devices.push_back(device);
    } else {
      apq::v1::ListDevicesResponse response;
      grpc::Status status = devices_->ListDevices(&context, {}, &response);
      if (!status.ok()) return ReportRpcError(status);
      devices.assign(response.devices().begin(), response.devices().end());
    }
    json out = json::array();
    for (const apq::v1::Device& device : devices) {
      json versions = json::array();
      for (const apq::v1::TableVersion& version : device.versions()) {
        versions.push_back(
            {{"version", version.version()},
             {"format", apq::v1::TableFormat_Name(version.format())},
             {"entries", version.entries()},
             {"sha256", version.sha256()},
             {"description", version.description()},
             {"covered_spaces", std::vector<std::string>(version.covered_spaces().begin(),
                                                         version.covered_spaces().end())},
             {"modelled_spaces", std::vector<std::string>(version.modelled_spaces().begin(),
                                                          version.modelled_spaces().end())}});
      }
      out.push_back({{"name", device.name()}, {"versions", versions}});
    }
    if (args.Has("json")) {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const json& device : out) {
      std::cout << device["name"].get<std::string>() << "\n";
      for (const json& version : device["versions"]) {
        std::cout << "  v" << version["version"] << "  " << version["format"].get<std::string>()
                  << "  " << version["entries"] << " entries  spaces: "
                  << absl::StrJoin(version["covered_spaces"].get<std::vector<std::string>>(), ",");
        const auto modelled = version["modelled_spaces"].get<std::vector<std::string>>();
        if (!modelled.empty()) std::cout << " (modelled: " << absl::StrJoin(modelled, ",") << ")";
        std::cout << "  " << version["description"].get<std::string>() << "\n";
      }
    }
    return kExitOk;
  }

  int Evaluate(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(
        argv, {"space", "device", "config", "configs", "table-version", "measure", "test-images"},
        {"json"}, 0);
    apq::v1::EvaluateRequest request;
    request.set_space(Require(args, "space"));
    request.set_device(args.Get("device"));
    if (args.Has("table-version")) request.set_table_version(ParseInt(args, "table-version"));
    if (args.Has("measure")) {
      const std::string mode = args.Get("measure");
      if (mode == "fp32") {
        request.set_measure(apq::v1::MEASURE_MODE_FP32);
      } else if (mode == "quantized") {
        request.set_measure(apq::v1::MEASURE_MODE_QUANTIZED);
      } else {
        throw UsageError{absl::StrCat("--measure: '", mode, "' is not fp32 or quantized")};
      }
    }
    if (args.Has("test-images")) {
      if (!args.Has("measure")) throw UsageError{"--test-images needs --measure"};
      request.set_measure_test_images(static_cast<int32_t>(ParseInt(args, "test-images")));
    }
    if (args.Has("config") == args.Has("configs")) {
      throw UsageError{"evaluate: give exactly one of --config FILE and --configs FILE"};
    }
    // One configuration is sent as written: a reference format may itself be a JSON list
    // (APQ's), and the server names any problem with its position.
    if (args.Has("config")) {
      request.add_configs_json(ReadFileOrStdin(args.Get("config")));
    } else {
      const std::string text = ReadFileOrStdin(args.Get("configs"));
      const json parsed = json::parse(text, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_array()) {
        throw UsageError{"--configs: the file must hold a JSON list of configurations"};
      }
      for (const json& config : parsed) request.add_configs_json(config.dump());
    }
    grpc::ClientContext context;
    // Measuring takes seconds per configuration.
    SetDeadline(&context, args.Has("measure") ? 600 : 60);
    apq::v1::EvaluateResponse response;
    grpc::Status status = search_->Evaluate(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    json results = json::array();
    for (const apq::v1::Metrics& metrics : response.metrics())
      results.push_back(MetricsJson(metrics));
    if (args.Has("json")) {
      json out = results.size() == 1 ? results[0] : json{{"results", results}};
      if (response.table_version() > 0) out["table_version"] = response.table_version();
      if (!response.predictor_version().empty())
        out["predictor_version"] = response.predictor_version();
      if (!response.supernet_version().empty())
        out["supernet_version"] = response.supernet_version();
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const apq::v1::Metrics& metrics : response.metrics()) {
      std::cout << DescribeMetrics(metrics) << "\n";
    }
    return kExitOk;
  }

  int Search(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv,
                             {"space", "device", "max-latency-ms", "max-energy-mj", "max-size-mb",
                              "max-bitops", "population", "generations", "parent-ratio",
                              "mutation-ratio", "mutate-prob", "resolution-mutate-prob", "seed",
                              "label", "table-version", "objective", "pareto-cost", "uniform-bits"},
                             {"wait", "json"}, 0);
    apq::v1::SubmitSearchRequest request;
    request.set_space(Require(args, "space"));
    request.set_device(Require(args, "device"));
    apq::v1::Budgets* budgets = request.mutable_budgets();
    if (args.Has("max-latency-ms"))
      budgets->set_max_latency_ms(ParseDouble(args, "max-latency-ms"));
    if (args.Has("max-energy-mj")) budgets->set_max_energy_mj(ParseDouble(args, "max-energy-mj"));
    if (args.Has("max-size-mb")) budgets->set_max_size_mb(ParseDouble(args, "max-size-mb"));
    if (args.Has("max-bitops")) budgets->set_max_bitops(ParseDouble(args, "max-bitops"));
    apq::v1::EvolutionParams* evolution = request.mutable_evolution();
    if (args.Has("population")) evolution->set_population_size(ParseInt32(args, "population"));
    if (args.Has("generations")) evolution->set_generations(ParseInt32(args, "generations"));
    if (args.Has("parent-ratio")) evolution->set_parent_ratio(ParseDouble(args, "parent-ratio"));
    if (args.Has("mutation-ratio"))
      evolution->set_mutation_ratio(ParseDouble(args, "mutation-ratio"));
    if (args.Has("mutate-prob"))
      evolution->set_mutate_probability(ParseDouble(args, "mutate-prob"));
    if (args.Has("resolution-mutate-prob")) {
      evolution->set_resolution_mutate_probability(ParseDouble(args, "resolution-mutate-prob"));
    }
    if (args.Has("seed")) {
      const int64_t seed = ParseInt(args, "seed");
      if (seed < 0) throw UsageError{"--seed: must be >= 0"};
      request.set_seed(static_cast<uint64_t>(seed));
    }
    if (args.Has("table-version")) request.set_table_version(ParseInt(args, "table-version"));
    request.set_label(args.Get("label"));
    if (args.Has("objective")) {
      const std::string objective = args.Get("objective");
      if (objective == "accuracy") {
        request.set_objective(apq::v1::OBJECTIVE_MAX_ACCURACY);
      } else if (objective == "pareto") {
        request.set_objective(apq::v1::OBJECTIVE_PARETO);
      } else {
        throw UsageError{absl::StrCat("--objective: '", objective, "' is not accuracy or pareto")};
      }
    }
    if (args.Has("pareto-cost")) {
      static const std::map<std::string, apq::v1::CostMetric> kCosts = {
          {"latency", apq::v1::COST_METRIC_LATENCY},
          {"energy", apq::v1::COST_METRIC_ENERGY},
          {"size", apq::v1::COST_METRIC_SIZE},
          {"bitops", apq::v1::COST_METRIC_BITOPS}};
      auto found = kCosts.find(args.Get("pareto-cost"));
      if (found == kCosts.end()) {
        throw UsageError{absl::StrCat("--pareto-cost: '", args.Get("pareto-cost"),
                                      "' is not latency, energy, size or bitops")};
      }
      request.set_pareto_cost(found->second);
    }
    if (args.Has("uniform-bits")) {
      request.set_uniform_bits(static_cast<int32_t>(ParseInt(args, "uniform-bits")));
    }

    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::Job job;
    grpc::Status status = search_->SubmitSearch(&context, request, &job);
    if (!status.ok()) return ReportRpcError(status);
    if (!args.Has("wait")) {
      if (args.Has("json")) {
        std::cout << JobJson(job).dump(2) << "\n";
      } else {
        std::cout << job.id() << "\n";
      }
      return kExitOk;
    }
    return FollowJob(job.id(), args.Has("json"));
  }

  // Follows a job to its end, then prints it. Exit 1 unless it succeeded with a result.
  int FollowJob(const std::string& job_id, bool as_json) {
    const bool show_bar = !as_json && isatty(STDERR_FILENO);
    grpc::ClientContext context;
    apq::v1::WatchJobRequest request;
    request.set_job_id(job_id);
    std::unique_ptr<grpc::ClientReader<apq::v1::JobProgress>> reader =
        search_->WatchJob(&context, request);
    apq::v1::JobProgress progress;
    while (reader->Read(&progress)) {
      if (show_bar) DrawProgress(progress);
    }
    if (show_bar) std::fprintf(stderr, "\n");
    grpc::Status status = reader->Finish();
    if (!status.ok()) return ReportRpcError(status);

    grpc::ClientContext get_context;
    SetDeadline(&get_context);
    apq::v1::GetJobRequest get;
    get.set_job_id(job_id);
    apq::v1::Job job;
    status = search_->GetJob(&get_context, get, &job);
    if (!status.ok()) return ReportRpcError(status);
    PrintJob(job, as_json);
    return job.state() == apq::v1::JOB_STATE_SUCCEEDED && job.has_best() ? kExitOk : kExitFailed;
  }

  static void DrawProgress(const apq::v1::JobProgress& progress) {
    constexpr int kWidth = 30;
    const int total = std::max(1, progress.total_generations());
    const int filled = std::min(kWidth, progress.generation() * kWidth / total);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::string best = "-";
    if (progress.has_best()) best = DescribeMetrics(progress.best().metrics());
    std::fprintf(stderr, "\r\033[K[%s] gen %d/%d  %lld candidates  %.1fs  best: %s", bar.c_str(),
                 progress.generation(), progress.total_generations(),
                 static_cast<long long>(progress.candidates_evaluated()), progress.elapsed_s(),
                 best.c_str());
    std::fflush(stderr);
  }

  static void PrintJob(const apq::v1::Job& job, bool as_json) {
    if (as_json) {
      std::cout << JobJson(job).dump(2) << "\n";
      return;
    }
    std::cout << "job " << job.id() << ": " << StateName(job.state()) << " after "
              << job.generations_done() << "/" << job.request().evolution().generations()
              << " generations, " << job.candidates_evaluated() << " candidates, "
              << absl::StrFormat("%.2f s", job.elapsed_s()) << "\n";
    if (!job.error().empty()) std::cout << "error: " << job.error() << "\n";
    if (job.has_best()) {
      std::cout << "best: " << DescribeMetrics(job.best().metrics()) << "\n"
                << "config: " << job.best().config_json() << "\n";
    }
  }

  int Watch(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {}, {"json"}, 1);
    return FollowJob(JobArgument(args), args.Has("json"));
  }

  int Jobs(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"state", "limit"}, {"json"}, 0);
    apq::v1::ListJobsRequest request;
    if (args.Has("state")) {
      apq::v1::JobState state;
      std::string name = "JOB_STATE_" + args.Get("state");
      for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!apq::v1::JobState_Parse(name, &state)) {
        throw UsageError{absl::StrCat("--state: unknown state '", args.Get("state"), "'")};
      }
      request.set_state(state);
    }
    if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::ListJobsResponse response;
    grpc::Status status = search_->ListJobs(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    json out = json::array();
    for (const apq::v1::Job& job : response.jobs()) out.push_back(JobJson(job));
    if (args.Has("json")) {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const apq::v1::Job& job : response.jobs()) {
      std::cout << job.id() << "  " << StateName(job.state()) << "  " << job.request().space()
                << "@" << job.request().device() << "  gen " << job.generations_done() << "/"
                << job.request().evolution().generations();
      if (job.has_best()) std::cout << "  " << DescribeMetrics(job.best().metrics());
      std::cout << "\n";
    }
    return kExitOk;
  }

  int Candidates(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"sort", "limit", "page-token"},
                             {"feasible", "infeasible", "front", "json"}, 1);
    apq::v1::ListCandidatesRequest request;
    request.set_job_id(JobArgument(args));
    static const std::map<std::string, apq::v1::SortMetric> kSorts = {
        {"id", apq::v1::SORT_METRIC_UNSPECIFIED},  {"accuracy", apq::v1::SORT_METRIC_ACCURACY},
        {"latency", apq::v1::SORT_METRIC_LATENCY}, {"energy", apq::v1::SORT_METRIC_ENERGY},
        {"size", apq::v1::SORT_METRIC_SIZE},       {"bitops", apq::v1::SORT_METRIC_BITOPS}};
    if (args.Has("sort")) {
      auto found = kSorts.find(args.Get("sort"));
      if (found == kSorts.end())
        throw UsageError{absl::StrCat("--sort: unknown metric '", args.Get("sort"), "'")};
      request.set_sort_by(found->second);
    }
    if (args.Has("feasible") && args.Has("infeasible")) {
      throw UsageError{"--feasible and --infeasible exclude each other"};
    }
    if (args.Has("feasible")) request.set_feasibility(apq::v1::FEASIBILITY_FEASIBLE);
    if (args.Has("infeasible")) request.set_feasibility(apq::v1::FEASIBILITY_INFEASIBLE);
    if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
    request.set_page_token(args.Get("page-token"));
    request.set_pareto_front_only(args.Has("front"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::ListCandidatesResponse response;
    grpc::Status status = search_->ListCandidates(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    if (args.Has("json")) {
      json candidates = json::array();
      for (const apq::v1::Candidate& candidate : response.candidates()) {
        json item = {{"id", candidate.id()},
                     {"generation", candidate.generation()},
                     {"feasible", candidate.feasible()},
                     {"on_pareto_front", candidate.on_pareto_front()},
                     {"config", ParseConfig(candidate.config_json())}};
        const json metrics = MetricsJson(candidate.metrics());
        for (const auto& [key, value] : metrics.items()) item[key] = value;
        candidates.push_back(item);
      }
      std::cout << json{{"total", response.total()},
                        {"next_page_token", response.next_page_token()},
                        {"candidates", candidates}}
                       .dump(2)
                << "\n";
      return kExitOk;
    }
    for (const apq::v1::Candidate& candidate : response.candidates()) {
      std::cout << candidate.id() << "  gen " << candidate.generation() << "  "
                << (candidate.feasible() ? "feasible  " : "infeasible  ")
                << DescribeMetrics(candidate.metrics()) << "  " << candidate.config_json() << "\n";
    }
    std::cout << response.total() << " candidates in all\n";
    return kExitOk;
  }

  int Config(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"output", "torchscript"}, {"json"}, 1);
    grpc::ClientContext context;
    // Extraction and the exported module's evaluation take seconds.
    SetDeadline(&context, args.Has("torchscript") ? 600 : 60);
    apq::v1::GetDeployableConfigRequest request;
    request.set_job_id(JobArgument(args));
    request.set_include_torchscript(args.Has("torchscript"));
    apq::v1::DeployableConfig config;
    grpc::Status status = search_->GetDeployableConfig(&context, request, &config);
    if (!status.ok()) return ReportRpcError(status);
    json out = {{"job_id", config.job_id()},
                {"space", config.space()},
                {"device", config.device()},
                {"config", ParseConfig(config.config_json())},
                {"metrics", MetricsJson(config.metrics())},
                {"table_version", config.table_version()},
                {"predictor_version", config.predictor_version()},
                {"seed", config.seed()}};
    json front = json::array();
    for (const apq::v1::Candidate& candidate : config.pareto_front()) {
      json point = MetricsJson(candidate.metrics());
      point["config"] = ParseConfig(candidate.config_json());
      front.push_back(point);
    }
    out["pareto_front"] = front;
    if (args.Has("torchscript")) {
      std::ofstream file(args.Get("torchscript"), std::ios::binary | std::ios::trunc);
      file << config.torchscript();
      if (!file) {
        std::fprintf(stderr, "apq: cannot write %s\n", args.Get("torchscript").c_str());
        return kExitFailed;
      }
      out["torchscript"] = args.Get("torchscript");
      out["torchscript_accuracy"] = config.torchscript_accuracy();
      out["supernet_version"] = config.supernet_version();
    }
    if (args.Has("output")) {
      std::ofstream file(args.Get("output"));
      file << ParseConfig(config.config_json()).dump(2) << "\n";
      if (!file) {
        std::fprintf(stderr, "apq: cannot write %s\n", args.Get("output").c_str());
        return kExitFailed;
      }
    }
    if (args.Has("json")) {
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << config.config_json() << "\n" << DescribeMetrics(config.metrics()) << "\n";
      if (args.Has("torchscript")) {
        std::cout << absl::StrFormat("TorchScript %s (%zu bytes, from %s): test accuracy %.4f\n",
                                     args.Get("torchscript"), config.torchscript().size(),
                                     config.supernet_version(), config.torchscript_accuracy());
      }
    }
    return kExitOk;
  }

  int Cancel(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {}, {}, 1);
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::CancelJobRequest request;
    request.set_job_id(JobArgument(args));
    apq::v1::Job job;
    grpc::Status status = search_->CancelJob(&context, request, &job);
    if (!status.ok()) return ReportRpcError(status);
    std::cout << job.id() << ": cancellation requested (" << StateName(job.state()) << ")\n";
    return kExitOk;
  }

  int UploadTable(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"device", "format", "description"}, {"json"}, 1000);
    apq::v1::UploadCostTableRequest request;
    request.set_device(Require(args, "device"));
    const std::string format = Require(args, "format");
    if (format == "ofa-yaml") {
      request.set_format(apq::v1::TABLE_FORMAT_OFA_YAML);
    } else if (format == "conv-json") {
      request.set_format(apq::v1::TABLE_FORMAT_CONV_JSON);
    } else if (format == "apq-bitfusion") {
      request.set_format(apq::v1::TABLE_FORMAT_APQ_BITFUSION);
    } else {
      throw UsageError{
          absl::StrCat("--format: '", format, "' is not ofa-yaml, apq-bitfusion or conv-json")};
    }
    request.set_description(args.Get("description"));
    if (args.positional().empty()) throw UsageError{"at least one table file is required"};
    for (const std::string& path : args.positional()) {
      apq::v1::TableFile* file = request.add_files();
      file->set_name(path.substr(path.find_last_of('/') + 1));
      file->set_content(ReadFileOrStdin(path));
    }
    grpc::ClientContext context;
    SetDeadline(&context, 300);
    apq::v1::Device device;
    grpc::Status status = devices_->UploadCostTable(&context, request, &device);
    if (!status.ok()) return ReportRpcError(status);
    const apq::v1::TableVersion& latest = device.versions(device.versions_size() - 1);
    if (args.Has("json")) {
      std::cout << json{{"device", device.name()},
                        {"version", latest.version()},
                        {"entries", latest.entries()},
                        {"sha256", latest.sha256()},
                        {"covered_spaces", std::vector<std::string>(latest.covered_spaces().begin(),
                                                                    latest.covered_spaces().end())}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << device.name() << " v" << latest.version() << ": " << latest.entries()
                << " entries, covers: " << absl::StrJoin(latest.covered_spaces(), ", ") << "\n";
    }
    return kExitOk;
  }

  // Records of a measurement CSV (its header first) or a JSON list, as the request's records.
  static void ReadRecords(const std::string& path, apq::v1::UploadDatasetRequest* request) {
    const std::string content = ReadFileOrStdin(path);
    if (content.rfind(oface::kMeasurementCsvHeader, 0) == 0) {
      absl::StatusOr<std::vector<oface::MeasurementRecord>> records =
          oface::ParseMeasurementCsv(content, path, /*keep_unterminated_line=*/true);
      if (!records.ok()) throw UsageError{static_cast<std::string>(records.status().message())};
      for (const oface::MeasurementRecord& record : *records) {
        apq::v1::MeasurementRecord* out = request->add_records();
        out->set_config_json(record.config_json);
        out->set_accuracy(record.accuracy);
        out->set_method(record.method);
        out->set_seconds(record.seconds);
      }
      return;
    }
    const json parsed = json::parse(content, nullptr, false);
    if (!parsed.is_array()) {
      throw UsageError{absl::StrCat(path, ": neither a measurement CSV (header '",
                                    oface::kMeasurementCsvHeader, "') nor a JSON list")};
    }
    for (size_t i = 0; i < parsed.size(); ++i) {
      const json& record = parsed[i];
      const std::string what = absl::StrCat(path, ": record ", i);
      if (!record.is_object() || !record.contains("config") || !record.contains("accuracy") ||
          !record["accuracy"].is_number()) {
        throw UsageError{absl::StrCat(what, ": needs \"config\" and a numeric \"accuracy\"")};
      }
      apq::v1::MeasurementRecord* out = request->add_records();
      const json& config = record["config"];
      out->set_config_json(config.is_string() ? config.get<std::string>() : config.dump());
      out->set_accuracy(record["accuracy"].get<double>());
      if (record.contains("method")) {
        if (!record["method"].is_string()) throw UsageError{what + ": \"method\" is not text"};
        out->set_method(record["method"].get<std::string>());
      }
      if (record.contains("seconds")) {
        if (!record["seconds"].is_number()) {
          throw UsageError{what + ": \"seconds\" is not a number"};
        }
        out->set_seconds(record["seconds"].get<double>());
      }
    }
  }

  static json DatasetJson(const apq::v1::Dataset& dataset) {
    return {{"name", dataset.name()},
            {"space", dataset.space()},
            {"description", dataset.description()},
            {"fp32_records", dataset.fp32_records()},
            {"quantized_records", dataset.quantized_records()},
            {"created_unix_s", dataset.created_unix_s()}};
  }

  static json PredictorMetricsJson(const apq::v1::PredictorMetrics& metrics) {
    return {{"heldout_records", metrics.heldout_records()},
            {"rmse", metrics.rmse()},
            {"kendall_tau", metrics.kendall_tau()},
            {"pairwise_accuracy", metrics.pairwise_accuracy()},
            {"train_records", metrics.train_records()},
            {"validation_records", metrics.validation_records()},
            {"train_seconds", metrics.train_seconds()}};
  }

  static std::string KindName(apq::v1::PredictorKind kind) {
    switch (kind) {
      case apq::v1::PREDICTOR_KIND_MLP_SCRATCH:
        return "scratch";
      case apq::v1::PREDICTOR_KIND_XGBOOST:
        return "xgboost";
      case apq::v1::PREDICTOR_KIND_ENSEMBLE:
        return "ensemble";
      default:
        return "transfer";
    }
  }

  static json TrainingJobJson(const apq::v1::TrainingJob& job) {
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

  static void PrintTrainingJob(const apq::v1::TrainingJob& job) {
    std::cout << "training job " << job.id() << ": " << StateName(job.state()) << " ("
              << KindName(job.request().kind()) << " on " << job.request().dataset() << ")";
    if (!job.stage().empty()) {
      std::cout << absl::StrFormat(", %s epoch %d/%d, validation RMSE %.4f", job.stage(),
                                   job.epoch(), job.max_epochs(), job.validation_rmse());
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

  int UploadDataset(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"name", "space", "description"}, {"json"}, 1);
    if (args.positional().empty()) throw UsageError{"a records file is required"};
    apq::v1::UploadDatasetRequest request;
    request.set_name(Require(args, "name"));
    request.set_space(Require(args, "space"));
    request.set_description(args.Get("description"));
    ReadRecords(args.positional()[0], &request);
    grpc::ClientContext context;
    SetDeadline(&context, 300);
    apq::v1::Dataset dataset;
    grpc::Status status = predictors_->UploadDataset(&context, request, &dataset);
    if (!status.ok()) return ReportRpcError(status);
    if (args.Has("json")) {
      std::cout << DatasetJson(dataset).dump(2) << "\n";
    } else {
      std::cout << "dataset " << dataset.name() << " (" << dataset.space()
                << "): " << dataset.fp32_records() << " fp32 and " << dataset.quantized_records()
                << " quantized records\n";
    }
    return kExitOk;
  }

  int Datasets(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"space"}, {"json"}, 0);
    apq::v1::ListDatasetsRequest request;
    request.set_space(args.Get("space"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::ListDatasetsResponse response;
    grpc::Status status = predictors_->ListDatasets(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    json out = json::array();
    for (const apq::v1::Dataset& dataset : response.datasets()) out.push_back(DatasetJson(dataset));
    if (args.Has("json")) {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const apq::v1::Dataset& dataset : response.datasets()) {
      std::cout << dataset.name() << "  " << dataset.space() << "  " << dataset.fp32_records()
                << " fp32, " << dataset.quantized_records() << " quantized  "
                << dataset.description() << "\n";
    }
    return kExitOk;
  }

  int Train(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv,
                             {"space", "dataset", "kind", "seed", "holdout", "max-epochs",
                              "learning-rate", "description"},
                             {"make-default", "wait", "json"}, 0);
    apq::v1::TrainPredictorRequest request;
    request.set_space(Require(args, "space"));
    request.set_dataset(Require(args, "dataset"));
    const std::string kind = args.Has("kind") ? args.Get("kind") : "transfer";
    if (kind == "transfer") {
      request.set_kind(apq::v1::PREDICTOR_KIND_MLP_TRANSFER);
    } else if (kind == "scratch") {
      request.set_kind(apq::v1::PREDICTOR_KIND_MLP_SCRATCH);
    } else if (kind == "xgboost") {
      request.set_kind(apq::v1::PREDICTOR_KIND_XGBOOST);
    } else if (kind == "ensemble") {
      request.set_kind(apq::v1::PREDICTOR_KIND_ENSEMBLE);
    } else {
      throw UsageError{
          absl::StrCat("--kind: '", kind, "' is not transfer, scratch, xgboost or ensemble")};
    }
    if (args.Has("seed")) {
      const int64_t seed = ParseInt(args, "seed");
      if (seed < 0) throw UsageError{"--seed: must be >= 0"};
      request.set_seed(static_cast<uint64_t>(seed));
    }
    if (args.Has("holdout")) request.set_holdout_fraction(ParseDouble(args, "holdout"));
    if (args.Has("max-epochs")) request.set_max_epochs(ParseInt32(args, "max-epochs"));
    if (args.Has("learning-rate")) request.set_learning_rate(ParseDouble(args, "learning-rate"));
    request.set_make_default(args.Has("make-default"));
    request.set_description(args.Get("description"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::TrainingJob job;
    grpc::Status status = predictors_->TrainPredictor(&context, request, &job);
    if (!status.ok()) return ReportRpcError(status);
    if (!args.Has("wait")) {
      if (args.Has("json")) {
        std::cout << TrainingJobJson(job).dump(2) << "\n";
      } else {
        std::cout << job.id() << "\n";
      }
      return kExitOk;
    }
    return FollowTraining(job.id(), args.Has("json"));
  }

  // Polls a training job until it ends, then prints it. Exit 1 unless it succeeded.
  int FollowTraining(const std::string& job_id, bool as_json) {
    const bool show_progress = !as_json && isatty(STDERR_FILENO);
    apq::v1::TrainingJob job;
    while (true) {
      grpc::ClientContext context;
      SetDeadline(&context);
      apq::v1::GetTrainingJobRequest request;
      request.set_job_id(job_id);
      grpc::Status status = predictors_->GetTrainingJob(&context, request, &job);
      if (!status.ok()) return ReportRpcError(status);
      const bool ended =
          job.state() != apq::v1::JOB_STATE_QUEUED && job.state() != apq::v1::JOB_STATE_RUNNING;
      if (show_progress) {
        std::fprintf(stderr, "\r\033[K%s: %s %s epoch %d/%d, validation RMSE %.4f", job_id.c_str(),
                     StateName(job.state()).c_str(), job.stage().c_str(), job.epoch(),
                     job.max_epochs(), job.validation_rmse());
        std::fflush(stderr);
      }
      if (ended) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (show_progress) std::fprintf(stderr, "\n");
    if (as_json) {
      std::cout << TrainingJobJson(job).dump(2) << "\n";
    } else {
      PrintTrainingJob(job);
    }
    return job.state() == apq::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitFailed;
  }

  int Training(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"limit"}, {"wait", "json"}, 1);
    if (!args.positional().empty()) {
      if (args.Has("wait")) return FollowTraining(args.positional()[0], args.Has("json"));
      grpc::ClientContext context;
      SetDeadline(&context);
      apq::v1::GetTrainingJobRequest request;
      request.set_job_id(args.positional()[0]);
      apq::v1::TrainingJob job;
      grpc::Status status = predictors_->GetTrainingJob(&context, request, &job);
      if (!status.ok()) return ReportRpcError(status);
      if (args.Has("json")) {
        std::cout << TrainingJobJson(job).dump(2) << "\n";
      } else {
        PrintTrainingJob(job);
      }
      return kExitOk;
    }
    if (args.Has("wait")) throw UsageError{"--wait needs a training job"};
    apq::v1::ListTrainingJobsRequest request;
    if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::ListTrainingJobsResponse response;
    grpc::Status status = predictors_->ListTrainingJobs(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    json out = json::array();
    for (const apq::v1::TrainingJob& job : response.jobs()) out.push_back(TrainingJobJson(job));
    if (args.Has("json")) {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const apq::v1::TrainingJob& job : response.jobs()) PrintTrainingJob(job);
    return kExitOk;
  }

  int CancelTraining(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {}, {}, 1);
    if (args.positional().empty()) throw UsageError{"a training job id is required"};
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::CancelTrainingJobRequest request;
    request.set_job_id(args.positional()[0]);
    apq::v1::TrainingJob job;
    grpc::Status status = predictors_->CancelTrainingJob(&context, request, &job);
    if (!status.ok()) return ReportRpcError(status);
    std::cout << job.id() << ": cancellation requested (" << StateName(job.state()) << ")\n";
    return kExitOk;
  }

  static json PredictorJson(const apq::v1::Predictor& predictor) {
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

  int Predictors(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"space"}, {"json"}, 0);
    apq::v1::ListPredictorsRequest request;
    request.set_space(Require(args, "space"));
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::ListPredictorsResponse response;
    grpc::Status status = predictors_->ListPredictors(&context, request, &response);
    if (!status.ok()) return ReportRpcError(status);
    if (args.Has("json")) {
      json out = json::array();
      for (const apq::v1::Predictor& predictor : response.predictors()) {
        out.push_back(PredictorJson(predictor));
      }
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    for (const apq::v1::Predictor& predictor : response.predictors()) {
      std::cout << (predictor.is_default() ? "* " : "  ") << predictor.version() << "  "
                << predictor.kind();
      if (predictor.shipped()) {
        std::cout << "  shipped";
      } else {
        const apq::v1::PredictorMetrics& metrics = predictor.metrics();
        std::cout << absl::StrFormat(
            "  dataset %s  held-out %d: RMSE %.4f, tau %.3f, pairwise %.3f", predictor.dataset(),
            metrics.heldout_records(), metrics.rmse(), metrics.kendall_tau(),
            metrics.pairwise_accuracy());
      }
      std::cout << "\n";
    }
    return kExitOk;
  }

  int SetDefaultPredictor(const std::vector<std::string>& argv) {
    Args args = ParseOrThrow(argv, {"space"}, {}, 1);
    if (args.positional().empty()) throw UsageError{"a predictor version is required"};
    apq::v1::SetDefaultPredictorRequest request;
    request.set_space(Require(args, "space"));
    request.set_version(args.positional()[0]);
    grpc::ClientContext context;
    SetDeadline(&context);
    apq::v1::Predictor predictor;
    grpc::Status status = predictors_->SetDefaultPredictor(&context, request, &predictor);
    if (!status.ok()) return ReportRpcError(status);
    std::cout << request.space() << ": searches now use " << predictor.version() << "\n";
    return kExitOk;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<apq::v1::SearchService::Stub> search_;
  std::unique_ptr<apq::v1::DeviceService::Stub> devices_;
  std::unique_ptr<apq::v1::PredictorService::Stub> predictors_;
};

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* from_env = std::getenv("APQ_SERVER");
  std::string server = from_env != nullptr && *from_env != '\0' ? from_env : "127.0.0.1:50051";
  while (!args.empty() && args[0].rfind("--", 0) == 0) {
    if (args[0] == "--help" || args[0] == "-h") {
      std::cout << kUsage;
      return kExitOk;
    }
    if (args[0] == "--server" && args.size() >= 2) {
      server = args[1];
      args.erase(args.begin(), args.begin() + 2);
    } else if (args[0].rfind("--server=", 0) == 0) {
      server = args[0].substr(9);
      args.erase(args.begin());
    } else {
      std::fprintf(stderr, "apq: unknown option %s\n%s", args[0].c_str(), kUsage);
      return kExitUsage;
    }
  }
  if (args.empty()) {
    std::fprintf(stderr, "%s", kUsage);
    return kExitUsage;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    Client client(server);
    return client.Run(command, args);
  } catch (const UsageError& error) {
    std::fprintf(stderr, "apq %s: %s\n(run 'apq --help' for usage)\n", command.c_str(),
                 error.message.c_str());
    return kExitUsage;
  } catch (const std::exception& error) {
    // nlohmann::json and the standard library report by exception; nothing escapes main.
    std::fprintf(stderr, "apq %s: %s\n", command.c_str(), error.what());
    return kExitFailed;
  }
}

}  // namespace
}  // namespace apq::client

int main(int argc, char** argv) { return apq::client::Main(argc, argv); }
