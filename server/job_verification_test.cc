// Finalist verification (apq.proto Verification) through the job manager, over the in-memory
// store wrapped in the fault-injecting one and the real Fashion-MNIST supernet, on fmnist_mbv2
// for each of its devices: the deployable best is the measured best of the top K, predicted
// and measured accuracies are stored side by side, a restart during verification resumes
// without measuring again what is stored, a cancellation ends the job, refused and
// unacknowledged writes leave the record of an undisturbed run, and the measurements close
// the loop into a dataset once each. Bad requests are refused before anything is stored, and
// a dataset that became unfit while a job waited fails it before anything is measured.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/engine_registry.h"
#include "search/pareto.h"
#include "server/catalog.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/store/faulty_store.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kTopK = 3;
constexpr char kDataset[] = "verified-finalists";

struct Scenario {
  std::string name;
  std::string device;
};

// What a verified job leaves in the store, comparable as a whole.
struct VerificationSnapshot {
  JobState state = JobState::kQueued;
  std::string error;
  JobStage stage = JobStage::kSearch;
  int finalists = 0;
  int measured = 0;
  int64_t best_id = 0;
  int64_t verified_best_id = 0;
  // "id|predicted|measured|method|split" of every measured candidate, in id order.
  std::vector<std::string> measured_candidates;
  // "config|accuracy|method|split" of the dataset's rows, in id order.
  std::vector<std::string> dataset_rows;
  int64_t candidates = 0;
};

bool operator==(const VerificationSnapshot& a, const VerificationSnapshot& b) {
  return a.state == b.state && a.stage == b.stage && a.finalists == b.finalists &&
         a.measured == b.measured && a.best_id == b.best_id &&
         a.verified_best_id == b.verified_best_id &&
         a.measured_candidates == b.measured_candidates && a.dataset_rows == b.dataset_rows &&
         a.candidates == b.candidates;
}

void PrintTo(const VerificationSnapshot& s, std::ostream* out) {
  *out << "state " << static_cast<int>(s.state) << " (" << s.error << ") stage "
       << static_cast<int>(s.stage) << " " << s.measured << "/" << s.finalists << " best "
       << s.best_id << " verified " << s.verified_best_id << " candidates " << s.candidates;
  for (const std::string& c : s.measured_candidates) *out << "\n  " << c;
  for (const std::string& r : s.dataset_rows) *out << "\n  row " << r;
}

class JobVerificationTest : public ::testing::TestWithParam<Scenario> {
 protected:
  static void SetUpTestSuite() {
    supernets_ = NewHostWithShippedSupernets(250).release();
    ASSERT_TRUE(supernets_ != nullptr && supernets_->Has("fmnist_mbv2"));
  }
  static void TearDownTestSuite() {
    delete supernets_;
    supernets_ = nullptr;
  }

  void Open() { bed_.Open(); }
  void StartManager() { bed_.StartManager(); }
  apq::v1::JobProgress AwaitEnd(const std::string& job_id) {
    return bed_.AwaitEnd(job_id, absl::Seconds(300));
  }

  // A tiny search of fmnist_mbv2 verifying its top kTopK on `images` validation images.
  apq::v1::SubmitSearchRequest Request(int images = 500, const std::string& dataset = kDataset) {
    apq::v1::SubmitSearchRequest request;
    request.set_space("fmnist_mbv2");
    request.set_device(GetParam().device);
    request.set_seed(7);
    request.mutable_evolution()->set_population_size(12);
    request.mutable_evolution()->set_generations(2);
    request.mutable_verification()->set_top_k(kTopK);
    request.mutable_verification()->set_images(images);
    request.mutable_verification()->set_dataset(dataset);
    return request;
  }

  std::string RunToEnd(const apq::v1::SubmitSearchRequest& request) {
    auto job = bed_.manager().Submit(request);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return "";
    const apq::v1::JobProgress last = AwaitEnd(job->id());
    EXPECT_EQ(static_cast<int>(last.state()), static_cast<int>(Snapshot(job->id()).state))
        << "watchers are told what the store holds";
    return job->id();
  }

  std::vector<CandidateRecord> Candidates(const std::string& job_id) {
    CandidateQuery query;
    query.job_id = job_id;
    query.limit = kMaxPageSize;
    auto page = bed_.store().jobs().ListCandidates(query);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->candidates : std::vector<CandidateRecord>{};
  }

  std::vector<MeasurementRow> DatasetRows(const std::string& dataset = kDataset) {
    auto rows = bed_.store().datasets().ListMeasurements(dataset, std::nullopt);
    return rows.ok() ? *rows : std::vector<MeasurementRow>{};
  }

  VerificationSnapshot Snapshot(const std::string& job_id) {
    VerificationSnapshot snapshot;
    auto job = bed_.store().jobs().GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return snapshot;
    snapshot.state = job->state;
    snapshot.error = job->error;
    snapshot.stage = job->stage;
    snapshot.finalists = job->verification_finalists;
    snapshot.measured = job->verification_measured;
    if (job->best) snapshot.best_id = job->best->id;
    if (job->verified_best) snapshot.verified_best_id = job->verified_best->id;
    const std::vector<CandidateRecord> candidates = Candidates(job_id);
    snapshot.candidates = static_cast<int64_t>(candidates.size());
    for (const CandidateRecord& c : candidates) {
      if (!c.measured) continue;
      snapshot.measured_candidates.push_back(
          absl::StrCat(c.id, "|", *c.accuracy, "|", c.measured->accuracy, "|", c.measured->method,
                       "|", c.measured->split));
    }
    for (const MeasurementRow& row : DatasetRows()) {
      snapshot.dataset_rows.push_back(
          absl::StrCat(row.config_json, "|", row.accuracy, "|", row.method, "|", row.split));
    }
    return snapshot;
  }

  // The record of an undisturbed run (made once per device).
  VerificationSnapshot Reference() {
    static auto* const references = new std::map<std::string, VerificationSnapshot>();
    auto found = references->find(GetParam().device);
    if (found != references->end()) return found->second;
    Open();
    const int64_t measured_before = supernets_->measurements();
    const std::string job_id = RunToEnd(Request());
    VerificationSnapshot reference = Snapshot(job_id);
    EXPECT_EQ(reference.state, JobState::kSucceeded) << reference.error;
    EXPECT_EQ(reference.measured, kTopK);
    EXPECT_EQ(supernets_->measurements() - measured_before, kTopK);
    references->emplace(GetParam().device, reference);
    return reference;
  }

  // Runs `request` and watches it until `reached` holds for a progress update; returns the
  // job id once the update came.
  std::string SubmitAndWaitFor(const apq::v1::SubmitSearchRequest& request,
                               std::function<bool(const apq::v1::JobProgress&)> reached) {
    auto job = bed_.manager().Submit(request);
    EXPECT_TRUE(job.ok()) << job.status();
    absl::Notification seen;
    auto subscription = bed_.manager().Watch(job->id(), [&](const apq::v1::JobProgress& progress) {
      if (reached(progress) && !seen.HasBeenNotified()) seen.Notify();
    });
    EXPECT_TRUE(subscription.ok());
    EXPECT_TRUE(seen.WaitForNotificationWithTimeout(absl::Seconds(300)));
    bed_.manager().Unwatch(job->id(), *subscription);
    return job->id();
  }

  static SupernetHost* supernets_;
  JobTestBed bed_{*supernets_};
};

SupernetHost* JobVerificationTest::supernets_ = nullptr;

TEST_P(JobVerificationTest, TheDeployableBestIsTheMeasuredBestOfTheTopK) {
  Open();
  const int64_t measured_before = supernets_->measurements();
  auto submitted = bed_.manager().Submit(Request());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->verification().top_k(), kTopK);
  EXPECT_EQ(submitted->stage(), apq::v1::JOB_STAGE_SEARCH);
  // Every update of the verification stage, as watchers see them.
  absl::Mutex mutex;
  std::vector<int> measured_counts;
  auto subscription =
      bed_.manager().Watch(submitted->id(), [&](const apq::v1::JobProgress& progress) {
        absl::MutexLock lock(&mutex);
        if (progress.stage() == apq::v1::JOB_STAGE_VERIFICATION) {
          measured_counts.push_back(progress.verification().measured());
        }
      });
  ASSERT_TRUE(subscription.ok());
  AwaitEnd(submitted->id());
  bed_.manager().Unwatch(submitted->id(), *subscription);
  const std::string job_id = submitted->id();

  const JobRecord job = *bed_.store().jobs().GetJob(job_id);
  ASSERT_EQ(job.state, JobState::kSucceeded) << job.error;
  EXPECT_EQ(job.stage, JobStage::kVerification);
  EXPECT_EQ(job.verification_finalists, kTopK);
  EXPECT_EQ(job.verification_measured, kTopK);
  EXPECT_EQ(supernets_->measurements() - measured_before, kTopK) << "each finalist once";
  {
    absl::MutexLock lock(&mutex);
    // The stage's start (0 measured), then one update per finalist; the last one is the end.
    EXPECT_THAT(measured_counts, ElementsAreArray({0, 1, 2, 3, 3}));
  }

  // The finalists: the top K distinct configurations by predicted accuracy, earlier id first.
  std::vector<CandidateRecord> feasible;
  for (const CandidateRecord& c : Candidates(job_id)) {
    if (c.feasible) feasible.push_back(c);
  }
  std::stable_sort(
      feasible.begin(), feasible.end(),
      [](const CandidateRecord& a, const CandidateRecord& b) { return *a.accuracy > *b.accuracy; });
  std::vector<CandidateRecord> finalists;
  std::vector<std::string> configs;
  for (const CandidateRecord& c : feasible) {
    if (std::find(configs.begin(), configs.end(), c.config_json) != configs.end()) continue;
    configs.push_back(c.config_json);
    finalists.push_back(c);
    if (finalists.size() == kTopK) break;
  }
  ASSERT_EQ(finalists.size(), kTopK);
  int measured_rows = 0;
  for (const CandidateRecord& c : Candidates(job_id)) measured_rows += c.measured ? 1 : 0;
  EXPECT_EQ(measured_rows, kTopK) << "only the finalists are measured";

  // Predicted and measured side by side; the best is the measured argmax.
  std::vector<search::MeasuredFinalist> scored;
  for (const CandidateRecord& finalist : finalists) {
    ASSERT_TRUE(finalist.measured.has_value()) << "finalist " << finalist.id;
    EXPECT_EQ(finalist.measured->method, "quant-from-supernet");
    EXPECT_EQ(finalist.measured->split, "validation");
    EXPECT_GE(finalist.measured->accuracy, 0.0);
    EXPECT_LE(finalist.measured->accuracy, 1.0);
    EXPECT_GT(finalist.measured->seconds, 0.0);
    scored.push_back({finalist.measured->accuracy, *finalist.accuracy, finalist.id});
  }
  const CandidateRecord& expected_best = finalists[*search::VerifiedBest(scored)];
  ASSERT_TRUE(job.verified_best.has_value());
  EXPECT_EQ(job.verified_best->id, expected_best.id);
  for (const CandidateRecord& finalist : finalists) {
    EXPECT_LE(finalist.measured->accuracy, job.verified_best->measured->accuracy);
  }
  ASSERT_TRUE(job.best.has_value());
  EXPECT_EQ(job.best->config_json, finalists[0].config_json)
      << "the engine's best is the top predicted";

  // The API: `best` is the measured best, `predicted_best` the engine's.
  const apq::v1::Job proto = JobToProto(job, bed_.engines());
  EXPECT_EQ(proto.stage(), apq::v1::JOB_STAGE_VERIFICATION);
  EXPECT_EQ(proto.verification().finalists(), kTopK);
  EXPECT_EQ(proto.verification().measured(), kTopK);
  EXPECT_EQ(proto.best().id(), expected_best.id);
  EXPECT_EQ(proto.best().config_json(), expected_best.config_json);
  EXPECT_EQ(proto.best().metrics().measured_accuracy(), expected_best.measured->accuracy);
  EXPECT_EQ(proto.best().metrics().accuracy(), *expected_best.accuracy);
  EXPECT_EQ(proto.best().metrics().measured_split(), "validation");
  EXPECT_EQ(proto.predicted_best().config_json(), finalists[0].config_json);
  EXPECT_TRUE(proto.predicted_best().metrics().has_measured_accuracy());

  // The closed loop: each measurement once in the dataset, made for the job's space.
  const DatasetRecord dataset = *bed_.store().datasets().GetDataset(kDataset);
  EXPECT_EQ(dataset.space, "fmnist_mbv2");
  EXPECT_EQ(dataset.split, "validation");
  const std::vector<MeasurementRow> rows = DatasetRows();
  ASSERT_EQ(rows.size(), kTopK);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].config_json, finalists[i].config_json);
    EXPECT_EQ(rows[i].accuracy, finalists[i].measured->accuracy);
    EXPECT_EQ(rows[i].method, "quant-from-supernet");
    EXPECT_EQ(rows[i].split, "validation");
    EXPECT_EQ(rows[i].seed, 7u);
  }

  // What was stored is what the supernet measures.
  const oface::SearchSpace* space = *bed_.catalog().FindSpace("fmnist_mbv2");
  auto again = supernets_->Measure("fmnist_mbv2", {*space->FromJson(expected_best.config_json)},
                                   /*quantized=*/true, oface::DataSplit::kValidation, 500, {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->front().accuracy, expected_best.measured->accuracy);
}

TEST_P(JobVerificationTest, ARestartDuringVerificationResumesWithoutMeasuringAgain) {
  const VerificationSnapshot reference = Reference();
  Open();
  // Stop the server once a finalist is measured: the job stays running in its stage.
  const std::string job_id = SubmitAndWaitFor(Request(), [](const apq::v1::JobProgress& progress) {
    return progress.verification().measured() >= 1;
  });
  bed_.StopManager();
  const VerificationSnapshot interrupted = Snapshot(job_id);
  if (interrupted.state == JobState::kSucceeded) {
    GTEST_SKIP() << "the job ended before the restart; nothing to resume";
  }
  ASSERT_EQ(interrupted.state, JobState::kRunning) << interrupted.error;
  EXPECT_EQ(interrupted.stage, JobStage::kVerification);
  ASSERT_GE(interrupted.measured, 1);
  EXPECT_EQ(static_cast<int>(interrupted.dataset_rows.size()), interrupted.measured);
  const int64_t steps_before = bed_.plan().writes("AppendGenerations");
  const int64_t measured_before = supernets_->measurements();

  StartManager();
  AwaitEnd(job_id);
  const VerificationSnapshot resumed = Snapshot(job_id);
  EXPECT_EQ(resumed, reference);
  EXPECT_EQ(supernets_->measurements() - measured_before, kTopK - interrupted.measured)
      << "what was stored is not measured again";
  EXPECT_EQ(bed_.plan().writes("AppendGenerations"), steps_before)
      << "the engine did not run again";
  for (size_t i = 0; i < interrupted.measured_candidates.size(); ++i) {
    EXPECT_THAT(resumed.measured_candidates,
                ::testing::Contains(interrupted.measured_candidates[i]));
  }
}

TEST_P(JobVerificationTest, ARestartBeforeAnyMeasurementSkipsTheEngine) {
  const VerificationSnapshot reference = Reference();
  Open();
  const std::string job_id = SubmitAndWaitFor(Request(), [](const apq::v1::JobProgress& progress) {
    return progress.stage() == apq::v1::JOB_STAGE_VERIFICATION;
  });
  bed_.StopManager();
  const VerificationSnapshot interrupted = Snapshot(job_id);
  if (interrupted.state == JobState::kSucceeded) GTEST_SKIP() << "ended before the restart";
  EXPECT_EQ(interrupted.stage, JobStage::kVerification);
  const int64_t steps_before = bed_.plan().writes("AppendGenerations");
  const int64_t measured_before = supernets_->measurements();
  StartManager();
  AwaitEnd(job_id);
  EXPECT_EQ(Snapshot(job_id), reference);
  EXPECT_EQ(supernets_->measurements() - measured_before, kTopK - interrupted.measured);
  EXPECT_EQ(bed_.plan().writes("AppendGenerations"), steps_before);
}

TEST_P(JobVerificationTest, ACancelDuringVerificationEndsTheJobCancelled) {
  Open();
  // All 10,000 images: a measurement takes long enough for the cancel to land in it.
  const std::string job_id =
      SubmitAndWaitFor(Request(/*images=*/0), [](const apq::v1::JobProgress& progress) {
        return progress.stage() == apq::v1::JOB_STAGE_VERIFICATION;
      });
  auto cancelled = bed_.manager().Cancel(job_id);
  if (!cancelled.ok()) {
    ASSERT_EQ(cancelled.status().code(), absl::StatusCode::kFailedPrecondition);
    GTEST_SKIP() << "the job ended before the cancel";
  }
  const apq::v1::JobProgress last = AwaitEnd(job_id);
  EXPECT_EQ(last.state(), apq::v1::JOB_STATE_CANCELLED);
  const JobRecord job = *bed_.store().jobs().GetJob(job_id);
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.error, "cancelled by request");
  EXPECT_EQ(job.stage, JobStage::kVerification);
  EXPECT_LT(job.verification_measured, kTopK);
  EXPECT_GT(job.pareto_front_size, 0) << "the front of the search is kept";
  EXPECT_EQ(static_cast<int>(DatasetRows().size()), job.verification_measured);
}

// The store writes of verification, whose handling does not depend on the device.
class VerificationFaultTest : public JobVerificationTest {};

TEST_P(VerificationFaultTest, RefusedAndUnacknowledgedWritesLeaveTheSameRecord) {
  const VerificationSnapshot reference = Reference();
  const InjectedFault faults[] = {
      {"BeginVerification", 1, FaultPlan::Mode::kBeforeWrite},
      {"BeginVerification", 1, FaultPlan::Mode::kAfterCommit},
      {"RecordVerification", 1, FaultPlan::Mode::kBeforeWrite},
      {"RecordVerification", 2, FaultPlan::Mode::kAfterCommit},
      {"CreateDataset", 1, FaultPlan::Mode::kBeforeWrite},
      {"CreateDataset", 1, FaultPlan::Mode::kAfterCommit},
      {"AddMeasurements", 1, FaultPlan::Mode::kAfterCommit},
      {"AddMeasurements", 2, FaultPlan::Mode::kBeforeWrite},
  };
  for (const InjectedFault& fault : faults) {
    SCOPED_TRACE(FaultName(fault));
    Open();
    bed_.plan().FailNthWrite(fault.nth, fault.mode, fault.method);
    const int64_t measured_before = supernets_->measurements();
    const std::string job_id = RunToEnd(Request());
    EXPECT_EQ(bed_.plan().faults_injected(), 1);
    EXPECT_EQ(Snapshot(job_id), reference);
    EXPECT_EQ(supernets_->measurements() - measured_before, kTopK) << "nothing measured twice";
  }
}

TEST_P(VerificationFaultTest, AStoreThatKeepsRefusingMeasurementsFailsTheJob) {
  Open();
  for (int i = 0; i < 8; ++i) {
    bed_.plan().FailNthWrite(2 + i, FaultPlan::Mode::kBeforeWrite, "RecordVerification");
  }
  const std::string job_id = RunToEnd(Request());
  const VerificationSnapshot failed = Snapshot(job_id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_THAT(failed.error, HasSubstr("storing the measurement of finalist"));
  EXPECT_EQ(failed.measured, 1) << "the first measurement stays stored";
  EXPECT_EQ(failed.dataset_rows.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(FmnistDevices, JobVerificationTest,
                         ::testing::Values(Scenario{"LocalCpu", "local-cpu"},
                                           Scenario{"Bitfusion", "bitfusion"}),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return info.param.name;
                         });

// Requests a verification cannot take are refused at submission, naming the field, the
// space or the dataset; nothing is stored.
class VerificationRequestTest : public JobVerificationTest {};

TEST_P(VerificationRequestTest, BadVerificationRequestsAreRefusedNamingTheCause) {
  Open();
  // A dataset of another space, and one measured on another split.
  MeasurementRow row;
  row.config_json = "{}";
  row.accuracy = 0.5;
  row.method = "fp32";
  row.split = "validation";
  ASSERT_TRUE(
      bed_.store().datasets().CreateDataset({"ofa-records", "ofa_mbv3", "", 1, 0}, {row}).ok());
  row.split = "test";
  ASSERT_TRUE(
      bed_.store().datasets().CreateDataset({"test-records", "fmnist_mbv2", "", 1, 0}, {row}).ok());
  const int64_t jobs_before = bed_.plan().writes("CreateJob");

  const auto with = [&](auto change) {
    apq::v1::SubmitSearchRequest request = Request();
    change(request.mutable_verification());
    return request;
  };
  const struct {
    apq::v1::SubmitSearchRequest request;
    absl::StatusCode code;
    std::string says;
  } cases[] = {
      {with([](apq::v1::Verification* v) { v->set_top_k(51); }), absl::StatusCode::kInvalidArgument,
       "verification.top_k"},
      {with([](apq::v1::Verification* v) { v->set_top_k(-1); }), absl::StatusCode::kInvalidArgument,
       "verification.top_k"},
      {with([](apq::v1::Verification* v) { v->set_top_k(0); }), absl::StatusCode::kInvalidArgument,
       "verification.top_k"},
      {with([](apq::v1::Verification* v) { v->set_images(-1); }),
       absl::StatusCode::kInvalidArgument, "verification.images"},
      {with([](apq::v1::Verification* v) { v->set_images(10001); }),
       absl::StatusCode::kInvalidArgument, "verification.images"},
      {with([](apq::v1::Verification* v) { v->set_dataset("Bad Name"); }),
       absl::StatusCode::kInvalidArgument, "verification.dataset"},
      {[&] {
         apq::v1::SubmitSearchRequest request = Request();
         request.set_space("ofa_mbv3");
         request.set_device("note10");
         request.mutable_verification()->clear_dataset();
         return request;
       }(),
       absl::StatusCode::kFailedPrecondition, "ofa_mbv3"},
      {with([](apq::v1::Verification* v) { v->set_dataset("ofa-records"); }),
       absl::StatusCode::kFailedPrecondition, "ofa-records"},
      {with([](apq::v1::Verification* v) { v->set_dataset("test-records"); }),
       absl::StatusCode::kFailedPrecondition, "test-records"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.request.verification().ShortDebugString());
    auto job = bed_.manager().Submit(c.request);
    EXPECT_EQ(job.status().code(), c.code) << job.status();
    EXPECT_THAT(std::string(job.status().message()), HasSubstr(c.says));
  }
  EXPECT_EQ(bed_.plan().writes("CreateJob"), jobs_before) << "a refused request stores nothing";

  // Within range: accepted.
  auto job = bed_.manager().Submit(with([](apq::v1::Verification* v) {
    v->set_top_k(50);
    v->set_images(10000);
    v->clear_dataset();
  }));
  EXPECT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(bed_.manager().Cancel(job->id()).ok());
}

TEST_P(VerificationRequestTest, ADatasetMadeWhileTheJobWaitedFailsItBeforeAnyMeasurement) {
  Open();
  // A long search without verification holds the only worker until it is cancelled.
  apq::v1::SubmitSearchRequest blocker = Request();
  blocker.clear_verification();
  blocker.mutable_evolution()->set_generations(100000);
  const std::string blocker_id = SubmitAndWaitFor(
      blocker, [](const apq::v1::JobProgress& progress) { return progress.generation() >= 1; });
  auto job = bed_.manager().Submit(Request(/*images=*/500, "late-records"));
  ASSERT_TRUE(job.ok()) << job.status();
  // Accepted while the dataset was absent; made meanwhile with records of the test split.
  MeasurementRow row;
  row.config_json = "{}";
  row.accuracy = 0.5;
  row.method = "quant-from-supernet";
  row.split = "test";
  ASSERT_TRUE(
      bed_.store().datasets().CreateDataset({"late-records", "fmnist_mbv2", "", 1, 0}, {row}).ok());
  const int64_t measured_before = supernets_->measurements();
  ASSERT_TRUE(bed_.manager().Cancel(blocker_id).ok());

  AwaitEnd(job->id());
  const JobRecord ended = *bed_.store().jobs().GetJob(job->id());
  EXPECT_EQ(ended.state, JobState::kFailed);
  EXPECT_THAT(ended.error, HasSubstr("late-records"));
  EXPECT_THAT(ended.error, HasSubstr("split"));
  EXPECT_EQ(ended.verification_measured, 0);
  EXPECT_EQ(supernets_->measurements(), measured_before) << "no finalist was measured";
  EXPECT_EQ(DatasetRows("late-records").size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(LocalCpu, VerificationFaultTest,
                         ::testing::Values(Scenario{"LocalCpu", "local-cpu"}),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return info.param.name;
                         });

INSTANTIATE_TEST_SUITE_P(LocalCpu, VerificationRequestTest,
                         ::testing::Values(Scenario{"LocalCpu", "local-cpu"}),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace apq::server
