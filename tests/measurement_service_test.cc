// Measurement runs through the service, end to end: apqd starts measure_worker processes for
// `apq measure` and for verification by workers (Verification.workers), over its SQLite store.
// The records equal the server's own measurements (apq evaluate --measure, in-process
// verification); a cancelled run's workers stop; workers that all die are started again; bad
// requests are refused naming the field and store nothing.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "oface/measurement_csv.h"
#include "tests/process.h"

namespace apq::testing {
namespace {

using nlohmann::json;

// Small measurements (a second or two each here): the first 500 validation images.
constexpr char kImages[] = "500";

json ParseJson(const ProcessResult& result) {
  json parsed = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result.out << result.err;
  return parsed;
}

// The pids of measure_worker processes serving `run_id` (from /proc).
std::vector<pid_t> WorkerPids(const std::string& run_id) {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (const dirent* entry = readdir(proc)) {
    const pid_t pid = std::atoi(entry->d_name);
    if (pid <= 0) continue;
    std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (absl::StrContains(cmdline, "measure_worker") &&
        absl::StrContains(cmdline, absl::StrCat("--run=", run_id, " "))) {
      pids.push_back(pid);
    }
  }
  closedir(proc);
  return pids;
}

class MeasurementServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = TempPath("apq.db");
    Start({});
  }

  void Start(const std::vector<std::string>& extra) {
    std::vector<std::string> flags = {"--measure_worker_binary=server/measure_worker",
                                      "--measure_log_dir=" + TempPath("runs"),
                                      "--measure_lease_seconds=3", "--measure_workers=3"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(database_, flags);
  }

  ProcessResult Client(const std::vector<std::string>& args) {
    return RunClient(server_->address(), args);
  }

  json Run(const std::string& run_id) {
    const ProcessResult shown = Client({"measurements", run_id, "--json"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return ParseJson(shown);
  }

  // The dataset's records by config, read back through measure_subnets' CSV export.
  std::map<std::string, oface::MeasurementRecord> Records(const std::string& dataset) {
    const std::string csv = TempPath(dataset + ".csv");
    const ProcessResult exported =
        RunProcess({"server/measure_subnets", "--db=" + database_, "--dataset=" + dataset,
                    "--count=0", "--export_csv=" + csv});
    EXPECT_EQ(exported.exit_code, 0) << exported.err;
    std::map<std::string, oface::MeasurementRecord> records;
    for (const absl::string_view line : absl::StrSplit(ReadFile(csv), '\n', absl::SkipEmpty())) {
      absl::StatusOr<oface::MeasurementRecord> record = oface::MeasurementFromCsvLine(line);
      if (!record.ok()) continue;  // The header.
      EXPECT_EQ(records.count(record->config_json), 0u) << "measured twice: " << line;
      records[record->config_json] = *record;
    }
    return records;
  }

  std::string database_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(MeasurementServiceTest, ARunsRecordsEqualTheServersOwnMeasurementsAndAreNotMeasuredTwice) {
  ProcessResult started =
      Client({"measure", "--dataset", "sampled", "--space", "fmnist_mbv2", "--count", "3",
              "--quantized", "--images", kImages, "--workers", "2", "--wait", "--json"});
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  const json run = ParseJson(started);
  EXPECT_EQ(run["state"], "SUCCEEDED");
  EXPECT_EQ(run["tasks_total"], 3);
  EXPECT_EQ(run["tasks_done"], 3);
  EXPECT_EQ(run["tasks_failed"], 0);
  EXPECT_EQ(run["method"], "quant-from-supernet");
  EXPECT_EQ(run["split"], "validation");
  EXPECT_EQ(run["images"], 500);
  EXPECT_EQ(run["calibration_images"], 2000);
  EXPECT_EQ(run["launcher"], "local 2");

  const std::map<std::string, oface::MeasurementRecord> records = Records("sampled");
  ASSERT_EQ(records.size(), 3u);
  json configs = json::array();
  for (const auto& [config, record] : records) {
    configs.push_back(json::parse(config));
    EXPECT_EQ(record.split, "validation");
    EXPECT_EQ(record.seed, 1u);
  }
  const std::string configs_file = TempPath("configs.json");
  WriteFile(configs_file, configs.dump());
  // The server's own measurement of each (seed-1 calibration subset, the same 500 images).
  const ProcessResult evaluated =
      Client({"evaluate", "--space", "fmnist_mbv2", "--configs", configs_file, "--measure",
              "quantized", "--test-images", kImages, "--json"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  const json metrics = ParseJson(evaluated);
  ASSERT_EQ(metrics["results"].size(), 3u) << metrics;
  size_t i = 0;
  for (const auto& [config, record] : records) {
    EXPECT_EQ(metrics["results"][i]["measured_accuracy"].get<double>(), record.accuracy) << config;
    ++i;
  }

  // The same request again: every config is there already.
  ProcessResult again = Client({"measure", "--dataset", "sampled", "--space", "fmnist_mbv2",
                                "--count", "3", "--quantized", "--images", kImages});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("ALREADY_EXISTS"), std::string::npos) << again.err;
  // One more sampled config: only it is measured.
  ProcessResult more =
      Client({"measure", "--dataset", "sampled", "--space", "fmnist_mbv2", "--count", "4",
              "--quantized", "--images", kImages, "--wait", "--json"});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  EXPECT_EQ(ParseJson(more)["tasks_total"], 1);
  EXPECT_EQ(Records("sampled").size(), 4u);

  const ProcessResult listed = Client({"measurements", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const json runs = ParseJson(listed);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["run_id"], ParseJson(more)["run_id"]) << "newest first";
  const ProcessResult text = Client({"measurements", run["run_id"]});
  EXPECT_NE(text.out.find("SUCCEEDED, 3 of 3 measured, 0 failed"), std::string::npos) << text.out;
}

TEST_F(MeasurementServiceTest, VerificationByWorkersMeasuresTheFinalistsAsTheJobItselfDoes) {
  const std::vector<std::string> search = {
      "search", "--space",         "fmnist_mbv2", "--device",      "local-cpu", "--seed",
      "2",      "--population",    "12",          "--generations", "2",         "--verify-top-k",
      "3",      "--verify-images", kImages,       "--wait",        "--json"};
  const ProcessResult in_process = Client(search);
  ASSERT_EQ(in_process.exit_code, 0) << in_process.err;
  std::vector<std::string> by_workers = search;
  by_workers.insert(by_workers.end(),
                    {"--verify-workers", "2", "--verify-dataset", "finalists_by_workers"});
  const ProcessResult workers = Client(by_workers);
  ASSERT_EQ(workers.exit_code, 0) << workers.out << workers.err;
  const json reference = ParseJson(in_process);
  const json job = ParseJson(workers);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["verification"], json({{"top_k", 3}, {"finalists", 3}, {"measured", 3}}));
  EXPECT_EQ(job["best_config"], reference["best_config"]);
  EXPECT_EQ(job["measured_accuracy"], reference["measured_accuracy"]);

  // Every finalist's measurement equals the in-process one.
  const auto measured = [&](const json& of) {
    const ProcessResult listed =
        Client({"candidates", of["job_id"], "--feasible", "--sort", "accuracy", "--json"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::map<std::string, double> accuracies;
    const json page = ParseJson(listed);
    for (const json& candidate : page["candidates"]) {
      if (candidate.contains("measured_accuracy")) {
        accuracies[candidate["config"].dump()] = candidate["measured_accuracy"];
      }
    }
    return accuracies;
  };
  const std::map<std::string, double> expected = measured(reference);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(measured(job), expected);

  // The run and its dataset: the job's own, and the request's.
  const std::string job_id = job["job_id"];
  EXPECT_EQ(Records(job_id + "-finalists").size(), 3u);
  EXPECT_EQ(Records("finalists_by_workers").size(), 3u);
  const json runs = ParseJson(Client({"measurements", "--json"}));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["dataset"], job_id + "-finalists");
  EXPECT_EQ(runs[0]["state"], "SUCCEEDED");
  EXPECT_EQ(runs[0]["images"], 500);

  // More workers than the server allows, or a server that starts none: refused at submission.
  std::vector<std::string> too_many = search;
  too_many.insert(too_many.end(), {"--verify-workers", "4"});
  const ProcessResult refused = Client(too_many);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("INVALID_ARGUMENT: verification.workers: at most 3"),
            std::string::npos)
      << refused.err;
  server_->Stop(SIGTERM);
  Start({"--measure_workers=0"});
  std::vector<std::string> none = search;
  none.insert(none.end(), {"--verify-workers", "1"});
  const ProcessResult no_workers = Client(none);
  EXPECT_EQ(no_workers.exit_code, 1);
  EXPECT_NE(no_workers.err.find("FAILED_PRECONDITION: verification.workers"), std::string::npos)
      << no_workers.err;
}

TEST_F(MeasurementServiceTest, ACancelledRunStopsItsWorkersAndKeepsItsRecords) {
  // Whole validation split: seconds per config, so the run is mid-way when cancelled.
  ProcessResult started = Client({"measure", "--dataset", "long", "--space", "fmnist_mbv2",
                                  "--count", "20", "--quantized", "--workers", "2", "--json"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string run_id = ParseJson(started)["run_id"];
  for (int i = 0; i < 600 && Run(run_id)["tasks_done"] == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(WorkerPids(run_id).size(), 2u);
  const ProcessResult cancelled = Client({"cancel-measurement", run_id});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_NE(cancelled.out.find("CANCELLED"), std::string::npos) << cancelled.out;
  for (int i = 0; i < 100 && !WorkerPids(run_id).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(WorkerPids(run_id).empty()) << "the workers were told to stop";
  const json run = Run(run_id);
  EXPECT_EQ(run["state"], "CANCELLED");
  const int64_t done = run["tasks_done"];
  EXPECT_GE(done, 1);
  EXPECT_LT(done, 20);
  EXPECT_EQ(static_cast<int64_t>(Records("long").size()), done) << "records stored stay";
  const ProcessResult again = Client({"cancel-measurement", run_id});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("FAILED_PRECONDITION"), std::string::npos) << again.err;
}

TEST_F(MeasurementServiceTest, WorkersThatAllDieAreStartedAgainAndTheRunCompletes) {
  ProcessResult started =
      Client({"measure", "--dataset", "killed", "--space", "fmnist_mbv2", "--count", "4",
              "--quantized", "--images", kImages, "--workers", "2", "--json"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string run_id = ParseJson(started)["run_id"];
  std::vector<pid_t> pids;
  for (int i = 0; i < 100 && pids.size() < 2; ++i) {
    pids = WorkerPids(run_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(pids.size(), 2u);
  for (const pid_t pid : pids) kill(pid, SIGKILL);

  const ProcessResult waited = Client({"measurements", run_id, "--wait", "--json"});
  ASSERT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  const json run = ParseJson(waited);
  EXPECT_EQ(run["state"], "SUCCEEDED");
  EXPECT_EQ(run["tasks_done"], 4);
  EXPECT_NE(run["launcher"].get<std::string>().find("restart 1 of 2"), std::string::npos) << run;
  EXPECT_EQ(Records("killed").size(), 4u) << "each config measured once";
}

TEST_F(MeasurementServiceTest, BadRequestsAreRefusedNamingTheFieldAndStoreNothing) {
  const std::string bad_config = TempPath("bad_config.txt");
  WriteFile(bad_config, "{\"not\": \"a config\"}\n");
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string error;
  };
  const std::vector<std::string> base = {"measure", "--space", "fmnist_mbv2", "--quantized"};
  const auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  const std::vector<Case> cases = {
      {with({"--dataset", "Bad Name", "--count", "2"}), 1, "INVALID_ARGUMENT: dataset"},
      {{"measure", "--dataset", "d", "--space", "nope", "--count", "2"}, 1, "NOT_FOUND"},
      {with({"--dataset", "d", "--count", "0"}), 1, "INVALID_ARGUMENT: count"},
      {with({"--dataset", "d", "--count", "2", "--workers", "4"}), 1,
       "INVALID_ARGUMENT: workers: must be in [1, 3]"},
      {with({"--dataset", "d", "--count", "2", "--split", "train"}), 1, "INVALID_ARGUMENT: split"},
      {with({"--dataset", "d", "--count", "2", "--bits", "wide"}), 1,
       "INVALID_ARGUMENT: bit_sampling"},
      {with({"--dataset", "d", "--count", "2", "--images", "10001"}), 1,
       "INVALID_ARGUMENT: images"},
      {with({"--dataset", "d", "--count", "2", "--max-attempts", "0"}), 1,
       "INVALID_ARGUMENT: max_attempts"},
      {with({"--dataset", "d", "--count", "2", "--calibration-images", "0"}), 1,
       "INVALID_ARGUMENT: calibration_images"},
      {with({"--dataset", "d", "--configs", bad_config}), 1, "INVALID_ARGUMENT: configs[0]"},
      {with({"--dataset", "d"}), 2, "--count N"},
  };
  for (const Case& bad : cases) {
    const ProcessResult result = Client(bad.args);
    EXPECT_EQ(result.exit_code, bad.exit_code) << absl::StrJoin(bad.args, " ") << result.err;
    EXPECT_NE(result.err.find(bad.error), std::string::npos)
        << absl::StrJoin(bad.args, " ") << ": " << result.err;
  }
  // The same network twice.
  const ProcessResult sampled =
      Client({"measure", "--dataset", "once", "--space", "fmnist_mbv2", "--count", "1",
              "--quantized", "--images", kImages, "--wait", "--json"});
  ASSERT_EQ(sampled.exit_code, 0) << sampled.err;
  const std::string config = Records("once").begin()->first;
  const std::string twice = TempPath("twice.txt");
  WriteFile(twice, config + "\n" + config + "\n");
  const ProcessResult repeated = Client(with({"--dataset", "d", "--configs", twice}));
  EXPECT_NE(repeated.err.find("INVALID_ARGUMENT: configs[1]: the same network"), std::string::npos)
      << repeated.err;
  // A dataset measured on validation takes no test records.
  const ProcessResult other_split =
      Client(with({"--dataset", "once", "--count", "2", "--split", "test", "--images", kImages}));
  EXPECT_NE(other_split.err.find("FAILED_PRECONDITION: split: dataset once holds records "
                                 "measured on split \"validation\""),
            std::string::npos)
      << other_split.err;

  // Nothing was stored by the refused requests: one run, one dataset.
  EXPECT_EQ(ParseJson(Client({"measurements", "--json"})).size(), 1u);
  const json datasets = ParseJson(Client({"datasets", "--json"}));
  std::set<std::string> names;
  for (const json& dataset : datasets) names.insert(dataset["name"]);
  EXPECT_EQ(names.count("d"), 0u) << datasets;

  // A server that starts no workers refuses runs.
  server_->Stop(SIGTERM);
  Start({"--measure_workers=0"});
  const ProcessResult none = Client(with({"--dataset", "d", "--count", "2"}));
  EXPECT_NE(none.err.find("FAILED_PRECONDITION: this server starts no measurement workers"),
            std::string::npos)
      << none.err;
  // An unknown run.
  const ProcessResult unknown = Client({"measurements", "measure-99"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace apq::testing
