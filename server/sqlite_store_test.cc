#include "server/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store.h"

namespace apq::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// A fresh database path for the running test.
std::string FreshPath() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path =
      absl::StrCat(TempDir(), "/", info->test_suite_name(), "_", info->name(), ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

SqliteStore::Options Options(const std::string& path, int busy_timeout_ms = 5000) {
  SqliteStore::Options options;
  options.path = path;
  options.busy_timeout_ms = busy_timeout_ms;
  return options;
}

std::unique_ptr<SqliteStore> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Runs a query directly on the file, bypassing the store; returns its first value as text.
std::string QueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string value = "<no row>";
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

int64_t QueryInt(const std::string& path, const std::string& sql) {
  return std::stoll(QueryText(path, sql));
}

void ExecOrDie(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_free(error);
  sqlite3_close(db);
}

// 15 bytes: embedded NULs and bytes that are not UTF-8.
const std::string kBinary("req\0with\0NULs\xff\x01", 15);

JobRecord MakeJob(const std::string& space = "ofa_mbv3", double created = 1700000000.25) {
  JobRecord job;
  job.space = space;
  job.device = "note10";
  job.table_version = 3;
  job.predictor_version = "v2";
  job.request = kBinary;
  job.created_unix_s = created;
  return job;
}

CandidateRecord MakeCandidate(int i, bool feasible = true) {
  CandidateRecord candidate;
  candidate.config_json = absl::StrCat("{\"arch\":", i, "}");
  candidate.accuracy = 0.5 + i * 1e-3;
  candidate.latency_ms = 10.0 + i;
  candidate.energy_mj = 1.0 / (i + 3);
  candidate.size_mb = 2.0 + i * 0.01;
  candidate.bitops = 1e9 * (i + 1);
  candidate.feasible = feasible;
  return candidate;
}

GenerationBatch MakeBatch(int generation, int count, int64_t evaluated_before = 0) {
  GenerationBatch batch;
  batch.generation = generation;
  for (int i = 0; i < count; ++i) batch.candidates.push_back(MakeCandidate(generation * 1000 + i));
  batch.candidates_evaluated = evaluated_before + count;
  if (count > 0) {
    batch.best = batch.candidates.front();
    batch.best->generation = generation;
  }
  batch.checkpoint = absl::StrCat(std::string("ck\0pt", 5), generation);
  batch.elapsed_s = 1.5 * (generation + 1);
  return batch;
}

void ExpectCandidateEq(const CandidateRecord& actual, const CandidateRecord& expected) {
  EXPECT_EQ(actual.generation, expected.generation);
  EXPECT_EQ(actual.config_json, expected.config_json);
  EXPECT_EQ(actual.accuracy, expected.accuracy);
  EXPECT_EQ(actual.latency_ms, expected.latency_ms);
  EXPECT_EQ(actual.energy_mj, expected.energy_mj);
  EXPECT_EQ(actual.size_mb, expected.size_mb);
  EXPECT_EQ(actual.bitops, expected.bitops);
  EXPECT_EQ(actual.feasible, expected.feasible);
}

void ExpectJobEq(const JobRecord& actual, const JobRecord& expected, bool with_checkpoint = true) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.space, expected.space);
  EXPECT_EQ(actual.device, expected.device);
  EXPECT_EQ(actual.table_version, expected.table_version);
  EXPECT_EQ(actual.predictor_version, expected.predictor_version);
  EXPECT_EQ(actual.request, expected.request);
  EXPECT_EQ(actual.state, expected.state);
  EXPECT_EQ(actual.error, expected.error);
  EXPECT_EQ(actual.generations_done, expected.generations_done);
  EXPECT_EQ(actual.candidates_evaluated, expected.candidates_evaluated);
  ASSERT_EQ(actual.best.has_value(), expected.best.has_value());
  if (actual.best) {
    EXPECT_EQ(actual.best->id, expected.best->id);
    ExpectCandidateEq(*actual.best, *expected.best);
  }
  EXPECT_EQ(actual.created_unix_s, expected.created_unix_s);
  EXPECT_EQ(actual.started_unix_s, expected.started_unix_s);
  EXPECT_EQ(actual.finished_unix_s, expected.finished_unix_s);
  EXPECT_EQ(actual.elapsed_s, expected.elapsed_s);
  if (with_checkpoint) {
    EXPECT_EQ(actual.checkpoint, expected.checkpoint);
  }
}

CandidateQuery Query(const std::string& job_id, int limit,
                     CandidateOrder order = CandidateOrder::kId,
                     std::optional<bool> feasible = std::nullopt, int64_t offset = 0) {
  CandidateQuery query;
  query.job_id = job_id;
  query.order = order;
  query.feasible = feasible;
  query.offset = offset;
  query.limit = limit;
  return query;
}

CandidatePage ListOrDie(Store& store, const CandidateQuery& query) {
  absl::StatusOr<CandidatePage> page = store.ListCandidates(query);
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? *std::move(page) : CandidatePage{};
}

CandidatePage AllCandidates(Store& store, const std::string& job_id) {
  return ListOrDie(store, Query(job_id, SqliteStore::kMaxPageSize));
}

TEST(SqliteStoreTest, CreateJobRoundTrip) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  JobRecord job = MakeJob();
  // Progress fields of the record are not stored by CreateJob.
  job.state = JobState::kFailed;
  job.generations_done = 7;
  job.checkpoint = "ignored";
  absl::StatusOr<std::string> id = store->CreateJob(job);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "job-1");
  EXPECT_EQ(*store->CreateJob(MakeJob()), "job-2");

  absl::StatusOr<JobRecord> loaded = store->GetJob("job-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  JobRecord expected = MakeJob();
  expected.id = "job-1";
  ExpectJobEq(*loaded, expected);
  EXPECT_EQ(loaded->request.size(), kBinary.size());

  EXPECT_EQ(store->GetJob("job-3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJob("").status().code(), absl::StatusCode::kNotFound);
}

TEST(SqliteStoreTest, EmptyStringsAndBlobsRoundTrip) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  JobRecord job;  // All empty.
  const std::string id = *store->CreateJob(job);
  GenerationBatch batch;
  batch.candidates.push_back(CandidateRecord{});
  ASSERT_TRUE(store->AppendGeneration(id, batch).ok());
  JobRecord loaded = *store->GetJob(id);
  EXPECT_EQ(loaded.request, "");
  EXPECT_EQ(loaded.checkpoint, "");
  EXPECT_FALSE(loaded.best.has_value());
  CandidatePage page = AllCandidates(*store, id);
  ASSERT_EQ(page.candidates.size(), 1u);
  ExpectCandidateEq(page.candidates[0], CandidateRecord{});
}

TEST(SqliteStoreTest, CandidateRoundTripKeepsEveryFieldExactly) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  ASSERT_TRUE(store->MarkRunning(id, 1700000001.125).ok());

  GenerationBatch batch;
  batch.generation = 0;
  CandidateRecord all_set;
  all_set.config_json = "{\"ks\":[3,5,7],\"e\":[4,6]}";
  all_set.accuracy = 0.1 + 0.2;  // Not representable exactly in decimal.
  all_set.latency_ms = std::numeric_limits<double>::denorm_min();
  all_set.energy_mj = std::numeric_limits<double>::max();
  all_set.size_mb = -1e-310;
  all_set.bitops = std::numeric_limits<double>::infinity();
  all_set.feasible = true;
  CandidateRecord none_set;
  none_set.config_json = "{}";
  none_set.feasible = false;
  CandidateRecord some_set;
  some_set.config_json = "{\"x\":1}";
  some_set.accuracy = 1.0 / 3.0;
  some_set.bitops = 123456789012345.0;
  some_set.feasible = false;
  batch.candidates = {all_set, none_set, some_set};
  batch.candidates_evaluated = 3;
  batch.best = all_set;  // id 0: the store fills it in.
  batch.checkpoint = std::string("\0\x01\x02\0end", 7);
  batch.elapsed_s = 0.1 + 0.7;
  ASSERT_TRUE(store->AppendGeneration(id, batch).ok());

  CandidatePage page = AllCandidates(*store, id);
  EXPECT_EQ(page.total, 3);
  ASSERT_EQ(page.candidates.size(), 3u);
  for (int i = 0; i < 3; ++i) ExpectCandidateEq(page.candidates[i], batch.candidates[i]);
  EXPECT_LT(page.candidates[0].id, page.candidates[1].id);
  EXPECT_LT(page.candidates[1].id, page.candidates[2].id);

  JobRecord expected = MakeJob();
  expected.id = id;
  expected.state = JobState::kRunning;
  expected.started_unix_s = 1700000001.125;
  expected.generations_done = 0;
  expected.candidates_evaluated = 3;
  expected.best = all_set;
  expected.best->id = page.candidates[0].id;
  expected.checkpoint = batch.checkpoint;
  expected.elapsed_s = batch.elapsed_s;
  ExpectJobEq(*store->GetJob(id), expected);
}

TEST(SqliteStoreTest, BestIdIsResolvedOrKept) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  GenerationBatch first = MakeBatch(0, 5);
  first.best = first.candidates[3];
  ASSERT_TRUE(store->AppendGeneration(id, first).ok());
  const int64_t best_id = AllCandidates(*store, id).candidates[3].id;
  EXPECT_EQ(store->GetJob(id)->best->id, best_id);

  // The same best a generation later (stamped with the new generation) keeps its id.
  GenerationBatch second = MakeBatch(1, 5, 5);
  second.best = first.candidates[3];
  second.best->generation = 1;
  ASSERT_TRUE(store->AppendGeneration(id, second).ok());
  EXPECT_EQ(store->GetJob(id)->best->id, best_id);
  EXPECT_EQ(store->GetJob(id)->best->generation, 1);

  // A best from an earlier generation that was not the previous best is looked up.
  GenerationBatch third = MakeBatch(2, 5, 10);
  third.best = first.candidates[1];
  ASSERT_TRUE(store->AppendGeneration(id, third).ok());
  EXPECT_EQ(store->GetJob(id)->best->id, AllCandidates(*store, id).candidates[1].id);

  // A caller-given id is kept; an unknown config stays 0.
  GenerationBatch fourth = MakeBatch(3, 5, 15);
  fourth.best = MakeCandidate(999999);
  fourth.best->id = 424242;
  ASSERT_TRUE(store->AppendGeneration(id, fourth).ok());
  EXPECT_EQ(store->GetJob(id)->best->id, 424242);
  GenerationBatch fifth = MakeBatch(4, 5, 20);
  fifth.best = MakeCandidate(999998);
  ASSERT_TRUE(store->AppendGeneration(id, fifth).ok());
  EXPECT_EQ(store->GetJob(id)->best->id, 0);

  // No best clears it.
  GenerationBatch sixth = MakeBatch(5, 0, 25);
  ASSERT_TRUE(store->AppendGeneration(id, sixth).ok());
  EXPECT_FALSE(store->GetJob(id)->best.has_value());
}

TEST(SqliteStoreTest, GenerationsMustComeInOrder) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  const JobRecord initial = *store->GetJob(id);

  auto expect_rejected = [&](int generation, const JobRecord& before, int64_t rows_before) {
    absl::Status status = store->AppendGeneration(id, MakeBatch(generation, 4, 1000));
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    ExpectJobEq(*store->GetJob(id), before);
    EXPECT_EQ(AllCandidates(*store, id).total, rows_before);
  };
  expect_rejected(1, initial, 0);  // The first batch must be generation 0.
  expect_rejected(-1, initial, 0);

  ASSERT_TRUE(store->AppendGeneration(id, MakeBatch(0, 4)).ok());
  JobRecord after_zero = *store->GetJob(id);
  EXPECT_EQ(after_zero.generations_done, 0);
  EXPECT_EQ(after_zero.candidates_evaluated, 4);
  expect_rejected(0, after_zero, 4);  // Generation 0 only once.
  expect_rejected(2, after_zero, 4);

  ASSERT_TRUE(store->AppendGeneration(id, MakeBatch(1, 4, 4)).ok());
  ASSERT_TRUE(store->AppendGeneration(id, MakeBatch(2, 4, 8)).ok());
  JobRecord after_two = *store->GetJob(id);
  EXPECT_EQ(after_two.generations_done, 2);
  EXPECT_EQ(after_two.candidates_evaluated, 12);
  EXPECT_EQ(after_two.checkpoint, MakeBatch(2, 4).checkpoint);
  expect_rejected(2, after_two, 12);
  expect_rejected(4, after_two, 12);

  CandidatePage page = AllCandidates(*store, id);
  ASSERT_EQ(page.candidates.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(page.candidates[i].generation, i / 4);

  EXPECT_EQ(store->AppendGeneration("job-99", MakeBatch(0, 1)).code(), absl::StatusCode::kNotFound);
}

TEST(SqliteStoreTest, NanIsRejectedAndNothingIsStored) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  GenerationBatch batch = MakeBatch(0, 100);
  batch.candidates[57].latency_ms = std::nan("");
  absl::Status status = store->AppendGeneration(id, batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("latency_ms"));
  EXPECT_EQ(AllCandidates(*store, id).total, 0);
  EXPECT_EQ(store->GetJob(id)->checkpoint, "");

  // The job still takes generation 0, and later ids stay ascending.
  batch.candidates[57].latency_ms = 1.0;
  ASSERT_TRUE(store->AppendGeneration(id, batch).ok());
  EXPECT_EQ(AllCandidates(*store, id).total, 100);
}

TEST(SqliteStoreTest, JobLifecycle) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  EXPECT_EQ(store->MarkRunning("job-9", 1.0).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->MarkRunning(id, 100.0).ok());
  ASSERT_TRUE(store->AppendGeneration(id, MakeBatch(0, 3)).ok());
  // A resumed job is marked running again.
  ASSERT_TRUE(store->MarkRunning(id, 100.0).ok());
  EXPECT_EQ(store->GetJob(id)->state, JobState::kRunning);

  EXPECT_EQ(store->FinishJob(id, JobState::kRunning, "", 1, 1, std::nullopt).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->FinishJob(id, static_cast<JobState>(42), "", 1, 1, std::nullopt).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->FinishJob("job-9", JobState::kFailed, "", 1, 1, std::nullopt).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      store->FinishJob(id, JobState::kFailed, "predictor exploded", 200.5, 99.25, std::nullopt)
          .ok());

  JobRecord job = *store->GetJob(id);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.error, "predictor exploded");
  EXPECT_EQ(job.started_unix_s, 100.0);
  EXPECT_EQ(job.finished_unix_s, 200.5);
  EXPECT_EQ(job.elapsed_s, 99.25);
  EXPECT_EQ(job.checkpoint, MakeBatch(0, 3).checkpoint);  // Kept.

  EXPECT_EQ(store->FinishJob(id, JobState::kCancelled, "", 300, 1, std::nullopt).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->MarkRunning(id, 300).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->AppendGeneration(id, MakeBatch(1, 3, 3)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AllCandidates(*store, id).total, 3);
  ExpectJobEq(*store->GetJob(id), job);

  // A queued job can be cancelled directly.
  const std::string queued = *store->CreateJob(MakeJob());
  ASSERT_TRUE(
      store->FinishJob(queued, JobState::kCancelled, "by request", 5, 0, std::nullopt).ok());
  EXPECT_EQ(store->GetJob(queued)->state, JobState::kCancelled);
}

TEST(SqliteStoreTest, EverythingSurvivesARestart) {
  const std::string path = FreshPath();
  JobRecord running, finished, queued;
  std::vector<CandidateRecord> candidates;
  {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    const std::string running_id = *store->CreateJob(MakeJob("a", 10));
    const std::string finished_id = *store->CreateJob(MakeJob("b", 20));
    const std::string queued_id = *store->CreateJob(MakeJob("c", 30));
    ASSERT_TRUE(store->MarkRunning(running_id, 11).ok());
    for (int g = 0; g < 3; ++g) {
      GenerationBatch batch = MakeBatch(g, 10, int64_t{g} * 10);
      batch.candidates[2].accuracy.reset();
      batch.candidates[5].feasible = false;
      batch.checkpoint = std::string("\0\0binary\0checkpoint\xfe", 20) + std::to_string(g);
      ASSERT_TRUE(store->AppendGeneration(running_id, batch).ok());
    }
    ASSERT_TRUE(store->MarkRunning(finished_id, 21).ok());
    ASSERT_TRUE(store->AppendGeneration(finished_id, MakeBatch(0, 2)).ok());
    ASSERT_TRUE(store->FinishJob(finished_id, JobState::kSucceeded, "", 25, 4, std::nullopt).ok());
    TableVersionRecord table;
    table.device = "pixel";
    table.files = {{"t.yaml", kBinary}};
    ASSERT_TRUE(store->AddTableVersion(table).ok());

    running = *store->GetJob(running_id);
    finished = *store->GetJob(finished_id);
    queued = *store->GetJob(queued_id);
    candidates = AllCandidates(*store, running_id).candidates;
    EXPECT_EQ(running.checkpoint.size(), 21u);
  }  // Closes the database.

  std::unique_ptr<SqliteStore> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  ExpectJobEq(*store->GetJob(running.id), running);
  ExpectJobEq(*store->GetJob(finished.id), finished);
  ExpectJobEq(*store->GetJob(queued.id), queued);
  CandidatePage page = AllCandidates(*store, running.id);
  EXPECT_EQ(page.total, 30);
  ASSERT_EQ(page.candidates.size(), candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    EXPECT_EQ(page.candidates[i].id, candidates[i].id);
    ExpectCandidateEq(page.candidates[i], candidates[i]);
  }
  std::vector<JobRecord> unfinished = *store->ListJobs(JobState::kRunning, 0, 100);
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0].id, running.id);
  EXPECT_EQ(unfinished[0].state, JobState::kRunning);
  EXPECT_EQ(store->ListJobs(JobState::kQueued, 0, 100)->size(), 1u);
  EXPECT_EQ(store->GetTableVersion("pixel", 0)->files[0].content, kBinary);

  // The resumed job continues where it stopped; new ids follow the old ones.
  ASSERT_TRUE(store->AppendGeneration(running.id, MakeBatch(3, 1, 30)).ok());
  EXPECT_GT(AllCandidates(*store, running.id).candidates.back().id, candidates.back().id);
  EXPECT_EQ(*store->CreateJob(MakeJob()), "job-4");
}

// Candidates with spread, tied and missing metrics, some infeasible.
std::vector<CandidateRecord> OrderingCandidates() {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> value(0, 9);  // Few values: many ties.
  std::vector<CandidateRecord> candidates;
  for (int i = 0; i < 120; ++i) {
    CandidateRecord candidate;
    candidate.config_json = absl::StrCat("{\"i\":", i, "}");
    auto metric = [&](double scale) -> std::optional<double> {
      if (value(rng) == 0) return std::nullopt;
      return scale * value(rng) - scale;  // Includes negatives and zero.
    };
    candidate.accuracy = metric(0.1);
    candidate.latency_ms = metric(3);
    candidate.energy_mj = metric(0.5);
    candidate.size_mb = metric(2);
    candidate.bitops = metric(1e9);
    candidate.feasible = value(rng) < 6;
    candidates.push_back(candidate);
  }
  return candidates;
}

TEST(SqliteStoreTest, ListCandidatesOrdersFiltersAndPages) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  const std::string other = *store->CreateJob(MakeJob());
  std::vector<CandidateRecord> all = OrderingCandidates();
  // Interleave generations with another job's so that ids are not contiguous per job.
  for (int g = 0; g < 4; ++g) {
    GenerationBatch batch;
    batch.generation = g;
    batch.candidates.assign(all.begin() + int64_t{g} * 30, all.begin() + (int64_t{g} + 1) * 30);
    ASSERT_TRUE(store->AppendGeneration(id, batch).ok());
    ASSERT_TRUE(store->AppendGeneration(other, MakeBatch(g, 7)).ok());
  }
  // The stored rows with their ids, in id order.
  std::vector<CandidateRecord> stored = AllCandidates(*store, id).candidates;
  ASSERT_EQ(stored.size(), all.size());

  struct Order {
    CandidateOrder order;
    bool descending;
    std::optional<double> CandidateRecord::*metric;  // Null for id order.
  };
  const Order orders[] = {
      {CandidateOrder::kId, false, nullptr},
      {CandidateOrder::kAccuracyDesc, true, &CandidateRecord::accuracy},
      {CandidateOrder::kLatencyAsc, false, &CandidateRecord::latency_ms},
      {CandidateOrder::kEnergyAsc, false, &CandidateRecord::energy_mj},
      {CandidateOrder::kSizeAsc, false, &CandidateRecord::size_mb},
      {CandidateOrder::kBitopsAsc, false, &CandidateRecord::bitops},
  };
  const std::optional<bool> filters[] = {std::nullopt, true, false};
  for (const Order& order : orders) {
    for (const std::optional<bool>& feasible : filters) {
      SCOPED_TRACE(absl::StrCat("order ", static_cast<int>(order.order), " feasible ",
                                feasible ? static_cast<int>(*feasible) : -1));
      std::vector<CandidateRecord> expected;
      for (const CandidateRecord& c : stored) {
        if (!feasible || c.feasible == *feasible) expected.push_back(c);
      }
      std::sort(expected.begin(), expected.end(),
                [&](const CandidateRecord& a, const CandidateRecord& b) {
                  if (order.metric != nullptr) {
                    const std::optional<double>& x = a.*order.metric;
                    const std::optional<double>& y = b.*order.metric;
                    if (x.has_value() != y.has_value()) return x.has_value();  // NULL last.
                    if (x && *x != *y) return order.descending ? *x > *y : *x < *y;
                  }
                  return a.id < b.id;
                });

      // Pages of 7 reassemble the whole order.
      std::vector<int64_t> paged_ids;
      for (int64_t offset = 0;; offset += 7) {
        CandidatePage page = ListOrDie(*store, Query(id, 7, order.order, feasible, offset));
        EXPECT_EQ(page.total, static_cast<int64_t>(expected.size()));
        if (page.candidates.empty()) break;
        EXPECT_LE(page.candidates.size(), 7u);
        for (const CandidateRecord& c : page.candidates) paged_ids.push_back(c.id);
      }
      std::vector<int64_t> expected_ids;
      expected_ids.reserve(expected.size());
      for (const CandidateRecord& c : expected) expected_ids.push_back(c.id);
      EXPECT_EQ(paged_ids, expected_ids);

      CandidatePage whole = ListOrDie(*store, Query(id, 1000, order.order, feasible));
      ASSERT_EQ(whole.candidates.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        ExpectCandidateEq(whole.candidates[i], expected[i]);
      }
    }
  }

  // Past the end: no rows, the total still counts.
  CandidatePage beyond = ListOrDie(*store, Query(id, 10, CandidateOrder::kId, std::nullopt, 500));
  EXPECT_THAT(beyond.candidates, IsEmpty());
  EXPECT_EQ(beyond.total, 120);
  EXPECT_EQ(ListOrDie(*store, Query(other, 10)).total, 28);
}

TEST(SqliteStoreTest, ListCandidatesValidatesArguments) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  EXPECT_EQ(store->ListCandidates(Query("job-7", 100)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ListCandidates(Query(id, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListCandidates(Query(id, 10001)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store->ListCandidates(Query(id, 100, CandidateOrder::kId, std::nullopt, -1)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListCandidates(Query(id, 10, static_cast<CandidateOrder>(17))).status().code(),
            absl::StatusCode::kInvalidArgument);
  CandidatePage empty = ListOrDie(*store, Query(id, 10000));
  EXPECT_THAT(empty.candidates, IsEmpty());
  EXPECT_EQ(empty.total, 0);
}

// The front of accuracy against a cost: by ascending cost, every row whose accuracy beats
// all rows before it; a repeated point (the same network scored again) counts once, as its
// first stored row; infeasible rows never count.
TEST(SqliteStoreTest, FinishJobMarksTheParetoFront) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  ASSERT_TRUE(store->MarkRunning(id, 1).ok());
  struct Point {
    double latency_ms;
    double accuracy;
    bool feasible;
  };
  // Ids 1..9 in this order.
  const Point points[] = {
      {10, 0.70, true},  // 1: front (cheapest).
      {12, 0.69, true},  // 2: dominated by 1.
      {12, 0.75, true},  // 3: front.
      {15, 0.75, true},  // 4: same accuracy, costlier: dominated.
      {9, 0.99, false},  // 5: infeasible, ignored.
      {20, 0.80, true},  // 6: front.
      {20, 0.80, true},  // 7: the same point again: not repeated.
      {18, 0.78, true},  // 8: front.
      {30, 0.79, true},  // 9: dominated by 6 and 8.
  };
  GenerationBatch batch = MakeBatch(0, 0);
  for (const Point& point : points) {
    CandidateRecord candidate = MakeCandidate(static_cast<int>(batch.candidates.size()));
    candidate.latency_ms = point.latency_ms;
    candidate.accuracy = point.accuracy;
    candidate.feasible = point.feasible;
    batch.candidates.push_back(candidate);
  }
  batch.candidates_evaluated = 8;
  ASSERT_TRUE(store->AppendGeneration(id, batch).ok());
  EXPECT_EQ(
      store->FinishJob(id, JobState::kSucceeded, "", 2, 1, CandidateOrder::kAccuracyDesc).code(),
      absl::StatusCode::kInvalidArgument)
      << "the front needs a cost order";
  ASSERT_TRUE(
      store->FinishJob(id, JobState::kSucceeded, "", 2, 1, CandidateOrder::kLatencyAsc).ok());
  EXPECT_EQ(store->GetJob(id)->pareto_front_size, 4);

  CandidateQuery query = Query(id, 100);
  query.pareto_front_only = true;
  query.order = CandidateOrder::kLatencyAsc;
  CandidatePage front = ListOrDie(*store, query);
  EXPECT_EQ(front.total, 4);
  std::vector<int64_t> front_ids;
  for (const CandidateRecord& candidate : front.candidates) {
    front_ids.push_back(candidate.id);
    EXPECT_TRUE(candidate.on_pareto_front);
  }
  EXPECT_THAT(front_ids, ElementsAre(1, 3, 8, 6));

  query.order = CandidateOrder::kAccuracyDesc;
  query.limit = 2;
  query.offset = 1;
  front_ids.clear();
  for (const CandidateRecord& candidate : ListOrDie(*store, query).candidates) {
    front_ids.push_back(candidate.id);
  }
  EXPECT_THAT(front_ids, ElementsAre(8, 3));
  query.feasible = false;
  EXPECT_EQ(ListOrDie(*store, query).total, 0);

  // The flag shows in ordinary listings too.
  CandidatePage all = ListOrDie(*store, Query(id, 100));
  ASSERT_EQ(all.candidates.size(), 9u);
  EXPECT_TRUE(all.candidates[0].on_pareto_front);
  EXPECT_FALSE(all.candidates[1].on_pareto_front);
  EXPECT_FALSE(all.candidates[6].on_pareto_front);
}

// Which metrics an analytic model priced survives the round trip, for rows and the best.
TEST(SqliteStoreTest, ModelledMetricsRoundTrip) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string id = *store->CreateJob(MakeJob());
  ASSERT_TRUE(store->MarkRunning(id, 1).ok());
  GenerationBatch batch = MakeBatch(0, 2);
  batch.candidates[0].modelled = "latency_ms,energy_mj";
  batch.best = batch.candidates[0];
  ASSERT_TRUE(store->AppendGeneration(id, batch).ok());
  CandidatePage page = ListOrDie(*store, Query(id, 10));
  ASSERT_EQ(page.candidates.size(), 2u);
  EXPECT_EQ(page.candidates[0].modelled, "latency_ms,energy_mj");
  EXPECT_EQ(page.candidates[1].modelled, "");
  EXPECT_EQ(store->GetJob(id)->best->modelled, "latency_ms,energy_mj");
}

TEST(SqliteStoreTest, ListJobsNewestFirstWithStateFilter) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(store->CreateJob(MakeJob("s", i)).ok());
  for (const char* id : {"job-2", "job-5", "job-9"}) {
    ASSERT_TRUE(store->MarkRunning(id, 1).ok());
    ASSERT_TRUE(store->AppendGeneration(id, MakeBatch(0, 2)).ok());
  }
  ASSERT_TRUE(store->FinishJob("job-5", JobState::kSucceeded, "", 2, 1, std::nullopt).ok());

  auto ids = [](const std::vector<JobRecord>& jobs) {
    std::vector<std::string> result;
    result.reserve(jobs.size());
    for (const JobRecord& job : jobs) result.push_back(job.id);
    return result;
  };
  std::vector<JobRecord> all = *store->ListJobs(std::nullopt, 0, 100);
  ASSERT_EQ(all.size(), 12u);
  EXPECT_EQ(all.front().id, "job-12");  // Sorted by number, not as text.
  EXPECT_EQ(all[2].id, "job-10");
  EXPECT_EQ(all.back().id, "job-1");
  for (const JobRecord& job : all) EXPECT_EQ(job.checkpoint, "") << job.id;
  EXPECT_EQ(all[3].id, "job-9");
  EXPECT_EQ(all[3].candidates_evaluated, 2);
  EXPECT_TRUE(all[3].best.has_value());
  EXPECT_EQ(all[3].request, kBinary);

  EXPECT_THAT(ids(*store->ListJobs(std::nullopt, 3, 4)),
              ElementsAre("job-9", "job-8", "job-7", "job-6"));
  EXPECT_THAT(ids(*store->ListJobs(JobState::kRunning, 0, 100)), ElementsAre("job-9", "job-2"));
  EXPECT_THAT(ids(*store->ListJobs(JobState::kRunning, 1, 1)), ElementsAre("job-2"));
  EXPECT_THAT(ids(*store->ListJobs(JobState::kSucceeded, 0, 100)), ElementsAre("job-5"));
  EXPECT_THAT(*store->ListJobs(JobState::kFailed, 0, 100), IsEmpty());
  EXPECT_EQ(store->ListJobs(JobState::kQueued, 0, 100)->size(), 9u);
  EXPECT_THAT(*store->ListJobs(std::nullopt, 12, 5), IsEmpty());

  EXPECT_EQ(store->ListJobs(std::nullopt, -1, 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListJobs(std::nullopt, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListJobs(std::nullopt, 0, 10001).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListJobs(static_cast<JobState>(0), 0, 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListJobs(std::nullopt, 0, 10000)->size(), 12u);
}

TableVersionRecord MakeTable(const std::string& device, const std::string& tag) {
  TableVersionRecord table;
  table.device = device;
  table.version = 77;  // Ignored: the store assigns it.
  table.format = 2;
  table.entries = 1234;
  table.uploaded_unix_s = 1700000000.5;
  table.sha256 = absl::StrCat("sha-", tag);
  table.description = absl::StrCat("desc ", tag);
  table.files = {{"z_last.yaml", absl::StrCat("z", tag)},
                 {"a_first.yaml", std::string("\0bin\0", 5) + tag},
                 {"empty.yaml", ""}};
  return table;
}

TEST(SqliteStoreTest, TableVersions) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->ListDevices(), IsEmpty());
  EXPECT_EQ(*store->AddTableVersion(MakeTable("note10", "1")), 1);
  EXPECT_EQ(*store->AddTableVersion(MakeTable("note10", "2")), 2);
  EXPECT_EQ(*store->AddTableVersion(MakeTable("bitfusion", "1")), 1);
  EXPECT_EQ(*store->AddTableVersion(MakeTable("note10", "3")), 3);
  EXPECT_THAT(*store->ListDevices(), ElementsAre("bitfusion", "note10"));

  std::vector<TableVersionRecord> versions = *store->ListTableVersions("note10");
  ASSERT_EQ(versions.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const TableVersionRecord expected = MakeTable("note10", std::to_string(i + 1));
    EXPECT_EQ(versions[i].device, "note10");
    EXPECT_EQ(versions[i].version, i + 1);
    EXPECT_EQ(versions[i].format, expected.format);
    EXPECT_EQ(versions[i].entries, expected.entries);
    EXPECT_EQ(versions[i].uploaded_unix_s, expected.uploaded_unix_s);
    EXPECT_EQ(versions[i].sha256, expected.sha256);
    EXPECT_EQ(versions[i].description, expected.description);
    EXPECT_THAT(versions[i].files, IsEmpty());
  }

  for (int64_t asked : {0, 3, 2}) {
    SCOPED_TRACE(asked);
    TableVersionRecord table = *store->GetTableVersion("note10", asked);
    const int64_t version = asked == 0 ? 3 : asked;
    const TableVersionRecord expected = MakeTable("note10", std::to_string(version));
    EXPECT_EQ(table.version, version);
    EXPECT_EQ(table.sha256, expected.sha256);
    ASSERT_EQ(table.files.size(), 3u);
    for (int f = 0; f < 3; ++f) {  // In the order given.
      EXPECT_EQ(table.files[f].name, expected.files[f].name);
      EXPECT_EQ(table.files[f].content, expected.files[f].content);
    }
  }
  EXPECT_EQ(store->GetTableVersion("bitfusion", 0)->version, 1);

  absl::Status unknown_device = store->GetTableVersion("gpu", 2).status();
  EXPECT_EQ(unknown_device.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown_device.message()), HasSubstr("gpu"));
  EXPECT_THAT(std::string(unknown_device.message()), HasSubstr("2"));
  EXPECT_EQ(store->GetTableVersion("gpu", 0).status().code(), absl::StatusCode::kNotFound);
  absl::Status unknown_version = store->GetTableVersion("note10", 4).status();
  EXPECT_EQ(unknown_version.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown_version.message()), HasSubstr("note10"));
  EXPECT_THAT(std::string(unknown_version.message()), HasSubstr("4"));
  EXPECT_EQ(store->GetTableVersion("note10", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListTableVersions("gpu").status().code(), absl::StatusCode::kNotFound);

  TableVersionRecord duplicate = MakeTable("note10", "dup");
  duplicate.files.push_back({"empty.yaml", "again"});
  EXPECT_EQ(store->AddTableVersion(duplicate).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AddTableVersion(MakeTable("", "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListTableVersions("note10")->size(), 3u);
}

MeasurementRow Measurement(const std::string& config, double accuracy, const std::string& method) {
  MeasurementRow row;
  row.config_json = config;
  row.accuracy = accuracy;
  row.method = method;
  row.seconds = 1.25;
  row.seed = 0xfedcba9876543210ULL;  // Above INT64_MAX: stored by its bits.
  row.created_unix_s = 1.7e9 + 0.5;
  return row;
}

TEST(SqliteStoreTest, MeasurementsRoundTripAndSurviveARestart) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->CreateDataset({"fm", "fmnist_mbv2", "supernet v1", 1.7e9, 0},
                                    {Measurement("[1]", 0.875, "fp32"),
                                     Measurement("[1]", 0.5, "quant-from-supernet"),
                                     Measurement("[2]", 1.0, "fp32")})
                    .ok());
    ASSERT_TRUE(store->AddMeasurements("fm", {Measurement("[3]", 0.0, "fp32")}).ok());
  }
  std::unique_ptr<SqliteStore> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  const DatasetRecord dataset = *store->GetDataset("fm");
  EXPECT_EQ(dataset.space, "fmnist_mbv2");
  EXPECT_EQ(dataset.description, "supernet v1");
  EXPECT_EQ(dataset.created_unix_s, 1.7e9);
  EXPECT_EQ(dataset.records, 4);
  const std::vector<MeasurementRow> all = *store->ListMeasurements("fm", std::nullopt);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].config_json, "[1]");
  EXPECT_EQ(all[0].accuracy, 0.875);
  EXPECT_EQ(all[0].method, "fp32");
  EXPECT_EQ(all[0].seconds, 1.25);
  EXPECT_EQ(all[0].seed, 0xfedcba9876543210ULL);
  EXPECT_EQ(all[0].created_unix_s, 1.7e9 + 0.5);
  EXPECT_LT(all[0].id, all[1].id);
  EXPECT_EQ(all[3].config_json, "[3]");
  const std::vector<MeasurementRow> fp32 = *store->ListMeasurements("fm", std::string("fp32"));
  ASSERT_EQ(fp32.size(), 3u);
  EXPECT_EQ(fp32[1].config_json, "[2]");
  EXPECT_EQ(store->ListDatasets()->size(), 1u);
}

TEST(SqliteStoreTest, BadMeasurementsNameTheRowAndStoreNothing) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  // A bad row creates nothing, not even the dataset.
  EXPECT_EQ(store
                ->CreateDataset({"fm", "fmnist_mbv2", "", 0, 0},
                                {Measurement("[1]", 0.5, "fp32"), Measurement("[2]", 2, "fp32")})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetDataset("fm").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->CreateDataset({"fm", "fmnist_mbv2", "", 0, 0}, {}).ok());
  EXPECT_EQ(store->CreateDataset({"fm", "other", "", 0, 0}, {}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->CreateDataset({"", "other", "", 0, 0}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->AddMeasurements("fm", {Measurement("[1]", 0.5, "fp32")}).ok());

  const auto expect_rejected = [&](const std::vector<MeasurementRow>& rows,
                                   const std::string& message) {
    const absl::Status status = store->AddMeasurements("fm", rows);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(message));
  };
  const MeasurementRow good = Measurement("[9]", 0.5, "fp32");
  expect_rejected({good, Measurement("[2]", 1.5, "fp32")}, "measurement 1: accuracy 1.5");
  expect_rejected({good, Measurement("[2]", std::nan(""), "fp32")}, "measurement 1: accuracy");
  expect_rejected({good, Measurement("[2]", -0.1, "fp32")}, "measurement 1: accuracy");
  MeasurementRow slow = Measurement("[2]", 0.5, "fp32");
  slow.seconds = -1;
  expect_rejected({good, slow}, "measurement 1: seconds");
  expect_rejected({good, Measurement("", 0.5, "fp32")}, "measurement 1: config_json is empty");
  expect_rejected({good, Measurement("[2]", 0.5, "")}, "measurement 1: method is empty");
  expect_rejected({good, Measurement("[9]", 0.6, "fp32")}, "measurement 1: repeats");
  expect_rejected({good, Measurement("[1]", 0.6, "fp32")}, "measurement 1: dataset fm already");
  EXPECT_EQ(store->ListMeasurements("fm", std::nullopt)->size(), 1u);
  // The same config under another method is another record.
  EXPECT_TRUE(store->AddMeasurements("fm", {Measurement("[1]", 0.4, "quant-from-supernet")}).ok());
  EXPECT_EQ(store->AddMeasurements("nope", {good}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ListMeasurements("nope", std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetDataset("nope").status().code(), absl::StatusCode::kNotFound);
}

PredictorRecord Predictor(const std::string& version, bool is_default) {
  PredictorRecord predictor;
  predictor.space = "fmnist_mbv2";
  predictor.version = version;
  predictor.kind = "mlp-raw-f32";
  predictor.artifact = std::string("\0weights\xff", 9);
  predictor.metrics_json = R"({"rmse": 0.01})";
  predictor.dataset = "fm";
  predictor.created_unix_s = 1.7e9;
  predictor.is_default = is_default;
  return predictor;
}

TEST(SqliteStoreTest, PredictorsKeepOneDefaultPerSpace) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->GetDefaultPredictor("fmnist_mbv2").status().code(),
              absl::StatusCode::kNotFound);
    ASSERT_TRUE(store->AddPredictor(Predictor("v1", true)).ok());
    ASSERT_TRUE(store->AddPredictor(Predictor("v2", false)).ok());
    EXPECT_EQ(store->AddPredictor(Predictor("v1", false)).code(), absl::StatusCode::kAlreadyExists);
    PredictorRecord nameless = Predictor("", false);
    EXPECT_EQ(store->AddPredictor(nameless).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store->GetDefaultPredictor("fmnist_mbv2")->version, "v1");
    ASSERT_TRUE(store->SetDefaultPredictor("fmnist_mbv2", "v2").ok());
    EXPECT_EQ(store->SetDefaultPredictor("fmnist_mbv2", "v9").code(), absl::StatusCode::kNotFound);
    // A new default replaces the old one in the same transaction.
    ASSERT_TRUE(store->AddPredictor(Predictor("v3", true)).ok());
    ASSERT_TRUE(store->SetDefaultPredictor("fmnist_mbv2", "v2").ok());
  }
  std::unique_ptr<SqliteStore> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  const PredictorRecord current = *store->GetDefaultPredictor("fmnist_mbv2");
  EXPECT_EQ(current.version, "v2");
  EXPECT_EQ(current.artifact, std::string("\0weights\xff", 9));
  EXPECT_EQ(current.kind, "mlp-raw-f32");
  EXPECT_EQ(current.metrics_json, R"({"rmse": 0.01})");
  EXPECT_EQ(current.dataset, "fm");
  const std::vector<PredictorRecord> listed = *store->ListPredictors("fmnist_mbv2");
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].version, "v1");
  EXPECT_FALSE(listed[0].is_default);
  EXPECT_TRUE(listed[1].is_default);
  EXPECT_TRUE(listed[1].artifact.empty()) << "listings leave the artifacts out";
  EXPECT_EQ(store->GetPredictor("fmnist_mbv2", "v3")->version, "v3");
  EXPECT_EQ(store->GetPredictor("fmnist_mbv2", "v7").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->ListPredictors("other")->empty());
}

TEST(SqliteStoreTest, RejectsASchemaNewerThanTheBuild) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeJob()).ok());
  }
  const int newer = SqliteStore::SchemaVersion() + 1;
  ExecOrDie(path, absl::StrCat("PRAGMA user_version = ", newer));
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr(absl::StrCat("database schema version ", newer,
                                     " is newer than this build supports (",
                                     SqliteStore::SchemaVersion(), ")")));
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), newer);  // Left alone.
}

TEST(SqliteStoreTest, ReopeningAnUpToDateDatabaseAppliesNothing) {
  const std::string path = FreshPath();
  {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeJob()).ok());
  }
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), SqliteStore::SchemaVersion());
  const int64_t schema_objects = QueryInt(path, "SELECT COUNT(*) FROM sqlite_master");
  const int64_t schema_cookie = QueryInt(path, "PRAGMA schema_version");
  EXPECT_GT(schema_objects, 4);
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<SqliteStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->GetJob("job-1")->space, "ofa_mbv3");
  }
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), SqliteStore::SchemaVersion());
  EXPECT_EQ(QueryInt(path, "SELECT COUNT(*) FROM sqlite_master"), schema_objects);
  // The schema cookie changes with every schema change: none happened.
  EXPECT_EQ(QueryInt(path, "PRAGMA schema_version"), schema_cookie);
  EXPECT_EQ(QueryInt(path, "SELECT COUNT(*) FROM jobs"), 1);
  EXPECT_EQ(QueryText(path, "PRAGMA journal_mode"), "wal");
}

TEST(SqliteStoreTest, ConcurrentWritersAndReaders) {
  std::unique_ptr<SqliteStore> store = OpenOrDie(FreshPath());
  ASSERT_NE(store, nullptr);
  const std::string a = *store->CreateJob(MakeJob());
  const std::string b = *store->CreateJob(MakeJob());
  constexpr int kGenerations = 40;
  constexpr int kPerGeneration = 25;
  std::atomic<int> writers_done{0};
  std::atomic<int> errors{0};
  auto write = [&](const std::string& id) {
    if (!store->MarkRunning(id, 1).ok()) ++errors;
    for (int g = 0; g < kGenerations; ++g) {
      absl::Status status =
          store->AppendGeneration(id, MakeBatch(g, kPerGeneration, int64_t{g} * kPerGeneration));
      if (!status.ok()) {
        ADD_FAILURE() << status;
        ++errors;
      }
    }
    ++writers_done;
  };
  auto read = [&] {
    while (writers_done.load() < 2) {
      for (const std::string& id : {a, b}) {
        absl::StatusOr<JobRecord> job = store->GetJob(id);
        absl::StatusOr<CandidatePage> page =
            store->ListCandidates(Query(id, 50, CandidateOrder::kAccuracyDesc, true));
        absl::StatusOr<std::vector<JobRecord>> jobs = store->ListJobs(std::nullopt, 0, 10);
        if (!job.ok() || !page.ok() || !jobs.ok()) {
          ADD_FAILURE() << job.status() << page.status() << jobs.status();
          ++errors;
          continue;
        }
        // Progress and rows are written together, and the page was read after the job.
        if (page->total < job->candidates_evaluated) {
          ADD_FAILURE() << "progress ahead of rows";
          ++errors;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(write, a);
  threads.emplace_back(write, b);
  threads.emplace_back(read);
  threads.emplace_back(read);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  for (const std::string& id : {a, b}) {
    JobRecord job = *store->GetJob(id);
    EXPECT_EQ(job.generations_done, kGenerations - 1);
    EXPECT_EQ(job.candidates_evaluated, kGenerations * kPerGeneration);
    EXPECT_EQ(AllCandidates(*store, id).total, kGenerations * kPerGeneration);
  }
}

TEST(SqliteStoreTest, TwoStoresOnOneFileShareIt) {
  const std::string path = FreshPath();
  std::unique_ptr<SqliteStore> first = OpenOrDie(path);
  std::unique_ptr<SqliteStore> second = OpenOrDie(path);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(*first->CreateJob(MakeJob()), "job-1");
  EXPECT_EQ(*second->CreateJob(MakeJob()), "job-2");
  ASSERT_TRUE(first->AppendGeneration("job-2", MakeBatch(0, 3)).ok());
  EXPECT_EQ(second->GetJob("job-2")->candidates_evaluated, 3);
  EXPECT_EQ(second->AppendGeneration("job-2", MakeBatch(0, 3)).code(),
            absl::StatusCode::kFailedPrecondition);
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

TEST(SqliteStoreTest, TrainingJobsEndWithTheirPredictorInOneTransaction) {
  const std::string path = FreshPath();
  std::unique_ptr<SqliteStore> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AddPredictor(Predictor("v1", true)).ok());
  TrainingJobRecord job;
  job.space = "fmnist_mbv2";
  job.dataset = "fm";
  job.request = std::string("\x08\x01", 2);
  job.created_unix_s = 1.7e9;
  absl::StatusOr<std::string> first = store->CreateTrainingJob(job);
  absl::StatusOr<std::string> second = store->CreateTrainingJob(job);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, "train-1");
  EXPECT_EQ(*second, "train-2");

  ASSERT_TRUE(store->MarkTrainingRunning(*first, 1.7e9 + 1).ok());
  ASSERT_TRUE(store->UpdateTrainingProgress(*first, "quantized", 7, 400, 0.0021).ok());
  absl::StatusOr<TrainingJobRecord> running = store->GetTrainingJob(*first);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, JobState::kRunning);
  EXPECT_EQ(running->stage, "quantized");
  EXPECT_EQ(running->epoch, 7);
  EXPECT_EQ(running->max_epochs, 400);
  EXPECT_DOUBLE_EQ(running->validation_rmse, 0.0021);
  EXPECT_EQ(running->request, job.request);

  // A failed job stores no predictor: v1 stays the default.
  ASSERT_TRUE(
      store->FinishTrainingJob(*second, JobState::kFailed, "diverged", 1.7e9 + 2, nullptr).ok());
  PredictorRecord trained = Predictor("v2", true);
  ASSERT_TRUE(store->FinishTrainingJob(*first, JobState::kSucceeded, "", 1.7e9 + 3, &trained).ok());
  absl::StatusOr<PredictorRecord> default_predictor = store->GetDefaultPredictor("fmnist_mbv2");
  ASSERT_TRUE(default_predictor.ok());
  EXPECT_EQ(default_predictor->version, "v2");
  absl::StatusOr<TrainingJobRecord> done = store->GetTrainingJob(*first);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->predictor_version, "v2");
  EXPECT_EQ(done->metrics_json, trained.metrics_json);

  // Ended jobs take no more progress and cannot end twice.
  EXPECT_EQ(store->UpdateTrainingProgress(*first, "quantized", 8, 400, 0.002).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->FinishTrainingJob(*first, JobState::kFailed, "", 0, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->MarkTrainingRunning(*second, 0).code(), absl::StatusCode::kFailedPrecondition);

  // A job that trains a predictor already stored (same content, same version) succeeds and
  // makes it the default without storing it twice.
  absl::StatusOr<std::string> third = store->CreateTrainingJob(job);
  ASSERT_TRUE(third.ok());
  PredictorRecord again = Predictor("v1", true);
  ASSERT_TRUE(store->FinishTrainingJob(*third, JobState::kSucceeded, "", 1.7e9 + 4, &again).ok());
  default_predictor = store->GetDefaultPredictor("fmnist_mbv2");
  ASSERT_TRUE(default_predictor.ok());
  EXPECT_EQ(default_predictor->version, "v1");
  absl::StatusOr<std::vector<PredictorRecord>> predictors = store->ListPredictors("fmnist_mbv2");
  ASSERT_TRUE(predictors.ok());
  EXPECT_EQ(predictors->size(), 2u);

  ASSERT_TRUE(store->ClearDefaultPredictor("fmnist_mbv2").ok());
  EXPECT_EQ(store->GetDefaultPredictor("fmnist_mbv2").status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<TrainingJobRecord>> unfinished =
      store->ListTrainingJobs(/*unfinished_only=*/true, 0, 10);
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  absl::StatusOr<std::vector<TrainingJobRecord>> all = store->ListTrainingJobs(false, 0, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, "train-3");  // Newest first.
  EXPECT_EQ(store->GetTrainingJob("train-9").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace apq::server
