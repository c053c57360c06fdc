// Who may do what, through the assembled server over real gRPC on loopback: every RPC refuses
// a missing or wrong token (UNAUTHENTICATED) and a role too low (PERMISSION_DENIED) and stores
// nothing; jobs belong to their submitter; a revoked token stops at once; the first start
// creates one admin token; TLS and mutual TLS with a throwaway CA made by openssl.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/apq/v1/apq.grpc.pb.h"
#include "server/auth.h"
#include "server/server.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

std::string TempFile(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("access_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                       ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", name))
      .string();
}

// The stubs of every service on one channel.
struct Stubs {
  explicit Stubs(const std::shared_ptr<grpc::Channel>& channel)
      : search(apq::v1::SearchService::NewStub(channel)),
        devices(apq::v1::DeviceService::NewStub(channel)),
        predictors(apq::v1::PredictorService::NewStub(channel)),
        access(apq::v1::AccessService::NewStub(channel)),
        spaces(apq::v1::SpaceService::NewStub(channel)) {}
  std::unique_ptr<apq::v1::SearchService::Stub> search;
  std::unique_ptr<apq::v1::DeviceService::Stub> devices;
  std::unique_ptr<apq::v1::PredictorService::Stub> predictors;
  std::unique_ptr<apq::v1::AccessService::Stub> access;
  std::unique_ptr<apq::v1::SpaceService::Stub> spaces;
};

// One RPC with a request that would change something if it ran (or read something), and the
// permission it needs.
struct Rpc {
  const char* name;
  Permission needs;
  std::function<grpc::Status(Stubs&, grpc::ClientContext*)> call;
};

std::vector<Rpc> EveryRpc() {
  const auto submit = [] {
    apq::v1::SubmitSearchRequest request;
    request.set_space("ofa_mbv3");
    request.set_device("note10");
    request.mutable_budgets()->set_max_latency_ms(25);
    request.mutable_evolution()->set_population_size(8);
    request.mutable_evolution()->set_generations(1);
    return request;
  };
  return {
      {"SubmitSearch", Permission::kSubmit,
       [submit](Stubs& s, grpc::ClientContext* c) {
         apq::v1::Job job;
         return s.search->SubmitSearch(c, submit(), &job);
       }},
      {"SubmitSweep", Permission::kSubmit,
       [submit](Stubs& s, grpc::ClientContext* c) {
         apq::v1::SubmitSweepRequest request;
         *request.mutable_common() = submit();
         request.mutable_common()->clear_device();
         request.mutable_common()->clear_budgets();
         request.add_scenarios()->set_device("note10");
         apq::v1::Sweep sweep;
         return s.search->SubmitSweep(c, request, &sweep);
       }},
      {"GetSweep", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetSweepRequest request;
         request.set_sweep_id("sweep-1");
         apq::v1::Sweep sweep;
         return s.search->GetSweep(c, request, &sweep);
       }},
      {"ListJobArtifacts", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListJobArtifactsRequest request;
         request.set_job_id("job-1");
         apq::v1::ListJobArtifactsResponse response;
         return s.search->ListJobArtifacts(c, request, &response);
       }},
      {"GetArtifact", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetArtifactRequest request;
         request.set_kind("iqp_solution");
         request.set_key("job-1/solution.json");
         apq::v1::Artifact artifact;
         return s.search->GetArtifact(c, request, &artifact);
       }},
      {"GetJob", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetJobRequest request;
         request.set_job_id("job-1");
         apq::v1::Job job;
         return s.search->GetJob(c, request, &job);
       }},
      {"WatchJob", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::WatchJobRequest request;
         request.set_job_id("job-1");
         auto reader = s.search->WatchJob(c, request);
         apq::v1::JobProgress progress;
         while (reader->Read(&progress)) {
         }
         return reader->Finish();
       }},
      {"CancelJob", Permission::kSubmit,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::CancelJobRequest request;
         request.set_job_id("job-1");
         apq::v1::Job job;
         return s.search->CancelJob(c, request, &job);
       }},
      {"DeleteJob", Permission::kSubmit,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::DeleteJobRequest request;
         request.set_job_id("job-1");
         apq::v1::DeleteJobResponse response;
         return s.search->DeleteJob(c, request, &response);
       }},
      {"ListJobs", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListJobsResponse response;
         return s.search->ListJobs(c, apq::v1::ListJobsRequest(), &response);
       }},
      {"ListCandidates", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListCandidatesRequest request;
         request.set_job_id("job-1");
         apq::v1::ListCandidatesResponse response;
         return s.search->ListCandidates(c, request, &response);
       }},
      {"GetDeployableConfig", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetDeployableConfigRequest request;
         request.set_job_id("job-1");
         apq::v1::DeployableConfig response;
         return s.search->GetDeployableConfig(c, request, &response);
       }},
      {"Evaluate", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::EvaluateRequest request;
         request.set_space("ofa_mbv3");
         request.set_device("note10");
         request.add_configs_json("{}");
         apq::v1::EvaluateResponse response;
         return s.search->Evaluate(c, request, &response);
       }},
      {"Evaluate (measured)", Permission::kSubmit,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::EvaluateRequest request;
         request.set_space("fmnist_mbv2");
         request.set_device("local-cpu");
         request.add_configs_json("{}");
         request.set_measure(apq::v1::MEASURE_MODE_QUANTIZED);
         apq::v1::EvaluateResponse response;
         return s.search->Evaluate(c, request, &response);
       }},
      {"ListEngines", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListEnginesResponse response;
         return s.search->ListEngines(c, apq::v1::ListEnginesRequest(), &response);
       }},
      {"UploadCostTable", Permission::kUploadTables,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::UploadCostTableRequest request;
         request.set_device("chip");
         request.set_format(apq::v1::TABLE_FORMAT_CONV_JSON);
         apq::v1::TableFile* file = request.add_files();
         file->set_name("chip.json");
         file->set_content(R"({"(16, 64, 14, 1, 1, 0, 1)-W8A8": {"latency": 0.1}})");
         apq::v1::Device device;
         return s.devices->UploadCostTable(c, request, &device);
       }},
      {"ListDevices", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListDevicesResponse response;
         return s.devices->ListDevices(c, apq::v1::ListDevicesRequest(), &response);
       }},
      {"GetDevice", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetDeviceRequest request;
         request.set_device("note10");
         apq::v1::Device device;
         return s.devices->GetDevice(c, request, &device);
       }},
      {"GetTableTemplate", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetTableTemplateRequest request;
         request.set_space("fmnist_mbv2");
         request.set_format(apq::v1::TABLE_FORMAT_CONV_JSON);
         apq::v1::TableTemplate response;
         return s.devices->GetTableTemplate(c, request, &response);
       }},
      {"UploadDataset", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::UploadDatasetRequest request;
         request.set_name("stolen");
         request.set_space("fmnist_mbv2");
         apq::v1::Dataset dataset;
         return s.predictors->UploadDataset(c, request, &dataset);
       }},
      {"ListDatasets", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListDatasetsResponse response;
         return s.predictors->ListDatasets(c, apq::v1::ListDatasetsRequest(), &response);
       }},
      {"TrainPredictor", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::TrainPredictorRequest request;
         request.set_dataset("fmnist_mbv2_shipped");
         apq::v1::TrainingJob job;
         return s.predictors->TrainPredictor(c, request, &job);
       }},
      {"GetTrainingJob", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetTrainingJobRequest request;
         request.set_job_id("train-1");
         apq::v1::TrainingJob job;
         return s.predictors->GetTrainingJob(c, request, &job);
       }},
      {"ListTrainingJobs", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListTrainingJobsResponse response;
         return s.predictors->ListTrainingJobs(c, apq::v1::ListTrainingJobsRequest(), &response);
       }},
      {"CancelTrainingJob", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::CancelTrainingJobRequest request;
         request.set_job_id("train-1");
         apq::v1::TrainingJob job;
         return s.predictors->CancelTrainingJob(c, request, &job);
       }},
      {"ListPredictors", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListPredictorsRequest request;
         request.set_space("fmnist_mbv2");
         apq::v1::ListPredictorsResponse response;
         return s.predictors->ListPredictors(c, request, &response);
       }},
      {"SetDefaultPredictor", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::SetDefaultPredictorRequest request;
         request.set_space("fmnist_mbv2");
         request.set_version("none");
         apq::v1::Predictor predictor;
         return s.predictors->SetDefaultPredictor(c, request, &predictor);
       }},
      // Without a space: refused before anything is stored or started, whoever calls.
      {"StartMeasurementRun", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::StartMeasurementRunRequest request;
         request.set_dataset("intruded");
         request.set_count(1);
         apq::v1::MeasurementRun run;
         return s.predictors->StartMeasurementRun(c, request, &run);
       }},
      {"GetMeasurementRun", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::GetMeasurementRunRequest request;
         request.set_run_id("measure-1");
         apq::v1::MeasurementRun run;
         return s.predictors->GetMeasurementRun(c, request, &run);
       }},
      {"ListMeasurementRuns", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListMeasurementRunsResponse response;
         return s.predictors->ListMeasurementRuns(c, apq::v1::ListMeasurementRunsRequest(),
                                                  &response);
       }},
      {"CancelMeasurementRun", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::CancelMeasurementRunRequest request;
         request.set_run_id("measure-1");
         apq::v1::MeasurementRun run;
         return s.predictors->CancelMeasurementRun(c, request, &run);
       }},
      {"CreateToken", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::CreateTokenRequest request;
         request.set_name("intruder");
         request.set_role(apq::v1::ROLE_ADMIN);
         apq::v1::CreatedToken token;
         return s.access->CreateToken(c, request, &token);
       }},
      {"ListTokens", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListTokensResponse response;
         return s.access->ListTokens(c, apq::v1::ListTokensRequest(), &response);
       }},
      {"RevokeToken", Permission::kAdmin,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::RevokeTokenRequest request;
         request.set_id("tok-0000000000000000");
         apq::v1::Token token;
         return s.access->RevokeToken(c, request, &token);
       }},
      {"ListSpaces", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::ListSpacesResponse response;
         return s.spaces->ListSpaces(c, apq::v1::ListSpacesRequest(), &response);
       }},
      {"DescribeSpace", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::DescribeSpaceRequest request;
         request.set_space("fmnist_lowbit");
         apq::v1::SpaceDescription response;
         return s.spaces->DescribeSpace(c, request, &response);
       }},
      {"WhoAmI", Permission::kRead,
       [](Stubs& s, grpc::ClientContext* c) {
         apq::v1::Token token;
         return s.access->WhoAmI(c, apq::v1::WhoAmIRequest(), &token);
       }},
  };
}

class AccessTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = ServerOptions()) {
    std::filesystem::remove(db_);
    options.listen_address = "127.0.0.1:0";
    options.database_path = db_;
    options.data_dir = "data";
    options.predictor_threads = 1;
    auto server = ApqServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    if (options.tls_cert_file.empty()) {
      stubs_ = std::make_unique<Stubs>(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
    }
  }

  void TearDown() override {
    server_.reset();
    std::filesystem::remove(db_);
  }

  // Calls `rpc` with `bearer` (none when empty).
  grpc::Status Call(const Rpc& rpc, const std::string& bearer) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (!bearer.empty()) context.AddMetadata("authorization", "Bearer " + bearer);
    return rpc.call(*stubs_, &context);
  }

  std::string CreateToken(const std::string& admin, const std::string& name, apq::v1::Role role) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + admin);
    apq::v1::CreateTokenRequest request;
    request.set_name(name);
    request.set_role(role);
    apq::v1::CreatedToken created;
    const grpc::Status status = stubs_->access->CreateToken(&context, request, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return created.secret();
  }

  // What the store holds that a refused call could have changed, as the admin reads it.
  std::string StoredState(const std::string& admin) {
    std::string state;
    const auto read = [&](auto stub_call, auto request, auto response) {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + admin);
      EXPECT_TRUE(stub_call(&context, request, &response).ok());
      state += response.DebugString();
    };
    read([&](auto* c, const auto& q, auto* r) { return stubs_->search->ListJobs(c, q, r); },
         apq::v1::ListJobsRequest(), apq::v1::ListJobsResponse());
    read([&](auto* c, const auto& q, auto* r) { return stubs_->devices->ListDevices(c, q, r); },
         apq::v1::ListDevicesRequest(), apq::v1::ListDevicesResponse());
    read([&](auto* c, const auto& q, auto* r) { return stubs_->predictors->ListDatasets(c, q, r); },
         apq::v1::ListDatasetsRequest(), apq::v1::ListDatasetsResponse());
    read([&](auto* c, const auto& q,
             auto* r) { return stubs_->predictors->ListTrainingJobs(c, q, r); },
         apq::v1::ListTrainingJobsRequest(), apq::v1::ListTrainingJobsResponse());
    read([&](auto* c, const auto& q,
             auto* r) { return stubs_->predictors->ListMeasurementRuns(c, q, r); },
         apq::v1::ListMeasurementRunsRequest(), apq::v1::ListMeasurementRunsResponse());
    read([&](auto* c, const auto& q, auto* r) { return stubs_->access->ListTokens(c, q, r); },
         apq::v1::ListTokensRequest(), apq::v1::ListTokensResponse());
    apq::v1::ListPredictorsRequest predictors;
    predictors.set_space("fmnist_mbv2");
    read([&](auto* c, const auto& q,
             auto* r) { return stubs_->predictors->ListPredictors(c, q, r); },
         predictors, apq::v1::ListPredictorsResponse());
    return state;
  }

  std::string AdminToken() {
    EXPECT_TRUE(server_->bootstrap_token().has_value());
    return server_->bootstrap_token().has_value() ? server_->bootstrap_token()->bearer : "";
  }

  std::string db_ = TempFile("apq.db");
  std::unique_ptr<ApqServer> server_;
  std::unique_ptr<Stubs> stubs_;
};

// EveryRpc() lists every method of every service of the API, once.
TEST(AccessRpcListTest, EveryMethodOfTheApiIsListed) {
  const google::protobuf::FileDescriptor* file = apq::v1::SubmitSearchRequest::descriptor()->file();
  std::set<std::string> methods;
  for (int s = 0; s < file->service_count(); ++s) {
    for (int m = 0; m < file->service(s)->method_count(); ++m) {
      methods.insert(file->service(s)->method(m)->name());
    }
  }
  // A method may be listed with variants of its request: "Evaluate (measured)".
  std::set<std::string> listed;
  for (const Rpc& rpc : EveryRpc()) {
    const std::string name = rpc.name;
    listed.insert(name.substr(0, name.find(" (")));
  }
  EXPECT_EQ(listed, methods);
  EXPECT_EQ(std::string(EveryRpc().back().name), "WhoAmI");
}

TEST_F(AccessTest, EveryRpcRefusesAMissingOrWrongTokenAndStoresNothing) {
  Start();
  const std::string admin = AdminToken();
  const std::string before = StoredState(admin);
  std::string wrong_secret = admin;
  wrong_secret.back() = wrong_secret.back() == 'a' ? 'b' : 'a';
  for (const Rpc& rpc : EveryRpc()) {
    for (const std::string& bearer :
         {std::string(), std::string("nonsense"), wrong_secret,
          std::string("apq_0123456789abcdef_") + std::string(64, '0')}) {
      const grpc::Status status = Call(rpc, bearer);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << rpc.name << " with '" << bearer << "': " << status.error_message();
    }
  }
  EXPECT_EQ(StoredState(admin), before);
}

TEST_F(AccessTest, EachRoleGetsExactlyItsCallsAndARefusedCallStoresNothing) {
  Start();
  const std::string admin = AdminToken();
  const std::vector<std::pair<Role, apq::v1::Role>> roles = {
      {Role::kViewer, apq::v1::ROLE_VIEWER},
      {Role::kSubmitter, apq::v1::ROLE_SUBMITTER},
      {Role::kHardware, apq::v1::ROLE_HARDWARE}};
  for (const auto& [role, proto_role] : roles) {
    const std::string token = CreateToken(admin, RoleName(role), proto_role);
    const std::string before = StoredState(admin);
    for (const Rpc& rpc : EveryRpc()) {
      if (RoleAllows(role, rpc.needs)) continue;
      const grpc::Status status = Call(rpc, token);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << RoleName(role) << " " << rpc.name << ": " << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat(RoleName(role), " role")));
    }
    EXPECT_EQ(StoredState(admin), before) << RoleName(role);
    // The calls the role allows get past the door (they may still fail on their request).
    for (const Rpc& rpc : EveryRpc()) {
      if (!RoleAllows(role, rpc.needs)) continue;
      const grpc::Status status = Call(rpc, token);
      EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << RoleName(role) << " " << rpc.name << ": " << status.error_message();
      EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << RoleName(role) << " " << rpc.name << ": " << status.error_message();
    }
  }
  // The admin gets past every door.
  for (const Rpc& rpc : EveryRpc()) {
    const grpc::Status status = Call(rpc, admin);
    EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << rpc.name;
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc.name;
  }
}

TEST_F(AccessTest, JobsBelongToTheirSubmitter) {
  Start();
  const std::string admin = AdminToken();
  const std::string alice = CreateToken(admin, "alice", apq::v1::ROLE_SUBMITTER);
  const std::string bob = CreateToken(admin, "bob", apq::v1::ROLE_SUBMITTER);
  const std::string viewer = CreateToken(admin, "dashboard", apq::v1::ROLE_VIEWER);
  const auto submit = [&](const std::string& bearer) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + bearer);
    apq::v1::SubmitSearchRequest request;
    request.set_space("ofa_mbv3");
    request.set_device("note10");
    request.mutable_evolution()->set_population_size(8);
    request.mutable_evolution()->set_generations(100000);  // Still running when cancelled.
    apq::v1::Job job;
    EXPECT_TRUE(stubs_->search->SubmitSearch(&context, request, &job).ok());
    return job;
  };
  const apq::v1::Job alices = submit(alice);
  const apq::v1::Job bobs = submit(bob);
  EXPECT_EQ(alices.owner(), ParseBearer(alice)->id);
  const auto list = [&](const std::string& bearer, const std::string& owner) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + bearer);
    apq::v1::ListJobsRequest request;
    request.set_owner(owner);
    apq::v1::ListJobsResponse response;
    const grpc::Status status = stubs_->search->ListJobs(&context, request, &response);
    std::vector<std::string> ids;
    for (const apq::v1::Job& job : response.jobs()) ids.push_back(job.id());
    return std::make_pair(status.error_code(), ids);
  };
  using ::testing::ElementsAre;
  EXPECT_THAT(list(alice, "").second, ElementsAre(alices.id()));
  EXPECT_THAT(list(bob, "").second, ElementsAre(bobs.id()));
  EXPECT_EQ(list(bob, alices.owner()).first, grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(list(admin, "").second, ElementsAre(bobs.id(), alices.id()));
  EXPECT_THAT(list(viewer, "").second, ElementsAre(bobs.id(), alices.id()));
  EXPECT_THAT(list(admin, alices.owner()).second, ElementsAre(alices.id()));

  const auto cancel = [&](const std::string& bearer, const std::string& job_id) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + bearer);
    apq::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    apq::v1::Job job;
    return stubs_->search->CancelJob(&context, request, &job);
  };
  const grpc::Status refused = cancel(bob, alices.id());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("belongs to another token"));
  EXPECT_TRUE(cancel(alice, alices.id()).ok());
  EXPECT_TRUE(cancel(admin, bobs.id()).ok()) << "an admin cancels any job";

  // Deleting: one's own ended jobs only (an admin any).
  const auto remove = [&](const std::string& bearer, const std::string& job_id) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + bearer);
    apq::v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    apq::v1::DeleteJobResponse response;
    return stubs_->search->DeleteJob(&context, request, &response);
  };
  const auto state = [&](const std::string& job_id) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + admin);
    apq::v1::GetJobRequest request;
    request.set_job_id(job_id);
    apq::v1::Job job;
    const grpc::Status status = stubs_->search->GetJob(&context, request, &job);
    return status.ok() ? static_cast<int>(job.state()) : -static_cast<int>(status.error_code());
  };
  for (int i = 0; i < 600 && (state(alices.id()) < apq::v1::JOB_STATE_SUCCEEDED ||
                              state(bobs.id()) < apq::v1::JOB_STATE_SUCCEEDED);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(remove(bob, alices.id()).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(remove(alice, alices.id()).ok());
  EXPECT_EQ(state(alices.id()), -static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_TRUE(remove(admin, bobs.id()).ok());
  EXPECT_EQ(remove(admin, bobs.id()).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AccessTest, ARevokedTokenStopsAtOnceAndTheBootstrapTokenIsMadeOnce) {
  Start();
  const std::string admin = AdminToken();
  const std::string token = CreateToken(admin, "leaver", apq::v1::ROLE_SUBMITTER);
  const Rpc who_am_i = EveryRpc().back();
  ASSERT_EQ(std::string(who_am_i.name), "WhoAmI");
  ASSERT_TRUE(Call(who_am_i, token).ok());
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + admin);
    apq::v1::RevokeTokenRequest request;
    request.set_id(ParseBearer(token)->id);
    apq::v1::Token revoked;
    ASSERT_TRUE(stubs_->access->RevokeToken(&context, request, &revoked).ok());
    EXPECT_GT(revoked.revoked_unix_s(), 0);
  }
  EXPECT_EQ(Call(who_am_i, token).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // A restart on the same database creates no second admin; the first still works.
  server_.reset();
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_path = db_;
  options.data_dir = "data";
  options.predictor_threads = 1;
  auto restarted = ApqServer::Start(options);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  server_ = *std::move(restarted);
  EXPECT_FALSE(server_->bootstrap_token().has_value());
  stubs_ = std::make_unique<Stubs>(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                       grpc::InsecureChannelCredentials()));
  EXPECT_TRUE(Call(who_am_i, admin).ok());
  EXPECT_EQ(Call(who_am_i, token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// grpc.health.v1.Health/Check for `service`, without a token: the serving status (1 SERVING,
// 2 NOT_SERVING) or -code on error. The messages are encoded by hand (one string field in,
// one enum field out): the health proto's C++ code is not among Debian's headers.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::GenericStub stub(channel);
  std::string request = {0x0a, static_cast<char>(service.size())};
  request += service;
  grpc::Slice slice(request);
  const grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&](grpc::Status result) {
                   status = std::move(result);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(response_buffer.Dump(&slices).ok());
  std::string response;
  for (const grpc::Slice& part : slices) {
    response.append(reinterpret_cast<const char*>(part.begin()), part.size());
  }
  return response.size() == 2 && response[0] == 0x08 ? response[1] : 0;
}

TEST_F(AccessTest, HealthChecksAnswerForEveryServiceWithoutAToken) {
  Start();
  const auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                           grpc::InsecureChannelCredentials());
  for (const std::string service :
       {"", "apq.v1.SearchService", "apq.v1.DeviceService", "apq.v1.PredictorService",
        "apq.v1.AccessService", "apq.v1.SpaceService"}) {
    EXPECT_EQ(HealthStatus(channel, service), 1) << "'" << service << "'";
  }
  EXPECT_EQ(HealthStatus(channel, "apq.v1.NoSuchService"),
            -static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

TEST_F(AccessTest, ATokenOverItsCallRateIsRefusedNamingTheQuotaAndAdminsAreNot) {
  ServerOptions options;
  options.max_calls_per_second = 0.001;  // No refill within the test.
  options.max_call_burst = 3;
  Start(options);
  const std::string admin = AdminToken();
  const std::string viewer = CreateToken(admin, "dashboard", apq::v1::ROLE_VIEWER);
  const Rpc who_am_i = EveryRpc().back();
  for (int call = 0; call < 3; ++call) EXPECT_TRUE(Call(who_am_i, viewer).ok()) << call;
  const grpc::Status refused = Call(who_am_i, viewer);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("quota calls_per_second"));
  for (int call = 0; call < 10; ++call) EXPECT_TRUE(Call(who_am_i, admin).ok()) << call;
  // Another token has its own bucket.
  const std::string other = CreateToken(admin, "other", apq::v1::ROLE_VIEWER);
  EXPECT_TRUE(Call(who_am_i, other).ok());
}

TEST_F(AccessTest, RoleQuotasLimitEachRoleByItsOwnTableAdminsIncluded) {
  ServerOptions options;
  options.max_calls_per_second = 0.001;  // No refill within the test.
  options.max_call_burst = 100;
  options.role_quotas = "viewer:max_call_burst=2;admin:max_calls_per_second=0.001,max_call_burst=8";
  Start(options);
  const std::string admin = AdminToken();
  const std::string viewer = CreateToken(admin, "dashboard", apq::v1::ROLE_VIEWER);
  const std::string hardware = CreateToken(admin, "chip team", apq::v1::ROLE_HARDWARE);
  const Rpc who_am_i = EveryRpc().back();
  for (int call = 0; call < 2; ++call) EXPECT_TRUE(Call(who_am_i, viewer).ok()) << call;
  const grpc::Status refused = Call(who_am_i, viewer);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("quota calls_per_second"));
  EXPECT_THAT(refused.error_message(), HasSubstr("(viewer)"));
  // The hardware role keeps the flags' burst of 100.
  for (int call = 0; call < 20; ++call) EXPECT_TRUE(Call(who_am_i, hardware).ok()) << call;
  // The admin's 8 calls: 2 spent creating tokens, so 6 more.
  for (int call = 0; call < 6; ++call) EXPECT_TRUE(Call(who_am_i, admin).ok()) << call;
  EXPECT_EQ(Call(who_am_i, admin).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(AccessTest, AMalformedRoleQuotaTableStopsTheServerFromStarting) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_path = db_;
  options.data_dir = "data";
  options.role_quotas = "viewer:max_calls_per_second=fast";
  const absl::StatusOr<std::unique_ptr<ApqServer>> server = ApqServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("role_quotas: "));
}

TEST_F(AccessTest, AuthenticationOffIsRefusedOffLoopback) {
  ServerOptions options;
  options.listen_address = "0.0.0.0:0";
  options.database_path = db_;
  options.data_dir = "data";
  options.auth_required = false;
  const absl::Status refused = ApqServer::Start(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("only on a loopback address"));
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:5"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:5"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:5"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:5"));
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, by openssl.
struct TestPki {
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string server_cert() const { return dir + "/server.pem"; }
  std::string server_key() const { return dir + "/server.key"; }
  std::string client_cert() const { return dir + "/client.pem"; }
  std::string client_key() const { return dir + "/client.key"; }
};

TestPki MakePki(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "'; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=apq-test-ca ",
      "-keyout ca.key -out ca.pem 2>/dev/null; ",
      "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext; ",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key ",
      "-out server.csr 2>/dev/null; ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ",
      "-extfile san.ext -out server.pem 2>/dev/null; ",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=apq-client -keyout client.key ",
      "-out client.csr 2>/dev/null; ",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ",
      "-out client.pem 2>/dev/null");
  EXPECT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0);
  return TestPki{dir};
}

TEST_F(AccessTest, TlsAndMutualTlsWithAThrowawayCa) {
  const TestPki pki = MakePki(TempFile("pki"));
  ServerOptions options;
  options.tls_cert_file = pki.server_cert();
  options.tls_key_file = pki.server_key();
  options.tls_client_ca_file = pki.ca();
  Start(options);
  const std::string admin = AdminToken();
  const std::string target = absl::StrCat("127.0.0.1:", server_->port());
  const auto call = [&](const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    grpc::ChannelArguments arguments;
    // Fresh connections: a channel that failed the handshake does not retry forever.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs_ = std::make_unique<Stubs>(grpc::CreateCustomChannel(target, credentials, arguments));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    context.AddMetadata("authorization", "Bearer " + admin);
    apq::v1::Token token;
    return stubs_->access->WhoAmI(&context, apq::v1::WhoAmIRequest(), &token);
  };
  grpc::SslCredentialsOptions mutual;
  mutual.pem_root_certs = ReadText(pki.ca());
  mutual.pem_cert_chain = ReadText(pki.client_cert());
  mutual.pem_private_key = ReadText(pki.client_key());
  const grpc::Status ok = call(grpc::SslCredentials(mutual));
  EXPECT_TRUE(ok.ok()) << ok.error_message();

  grpc::SslCredentialsOptions without_client_cert;
  without_client_cert.pem_root_certs = ReadText(pki.ca());
  EXPECT_FALSE(call(grpc::SslCredentials(without_client_cert)).ok());
  EXPECT_FALSE(call(grpc::InsecureChannelCredentials()).ok());
  grpc::SslCredentialsOptions wrong_ca;  // The system's roots do not know the test CA.
  wrong_ca.pem_cert_chain = mutual.pem_cert_chain;
  wrong_ca.pem_private_key = mutual.pem_private_key;
  EXPECT_FALSE(call(grpc::SslCredentials(wrong_ca)).ok());
}

// The dashboard serves HTTPS with the gRPC server's certificate and takes the same tokens:
// its JSON and /metrics need one, a plain-HTTP client gets nothing.
TEST_F(AccessTest, TheDashboardServesHttpsWithTheServersCertificateAndTokens) {
  const TestPki pki = MakePki(TempFile("dashboard_pki"));
  ServerOptions options;
  options.tls_cert_file = pki.server_cert();
  options.tls_key_file = pki.server_key();
  options.http_listen_address = "127.0.0.1:0";
  Start(options);
  ASSERT_GT(server_->http_port(), 0);
  stubs_ = std::make_unique<Stubs>(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()),
      grpc::SslCredentials(grpc::SslCredentialsOptions{ReadText(pki.ca()), "", ""})));
  const std::string admin = AdminToken();
  const std::string viewer = CreateToken(admin, "dashboard-viewer", apq::v1::ROLE_VIEWER);

  httplib::SSLClient https("127.0.0.1", server_->http_port());
  https.set_ca_cert_path(pki.ca().c_str());
  https.enable_server_certificate_verification(true);
  const auto get = [&](const std::string& path, const std::string& bearer) {
    httplib::Headers headers;
    if (!bearer.empty()) headers.emplace("Authorization", "Bearer " + bearer);
    return https.Get(path.c_str(), headers);
  };
  const auto listed = get("/api/v1/jobs", viewer);
  ASSERT_TRUE(listed) << httplib::to_string(listed.error());
  EXPECT_EQ(listed->status, 200);
  EXPECT_THAT(listed->body, HasSubstr("\"jobs\""));
  const auto anonymous = get("/api/v1/jobs", "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_THAT(anonymous->body, HasSubstr("UNAUTHENTICATED"));
  const auto forged = get("/api/v1/devices", "apq_0000000000000000_" + std::string(64, '0'));
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);
  const auto metrics = get("/metrics", viewer);
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  // The refused calls above are counted by method and code.
  EXPECT_THAT(metrics->body, HasSubstr("apq_rpcs_total{method=\"/apq.v1.SearchService/ListJobs\","
                                       "code=\"UNAUTHENTICATED\"} 1"));
  EXPECT_EQ(get("/metrics", "")->status, 401);
  // The page itself holds no data and loads without a token.
  EXPECT_EQ(get("/", "")->status, 200);

  httplib::Client plain("127.0.0.1", server_->http_port());
  plain.set_connection_timeout(2);
  plain.set_read_timeout(2);
  const auto cleartext = plain.Get("/api/v1/jobs");
  EXPECT_TRUE(!cleartext || cleartext->status != 200);
}

TEST_F(AccessTest, WithoutTokensTheDashboardMustStayOnLoopback) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_path = db_;
  options.data_dir = "data";
  options.auth_required = false;
  options.http_listen_address = "0.0.0.0:0";
  const absl::Status refused = ApqServer::Start(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("http_listen"));
  options.http_listen_address = "127.0.0.1";
  const absl::Status malformed = ApqServer::Start(options).status();
  EXPECT_EQ(malformed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(malformed.message()),
              HasSubstr("http_listen: '127.0.0.1' is not host:port"));
}

TEST_F(AccessTest, BadTlsFilesAreRefusedNamingTheFlag) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_path = db_;
  options.data_dir = "data";
  options.tls_cert_file = "/no/such/cert.pem";
  options.tls_key_file = "/no/such/key.pem";
  absl::Status refused = ApqServer::Start(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("tls_cert"));
  options.tls_key_file.clear();
  refused = ApqServer::Start(options).status();
  EXPECT_THAT(std::string(refused.message()), HasSubstr("give both or neither"));
}

}  // namespace
}  // namespace apq::server
