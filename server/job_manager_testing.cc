#include "server/job_manager_testing.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"

namespace apq::server {

std::vector<CandidateRecord> AllCandidates(JobStore& jobs, const std::string& job_id) {
  std::vector<CandidateRecord> all;
  CandidateQuery query;
  query.job_id = job_id;
  query.limit = kMaxPageSize;
  for (;; query.offset += query.limit) {
    absl::StatusOr<CandidatePage> page = jobs.ListCandidates(query);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok() || page->candidates.empty()) break;
    all.insert(all.end(), page->candidates.begin(), page->candidates.end());
  }
  return all;
}

std::string Describe(const CandidateRecord& c, bool with_id) {
  const auto figure = [](const std::optional<double>& value) {
    return value ? absl::StrCat(*value) : std::string("-");
  };
  return absl::StrCat(with_id ? absl::StrCat(c.id) : "", "|", c.generation, "|", c.times_seen, "|",
                      c.config_json, "|", figure(c.accuracy), "|", figure(c.latency_ms), "|",
                      figure(c.energy_mj), "|", figure(c.size_mb), "|", figure(c.bitops), "|",
                      c.feasible ? "1" : "0", "|", c.modelled, "|", c.on_pareto_front ? "1" : "0");
}

std::unique_ptr<SupernetHost> NewHostWithoutSupernets() {
  SupernetHost::Options options;
  options.data_dir = "no-supernets";
  absl::StatusOr<std::unique_ptr<SupernetHost>> host = SupernetHost::Create(options);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? *std::move(host) : nullptr;
}

std::string FaultName(const InjectedFault& fault) {
  return absl::StrCat(
      fault.method, " #", fault.nth,
      fault.mode == FaultPlan::Mode::kAfterCommit ? " after commit" : " before write");
}

void JobTestBed::Open() {
  manager_.reset();
  plan_ = std::make_shared<FaultPlan>();
  store_ = NewFaultyStore(NewMemoryStore(), plan_);
  Catalog::Options options;
  options.data_dir = "data";
  options.predictor_threads = 1;
  auto catalog = Catalog::Create(options, *store_);
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  catalog_ = *std::move(catalog);
  StartManager();
}

void JobTestBed::StartManager() {
  auto manager = JobManager::Create(options_, *catalog_, store_->jobs(), store_->datasets(),
                                    supernets_, *engines_);
  ASSERT_TRUE(manager.ok()) << manager.status();
  manager_ = *std::move(manager);
}

apq::v1::JobProgress JobTestBed::AwaitEnd(const std::string& job_id, absl::Duration timeout) {
  absl::Notification ended;
  apq::v1::JobProgress last;
  auto subscription = manager_->Watch(job_id, [&](const apq::v1::JobProgress& progress) {
    if (progress.state() >= apq::v1::JOB_STATE_SUCCEEDED && !ended.HasBeenNotified()) {
      last = progress;
      ended.Notify();
    }
  });
  EXPECT_TRUE(subscription.ok()) << subscription.status();
  if (!subscription.ok()) return last;
  EXPECT_TRUE(ended.WaitForNotificationWithTimeout(timeout)) << job_id << " did not end";
  manager_->Unwatch(job_id, *subscription);
  return last;
}

}  // namespace apq::server
