#include "server/services.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "hwmodels/precision_support.h"
#include "nlohmann/json.hpp"
#include "oface/fashion_mnist.h"
#include "oface/int8_layers.h"
#include "oface/restricted_space.h"
#include "search/qbitopt_engine.h"
#include "server/auth.h"
#include "server/candidate_metrics.h"
#include "server/job_artifacts.h"
#include "server/page_tokens.h"
#include "server/predictor_artifact.h"
#include "server/search_request.h"
#include "server/space_description.h"

namespace apq::server {
namespace {

// The string field `name` of a provenance JSON object; empty when absent or unreadable.
std::string ProvenanceField(const std::string& provenance, const std::string& name) {
  const nlohmann::json parsed =
      nlohmann::json::parse(provenance, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains(name) || !parsed[name].is_string()) return "";
  return parsed[name].get<std::string>();
}

constexpr int kMaxTableFiles = 64;

// The call's "authorization" metadata, if it has one.
std::optional<std::string> AuthorizationOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) return std::nullopt;
  return std::string(found->second.data(), found->second.size());
}

// Runs `work` on `pool` for the caller, once `auth` says the call's token allows
// `permission` (else the call ends UNAUTHENTICATED or PERMISSION_DENIED without running), and
// finishes the call with its status; the request and response stay valid until Finish. A
// call whose deadline passes while it waits is answered DEADLINE_EXCEEDED without running; a
// full pool refuses it at once.
grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* context, Executor& pool,
                                    Authenticator& auth, Permission permission,
                                    std::function<absl::Status(const Caller&)> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string pool_name = pool.name();
  absl::Status scheduled = pool.Schedule(
      absl::FromChrono(context->deadline()),
      [reactor, &auth, permission, authorization = AuthorizationOf(*context),
       work = std::move(work)] {
        absl::StatusOr<Caller> caller = auth.Authorize(
            authorization.has_value() ? std::optional<std::string_view>(*authorization)
                                      : std::nullopt,
            permission);
        reactor->Finish(ToGrpcStatus(caller.ok() ? work(*caller) : caller.status()));
      },
      [reactor, pool_name] {
        reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                     absl::StrCat("the call's deadline passed while it waited for "
                                                  "the server's ",
                                                  pool_name, " threads; it did not run")));
      });
  if (!scheduled.ok()) reactor->Finish(ToGrpcStatus(scheduled));
  return reactor;
}

// PERMISSION_DENIED unless `caller` is an admin or owns `job`; `verb` says what it does.
absl::Status RequireOwnJob(const Caller& caller, const JobRecord& job, absl::string_view verb) {
  if (caller.role == Role::kAdmin || job.owner == caller.token_id) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("job ", job.id, " belongs to another token; a ",
                                                  RoleName(caller.role), " ", verb,
                                                  " only its own jobs (admins any)"));
}

absl::Status RequireJobId(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: required");
  if (job_id.size() > 64) return absl::InvalidArgumentError("job_id: longer than 64 bytes");
  return absl::OkStatus();
}

absl::StatusOr<int> PageSize(int requested, int default_size, int max_size) {
  if (requested == 0) return default_size;
  if (requested < 0 || requested > max_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be in [1, ", max_size, "], got ", requested));
  }
  return requested;
}

apq::v1::Precisions PrecisionsToProto(const hwmodels::PrecisionSupport& support) {
  apq::v1::Precisions out;
  out.set_declared(support.declared);
  for (const hwmodels::BitPair& pair : support.pairs) out.add_pairs(hwmodels::PairName(pair));
  for (const hwmodels::BitPair& pair : support.modelled_pairs) {
    out.add_modelled_pairs(hwmodels::PairName(pair));
  }
  out.set_float_layers(support.float_layers);
  out.set_int8_engine(support.int8_engine);
  out.set_summary(hwmodels::DescribePrecisions(support));
  return out;
}

absl::Status FillDevice(Catalog& catalog, DeviceStore& store, const std::string& name,
                        apq::v1::Device* device) {
  ASSIGN_OR_RETURN(std::vector<TableVersionRecord> versions, store.ListTableVersions(name));
  device->set_name(name);
  for (const TableVersionRecord& record : versions) {
    apq::v1::TableVersion* version = device->add_versions();
    version->set_version(record.version);
    version->set_format(static_cast<apq::v1::TableFormat>(record.format));
    version->set_entries(record.entries);
    version->set_uploaded_unix_s(record.uploaded_unix_s);
    version->set_sha256(record.sha256);
    version->set_description(record.description);
    ASSIGN_OR_RETURN(Catalog::Coverage coverage, catalog.SpaceCoverage(name, record.version));
    for (std::string& space : coverage.covered) version->add_covered_spaces(std::move(space));
    for (std::string& space : coverage.modelled) version->add_modelled_spaces(std::move(space));
    ASSIGN_OR_RETURN(const hwmodels::PrecisionSupport precisions,
                     catalog.Precisions(name, record.version));
    *version->mutable_precisions() = PrecisionsToProto(precisions);
  }
  return absl::OkStatus();
}

// Streams a job's progress: only the newest snapshot waits while a write is in flight, so a
// slow watcher sees fewer updates but always the final one.
class WatchReactor final : public grpc::ServerWriteReactor<apq::v1::JobProgress> {
 public:
  explicit WatchReactor(JobManager& jobs) : jobs_(jobs) {}

  // Subscribes to the job. Until Start returns, no Finish is issued (a finish requested
  // meanwhile is deferred), so OnDone cannot delete the reactor under Start's feet and the
  // subscription id is always known when OnDone unsubscribes.
  void Start(const std::string& job_id) {
    job_id_ = job_id;
    absl::StatusOr<int64_t> subscription =
        jobs_.Watch(job_id, [this](const apq::v1::JobProgress& progress) { Deliver(progress); });
    absl::MutexLock lock(&mutex_);
    started_ = true;
    if (!subscription.ok()) {
      FinishLocked(ToGrpcStatus(subscription.status()));
      return;
    }
    subscription_ = *subscription;
    if (deferred_finish_) FinishLocked(*deferred_finish_);
  }

  // Ends a call that never subscribed.
  void Reject(const grpc::Status& status) {
    absl::MutexLock lock(&mutex_);
    started_ = true;
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
      return;
    }
    if (wrote_terminal_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mutex_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the watcher cancelled"));
  }

  void OnDone() override {
    std::optional<int64_t> subscription;
    {
      absl::MutexLock lock(&mutex_);
      subscription = subscription_;
    }
    if (subscription) jobs_.Unwatch(job_id_, *subscription);
    delete this;
  }

 private:
  static bool IsTerminalState(apq::v1::JobState state) {
    return state == apq::v1::JOB_STATE_SUCCEEDED || state == apq::v1::JOB_STATE_FAILED ||
           state == apq::v1::JOB_STATE_CANCELLED;
  }

  void Deliver(const apq::v1::JobProgress& progress) {
    absl::MutexLock lock(&mutex_);
    if (finished_) return;
    pending_ = progress;
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (writing_ || finished_ || !pending_) return;
    in_flight_ = *std::move(pending_);
    pending_.reset();
    const int32_t generation = in_flight_.generation();
    in_flight_.set_first_generation(last_written_generation_.has_value()
                                        ? std::min(*last_written_generation_ + 1, generation)
                                        : generation);
    last_written_generation_ = generation;
    wrote_terminal_ = IsTerminalState(in_flight_.state());
    writing_ = true;
    StartWrite(&in_flight_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (finished_) return;
    if (!started_) {
      if (!deferred_finish_) deferred_finish_ = status;
      return;
    }
    finished_ = true;
    Finish(status);
  }

  JobManager& jobs_;
  std::string job_id_;
  absl::Mutex mutex_;
  std::optional<int64_t> subscription_ ABSL_GUARDED_BY(mutex_);
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  std::optional<grpc::Status> deferred_finish_ ABSL_GUARDED_BY(mutex_);
  std::optional<apq::v1::JobProgress> pending_ ABSL_GUARDED_BY(mutex_);
  apq::v1::JobProgress in_flight_ ABSL_GUARDED_BY(mutex_);
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool wrote_terminal_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  // The generation of the last update written: the next one covers the generations after it.
  std::optional<int32_t> last_written_generation_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace

grpc::ServerUnaryReactor* SearchServiceImpl::SubmitSearch(
    grpc::CallbackServerContext* context, const apq::v1::SubmitSearchRequest* request,
    apq::v1::Job* response) {
  return RunOnPool(context, pool_, auth_, Permission::kSubmit,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(*response, jobs_.Submit(*request, caller.token_id,
                                                              ActiveJobQuota(caller)));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::SubmitSweep(grpc::CallbackServerContext* context,
                                                         const apq::v1::SubmitSweepRequest* request,
                                                         apq::v1::Sweep* response) {
  return RunOnPool(context, pool_, auth_, Permission::kSubmit,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(*response, jobs_.SubmitSweep(*request, caller.token_id,
                                                                   ActiveJobQuota(caller)));
                     return absl::OkStatus();
                   });
}

namespace {

// The largest artifact content GetArtifact returns: the client's receive limit
// (clients/connection.cc) less room for the message's other fields.
constexpr size_t kMaxArtifactResponseBytes = (size_t{64} << 20) - (size_t{1} << 20);

apq::v1::Artifact ArtifactToProto(const ArtifactRecord& record) {
  apq::v1::Artifact artifact;
  artifact.set_kind(record.kind);
  artifact.set_key(record.key);
  artifact.set_job_id(record.job_id);
  artifact.set_space(record.space);
  artifact.set_created_unix_s(record.created_unix_s);
  artifact.set_provenance(record.provenance);
  artifact.set_content_type(record.content_type);
  artifact.set_size_bytes(record.size_bytes);
  return artifact;
}

}  // namespace

grpc::ServerUnaryReactor* SearchServiceImpl::ListJobArtifacts(
    grpc::CallbackServerContext* context, const apq::v1::ListJobArtifactsRequest* request,
    apq::v1::ListJobArtifactsResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(std::vector<ArtifactRecord> artifacts,
                                      artifacts_.ListJobArtifacts(request->job_id()));
                     for (const ArtifactRecord& artifact : artifacts) {
                       *response->add_artifacts() = ArtifactToProto(artifact);
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::GetArtifact(grpc::CallbackServerContext* context,
                                                         const apq::v1::GetArtifactRequest* request,
                                                         apq::v1::Artifact* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kRead,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (request->kind().empty()) return absl::InvalidArgumentError("kind: required");
        if (request->kind().size() > kMaxArtifactKindBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat("kind: longer than ", kMaxArtifactKindBytes, " bytes"));
        }
        if (request->key().empty()) return absl::InvalidArgumentError("key: required");
        if (request->key().size() > kMaxArtifactKeyBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat("key: longer than ", kMaxArtifactKeyBytes, " bytes"));
        }
        ASSIGN_OR_RETURN(ArtifactRecord artifact,
                         artifacts_.GetArtifact(request->kind(), request->key()));
        if (artifact.bytes.size() > kMaxArtifactResponseBytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "artifact ", artifact.kind, " ", artifact.key, " holds ", artifact.bytes.size(),
              " bytes, more than a response may carry (", kMaxArtifactResponseBytes, ")"));
        }
        *response = ArtifactToProto(artifact);
        response->set_content(std::move(artifact.bytes));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SearchServiceImpl::GetSweep(grpc::CallbackServerContext* context,
                                                      const apq::v1::GetSweepRequest* request,
                                                      apq::v1::Sweep* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     if (request->sweep_id().empty())
                       return absl::InvalidArgumentError("sweep_id: required");
                     if (request->sweep_id().size() > 64) {
                       return absl::InvalidArgumentError("sweep_id: longer than 64 bytes");
                     }
                     ASSIGN_OR_RETURN(*response, jobs_.GetSweep(request->sweep_id(),
                                                                !request->without_fronts()));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                    const apq::v1::GetJobRequest* request,
                                                    apq::v1::Job* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(request->job_id()));
                     *response = JobToProto(job, engines_);
                     return absl::OkStatus();
                   });
}

grpc::ServerWriteReactor<apq::v1::JobProgress>* SearchServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const apq::v1::WatchJobRequest* request) {
  auto* reactor = new WatchReactor(jobs_);
  absl::Status valid = RequireJobId(request->job_id());
  if (!valid.ok()) {
    reactor->Reject(ToGrpcStatus(valid));
    return reactor;
  }
  // Watch may read the store for a finished job: that happens on the pool, after the token.
  const std::string& job_id = request->job_id();
  absl::Status scheduled = pool_.Schedule([this, reactor, job_id,
                                           authorization = AuthorizationOf(*context)] {
    const absl::StatusOr<Caller> caller = auth_.Authorize(
        authorization.has_value() ? std::optional<std::string_view>(*authorization) : std::nullopt,
        Permission::kRead);
    if (!caller.ok()) {
      reactor->Reject(ToGrpcStatus(caller.status()));
      return;
    }
    reactor->Start(job_id);
  });
  if (!scheduled.ok()) reactor->Reject(ToGrpcStatus(scheduled));
  return reactor;
}

grpc::ServerUnaryReactor* SearchServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                       const apq::v1::CancelJobRequest* request,
                                                       apq::v1::Job* response) {
  return RunOnPool(context, pool_, auth_, Permission::kSubmit,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(const JobRecord job, store_.GetJob(request->job_id()));
                     RETURN_IF_ERROR(RequireOwnJob(caller, job, "cancels"));
                     ASSIGN_OR_RETURN(*response, jobs_.Cancel(request->job_id()));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::DeleteJob(grpc::CallbackServerContext* context,
                                                       const apq::v1::DeleteJobRequest* request,
                                                       apq::v1::DeleteJobResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kSubmit,
                   [this, request](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(const JobRecord job, store_.GetJob(request->job_id()));
                     RETURN_IF_ERROR(RequireOwnJob(caller, job, "deletes"));
                     return jobs_.Delete(job.id);
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                      const apq::v1::ListJobsRequest* request,
                                                      apq::v1::ListJobsResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size(), 50, 1000));
                     // Submitters and hardware tokens see their own jobs; viewers and admins see
                     // every job.
                     std::optional<std::string> owner;
                     if (!request->owner().empty()) owner = request->owner();
                     if (caller.role == Role::kSubmitter || caller.role == Role::kHardware) {
                       if (owner.has_value() && *owner != caller.token_id) {
                         return absl::PermissionDeniedError(
                             absl::StrCat("owner: a ", RoleName(caller.role),
                                          " lists only its own jobs (", caller.token_id, ")"));
                       }
                       owner = caller.token_id;
                     }
                     std::optional<JobState> state;
                     if (request->state() != apq::v1::JOB_STATE_UNSPECIFIED) {
                       if (!apq::v1::JobState_IsValid(request->state())) {
                         return absl::InvalidArgumentError(
                             absl::StrCat("state: unknown value ", request->state()));
                       }
                       state = static_cast<JobState>(request->state());
                     }
                     JobQuery query;
                     query.state = state;
                     query.owner = owner;
                     if (!request->space().empty()) {
                       RETURN_IF_ERROR(ValidateResourceName("space", request->space()));
                       query.space = request->space();
                     }
                     if (!request->device().empty()) {
                       RETURN_IF_ERROR(ValidateDeviceName(request->device()));
                       query.device = request->device();
                     }
                     if (request->has_label()) {
                       RETURN_IF_ERROR(ValidateUserText("label", request->label(), kMaxLabelBytes,
                                                        /*multiline=*/false));
                       query.label = request->label();
                     }
                     RETURN_IF_ERROR(ApplyJobPageToken(request->page_token(), &query));
                     // One row more than the page tells whether another page follows.
                     query.limit = page_size + 1;
                     ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_.ListJobsPage(query));
                     const bool more = static_cast<int>(jobs.size()) > page_size;
                     if (more) jobs.pop_back();
                     for (const JobRecord& job : jobs)
                       *response->add_jobs() = JobToProto(job, engines_);
                     if (more) response->set_next_page_token(JobPageToken(query, jobs.back().id));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* SearchServiceImpl::ListCandidates(
    grpc::CallbackServerContext* context, const apq::v1::ListCandidatesRequest* request,
    apq::v1::ListCandidatesResponse* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kRead,
      [this, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(RequireJobId(request->job_id()));
        CandidateQuery query;
        query.job_id = request->job_id();
        ASSIGN_OR_RETURN(const int page_size, PageSize(request->page_size(), 100, kMaxPageSize));
        // One row more than the page tells whether another page follows (a full page of the
        // largest size carries a token anyway; the page after it may be empty).
        query.limit = std::min(page_size + 1, kMaxPageSize);
        ASSIGN_OR_RETURN(query.order, CandidateOrderFromProto(request->sort_by(), "sort_by"));
        switch (request->feasibility()) {
          case apq::v1::FEASIBILITY_ANY:
            break;
          case apq::v1::FEASIBILITY_FEASIBLE:
            query.feasible = true;
            break;
          case apq::v1::FEASIBILITY_INFEASIBLE:
            query.feasible = false;
            break;
          default:
            return absl::InvalidArgumentError(
                absl::StrCat("feasibility: unknown value ", request->feasibility()));
        }
        query.pareto_front_only = request->pareto_front_only();
        RETURN_IF_ERROR(ApplyCandidatePageToken(request->page_token(), &query));
        ASSIGN_OR_RETURN(CandidatePage page, store_.ListCandidates(query));
        const int rows = static_cast<int>(page.candidates.size());
        const bool more = rows > page_size || (rows == page_size && page_size == kMaxPageSize);
        if (rows > page_size) page.candidates.pop_back();
        for (const CandidateRecord& candidate : page.candidates) {
          *response->add_candidates() = CandidateToProto(request->job_id(), candidate);
        }
        response->set_total(page.total);
        if (more) {
          response->set_next_page_token(CandidatePageToken(query, page.candidates.back()));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SearchServiceImpl::GetDeployableConfig(
    grpc::CallbackServerContext* context, const apq::v1::GetDeployableConfigRequest* request,
    apq::v1::DeployableConfig* response) {
  Executor& pool = request->include_torchscript() ? torch_pool_ : pool_;
  return RunOnPool(
      context, pool, auth_, Permission::kRead,
      [this, context, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(RequireJobId(request->job_id()));
        ASSIGN_OR_RETURN(JobRecord job, store_.GetJob(request->job_id()));
        if (job.state != JobState::kSucceeded) {
          return absl::FailedPreconditionError(
              absl::StrCat("job ", job.id, " has not succeeded (state ",
                           apq::v1::JobState_Name(static_cast<apq::v1::JobState>(job.state)), ")",
                           job.error.empty() ? "" : absl::StrCat(": ", job.error)));
        }
        if (!job.best) {
          return absl::FailedPreconditionError(
              absl::StrCat("job ", job.id, " found no feasible configuration"));
        }
        // The deployable best: the measured best of a verified job, else the predicted best.
        apq::v1::Job proto = JobToProto(job, engines_);
        const apq::v1::Candidate& best = proto.best();
        // A job that trained its network (engine qbitopt) keeps its module: that is the
        // deployable one, not the supernet's weights at its policy.
        absl::StatusOr<ArtifactRecord> trained = artifacts_.GetArtifact(
            search::kQbitoptModuleKind, JobOutputKey(job.id, search::kQbitoptModuleName));
        if (!trained.ok() && !absl::IsNotFound(trained.status())) return trained.status();
        // What the job's device runs decides the module: int8 where it has an integer path.
        std::optional<oface::QuantizedEngine> int8_engine;
        if (request->include_torchscript()) {
          ASSIGN_OR_RETURN(const hwmodels::PrecisionSupport precisions,
                           catalog_.Precisions(job.device, job.table_version));
          if (!precisions.int8_engine.empty()) {
            ASSIGN_OR_RETURN(int8_engine, oface::QuantizedEngineFromName(precisions.int8_engine));
          } else if (request->int8()) {
            return absl::FailedPreconditionError(
                absl::StrCat("int8: device ", job.device, " (table v", job.table_version,
                             ") has no integer path in LibTorch: it runs ",
                             hwmodels::DescribePrecisions(precisions),
                             "; ask without int8 for the fake-quantized module"));
          }
          // A job that trained its network keeps a fake-quantized module only: that is what it
          // deploys, unless int8 was asked for.
          if (trained.ok() && request->int8()) {
            return absl::FailedPreconditionError(
                absl::StrCat("int8: job ", job.id,
                             "'s network was trained by engine qbitopt; only its fake-quantized "
                             "module exists (ask without int8)"));
          }
        }
        if (request->include_torchscript() && trained.ok()) {
          response->set_torchscript(std::move(trained->bytes));
          response->set_torchscript_precision("fake-quant");
          response->set_supernet_version(ProvenanceField(trained->provenance, "supernet_version"));
        } else if (request->include_torchscript()) {
          // Before filling the response: a failure returns nothing else.
          ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(job.space));
          ASSIGN_OR_RETURN(oface::Genotype genotype, space->FromJson(best.config_json()));
          ASSIGN_OR_RETURN(
              SupernetHost::Export exported,
              supernets_.ExportSubnet(
                  job.space, genotype, [context] { return context->IsCancelled(); }, int8_engine));
          response->set_torchscript(std::move(exported.torchscript));
          response->set_torchscript_accuracy(exported.accuracy);
          response->set_supernet_version(exported.supernet_version);
          response->set_torchscript_precision(int8_engine.has_value() ? "int8" : "fake-quant");
          if (int8_engine.has_value()) {
            response->set_quantized_engine(oface::QuantizedEngineName(*int8_engine));
          }
        }
        response->set_job_id(job.id);
        response->set_space(job.space);
        response->set_device(job.device);
        response->set_config_json(best.config_json());
        *response->mutable_metrics() = best.metrics();
        *response->mutable_budgets() = proto.request().budgets();
        response->set_table_version(job.table_version);
        response->set_predictor_version(job.predictor_version);
        response->set_seed(proto.request().seed());
        // The front, by ascending cost: the trade-offs the budgets allowed.
        CandidateQuery front;
        front.job_id = job.id;
        front.pareto_front_only = true;
        front.limit = kMaxFrontInDeployableConfig;
        ASSIGN_OR_RETURN(const search::CostMetric front_cost,
                         CostMetricFromProto(proto.request().pareto_cost(), "pareto_cost"));
        front.order = AscendingOrder(front_cost);
        ASSIGN_OR_RETURN(CandidatePage page, store_.ListCandidates(front));
        for (const CandidateRecord& candidate : page.candidates) {
          *response->add_pareto_front() = CandidateToProto(request->job_id(), candidate);
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SearchServiceImpl::Evaluate(grpc::CallbackServerContext* context,
                                                      const apq::v1::EvaluateRequest* request,
                                                      apq::v1::EvaluateResponse* response) {
  Executor& pool = request->measure() != apq::v1::MEASURE_MODE_UNSPECIFIED ? torch_pool_ : pool_;
  return RunOnPool(
      context, pool, auth_,
      request->measure() != apq::v1::MEASURE_MODE_UNSPECIFIED ? Permission::kSubmit
                                                              : Permission::kRead,
      [this, context, request, response](const Caller& caller) -> absl::Status {
        // As SubmitSearch: a missing space is a bad request, not an unknown space.
        if (request->space().empty()) return absl::InvalidArgumentError("space: required");
        if (request->configs_json_size() == 0) {
          return absl::InvalidArgumentError("configs_json: at least one configuration is required");
        }
        if (!apq::v1::MeasureMode_IsValid(request->measure())) {
          return absl::InvalidArgumentError(
              absl::StrCat("measure: unknown measure mode ", request->measure()));
        }
        const bool measure = request->measure() != apq::v1::MEASURE_MODE_UNSPECIFIED;
        if (measure && request->configs_json_size() > kMaxMeasuredConfigs) {
          return absl::InvalidArgumentError(
              absl::StrCat("configs_json: at most ", kMaxMeasuredConfigs,
                           " per call with measure, got ", request->configs_json_size()));
        }
        oface::DataSplit split = oface::DataSplit::kValidation;
        switch (request->split()) {
          case apq::v1::DATA_SPLIT_UNSPECIFIED:
          case apq::v1::DATA_SPLIT_VALIDATION:
            break;
          case apq::v1::DATA_SPLIT_TEST:
            split = oface::DataSplit::kTest;
            break;
          default:
            return absl::InvalidArgumentError(
                absl::StrCat("split: unknown value ", static_cast<int>(request->split())));
        }
        if (request->measure_test_images() < 0) {
          return absl::InvalidArgumentError(absl::StrCat("measure_test_images: must be >= 0, got ",
                                                         request->measure_test_images()));
        }
        if (measure && !supernets_.Has(request->space())) {
          RETURN_IF_ERROR(catalog_.FindSpace(request->space()).status());
          return absl::FailedPreconditionError(
              absl::StrCat("measure: space ", request->space(), " has no trained supernet"));
        }
        if (request->configs_json_size() > kMaxEvaluateConfigs) {
          return absl::InvalidArgumentError(absl::StrCat("configs_json: at most ",
                                                         kMaxEvaluateConfigs, " per call, got ",
                                                         request->configs_json_size()));
        }
        ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(request->space()));
        std::vector<oface::Genotype> genotypes;
        for (int i = 0; i < request->configs_json_size(); ++i) {
          absl::StatusOr<oface::Genotype> genotype = space->FromJson(request->configs_json(i));
          if (!genotype.ok()) {
            return absl::Status(
                genotype.status().code(),
                absl::StrCat("configs_json[", i, "]: ", genotype.status().message()));
          }
          genotypes.push_back(*std::move(genotype));
        }
        std::optional<Catalog::CostModelHandle> cost;
        if (!request->device().empty()) {
          ASSIGN_OR_RETURN(cost, catalog_.CostModel(request->space(), request->device(),
                                                    request->table_version()));
          response->set_table_version(cost->table_version);
          // A policy the device cannot run has no figure there.
          for (size_t i = 0; i < genotypes.size(); ++i) {
            if (absl::Status runs = cost->model->CheckExecutable(genotypes[i]); !runs.ok()) {
              return absl::InvalidArgumentError(
                  absl::StrCat("configs_json[", i, "]: ", runs.message(), ", which ",
                               cost->device_label, " does not execute (it runs ",
                               hwmodels::DescribePrecisions(cost->precisions), ")"));
            }
          }
        }
        // Accuracy is reported when the space has a predictor; costs alone are still useful.
        absl::StatusOr<Catalog::PredictorInstance> predictor =
            catalog_.NewPredictor(request->space());
        std::vector<float> accuracies;
        if (predictor.ok()) {
          predictor::FeatureBatch batch;
          for (const oface::Genotype& genotype : genotypes) {
            space->ActiveFeatures(genotype, batch.mutable_indices());
            batch.EndSample();
          }
          RETURN_IF_ERROR(predictor->predictor->Predict(batch, &accuracies));
          response->set_predictor_version(predictor->version);
        } else if (predictor.status().code() != absl::StatusCode::kFailedPrecondition ||
                   (!cost && !space->StaticCosts(genotypes.front()).has_value())) {
          // No predictor is only acceptable when the request gets costs.
          return predictor.status();
        }
        for (size_t i = 0; i < genotypes.size(); ++i) {
          apq::v1::Metrics* metrics = response->add_metrics();
          if (!accuracies.empty()) metrics->set_accuracy(accuracies[i]);
          if (cost) {
            const hwmodels::NetworkCost network = cost->model->Evaluate(genotypes[i]);
            metrics->set_latency_ms(network.latency_ms);
            if (network.has_energy) metrics->set_energy_mj(network.energy_mj);
            if (network.modelled) {
              metrics->add_modelled("latency_ms");
              if (network.has_energy) metrics->add_modelled("energy_mj");
            }
          }
          // Model size and BitOps need no device.
          if (const std::optional<oface::StaticCost> static_cost =
                  space->StaticCosts(genotypes[i])) {
            metrics->set_size_mb(static_cost->size_bytes / 1e6);
            metrics->set_bitops(static_cast<double>(static_cost->bitops));
          }
        }
        if (measure) {
          ASSIGN_OR_RETURN(std::vector<SupernetHost::Measurement> measured,
                           supernets_.Measure(request->space(), genotypes,
                                              request->measure() == apq::v1::MEASURE_MODE_QUANTIZED,
                                              split, request->measure_test_images(),
                                              [context] { return context->IsCancelled(); }));
          for (size_t i = 0; i < measured.size(); ++i) {
            apq::v1::Metrics* metrics = response->mutable_metrics(static_cast<int>(i));
            metrics->set_measured_accuracy(measured[i].accuracy);
            metrics->set_measured_method(measured[i].method);
            metrics->set_measured_seconds(measured[i].seconds);
            metrics->set_measured_split(oface::DataSplitName(measured[i].split));
          }
          response->set_supernet_version(supernets_.Version(request->space()));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SearchServiceImpl::ListEngines(grpc::CallbackServerContext* context,
                                                         const apq::v1::ListEnginesRequest* request,
                                                         apq::v1::ListEnginesResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, response](const Caller& caller) -> absl::Status {
                     for (const search::Engine* engine : engines_.engines()) {
                       *response->add_engines() = EngineToProto(*engine);
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* DeviceServiceImpl::UploadCostTable(
    grpc::CallbackServerContext* context, const apq::v1::UploadCostTableRequest* request,
    apq::v1::Device* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kUploadTables,
      [this, context, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(ValidateDeviceName(request->device()));
        if (request->format() == apq::v1::TABLE_FORMAT_UNSPECIFIED ||
            !apq::v1::TableFormat_IsValid(request->format())) {
          return absl::InvalidArgumentError(
              absl::StrCat("format: required, one of TABLE_FORMAT_OFA_YAML, "
                           "TABLE_FORMAT_APQ_BITFUSION, TABLE_FORMAT_CONV_JSON; got ",
                           request->format()));
        }
        if (request->files_size() == 0 || request->files_size() > kMaxTableFiles) {
          return absl::InvalidArgumentError(absl::StrCat("files: between 1 and ", kMaxTableFiles,
                                                         " files, got ", request->files_size()));
        }
        std::vector<TableFileRecord> files;
        for (int i = 0; i < request->files_size(); ++i) {
          // Names are checked by Catalog::UploadTable, before any parsing.
          const apq::v1::TableFile& file = request->files(i);
          files.push_back({file.name(), file.content()});
        }
        ASSIGN_OR_RETURN(TableVersionRecord stored,
                         catalog_.UploadTable(request->device(), request->format(), files,
                                              request->description(),
                                              [context] { return context->IsCancelled(); }));
        return FillDevice(catalog_, store_, stored.device, response);
      });
}

grpc::ServerUnaryReactor* DeviceServiceImpl::ListDevices(grpc::CallbackServerContext* context,
                                                         const apq::v1::ListDevicesRequest* request,
                                                         apq::v1::ListDevicesResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(std::vector<std::string> names, store_.ListDevices());
                     for (const std::string& name : names) {
                       RETURN_IF_ERROR(FillDevice(catalog_, store_, name, response->add_devices()));
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* DeviceServiceImpl::GetDevice(grpc::CallbackServerContext* context,
                                                       const apq::v1::GetDeviceRequest* request,
                                                       apq::v1::Device* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(ValidateDeviceName(request->device()));
                     return FillDevice(catalog_, store_, request->device(), response);
                   });
}

grpc::ServerUnaryReactor* DeviceServiceImpl::GetTableTemplate(
    grpc::CallbackServerContext* context, const apq::v1::GetTableTemplateRequest* request,
    apq::v1::TableTemplate* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller&) -> absl::Status {
                     if (request->space().empty()) {
                       return absl::InvalidArgumentError("space: required");
                     }
                     RETURN_IF_ERROR(ValidateResourceName("space", request->space()));
                     if (request->format() == apq::v1::TABLE_FORMAT_UNSPECIFIED ||
                         !apq::v1::TableFormat_IsValid(request->format())) {
                       return absl::InvalidArgumentError(
                           "format: required (TABLE_FORMAT_OFA_YAML, TABLE_FORMAT_APQ_BITFUSION "
                           "or TABLE_FORMAT_CONV_JSON)");
                     }
                     ASSIGN_OR_RETURN(hwmodels::TableTemplate made,
                                      catalog_.TableTemplate(request->space(), request->format()));
                     response->set_space(request->space());
                     response->set_format(request->format());
                     for (auto& [name, content] : made.files) {
                       apq::v1::TableFile* file = response->add_files();
                       file->set_name(name);
                       file->set_content(std::move(content));
                     }
                     response->set_entries(made.entries);
                     response->set_shapes(made.shapes);
                     for (std::string& key : made.unrepresentable) {
                       response->add_unrepresentable_keys(std::move(key));
                     }
                     return absl::OkStatus();
                   });
}

namespace {

void FillDataset(const DatasetRecord& record, apq::v1::Dataset* dataset) {
  dataset->set_name(record.name);
  dataset->set_space(record.space);
  dataset->set_description(record.description);
  dataset->set_created_unix_s(record.created_unix_s);
  dataset->set_fp32_records(record.fp32_records);
  dataset->set_quantized_records(record.records - record.fp32_records);
  dataset->set_split(record.split);
}

// The space's predictors as ListPredictors lists them: the shipped one first, then the
// stored ones oldest first; `default_version` is what its searches use now.
absl::Status FillPredictors(Catalog& catalog, PredictorStore& store, const std::string& space,
                            apq::v1::ListPredictorsResponse* response) {
  RETURN_IF_ERROR(catalog.FindSpace(space).status());
  ASSIGN_OR_RETURN(std::vector<PredictorRecord> stored, store.ListPredictors(space));
  std::string default_version;
  absl::StatusOr<Catalog::ShippedPredictorInfo> shipped = catalog.ShippedPredictor(space);
  if (shipped.ok()) {
    apq::v1::Predictor* predictor = response->add_predictors();
    predictor->set_space(space);
    predictor->set_version(shipped->version);
    predictor->set_kind(kMlpRawF32Kind);
    predictor->set_input_size(shipped->input_size);
    predictor->set_shipped(true);
    default_version = shipped->version;
  }
  for (const PredictorRecord& record : stored) {
    apq::v1::Predictor* predictor = response->add_predictors();
    predictor->set_space(record.space);
    predictor->set_version(record.version);
    predictor->set_kind(record.kind);
    predictor->set_dataset(record.dataset);
    predictor->set_created_unix_s(record.created_unix_s);
    predictor->set_is_default(record.is_default);
    PredictorMetricsFromJson(record.metrics_json, predictor->mutable_metrics());
    const nlohmann::json metrics = nlohmann::json::parse(record.metrics_json, nullptr, false);
    // Stored rows are read defensively: a field of another type is left unset, not thrown.
    if (metrics.is_object()) {
      const auto input_size = metrics.find("input_size");
      if (input_size != metrics.end() && input_size->is_number_integer() &&
          input_size->get<int64_t>() >= 0 && input_size->get<int64_t>() <= INT32_MAX) {
        predictor->set_input_size(static_cast<int32_t>(input_size->get<int64_t>()));
      }
      const auto training_job = metrics.find("training_job");
      if (training_job != metrics.end() && training_job->is_string()) {
        predictor->set_training_job(training_job->get<std::string>());
      }
    }
    if (record.is_default) default_version = record.version;
  }
  for (apq::v1::Predictor& predictor : *response->mutable_predictors()) {
    predictor.set_is_default(predictor.version() == default_version);
  }
  response->set_default_version(default_version);
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* PredictorServiceImpl::UploadDataset(
    grpc::CallbackServerContext* context, const apq::v1::UploadDatasetRequest* request,
    apq::v1::Dataset* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kAdmin,
      [this, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(ValidateResourceName("name", request->name()));
        if (request->space().empty()) return absl::InvalidArgumentError("space: required");
        RETURN_IF_ERROR(
            ValidateUserText("description", request->description(), 4096, /*multiline=*/true));
        ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(request->space()));
        ASSIGN_OR_RETURN(std::vector<MeasurementRow> rows,
                         MeasurementRowsFromUpload(*space, *request));
        DatasetRecord dataset;
        dataset.name = request->name();
        dataset.space = request->space();
        dataset.description = request->description();
        dataset.created_unix_s = NowUnixSeconds();
        RETURN_IF_ERROR(store_.datasets().CreateDataset(dataset, rows));
        ASSIGN_OR_RETURN(DatasetRecord stored, store_.datasets().GetDataset(dataset.name));
        FillDataset(stored, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::ListDatasets(
    grpc::CallbackServerContext* context, const apq::v1::ListDatasetsRequest* request,
    apq::v1::ListDatasetsResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     if (!request->space().empty())
                       RETURN_IF_ERROR(catalog_.FindSpace(request->space()).status());
                     ASSIGN_OR_RETURN(std::vector<DatasetRecord> datasets,
                                      store_.datasets().ListDatasets());
                     for (const DatasetRecord& dataset : datasets) {
                       if (request->space().empty() || dataset.space == request->space()) {
                         FillDataset(dataset, response->add_datasets());
                       }
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::TrainPredictor(
    grpc::CallbackServerContext* context, const apq::v1::TrainPredictorRequest* request,
    apq::v1::TrainingJob* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(*response, training_.Submit(*request));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::GetTrainingJob(
    grpc::CallbackServerContext* context, const apq::v1::GetTrainingJobRequest* request,
    apq::v1::TrainingJob* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(TrainingJobRecord job,
                                      store_.training_jobs().GetTrainingJob(request->job_id()));
                     *response = TrainingJobToProto(job);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::ListTrainingJobs(
    grpc::CallbackServerContext* context, const apq::v1::ListTrainingJobsRequest* request,
    apq::v1::ListTrainingJobsResponse* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kRead,
      [this, request, response](const Caller& caller) -> absl::Status {
        ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size(), 50, 1000));
        ASSIGN_OR_RETURN(int64_t offset,
                         ParseOffsetPageToken("training_jobs", request->page_token()));
        // One more than the page, to know whether there is a next one.
        ASSIGN_OR_RETURN(std::vector<TrainingJobRecord> jobs,
                         store_.training_jobs().ListTrainingJobs(
                             /*unfinished_only=*/false, offset, page_size + 1));
        const bool more = jobs.size() > static_cast<size_t>(page_size);
        if (more) jobs.pop_back();
        for (const TrainingJobRecord& job : jobs) *response->add_jobs() = TrainingJobToProto(job);
        if (more)
          response->set_next_page_token(OffsetPageToken("training_jobs", offset + page_size));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::CancelTrainingJob(
    grpc::CallbackServerContext* context, const apq::v1::CancelTrainingJobRequest* request,
    apq::v1::TrainingJob* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireJobId(request->job_id()));
                     ASSIGN_OR_RETURN(*response, training_.Cancel(request->job_id()));
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::ListPredictors(
    grpc::CallbackServerContext* context, const apq::v1::ListPredictorsRequest* request,
    apq::v1::ListPredictorsResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     if (request->space().empty())
                       return absl::InvalidArgumentError("space: required");
                     return FillPredictors(catalog_, store_.predictors(), request->space(),
                                           response);
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::SetDefaultPredictor(
    grpc::CallbackServerContext* context, const apq::v1::SetDefaultPredictorRequest* request,
    apq::v1::Predictor* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kAdmin,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (request->space().empty()) return absl::InvalidArgumentError("space: required");
        if (request->version().empty()) return absl::InvalidArgumentError("version: required");
        RETURN_IF_ERROR(catalog_.SetDefaultPredictor(request->space(), request->version()));
        apq::v1::ListPredictorsResponse listed;
        RETURN_IF_ERROR(FillPredictors(catalog_, store_.predictors(), request->space(), &listed));
        for (const apq::v1::Predictor& predictor : listed.predictors()) {
          if (predictor.version() == request->version()) *response = predictor;
        }
        return absl::OkStatus();
      });
}

namespace {

apq::v1::MeasurementRun MeasurementRunToProto(const MeasurementRunRecord& run) {
  apq::v1::MeasurementRun proto;
  proto.set_id(run.id);
  proto.set_dataset(run.dataset);
  proto.set_space(run.space);
  proto.set_method(run.method);
  proto.set_split(run.split);
  proto.set_seed(run.seed);
  proto.set_state(static_cast<apq::v1::JobState>(run.state));
  proto.set_tasks_total(run.tasks_total);
  proto.set_tasks_done(run.tasks_done);
  proto.set_tasks_failed(run.tasks_failed);
  proto.set_tasks_held(run.tasks_held);
  proto.set_max_attempts(run.max_attempts);
  proto.set_launcher(run.launcher);
  const auto [images, calibration_images] = MeasurementRunManager::RunImages(run);
  proto.set_images(images);
  proto.set_calibration_images(calibration_images);
  proto.set_created_unix_s(run.created_unix_s);
  proto.set_finished_unix_s(run.finished_unix_s);
  proto.set_error(run.error);
  return proto;
}

absl::Status RequireRunId(const std::string& run_id) {
  if (run_id.empty()) return absl::InvalidArgumentError("run_id: required");
  if (run_id.size() > 64) return absl::InvalidArgumentError("run_id: longer than 64 bytes");
  return absl::OkStatus();
}

// The request decoded, its defaults filled in; INVALID_ARGUMENT naming a field whose value is
// not one of its names. Ranges are the manager's to check.
absl::StatusOr<MeasurementRunManager::Request> DecodeMeasurementRun(
    const apq::v1::StartMeasurementRunRequest& request) {
  MeasurementRunManager::Request decoded;
  decoded.dataset = request.dataset();
  decoded.space = request.space();
  decoded.description = request.description();
  decoded.configs.assign(request.configs().begin(), request.configs().end());
  decoded.count = request.count();
  decoded.seed = request.has_seed() ? request.seed() : 1;
  decoded.quantized = request.quantized();
  if (!request.bit_sampling().empty()) {
    absl::StatusOr<oface::BitSampling> bits = oface::BitSamplingFromName(request.bit_sampling());
    if (!bits.ok() || *bits == oface::BitSampling::kHighest) {
      return absl::InvalidArgumentError(
          absl::StrCat("bit_sampling: '", request.bit_sampling(),
                       "' is not random, uniform, near_uniform or paired"));
    }
    if (!request.quantized()) {
      return absl::InvalidArgumentError("bit_sampling: only for quantized measurements");
    }
    decoded.bit_sampling = *bits;
  }
  if (!request.split().empty()) {
    absl::StatusOr<oface::DataSplit> split = oface::DataSplitFromName(request.split());
    if (!split.ok() || *split == oface::DataSplit::kTrain) {
      return absl::InvalidArgumentError(
          absl::StrCat("split: '", request.split(), "' is not validation or test"));
    }
    decoded.split = *split;
  }
  decoded.images = request.images();
  if (request.has_calibration_images()) decoded.calibration_images = request.calibration_images();
  decoded.workers = request.workers() == 0 ? 2 : request.workers();
  if (request.has_max_attempts()) decoded.max_attempts = request.max_attempts();
  return decoded;
}

}  // namespace

grpc::ServerUnaryReactor* PredictorServiceImpl::StartMeasurementRun(
    grpc::CallbackServerContext* context, const apq::v1::StartMeasurementRunRequest* request,
    apq::v1::MeasurementRun* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     ASSIGN_OR_RETURN(const MeasurementRunManager::Request decoded,
                                      DecodeMeasurementRun(*request));
                     ASSIGN_OR_RETURN(const MeasurementRunRecord run, measurements_.Start(decoded));
                     *response = MeasurementRunToProto(run);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::GetMeasurementRun(
    grpc::CallbackServerContext* context, const apq::v1::GetMeasurementRunRequest* request,
    apq::v1::MeasurementRun* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireRunId(request->run_id()));
                     ASSIGN_OR_RETURN(
                         const MeasurementRunRecord run,
                         store_.measurement_runs().GetMeasurementRun(request->run_id()));
                     *response = MeasurementRunToProto(run);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::ListMeasurementRuns(
    grpc::CallbackServerContext* context, const apq::v1::ListMeasurementRunsRequest* request,
    apq::v1::ListMeasurementRunsResponse* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kRead,
      [this, request, response](const Caller& caller) -> absl::Status {
        ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size(), 50, 1000));
        ASSIGN_OR_RETURN(int64_t offset,
                         ParseOffsetPageToken("measurement_runs", request->page_token()));
        // One more than the page, to know whether there is a next one.
        ASSIGN_OR_RETURN(std::vector<MeasurementRunRecord> runs,
                         store_.measurement_runs().ListMeasurementRuns(offset, page_size + 1));
        const bool more = runs.size() > static_cast<size_t>(page_size);
        if (more) runs.pop_back();
        for (const MeasurementRunRecord& run : runs) {
          *response->add_runs() = MeasurementRunToProto(run);
        }
        if (more) {
          response->set_next_page_token(OffsetPageToken("measurement_runs", offset + page_size));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* PredictorServiceImpl::CancelMeasurementRun(
    grpc::CallbackServerContext* context, const apq::v1::CancelMeasurementRunRequest* request,
    apq::v1::MeasurementRun* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     RETURN_IF_ERROR(RequireRunId(request->run_id()));
                     ASSIGN_OR_RETURN(const MeasurementRunRecord run,
                                      measurements_.Cancel(request->run_id()));
                     *response = MeasurementRunToProto(run);
                     return absl::OkStatus();
                   });
}

apq::v1::Token TokenToProto(const TokenRecord& token) {
  apq::v1::Token proto;
  proto.set_id(token.id);
  proto.set_name(token.name);
  proto.set_role(static_cast<apq::v1::Role>(token.role));
  proto.set_created_unix_s(token.created_unix_s);
  proto.set_created_by(token.created_by);
  proto.set_revoked_unix_s(token.revoked_unix_s);
  return proto;
}

grpc::ServerUnaryReactor* AccessServiceImpl::CreateToken(grpc::CallbackServerContext* context,
                                                         const apq::v1::CreateTokenRequest* request,
                                                         apq::v1::CreatedToken* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     if (request->role() == apq::v1::ROLE_UNSPECIFIED ||
                         !apq::v1::Role_IsValid(request->role())) {
                       return absl::InvalidArgumentError(absl::StrCat(
                           "role: required, one of ROLE_VIEWER, ROLE_SUBMITTER, ROLE_HARDWARE, "
                           "ROLE_ADMIN; got ",
                           request->role()));
                     }
                     ASSIGN_OR_RETURN(IssuedToken issued,
                                      auth_.CreateToken(
                                          request->name(), static_cast<Role>(request->role()),
                                          caller.token_id.empty() ? "anonymous" : caller.token_id));
                     *response->mutable_token() = TokenToProto(issued.record);
                     response->set_secret(issued.bearer);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* AccessServiceImpl::ListTokens(grpc::CallbackServerContext* context,
                                                        const apq::v1::ListTokensRequest* request,
                                                        apq::v1::ListTokensResponse* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, response](const Caller& /*caller*/) -> absl::Status {
                     ASSIGN_OR_RETURN(std::vector<TokenRecord> tokens, tokens_.ListTokens());
                     for (const TokenRecord& token : tokens) {
                       *response->add_tokens() = TokenToProto(token);
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* AccessServiceImpl::RevokeToken(grpc::CallbackServerContext* context,
                                                         const apq::v1::RevokeTokenRequest* request,
                                                         apq::v1::Token* response) {
  return RunOnPool(context, pool_, auth_, Permission::kAdmin,
                   [this, request, response](const Caller& /*caller*/) -> absl::Status {
                     if (request->id().empty() || request->id().size() > 64) {
                       return absl::InvalidArgumentError("id: required, at most 64 bytes");
                     }
                     ASSIGN_OR_RETURN(TokenRecord revoked, auth_.RevokeToken(request->id()));
                     *response = TokenToProto(revoked);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* AccessServiceImpl::WhoAmI(grpc::CallbackServerContext* context,
                                                    const apq::v1::WhoAmIRequest* request,
                                                    apq::v1::Token* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, response](const Caller& caller) -> absl::Status {
                     if (caller.token_id.empty()) {
                       response->set_name(caller.name);
                       response->set_role(static_cast<apq::v1::Role>(caller.role));
                       return absl::OkStatus();
                     }
                     ASSIGN_OR_RETURN(TokenRecord token, tokens_.GetToken(caller.token_id));
                     *response = TokenToProto(token);
                     return absl::OkStatus();
                   });
}

absl::Status SpaceServiceImpl::Describe(const std::string& name, bool with_fields,
                                        apq::v1::SpaceDescription* out) {
  if (name.empty()) return absl::InvalidArgumentError("space: required");
  ASSIGN_OR_RETURN(const oface::SearchSpace* space, catalog_.FindSpace(name));
  {
    absl::MutexLock lock(&mutex_);
    auto described = described_.find(name);
    if (described == described_.end()) {
      ASSIGN_OR_RETURN(apq::v1::SpaceDescription fields, DescribeSpaceFields(*space, true));
      described = described_.emplace(name, std::move(fields)).first;
    }
    *out = described->second;
  }
  if (!with_fields) out->clear_fields();
  // The devices whose latest table prices the space, fully or in part by a fitted model.
  ASSIGN_OR_RETURN(const std::vector<std::string> devices, devices_.ListDevices());
  for (const std::string& device : devices) {
    ASSIGN_OR_RETURN(const std::vector<TableVersionRecord> versions,
                     devices_.ListTableVersions(device));
    if (versions.empty()) continue;
    ASSIGN_OR_RETURN(const Catalog::Coverage coverage,
                     catalog_.SpaceCoverage(device, versions.back().version));
    const auto names = [&name](const std::vector<std::string>& spaces) {
      return std::find(spaces.begin(), spaces.end(), name) != spaces.end();
    };
    if (names(coverage.covered)) {
      out->add_devices(device);
    } else if (names(coverage.modelled)) {
      out->add_modelled_devices(device);
    } else {
      continue;
    }
    ASSIGN_OR_RETURN(const hwmodels::PrecisionSupport precisions,
                     catalog_.Precisions(device, versions.back().version));
    apq::v1::SpacePrecisionsOnDevice* on_device = out->add_device_precisions();
    on_device->set_device(device);
    on_device->set_summary(hwmodels::DescribePrecisions(precisions));
    // The space's pairs: every combination of a layer's weight and activation choices.
    std::vector<hwmodels::BitPair> pairs;
    for (const auto& [w, a] : oface::BitsGenePairs(*space)) {
      for (const int weight : space->genes()[w].choices) {
        for (const int activation : space->genes()[a].choices) {
          pairs.push_back({weight, activation});
        }
      }
    }
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
    for (const hwmodels::BitPair& pair : pairs) {
      if (hwmodels::Executes(precisions, pair)) {
        on_device->add_pairs(hwmodels::PairName(pair));
      } else {
        on_device->set_restricted(true);
      }
    }
  }
  out->set_has_supernet(supernets_.Has(name));
  out->set_supernet_version(supernets_.Version(name));
  absl::StatusOr<Catalog::PredictorInstance> predictor = catalog_.NewPredictor(name);
  if (predictor.ok()) {
    out->set_has_predictor(true);
    out->set_predictor_version(predictor->version);
  } else if (!absl::IsFailedPrecondition(predictor.status())) {
    return predictor.status();
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* SpaceServiceImpl::ListSpaces(grpc::CallbackServerContext* context,
                                                       const apq::v1::ListSpacesRequest* request,
                                                       apq::v1::ListSpacesResponse* response) {
  return RunOnPool(
      context, pool_, auth_, Permission::kRead,
      [this, response](const Caller& caller) -> absl::Status {
        for (const std::string& name : catalog_.SpaceNames()) {
          RETURN_IF_ERROR(Describe(name, /*with_fields=*/false, response->add_spaces()));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SpaceServiceImpl::DescribeSpace(
    grpc::CallbackServerContext* context, const apq::v1::DescribeSpaceRequest* request,
    apq::v1::SpaceDescription* response) {
  return RunOnPool(context, pool_, auth_, Permission::kRead,
                   [this, request, response](const Caller& caller) -> absl::Status {
                     return Describe(request->space(), /*with_fields=*/true, response);
                   });
}

}  // namespace apq::server
