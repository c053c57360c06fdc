// Times the SQLite store on the write pattern of one real search, in the candidate layout
// before schema 8 and in the current one, interleaved in one run:
//
//   old   schema 7: a row per scored child and per kept rejected draw, six indexes on the
//         candidates, a transaction per generation (the write path before schema 8, replayed
//         here with its own SQL);
//   step  schema 8: a row per distinct network with its count, one index, a transaction per
//         generation (apqd --commit_interval_ms 0);
//   group schema 8 with group commits as apqd makes them: the first generation at once, then
//         one transaction whenever the commit interval has passed since the last, by the
//         times the generations arrived in the recorded search, and the rest at the end.
//
// The pattern is a real search's: OFA's tutorial search (ofa_mbv3, Note10, latency <= 25 ms,
// OFA's predictor) is run once in process at the reference settings and its step reports
// (children, rejected draws, best, checkpoint, arrival time) are kept. Each run then writes
// them to a fresh file as a job does, from the reports: turning networks into rows, storing
// the generations, reading the feasible rows back for the Pareto front and ending the job
// with it. Then it times a few ListCandidates pages of the ended job (sorted when asked in
// schema 8), closes the file (checkpointing the WAL) and measures it.
//
// With --postgres URL, the schema-8 layouts also run on the PostgreSQL store (a new schema of
// that database per run; COPY for new rows), interleaved with the SQLite ones:
//
//   bazel run //bench:store_bench -- [--rounds 5] [--commit_interval_ms 250]
//       [--population 100] [--generations 500] [--seed 1] [--dir /tmp] [--data_dir data]
//       [--postgres postgresql://user@host:port/database]
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/ofa_reference_search.h"
#include "search/engine.h"
#include "search/evolution_engine.h"
#include "search/pareto.h"
#include "server/pending_steps.h"
#include "server/store/postgres_store.h"
#include "server/store/records.h"
#include "server/store/sqlite_database.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"

namespace {

using apq::search::Individual;
using apq::server::CandidateFromIndividual;
using apq::server::CandidateOrder;
using apq::server::CandidatePage;
using apq::server::CandidateQuery;
using apq::server::CandidateRecord;
using apq::server::GenerationBatch;
using apq::server::JobState;
using apq::server::SqliteDatabase;
using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void Die(const absl::Status& status, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

// One step of the recorded search, owning what its StepReport pointed at.
struct RecordedStep {
  int step = 0;
  std::vector<Individual> scored;
  std::vector<Individual> rejected;  // The engine's sample (the first population_size).
  int64_t rejected_total = 0;
  int64_t candidates_evaluated = 0;
  std::optional<Individual> best;
  int best_index = -1;
  std::string checkpoint;
  bool final_step = false;
  double arrived_s = 0;  // Since the search started.

  apq::search::StepReport Report() const {
    apq::search::StepReport report;
    report.step = step;
    report.scored = scored;
    report.rejected = rejected;
    report.rejected_total = rejected_total;
    report.candidates_evaluated = candidates_evaluated;
    report.best = best ? &*best : nullptr;
    report.best_index_in_step = best_index;
    report.write_checkpoint = [this] { return checkpoint; };
    report.final_step = final_step;
    return report;
  }
};

struct Recording {
  std::vector<RecordedStep> steps;
  double search_s = 0;
  int64_t children = 0;
  int64_t rejected_draws = 0;
  int64_t rejected_kept = 0;  // What the old layout stored of them.
};

Recording RecordSearch(const apq::bench::OfaReferenceSearch& reference, int population,
                       int generations, uint64_t seed) {
  std::unique_ptr<apq::search::Engine> engine = apq::search::NewEvolutionEngine();
  absl::StatusOr<apq::search::EngineOptions> options = apq::search::ResolveOptions(
      *engine, {{"population_size", int64_t{population}}, {"generations", int64_t{generations}}},
      "");
  if (!options.ok()) Die(options.status(), "options");
  apq::search::SearchProblem problem;
  problem.space = reference.space.get();
  problem.cost_model = reference.cost_model.get();
  problem.predictor = reference.predictor.get();
  problem.budgets = reference.budgets;
  Recording recording;
  const Clock::time_point start = Clock::now();
  const auto on_step = [&](const apq::search::StepReport& report) {
    RecordedStep step;
    step.step = report.step;
    step.scored.assign(report.scored.begin(), report.scored.end());
    step.rejected.assign(report.rejected.begin(), report.rejected.end());
    step.rejected_total = report.rejected_total;
    step.candidates_evaluated = report.candidates_evaluated;
    if (report.best != nullptr) step.best = *report.best;
    step.best_index = report.best_index_in_step;
    step.checkpoint = report.write_checkpoint();
    step.final_step = report.final_step;
    step.arrived_s = MillisSince(start) / 1000;
    recording.children += static_cast<int64_t>(step.scored.size());
    recording.rejected_draws += step.rejected_total;
    recording.rejected_kept += static_cast<int64_t>(step.rejected.size());
    recording.steps.push_back(std::move(step));
    return absl::OkStatus();
  };
  absl::StatusOr<apq::search::EngineResult> result =
      engine->Run(problem, *options, seed, on_step, nullptr, "");
  if (!result.ok()) Die(result.status(), "search");
  recording.search_s = MillisSince(start) / 1000;
  return recording;
}

// What one run of a layout measured.
struct Outcome {
  double write_ms = 0;     // Rows, generations, the front and the job's end.
  int64_t rows = 0;        // Candidate rows the job holds.
  int64_t row_writes = 0;  // Row inserts and count updates.
  int64_t transactions = 0;
  std::vector<double> list_ms;  // Per ListCandidates case (schema 8 only).
  double file_mib = 0;
};

double FileMib(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 ? info.st_size / (1024.0 * 1024.0) : -1;
}

void RemoveDatabase(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

// The ids of the Pareto front (latency against accuracy) of feasible rows given in id order.
std::vector<int64_t> FrontIds(
    const std::vector<std::pair<int64_t, apq::search::FrontPoint>>& rows) {
  std::vector<apq::search::FrontPoint> points;
  points.reserve(rows.size());
  for (const auto& row : rows) points.push_back(row.second);
  std::vector<int64_t> front;
  for (const size_t index : apq::search::ParetoFront(points)) front.push_back(rows[index].first);
  return front;
}

// The write path before schema 8, with its SQL, on a file created at schema 7.
Outcome WriteOldLayout(const std::string& path, const Recording& recording,
                       const apq::oface::SearchSpace& space) {
  using Statement = SqliteDatabase::Statement;
  Outcome outcome;
  {
    absl::StatusOr<std::unique_ptr<SqliteDatabase>> opened = SqliteDatabase::Open(path, 5000, 7);
    if (!opened.ok()) Die(opened.status(), "open schema 7");
    SqliteDatabase& db = **opened;
    absl::MutexLock lock(&db.mutex());
    const std::string job_id = "job-1";
    if (absl::Status created =
            db.Exec("INSERT INTO jobs (id, seq, space, device, table_version, predictor_version, "
                    "request, state, created_unix_s) VALUES ('job-1', 1, 'ofa_mbv3', 'note10', 1, "
                    "'v1', x'00', 2, 1)",
                    "creating the job");
        !created.ok()) {
      Die(created, "create job");
    }
    const Clock::time_point start = Clock::now();
    int64_t best_id = 0;
    for (const RecordedStep& step : recording.steps) {
      // As the job manager made a generation's batch: every child and kept draw a row.
      std::vector<CandidateRecord> rows;
      rows.reserve(step.scored.size() + step.rejected.size());
      for (const Individual& child : step.scored) {
        rows.push_back(CandidateFromIndividual(space, child, step.step, true));
      }
      for (const Individual& child : step.rejected) {
        rows.push_back(CandidateFromIndividual(space, child, step.step, false));
      }
      std::optional<CandidateRecord> best;
      if (step.best) best = CandidateFromIndividual(space, *step.best, step.best->generation, true);
      const std::string operation = absl::StrCat("generation ", step.step);
      absl::StatusOr<SqliteDatabase::Transaction> transaction = db.Begin(true, operation);
      if (!transaction.ok()) Die(transaction.status(), "begin");
      {
        absl::StatusOr<Statement> select =
            db.Prepare("SELECT state, next_generation, stage FROM jobs WHERE id = ?1");
        select->BindText(1, job_id);
        if (!select->Step(operation).ok()) Die(absl::InternalError("select"), "select");
      }
      std::vector<int64_t> ids;
      {
        absl::StatusOr<Statement> insert = db.Prepare(
            "INSERT INTO candidates (job_id, generation, config_json, accuracy, latency_ms, "
            "energy_mj, size_mb, bitops, feasible, modelled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
            "?7, ?8, ?9, ?10)");
        for (const CandidateRecord& row : rows) {
          insert->BindText(1, job_id);
          insert->BindInt64(2, step.step);
          insert->BindText(3, row.config_json);
          insert->BindMetrics(4, row, "candidate");
          insert->BindInt64(9, row.feasible ? 1 : 0);
          insert->BindText(10, row.modelled);
          if (absl::Status run = insert->Run(operation); !run.ok()) Die(run, "insert");
          ids.push_back(db.LastInsertRowid());
          insert->Reset();
        }
      }
      if (step.best_index >= 0) best_id = ids[step.best_index];
      {
        absl::StatusOr<Statement> update = db.Prepare(
            "UPDATE jobs SET generations_done = ?2, next_generation = ?2 + 1, "
            "candidates_evaluated = ?3, stored_feasible = stored_feasible + ?15, "
            "stored_infeasible = stored_infeasible + ?16, best_id = ?4, best_generation = ?5, "
            "best_config_json = ?6, best_accuracy = ?7, best_latency_ms = ?8, "
            "best_energy_mj = ?9, best_size_mb = ?10, best_bitops = ?11, best_feasible = ?12, "
            "checkpoint = ?13, elapsed_s = ?14, best_modelled = ?17 WHERE id = ?1");
        update->BindText(1, job_id);
        update->BindInt64(2, step.step);
        update->BindInt64(3, step.candidates_evaluated);
        if (best) {
          update->BindInt64(4, best_id);
          update->BindInt64(5, best->generation);
          update->BindText(6, best->config_json);
          update->BindMetrics(7, *best, "best");
          update->BindInt64(12, 1);
          update->BindText(17, best->modelled);
        }
        update->BindBlob(13, step.checkpoint);
        update->BindDouble(14, step.arrived_s, "elapsed_s");
        update->BindInt64(15, static_cast<int64_t>(step.scored.size()));
        update->BindInt64(16, static_cast<int64_t>(step.rejected.size()));
        if (absl::Status run = update->Run(operation); !run.ok()) Die(run, "update");
      }
      if (absl::Status committed = transaction->Commit(operation); !committed.ok()) {
        Die(committed, "commit");
      }
      outcome.row_writes += static_cast<int64_t>(rows.size());
      ++outcome.transactions;
    }
    // The end of the job: the feasible rows in id order for the front, then the front
    // marked and the job ended in one transaction.
    std::vector<std::pair<int64_t, apq::search::FrontPoint>> feasible;
    {
      absl::StatusOr<Statement> select = db.Prepare(
          "SELECT id, accuracy, latency_ms FROM candidates WHERE job_id = ?1 AND "
          "feasible = 1 ORDER BY id");
      select->BindText(1, job_id);
      while (*select->Step("reading the front")) {
        feasible.push_back(
            {select->ColumnInt64(0), {select->ColumnDouble(2), select->ColumnDouble(1)}});
      }
    }
    const std::vector<int64_t> front = FrontIds(feasible);
    absl::StatusOr<SqliteDatabase::Transaction> transaction = db.Begin(true, "finishing");
    {
      absl::StatusOr<Statement> mark = db.Prepare(
          "UPDATE candidates SET on_pareto_front = 1 WHERE id = ?1 AND job_id = ?2 AND "
          "feasible = 1");
      for (const int64_t id : front) {
        mark->BindInt64(1, id);
        mark->BindText(2, job_id);
        if (absl::Status run = mark->Run("marking"); !run.ok()) Die(run, "mark");
        mark->Reset();
      }
    }
    if (absl::Status ended = db.Exec(absl::StrCat("UPDATE jobs SET state = 3, "
                                                  "pareto_front_size = ",
                                                  front.size(), " WHERE id = 'job-1'"),
                                     "finishing");
        !ended.ok()) {
      Die(ended, "finish");
    }
    if (absl::Status committed = transaction->Commit("finishing"); !committed.ok()) {
      Die(committed, "commit");
    }
    ++outcome.transactions;
    outcome.write_ms = MillisSince(start);
    absl::StatusOr<Statement> count = db.Prepare("SELECT COUNT(*) FROM candidates");
    if (*count->Step("counting")) outcome.rows = count->ColumnInt64(0);
  }
  outcome.file_mib = FileMib(path);
  return outcome;
}

// The ListCandidates pages timed on an ended job of schema 8.
struct ListCase {
  const char* name;
  CandidateOrder order;
  std::optional<bool> feasible;
  bool middle;  // At offset total / 2 rather than 0.
};
constexpr ListCase kListCases[] = {
    {"accuracy desc, first page", CandidateOrder::kAccuracyDesc, std::nullopt, false},
    {"accuracy desc, feasible, first page", CandidateOrder::kAccuracyDesc, true, false},
    {"accuracy desc, page at offset total/2", CandidateOrder::kAccuracyDesc, std::nullopt, true},
    {"latency asc, first page", CandidateOrder::kLatencyAsc, std::nullopt, false},
    {"id order, first page", CandidateOrder::kId, std::nullopt, false},
};

// The current write path: PendingSteps and AppendGenerations as the job manager uses them,
// committing when `commit_interval_s` has passed since the last commit (0: every step), by
// the recorded arrival times.
// Opens a fresh, empty store: a SQLite file at `path`, or, with `postgres_url` set, a new
// schema of that PostgreSQL database (named after the file, which is then not written).
absl::StatusOr<std::unique_ptr<apq::server::Store>> OpenFreshStore(
    const std::string& path, const std::string& postgres_url) {
  if (postgres_url.empty()) {
    apq::server::SqliteStore::Options options;
    options.path = path;
    return apq::server::SqliteStore::Open(options);
  }
  std::string schema = "store_bench_";
  for (const char c : path.substr(path.rfind('/') + 1)) {
    schema.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  }
  try {
    pqxx::connection connection(postgres_url);
    pqxx::nontransaction transaction(connection);
    transaction.exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema, " CASCADE"));
    transaction.exec(absl::StrCat("CREATE SCHEMA ", schema));
  } catch (const std::exception& error) {
    return absl::UnavailableError(error.what());
  }
  apq::server::PostgresStore::Options options;
  options.dsn = absl::StrCat(postgres_url, postgres_url.find('?') == std::string::npos ? "?" : "&",
                             "options=-csearch_path%3D", schema);
  return apq::server::PostgresStore::Open(options);
}

Outcome WriteNewLayout(const std::string& path, const Recording& recording,
                       const apq::oface::SearchSpace& space, double commit_interval_s,
                       const std::string& postgres_url = "") {
  Outcome outcome;
  {
    absl::StatusOr<std::unique_ptr<apq::server::Store>> opened = OpenFreshStore(path, postgres_url);
    if (!opened.ok()) Die(opened.status(), "open");
    apq::server::JobStore& store = (*opened)->jobs();
    apq::server::JobRecord job;
    job.space = "ofa_mbv3";
    job.device = "note10";
    job.table_version = 1;
    job.predictor_version = "v1";
    job.request = std::string(1, '\0');
    job.created_unix_s = 1;
    absl::StatusOr<std::string> job_id = store.CreateJob(job);
    if (!job_id.ok()) Die(job_id.status(), "CreateJob");
    if (absl::Status s = store.MarkRunning(*job_id, 1); !s.ok()) Die(s, "MarkRunning");

    const Clock::time_point start = Clock::now();
    apq::server::PendingSteps pending(space, /*keep_rejected=*/false, 0);
    int64_t best_id = 0;
    double last_commit_s = -1e300;
    const auto commit = [&](double now_s) {
      GenerationBatch batch = pending.Take(best_id);
      batch.elapsed_s = now_s;
      absl::StatusOr<std::vector<int64_t>> ids = store.AppendGenerations(*job_id, batch);
      if (!ids.ok()) Die(ids.status(), "AppendGenerations");
      if (batch.best_batch_index >= 0) best_id = (*ids)[batch.best_batch_index];
      outcome.row_writes += static_cast<int64_t>(batch.candidates.size());
      ++outcome.transactions;
      last_commit_s = now_s;
    };
    for (const RecordedStep& step : recording.steps) {
      // As the job manager: a checkpoint only for the steps a commit stores.
      const bool commit_now = step.arrived_s - last_commit_s >= commit_interval_s;
      pending.Add(step.Report(), commit_now || step.final_step);
      if (commit_now) commit(step.arrived_s);
    }
    if (!pending.empty()) commit(recording.steps.back().arrived_s);
    // The end of the job, as JobManager::EndWithFront makes it.
    std::vector<std::pair<int64_t, apq::search::FrontPoint>> feasible;
    CandidateQuery query;
    query.job_id = *job_id;
    query.feasible = true;
    query.limit = apq::server::kMaxPageSize;
    for (;; query.offset += query.limit) {
      absl::StatusOr<CandidatePage> page = store.ListCandidates(query);
      if (!page.ok()) Die(page.status(), "ListCandidates");
      for (const CandidateRecord& row : page->candidates) {
        feasible.push_back({row.id, {*row.latency_ms, *row.accuracy}});
      }
      if (query.offset + query.limit >= page->total) break;
    }
    if (absl::Status finished =
            store.FinishJob(*job_id, JobState::kSucceeded, "", 2, 1, FrontIds(feasible));
        !finished.ok()) {
      Die(finished, "FinishJob");
    }
    ++outcome.transactions;
    outcome.write_ms = MillisSince(start);

    CandidateQuery all;
    all.job_id = *job_id;
    all.limit = 1;
    absl::StatusOr<CandidatePage> counted = store.ListCandidates(all);
    outcome.rows = counted.ok() ? counted->total : -1;
    for (const ListCase& list : kListCases) {
      CandidateQuery q;
      q.job_id = *job_id;
      q.order = list.order;
      q.feasible = list.feasible;
      q.limit = 100;
      q.offset = list.middle ? outcome.rows / 2 : 0;
      constexpr int kCalls = 50;
      const Clock::time_point list_start = Clock::now();
      for (int i = 0; i < kCalls; ++i) {
        if (absl::Status s = store.ListCandidates(q).status(); !s.ok()) Die(s, "ListCandidates");
      }
      outcome.list_ms.push_back(MillisSince(list_start) / kCalls);
    }
  }  // Closes the store, checkpointing the WAL into the file.
  outcome.file_mib = postgres_url.empty() ? FileMib(path) : 0.0;
  return outcome;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  int commit_interval_ms = 250;
  int population = 100;
  int generations = 500;
  uint64_t seed = 1;
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  std::string data_dir = "data";
  std::string postgres_url;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--rounds") {
      rounds = std::atoi(value);
    } else if (flag == "--commit_interval_ms") {
      commit_interval_ms = std::atoi(value);
    } else if (flag == "--population") {
      population = std::atoi(value);
    } else if (flag == "--generations") {
      generations = std::atoi(value);
    } else if (flag == "--seed") {
      seed = std::strtoull(value, nullptr, 10);
    } else if (flag == "--dir") {
      dir = value;
    } else if (flag == "--data_dir") {
      data_dir = value;
    } else if (flag == "--postgres") {
      postgres_url = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (rounds < 1 || commit_interval_ms < 0 || population < 2 || generations < 1) {
    std::fprintf(stderr,
                 "--rounds >= 1, --commit_interval_ms >= 0, --population >= 2, "
                 "--generations >= 1\n");
    return 2;
  }
  dir = absl::StrCat(dir, "/store_bench.XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }

  absl::StatusOr<apq::bench::OfaReferenceSearch> reference =
      apq::bench::LoadOfaReferenceSearch(data_dir, /*threads=*/1);
  if (!reference.ok()) Die(reference.status(), "loading the search");
  const Recording recording = RecordSearch(*reference, population, generations, seed);
  std::printf(
      "recorded search: ofa_mbv3 / note10 / latency <= 25 ms, population %d, %d generations, "
      "seed %llu: %.3f s in process; %lld children scored, %lld rejected draws (%lld kept by "
      "the old layout), checkpoint %zu bytes\n",
      population, generations, static_cast<unsigned long long>(seed), recording.search_s,
      static_cast<long long>(recording.children), static_cast<long long>(recording.rejected_draws),
      static_cast<long long>(recording.rejected_kept), recording.steps.back().checkpoint.size());

  struct Layout {
    const char* name;
    std::function<Outcome(const std::string&)> write;
    std::vector<Outcome> outcomes;
  };
  const apq::oface::SearchSpace& space = *reference->space;
  std::vector<Layout> layouts = {
      {"old: schema 7, row per draw, txn per generation",
       [&](const std::string& path) { return WriteOldLayout(path, recording, space); }},
      {"step: schema 8, txn per generation",
       [&](const std::string& path) { return WriteNewLayout(path, recording, space, 0); }},
      {"group: schema 8, group commits",
       [&](const std::string& path) {
         return WriteNewLayout(path, recording, space, commit_interval_ms / 1000.0);
       }},
  };
  if (!postgres_url.empty()) {
    layouts.push_back({"postgres step: txn per generation", [&](const std::string& path) {
                         return WriteNewLayout(path, recording, space, 0, postgres_url);
                       }});
    layouts.push_back({"postgres group: group commits", [&](const std::string& path) {
                         return WriteNewLayout(path, recording, space, commit_interval_ms / 1000.0,
                                               postgres_url);
                       }});
  }
  // Interleaved: each round runs every layout, starting with another one each round.
  for (int round = 0; round < rounds; ++round) {
    for (size_t k = 0; k < layouts.size(); ++k) {
      Layout& layout = layouts[(round + k) % layouts.size()];
      const std::string path =
          absl::StrCat(dir, "/", round, "_", (round + k) % layouts.size(), ".db");
      layout.outcomes.push_back(layout.write(path));
      RemoveDatabase(path);
      const Outcome& o = layout.outcomes.back();
      std::printf("round %d  %-48s %9.1f ms  %7lld rows  %6lld txns  %6.2f MiB\n", round + 1,
                  layout.name, o.write_ms, static_cast<long long>(o.rows),
                  static_cast<long long>(o.transactions), o.file_mib);
    }
  }
  rmdir(dir.c_str());

  std::printf("\nmedians over %d rounds (write time: rows, generations, front and end of job)\n",
              rounds);
  std::printf("%-48s %10s %9s %11s %13s %12s %9s\n", "layout", "write_ms", "rows", "row_writes",
              "row_writes/s", "children/s", "MiB");
  for (const Layout& layout : layouts) {
    std::vector<double> ms;
    for (const Outcome& o : layout.outcomes) ms.push_back(o.write_ms);
    const double median_ms = Median(ms);
    const Outcome& o = layout.outcomes.front();
    std::printf("%-48s %10.1f %9lld %11lld %13.0f %12.0f %9.2f\n", layout.name, median_ms,
                static_cast<long long>(o.rows), static_cast<long long>(o.row_writes),
                o.row_writes / (median_ms / 1000), recording.children / (median_ms / 1000),
                o.file_mib);
  }
  for (size_t l = 2; l < layouts.size(); l += 2) {
    std::printf(
        "\nListCandidates on the ended job (page of 100, mean of 50 calls, median over rounds "
        "of layout \"%s\")\n",
        layouts[l].name);
    for (size_t c = 0; c < std::size(kListCases); ++c) {
      std::vector<double> ms;
      for (const Outcome& o : layouts[l].outcomes) ms.push_back(o.list_ms[c]);
      std::printf("  %-40s %.3f ms\n", kListCases[c].name, Median(ms));
    }
  }
  return 0;
}
