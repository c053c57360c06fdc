// The assembled server in process, over real gRPC on loopback: the engine seam end to end
// (a test-only engine registered beside the product's goes through the real job runner,
// store and services), ListEngines, and the two executors (a cheap call never waits behind
// a measurement; a call whose deadline passed while queued is answered without running).
#include "server/server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"
#include "proto/apq/v1/apq.grpc.pb.h"
#include "search/engine.h"
#include "search/engine_registry.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// The field of the google.rpc.BadRequest detail a status carries ("(none)" without one).
std::string ViolatedField(const grpc::Status& status) {
  google::rpc::Status rich;
  google::rpc::BadRequest bad_request;
  if (!rich.ParseFromString(status.error_details()) || rich.details_size() != 1 ||
      !rich.details(0).UnpackTo(&bad_request) || bad_request.field_violations_size() != 1) {
    return "(none)";
  }
  return bad_request.field_violations(0).field();
}

// The field path an expected message fragment starts with ("space: required" -> "space").
std::string FieldOf(const std::string& says) { return says.substr(0, says.find(':')); }

// Prices and scores one network drawn from the space with the job's seed, reports it as its
// only step, and returns it: the smallest engine that exercises the whole seam.
class OneSampleEngine final : public search::Engine {
 public:
  OneSampleEngine() {
    search::OptionSpec draws;
    draws.name = "draws";
    draws.type = search::OptionSpec::Type::kInt;
    draws.default_value = int64_t{1};
    draws.min = 1;
    draws.max = 10;
    draws.description = "samples drawn; the last one is reported";
    specs_.push_back(draws);
    search::OptionSpec steps;
    steps.name = "steps";
    steps.type = search::OptionSpec::Type::kInt;
    steps.default_value = int64_t{1};
    steps.min = 1;
    steps.max = 3;
    steps.description = "steps reporting the network (the first step's count only)";
    specs_.push_back(steps);
    search::OptionSpec mark_last;
    mark_last.name = "mark_last_step";
    mark_last.type = search::OptionSpec::Type::kBool;
    mark_last.default_value = true;
    mark_last.description = "whether the last step's report says so (the engine contract)";
    specs_.push_back(mark_last);
  }
  std::string name() const override { return "one_sample"; }
  std::string description() const override { return "test engine: one sampled network"; }
  const std::vector<search::OptionSpec>& option_specs() const override { return specs_; }
  int TotalSteps(const search::EngineOptions& options) const override {
    return static_cast<int>(search::IntOption(options, "steps")) - 1;
  }
  absl::StatusOr<search::EngineResult> Run(const search::SearchProblem& problem,
                                           const search::EngineOptions& options, uint64_t seed,
                                           const search::StepCallback& on_step,
                                           const search::CancelCheck&,
                                           absl::string_view) const override {
    std::vector<search::Individual> scored(1);
    search::Individual& individual = scored[0];
    oface::Rng rng(seed);
    for (int64_t i = 0; i < search::IntOption(options, "draws"); ++i) {
      individual.genotype = problem.space->Sample(rng);
    }
    individual.cost = problem.cost_model->Evaluate(individual.genotype);
    predictor::FeatureBatch batch;
    problem.space->ActiveFeatures(individual.genotype, batch.mutable_indices());
    batch.EndSample();
    std::vector<float> predicted;
    absl::Status predicted_ok = problem.predictor->Predict(batch, &predicted);
    if (!predicted_ok.ok()) return predicted_ok;
    individual.accuracy = predicted[0];
    const int last_step = TotalSteps(options);
    for (int step = 0; step <= last_step; ++step) {
      search::StepReport report;
      report.step = step;
      if (step == 0) report.scored = scored;
      report.candidates_evaluated = 1;
      report.best = &individual;
      report.best_index_in_step = step == 0 ? 0 : -1;
      report.write_checkpoint = [step] { return absl::StrCat("after ", step); };
      report.final_step = step == last_step && search::BoolOption(options, "mark_last_step");
      absl::Status stored = on_step(report);
      if (!stored.ok()) return stored;
    }
    search::EngineResult result;
    result.best = individual;
    result.last_step = last_step;
    result.candidates_evaluated = 1;
    return result;
  }

 private:
  std::vector<search::OptionSpec> specs_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("server_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                       ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    std::filesystem::remove(db_);
  }

  void Start(int torch_threads = 1, absl::Duration commit_interval = absl::Milliseconds(250)) {
    std::unique_ptr<search::EngineRegistry> engines = search::EngineRegistry::WithBuiltIns();
    ASSERT_TRUE(engines->Register(std::make_unique<OneSampleEngine>()).ok());
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.database_path = db_.string();
    options.data_dir = "data";
    options.predictor_threads = 1;
    options.torch_threads = torch_threads;
    options.job_commit_interval = commit_interval;
    options.engines = std::move(engines);
    options.auth_required = false;  // access_test.cc covers tokens and roles.
    auto server = ApqServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    search_ = apq::v1::SearchService::NewStub(channel);
    devices_ = apq::v1::DeviceService::NewStub(channel);
  }

  void TearDown() override {
    server_.reset();
    std::filesystem::remove(db_);
  }

  apq::v1::Job AwaitEnd(const std::string& job_id) {
    apq::v1::Job job;
    for (int i = 0; i < 6000; ++i) {
      grpc::ClientContext context;
      apq::v1::GetJobRequest request;
      request.set_job_id(job_id);
      EXPECT_TRUE(search_->GetJob(&context, request, &job).ok());
      if (job.state() >= apq::v1::JOB_STATE_SUCCEEDED) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return job;
  }

  std::filesystem::path db_;
  std::unique_ptr<ApqServer> server_;
  std::unique_ptr<apq::v1::SearchService::Stub> search_;
  std::unique_ptr<apq::v1::DeviceService::Stub> devices_;
};

apq::v1::SubmitSearchRequest OneSampleRequest(int64_t draws) {
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.set_seed(42);
  request.mutable_engine_request()->set_name("one_sample");
  if (draws > 0) {
    (*request.mutable_engine_request()->mutable_options())["draws"].set_int_value(draws);
  }
  return request;
}

TEST_F(ServerTest, ListEnginesShowsEachEngineWithItsOptionsAndDefaults) {
  Start();
  grpc::ClientContext context;
  apq::v1::ListEnginesResponse response;
  ASSERT_TRUE(search_->ListEngines(&context, {}, &response).ok());
  ASSERT_EQ(response.engines_size(), 6);
  // By name.
  EXPECT_EQ(response.engines(0).name(), "dnas");
  // dnas lacks ssps's fixing options and has the architecture mode: 14 against 15.
  EXPECT_EQ(response.engines(0).options_size(), 14);
  EXPECT_EQ(response.engines(0).options(5).name(), "weight_lr");
  EXPECT_EQ(response.engines(0).options(13).name(), "architecture");
  EXPECT_EQ(response.engines(0).options(13).default_value().choice_value(), "fixed");
  const apq::v1::Engine& evolution = response.engines(1);
  EXPECT_EQ(evolution.name(), "evolution");
  ASSERT_EQ(evolution.options_size(), 8);
  EXPECT_EQ(evolution.options(0).name(), "population_size");
  EXPECT_EQ(evolution.options(0).type(), apq::v1::EngineOption::TYPE_INT);
  EXPECT_EQ(evolution.options(0).default_value().int_value(), 100);
  EXPECT_EQ(evolution.options(0).min(), 2);
  EXPECT_EQ(evolution.options(0).max(), 10000);
  EXPECT_EQ(evolution.options(5).default_from(), "mutate_probability");
  EXPECT_EQ(evolution.options(7).name(), "lower_bits_of_infeasible_draws");
  EXPECT_EQ(evolution.options(7).type(), apq::v1::EngineOption::TYPE_BOOL);
  EXPECT_TRUE(evolution.options(7).default_value().bool_value());
  const apq::v1::Engine& iqp = response.engines(2);
  EXPECT_EQ(iqp.name(), "iqp");
  ASSERT_EQ(iqp.options_size(), 6);
  EXPECT_EQ(iqp.options(0).name(), "calibration_images");
  EXPECT_EQ(iqp.options(0).default_value().int_value(), 512);
  EXPECT_EQ(iqp.options(0).max(), 50000);
  EXPECT_EQ(iqp.options(2).name(), "activations");
  EXPECT_THAT(iqp.options(2).choices(),
              ::testing::ElementsAre("highest", "searched", "2", "3", "4", "6", "8"));
  EXPECT_EQ(response.engines(3).name(), "one_sample");
  const apq::v1::Engine& qbitopt = response.engines(4);
  EXPECT_EQ(qbitopt.name(), "qbitopt");
  ASSERT_EQ(qbitopt.options_size(), 6);
  EXPECT_EQ(qbitopt.options(0).name(), "steps");
  EXPECT_EQ(qbitopt.options(0).default_value().int_value(), 300);
  EXPECT_THAT(qbitopt.options(5).choices(),
              ::testing::ElementsAre("highest", "2", "3", "4", "6", "8"));
  const apq::v1::Engine& ssps = response.engines(5);
  EXPECT_EQ(ssps.name(), "ssps");
  ASSERT_EQ(ssps.options_size(), 15);
  EXPECT_EQ(ssps.options(5).name(), "fix_every");
  EXPECT_EQ(ssps.options(6).name(), "certainty");
  EXPECT_THAT(ssps.options(6).choices(),
              ::testing::ElementsAre("max_probability", "margin", "entropy"));
}

// An engine that does not mark its last step breaks the contract that lets a job store
// checkpoints only now and then: its job fails naming the contract, keeping the step stored
// with a checkpoint (the first, stored at once) and not the later one, which has none.
TEST_F(ServerTest, AnEngineThatDoesNotMarkItsLastStepFailsItsJob) {
  // Commits an hour apart: the second step is never stored at once, however slow the machine.
  Start(/*torch_threads=*/1, absl::Hours(1));
  apq::v1::SubmitSearchRequest request = OneSampleRequest(1);
  auto& options = *request.mutable_engine_request()->mutable_options();
  options["steps"].set_int_value(2);
  options["mark_last_step"].set_bool_value(false);
  apq::v1::Job submitted;
  {
    grpc::ClientContext context;
    grpc::Status status = search_->SubmitSearch(&context, request, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const apq::v1::Job job = AwaitEnd(submitted.id());
  EXPECT_EQ(job.state(), apq::v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), HasSubstr("search::StepReport::final_step"));
  EXPECT_EQ(job.generations_done(), 0);
  EXPECT_EQ(job.candidates_evaluated(), 1);
  // Marked, the same two steps succeed.
  options["mark_last_step"].set_bool_value(true);
  {
    grpc::ClientContext context;
    grpc::Status status = search_->SubmitSearch(&context, request, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const apq::v1::Job marked = AwaitEnd(submitted.id());
  EXPECT_EQ(marked.state(), apq::v1::JOB_STATE_SUCCEEDED) << marked.error();
  EXPECT_EQ(marked.generations_done(), 1);
}

TEST_F(ServerTest, AnEngineAddedBesideTheProductsRunsAJobEndToEnd) {
  Start();
  apq::v1::Job submitted;
  {
    grpc::ClientContext context;
    grpc::Status status = search_->SubmitSearch(&context, OneSampleRequest(3), &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const apq::v1::Job job = AwaitEnd(submitted.id());
  ASSERT_EQ(job.state(), apq::v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.request().engine_request().name(), "one_sample");
  EXPECT_EQ(job.request().engine_request().options().at("draws").int_value(), 3);
  EXPECT_EQ(job.candidates_evaluated(), 1);
  EXPECT_EQ(job.pareto_front_size(), 1);

  // The engine's network, drawn here the same way.
  const std::unique_ptr<oface::SearchSpace> space = oface::NewOfaMbv3Space();
  oface::Rng rng(42);
  oface::Genotype genotype;
  for (int i = 0; i < 3; ++i) genotype = space->Sample(rng);
  const std::string expected = space->ToJson(space->Canonical(genotype));
  ASSERT_TRUE(job.has_best());
  EXPECT_EQ(job.best().config_json(), expected);
  EXPECT_TRUE(job.best().on_pareto_front() || job.best().id() > 0);

  grpc::ClientContext candidates_context;
  apq::v1::ListCandidatesRequest candidates_request;
  candidates_request.set_job_id(job.id());
  apq::v1::ListCandidatesResponse candidates;
  ASSERT_TRUE(search_->ListCandidates(&candidates_context, candidates_request, &candidates).ok());
  ASSERT_EQ(candidates.candidates_size(), 1);
  EXPECT_EQ(candidates.candidates(0).id(), job.best().id());
  EXPECT_TRUE(candidates.candidates(0).on_pareto_front());
  // Candidates are named by strings like jobs; the job's best is the same resource.
  EXPECT_EQ(candidates.candidates(0).name(),
            absl::StrCat("jobs/", job.id(), "/candidates/", candidates.candidates(0).id()));
  EXPECT_EQ(job.best().name(), candidates.candidates(0).name());

  grpc::ClientContext deploy_context;
  apq::v1::GetDeployableConfigRequest deploy_request;
  deploy_request.set_job_id(job.id());
  apq::v1::DeployableConfig deployable;
  ASSERT_TRUE(search_->GetDeployableConfig(&deploy_context, deploy_request, &deployable).ok());
  EXPECT_EQ(deployable.config_json(), expected);
  EXPECT_EQ(deployable.pareto_front_size(), 1);
}

TEST_F(ServerTest, EngineRequestsAreValidatedNamingTheField) {
  Start();
  const struct {
    apq::v1::SubmitSearchRequest request;
    grpc::StatusCode code;
    std::string says;
  } cases[] = {
      {[] {
         auto r = OneSampleRequest(0);
         r.mutable_engine_request()->set_name("annealing");
         return r;
       }(),
       grpc::StatusCode::NOT_FOUND, "evolution, iqp, one_sample"},
      {[] {
         auto r = OneSampleRequest(0);
         r.mutable_engine_request()->clear_name();
         return r;
       }(),
       grpc::StatusCode::INVALID_ARGUMENT, "engine.name"},
      {OneSampleRequest(11), grpc::StatusCode::INVALID_ARGUMENT, "engine.options.draws"},
      {[] {
         auto r = OneSampleRequest(0);
         (*r.mutable_engine_request()->mutable_options())["draws"].set_double_value(1.5);
         return r;
       }(),
       grpc::StatusCode::INVALID_ARGUMENT, "engine.options.draws: must be an integer"},
      {[] {
         auto r = OneSampleRequest(0);
         (*r.mutable_engine_request()->mutable_options())["speed"].set_int_value(1);
         return r;
       }(),
       grpc::StatusCode::INVALID_ARGUMENT, "engine.options.speed"},
      {[] {
         auto r = OneSampleRequest(0);
         r.mutable_evolution()->set_population_size(1);
         return r;
       }(),
       grpc::StatusCode::INVALID_ARGUMENT, "evolution.population_size"},
  };
  for (const auto& c : cases) {
    grpc::ClientContext context;
    apq::v1::Job job;
    const grpc::Status status = search_->SubmitSearch(&context, c.request, &job);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.says));
    // The offending field, for clients, without parsing the message.
    if (c.code == grpc::StatusCode::INVALID_ARGUMENT) {
      EXPECT_EQ(ViolatedField(status), FieldOf(c.says)) << status.error_message();
    }
  }
  grpc::ClientContext context;
  apq::v1::ListJobsResponse jobs;
  ASSERT_TRUE(search_->ListJobs(&context, {}, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0) << "a refused request stores nothing";
}

// Every RPC that takes a required field, called without it: INVALID_ARGUMENT whose
// google.rpc.BadRequest detail names the field the message starts with.
TEST_F(ServerTest, EveryMissingRequiredFieldComesBackAsAFieldViolation) {
  Start();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials());
  auto predictors = apq::v1::PredictorService::NewStub(channel);
  auto access = apq::v1::AccessService::NewStub(channel);
  const auto call = [](auto&& rpc) {
    grpc::ClientContext context;
    return rpc(&context);
  };
  const struct {
    const char* rpc;
    std::function<grpc::Status()> run;
    const char* field;
  } cases[] = {
      {"SubmitSearch",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Job out;
           return search_->SubmitSearch(c, {}, &out);
         });
       },
       "space"},
      {"GetJob",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Job out;
           return search_->GetJob(c, {}, &out);
         });
       },
       "job_id"},
      {"CancelJob",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Job out;
           return search_->CancelJob(c, {}, &out);
         });
       },
       "job_id"},
      {"DeleteJob",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::DeleteJobResponse out;
           return search_->DeleteJob(c, {}, &out);
         });
       },
       "job_id"},
      {"ListJobs",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListJobsRequest request;
           request.set_page_size(-1);
           apq::v1::ListJobsResponse out;
           return search_->ListJobs(c, request, &out);
         });
       },
       "page_size"},
      {"ListJobs",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListJobsRequest request;
           request.set_space("Not A Space");
           apq::v1::ListJobsResponse out;
           return search_->ListJobs(c, request, &out);
         });
       },
       "space"},
      {"ListJobs",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListJobsRequest request;
           request.set_device("../etc");
           apq::v1::ListJobsResponse out;
           return search_->ListJobs(c, request, &out);
         });
       },
       "device"},
      {"ListCandidates",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListCandidatesResponse out;
           return search_->ListCandidates(c, {}, &out);
         });
       },
       "job_id"},
      {"GetDeployableConfig",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::DeployableConfig out;
           return search_->GetDeployableConfig(c, {}, &out);
         });
       },
       "job_id"},
      {"Evaluate",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::EvaluateResponse out;
           return search_->Evaluate(c, {}, &out);
         });
       },
       "space"},
      {"ListJobArtifacts",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListJobArtifactsResponse out;
           return search_->ListJobArtifacts(c, {}, &out);
         });
       },
       "job_id"},
      {"GetArtifact",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Artifact out;
           return search_->GetArtifact(c, {}, &out);
         });
       },
       "kind"},
      {"UploadCostTable",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Device out;
           return devices_->UploadCostTable(c, {}, &out);
         });
       },
       "device"},
      {"UploadDataset",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::Dataset out;
           return predictors->UploadDataset(c, {}, &out);
         });
       },
       "name"},
      {"TrainPredictor",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::TrainingJob out;
           return predictors->TrainPredictor(c, {}, &out);
         });
       },
       "space"},
      {"ListPredictors",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::ListPredictorsResponse out;
           return predictors->ListPredictors(c, {}, &out);
         });
       },
       "space"},
      {"DescribeSpace",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::SpaceDescription out;
           return apq::v1::SpaceService::NewStub(channel)->DescribeSpace(c, {}, &out);
         });
       },
       "space"},
      {"CreateToken",
       [&] {
         return call([&](grpc::ClientContext* c) {
           apq::v1::CreatedToken out;
           return access->CreateToken(c, {}, &out);
         });
       },
       "role"},
  };
  for (const auto& c : cases) {
    const grpc::Status status = c.run();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.rpc << ": " << status.error_message();
    EXPECT_EQ(ViolatedField(status), c.field) << c.rpc << ": " << status.error_message();
    EXPECT_EQ(FieldOf(status.error_message()), c.field) << c.rpc;
  }
}

TEST_F(ServerTest, ListJobsFiltersBySpaceAndDeviceAndPagesWithinTheFilter) {
  Start();
  // Three note10 jobs of ofa_mbv3 and one fmnist_mbv2 job on local-cpu.
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    apq::v1::Job job;
    ASSERT_TRUE(search_->SubmitSearch(&context, OneSampleRequest(1), &job).ok());
  }
  apq::v1::SubmitSearchRequest other = OneSampleRequest(1);
  other.set_space("fmnist_mbv2");
  other.set_device("local-cpu");
  {
    grpc::ClientContext context;
    apq::v1::Job job;
    const grpc::Status status = search_->SubmitSearch(&context, other, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const auto list = [&](const std::string& space, const std::string& device, int page_size,
                        const std::string& token, std::string* next) {
    apq::v1::ListJobsRequest request;
    request.set_space(space);
    request.set_device(device);
    request.set_page_size(page_size);
    request.set_page_token(token);
    apq::v1::ListJobsResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(search_->ListJobs(&context, request, &response).ok());
    std::vector<std::string> ids;
    for (const apq::v1::Job& job : response.jobs()) ids.push_back(job.id());
    if (next != nullptr) *next = response.next_page_token();
    return ids;
  };
  EXPECT_THAT(list("fmnist_mbv2", "", 10, "", nullptr), ::testing::ElementsAre("job-4"));
  EXPECT_THAT(list("", "local-cpu", 10, "", nullptr), ::testing::ElementsAre("job-4"));
  std::string next;
  EXPECT_THAT(list("ofa_mbv3", "note10", 2, "", &next), ::testing::ElementsAre("job-3", "job-2"));
  ASSERT_FALSE(next.empty());
  EXPECT_THAT(list("ofa_mbv3", "note10", 2, next, nullptr), ::testing::ElementsAre("job-1"));
  // The token belongs to its filter.
  apq::v1::ListJobsRequest request;
  request.set_space("fmnist_mbv2");
  request.set_page_token(next);
  apq::v1::ListJobsResponse response;
  grpc::ClientContext context;
  const grpc::Status status = search_->ListJobs(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "page_token");
}

TEST_F(ServerTest, ListJobsFiltersByLabelAndItsTokensBelongToTheLabel) {
  Start();
  for (const char* label : {"nightly", "", "nightly", "nightly"}) {
    apq::v1::SubmitSearchRequest request = OneSampleRequest(1);
    request.set_label(label);
    grpc::ClientContext context;
    apq::v1::Job job;
    ASSERT_TRUE(search_->SubmitSearch(&context, request, &job).ok());
  }
  const auto list = [&](std::optional<std::string> label, int page_size, const std::string& token,
                        std::string* next, grpc::Status* status = nullptr) {
    apq::v1::ListJobsRequest request;
    if (label.has_value()) request.set_label(*label);
    request.set_page_size(page_size);
    request.set_page_token(token);
    apq::v1::ListJobsResponse response;
    grpc::ClientContext context;
    const grpc::Status called = search_->ListJobs(&context, request, &response);
    if (status != nullptr) *status = called;
    std::vector<std::string> ids;
    for (const apq::v1::Job& job : response.jobs()) ids.push_back(job.id());
    if (next != nullptr) *next = response.next_page_token();
    return ids;
  };
  EXPECT_THAT(list("", 10, "", nullptr), ::testing::ElementsAre("job-2"));
  EXPECT_THAT(list(std::nullopt, 10, "", nullptr).size(), 4u);
  std::string next;
  EXPECT_THAT(list("nightly", 2, "", &next), ::testing::ElementsAre("job-4", "job-3"));
  EXPECT_THAT(list("nightly", 2, next, nullptr), ::testing::ElementsAre("job-1"));
  grpc::Status status;
  list("weekly", 2, next, nullptr, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "page_token");
  list(std::string(300, 'x'), 2, "", nullptr, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "label");
}

// A client learns what a config accepts from the server: every space listed with what the
// server has for it, and one space's fields with the values a config writes.
TEST_F(ServerTest, SpacesDescribeTheirConfigsDevicesSupernetAndPredictor) {
  Start();
  auto spaces = apq::v1::SpaceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  apq::v1::ListSpacesResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(spaces->ListSpaces(&context, {}, &listed).ok());
  }
  std::map<std::string, apq::v1::SpaceDescription> by_name;
  for (const apq::v1::SpaceDescription& space : listed.spaces()) by_name[space.name()] = space;
  ASSERT_EQ(by_name.size(), 5);
  EXPECT_EQ(by_name["ofa_mbv3"].field_count(), 46);
  EXPECT_FALSE(by_name["ofa_mbv3"].has_bits());
  EXPECT_FALSE(by_name["ofa_mbv3"].has_supernet());
  EXPECT_TRUE(by_name["ofa_mbv3"].has_predictor());
  EXPECT_THAT(by_name["ofa_mbv3"].devices(), ::testing::Contains("note10"));
  EXPECT_TRUE(by_name["fmnist_lowbit"].has_supernet());
  EXPECT_FALSE(by_name["fmnist_lowbit"].supernet_version().empty());
  EXPECT_TRUE(by_name["fmnist_lowbit"].has_predictor());
  EXPECT_THAT(by_name["fmnist_lowbit"].modelled_devices(), ::testing::Contains("bitfusion"));
  EXPECT_FALSE(by_name["apq_mbv2"].has_predictor());
  for (const auto& [name, space] : by_name) EXPECT_EQ(space.fields_size(), 0) << name;

  apq::v1::DescribeSpaceRequest request;
  request.set_space("fmnist_lowbit");
  apq::v1::SpaceDescription described;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(spaces->DescribeSpace(&context, request, &described).ok());
  }
  ASSERT_EQ(described.fields_size(), 75);
  EXPECT_EQ(described.fields(0).name(), "ks[0]");
  EXPECT_EQ(described.fields(0).json_path(), "[0].ks[0]");
  EXPECT_THAT(described.fields(0).json_values(), ::testing::ElementsAre("3", "5", "7"));
  EXPECT_EQ(described.example_config_json().front(), '[');
  // The example evaluates: it is a config of the space.
  apq::v1::EvaluateRequest evaluate;
  evaluate.set_space("fmnist_lowbit");
  evaluate.add_configs_json(described.example_config_json());
  apq::v1::EvaluateResponse evaluated;
  {
    grpc::ClientContext context;
    EXPECT_TRUE(search_->Evaluate(&context, evaluate, &evaluated).ok());
  }
  request.set_space("ofa");
  grpc::ClientContext context;
  const grpc::Status unknown = spaces->DescribeSpace(&context, request, &described);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), HasSubstr("fmnist_lowbit"));
}

TEST_F(ServerTest, EvaluateRefusesBadInputNamingTheField) {
  Start();
  const std::string config = R"({"ks": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],
      "e": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], "d": [2,2,2,2,2], "r": 160})";
  const auto with = [&](auto change) {
    apq::v1::EvaluateRequest request;
    request.set_space("ofa_mbv3");
    request.set_device("note10");
    request.add_configs_json(config);
    change(request);
    return request;
  };
  const struct {
    apq::v1::EvaluateRequest request;
    grpc::StatusCode code;
    std::string says;
  } cases[] = {
      {with([](apq::v1::EvaluateRequest& r) { r.clear_space(); }),
       grpc::StatusCode::INVALID_ARGUMENT, "space: required"},
      {with([](apq::v1::EvaluateRequest& r) {
         r.clear_space();
         r.set_measure(apq::v1::MEASURE_MODE_FP32);
       }),
       grpc::StatusCode::INVALID_ARGUMENT, "space: required"},
      {with([](apq::v1::EvaluateRequest& r) { r.set_space("ofa"); }), grpc::StatusCode::NOT_FOUND,
       "ofa_mbv3"},
      {with([](apq::v1::EvaluateRequest& r) { r.clear_configs_json(); }),
       grpc::StatusCode::INVALID_ARGUMENT, "configs_json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.request.ShortDebugString());
    grpc::ClientContext context;
    apq::v1::EvaluateResponse response;
    const grpc::Status status = search_->Evaluate(&context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.says));
    if (c.code == grpc::StatusCode::INVALID_ARGUMENT) {
      EXPECT_EQ(ViolatedField(status), FieldOf(c.says)) << status.error_message();
    }
  }
}

TEST_F(ServerTest, AVerifiedSearchDeploysItsMeasuredBestEndToEnd) {
  Start();
  apq::v1::SubmitSearchRequest request;
  request.set_space("fmnist_mbv2");
  request.set_device("local-cpu");
  request.set_seed(3);
  request.mutable_evolution()->set_population_size(12);
  request.mutable_evolution()->set_generations(2);
  request.mutable_verification()->set_top_k(3);
  request.mutable_verification()->set_images(500);
  request.mutable_verification()->set_dataset("finalists");
  apq::v1::Job submitted;
  {
    grpc::ClientContext context;
    const grpc::Status status = search_->SubmitSearch(&context, request, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // The stream shows the verification stage measuring finalists, then the end.
  std::vector<int> measured_seen;
  apq::v1::JobProgress last;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    apq::v1::WatchJobRequest watch;
    watch.set_job_id(submitted.id());
    std::unique_ptr<grpc::ClientReader<apq::v1::JobProgress>> reader =
        search_->WatchJob(&context, watch);
    apq::v1::JobProgress progress;
    while (reader->Read(&progress)) {
      if (progress.stage() == apq::v1::JOB_STAGE_VERIFICATION) {
        measured_seen.push_back(progress.verification().measured());
      }
      last = progress;
    }
    const grpc::Status status = reader->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(last.state(), apq::v1::JOB_STATE_SUCCEEDED) << last.error();
  ASSERT_FALSE(measured_seen.empty());
  EXPECT_EQ(measured_seen.back(), 3);
  EXPECT_EQ(last.verification().finalists(), 3);

  const apq::v1::Job job = AwaitEnd(submitted.id());
  ASSERT_TRUE(job.has_best() && job.has_predicted_best());
  EXPECT_EQ(job.stage(), apq::v1::JOB_STAGE_VERIFICATION);
  EXPECT_EQ(job.verification().measured(), 3);
  ASSERT_TRUE(job.best().metrics().has_measured_accuracy());

  // The measured finalists, predicted and measured side by side; the best is their argmax.
  grpc::ClientContext candidates_context;
  apq::v1::ListCandidatesRequest candidates_request;
  candidates_request.set_job_id(job.id());
  candidates_request.set_sort_by(apq::v1::SORT_METRIC_ACCURACY);
  candidates_request.set_feasibility(apq::v1::FEASIBILITY_FEASIBLE);
  candidates_request.set_page_size(10000);
  apq::v1::ListCandidatesResponse candidates;
  ASSERT_TRUE(search_->ListCandidates(&candidates_context, candidates_request, &candidates).ok());
  int measured = 0;
  double best_measured = -1;
  for (const apq::v1::Candidate& candidate : candidates.candidates()) {
    if (!candidate.metrics().has_measured_accuracy()) continue;
    ++measured;
    EXPECT_TRUE(candidate.metrics().has_accuracy());
    EXPECT_EQ(candidate.metrics().measured_split(), "validation");
    EXPECT_EQ(candidate.metrics().measured_method(), "quant-from-supernet");
    best_measured = std::max(best_measured, candidate.metrics().measured_accuracy());
  }
  EXPECT_EQ(measured, 3);
  EXPECT_EQ(job.best().metrics().measured_accuracy(), best_measured);

  grpc::ClientContext deploy_context;
  apq::v1::GetDeployableConfigRequest deploy_request;
  deploy_request.set_job_id(job.id());
  apq::v1::DeployableConfig deployable;
  const grpc::Status deployed =
      search_->GetDeployableConfig(&deploy_context, deploy_request, &deployable);
  ASSERT_TRUE(deployed.ok()) << deployed.error_message();
  EXPECT_EQ(deployable.config_json(), job.best().config_json());
  EXPECT_EQ(deployable.metrics().measured_accuracy(), best_measured);
  EXPECT_EQ(deployable.metrics().measured_split(), "validation");
  EXPECT_TRUE(deployable.metrics().has_accuracy()) << "the predicted accuracy beside it";
}

TEST_F(ServerTest, ListJobsPagesStayStableWhileJobsAreSubmitted) {
  Start();
  const auto submit = [&] {
    apq::v1::Job job;
    grpc::ClientContext context;
    EXPECT_TRUE(search_->SubmitSearch(&context, OneSampleRequest(1), &job).ok());
    return job.id();
  };
  std::vector<std::string> submitted;
  submitted.reserve(5);
  for (int i = 0; i < 5; ++i) submitted.push_back(submit());
  const auto page = [&](const std::string& token, std::vector<std::string>* ids) {
    apq::v1::ListJobsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    apq::v1::ListJobsResponse response;
    grpc::ClientContext context;
    const grpc::Status status = search_->ListJobs(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const apq::v1::Job& job : response.jobs()) ids->push_back(job.id());
    return response.next_page_token();
  };
  std::vector<std::string> listed;
  std::string token = page("", &listed);
  // Two jobs more between the pages: the listing goes on from where it was.
  submit();
  submit();
  while (!token.empty()) token = page(token, &listed);
  EXPECT_THAT(listed, ::testing::ElementsAre(submitted[4], submitted[3], submitted[2], submitted[1],
                                             submitted[0]));
  // A token of another listing is refused naming page_token.
  apq::v1::ListJobsRequest request;
  request.set_state(apq::v1::JOB_STATE_RUNNING);
  request.set_page_token(page("", &listed));
  apq::v1::ListJobsResponse response;
  grpc::ClientContext context;
  const grpc::Status refused = search_->ListJobs(&context, request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("page_token: "));
}

TEST_F(ServerTest, ASlowWatchersUpdatesSayWhichGenerationsEachCovers) {
  // Groups stored every millisecond and a reader that sleeps between reads: most updates it
  // gets merge several stored groups, and their ranges still cover every generation once.
  Start(/*torch_threads=*/1, /*commit_interval=*/absl::Milliseconds(1));
  apq::v1::SubmitSearchRequest request;
  request.set_space("ofa_mbv3");
  request.set_device("note10");
  request.set_seed(5);
  request.mutable_budgets()->set_max_latency_ms(25);
  request.mutable_evolution()->set_population_size(20);
  request.mutable_evolution()->set_generations(400);
  apq::v1::Job submitted;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(search_->SubmitSearch(&context, request, &submitted).ok());
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  apq::v1::WatchJobRequest watch;
  watch.set_job_id(submitted.id());
  std::unique_ptr<grpc::ClientReader<apq::v1::JobProgress>> reader =
      search_->WatchJob(&context, watch);
  std::vector<apq::v1::JobProgress> updates;
  apq::v1::JobProgress progress;
  while (reader->Read(&progress)) {
    updates.push_back(progress);
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(updates.size(), 2u);
  EXPECT_EQ(updates.front().first_generation(), updates.front().generation());
  for (size_t i = 1; i < updates.size(); ++i) {
    const apq::v1::JobProgress& before = updates[i - 1];
    const apq::v1::JobProgress& update = updates[i];
    EXPECT_LE(update.first_generation(), update.generation()) << "update " << i;
    if (update.generation() > before.generation()) {
      EXPECT_EQ(update.first_generation(), before.generation() + 1) << "update " << i;
    } else {
      EXPECT_EQ(update.first_generation(), update.generation()) << "update " << i;
    }
  }
  EXPECT_EQ(updates.back().state(), apq::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(updates.back().generation(), 400);
}

TEST_F(ServerTest, AVerificationTheSpaceCannotTakeIsRefused) {
  Start();
  apq::v1::SubmitSearchRequest request = OneSampleRequest(1);  // ofa_mbv3: no supernet.
  request.mutable_verification()->set_top_k(3);
  grpc::ClientContext context;
  apq::v1::Job job;
  const grpc::Status status = search_->SubmitSearch(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("ofa_mbv3"));
}

// A measured Evaluate on the Fashion-MNIST supernet, run on its own thread.
std::thread MeasureInBackground(apq::v1::SearchService::Stub* stub, std::atomic<int>* done,
                                grpc::Status* status) {
  return std::thread([stub, done, status] {
    grpc::ClientContext context;
    apq::v1::EvaluateRequest request;
    request.set_space("fmnist_mbv2");
    // A network of the space with a mixed bit policy.
    request.add_configs_json(
        R"([{"wid":null,"ks":[7,5,5,3,7,3,3,3,7,5,3,3],)"
        R"("e":[6.0,5.0,4.666666666666667,3.0,3.0,4.5,3.0,3.0,4.5,4.5,3.0,3.0],"d":[3,2,2]},)"
        R"({"pw_w_bits_setting":[8,8,8,4,8,8,4,4,8,8,4,4],"pw_a_bits_setting":[8,8,8,4,8,8,4,4,8,8,4,4],)"
        R"("dw_w_bits_setting":[8,8,8,4,8,8,4,4,8,8,4,4],"dw_a_bits_setting":[8,8,8,4,8,8,4,4,8,8,4,4]}])");
    request.set_measure(apq::v1::MEASURE_MODE_FP32);
    request.set_measure_test_images(2000);
    apq::v1::EvaluateResponse response;
    *status = stub->Evaluate(&context, request, &response);
    ++*done;
  });
}

TEST_F(ServerTest, ACheapCallNeverWaitsBehindMeasurements) {
  Start(/*torch_threads=*/1);
  std::atomic<int> measured{0};
  grpc::Status first;
  grpc::Status second;
  std::thread a = MeasureInBackground(search_.get(), &measured, &first);
  std::thread b = MeasureInBackground(search_.get(), &measured, &second);
  // Wait until the LibTorch executor holds both.
  while (server_->torch_executor_stats().ran < 1) absl::SleepFor(absl::Milliseconds(5));
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    grpc::ClientContext context;
    apq::v1::ListDevicesResponse devices;
    ASSERT_TRUE(devices_->ListDevices(&context, {}, &devices).ok());
    grpc::ClientContext evaluate_context;
    apq::v1::EvaluateRequest cost_only;
    cost_only.set_space("ofa_mbv3");
    cost_only.set_device("note10");
    cost_only.add_configs_json(R"({"ks": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],
        "e": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], "d": [2,2,2,2,2], "r": 160})");
    apq::v1::EvaluateResponse costs;
    const grpc::Status status = search_->Evaluate(&evaluate_context, cost_only, &costs);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  }
  EXPECT_EQ(measured.load(), 0) << "the cheap calls answered while both measurements ran";
  a.join();
  b.join();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(second.ok()) << second.error_message();
}

TEST_F(ServerTest, ACallWhoseDeadlinePassedWhileQueuedIsAnsweredWithoutRunning) {
  Start(/*torch_threads=*/1);
  std::atomic<int> measured{0};
  grpc::Status first;
  std::thread a = MeasureInBackground(search_.get(), &measured, &first);
  while (server_->torch_executor_stats().ran < 1) absl::SleepFor(absl::Milliseconds(5));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  apq::v1::GetDeployableConfigRequest request;
  request.set_job_id("job-1");
  request.set_include_torchscript(true);
  apq::v1::DeployableConfig response;
  const grpc::Status late = search_->GetDeployableConfig(&context, request, &response);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  a.join();
  EXPECT_TRUE(first.ok()) << first.error_message();
  // The queued call reached the front after its deadline and did not run.
  while (server_->torch_executor_stats().ran + server_->torch_executor_stats().expired < 2) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(server_->torch_executor_stats().expired, 1);
  EXPECT_EQ(server_->torch_executor_stats().ran, 1);
}

}  // namespace
}  // namespace apq::server
