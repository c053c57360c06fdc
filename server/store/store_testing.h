// Records and checks shared by the store tests.
#ifndef APQ_SERVER_STORE_STORE_TESTING_H_
#define APQ_SERVER_STORE_STORE_TESTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/store/store.h"

namespace apq::server::store_testing {

struct Backend {
  std::string name;
  // A new, empty store for the running test.
  std::function<absl::StatusOr<std::unique_ptr<Store>>()> open;
};

// Every store backend: the tests of the contracts run against each. A new backend is one
// more entry.
std::vector<Backend> Backends();
// The PostgreSQL server of the running test (APQ_TEST_POSTGRES_URL, set by the tests that
// start one), or "" without one.
std::string PostgresTestUrl();
// A PostgresStore over a new, empty schema of that server.
absl::StatusOr<std::unique_ptr<Store>> OpenFreshPostgresStore(int connections);

// The backend's name, for test names.
std::string BackendName(const ::testing::TestParamInfo<Backend>& info);

// 15 bytes: embedded NULs and bytes that are not UTF-8.
extern const std::string kBinary;

// A database path of the running test in the test's temporary folder, with no file there.
std::string FreshPath(const std::string& suffix = "");
std::string TempDir();

JobRecord MakeJob(const std::string& space = "ofa_mbv3", double created = 1700000000.25);
// A feasible-or-not candidate whose every metric depends on `i`.
CandidateRecord MakeCandidate(int i, bool feasible = true);
// `count` distinct candidates of `generation` (seen once each; distinct from those of every
// other generation); the first one is the best (best_batch_index 0).
GenerationBatch MakeBatch(int generation, int count, int64_t evaluated_before = 0);
TableVersionRecord MakeTable(const std::string& device, const std::string& tag);
MeasurementRow Measurement(const std::string& config, double accuracy, const std::string& method);
PredictorRecord Predictor(const std::string& version, bool is_default);
// An artifact of `job_id` (empty: shared) whose bytes (with embedded NULs) and provenance
// depend on its kind and key.
ArtifactRecord Artifact(const std::string& kind, const std::string& key,
                        const std::string& job_id = "");
// Compares every field, the bytes included.
void ExpectArtifactEq(const ArtifactRecord& actual, const ArtifactRecord& expected);

// A finalist's measurement of `accuracy`.
CandidateMeasurement MakeMeasurement(double accuracy);

// Compares the stored fields (not the id or the front flag).
void ExpectCandidateEq(const CandidateRecord& actual, const CandidateRecord& expected);
void ExpectMeasurementEq(const CandidateMeasurement& actual, const CandidateMeasurement& expected);
void ExpectJobEq(const JobRecord& actual, const JobRecord& expected, bool with_checkpoint = true);

CandidateQuery Query(const std::string& job_id, int limit,
                     CandidateOrder order = CandidateOrder::kId,
                     std::optional<bool> feasible = std::nullopt, int64_t offset = 0);
CandidatePage ListOrDie(JobStore& jobs, const CandidateQuery& query);
// Every candidate of the job in id order.
CandidatePage AllCandidates(JobStore& jobs, const std::string& job_id);

}  // namespace apq::server::store_testing

#endif  // APQ_SERVER_STORE_STORE_TESTING_H_
