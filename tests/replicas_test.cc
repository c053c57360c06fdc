// Several apqd replicas over one PostgreSQL database (issue 18), end to end: the real apqd
// and apq binaries, a throwaway PostgreSQL server (scripts/with_test_postgres.sh sets
// APQ_TEST_POSTGRES_URL), each test in a schema of its own. Jobs are claimed by whichever
// replica has an idle worker and held by leases; a SIGKILLed replica's jobs are resumed by
// another, and every job ends once with exactly the record an uninterrupted run leaves
// (searches are deterministic), which a single apqd on SQLite provides as the reference.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/process.h"

namespace apq::testing {
namespace {

using nlohmann::json;

constexpr int kLeaseSeconds = 2;

std::string BaseUrl() {
  const char* url = std::getenv("APQ_TEST_POSTGRES_URL");
  return url != nullptr ? url : "";
}

// Runs SQL on the test's database with psql; its output, rows as "a|b|c" lines.
std::string Sql(const std::string& url, const std::string& sql) {
  ProcessResult result =
      RunProcess({"/usr/bin/psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql});
  EXPECT_EQ(result.exit_code, 0) << sql << "\n" << result.err;
  return std::string(absl::StripAsciiWhitespace(result.out));
}

// A new, empty schema of the server and the URL whose connections use it.
std::string FreshSchemaUrl() {
  static std::atomic<int> next{0};
  const std::string schema = absl::StrCat("replicas_", getpid(), "_", next++);
  Sql(BaseUrl(), absl::StrCat("CREATE SCHEMA ", schema));
  return absl::StrCat(BaseUrl(), "?options=-csearch_path%3D", schema);
}

json ParseJson(const ProcessResult& result) {
  json parsed = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "stdout is not JSON: " << result.out << result.err;
  return parsed;
}

// A search long enough (several seconds here) for a replica to die in its middle.
std::vector<std::string> SearchArgs(int seed) {
  return {"search",
          "--space",
          "ofa_mbv3",
          "--device",
          "note10",
          "--max-latency-ms",
          "25",
          "--seed",
          std::to_string(seed),
          "--engine",
          "evolution",
          "--options",
          "population_size=300,generations=1500",
          "--json"};
}

// What must not depend on where and how often a job ran.
struct JobOutcome {
  std::string state;
  std::string best_config;
  int64_t candidates_evaluated = 0;
  int64_t rejected_draws = 0;
  int64_t stored_candidates = 0;
};

JobOutcome Outcome(const std::string& address, const std::string& job_id) {
  JobOutcome outcome;
  json job;
  for (const json& listed : ParseJson(RunClient(address, {"jobs", "--json", "--limit", "1000"}))) {
    if (listed.value("job_id", "") == job_id) job = listed;
  }
  if (job.is_null()) {
    ADD_FAILURE() << "job " << job_id << " not listed by " << address;
    return outcome;
  }
  outcome.state = job.value("state", "");
  outcome.best_config = job.contains("best_config") ? job["best_config"].dump() : "";
  outcome.candidates_evaluated = job.value("candidates_evaluated", int64_t{0});
  outcome.rejected_draws = job.value("rejected_draws", int64_t{0});
  const json page = ParseJson(RunClient(address, {"candidates", job_id, "--limit", "1", "--json"}));
  outcome.stored_candidates = page.value("total", int64_t{-1});
  return outcome;
}

void ExpectSameOutcome(const JobOutcome& actual, const JobOutcome& expected,
                       const std::string& what) {
  EXPECT_EQ(actual.state, expected.state) << what;
  EXPECT_EQ(actual.best_config, expected.best_config) << what;
  EXPECT_EQ(actual.candidates_evaluated, expected.candidates_evaluated) << what;
  EXPECT_EQ(actual.rejected_draws, expected.rejected_draws) << what;
  EXPECT_EQ(actual.stored_candidates, expected.stored_candidates) << what;
}

// The reference: each seed's search run by one apqd on SQLite, uninterrupted.
std::map<int, JobOutcome> ReferenceOutcomes(const std::vector<int>& seeds) {
  ServerProcess server(TempPath("reference.db"));
  std::map<int, JobOutcome> outcomes;
  for (const int seed : seeds) {
    std::vector<std::string> args = SearchArgs(seed);
    args.push_back("--wait");
    const json job = ParseJson(RunClient(server.address(), args));
    outcomes[seed] = Outcome(server.address(), job.value("job_id", ""));
  }
  return outcomes;
}

// Waits until `done` holds (polling), at most `seconds`.
bool WaitFor(const std::function<bool()>& done, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (BaseUrl().empty()) GTEST_SKIP() << "APQ_TEST_POSTGRES_URL is not set";
    url_ = FreshSchemaUrl();
  }

  std::unique_ptr<ServerProcess> StartReplica(const std::string& name) {
    return std::make_unique<ServerProcess>(
        url_, std::vector<std::string>{"--replica_id=" + name,
                                       absl::StrCat("--lease_seconds=", kLeaseSeconds)});
  }

  // The replica holding a lease on a running job with steps stored, once there is one.
  std::string HolderOfARunningJob() {
    std::string holder;
    WaitFor(
        [&] {
          holder = Sql(url_,
                       "SELECT encode(lease_holder, 'escape') FROM jobs WHERE state = 2 AND "
                       "generations_done > 0 AND lease_holder != '' ORDER BY seq LIMIT 1");
          return !holder.empty();
        },
        60);
    return holder;
  }

  std::string url_;
};

TEST_F(ReplicasTest, ThreeReplicasOneKilledEveryJobEndsOnceAsIfUninterrupted) {
  const std::vector<int> seeds = {1, 2, 3, 4};
  const std::map<int, JobOutcome> reference = ReferenceOutcomes(seeds);

  std::map<std::string, std::unique_ptr<ServerProcess>> replicas;
  for (const std::string name : {"r0", "r1", "r2"}) replicas[name] = StartReplica(name);
  // Submitted through different replicas; any replica may run each.
  std::map<int, std::string> job_of_seed;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string& address = replicas[absl::StrCat("r", i % 3)]->address();
    const json job = ParseJson(RunClient(address, SearchArgs(seeds[i])));
    job_of_seed[seeds[i]] = job.value("job_id", "");
  }
  const std::string victim = HolderOfARunningJob();
  ASSERT_TRUE(replicas.count(victim) == 1) << "no running job held by a replica: " << victim;
  const std::string victims_job =
      Sql(url_, absl::StrCat("SELECT encode(id, 'escape') FROM jobs WHERE lease_holder = '", victim,
                             "' AND state = 2 LIMIT 1"));
  EXPECT_EQ(replicas[victim]->Stop(SIGKILL), -SIGKILL);
  replicas.erase(victim);
  const std::string survivor = replicas.begin()->second->address();

  ASSERT_TRUE(WaitFor(
      [&] { return Sql(url_, "SELECT COUNT(*) FROM jobs WHERE state IN (1, 2)") == "0"; }, 240))
      << "jobs still unfinished";
  for (const int seed : seeds) {
    ExpectSameOutcome(Outcome(survivor, job_of_seed[seed]), reference.at(seed),
                      absl::StrCat("seed ", seed, " (", job_of_seed[seed], ")"));
  }
  // The killed replica's job was resumed elsewhere; no network is stored twice for a job.
  EXPECT_FALSE(victims_job.empty());
  EXPECT_EQ(Sql(url_,
                "SELECT COUNT(*) FROM (SELECT job_id, config_json FROM candidates GROUP BY "
                "job_id, config_json HAVING COUNT(*) > 1) repeated"),
            "0");
  EXPECT_EQ(Sql(url_, "SELECT COUNT(*) FROM jobs WHERE lease_holder != ''"), "0");
}

TEST_F(ReplicasTest, CancelThroughAnotherReplicaStopsTheHolder) {
  std::map<std::string, std::unique_ptr<ServerProcess>> replicas;
  for (const std::string name : {"r0", "r1"}) replicas[name] = StartReplica(name);
  // Far longer than the test: it ends only by the cancellation.
  std::vector<std::string> args = SearchArgs(5);
  args[args.size() - 2] = "population_size=300,generations=60000";
  const std::string job_id =
      ParseJson(RunClient(replicas["r0"]->address(), args)).value("job_id", "");
  const std::string holder = HolderOfARunningJob();
  ASSERT_EQ(replicas.count(holder), 1u) << holder;
  const std::string other = holder == "r0" ? "r1" : "r0";

  const ProcessResult cancelled = RunClient(replicas[other]->address(), {"cancel", job_id});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  // The holder hears of it at its next lease renewal (every lease / 3).
  EXPECT_TRUE(
      WaitFor([&] { return Outcome(replicas[other]->address(), job_id).state == "CANCELLED"; },
              3 * kLeaseSeconds + 5));
  const std::string steps =
      Sql(url_, absl::StrCat("SELECT generations_done FROM jobs WHERE id = '", job_id, "'"));
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseSeconds));
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT generations_done FROM jobs WHERE id = '", job_id, "'")),
            steps)
      << "the holder went on after the cancellation";
  // Cancelling again, through either replica, is refused: the job ended.
  EXPECT_EQ(RunClient(replicas[holder]->address(), {"cancel", job_id}).exit_code, 1);
}

TEST_F(ReplicasTest, ConnectionsKilledDuringAJobAreRetriedNotFailed) {
  const JobOutcome reference = ReferenceOutcomes({6}).at(6);
  std::unique_ptr<ServerProcess> replica = StartReplica("r0");
  const std::string job_id =
      ParseJson(RunClient(replica->address(), SearchArgs(6))).value("job_id", "");
  ASSERT_EQ(HolderOfARunningJob(), "r0");
  // Every connection of the replica, several times while the job runs: the server ends
  // them as it would on a failover or a restart of the database.
  int terminated = 0;
  for (int i = 0; i < 3; ++i) {
    terminated +=
        std::atoi(Sql(url_,
                      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> "
                      "pg_backend_pid() AND datname = current_database() AND "
                      "backend_type = 'client backend'")
                      .c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }
  EXPECT_GT(terminated, 0) << "no connection of the replica was ended";
  ASSERT_TRUE(WaitFor(
      [&] { return Sql(url_, "SELECT COUNT(*) FROM jobs WHERE state IN (1, 2)") == "0"; }, 120));
  ExpectSameOutcome(Outcome(replica->address(), job_id), reference, job_id);
}

// A hardware team uploads through one replica; a search submitted through the other prices
// with the new table (whichever replica runs it), and both list its version.
TEST_F(ReplicasTest, ATableUploadedThroughOneReplicaServesTheOthers) {
  std::unique_ptr<ServerProcess> first = StartReplica("r0");
  std::unique_ptr<ServerProcess> second = StartReplica("r1");
  const std::string folder = TempPath("template");
  const json summary =
      ParseJson(RunClient(first->address(), {"table-template", "--space", "fmnist_mbv2", "--format",
                                             "conv-json", "--out", folder, "--json"}));
  ASSERT_EQ(summary["files"].size(), 1u);
  const std::string path = summary["files"][0].get<std::string>();
  json filled = json::parse(ReadFile(path));
  double latency = 0.001;
  for (auto& entry : filled.items()) entry.value()["latency"] = (latency += 0.001);
  WriteFile(path, filled.dump());
  for (int version = 1; version <= 2; ++version) {
    const ProcessResult uploaded =
        RunClient(version == 1 ? first->address() : second->address(),
                  {"upload-table", "--device", "team-chip", "--format", "conv-json", path});
    ASSERT_EQ(uploaded.exit_code, 0) << uploaded.err;
  }
  for (const ServerProcess* replica : {first.get(), second.get()}) {
    const json devices =
        ParseJson(RunClient(replica->address(), {"devices", "team-chip", "--json"}));
    ASSERT_EQ(devices.size(), 1u) << devices.dump();
    EXPECT_EQ(devices[0]["versions"].size(), 2u) << devices.dump();
  }
  const ProcessResult searched = RunClient(
      second->address(), {"search", "--space", "fmnist_mbv2", "--device", "team-chip",
                          "--max-latency-ms", "1000", "--generations", "2", "--wait", "--json"});
  ASSERT_EQ(searched.exit_code, 0) << searched.err;
  EXPECT_EQ(ParseJson(searched).value("table_version", int64_t{0}), 2) << searched.out;
}

// Training jobs are leased like searches: each is trained once, by whichever replica claims
// it; a SIGKILLed holder's job is trained again by the other once its lease expires, and a
// cancel through the non-holder stops the holder.
TEST_F(ReplicasTest, TrainingJobsAreClaimedOnceTakenOverAfterAKillAndCancelledFromAnyReplica) {
  std::map<std::string, std::unique_ptr<ServerProcess>> replicas;
  for (const std::string name : {"r0", "r1"}) replicas[name] = StartReplica(name);
  const auto train = [&](const std::string& replica, const std::string& seed,
                         const std::string& epochs) {
    const ProcessResult submitted =
        RunClient(replicas[replica]->address(),
                  {"train", "--space", "fmnist_mbv2", "--dataset", "fmnist_mbv2-supernet-v1",
                   "--kind", "transfer", "--seed", seed, "--max-epochs", epochs, "--json"});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
    return ParseJson(submitted).value("job_id", std::string());
  };
  const auto state = [&](const std::string& replica, const std::string& job_id) {
    return ParseJson(RunClient(replicas[replica]->address(), {"training", job_id, "--json"}))
        .value("state", std::string());
  };
  const std::string first = train("r0", "3", "300");
  const std::string second = train("r0", "4", "300");
  std::string holder;
  ASSERT_TRUE(WaitFor(
      [&] {
        holder = Sql(url_,
                     "SELECT encode(lease_holder, 'escape') FROM training_jobs WHERE state = 2 "
                     "AND lease_holder != '' ORDER BY seq LIMIT 1");
        return !holder.empty();
      },
      60));
  ASSERT_EQ(replicas.count(holder), 1u) << holder;
  const std::string survivor = holder == "r0" ? "r1" : "r0";
  replicas[holder]->Stop(SIGKILL);
  for (const std::string& job_id : {first, second}) {
    EXPECT_TRUE(
        WaitFor([&] { return state(survivor, job_id) == "SUCCEEDED"; }, 3 * kLeaseSeconds + 240))
        << job_id << " " << state(survivor, job_id);
  }
  EXPECT_EQ(Sql(url_, "SELECT COUNT(*) FROM training_jobs WHERE lease_holder != ''"), "0");
  EXPECT_EQ(Sql(url_,
                "SELECT COUNT(DISTINCT predictor_version) FROM training_jobs WHERE "
                "state = 3"),
            "2");

  // Cancelled through the replica that does not hold it (the killed one restarted).
  replicas[holder] = StartReplica(holder);
  const std::string endless = train(survivor, "5", "100000");
  std::string endless_holder;
  ASSERT_TRUE(WaitFor(
      [&] {
        endless_holder = Sql(url_, absl::StrCat("SELECT encode(lease_holder, 'escape') FROM "
                                                "training_jobs WHERE state = 2 AND id = '",
                                                endless, "'"));
        return !endless_holder.empty();
      },
      60));
  const std::string other = endless_holder == "r0" ? "r1" : "r0";
  const ProcessResult cancelled =
      RunClient(replicas[other]->address(), {"cancel-training", endless});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_TRUE(WaitFor([&] { return state(other, endless) == "CANCELLED"; }, 3 * kLeaseSeconds + 5))
      << state(other, endless);
}

// Replicas that start together on an empty store with tokens on: one admin token is created.
TEST_F(ReplicasTest, ReplicasBootstrappingTogetherCreateOneAdminToken) {
  std::vector<std::unique_ptr<ServerProcess>> started(3);
  std::vector<std::string> token_files;
  token_files.reserve(3);
  for (int i = 0; i < 3; ++i) token_files.push_back(TempPath(absl::StrCat("token_", i)));
  {
    std::vector<std::thread> threads;
    threads.reserve(3);
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&, i] {
        started[i] = std::make_unique<ServerProcess>(
            url_, std::vector<std::string>{absl::StrCat("--replica_id=b", i), "--auth=on",
                                           "--bootstrap_token_file=" + token_files[i]});
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  int written = 0;
  for (const std::string& file : token_files) written += ReadFile(file).empty() ? 0 : 1;
  EXPECT_EQ(written, 1);
  EXPECT_EQ(Sql(url_, "SELECT COUNT(*) FROM tokens"), "1");
}

TEST_F(ReplicasTest, StartRefusesAnUnreachableDatabaseAndANewerSchema) {
  // Nothing listens on port 1.
  const ProcessResult unreachable =
      RunProcess({"server/apqd", "--listen=127.0.0.1:0", "--data_dir=data", "--auth=off",
                  "--db=postgresql://postgres:secret-password@127.0.0.1:1/postgres"});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_NE(unreachable.err.find("UNAVAILABLE"), std::string::npos) << unreachable.err;
  EXPECT_NE(unreachable.err.find("127.0.0.1:1"), std::string::npos) << unreachable.err;
  EXPECT_EQ(unreachable.err.find("secret-password"), std::string::npos) << unreachable.err;

  // A database a newer build migrated: this one must not write to it.
  { StartReplica("r0"); }
  Sql(url_, "UPDATE apq_schema SET version = 99");
  const ProcessResult newer = RunProcess(
      {"server/apqd", "--listen=127.0.0.1:0", "--data_dir=data", "--auth=off", "--db=" + url_});
  EXPECT_EQ(newer.exit_code, 1);
  // Both versions named: the database's and this build's.
  EXPECT_NE(newer.err.find("schema version 99 is newer than this build supports ("),
            std::string::npos)
      << newer.err;
}

}  // namespace
}  // namespace apq::testing
