#include "clients/search_commands.h"

#include <cctype>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/connection.h"
#include "clients/output.h"
#include "clients/plot.h"
#include "clients/search_output.h"
#include "nlohmann/json.hpp"

namespace apq::client {
namespace {

using apq::v1::SearchService;
using nlohmann::json;

int Evaluate(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(
      argv,
      {"space", "device", "config", "configs", "table-version", "measure", "test-images", "split"},
      {"json"}, 0);
  apq::v1::EvaluateRequest request;
  request.set_space(Require(args, "space"));
  request.set_device(args.Get("device"));
  if (args.Has("table-version")) request.set_table_version(ParseInt(args, "table-version"));
  if (args.Has("measure")) {
    request.set_measure(ParseChoice<apq::v1::MeasureMode>(
        "measure", args.Get("measure"),
        {{"fp32", apq::v1::MEASURE_MODE_FP32}, {"quantized", apq::v1::MEASURE_MODE_QUANTIZED}}));
  }
  if (args.Has("split")) {
    if (!args.Has("measure")) throw UsageError{"--split needs --measure"};
    request.set_split(ParseChoice<apq::v1::DataSplit>(
        "split", args.Get("split"),
        {{"validation", apq::v1::DATA_SPLIT_VALIDATION}, {"test", apq::v1::DATA_SPLIT_TEST}}));
  }
  if (args.Has("test-images")) {
    if (!args.Has("measure")) throw UsageError{"--test-images needs --measure"};
    request.set_measure_test_images(ParseInt32(args, "test-images"));
  }
  if (args.Has("config") == args.Has("configs")) {
    throw UsageError{"evaluate: give exactly one of --config FILE and --configs FILE"};
  }
  // One configuration is sent as written: a reference format may itself be a JSON list
  // (APQ's), and the server names any problem with its position.
  if (args.Has("config")) {
    request.add_configs_json(ReadFileOrStdin(args.Get("config")));
  } else {
    const json parsed = json::parse(ReadFileOrStdin(args.Get("configs")), nullptr, false);
    if (parsed.is_discarded() || !parsed.is_array()) {
      throw UsageError{"--configs: the file must hold a JSON list of configurations"};
    }
    for (const json& config : parsed) request.add_configs_json(config.dump());
  }
  apq::v1::EvaluateResponse response;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::Evaluate, request, &response,
                args.Has("measure") ? kMeasureDeadline : kDefaultDeadline);
  if (!status.ok()) return ReportRpcError(status);
  if (!args.Has("json")) {
    for (const apq::v1::Metrics& metrics : response.metrics()) {
      std::cout << DescribeMetrics(metrics) << "\n";
    }
    return kExitOk;
  }
  json results = json::array();
  for (const apq::v1::Metrics& metrics : response.metrics()) {
    results.push_back(MetricsJson(metrics));
  }
  json out = results.size() == 1 ? results[0] : json{{"results", results}};
  if (response.table_version() > 0) out["table_version"] = response.table_version();
  if (!response.predictor_version().empty()) {
    out["predictor_version"] = response.predictor_version();
  }
  if (!response.supernet_version().empty()) out["supernet_version"] = response.supernet_version();
  PrintJson(out);
  return kExitOk;
}

// Follows a job to its end (a progress line on a terminal), then prints it. Exit 1 unless it
// succeeded with a result.
int FollowJob(Connection& connection, const std::string& job_id, bool as_json) {
  apq::v1::Job job;
  const grpc::Status status = WaitForJobEnd(connection, job_id, as_json, &job);
  if (!status.ok()) return ReportRpcError(status);
  PrintItem(job, as_json, JobJson, PrintJobText);
  return job.state() == apq::v1::JOB_STATE_SUCCEEDED && job.has_best() ? kExitOk : kExitFailed;
}

// "name=value,name=value": integers, numbers, true/false, else a choice name; the server
// checks each against the engine's options (apq engines lists them).
void ParseEngineOptions(const std::string& text,
                        google::protobuf::Map<std::string, apq::v1::EngineOptionValue>* options) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const size_t equals = item.find('=');
    if (equals == absl::string_view::npos || equals == 0) {
      throw UsageError{absl::StrCat("--options: '", item, "' is not NAME=VALUE")};
    }
    const std::string name(item.substr(0, equals));
    const std::string value(item.substr(equals + 1));
    apq::v1::EngineOptionValue& option = (*options)[name];
    int64_t integer = 0;
    double number = 0;
    if (value == "true" || value == "false") {
      option.set_bool_value(value == "true");
    } else if (absl::SimpleAtoi(value, &integer)) {
      option.set_int_value(integer);
    } else if (absl::SimpleAtod(value, &number)) {
      option.set_double_value(number);
    } else {
      option.set_choice_value(value);
    }
  }
}

std::string OptionValueText(const apq::v1::EngineOptionValue& value) {
  switch (value.value_case()) {
    case apq::v1::EngineOptionValue::kIntValue:
      return absl::StrCat(value.int_value());
    case apq::v1::EngineOptionValue::kDoubleValue:
      return absl::StrCat(value.double_value());
    case apq::v1::EngineOptionValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case apq::v1::EngineOptionValue::kChoiceValue:
      return value.choice_value();
    case apq::v1::EngineOptionValue::VALUE_NOT_SET:
      break;
  }
  return "";
}

int Engines(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 0);
  apq::v1::ListEnginesResponse response;
  const grpc::Status status = CallUnary(connection.search(), &SearchService::Stub::ListEngines,
                                        apq::v1::ListEnginesRequest(), &response);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("json")) {
    json engines = json::array();
    for (const apq::v1::Engine& engine : response.engines()) {
      json options = json::array();
      for (const apq::v1::EngineOption& option : engine.options()) {
        json entry = {{"name", option.name()},
                      {"type", apq::v1::EngineOption::Type_Name(option.type())},
                      {"default", OptionValueText(option.default_value())},
                      {"description", option.description()}};
        if (!option.default_from().empty()) entry["default_from"] = option.default_from();
        if (option.has_min()) entry["min"] = option.min();
        if (option.has_max()) entry["max"] = option.max();
        if (option.min_exclusive()) entry["min_exclusive"] = true;
        if (option.choices_size() > 0) entry["choices"] = StringList(option.choices());
        options.push_back(entry);
      }
      engines.push_back(
          {{"name", engine.name()}, {"description", engine.description()}, {"options", options}});
    }
    PrintJson(engines);
    return kExitOk;
  }
  for (const apq::v1::Engine& engine : response.engines()) {
    std::cout << engine.name() << ": " << engine.description() << "\n";
    for (const apq::v1::EngineOption& option : engine.options()) {
      std::string range;
      if (option.has_min() || option.has_max()) {
        range = absl::StrCat(" in ", option.min_exclusive() ? "(" : "[",
                             option.has_min() ? absl::StrCat(option.min()) : "-inf", ", ",
                             option.has_max() ? absl::StrCat(option.max()) : "inf", "]");
      }
      std::cout << "  " << option.name() << " = "
                << (option.default_from().empty() ? OptionValueText(option.default_value())
                                                  : absl::StrCat("(", option.default_from(), ")"))
                << range << ": " << option.description() << "\n";
    }
  }
  return kExitOk;
}

// The flags of a search's request other than its device, budgets and label (which a
// sweep's scenarios set).
const std::vector<std::string> kCommonSearchFlags = {"space",
                                                     "population",
                                                     "generations",
                                                     "parent-ratio",
                                                     "mutation-ratio",
                                                     "mutate-prob",
                                                     "resolution-mutate-prob",
                                                     "seed",
                                                     "table-version",
                                                     "objective",
                                                     "pareto-cost",
                                                     "uniform-bits",
                                                     "engine",
                                                     "options",
                                                     "verify-top-k",
                                                     "verify-dataset",
                                                     "verify-images",
                                                     "verify-workers",
                                                     "fixed-architecture",
                                                     "uncertainty-penalty"};

// The request those flags describe (space required).
apq::v1::SubmitSearchRequest CommonSearchRequest(const Args& args) {
  apq::v1::SubmitSearchRequest request;
  request.set_space(Require(args, "space"));
  request.set_keep_all_draws(args.Has("keep-all-draws"));
  if (args.Has("engine")) {
    for (const char* flag : {"population", "generations", "parent-ratio", "mutation-ratio",
                             "mutate-prob", "resolution-mutate-prob"}) {
      if (args.Has(flag)) {
        throw UsageError{absl::StrCat("--", flag,
                                      " sets the evolution engine's option; with --engine give "
                                      "options as --options NAME=VALUE,...")};
      }
    }
    apq::v1::EngineRequest* engine = request.mutable_engine_request();
    engine->set_name(args.Get("engine"));
    ParseEngineOptions(args.Get("options"), engine->mutable_options());
  } else if (args.Has("options")) {
    throw UsageError{
        "--options needs --engine (the evolution engine's flags are --population ...)"};
  }
  if (!args.Has("engine")) {
    apq::v1::EvolutionParams* evolution = request.mutable_evolution();
    if (args.Has("population")) evolution->set_population_size(ParseInt32(args, "population"));
    if (args.Has("generations")) evolution->set_generations(ParseInt32(args, "generations"));
    if (args.Has("parent-ratio")) evolution->set_parent_ratio(ParseDouble(args, "parent-ratio"));
    if (args.Has("mutation-ratio")) {
      evolution->set_mutation_ratio(ParseDouble(args, "mutation-ratio"));
    }
    if (args.Has("mutate-prob")) {
      evolution->set_mutate_probability(ParseDouble(args, "mutate-prob"));
    }
    if (args.Has("resolution-mutate-prob")) {
      evolution->set_resolution_mutate_probability(ParseDouble(args, "resolution-mutate-prob"));
    }
  }
  if (args.Has("seed")) request.set_seed(ParseSeed(args));
  if (args.Has("table-version")) request.set_table_version(ParseInt(args, "table-version"));
  if (args.Has("objective")) {
    request.set_objective(ParseChoice<apq::v1::Objective>(
        "objective", args.Get("objective"),
        {{"accuracy", apq::v1::OBJECTIVE_MAX_ACCURACY}, {"pareto", apq::v1::OBJECTIVE_PARETO}}));
  }
  if (args.Has("pareto-cost")) {
    request.set_pareto_cost(
        ParseChoice<apq::v1::CostMetric>("pareto-cost", args.Get("pareto-cost"),
                                         {{"latency", apq::v1::COST_METRIC_LATENCY},
                                          {"energy", apq::v1::COST_METRIC_ENERGY},
                                          {"size", apq::v1::COST_METRIC_SIZE},
                                          {"bitops", apq::v1::COST_METRIC_BITOPS}}));
  }
  if (args.Has("uniform-bits")) {
    request.set_uniform_bits(ParseInt32(args, "uniform-bits"));
  }
  if (args.Has("uncertainty-penalty")) {
    request.set_uncertainty_penalty(ParseDouble(args, "uncertainty-penalty"));
  }
  if (args.Has("fixed-architecture")) {
    request.set_fixed_architecture(ReadFileOrStdin(args.Get("fixed-architecture")));
  }
  if (args.Has("verify-top-k")) {
    apq::v1::Verification* verification = request.mutable_verification();
    verification->set_top_k(ParseInt32(args, "verify-top-k"));
    verification->set_dataset(args.Get("verify-dataset"));
    if (args.Has("verify-images")) verification->set_images(ParseInt32(args, "verify-images"));
    if (args.Has("verify-workers")) {
      verification->set_workers(ParseInt32(args, "verify-workers"));
    }
  } else if (args.Has("verify-dataset") || args.Has("verify-images") ||
             args.Has("verify-workers")) {
    throw UsageError{"--verify-dataset, --verify-images and --verify-workers need --verify-top-k"};
  }
  return request;
}

int Search(Connection& connection, const std::vector<std::string>& argv) {
  std::vector<std::string> value_flags = kCommonSearchFlags;
  value_flags.insert(value_flags.end(), {"device", "max-latency-ms", "max-energy-mj", "max-size-mb",
                                         "max-bitops", "label"});
  const Args args = Args::Parse(argv, value_flags, {"wait", "json", "keep-all-draws"}, 0);
  apq::v1::SubmitSearchRequest request = CommonSearchRequest(args);
  request.set_device(Require(args, "device"));
  apq::v1::Budgets* budgets = request.mutable_budgets();
  if (args.Has("max-latency-ms")) budgets->set_max_latency_ms(ParseDouble(args, "max-latency-ms"));
  if (args.Has("max-energy-mj")) budgets->set_max_energy_mj(ParseDouble(args, "max-energy-mj"));
  if (args.Has("max-size-mb")) budgets->set_max_size_mb(ParseDouble(args, "max-size-mb"));
  if (args.Has("max-bitops")) budgets->set_max_bitops(ParseDouble(args, "max-bitops"));
  request.set_label(args.Get("label"));

  apq::v1::Job job;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::SubmitSearch, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("wait")) return FollowJob(connection, job.id(), args.Has("json"));
  PrintItem(job, args.Has("json"), JobJson, PrintJobId<apq::v1::Job>);
  return kExitOk;
}

// A scenarios file: a JSON list of objects with "device" (required), any of the budgets
// "max_latency_ms", "max_energy_mj", "max_size_mb", "max_bitops" (numbers) and "label".
// Throws UsageError naming the entry and key of anything else.
std::vector<apq::v1::SweepScenario> ParseScenarios(const std::string& text) {
  const json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_array() || parsed.empty()) {
    throw UsageError{"--scenarios: the file must hold a non-empty JSON list of scenarios"};
  }
  std::vector<apq::v1::SweepScenario> scenarios;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const json& entry = parsed[i];
    const std::string where = absl::StrCat("--scenarios: entry ", i);
    if (!entry.is_object()) throw UsageError{absl::StrCat(where, " is not an object")};
    apq::v1::SweepScenario scenario;
    for (const auto& item : entry.items()) {
      const std::string& key = item.key();
      const json& value = item.value();
      const auto number = [&]() {
        if (!value.is_number()) {
          throw UsageError{absl::StrCat(where, ": \"", key, "\" must be a number")};
        }
        return value.get<double>();
      };
      if (key == "device" || key == "label") {
        if (!value.is_string()) {
          throw UsageError{absl::StrCat(where, ": \"", key, "\" must be a string")};
        }
        if (key == "device") scenario.set_device(value.get<std::string>());
        if (key == "label") scenario.set_label(value.get<std::string>());
      } else if (key == "max_latency_ms") {
        scenario.mutable_budgets()->set_max_latency_ms(number());
      } else if (key == "max_energy_mj") {
        scenario.mutable_budgets()->set_max_energy_mj(number());
      } else if (key == "max_size_mb") {
        scenario.mutable_budgets()->set_max_size_mb(number());
      } else if (key == "max_bitops") {
        scenario.mutable_budgets()->set_max_bitops(number());
      } else {
        throw UsageError{absl::StrCat(where, ": unknown key \"", key,
                                      "\" (device, label, max_latency_ms, max_energy_mj, "
                                      "max_size_mb, max_bitops)")};
      }
    }
    if (scenario.device().empty())
      throw UsageError{absl::StrCat(where, ": \"device\" is required")};
    scenarios.push_back(std::move(scenario));
  }
  return scenarios;
}

json BudgetsJson(const apq::v1::Budgets& budgets) {
  json out = json::object();
  if (budgets.has_max_latency_ms()) out["max_latency_ms"] = budgets.max_latency_ms();
  if (budgets.has_max_energy_mj()) out["max_energy_mj"] = budgets.max_energy_mj();
  if (budgets.has_max_size_mb()) out["max_size_mb"] = budgets.max_size_mb();
  if (budgets.has_max_bitops()) out["max_bitops"] = budgets.max_bitops();
  return out;
}

json SweepJson(const apq::v1::Sweep& sweep) {
  json scenarios = json::array();
  for (const apq::v1::SweepScenarioResult& result : sweep.scenarios()) {
    json entry = {{"device", result.scenario().device()},
                  {"budgets", BudgetsJson(result.scenario().budgets())},
                  {"job", JobJson(result.job())}};
    if (!result.scenario().label().empty()) entry["label"] = result.scenario().label();
    json front = json::array();
    for (const apq::v1::Candidate& candidate : result.pareto_front()) {
      front.push_back(CandidateJson(candidate));
    }
    entry["pareto_front"] = front;
    scenarios.push_back(entry);
  }
  return {{"sweep_id", sweep.sweep_id()},
          {"scenarios_ended", sweep.scenarios_ended()},
          {"steps_done", sweep.steps_done()},
          {"steps_total", sweep.steps_total()},
          {"scenarios", scenarios}};
}

void PrintSweepText(const apq::v1::Sweep& sweep) {
  std::cout << sweep.sweep_id() << ": " << sweep.scenarios_ended() << "/" << sweep.scenarios_size()
            << " scenarios ended\n";
  for (const apq::v1::SweepScenarioResult& result : sweep.scenarios()) {
    const apq::v1::Job& job = result.job();
    std::cout << job.id() << "  " << StateName(job.state()) << "  " << result.scenario().device()
              << "  " << BudgetsJson(result.scenario().budgets()).dump();
    if (!result.scenario().label().empty()) std::cout << "  " << result.scenario().label();
    if (job.has_best()) {
      std::cout << "  " << DescribeMetrics(job.best().metrics()) << "  front "
                << result.pareto_front_size();
    }
    if (!job.error().empty()) std::cout << "  " << job.error();
    std::cout << "\n";
  }
}

// Polls the sweep until every scenario ended (a progress line on a terminal), then prints it.
// Exit 1 unless every scenario succeeded with a result.
int FollowSweep(Connection& connection, const std::string& sweep_id, bool wait, bool as_json) {
  ProgressLine progress_line(as_json || !wait);
  apq::v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  apq::v1::Sweep sweep;
  // While waiting, progress only: the fronts are read once, by the last call.
  request.set_without_fronts(wait);
  while (true) {
    grpc::Status status =
        CallUnary(connection.search(), &SearchService::Stub::GetSweep, request, &sweep);
    if (!status.ok()) return ReportRpcError(status);
    if (!wait || sweep.scenarios_ended() == sweep.scenarios_size()) {
      if (request.without_fronts()) {
        request.set_without_fronts(false);
        status = CallUnary(connection.search(), &SearchService::Stub::GetSweep, request, &sweep);
        if (!status.ok()) return ReportRpcError(status);
      }
      break;
    }
    progress_line.Show(absl::StrFormat("%s: %d/%d scenarios ended, steps %d/%d", sweep_id,
                                       sweep.scenarios_ended(), sweep.scenarios_size(),
                                       sweep.steps_done(), sweep.steps_total()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  progress_line.End();
  if (as_json) {
    PrintJson(SweepJson(sweep));
  } else {
    PrintSweepText(sweep);
  }
  if (sweep.scenarios_ended() < sweep.scenarios_size()) return kExitOk;
  for (const apq::v1::SweepScenarioResult& result : sweep.scenarios()) {
    if (result.job().state() != apq::v1::JOB_STATE_SUCCEEDED || !result.job().has_best()) {
      return kExitFailed;
    }
  }
  return kExitOk;
}

int Sweep(Connection& connection, const std::vector<std::string>& argv) {
  std::vector<std::string> value_flags = kCommonSearchFlags;
  value_flags.push_back("scenarios");
  const Args args = Args::Parse(argv, value_flags, {"wait", "json", "keep-all-draws"}, 0);
  apq::v1::SubmitSweepRequest request;
  *request.mutable_common() = CommonSearchRequest(args);
  for (apq::v1::SweepScenario& scenario :
       ParseScenarios(ReadFileOrStdin(Require(args, "scenarios")))) {
    *request.add_scenarios() = std::move(scenario);
  }
  apq::v1::Sweep sweep;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::SubmitSweep, request, &sweep);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("wait")) return FollowSweep(connection, sweep.sweep_id(), true, args.Has("json"));
  if (args.Has("json")) {
    PrintJson(SweepJson(sweep));
  } else {
    std::cout << sweep.sweep_id() << "\n";
  }
  return kExitOk;
}

int SweepStatus(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"wait", "json"}, 1);
  return FollowSweep(connection, RequirePositional(args, "a sweep id"), args.Has("wait"),
                     args.Has("json"));
}

int Watch(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 1);
  return FollowJob(connection, RequirePositional(args, "a job id"), args.Has("json"));
}

int Jobs(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"state", "space", "device", "label", "limit"}, {"json"}, 0);
  apq::v1::ListJobsRequest request;
  if (args.Has("space")) request.set_space(args.Get("space"));
  if (args.Has("device")) request.set_device(args.Get("device"));
  if (args.Has("label")) request.set_label(args.Get("label"));
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
  apq::v1::ListJobsResponse response;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::ListJobs, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  PrintListing(response.jobs(), args.Has("json"), JobJson, [](const apq::v1::Job& job) {
    std::cout << job.id() << "  " << StateName(job.state()) << "  " << job.request().space() << "@"
              << job.request().device() << "  " << job.engine() << " step "
              << job.generations_done() << "/" << job.total_generations();
    if (job.has_best()) std::cout << "  " << DescribeMetrics(job.best().metrics());
    std::cout << "\n";
  });
  return kExitOk;
}

// The job's candidates as an SVG: accuracy against a cost (--cost, else the job's Pareto
// cost), the front, the budget in that cost and the best.
int Plot(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"out", "cost"}, {}, 1);
  const std::string job_id = RequirePositional(args, "a job id");
  const std::string out = Require(args, "out");
  apq::v1::GetJobRequest get;
  get.set_job_id(job_id);
  apq::v1::Job job;
  grpc::Status status = CallUnary(connection.search(), &SearchService::Stub::GetJob, get, &job);
  if (!status.ok()) return ReportRpcError(status);
  apq::v1::CostMetric metric = job.request().pareto_cost();
  if (args.Has("cost")) {
    metric = ParseChoice<apq::v1::CostMetric>("cost", args.Get("cost"),
                                              {{"latency", apq::v1::COST_METRIC_LATENCY},
                                               {"energy", apq::v1::COST_METRIC_ENERGY},
                                               {"size", apq::v1::COST_METRIC_SIZE},
                                               {"bitops", apq::v1::COST_METRIC_BITOPS}});
  }
  // The cost's metric, axis label and budget.
  const apq::v1::Budgets& budgets = job.request().budgets();
  struct Cost {
    const char* label;
    bool (apq::v1::Metrics::*has)() const;
    double (apq::v1::Metrics::*value)() const;
    bool has_budget;
    double budget;
  };
  const Cost cost = [&]() -> Cost {
    switch (metric) {
      case apq::v1::COST_METRIC_ENERGY:
        return {"energy (mJ)", &apq::v1::Metrics::has_energy_mj, &apq::v1::Metrics::energy_mj,
                budgets.has_max_energy_mj(), budgets.max_energy_mj()};
      case apq::v1::COST_METRIC_SIZE:
        return {"model size (MB)", &apq::v1::Metrics::has_size_mb, &apq::v1::Metrics::size_mb,
                budgets.has_max_size_mb(), budgets.max_size_mb()};
      case apq::v1::COST_METRIC_BITOPS:
        return {"BitOps", &apq::v1::Metrics::has_bitops, &apq::v1::Metrics::bitops,
                budgets.has_max_bitops(), budgets.max_bitops()};
      default:
        return {"latency (ms)", &apq::v1::Metrics::has_latency_ms, &apq::v1::Metrics::latency_ms,
                budgets.has_max_latency_ms(), budgets.max_latency_ms()};
    }
  }();
  PlotData plot;
  plot.title =
      absl::StrCat(job.id(), ": ", job.request().space(), " on ", job.request().device(),
                   job.request().label().empty() ? "" : " (" + job.request().label() + ")");
  plot.cost_label = cost.label;
  if (cost.has_budget) plot.budget = cost.budget;
  apq::v1::ListCandidatesRequest request;
  request.set_job_id(job_id);
  request.set_feasibility(apq::v1::FEASIBILITY_FEASIBLE);
  request.set_page_size(10000);
  int64_t missing = 0;
  while (true) {
    apq::v1::ListCandidatesResponse page;
    status = CallUnary(connection.search(), &SearchService::Stub::ListCandidates, request, &page);
    if (!status.ok()) return ReportRpcError(status);
    for (const apq::v1::Candidate& candidate : page.candidates()) {
      const apq::v1::Metrics& metrics = candidate.metrics();
      if (!(metrics.*cost.has)() || !metrics.has_accuracy()) {
        ++missing;
        continue;
      }
      plot.points.push_back({(metrics.*cost.value)(), metrics.accuracy(),
                             candidate.on_pareto_front(),
                             job.has_best() && candidate.id() == job.best().id()});
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (plot.points.empty() && missing > 0) {
    std::cerr << "apq plot: the job's candidates have no " << cost.label << "\n";
    return kExitUsage;
  }
  if (!WriteOutputFile(out, RenderPlotSvg(plot))) return kExitFailed;
  std::cout << out << ": " << plot.points.size() << " candidates";
  if (missing > 0) std::cout << " (" << missing << " without " << cost.label << " left out)";
  std::cout << "\n";
  return kExitOk;
}

int Candidates(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"sort", "limit", "page-token"},
                                {"feasible", "infeasible", "front", "json"}, 1);
  apq::v1::ListCandidatesRequest request;
  request.set_job_id(RequirePositional(args, "a job id"));
  if (args.Has("sort")) {
    // "id", the order of evaluation, is the server's default and not in the usage text.
    const std::optional<apq::v1::SortMetric> sort = FindChoice<apq::v1::SortMetric>(
        args.Get("sort"), {{"id", apq::v1::SORT_METRIC_UNSPECIFIED},
                           {"accuracy", apq::v1::SORT_METRIC_ACCURACY},
                           {"latency", apq::v1::SORT_METRIC_LATENCY},
                           {"energy", apq::v1::SORT_METRIC_ENERGY},
                           {"size", apq::v1::SORT_METRIC_SIZE},
                           {"bitops", apq::v1::SORT_METRIC_BITOPS}});
    if (!sort) throw UsageError{absl::StrCat("--sort: unknown metric '", args.Get("sort"), "'")};
    request.set_sort_by(*sort);
  }
  if (args.Has("feasible") && args.Has("infeasible")) {
    throw UsageError{"--feasible and --infeasible exclude each other"};
  }
  if (args.Has("feasible")) request.set_feasibility(apq::v1::FEASIBILITY_FEASIBLE);
  if (args.Has("infeasible")) request.set_feasibility(apq::v1::FEASIBILITY_INFEASIBLE);
  if (args.Has("limit")) request.set_page_size(ParseInt32(args, "limit"));
  request.set_page_token(args.Get("page-token"));
  request.set_pareto_front_only(args.Has("front"));
  apq::v1::ListCandidatesResponse response;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::ListCandidates, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("json")) {
    json candidates = json::array();
    for (const apq::v1::Candidate& candidate : response.candidates()) {
      candidates.push_back(CandidateJson(candidate));
    }
    PrintJson({{"total", response.total()},
               {"next_page_token", response.next_page_token()},
               {"candidates", candidates}});
    return kExitOk;
  }
  for (const apq::v1::Candidate& candidate : response.candidates()) {
    std::cout << candidate.id() << "  gen " << candidate.generation() << "  x"
              << candidate.times_seen() << "  "
              << (candidate.feasible() ? "feasible  " : "infeasible  ")
              << DescribeMetrics(candidate.metrics()) << "  " << candidate.config_json() << "\n";
  }
  std::cout << response.total() << " candidates in all\n";
  return kExitOk;
}

int Config(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"output", "torchscript"}, {"json", "int8"}, 1);
  apq::v1::GetDeployableConfigRequest request;
  request.set_job_id(RequirePositional(args, "a job id"));
  request.set_include_torchscript(args.Has("torchscript"));
  if (args.Has("int8") && !args.Has("torchscript")) {
    std::cerr << "apq: --int8 asks for the module written by --torchscript FILE\n";
    return kExitUsage;
  }
  request.set_int8(args.Has("int8"));
  apq::v1::DeployableConfig config;
  // Extraction and the exported module's evaluation take seconds.
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::GetDeployableConfig, request, &config,
                args.Has("torchscript") ? kMeasureDeadline : kDefaultDeadline);
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
    if (!WriteOutputFile(args.Get("torchscript"), config.torchscript())) return kExitFailed;
    out["torchscript"] = args.Get("torchscript");
    // Unset for a module the job trained (engine qbitopt).
    if (config.has_torchscript_accuracy()) {
      out["torchscript_accuracy"] = config.torchscript_accuracy();
    }
    out["trained_by_job"] = !config.has_torchscript_accuracy();
    out["supernet_version"] = config.supernet_version();
    out["torchscript_precision"] = config.torchscript_precision();
    if (!config.quantized_engine().empty()) out["quantized_engine"] = config.quantized_engine();
  }
  if (args.Has("output") &&
      !WriteOutputFile(args.Get("output"), ParseConfig(config.config_json()).dump(2) + "\n")) {
    return kExitFailed;
  }
  if (args.Has("json")) {
    PrintJson(out);
    return kExitOk;
  }
  std::cout << config.config_json() << "\n" << DescribeMetrics(config.metrics()) << "\n";
  if (args.Has("torchscript") && config.has_torchscript_accuracy()) {
    std::cout << absl::StrFormat("TorchScript %s (%zu bytes, %s, from %s): test accuracy %.4f\n",
                                 args.Get("torchscript"), config.torchscript().size(),
                                 config.torchscript_precision(), config.supernet_version(),
                                 config.torchscript_accuracy());
    if (!config.quantized_engine().empty()) {
      std::cout << absl::StrFormat(
          "int8 module: set the quantized engine before loading it "
          "(torch.backends.quantized.engine = \"%s\")\n",
          config.quantized_engine());
    }
  } else if (args.Has("torchscript")) {
    std::cout << absl::StrFormat("TorchScript %s (%zu bytes): the module the job trained from %s\n",
                                 args.Get("torchscript"), config.torchscript().size(),
                                 config.supernet_version());
  }
  return kExitOk;
}

json ArtifactJson(const apq::v1::Artifact& artifact) {
  json out = {{"kind", artifact.kind()},
              {"key", artifact.key()},
              {"space", artifact.space()},
              {"created_unix_s", artifact.created_unix_s()},
              {"content_type", artifact.content_type()},
              {"size_bytes", artifact.size_bytes()}};
  if (!artifact.job_id().empty()) out["job_id"] = artifact.job_id();
  const json provenance = json::parse(artifact.provenance(), nullptr, /*allow_exceptions=*/false);
  out["provenance"] = provenance.is_discarded() ? json(artifact.provenance()) : provenance;
  return out;
}

int Artifacts(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {"json"}, 1);
  apq::v1::ListJobArtifactsRequest request;
  request.set_job_id(RequirePositional(args, "a job id"));
  apq::v1::ListJobArtifactsResponse response;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::ListJobArtifacts, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("json")) {
    json out = json::array();
    for (const apq::v1::Artifact& artifact : response.artifacts()) {
      out.push_back(ArtifactJson(artifact));
    }
    PrintJson(out);
    return kExitOk;
  }
  if (response.artifacts().empty()) std::cout << request.job_id() << ": no artifacts\n";
  for (const apq::v1::Artifact& artifact : response.artifacts()) {
    std::cout << absl::StrFormat("%s  %s  %s, %d bytes\n", artifact.kind(), artifact.key(),
                                 artifact.content_type(), artifact.size_bytes());
  }
  return kExitOk;
}

int Artifact(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {"output"}, {"json"}, 2);
  if (args.positional().size() != 2) throw UsageError{"artifact: give KIND and KEY"};
  apq::v1::GetArtifactRequest request;
  request.set_kind(args.positional()[0]);
  request.set_key(args.positional()[1]);
  apq::v1::Artifact artifact;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::GetArtifact, request, &artifact);
  if (!status.ok()) return ReportRpcError(status);
  if (args.Has("output") && !WriteOutputFile(args.Get("output"), artifact.content())) {
    return kExitFailed;
  }
  const bool text =
      artifact.content_type() == "application/json" || artifact.content_type() == "text/plain";
  if (args.Has("json")) {
    json out = ArtifactJson(artifact);
    if (args.Has("output")) {
      out["output"] = args.Get("output");
    } else if (artifact.content_type() == "application/json") {
      out["content"] = json::parse(artifact.content(), nullptr, /*allow_exceptions=*/false);
    }
    PrintJson(out);
  } else if (!args.Has("output") && text) {
    std::cout << artifact.content() << "\n";
  } else if (!args.Has("output")) {
    std::cout << absl::StrFormat("%s %s: %d bytes of %s (write them with --output FILE)\n",
                                 artifact.kind(), artifact.key(), artifact.size_bytes(),
                                 artifact.content_type());
  }
  return kExitOk;
}

int Cancel(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {}, 1);
  apq::v1::CancelJobRequest request;
  request.set_job_id(RequirePositional(args, "a job id"));
  apq::v1::Job job;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::CancelJob, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  PrintCancellationRequested(job.id(), job.state());
  return kExitOk;
}

int Delete(Connection& connection, const std::vector<std::string>& argv) {
  const Args args = Args::Parse(argv, {}, {}, 1);
  apq::v1::DeleteJobRequest request;
  request.set_job_id(RequirePositional(args, "a job id"));
  apq::v1::DeleteJobResponse response;
  const grpc::Status status =
      CallUnary(connection.search(), &SearchService::Stub::DeleteJob, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  std::cout << request.job_id() << ": deleted\n";
  return kExitOk;
}

constexpr Command kSearchCommands[] = {
    {"evaluate",
     R"(  evaluate --space S [--device D] [--table-version N] (--config FILE | --configs FILE)
      [--measure fp32|quantized [--split validation|test] [--test-images N]] [--json]
      Score configurations in the space's reference format: --config holds one, --configs a
      JSON list of them (- reads stdin). Without --device, accuracy and (for quantized
      spaces) model size and BitOps only. --measure also measures each one's accuracy on the
      space's trained supernet (at most 20; seconds each), on the first N images of the
      split (validation by default; test is for final reports).
)",
     Evaluate},
    {"search",
     R"(  search --space S --device D [budgets] [engine] [--seed N] [--label L] [--keep-all-draws]
      [--wait] [--json]
      Submit a search. Budgets: --max-latency-ms X --max-energy-mj X --max-size-mb X
      --max-bitops X. Engine: evolution by default, with --population N --generations N
      --parent-ratio X --mutation-ratio X --mutate-prob X --resolution-mutate-prob X; or
      --engine NAME [--options NAME=VALUE,...] (see apq engines). Objective:
      --objective accuracy|pareto, --pareto-cost latency|energy|size|bitops (the cost of the
      job's Pareto front). --uniform-bits B fixes every bitwidth at B (the uniform-precision
      baseline of a mixed-precision space). --fixed-architecture FILE holds the architecture
      of the config in FILE (- reads stdin; its bits are ignored) and searches bits alone;
      with --uniform-bits it is that one network at one precision. --uncertainty-penalty K
      scores candidates by the ensemble predictor's mean minus K times its members' spread
      (the space's default predictor must be an ensemble). --verify-top-k K measures the K best candidates
      by predicted accuracy on the space's supernet (validation split) once the search ends,
      and the job's best becomes the one measured best; --verify-images N measures on the
      first N validation images (default all); --verify-dataset NAME also adds each
      measurement to that dataset (created if absent) for the next predictor;
      --verify-workers N measures the finalists with N worker processes the server starts
      (locally or on Slurm; see apq measure) instead of in the job. The job stores
      each network it met once with its count; draws rejected by the budgets are only
      counted unless --keep-all-draws keeps them too (for audits). --wait follows it to the
      end (progress bar on a terminal); --json prints one JSON object.
)",
     Search},
    {"sweep",
     R"(  sweep --space S --scenarios FILE [engine and other search flags] [--wait] [--json]
      Deployment scenarios: one search per scenario of FILE (- reads stdin), a JSON list of
      {"device": D, "max_latency_ms": X, "max_energy_mj": X, "max_size_mb": X,
      "max_bitops": X, "label": L} (device required, any budgets), each with the search
      flags given here (as for search, without --device, budgets and --label). The
      scenarios share their predictions; each is a job (watch, candidates, config work on
      it). Prints the sweep id; --wait follows the whole sweep and prints every scenario's
      best and its Pareto front size (--json: the fronts too).
)",
     Sweep},
    {"sweep-status", R"(  sweep-status SWEEP [--wait] [--json]
      A sweep's scenarios with their jobs and, once ended, their results.
)",
     SweepStatus},
    {"engines", R"(  engines [--json]
      The search engines, with their options, defaults and ranges.
)",
     Engines},
    {"watch", R"(  watch JOB [--json]
      Follow a job until it ends.
)",
     Watch},
    {"jobs", R"(  jobs [--state queued|running|succeeded|failed|cancelled] [--space S] [--device D]
      [--label L] [--limit N] [--json]
      The newest jobs first, only those in the state, space, device and label given
      (--label "" lists the jobs submitted without one).
)",
     Jobs},
    {"candidates",
     R"(  candidates JOB [--sort accuracy|latency|energy|size|bitops] [--feasible|--infeasible]
      [--front] [--limit N] [--json]
      One per distinct network, with the generation that met it first and how many times
      (xN). --front: only the job's Pareto front of accuracy against its Pareto cost.
)",
     Candidates},
    {"plot", R"(  plot JOB --out FILE [--cost latency|energy|size|bitops]
      The job's feasible candidates as an SVG: predicted accuracy against the cost (default:
      the job's Pareto cost), its Pareto front, the budget in that cost and its best.
)",
     Plot},
    {"config", R"(  config JOB [--output FILE] [--torchscript FILE [--int8]] [--json]
      The best configuration of a finished job, in the reference arch format (of a verified
      job: the finalist measured best, with its measured accuracy). --torchscript
      also writes the subnet extracted from the space's supernet as a TorchScript file and
      prints its measured test accuracy: where the job's device runs int8 (local-cpu), a true
      int8 module of quantized ops and the LibTorch engine it needs; elsewhere the network
      fake-quantized at its bit policy; of a job that trained its network (engine qbitopt),
      the module it trained. --int8 fails unless the device has an integer path.
)",
     Config},
    {"artifacts", R"(  artifacts JOB [--json]
      What the job's engine kept besides its candidates: engine iqp's solver report (its
      objective, bound and gap), engine qbitopt's trained module.
)",
     Artifacts},
    {"artifact", R"(  artifact KIND KEY [--output FILE] [--json]
      One artifact (KIND and KEY from apq artifacts) with its provenance; --output writes its
      content to FILE; without it a JSON or text content is printed.
)",
     Artifact},
    {"cancel", R"(  cancel JOB
)",
     Cancel},
    {"delete", R"(  delete JOB
      Delete an ended job and its candidates.
)",
     Delete},
};

}  // namespace

grpc::Status WaitForJobEnd(Connection& connection, const std::string& job_id, bool quiet,
                           apq::v1::Job* job) {
  ProgressLine progress_line(quiet);
  // No deadline: the stream lasts as long as the search.
  grpc::ClientContext context;
  apq::v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReader<apq::v1::JobProgress>> reader =
      connection.search().WatchJob(&context, request);
  apq::v1::JobProgress progress;
  while (reader->Read(&progress)) progress_line.Show(DescribeProgress(progress));
  progress_line.End();
  grpc::Status status = reader->Finish();
  if (!status.ok()) return status;
  apq::v1::GetJobRequest get;
  get.set_job_id(job_id);
  return CallUnary(connection.search(), &SearchService::Stub::GetJob, get, job);
}

absl::Span<const Command> SearchCommands() { return kSearchCommands; }

}  // namespace apq::client
