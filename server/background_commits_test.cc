#include "server/background_commits.h"

#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace apq::server {
namespace {

GenerationBatch Group(int first, int last) {
  GenerationBatch batch;
  batch.first_generation = first;
  batch.last_generation = last;
  return batch;
}

TEST(BackgroundCommitsTest, StoresEveryGroupInOrderOffTheCallersThread) {
  absl::Mutex mutex;
  std::vector<int> stored;
  std::vector<std::thread::id> threads;
  {
    BackgroundCommits commits([&](GenerationBatch& batch) {
      absl::MutexLock lock(&mutex);
      stored.push_back(batch.first_generation);
      threads.push_back(std::this_thread::get_id());
      return absl::OkStatus();
    });
    for (int g = 0; g < 100; ++g) commits.Submit(Group(g, g));
    EXPECT_TRUE(commits.Wait().ok());
    EXPECT_TRUE(commits.idle());
    absl::MutexLock lock(&mutex);
    ASSERT_EQ(stored.size(), 100u);
    for (int g = 0; g < 100; ++g) EXPECT_EQ(stored[g], g);
    for (const std::thread::id id : threads) EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(BackgroundCommitsTest, AtMostOneGroupInFlightAndNotIdleMeanwhile) {
  absl::Notification release;
  absl::Notification started;
  int calls = 0;
  BackgroundCommits commits([&](GenerationBatch&) {
    if (++calls == 1) {
      started.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  commits.Submit(Group(0, 3));
  started.WaitForNotification();
  EXPECT_FALSE(commits.idle());
  std::thread second([&] { commits.Submit(Group(4, 6)); });  // Waits for the first.
  release.Notify();
  second.join();
  EXPECT_TRUE(commits.Wait().ok());
  EXPECT_EQ(calls, 2);
}

TEST(BackgroundCommitsTest, AFailureDropsLaterGroupsAndIsReported) {
  std::vector<int> stored;
  BackgroundCommits commits([&](GenerationBatch& batch) {
    stored.push_back(batch.first_generation);
    if (batch.first_generation == 1) return absl::UnavailableError("disk gone");
    return absl::OkStatus();
  });
  commits.Submit(Group(0, 0));
  commits.Submit(Group(1, 1));
  EXPECT_EQ(commits.Wait().code(), absl::StatusCode::kUnavailable);
  commits.Submit(Group(2, 2));
  EXPECT_EQ(commits.Wait().message(), "disk gone");
  EXPECT_EQ(commits.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(stored, (std::vector<int>{0, 1}));
}

TEST(BackgroundCommitsTest, DestructionStoresTheGroupHandedOver) {
  int stored = 0;
  {
    BackgroundCommits commits([&](GenerationBatch&) {
      ++stored;
      return absl::OkStatus();
    });
    commits.Submit(Group(0, 0));
    commits.Submit(Group(1, 1));
  }
  EXPECT_EQ(stored, 2);
}

}  // namespace
}  // namespace apq::server
