// What only the SQLite backend promises: the file outlives the process, older files are
// migrated, several connections share one file. The backend-agnostic contracts are in
// store_conformance_test.cc.
#include "server/store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_database.h"
#include "server/store/store.h"
#include "server/store/store_testing.h"

namespace apq::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace ::apq::server::store_testing;  // NOLINT(google-build-using-namespace): the test
                                               // records.

SqliteStore::Options Options(const std::string& path, int busy_timeout_ms = 5000) {
  SqliteStore::Options options;
  options.path = path;
  options.busy_timeout_ms = busy_timeout_ms;
  return options;
}

std::unique_ptr<Store> OpenOrDie(const std::string& path, int busy_timeout_ms = 5000) {
  absl::StatusOr<std::unique_ptr<Store>> store = SqliteStore::Open(Options(path, busy_timeout_ms));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// A connection of its own to the file, bypassing the store.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
  }
  ~RawConnection() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
    sqlite3_free(error);
  }

  // The first value of the query's first row, as text.
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    std::string value = "<no row>";
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  }

  int64_t QueryInt(const std::string& sql) { return std::stoll(QueryText(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteStoreTest, EverythingSurvivesARestart) {
  const std::string path = FreshPath();
  JobRecord running, finished, queued;
  std::vector<CandidateRecord> candidates;
  {
    std::unique_ptr<Store> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    JobStore& jobs = store->jobs();
    const std::string running_id = *jobs.CreateJob(MakeJob("a", 10));
    const std::string finished_id = *jobs.CreateJob(MakeJob("b", 20));
    const std::string queued_id = *jobs.CreateJob(MakeJob("c", 30));
    ASSERT_TRUE(jobs.MarkRunning(running_id, 11).ok());
    for (int g = 0; g < 3; ++g) {
      GenerationBatch batch = MakeBatch(g, 10, int64_t{g} * 10);
      batch.candidates[2].accuracy.reset();
      batch.candidates[5].feasible = false;
      batch.checkpoint = std::string("\0\0binary\0checkpoint\xfe", 20) + std::to_string(g);
      ASSERT_TRUE(jobs.AppendGenerations(running_id, batch).ok());
    }
    ASSERT_TRUE(jobs.MarkRunning(finished_id, 21).ok());
    absl::StatusOr<std::vector<int64_t>> ids = jobs.AppendGenerations(finished_id, MakeBatch(0, 2));
    ASSERT_TRUE(ids.ok());
    ASSERT_TRUE(jobs.FinishJob(finished_id, JobState::kSucceeded, "", 25, 4, {(*ids)[1]}).ok());
    TableVersionRecord table;
    table.device = "pixel";
    table.files = {{"t.yaml", kBinary}};
    ASSERT_TRUE(store->devices().AddTableVersion(table).ok());
    ASSERT_TRUE(store->datasets()
                    .CreateDataset({"fm", "fmnist_mbv2", "supernet v1", 1.7e9, 0},
                                   {Measurement("[1]", 0.875, "fp32")})
                    .ok());
    ASSERT_TRUE(store->predictors().AddPredictor(Predictor("v1", true)).ok());
    ASSERT_TRUE(store->training_jobs().CreateTrainingJob({}).ok());
    ASSERT_TRUE(store->artifacts().PutArtifact(Artifact("solver_report", "r", finished_id)).ok());
    ASSERT_TRUE(store->artifacts().PutArtifact(Artifact("iqp_sensitivity", "s")).ok());

    running = *jobs.GetJob(running_id);
    finished = *jobs.GetJob(finished_id);
    queued = *jobs.GetJob(queued_id);
    candidates = AllCandidates(jobs, running_id).candidates;
    EXPECT_EQ(running.checkpoint.size(), 21u);
  }  // Closes the database.

  std::unique_ptr<Store> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  JobStore& jobs = store->jobs();
  ExpectJobEq(*jobs.GetJob(running.id), running);
  ExpectJobEq(*jobs.GetJob(finished.id), finished);
  ExpectJobEq(*jobs.GetJob(queued.id), queued);
  EXPECT_EQ(finished.pareto_front_size, 1);
  CandidatePage page = AllCandidates(jobs, running.id);
  EXPECT_EQ(page.total, 30);
  ASSERT_EQ(page.candidates.size(), candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    EXPECT_EQ(page.candidates[i].id, candidates[i].id);
    ExpectCandidateEq(page.candidates[i], candidates[i]);
  }
  CandidateQuery front = Query(finished.id, 10);
  front.pareto_front_only = true;
  EXPECT_EQ(ListOrDie(jobs, front).total, 1);
  std::vector<JobRecord> unfinished = *jobs.ListJobs(JobState::kRunning, std::nullopt, 0, 100);
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0].id, running.id);
  EXPECT_EQ(jobs.ListJobs(JobState::kQueued, std::nullopt, 0, 100)->size(), 1u);
  EXPECT_EQ(store->devices().GetTableVersion("pixel", 0)->files[0].content, kBinary);
  EXPECT_EQ(store->datasets().GetDataset("fm")->records, 1);
  EXPECT_EQ(store->datasets().ListMeasurements("fm", std::nullopt)->at(0).seed,
            0xfedcba9876543210ULL);
  EXPECT_EQ(store->predictors().GetDefaultPredictor("fmnist_mbv2")->artifact,
            Predictor("v1", true).artifact);
  EXPECT_EQ(store->training_jobs().GetTrainingJob("train-1")->state, JobState::kQueued);
  ExpectArtifactEq(*store->artifacts().GetArtifact("solver_report", "r"),
                   Artifact("solver_report", "r", finished.id));
  ExpectArtifactEq(*store->artifacts().GetArtifact("iqp_sensitivity", "s"),
                   Artifact("iqp_sensitivity", "s"));

  // The resumed job continues where it stopped; new ids follow the old ones.
  ASSERT_TRUE(jobs.AppendGenerations(running.id, MakeBatch(3, 1, 30)).ok());
  EXPECT_GT(AllCandidates(jobs, running.id).candidates.back().id, candidates.back().id);
  EXPECT_EQ(*jobs.CreateJob(MakeJob()), "job-4");
  EXPECT_EQ(*store->training_jobs().CreateTrainingJob({}), "train-2");
}

// A file written by an older build (at every older schema version) opens, is brought up to
// date, and its records keep working.
TEST(SqliteStoreTest, MigratesADatabaseOfAnOlderSchema) {
  for (int version = 1; version < SqliteStore::SchemaVersion(); ++version) {
    SCOPED_TRACE(absl::StrCat("schema version ", version));
    const std::string path = FreshPath(absl::StrCat("_v", version));
    {
      // A running job with two candidates, as every schema since 1 stores it (from schema 8
      // on with each row's count and network hash; the hash is the store's SQL function
      // apq_network_hash, so the rows go in through the store's own connection).
      absl::StatusOr<std::unique_ptr<SqliteDatabase>> old =
          SqliteDatabase::Open(path, 5000, version);
      ASSERT_TRUE(old.ok()) << old.status();
      const std::string candidates =
          version >= 8
              ? "INSERT INTO candidates (job_id, generation, times_seen, network_hash, "
                "config_json, accuracy, latency_ms, feasible) VALUES "
                "('job-1', 0, 1, apq_network_hash('{\"b\":1}'), '{\"b\":1}', 0.7, 10, 1), "
                "('job-1', 0, 1, apq_network_hash('{\"b\":2}'), '{\"b\":2}', 0.75, 12.5, 1);"
              : "INSERT INTO candidates (job_id, generation, config_json, accuracy, latency_ms, "
                "feasible) VALUES ('job-1', 0, '{\"b\":1}', 0.7, 10, 1), "
                "('job-1', 0, '{\"b\":2}', 0.75, 12.5, 1);";
      absl::MutexLock lock(&(*old)->mutex());
      const absl::Status inserted = (*old)->Exec(
          absl::StrCat(
              "INSERT INTO jobs (id, seq, space, device, table_version, predictor_version, "
              "request, state, generations_done, next_generation, candidates_evaluated, "
              "stored_feasible, best_id, best_generation, best_config_json, best_accuracy, "
              "best_latency_ms, best_feasible, created_unix_s, checkpoint) VALUES ('job-1', 1, "
              "'ofa_mbv3', 'note10', 1, 'v1', x'0800', 2, 0, 1, 2, 2, 2, 0, '{\"b\":2}', 0.75, "
              "12.5, 1, 10.5, x'00ff');",
              candidates,
              "INSERT INTO device_tables VALUES ('note10', 1, 1, 3, 5.5, 'sha', 'old');"
              "INSERT INTO table_files VALUES ('note10', 1, 'a.yaml', x'61');"
              "INSERT INTO predictors (space, version, artifact, created_unix_s, is_default) "
              "VALUES ('ofa_mbv3', 'p1', x'01', 1.5, 1);"),
          "writing the old schema's records");
      ASSERT_TRUE(inserted.ok()) << inserted;
    }
    EXPECT_EQ(RawConnection(path).QueryInt("PRAGMA user_version"), version);
    std::unique_ptr<Store> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    {
      RawConnection raw(path);
      EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), SqliteStore::SchemaVersion());
    }
    JobStore& jobs = store->jobs();
    absl::StatusOr<JobRecord> job = jobs.GetJob("job-1");
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->state, JobState::kRunning);
    EXPECT_EQ(job->request, std::string("\x08\x00", 2));
    EXPECT_EQ(job->checkpoint, std::string("\x00\xff", 2));
    ASSERT_TRUE(job->best.has_value());
    EXPECT_EQ(job->best->id, 2);
    EXPECT_EQ(job->best->modelled, "");
    EXPECT_EQ(job->pareto_front_size, 0);
    CandidatePage page = AllCandidates(jobs, "job-1");
    ASSERT_EQ(page.total, 2);
    EXPECT_EQ(page.candidates[1].config_json, "{\"b\":2}");
    EXPECT_EQ(page.candidates[1].modelled, "");
    // The label (schema 14) of a job stored before is unknown until the server reads it
    // from the request; a new job is stored with its own.
    EXPECT_EQ(job->label, "");
    absl::StatusOr<std::vector<JobRecord>> unlabelled = jobs.JobsWithoutLabel(10);
    ASSERT_TRUE(unlabelled.ok()) << unlabelled.status();
    ASSERT_EQ(unlabelled->size(), 1u);
    EXPECT_EQ((*unlabelled)[0].id, "job-1");
    EXPECT_EQ((*unlabelled)[0].request, std::string("\x08\x00", 2));
    ASSERT_TRUE(jobs.SetJobLabel("job-1", "old-nightly").ok());
    EXPECT_THAT(*jobs.JobsWithoutLabel(10), IsEmpty());
    JobQuery by_label;
    by_label.label = "old-nightly";
    ASSERT_EQ(jobs.ListJobsPage(by_label)->size(), 1u);

    absl::StatusOr<std::vector<int64_t>> ids = jobs.AppendGenerations("job-1", MakeBatch(1, 2, 2));
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_THAT(*ids, ElementsAre(3, 4));
    EXPECT_EQ(job->stage, JobStage::kSearch);
    EXPECT_FALSE(page.candidates[0].measured.has_value());
    // Verification (schema 7) works on the old rows.
    ASSERT_TRUE(jobs.BeginVerification("job-1", 2).ok());
    ASSERT_TRUE(jobs.RecordVerification("job-1", 3, MakeMeasurement(0.5), 3).ok());
    ASSERT_TRUE(jobs.RecordVerification("job-1", 1, MakeMeasurement(0.625), 1).ok());
    job = jobs.GetJob("job-1");
    EXPECT_EQ(job->verification_measured, 2);
    ASSERT_TRUE(job->verified_best.has_value());
    EXPECT_EQ(job->verified_best->config_json, "{\"b\":1}");
    EXPECT_EQ(job->best->measured.value_or(CandidateMeasurement{}).accuracy, 0.5);
    ASSERT_TRUE(jobs.FinishJob("job-1", JobState::kSucceeded, "", 20, 9, {1, 2}).ok());
    EXPECT_EQ(jobs.GetJob("job-1")->pareto_front_size, 2);
    EXPECT_EQ(*jobs.CreateJob(MakeJob()), "job-2");

    EXPECT_EQ(*store->devices().AddTableVersion(MakeTable("note10", "2")), 2);
    EXPECT_EQ(store->devices().GetTableVersion("note10", 1)->files[0].content, "a");
    const PredictorRecord old_predictor = *store->predictors().GetDefaultPredictor("ofa_mbv3");
    EXPECT_EQ(old_predictor.version, "p1");
    EXPECT_EQ(old_predictor.kind, "");  // Unknown before schema 4.
    EXPECT_TRUE(store->predictors().AddPredictor(Predictor("v1", true)).ok());
    EXPECT_TRUE(store->datasets()
                    .CreateDataset({"fm", "fmnist_mbv2", "", 1, 0}, {Measurement("[1]", 1, "fp32")})
                    .ok());
    EXPECT_EQ(*store->training_jobs().CreateTrainingJob({}), "train-1");
    // Artifacts (schema 12) of the old job go with it.
    ASSERT_TRUE(store->artifacts().PutArtifact(Artifact("solver_report", "r", "job-1")).ok());
    ASSERT_TRUE(store->artifacts().PutArtifact(Artifact("iqp_sensitivity", "s")).ok());
    EXPECT_EQ(store->artifacts().ListJobArtifacts("job-1")->size(), 1u);
    ASSERT_TRUE(jobs.DeleteJob("job-1", 30).ok());
    EXPECT_EQ(store->artifacts().GetArtifact("solver_report", "r").status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_TRUE(store->artifacts().GetArtifact("iqp_sensitivity", "s").ok());
  }
}

// Schema 15 adds leases: the unfinished jobs of a file of schema 14 hold none and are
// claimable oldest first; ended and deleted ones are not.
TEST(SqliteStoreTest, MigratesJobsToLeasesThatAreFree) {
  ASSERT_GE(SqliteStore::SchemaVersion(), 15);
  const std::string path = FreshPath();
  {
    absl::StatusOr<std::unique_ptr<SqliteDatabase>> old = SqliteDatabase::Open(path, 5000, 14);
    ASSERT_TRUE(old.ok()) << old.status();
    absl::MutexLock lock(&(*old)->mutex());
    // job-1 succeeded, job-2 runs, job-3 is queued, job-4 failed and was deleted.
    const absl::Status inserted = (*old)->Exec(
        "INSERT INTO jobs (id, seq, space, device, table_version, predictor_version, request, "
        "state, created_unix_s, deleted_unix_s, label) VALUES "
        "('job-1', 1, 'ofa_mbv3', 'note10', 1, 'v1', x'08', 3, 10, 0, ''), "
        "('job-2', 2, 'ofa_mbv3', 'note10', 1, 'v1', x'08', 2, 11, 0, ''), "
        "('job-3', 3, 'ofa_mbv3', 'note10', 1, 'v1', x'08', 1, 12, 0, ''), "
        "('job-4', 4, 'ofa_mbv3', 'note10', 1, 'v1', x'', 4, 13, 20, '');",
        "writing schema 14's jobs");
    ASSERT_TRUE(inserted.ok()) << inserted;
  }
  EXPECT_EQ(RawConnection(path).QueryInt("PRAGMA user_version"), 14);
  std::unique_ptr<Store> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  {
    RawConnection raw(path);
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), SqliteStore::SchemaVersion());
    EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM jobs WHERE lease_holder = '' AND "
                           "lease_expires_unix_s = 0 AND cancel_requested = 0"),
              4);
  }
  JobStore& jobs = store->jobs();
  absl::StatusOr<std::optional<ClaimedJob>> claimed = jobs.ClaimJob("replica-a", 100, 200);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->job_id, "job-2");
  EXPECT_EQ((*claimed)->state, JobState::kRunning);
  EXPECT_FALSE((*claimed)->cancel_requested);
  claimed = jobs.ClaimJob("replica-b", 100, 200);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job_id, "job-3");
  EXPECT_EQ((*claimed)->state, JobState::kQueued);
  claimed = jobs.ClaimJob("replica-c", 100, 200);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_FALSE(claimed->has_value());
  EXPECT_TRUE(jobs.RenewLease("job-2", "replica-a", 300).ok());
  EXPECT_EQ(*jobs.RequestCancel("job-3", 150), CancelRequestOutcome::kRequested);
  EXPECT_TRUE(jobs.RenewLease("job-3", "replica-b", 300)->cancel_requested);
  // Ending a job clears its lease (not seen through the interface).
  ASSERT_TRUE(jobs.FinishJob("job-2", JobState::kSucceeded, "", 200, 100, {}).ok());
  ASSERT_TRUE(jobs.FinishJob("job-3", JobState::kCancelled, "", 200, 0, {}).ok());
  EXPECT_EQ(RawConnection(path).QueryInt("SELECT COUNT(*) FROM jobs WHERE lease_holder != '' OR "
                                         "lease_expires_unix_s != 0"),
            0);
}

// Stores on one file (replicas, each with a connection of its own) claiming at once get
// every job exactly once: BEGIN IMMEDIATE makes each claim's read and write one step.
TEST(SqliteStoreTest, ClaimersOnOneFileGetEveryJobExactlyOnce) {
  constexpr int kJobs = 40;
  constexpr int kReplicas = 4;
  const std::string path = FreshPath();
  std::vector<std::unique_ptr<Store>> replicas;
  for (int r = 0; r < kReplicas; ++r) {
    replicas.push_back(OpenOrDie(path));
    ASSERT_NE(replicas.back(), nullptr);
  }
  for (int i = 0; i < kJobs; ++i)
    ASSERT_TRUE(replicas[i % kReplicas]->jobs().CreateJob(MakeJob()).ok());
  std::vector<std::vector<std::string>> claimed(kReplicas);
  std::vector<std::thread> threads;
  threads.reserve(kReplicas);
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      const std::string holder = absl::StrCat("replica-", r);
      // More claims than jobs: some job was claimed twice (and the loop would not end).
      for (int claims = 0; claims <= kJobs; ++claims) {
        absl::StatusOr<std::optional<ClaimedJob>> job =
            replicas[r]->jobs().ClaimJob(holder, 100, 1000);
        if (!job.ok()) {
          ADD_FAILURE() << holder << ": " << job.status();
          return;
        }
        if (!job->has_value()) return;
        claimed[r].push_back((*job)->job_id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<std::string> all;
  for (const std::vector<std::string>& ids : claimed) all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected;
  for (int i = 1; i <= kJobs; ++i) expected.push_back(absl::StrCat("job-", i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected) << "every job claimed exactly once";
}

// Schema 8 keeps one row per network of a job. A file of schema 7, which kept a row per
// draw, merges each job's rows of one network into the first, counting them, and keeps what
// pointed at any of them.
TEST(SqliteStoreTest, MigratesRowsPerDrawToOneRowPerNetwork) {
  const std::string path = FreshPath();
  {
    absl::StatusOr<std::unique_ptr<SqliteDatabase>> old = SqliteDatabase::Open(path, 5000, 7);
    ASSERT_TRUE(old.ok()) << old.status();
  }
  {
    RawConnection raw(path);
    ASSERT_EQ(raw.QueryInt("PRAGMA user_version"), 7);
    // job-1 ended with a front of rows 1, 3 (row 1's network again) and 4, its best naming
    // row 5 (row 4's network again) and its measured best row 1; job-2 runs. Row 8 was
    // stored and removed, so ids went up to 8.
    raw.Exec(
        "INSERT INTO jobs (id, seq, space, device, table_version, predictor_version, request, "
        "state, generations_done, next_generation, candidates_evaluated, stored_feasible, "
        "stored_infeasible, best_id, best_generation, best_config_json, best_accuracy, "
        "best_latency_ms, best_feasible, created_unix_s, pareto_front_size, stage, "
        "verification_finalists, verification_measured, verified_best_id) VALUES "
        "('job-1', 1, 'ofa_mbv3', 'note10', 1, 'v1', x'08', 3, 2, 3, 4, 4, 2, 5, 2, '{\"n\":3}', "
        "0.8, 20, 1, 10.5, 3, 2, 1, 1, 1), "
        "('job-2', 2, 'ofa_mbv3', 'note10', 1, 'v1', x'08', 2, 0, 1, 1, 1, 0, 7, 0, '{\"n\":1}', "
        "0.7, 10, 1, 11.5, 0, 1, 0, 0, NULL);"
        "INSERT INTO candidates (id, job_id, generation, config_json, accuracy, latency_ms, "
        "feasible, on_pareto_front, measured_accuracy, measured_method, measured_split, "
        "measured_seconds) VALUES "
        "(1, 'job-1', 0, '{\"n\":1}', 0.7, 10, 1, 1, 0.69, 'fp32', 'validation', 1.5), "
        "(2, 'job-1', 0, '{\"n\":2}', NULL, 30, 0, 0, NULL, NULL, NULL, NULL), "
        "(3, 'job-1', 1, '{\"n\":1}', 0.7, 10, 1, 1, NULL, NULL, NULL, NULL), "
        "(4, 'job-1', 1, '{\"n\":3}', 0.8, 20, 1, 1, NULL, NULL, NULL, NULL), "
        "(5, 'job-1', 2, '{\"n\":3}', 0.8, 20, 1, 0, NULL, NULL, NULL, NULL), "
        "(6, 'job-1', 2, '{\"n\":2}', NULL, 30, 0, 0, NULL, NULL, NULL, NULL), "
        "(7, 'job-2', 0, '{\"n\":1}', 0.7, 10, 1, 0, NULL, NULL, NULL, NULL), "
        "(8, 'job-2', 0, '{\"n\":9}', 0.7, 10, 1, 0, NULL, NULL, NULL, NULL);"
        "DELETE FROM candidates WHERE id = 8;");
  }
  std::unique_ptr<Store> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  JobStore& jobs = store->jobs();

  const CandidatePage rows = AllCandidates(jobs, "job-1");
  EXPECT_EQ(rows.total, 3);
  ASSERT_EQ(rows.candidates.size(), 3u);
  const std::vector<int64_t> expected_ids = {1, 2, 4};
  const std::vector<int> expected_generations = {0, 0, 1};
  const std::vector<bool> expected_front = {true, false, true};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows.candidates[i].id, expected_ids[i]);
    EXPECT_EQ(rows.candidates[i].generation, expected_generations[i]);
    EXPECT_EQ(rows.candidates[i].times_seen, 2) << i;
    EXPECT_EQ(rows.candidates[i].on_pareto_front, expected_front[i]) << i;
  }
  ASSERT_TRUE(rows.candidates[0].measured.has_value());
  EXPECT_EQ(rows.candidates[0].measured->accuracy, 0.69);
  EXPECT_EQ(ListOrDie(jobs, Query("job-1", 10, CandidateOrder::kId, false)).total, 1);

  const JobRecord ended = *jobs.GetJob("job-1");
  ASSERT_TRUE(ended.best.has_value());
  EXPECT_EQ(ended.best->id, 4) << "the best names its network's first row";
  EXPECT_EQ(ended.best->times_seen, 2);
  ASSERT_TRUE(ended.verified_best.has_value());
  EXPECT_EQ(ended.verified_best->id, 1);
  EXPECT_EQ(ended.pareto_front_size, 2);
  EXPECT_EQ(ended.rejected_draws, 2) << "the rejected draws its rows kept";
  EXPECT_EQ(ended.candidates_evaluated, 4);
  CandidateQuery front = Query("job-1", 10);
  front.pareto_front_only = true;
  EXPECT_EQ(ListOrDie(jobs, front).total, 2);

  {
    RawConnection raw(path);
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), SqliteStore::SchemaVersion());
    EXPECT_EQ(raw.QueryText("SELECT group_concat(name, ',') FROM (SELECT name FROM "
                            "sqlite_master WHERE type = 'index' AND tbl_name = 'candidates' "
                            "AND sql IS NOT NULL ORDER BY name)"),
              "candidates_by_job_network,candidates_on_front");
    EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = "
                           "'candidates_by_network'"),
              0);
  }

  // The running job resumes: its stored network is counted, a new one gets an id above every
  // id assigned before the migration.
  GenerationBatch next = MakeBatch(1, 0, 1);
  CandidateRecord again;
  again.config_json = "{\"n\":1}";
  again.accuracy = 0.7;
  again.latency_ms = 10;
  again.generation = 1;
  CandidateRecord fresh = MakeCandidate(5);
  fresh.generation = 1;
  next.candidates = {again, fresh};
  next.candidates_evaluated = 3;
  next.best = again;
  next.best_batch_index = 0;
  absl::StatusOr<std::vector<int64_t>> ids = jobs.AppendGenerations("job-2", next);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(7, 9));
  const CandidatePage resumed = AllCandidates(jobs, "job-2");
  ASSERT_EQ(resumed.candidates.size(), 2u);
  EXPECT_EQ(resumed.candidates[0].times_seen, 2);
  EXPECT_EQ(jobs.GetJob("job-2")->best->id, 7);
}

// Writes bind NetworkHash computed in C++; rows written before (and the migrations) used the
// SQL function: both must give the same key for every text, or a network met again would
// get a second row.
TEST(SqliteStoreTest, TheNetworkHashWritesBindIsTheSqlFunctions) {
  absl::StatusOr<std::unique_ptr<SqliteDatabase>> database =
      SqliteDatabase::Open(FreshPath(), 5000, SqliteStore::SchemaVersion());
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string texts[] = {"", "{\"b\":1}", std::string(400, 'x') + "\xc3\xa9",
                               "[{\"wid\":null,\"ks\":[3,5,7],\"e\":[4.666666666666667]}]"};
  absl::MutexLock lock(&(*database)->mutex());
  for (const std::string& text : texts) {
    absl::StatusOr<SqliteDatabase::Statement> select =
        (*database)->Prepare("SELECT apq_network_hash(?1)");
    ASSERT_TRUE(select.ok()) << select.status();
    select->BindText(1, text);
    ASSERT_TRUE(select->Step("hashing").value());
    EXPECT_EQ(select->ColumnInt64(0), NetworkHash(text)) << text;
  }
}

TEST(SqliteStoreTest, RejectsASchemaNewerThanTheBuild) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<Store> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->jobs().CreateJob(MakeJob()).ok());
  }
  const int newer = SqliteStore::SchemaVersion() + 1;
  RawConnection(path).Exec(absl::StrCat("PRAGMA user_version = ", newer));
  absl::StatusOr<std::unique_ptr<Store>> store = SqliteStore::Open(Options(path));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr(absl::StrCat("database schema version ", newer,
                                     " is newer than this build supports (",
                                     SqliteStore::SchemaVersion(), ")")));
  EXPECT_EQ(RawConnection(path).QueryInt("PRAGMA user_version"), newer);  // Left alone.
}

TEST(SqliteStoreTest, ReopeningAnUpToDateDatabaseAppliesNothing) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<Store> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->jobs().CreateJob(MakeJob()).ok());
  }
  RawConnection raw(path);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), SqliteStore::SchemaVersion());
  const int64_t schema_objects = raw.QueryInt("SELECT COUNT(*) FROM sqlite_master");
  const int64_t schema_cookie = raw.QueryInt("PRAGMA schema_version");
  EXPECT_GT(schema_objects, 4);
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<Store> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->jobs().GetJob("job-1")->space, "ofa_mbv3");
  }
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), SqliteStore::SchemaVersion());
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM sqlite_master"), schema_objects);
  // The schema cookie changes with every schema change: none happened.
  EXPECT_EQ(raw.QueryInt("PRAGMA schema_version"), schema_cookie);
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM jobs"), 1);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
}

TEST(SqliteStoreTest, TwoStoresOnOneFileShareIt) {
  const std::string path = FreshPath();
  std::unique_ptr<Store> first = OpenOrDie(path);
  std::unique_ptr<Store> second = OpenOrDie(path);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(*first->jobs().CreateJob(MakeJob()), "job-1");
  EXPECT_EQ(*second->jobs().CreateJob(MakeJob()), "job-2");
  ASSERT_TRUE(first->jobs().AppendGenerations("job-2", MakeBatch(0, 3)).ok());
  EXPECT_EQ(second->jobs().GetJob("job-2")->candidates_evaluated, 3);
  EXPECT_EQ(second->jobs().AppendGenerations("job-2", MakeBatch(0, 3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(second->predictors().AddPredictor(Predictor("v1", true)).ok());
  EXPECT_EQ(first->predictors().AddPredictor(Predictor("v1", true)).code(),
            absl::StatusCode::kAlreadyExists);
}

// A writer waits up to the busy timeout for another connection's write lock, then fails
// having changed nothing.
TEST(SqliteStoreTest, AWriterWaitsForTheBusyTimeout) {
  const std::string path = FreshPath();
  std::unique_ptr<Store> impatient = OpenOrDie(path, /*busy_timeout_ms=*/100);
  ASSERT_NE(impatient, nullptr);
  RawConnection other(path);
  other.Exec("BEGIN IMMEDIATE");
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> refused = impatient->jobs().CreateJob(MakeJob());
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInternal) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("locked"));
  EXPECT_GE(waited, std::chrono::milliseconds(90));
  other.Exec("ROLLBACK");
  EXPECT_EQ(*impatient->jobs().CreateJob(MakeJob()), "job-1");

  // A lock released within the timeout only delays the write.
  std::unique_ptr<Store> patient = OpenOrDie(path, /*busy_timeout_ms=*/10000);
  ASSERT_NE(patient, nullptr);
  other.Exec("BEGIN IMMEDIATE");
  std::thread release([&other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    other.Exec("ROLLBACK");
  });
  EXPECT_EQ(*patient->jobs().CreateJob(MakeJob()), "job-2");
  release.join();
}

TEST(SqliteStoreTest, UnusablePathsFailClearly) {
  EXPECT_EQ(SqliteStore::Open(Options("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteStore::Open(Options(FreshPath(), -1)).status().code(),
            absl::StatusCode::kInvalidArgument);

  const std::string missing_dir = absl::StrCat(TempDir(), "/no/such/dir/store.db");
  absl::Status status = SqliteStore::Open(Options(missing_dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr(missing_dir));
  EXPECT_THAT(std::string(status.message()), HasSubstr("unable to open"));

  // A directory, and a path below a regular file.
  status = SqliteStore::Open(Options(TempDir())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  const std::string file = FreshPath();
  std::ofstream(file) << "this is not a database, just some text that is long enough to matter "
                         "for SQLite's header check, padded out to more than a hundred bytes.";
  status = SqliteStore::Open(Options(file + "/below.db")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("below.db"));

  // A file that is not a database.
  status = SqliteStore::Open(Options(file)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("not a database"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(file));

  // Without write permission (meaningless as root, who may write anyway).
  if (geteuid() != 0) {
    const std::string read_only = absl::StrCat(TempDir(), "/read_only_dir");
    mkdir(read_only.c_str(), 0555);
    status = SqliteStore::Open(Options(read_only + "/store.db")).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  }
}

}  // namespace
}  // namespace apq::server
