// The job manager as one replica of several over a shared store (JobManager::Options::replica):
// jobs are claimed from the store and held by leases, and a replica that loses a job's lease
// stops it without another write (another replica runs it now).
#include <memory>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_manager.h"
#include "server/job_manager_testing.h"
#include "server/supernet_host.h"

namespace apq::server {
namespace {

// A search far longer than the test: it ends only when stopped.
apq::v1::SubmitSearchRequest LongSearch() {
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.mutable_budgets()->set_max_latency_ms(25);
  request.mutable_evolution()->set_population_size(10);
  request.mutable_evolution()->set_generations(99999);
  return request;
}

JobManager::Options::Replica Replica(const std::string& holder) {
  JobManager::Options::Replica replica;
  replica.holder = holder;
  replica.lease = absl::Seconds(2);
  replica.poll_interval = absl::Milliseconds(100);
  return replica;
}

// Polls `done` every 50 ms for at most `timeout`.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

int StoredGenerations(Store& store, const std::string& job_id) {
  absl::StatusOr<JobRecord> job = store.jobs().GetJob(job_id);
  return job.ok() ? job->generations_done : -1;
}

TEST(JobReplicaTest, AReplicaClaimsWhatItIsGivenAndRunsItToTheEnd) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.manager_options().replica = Replica("a");
  bed.Open();
  apq::v1::SubmitSearchRequest request = LongSearch();
  request.mutable_evolution()->set_generations(20);
  auto job = bed.manager().Submit(request);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(bed.AwaitEnd(job->id()).state(), apq::v1::JOB_STATE_SUCCEEDED);
  const JobRecord stored = bed.store().jobs().GetJob(job->id()).value();
  EXPECT_EQ(stored.generations_done, 20);
  // Ended: its lease is gone, so nobody can renew it, and nobody claims it.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      bed.store().jobs().RenewLease(job->id(), "a", NowUnixSeconds() + 10).status()));
  EXPECT_FALSE(bed.store()
                   .jobs()
                   .ClaimJob("b", NowUnixSeconds(), NowUnixSeconds() + 10)
                   .value()
                   .has_value());
}

TEST(JobReplicaTest, ALostLeaseStopsTheJobWithoutAnotherWrite) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.manager_options().replica = Replica("a");
  bed.Open();
  auto job = bed.manager().Submit(LongSearch());
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(
      WaitFor([&] { return StoredGenerations(bed.store(), job->id()) > 2; }, absl::Seconds(60)));

  // Another replica claims it as if replica a had been silent for longer than its lease (a
  // claim at a time past the lease's end): replica a must stop writing to it.
  absl::StatusOr<std::optional<ClaimedJob>> taken =
      bed.store().jobs().ClaimJob("b", NowUnixSeconds() + 60, NowUnixSeconds() + 3600);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->job_id, job->id());
  EXPECT_EQ((*taken)->state, JobState::kRunning);

  // Within a lease replica a renews (or fences a write), finds the lease lost and abandons.
  absl::SleepFor(absl::Seconds(3));
  const int stopped_at = StoredGenerations(bed.store(), job->id());
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(StoredGenerations(bed.store(), job->id()), stopped_at)
      << "replica a went on writing after it lost the lease";
  const JobRecord stored = bed.store().jobs().GetJob(job->id()).value();
  EXPECT_EQ(stored.state, JobState::kRunning) << "replica a ended a job it no longer held";
  EXPECT_TRUE(bed.store().jobs().RenewLease(job->id(), "b", NowUnixSeconds() + 3600).ok())
      << "replica b lost the lease it took";
  // A shutdown of replica a leaves b's lease alone.
  bed.StopManager();
  EXPECT_TRUE(bed.store().jobs().RenewLease(job->id(), "b", NowUnixSeconds() + 3600).ok());
}

TEST(JobReplicaTest, BadReplicaOptionsAreRefusedNamingTheOption) {
  std::unique_ptr<SupernetHost> supernets = NewHostWithoutSupernets();
  JobTestBed bed(*supernets);
  bed.Open();
  struct Case {
    JobManager::Options::Replica replica;
    std::string mention;
  };
  JobManager::Options::Replica short_lease = Replica("a");
  short_lease.lease = absl::Milliseconds(500);
  JobManager::Options::Replica slow_poll = Replica("a");
  slow_poll.poll_interval = absl::Seconds(1);
  JobManager::Options::Replica long_name = Replica(std::string(300, 'x'));
  for (const Case& c :
       {Case{short_lease, "replica.lease"}, Case{slow_poll, "replica.poll_interval"},
        Case{long_name, "replica.holder"}}) {
    JobManager::Options options;
    options.replica = c.replica;
    absl::StatusOr<std::unique_ptr<JobManager>> manager =
        JobManager::Create(options, bed.catalog(), bed.store().jobs(), bed.store().datasets(),
                           *supernets, bed.engines());
    EXPECT_EQ(manager.status().code(), absl::StatusCode::kInvalidArgument) << c.mention;
    EXPECT_THAT(std::string(manager.status().message()), ::testing::HasSubstr(c.mention));
  }
}

}  // namespace
}  // namespace apq::server
