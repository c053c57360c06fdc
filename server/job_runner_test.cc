#include "server/job_runner.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Records the jobs it ran; a job named "block" waits until released or told to stop.
class Recorder {
 public:
  JobRunner::Work work() {
    return [this](const std::string& job_id, const JobRunner::Control& control) {
      if (job_id == "block") {
        started_.Notify();
        while (!release_.HasBeenNotified() && !control.stop_requested()) {
          absl::SleepFor(absl::Milliseconds(1));
        }
        absl::MutexLock lock(&mutex_);
        saw_cancel_ = control.cancel_requested();
        saw_shutdown_ = control.shutting_down();
      }
      absl::MutexLock lock(&mutex_);
      ran_.push_back(job_id);
    };
  }
  std::vector<std::string> ran() {
    absl::MutexLock lock(&mutex_);
    return ran_;
  }
  // Waits until `count` jobs have run.
  void AwaitRan(size_t count) {
    absl::MutexLock lock(&mutex_);
    std::pair<std::vector<std::string>*, size_t> args(&ran_, count);
    mutex_.AwaitWithTimeout(absl::Condition(
                                +[](std::pair<std::vector<std::string>*, size_t>* ran) {
                                  return ran->first->size() >= ran->second;
                                },
                                &args),
                            absl::Seconds(10));
  }

  absl::Notification started_;
  absl::Notification release_;
  absl::Mutex mutex_;
  std::vector<std::string> ran_ ABSL_GUARDED_BY(mutex_);
  bool saw_cancel_ ABSL_GUARDED_BY(mutex_) = false;
  bool saw_shutdown_ ABSL_GUARDED_BY(mutex_) = false;
};

std::unique_ptr<JobRunner> StartRunner(Recorder& recorder, int capacity,
                                       std::vector<std::string> recovered = {}) {
  JobRunner::Options options;
  options.queue_name = "test";
  options.queue_capacity = capacity;
  auto runner = JobRunner::Start(options, recorder.work(), std::move(recovered));
  EXPECT_TRUE(runner.ok()) << runner.status();
  return *std::move(runner);
}

TEST(JobRunnerTest, RejectsOptionsOutOfRange) {
  Recorder recorder;
  JobRunner::Options options;
  options.workers = 0;
  EXPECT_THAT(JobRunner::Start(options, recorder.work(), {}).status().message(),
              HasSubstr("workers"));
  options.workers = 1;
  options.queue_capacity = 0;
  EXPECT_THAT(JobRunner::Start(options, recorder.work(), {}).status().message(),
              HasSubstr("queue_capacity"));
}

TEST(JobRunnerTest, RunsRecoveredJobsFirstThenSubmittedOnesInOrder) {
  Recorder recorder;
  // Three recovered jobs exceed the capacity of one: they were accepted before.
  auto runner = StartRunner(recorder, 1, {"block", "r2", "r3"});
  recorder.started_.WaitForNotification();
  EXPECT_EQ(runner->queued(), 2u);
  EXPECT_EQ(runner->Reserve().status().code(), absl::StatusCode::kResourceExhausted);
  recorder.release_.Notify();
  recorder.AwaitRan(3);
  auto slot = runner->Reserve();
  ASSERT_TRUE(slot.ok()) << slot.status();
  runner->Enqueue(*std::move(slot), "s1");
  recorder.AwaitRan(4);
  EXPECT_THAT(recorder.ran(), ElementsAre("block", "r2", "r3", "s1"));
}

TEST(JobRunnerTest, AFullQueueRefusesAndADroppedSlotIsFreedAgain) {
  Recorder recorder;
  auto runner = StartRunner(recorder, 2, {"block"});
  recorder.started_.WaitForNotification();
  auto first = runner->Reserve();
  auto second = runner->Reserve();
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = runner->Reserve();
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("the test queue is full"));
  { JobRunner::Slot dropped = *std::move(second); }  // The store write failed.
  EXPECT_TRUE(runner->Reserve().ok());
  runner->Enqueue(*std::move(first), "a");
  EXPECT_EQ(runner->queued(), 1u);
  recorder.release_.Notify();
  recorder.AwaitRan(2);
}

TEST(JobRunnerTest, CancelDequeuesAQueuedJobSignalsARunningOneAndKnowsNoOther) {
  Recorder recorder;
  auto runner = StartRunner(recorder, 4, {"block", "queued", "after"});
  recorder.started_.WaitForNotification();
  EXPECT_EQ(runner->Cancel("queued"), JobRunner::CancelOutcome::kDequeued);
  EXPECT_EQ(runner->Cancel("queued"), JobRunner::CancelOutcome::kNotHeld);
  EXPECT_EQ(runner->Cancel("nobody"), JobRunner::CancelOutcome::kNotHeld);
  EXPECT_EQ(runner->Cancel("block"), JobRunner::CancelOutcome::kSignalled);
  recorder.AwaitRan(2);
  EXPECT_THAT(recorder.ran(), ElementsAre("block", "after"));
  absl::MutexLock lock(&recorder.mutex_);
  EXPECT_TRUE(recorder.saw_cancel_);
  EXPECT_FALSE(recorder.saw_shutdown_);
}

TEST(JobRunnerTest, RequeuePutsAJobBackAtTheFront) {
  Recorder recorder;
  auto runner = StartRunner(recorder, 4, {"block", "b", "c"});
  recorder.started_.WaitForNotification();
  ASSERT_EQ(runner->Cancel("c"), JobRunner::CancelOutcome::kDequeued);
  runner->Requeue("c");
  recorder.release_.Notify();
  recorder.AwaitRan(3);
  EXPECT_THAT(recorder.ran(), ElementsAre("block", "c", "b"));
}

TEST(JobRunnerTest, DestructionStopsTheRunningJobAndRunsNoQueuedOne) {
  Recorder recorder;
  auto runner = StartRunner(recorder, 4, {"block", "never"});
  recorder.started_.WaitForNotification();
  runner.reset();
  EXPECT_THAT(recorder.ran(), ElementsAre("block"));
  absl::MutexLock lock(&recorder.mutex_);
  EXPECT_TRUE(recorder.saw_shutdown_);
  EXPECT_FALSE(recorder.saw_cancel_);
}

TEST(WriteWithRetriesTest, RetriesTransientFailuresOnly) {
  int calls = 0;
  absl::Status status = WriteWithRetries(
      [&] {
        ++calls;
        return calls < 3 ? absl::InternalError("busy") : absl::OkStatus();
      },
      5, absl::Milliseconds(1));
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(calls, 3);
  calls = 0;
  status = WriteWithRetries(
      [&] {
        ++calls;
        return absl::InternalError("disk full");
      },
      4, absl::Milliseconds(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(calls, 4);
  calls = 0;
  status = WriteWithRetries(
      [&] {
        ++calls;
        return absl::FailedPreconditionError("ended");
      },
      4, absl::Milliseconds(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(calls, 1);
}

TEST(ProgressThrottleTest, WritesTheFirstEachStageChangeTheLastAndOncePerInterval) {
  ProgressThrottle throttle(absl::Seconds(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(throttle.ShouldWrite("fp32", false, t0));
  EXPECT_FALSE(throttle.ShouldWrite("fp32", false, t0 + absl::Milliseconds(500)));
  EXPECT_TRUE(throttle.ShouldWrite("fp32", false, t0 + absl::Milliseconds(1000)));
  EXPECT_FALSE(throttle.ShouldWrite("fp32", false, t0 + absl::Milliseconds(1100)));
  EXPECT_TRUE(throttle.ShouldWrite("fp32", true, t0 + absl::Milliseconds(1200)));
  EXPECT_TRUE(throttle.ShouldWrite("quantized", false, t0 + absl::Milliseconds(1300)));
  EXPECT_FALSE(throttle.ShouldWrite("quantized", false, t0 + absl::Milliseconds(1400)));
}

}  // namespace
}  // namespace apq::server
