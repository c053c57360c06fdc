// Measurement workers end to end (issue 18): measure_subnets --launcher (and apqd, for
// apq measure) starts measure_worker processes, locally or as a Slurm array, which claim the run's
// tasks from a PostgreSQL store and write each record to the dataset. A throwaway PostgreSQL server
// and a single-node Slurm run for the test (scripts/with_test_postgres.sh, with_test_slurm.sh). The
// records must be those a single in-process measurement makes of the same configs.
#include <limits.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "oface/measurement_csv.h"
#include "tests/process.h"

namespace apq::testing {
namespace {

std::string BaseUrl() {
  const char* url = std::getenv("APQ_TEST_POSTGRES_URL");
  return url != nullptr ? url : "";
}

std::string Sql(const std::string& url, const std::string& sql) {
  ProcessResult result =
      RunProcess({"/usr/bin/psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql});
  EXPECT_EQ(result.exit_code, 0) << sql << "\n" << result.err;
  return std::string(absl::StripAsciiWhitespace(result.out));
}

// As Sql, for a query that may fail while the tool has not created the tables yet: "" then.
std::string SqlWhenReady(const std::string& url, const std::string& sql) {
  ProcessResult result =
      RunProcess({"/usr/bin/psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql});
  return result.exit_code == 0 ? std::string(absl::StripAsciiWhitespace(result.out)) : "";
}

std::string FreshSchemaUrl() {
  static std::atomic<int> next{0};
  const std::string schema = absl::StrCat("measure_", getpid(), "_", next++);
  Sql(BaseUrl(), absl::StrCat("CREATE SCHEMA ", schema));
  return absl::StrCat(BaseUrl(), "?options=-csearch_path%3D", schema);
}

// Small measurements (a few seconds each here): 300 calibration images, 500 evaluated.
std::vector<std::string> MeasureArgs(const std::string& db, int count) {
  return {"server/measure_subnets",
          "--checkpoint=data/fmnist_mbv2/supernet_quant.pt",
          "--space=fmnist_mbv2",
          "--dataset=workers",
          "--quantized",
          absl::StrCat("--count=", count),
          "--seed=7",
          "--calibration_images=300",
          "--eval_images=500",
          "--threads=1",
          "--worker_threads=1",
          "--worker_binary=server/measure_worker",
          "--db=" + db};
}

// The dataset's records by config, read back through the tool's CSV export.
std::map<std::string, oface::MeasurementRecord> Records(const std::string& db) {
  const std::string csv = TempPath("records.csv");
  const ProcessResult exported =
      RunProcess({"server/measure_subnets", "--db=" + db, "--dataset=workers", "--count=0",
                  "--export_csv=" + csv});
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

// The same configs measured in this process, on SQLite: the reference.
std::map<std::string, oface::MeasurementRecord> InProcessRecords(int count) {
  const std::string db = TempPath("reference.db");
  const ProcessResult measured = RunProcess(MeasureArgs(db, count));
  EXPECT_EQ(measured.exit_code, 0) << measured.err;
  return Records(db);
}

void ExpectSameRecords(const std::map<std::string, oface::MeasurementRecord>& actual,
                       const std::map<std::string, oface::MeasurementRecord>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [config, record] : expected) {
    const auto found = actual.find(config);
    ASSERT_NE(found, actual.end()) << "not measured: " << config;
    EXPECT_EQ(found->second.accuracy, record.accuracy) << config;
    EXPECT_EQ(found->second.method, record.method) << config;
    EXPECT_EQ(found->second.seed, record.seed) << config;
    EXPECT_EQ(found->second.split, record.split) << config;
  }
}

class MeasureWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (BaseUrl().empty()) GTEST_SKIP() << "APQ_TEST_POSTGRES_URL is not set";
    url_ = FreshSchemaUrl();
  }
  std::string url_;
};

TEST_F(MeasureWorkersTest, ASlurmArrayOfFourMeasuresEachConfigOnceAsInProcess) {
  ASSERT_NE(std::getenv("SLURM_CONF"), nullptr) << "no Slurm (scripts/with_test_slurm.sh)";
  const auto reference = InProcessRecords(4);
  ASSERT_EQ(reference.size(), 4u);

  std::vector<std::string> args = MeasureArgs(url_, 4);
  args.insert(args.end(), {"--launcher=slurm", "--workers=4", "--lease_seconds=20",
                           "--log_dir=" + TempPath("slurm-logs")});
  const ProcessResult launched = RunProcess(args);
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_NE(launched.err.find("workers slurm "), std::string::npos) << launched.err;
  ExpectSameRecords(Records(url_), reference);
  EXPECT_EQ(Sql(url_,
                "SELECT state, tasks_done, tasks_failed, encode(launcher, 'escape') "
                "FROM measurement_runs"),
            "3|4|0|slurm " +
                Sql(url_,
                    "SELECT split_part(encode(launcher, 'escape'), ' ', 2) FROM "
                    "measurement_runs") +
                " (array of 4)");
  // Every task measured once, by one of the array's workers.
  EXPECT_EQ(Sql(url_, "SELECT COUNT(*) FROM measurement_tasks WHERE status = 3 AND attempts = 1"),
            "4");
}

TEST_F(MeasureWorkersTest, AKilledWorkersTaskIsClaimedAgainAfterItsLease) {
  const auto reference = InProcessRecords(6);
  ASSERT_EQ(reference.size(), 6u);

  std::vector<std::string> args = MeasureArgs(url_, 6);
  args.insert(args.end(), {"--launcher=local", "--workers=2", "--lease_seconds=3",
                           "--log_dir=" + TempPath("local-logs")});
  ProcessResult launched;
  std::thread launcher([&] { launched = RunProcess(args); });
  // A worker in the middle of a task: "<host>:<pid>" holds it.
  std::string holder;
  for (int i = 0; i < 600 && holder.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    holder = SqlWhenReady(url_,
                          "SELECT encode(lease_holder, 'escape') FROM measurement_tasks WHERE "
                          "status = 2 ORDER BY task_index LIMIT 1");
  }
  ASSERT_FALSE(holder.empty()) << "no worker took a task";
  const std::vector<std::string> parts = absl::StrSplit(holder, ':');
  int pid = 0;
  ASSERT_TRUE(parts.size() >= 2 && absl::SimpleAtoi(parts[1], &pid)) << holder;
  const std::string task = Sql(url_, absl::StrCat("SELECT task_index FROM measurement_tasks "
                                                  "WHERE lease_holder = '",
                                                  holder, "' AND status = 2 LIMIT 1"));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  launcher.join();

  EXPECT_EQ(launched.exit_code, 0) << launched.err;
  ExpectSameRecords(Records(url_), reference);
  // The dead worker's task went to the other after its lease, and was measured once.
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT status, attempts, encode(lease_holder, 'escape') "
                                   "FROM measurement_tasks WHERE task_index = ",
                                   task)),
            "3|2|");
  EXPECT_EQ(Sql(url_, "SELECT state, tasks_done FROM measurement_runs"), "3|6");
}

// The service's path: apq measure asks apqd (over the same PostgreSQL store) for a run, and
// apqd submits its workers as a Slurm array and follows it.
TEST_F(MeasureWorkersTest, ApqdSubmitsASlurmArrayForApqMeasureWithTheInProcessRecords) {
  ASSERT_NE(std::getenv("SLURM_CONF"), nullptr) << "no Slurm (scripts/with_test_slurm.sh)";
  const auto reference = InProcessRecords(4);
  ASSERT_EQ(reference.size(), 4u);
  char worker[PATH_MAX];
  ASSERT_NE(realpath("server/measure_worker", worker), nullptr);
  ServerProcess server(
      url_, {"--measure_launcher=slurm", absl::StrCat("--measure_worker_binary=", worker),
             "--measure_log_dir=" + TempPath("apqd-runs"), "--measure_lease_seconds=20"});
  const ProcessResult measured =
      RunClient(server.address(), {"measure", "--dataset", "workers", "--space", "fmnist_mbv2",
                                   "--count", "4", "--quantized", "--seed", "7", "--images", "500",
                                   "--calibration-images", "300", "--workers", "2", "--wait"});
  ASSERT_EQ(measured.exit_code, 0) << measured.out << measured.err;
  EXPECT_NE(measured.out.find("SUCCEEDED, 4 of 4 measured, 0 failed"), std::string::npos)
      << measured.out;
  EXPECT_NE(measured.out.find("workers slurm "), std::string::npos) << measured.out;
  EXPECT_NE(measured.out.find("(array of 2)"), std::string::npos) << measured.out;
  ExpectSameRecords(Records(url_), reference);
}

TEST_F(MeasureWorkersTest, BadLaunchesAreRefusedBeforeTheStoreIsOpened) {
  struct Case {
    std::vector<std::string> extra;
    std::string mention;
  };
  for (const Case& c : std::vector<Case>{
           {{"--launcher=ssh"}, "--launcher"},
           {{"--launcher=local", "--workers=0"}, "--workers"},
           {{"--launcher=local", "--worker_binary=/nonexistent/worker"}, "--worker_binary"},
           {{"--launcher=local", "--lease_seconds=1"}, "--lease_seconds"},
       }) {
    std::vector<std::string> args = MeasureArgs(url_, 2);
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const ProcessResult refused = RunProcess(args);
    EXPECT_NE(refused.exit_code, 0) << c.mention;
    EXPECT_NE(refused.err.find(c.mention), std::string::npos) << refused.err;
  }
  // Refused before the store was opened: not even its tables exist.
  EXPECT_EQ(Sql(url_,
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                "current_schema()"),
            "0");
}

}  // namespace
}  // namespace apq::testing
