#include "server/store/store_testing.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace apq::server::store_testing {

namespace {

// A new, empty schema in the database at `url`, and the url whose connections use it.
absl::StatusOr<std::string> FreshPostgresSchema(const std::string& url) {
  static std::atomic<int> next_schema{0};
  const std::string schema = absl::StrCat("apq_test_", getpid(), "_", next_schema++);
  try {
    pqxx::connection connection(url);
    pqxx::nontransaction transaction(connection);
    transaction.exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema, " CASCADE"));
    transaction.exec(absl::StrCat("CREATE SCHEMA ", schema));
  } catch (const std::exception& error) {
    return absl::UnavailableError(absl::StrCat("creating schema ", schema, ": ", error.what()));
  }
  return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?", "options=-csearch_path%3D",
                      schema);
}

}  // namespace

std::string PostgresTestUrl() {
  const char* url = std::getenv("APQ_TEST_POSTGRES_URL");
  return url != nullptr ? url : "";
}

absl::StatusOr<std::unique_ptr<Store>> OpenFreshPostgresStore(int connections) {
  const std::string url = PostgresTestUrl();
  if (url.empty()) return absl::FailedPreconditionError("APQ_TEST_POSTGRES_URL is not set");
  ASSIGN_OR_RETURN(std::string dsn, FreshPostgresSchema(url));
  PostgresStore::Options options;
  options.dsn = std::move(dsn);
  options.connections = connections;
  return PostgresStore::Open(options);
}

std::vector<Backend> Backends() {
  std::vector<Backend> backends = {
      {"Sqlite", [] { return SqliteStore::Open({FreshPath()}); }},
      {"Memory", []() -> absl::StatusOr<std::unique_ptr<Store>> { return NewMemoryStore(); }},
  };
  // A PostgreSQL server is there only in postgres_store_conformance_test (which starts one).
  if (!PostgresTestUrl().empty()) {
    backends.push_back({"Postgres", [] { return OpenFreshPostgresStore(4); }});
  }
  return backends;
}

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) { return info.param.name; }

const std::string kBinary("req\0with\0NULs\xff\x01", 15);

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string FreshPath(const std::string& suffix) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  // Parameterized names hold '/'.
  std::string path = absl::StrCat(
      TempDir(), "/",
      absl::StrReplaceAll(absl::StrCat(info->test_suite_name(), "_", info->name()), {{"/", "_"}}),
      suffix, ".db");
  for (const char* extension : {"", "-wal", "-shm"}) std::remove((path + extension).c_str());
  return path;
}

JobRecord MakeJob(const std::string& space, double created) {
  JobRecord job;
  job.space = space;
  job.device = "note10";
  job.table_version = 3;
  job.predictor_version = "v2";
  job.request = kBinary;
  job.created_unix_s = created;
  return job;
}

CandidateRecord MakeCandidate(int i, bool feasible) {
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

GenerationBatch MakeBatch(int generation, int count, int64_t evaluated_before) {
  GenerationBatch batch;
  batch.first_generation = generation;
  batch.last_generation = generation;
  for (int i = 0; i < count; ++i) {
    batch.candidates.push_back(MakeCandidate(generation * 1000 + i));
    batch.candidates.back().generation = generation;
  }
  batch.candidates_evaluated = evaluated_before + count;
  if (count > 0) {
    batch.best = batch.candidates.front();
    batch.best->generation = generation;
    batch.best_batch_index = 0;
  }
  batch.checkpoint = absl::StrCat(std::string("ck\0pt", 5), generation);
  batch.elapsed_s = 1.5 * (generation + 1);
  return batch;
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

ArtifactRecord Artifact(const std::string& kind, const std::string& key,
                        const std::string& job_id) {
  ArtifactRecord artifact;
  artifact.kind = kind;
  artifact.key = key;
  artifact.job_id = job_id;
  artifact.space = "fmnist_mbv2";
  artifact.created_unix_s = 1700000000.125;
  artifact.provenance =
      absl::StrCat("{\"kind\": \"", kind, "\", \"calibration\": \"\xce\xbb-set\"}");
  artifact.content_type = "application/octet-stream";
  artifact.bytes = absl::StrCat(std::string("\0blob\0", 6), kind, std::string(1, '\0'), key);
  artifact.size_bytes = static_cast<int64_t>(artifact.bytes.size());
  return artifact;
}

void ExpectArtifactEq(const ArtifactRecord& actual, const ArtifactRecord& expected) {
  EXPECT_EQ(actual.kind, expected.kind);
  EXPECT_EQ(actual.key, expected.key);
  EXPECT_EQ(actual.job_id, expected.job_id);
  EXPECT_EQ(actual.space, expected.space);
  EXPECT_EQ(actual.created_unix_s, expected.created_unix_s);
  EXPECT_EQ(actual.provenance, expected.provenance);
  EXPECT_EQ(actual.content_type, expected.content_type);
  EXPECT_EQ(actual.bytes, expected.bytes);
  EXPECT_EQ(actual.size_bytes, expected.size_bytes);
}

void ExpectCandidateEq(const CandidateRecord& actual, const CandidateRecord& expected) {
  EXPECT_EQ(actual.generation, expected.generation);
  EXPECT_EQ(actual.times_seen, expected.times_seen);
  EXPECT_EQ(actual.config_json, expected.config_json);
  EXPECT_EQ(actual.accuracy, expected.accuracy);
  EXPECT_EQ(actual.latency_ms, expected.latency_ms);
  EXPECT_EQ(actual.energy_mj, expected.energy_mj);
  EXPECT_EQ(actual.size_mb, expected.size_mb);
  EXPECT_EQ(actual.bitops, expected.bitops);
  EXPECT_EQ(actual.feasible, expected.feasible);
  EXPECT_EQ(actual.modelled, expected.modelled);
  ASSERT_EQ(actual.measured.has_value(), expected.measured.has_value());
  if (actual.measured) ExpectMeasurementEq(*actual.measured, *expected.measured);
}

void ExpectMeasurementEq(const CandidateMeasurement& actual, const CandidateMeasurement& expected) {
  EXPECT_EQ(actual.accuracy, expected.accuracy);
  EXPECT_EQ(actual.method, expected.method);
  EXPECT_EQ(actual.split, expected.split);
  EXPECT_EQ(actual.seconds, expected.seconds);
}

CandidateMeasurement MakeMeasurement(double accuracy) {
  CandidateMeasurement measurement;
  measurement.accuracy = accuracy;
  measurement.method = "quant-from-supernet";
  measurement.split = "validation";
  measurement.seconds = 0.75;
  return measurement;
}

void ExpectJobEq(const JobRecord& actual, const JobRecord& expected, bool with_checkpoint) {
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
  EXPECT_EQ(actual.rejected_draws, expected.rejected_draws);
  EXPECT_EQ(actual.sweep_id, expected.sweep_id);
  EXPECT_EQ(actual.owner, expected.owner);
  EXPECT_EQ(actual.engine_metrics, expected.engine_metrics);
  ASSERT_EQ(actual.best.has_value(), expected.best.has_value());
  if (actual.best) {
    EXPECT_EQ(actual.best->id, expected.best->id);
    ExpectCandidateEq(*actual.best, *expected.best);
  }
  EXPECT_EQ(actual.created_unix_s, expected.created_unix_s);
  EXPECT_EQ(actual.started_unix_s, expected.started_unix_s);
  EXPECT_EQ(actual.finished_unix_s, expected.finished_unix_s);
  EXPECT_EQ(actual.elapsed_s, expected.elapsed_s);
  EXPECT_EQ(actual.pareto_front_size, expected.pareto_front_size);
  EXPECT_EQ(actual.stage, expected.stage);
  EXPECT_EQ(actual.verification_finalists, expected.verification_finalists);
  EXPECT_EQ(actual.verification_measured, expected.verification_measured);
  ASSERT_EQ(actual.verified_best.has_value(), expected.verified_best.has_value());
  if (actual.verified_best) {
    EXPECT_EQ(actual.verified_best->id, expected.verified_best->id);
    ExpectCandidateEq(*actual.verified_best, *expected.verified_best);
  }
  if (with_checkpoint) {
    EXPECT_EQ(actual.checkpoint, expected.checkpoint);
  }
}

CandidateQuery Query(const std::string& job_id, int limit, CandidateOrder order,
                     std::optional<bool> feasible, int64_t offset) {
  CandidateQuery query;
  query.job_id = job_id;
  query.order = order;
  query.feasible = feasible;
  query.offset = offset;
  query.limit = limit;
  return query;
}

CandidatePage ListOrDie(JobStore& jobs, const CandidateQuery& query) {
  absl::StatusOr<CandidatePage> page = jobs.ListCandidates(query);
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? *std::move(page) : CandidatePage{};
}

CandidatePage AllCandidates(JobStore& jobs, const std::string& job_id) {
  return ListOrDie(jobs, Query(job_id, kMaxPageSize));
}

}  // namespace apq::server::store_testing
