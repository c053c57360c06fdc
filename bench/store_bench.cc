// Times the SQLite store on the write and read pattern of one full search: AppendGeneration
// of `generations` x `candidates` rows (one transaction each), then ListCandidates pages over
// that job. Uses a fresh file in a temporary directory and removes it afterwards.
//
// Usage: store_bench [generations=500] [candidates_per_generation=100]
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"

namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A config of the size and shape of an OFA MobileNetV3 one with quantization bits.
std::string RandomConfig(std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(0, 2);
  std::string json = "{\"ks\":[";
  for (int i = 0; i < 20; ++i) absl::StrAppend(&json, i ? "," : "", 3 + 2 * pick(rng));
  json += "],\"e\":[";
  for (int i = 0; i < 20; ++i) absl::StrAppend(&json, i ? "," : "", 3 + pick(rng) + pick(rng));
  json += "],\"d\":[";
  for (int i = 0; i < 5; ++i) absl::StrAppend(&json, i ? "," : "", 2 + pick(rng));
  json += "],\"w_bits\":[";
  for (int i = 0; i < 20; ++i) absl::StrAppend(&json, i ? "," : "", 4 + 2 * pick(rng));
  json += "],\"r\":224}";
  return json;
}

void Die(const absl::Status& status, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

// Mean milliseconds of `runs` calls of `body`.
double TimeMean(int runs, const std::function<void()>& body) {
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < runs; ++i) body();
  return MillisSince(start) / runs;
}

}  // namespace

int main(int argc, char** argv) {
  using apq::server::CandidateOrder;
  using apq::server::CandidatePage;
  using apq::server::CandidateQuery;
  using apq::server::CandidateRecord;
  using apq::server::GenerationBatch;
  using apq::server::SqliteStore;

  const int generations = argc > 1 ? std::atoi(argv[1]) : 500;
  const int per_generation = argc > 2 ? std::atoi(argv[2]) : 100;
  if (generations < 1 || per_generation < 1) {
    std::fprintf(stderr, "usage: %s [generations>=1] [candidates_per_generation>=1]\n", argv[0]);
    return 2;
  }

  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/store_bench.XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string path = dir + "/bench.db";

  std::mt19937 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::string job_id;
  double append_total_ms = 0;
  std::vector<double> append_ms;
  {
    SqliteStore::Options options;
    options.path = path;
    Clock::time_point start = Clock::now();
    absl::StatusOr<std::unique_ptr<apq::server::Store>> opened = SqliteStore::Open(options);
    if (!opened.ok()) Die(opened.status(), "open");
    const double open_ms = MillisSince(start);
    apq::server::JobStore& store = (*opened)->jobs();

    apq::server::JobRecord job;
    job.space = "ofa_mbv3";
    job.device = "note10";
    job.table_version = 1;
    job.predictor_version = "v1";
    job.request = std::string(300, 'r');
    absl::StatusOr<std::string> id = store.CreateJob(job);
    if (!id.ok()) Die(id.status(), "CreateJob");
    job_id = *id;
    if (absl::Status s = store.MarkRunning(job_id, 1); !s.ok()) Die(s, "MarkRunning");

    // Batches are built before timing so that only the store is measured.
    std::vector<GenerationBatch> batches(generations);
    std::optional<CandidateRecord> best;
    int64_t evaluated = 0;
    for (int g = 0; g < generations; ++g) {
      GenerationBatch& batch = batches[g];
      batch.first_generation = g;
      batch.last_generation = g;
      for (int i = 0; i < per_generation; ++i) {
        CandidateRecord c;
        c.generation = g;
        c.config_json = RandomConfig(rng);
        c.feasible = unit(rng) < 0.7;
        // As the job manager stores them: no accuracy for a rejected candidate.
        if (c.feasible) c.accuracy = 0.70 + 0.08 * unit(rng);
        c.latency_ms = 10 + 30 * unit(rng);
        c.energy_mj = 5 + 20 * unit(rng);
        if (c.feasible && (!best || *c.accuracy > *best->accuracy)) {
          best = c;
          batch.best_batch_index = i;  // As the job manager names a best bred now.
        }
        batch.candidates.push_back(std::move(c));
      }
      evaluated += per_generation;
      batch.candidates_evaluated = evaluated;
      batch.best = best;
      batch.checkpoint = std::string(size_t{16} * 1024, static_cast<char>(g));  // Engine state.
      batch.elapsed_s = g;
    }

    append_ms.reserve(generations);
    for (const GenerationBatch& batch : batches) {
      start = Clock::now();
      absl::Status status = store.AppendGenerations(job_id, batch).status();
      append_ms.push_back(MillisSince(start));
      if (!status.ok()) Die(status, "AppendGenerations");
    }
    for (double ms : append_ms) append_total_ms += ms;
    const int64_t rows = static_cast<int64_t>(generations) * per_generation;
    std::vector<double> sorted = append_ms;
    std::sort(sorted.begin(), sorted.end());
    auto percentile = [&](double p) {
      return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
    };
    std::printf("open (create + migrate): %.2f ms\n", open_ms);
    std::printf("AppendGeneration: %d generations x %d candidates = %lld rows in %.1f ms\n",
                generations, per_generation, static_cast<long long>(rows), append_total_ms);
    std::printf("  %.0f rows/s; per generation mean %.3f ms, p50 %.3f, p99 %.3f, max %.3f ms\n",
                rows / (append_total_ms / 1000), append_total_ms / generations, percentile(0.5),
                percentile(0.99), sorted.back());

    auto query = [&](CandidateOrder order, std::optional<bool> feasible, int64_t offset) {
      CandidateQuery q;
      q.job_id = job_id;
      q.order = order;
      q.feasible = feasible;
      q.offset = offset;
      q.limit = 100;
      return q;
    };
    struct Case {
      const char* name;
      CandidateQuery query;
    };
    const Case cases[] = {
        {"accuracy desc, first page", query(CandidateOrder::kAccuracyDesc, std::nullopt, 0)},
        {"accuracy desc, feasible, first page", query(CandidateOrder::kAccuracyDesc, true, 0)},
        {"accuracy desc, page at offset rows/2",
         query(CandidateOrder::kAccuracyDesc, std::nullopt, rows / 2)},
        {"latency asc, first page", query(CandidateOrder::kLatencyAsc, std::nullopt, 0)},
        {"id order, first page", query(CandidateOrder::kId, std::nullopt, 0)},
    };
    std::printf("ListCandidates (page of 100, total counted), mean of 200 calls:\n");
    for (const Case& c : cases) {
      int64_t total = 0;
      size_t size = 0;
      const double ms = TimeMean(200, [&] {
        absl::StatusOr<CandidatePage> page = store.ListCandidates(c.query);
        if (!page.ok()) Die(page.status(), "ListCandidates");
        total = page->total;
        size = page->candidates.size();
      });
      std::printf("  %-38s %.3f ms (%zu rows of %lld)\n", c.name, ms, size,
                  static_cast<long long>(total));
    }
    const double get_ms = TimeMean(200, [&] {
      if (!store.GetJob(job_id).ok()) Die(absl::InternalError("GetJob"), "GetJob");
    });
    std::printf("GetJob (with a 16 KiB checkpoint): %.3f ms\n", get_ms);
  }  // Closes the store, checkpointing the WAL into the file.

  struct stat info;
  if (stat(path.c_str(), &info) == 0) {
    std::printf("database file: %.1f MiB\n", info.st_size / (1024.0 * 1024.0));
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  rmdir(dir.c_str());
  return 0;
}
