#include "server/store/faulty_store.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_testing.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using namespace ::apq::server::store_testing;  // NOLINT(google-build-using-namespace): records.

using Mode = FaultPlan::Mode;

class FaultyStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> base = GetParam().open();
    ASSERT_TRUE(base.ok()) << base.status();
    store_ = NewFaultyStore(*std::move(base), plan_);
  }

  std::shared_ptr<FaultPlan> plan_ = std::make_shared<FaultPlan>();
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, FaultyStoreTest, ::testing::ValuesIn(Backends()), BackendName);

void ExpectInjected(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("injected fault"));
}

TEST_P(FaultyStoreTest, AFaultBeforeTheWriteChangesNothing) {
  plan_->FailNthWrite(1, Mode::kBeforeWrite);
  ExpectInjected(store_->jobs().CreateJob(MakeJob()).status());
  EXPECT_THAT(*store_->jobs().ListJobs(std::nullopt, std::nullopt, 0, 10), IsEmpty());
  // The fault fired once; the next write is made, and gets the first id.
  EXPECT_EQ(*store_->jobs().CreateJob(MakeJob()), "job-1");
  EXPECT_EQ(plan_->faults_injected(), 1);
}

TEST_P(FaultyStoreTest, AFaultAfterTheCommitKeepsTheChange) {
  plan_->FailNthWrite(1, Mode::kAfterCommit);
  ExpectInjected(store_->jobs().CreateJob(MakeJob()).status());
  EXPECT_THAT(*store_->jobs().ListJobs(std::nullopt, std::nullopt, 0, 10), SizeIs(1));
  EXPECT_EQ(*store_->jobs().CreateJob(MakeJob()), "job-2");
}

TEST_P(FaultyStoreTest, TheNthWriteOfOneMethodFails) {
  JobStore& jobs = store_->jobs();
  const std::string id = *jobs.CreateJob(MakeJob());
  plan_->FailNthWrite(2, Mode::kBeforeWrite, "AppendGenerations");
  ASSERT_TRUE(jobs.MarkRunning(id, 1).ok());  // Another method: not counted.
  ASSERT_TRUE(jobs.AppendGenerations(id, MakeBatch(0, 4)).ok());
  ASSERT_TRUE(jobs.MarkRunning(id, 1).ok());
  ExpectInjected(jobs.AppendGenerations(id, MakeBatch(1, 4, 4)).status());
  EXPECT_EQ(jobs.GetJob(id)->candidates_evaluated, 4);
  EXPECT_EQ(AllCandidates(jobs, id).total, 4);
  // The retry of the refused generation is taken.
  ASSERT_TRUE(jobs.AppendGenerations(id, MakeBatch(1, 4, 4)).ok());
  EXPECT_EQ(AllCandidates(jobs, id).total, 8);
}

// A lost acknowledgement: the generation is stored, so the caller's retry is refused.
TEST_P(FaultyStoreTest, ALostAcknowledgementOfAGenerationLeavesItStored) {
  JobStore& jobs = store_->jobs();
  const std::string id = *jobs.CreateJob(MakeJob());
  plan_->FailNthWrite(1, Mode::kAfterCommit, "AppendGenerations");
  ExpectInjected(jobs.AppendGenerations(id, MakeBatch(0, 4)).status());
  EXPECT_EQ(jobs.GetJob(id)->candidates_evaluated, 4);
  EXPECT_EQ(AllCandidates(jobs, id).total, 4);
  EXPECT_EQ(jobs.AppendGenerations(id, MakeBatch(0, 4)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(FaultyStoreTest, TrainingJobsEndWithTheirPredictorOrNotAtAll) {
  TrainingJobStore& training = store_->training_jobs();
  const std::string refused = *training.CreateTrainingJob({});
  const std::string lost = *training.CreateTrainingJob({});
  PredictorRecord first = Predictor("v1", true);
  PredictorRecord second = Predictor("v2", true);

  plan_->FailNthWrite(1, Mode::kBeforeWrite, "FinishTrainingJob");
  ExpectInjected(training.FinishTrainingJob(refused, JobState::kSucceeded, "", 1, &first));
  EXPECT_EQ(training.GetTrainingJob(refused)->state, JobState::kQueued);
  EXPECT_THAT(*store_->predictors().ListPredictors("fmnist_mbv2"), IsEmpty());

  plan_->FailNthWrite(1, Mode::kAfterCommit, "FinishTrainingJob");
  ExpectInjected(training.FinishTrainingJob(lost, JobState::kSucceeded, "", 1, &second));
  EXPECT_EQ(training.GetTrainingJob(lost)->state, JobState::kSucceeded);
  EXPECT_EQ(store_->predictors().GetDefaultPredictor("fmnist_mbv2")->version, "v2");
}

TEST_P(FaultyStoreTest, WritesOfEveryKindAreCountedAndReadsAreNot) {
  const std::string id = *store_->jobs().CreateJob(MakeJob());
  ASSERT_TRUE(store_->jobs().GetJob(id).ok());
  ASSERT_TRUE(store_->devices().AddTableVersion(MakeTable("note10", "1")).ok());
  ASSERT_TRUE(store_->devices().ListDevices().ok());
  ASSERT_TRUE(store_->datasets().CreateDataset({"fm", "fmnist_mbv2", "", 1, 0}, {}).ok());
  ASSERT_TRUE(store_->datasets().AddMeasurements("fm", {Measurement("[1]", 1, "fp32")}).ok());
  ASSERT_TRUE(store_->predictors().AddPredictor(Predictor("v1", false)).ok());
  ASSERT_TRUE(store_->predictors().SetDefaultPredictor("fmnist_mbv2", "v1").ok());
  ASSERT_TRUE(store_->predictors().ClearDefaultPredictor("fmnist_mbv2").ok());
  const std::string training = *store_->training_jobs().CreateTrainingJob({});
  ASSERT_TRUE(store_->training_jobs().MarkTrainingRunning(training, 1).ok());
  ASSERT_TRUE(store_->training_jobs().UpdateTrainingProgress(training, "fp32", 1, 2, 0.5).ok());
  // A write that fails by itself counts too.
  EXPECT_EQ(store_->jobs().FinishJob(id, JobState::kRunning, "", 1, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->jobs().BeginVerification(id, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->jobs().RecordVerification(id, 1, MakeMeasurement(0.5), 1).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(plan_->writes(), 13);
  EXPECT_EQ(plan_->writes("BeginVerification"), 1);
  EXPECT_EQ(plan_->writes("RecordVerification"), 1);
  EXPECT_EQ(plan_->writes("CreateJob"), 1);
  EXPECT_EQ(plan_->writes("FinishJob"), 1);
  EXPECT_EQ(plan_->writes("GetJob"), 0);
  EXPECT_EQ(plan_->faults_injected(), 0);

  // A fault across all kinds fires at the third write from now, whatever its kind.
  plan_->FailNthWrite(3, Mode::kBeforeWrite);
  ASSERT_TRUE(store_->jobs().MarkRunning(id, 1).ok());
  ASSERT_TRUE(store_->devices().AddTableVersion(MakeTable("note10", "2")).ok());
  ExpectInjected(store_->predictors().AddPredictor(Predictor("v2", false)));
  EXPECT_THAT(*store_->predictors().ListPredictors("fmnist_mbv2"), SizeIs(1));
}

// PutArtifact is a write: refused, it stores nothing; with its acknowledgement lost, the
// artifact is stored and the retry is ALREADY_EXISTS. Its reads are not counted.
TEST_P(FaultyStoreTest, AnArtifactIsStoredOrNotAtAll) {
  ArtifactStore& artifacts = store_->artifacts();
  const std::string job = *store_->jobs().CreateJob(MakeJob());
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "PutArtifact");
  ExpectInjected(artifacts.PutArtifact(Artifact("solver_report", "r", job)));
  EXPECT_EQ(artifacts.GetArtifact("solver_report", "r").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(*artifacts.ListJobArtifacts(job), IsEmpty());

  plan_->FailNthWrite(1, Mode::kAfterCommit, "PutArtifact");
  ExpectInjected(artifacts.PutArtifact(Artifact("solver_report", "r", job)));
  EXPECT_EQ(artifacts.GetArtifact("solver_report", "r")->bytes,
            Artifact("solver_report", "r", job).bytes);
  EXPECT_EQ(artifacts.PutArtifact(Artifact("solver_report", "r", job)).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(*artifacts.ListArtifacts("solver_report", "", 10), SizeIs(1));
  EXPECT_EQ(plan_->writes("PutArtifact"), 3);
  EXPECT_EQ(plan_->writes("GetArtifact"), 0);
  EXPECT_EQ(plan_->writes("ListJobArtifacts"), 0);
  EXPECT_EQ(plan_->writes("ListArtifacts"), 0);
  EXPECT_EQ(plan_->faults_injected(), 2);
}

TEST_P(FaultyStoreTest, AWriteThatFailsByItselfKeepsItsErrorAndClearDisarms) {
  const std::string id = *store_->jobs().CreateJob(MakeJob());
  plan_->FailNthWrite(1, Mode::kAfterCommit);
  EXPECT_EQ(store_->jobs().FinishJob(id, JobState::kRunning, "", 1, 1, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(plan_->faults_injected(), 1);

  plan_->FailNthWrite(1, Mode::kBeforeWrite, "FinishJob");
  plan_->Clear();
  EXPECT_TRUE(store_->jobs().FinishJob(id, JobState::kCancelled, "", 1, 1, {}).ok());
  EXPECT_EQ(plan_->faults_injected(), 1);
}

TEST_P(FaultyStoreTest, BeforeWinsWhenTwoFaultsFireAtOneWrite) {
  plan_->FailNthWrite(1, Mode::kAfterCommit);
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "CreateJob");
  ExpectInjected(store_->jobs().CreateJob(MakeJob()).status());
  EXPECT_THAT(*store_->jobs().ListJobs(std::nullopt, std::nullopt, 0, 10), IsEmpty());
  EXPECT_EQ(*store_->jobs().CreateJob(MakeJob()), "job-1");  // Both fired.
}

// The lease calls are writes. A claim refused before its write leaves the job free; one
// whose acknowledgement was lost leaves it held by the claimer until its lease expires.
TEST_P(FaultyStoreTest, LeaseCallsAreWritesAndALostClaimHoldsTheJobUntilItExpires) {
  JobStore& jobs = store_->jobs();
  const std::string id = *jobs.CreateJob(MakeJob());
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "ClaimJob");
  ExpectInjected(jobs.ClaimJob("replica-a", 100, 200).status());
  absl::StatusOr<std::optional<ClaimedJob>> claimed = jobs.ClaimJob("replica-b", 100, 200);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->job_id, id);

  plan_->FailNthWrite(1, Mode::kAfterCommit, "ClaimJob");
  ExpectInjected(jobs.ClaimJob("replica-c", 200, 300).status());
  EXPECT_FALSE(jobs.ClaimJob("replica-a", 299, 400)->has_value());
  EXPECT_TRUE(jobs.RenewLease(id, "replica-c", 400).ok());

  plan_->FailNthWrite(1, Mode::kBeforeWrite, "RenewLease");
  ExpectInjected(jobs.RenewLease(id, "replica-c", 500).status());
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "ReleaseLease");
  ExpectInjected(jobs.ReleaseLease(id, "replica-c"));
  EXPECT_FALSE(jobs.ClaimJob("replica-a", 399, 500)->has_value()) << "not released";
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "RequestCancel");
  ExpectInjected(jobs.RequestCancel(id, 399).status());
  EXPECT_FALSE(jobs.RenewLease(id, "replica-c", 500)->cancel_requested);
  EXPECT_EQ(plan_->writes("ClaimJob"), 5);
  EXPECT_EQ(plan_->writes("RenewLease"), 3);
  EXPECT_EQ(plan_->writes("ReleaseLease"), 1);
  EXPECT_EQ(plan_->writes("RequestCancel"), 1);
  EXPECT_EQ(plan_->faults_injected(), 5);
}

// The measurement run calls that write are writes. A completion whose acknowledgement was
// lost stored its record and settled the task: the retry is refused and stores no second row.
TEST_P(FaultyStoreTest, MeasurementRunWritesAreCountedAndALostCompletionIsNotRepeated) {
  MeasurementRunStore& runs = store_->measurement_runs();
  ASSERT_TRUE(store_->datasets().CreateDataset({"fm", "fmnist_mbv2", "", 1.7e9}, {}).ok());
  MeasurementRunRecord run;
  run.dataset = "fm";
  run.space = "fmnist_mbv2";
  run.method = "fp32";
  run.split = "validation";
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "CreateMeasurementRun");
  ExpectInjected(runs.CreateMeasurementRun(run, {"[1]", "[2]"}).status());
  EXPECT_THAT(*runs.ListMeasurementRuns(0, 10), IsEmpty());
  ASSERT_EQ(*runs.CreateMeasurementRun(run, {"[1]", "[2]"}), "measure-1");

  plan_->FailNthWrite(1, Mode::kBeforeWrite, "SetMeasurementRunLauncher");
  ExpectInjected(runs.SetMeasurementRunLauncher("measure-1", "local 2"));
  EXPECT_EQ(runs.GetMeasurementRun("measure-1")->launcher, "");

  plan_->FailNthWrite(1, Mode::kAfterCommit, "ClaimMeasurementTasks");
  ExpectInjected(runs.ClaimMeasurementTasks("measure-1", "worker-a", 100, 200, 1).status());
  // The claim whose acknowledgement was lost holds task 0 until its lease expires: worker-b
  // gets task 1 only.
  const std::vector<MeasurementTask> tasks =
      *runs.ClaimMeasurementTasks("measure-1", "worker-b", 100, 200, 2);
  ASSERT_THAT(tasks, SizeIs(1));
  EXPECT_EQ(tasks[0].index, 1);
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "RenewMeasurementTasks");
  ExpectInjected(runs.RenewMeasurementTasks("measure-1", "worker-b", {tasks[0].id}, 300).status());

  MeasurementRow row = Measurement("[2]", 0.5, "fp32");
  row.split = "validation";
  plan_->FailNthWrite(1, Mode::kAfterCommit, "CompleteMeasurementTask");
  ExpectInjected(runs.CompleteMeasurementTask("measure-1", tasks[0].id, "worker-b", row));
  EXPECT_EQ(runs.CompleteMeasurementTask("measure-1", tasks[0].id, "worker-b", row).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(*store_->datasets().ListMeasurements("fm", std::nullopt), SizeIs(1));
  EXPECT_EQ(runs.GetMeasurementRun("measure-1")->tasks_done, 1);

  plan_->FailNthWrite(1, Mode::kBeforeWrite, "FailMeasurementTask");
  ExpectInjected(runs.FailMeasurementTask("measure-1", tasks[0].id, "worker-b", "x", 1, 300));
  plan_->FailNthWrite(1, Mode::kBeforeWrite, "CancelMeasurementRun");
  ExpectInjected(runs.CancelMeasurementRun("measure-1", 300));
  EXPECT_EQ(runs.GetMeasurementRun("measure-1")->state, JobState::kRunning);

  EXPECT_EQ(plan_->writes("CreateMeasurementRun"), 2);
  EXPECT_EQ(plan_->writes("SetMeasurementRunLauncher"), 1);
  EXPECT_EQ(plan_->writes("ClaimMeasurementTasks"), 2);
  EXPECT_EQ(plan_->writes("RenewMeasurementTasks"), 1);
  EXPECT_EQ(plan_->writes("CompleteMeasurementTask"), 2);
  EXPECT_EQ(plan_->writes("FailMeasurementTask"), 1);
  EXPECT_EQ(plan_->writes("CancelMeasurementRun"), 1);
  EXPECT_EQ(plan_->writes("GetMeasurementRun"), 0);
  EXPECT_EQ(plan_->writes("ListMeasurementRuns"), 0);
  EXPECT_EQ(plan_->faults_injected(), 7);
}

}  // namespace
}  // namespace apq::server
