// What the job tests run jobs on: a job manager over a fresh in-memory store behind the
// fault-injecting wrapper, with the catalog of the embedded data (the test's working folder
// must hold data/), and a way to wait for a job's end as its watchers see it.
#ifndef APQ_SERVER_JOB_MANAGER_TESTING_H_
#define APQ_SERVER_JOB_MANAGER_TESTING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "oface/search_space.h"
#include "predictor/mlp_predictor.h"
#include "proto/apq/v1/apq.pb.h"
#include "search/engine_registry.h"
#include "server/catalog.h"
#include "server/job_manager.h"
#include "server/store/faulty_store.h"
#include "server/supernet_host.h"

namespace apq::server {

// Every candidate of the job in id order, page by page.
std::vector<CandidateRecord> AllCandidates(JobStore& jobs, const std::string& job_id);
// Every stored field of the candidate, "|"-separated; its id unless `with_id` is false.
std::string Describe(const CandidateRecord& candidate, bool with_id = true);

// A supernet host that has no supernet (its data folder holds none): jobs on it verify
// nothing.
std::unique_ptr<SupernetHost> NewHostWithoutSupernets();

// A host of the shipped supernets (data/), recalibrating batch norm on `calibration_images`
// train-split images (fewer than the product's 2,000: measurements take a fraction of the
// time, and tests compare them only with each other). Fails the test when one does not load.
std::unique_ptr<SupernetHost> NewHostWithShippedSupernets(int calibration_images);

// The smallest architecture of a space with bitwidth genes, every weight width at
// `weight_bits` and every activation width at `activation_bits` (canonical).
oface::Genotype SmallestAtBits(const oface::SearchSpace& space, int weight_bits,
                               int activation_bits);
// A genotype's BitOps (its static costs).
double StaticBitops(const oface::SearchSpace& space, const oface::Genotype& genotype);

// A random MLP of APQ's shape over `arch_inputs` + `bit_inputs` one-hot features (the bits in
// their own layer when there are any), different for each seed.
std::unique_ptr<predictor::MlpPredictor> RandomMlp(int arch_inputs, int bit_inputs,
                                                   uint32_t seed = 3);
// RandomMlp over `space`'s architecture and bits features.
std::unique_ptr<predictor::MlpPredictor> RandomMlpFor(const oface::SearchSpace& space,
                                                      uint32_t seed);

// Stores a random MLP for `space` (RandomMlpFor) as the space's default predictor; returns its
// version.
std::string AddRandomDefaultPredictor(Store& store, const oface::SearchSpace& space, uint32_t seed);

// Uploads a new version of `device`'s latest table with every latency and energy times
// `factor` (the files rewritten in their own format); returns the new version.
int64_t UploadScaledTable(Catalog& catalog, const std::string& device, double factor);

// A fault to inject into one write of the store (FaultPlan::FailNthWrite's arguments).
struct InjectedFault {
  const char* method;
  int nth;
  FaultPlan::Mode mode;
};
// "<method> #<nth> before write" or "... after commit", for SCOPED_TRACE.
std::string FaultName(const InjectedFault& fault);

class JobTestBed {
 public:
  // `supernets` must outlive the bed.
  explicit JobTestBed(SupernetHost& supernets) : supernets_(supernets) {}
  ~JobTestBed() { StopManager(); }

  // A fresh store, catalog and manager; the plan's counters start after the catalog's own
  // writes (default tables, shipped datasets). Fails the test when they cannot be made.
  void Open();
  // A new manager on the same store and catalog: with StopManager, a restart.
  void StartManager();
  // The commit interval of the managers started from now on (JobManager::Options). The bed
  // starts with zero, every step in its own transaction, so that tests may count writes
  // per step.
  void SetCommitInterval(absl::Duration interval) { options_.commit_interval = interval; }
  // The options of the managers started from now on.
  JobManager::Options& manager_options() { return options_; }
  // Stops the manager as a shutdown does: running jobs stay running in the store.
  void StopManager() { manager_.reset(); }

  // Waits until the job's watchers hear that it ended; returns that last update.
  apq::v1::JobProgress AwaitEnd(const std::string& job_id,
                                absl::Duration timeout = absl::Seconds(120));

  FaultPlan& plan() { return *plan_; }
  Store& store() { return *store_; }
  Catalog& catalog() { return *catalog_; }
  JobManager& manager() { return *manager_; }
  const search::EngineRegistry& engines() const { return *engines_; }

 private:
  SupernetHost& supernets_;
  JobManager::Options options_ = [] {
    JobManager::Options options;
    options.commit_interval = absl::ZeroDuration();
    return options;
  }();
  std::shared_ptr<const search::EngineRegistry> engines_ = search::EngineRegistry::BuiltIn();
  std::shared_ptr<FaultPlan> plan_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<JobManager> manager_;
};

// The fixture of jobs of the bit-allocation engines (iqp, qbitopt, dnas): fmnist_lowbit's
// shipped supernet (one host for the suite, 250 calibration images), predictor and the
// bitfusion table (which runs every 2-8 bit pair, some priced by its fitted model), a test bed
// per test whose managers store every step at once.
class LowBitJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  // The smallest architecture with every weight width at `weight_bits` and every activation
  // width at `activation_bits`, and a genotype's BitOps.
  oface::Genotype Smallest(int weight_bits, int activation_bits) const {
    return SmallestAtBits(*space_, weight_bits, activation_bits);
  }
  double Bitops(const oface::Genotype& genotype) const { return StaticBitops(*space_, genotype); }
  // A search of `engine` (no options) on `device` under `max_bitops`, the smallest
  // architecture held fixed, with `seed`.
  apq::v1::SubmitSearchRequest EngineRequest(const std::string& engine, double max_bitops,
                                             uint64_t seed,
                                             const std::string& device = "bitfusion") const;
  // The job's stored networks, by id.
  std::vector<CandidateRecord> Candidates(const std::string& job_id);
  // Stops the manager once the job has stored `generations` generations (a test then starts
  // it again); false when that did not happen within two minutes.
  bool StopAfter(const std::string& job_id, int generations);

  // A request the engine must refuse: the status code and a part of its message.
  struct Refusal {
    std::string what;
    apq::v1::SubmitSearchRequest request;
    absl::StatusCode code;
    std::string says;
  };
  // The engine options of the refusal's request, to change one.
  static google::protobuf::Map<std::string, apq::v1::EngineOptionValue>& OptionsOf(
      Refusal& refusal) {
    return *refusal.request.mutable_engine_request()->mutable_options();
  }
  // Submits each request and expects its refusal, and that no job was stored.
  void ExpectRefusedBeforeStoring(const std::vector<Refusal>& refusals);

  static SupernetHost* supernets_;
  JobTestBed bed_{*supernets_};
  const oface::SearchSpace* space_ = nullptr;
};

}  // namespace apq::server

#endif  // APQ_SERVER_JOB_MANAGER_TESTING_H_
