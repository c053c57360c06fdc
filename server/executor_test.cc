#include "server/executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Executor> NewExecutor(int threads, int capacity) {
  Executor::Options options;
  options.name = "test";
  options.threads = threads;
  options.queue_capacity = capacity;
  auto executor = Executor::Create(options);
  EXPECT_TRUE(executor.ok()) << executor.status();
  return *std::move(executor);
}

TEST(ExecutorTest, RejectsOptionsOutOfRange) {
  Executor::Options options;
  options.threads = 0;
  EXPECT_THAT(Executor::Create(options).status().message(), HasSubstr("threads"));
  options.threads = 1;
  options.queue_capacity = 0;
  EXPECT_THAT(Executor::Create(options).status().message(), HasSubstr("queue_capacity"));
}

TEST(ExecutorTest, AFullQueueRefusesWithoutRunningAnything) {
  auto executor = NewExecutor(1, 2);
  absl::Notification started;
  absl::Notification release;
  ASSERT_TRUE(executor
                  ->Schedule([&] {
                    started.Notify();
                    release.WaitForNotification();
                  })
                  .ok());
  started.WaitForNotification();
  std::atomic<int> ran{0};
  ASSERT_TRUE(executor->Schedule([&] { ++ran; }).ok());
  ASSERT_TRUE(executor->Schedule([&] { ++ran; }).ok());
  const absl::Status full = executor->Schedule([&] { ran += 100; });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("test executor is busy"));
  release.Notify();
  EXPECT_EQ(executor->stats().refused, 1);
  executor.reset();  // Drains.
  EXPECT_EQ(ran.load(), 2);
}

TEST(ExecutorTest, ATaskWhoseDeadlinePassedWhileQueuedIsAnsweredWithoutRunning) {
  auto executor = NewExecutor(1, 8);
  absl::Notification release;
  ASSERT_TRUE(executor->Schedule([&] { release.WaitForNotification(); }).ok());
  std::atomic<bool> ran{false};
  std::atomic<bool> expired{false};
  ASSERT_TRUE(
      executor
          ->Schedule(
              absl::Now() + absl::Milliseconds(20), [&] { ran = true; }, [&] { expired = true; })
          .ok());
  std::atomic<bool> in_time{false};
  ASSERT_TRUE(executor
                  ->Schedule(
                      absl::Now() + absl::Hours(1), [&] { in_time = true; }, [] {})
                  .ok());
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  while (executor->stats().ran + executor->stats().expired < 3) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(executor->stats().expired, 1);
  EXPECT_EQ(executor->stats().ran, 2);
  executor.reset();
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(expired.load());
  EXPECT_TRUE(in_time.load());
}

}  // namespace
}  // namespace apq::server
