"""The client: one gRPC channel to apqd and a method per thing a user does."""

import json
import time

import grpc
from google.protobuf import json_format

from apq.v1 import apq_pb2, apq_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class ApqError(Exception):
    """A call the server refused or that failed, with the server's google.rpc details.

    code: the grpc.StatusCode; message: the server's message (it starts with the offending
    field's path when there is one); field_violations: [(field path, description)];
    precondition_violations: [(type, subject, description)]; quota_violations:
    [(subject, description)]; resource: (type, name) for NOT_FOUND / ALREADY_EXISTS, else None.
    """

    def __init__(self, code, message, rich=None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = []
        self.precondition_violations = []
        self.quota_violations = []
        self.resource = None
        for detail in (rich.details if rich is not None else []):
            bad_request = error_details_pb2.BadRequest()
            precondition = error_details_pb2.PreconditionFailure()
            quota = error_details_pb2.QuotaFailure()
            resource = error_details_pb2.ResourceInfo()
            if detail.Unpack(bad_request):
                self.field_violations += [(v.field, v.description)
                                          for v in bad_request.field_violations]
            elif detail.Unpack(precondition):
                self.precondition_violations += [(v.type, v.subject, v.description)
                                                 for v in precondition.violations]
            elif detail.Unpack(quota):
                self.quota_violations += [(v.subject, v.description) for v in quota.violations]
            elif detail.Unpack(resource):
                self.resource = (resource.resource_type, resource.resource_name)

    @property
    def fields(self):
        """The paths of the request fields the server named."""
        return [field for field, _ in self.field_violations]


class InvalidArgument(ApqError):
    """INVALID_ARGUMENT or OUT_OF_RANGE: a request field is wrong (see field_violations)."""


class NotFound(ApqError):
    """NOT_FOUND: no such job, space, device, dataset, token (see resource)."""


class FailedPrecondition(ApqError):
    """FAILED_PRECONDITION: the request is well formed but the server's state refuses it."""


class PermissionDenied(ApqError):
    """PERMISSION_DENIED: the token's role may not make this call."""


class Unauthenticated(ApqError):
    """UNAUTHENTICATED: no token, or not one the server knows."""


class ResourceExhausted(ApqError):
    """RESOURCE_EXHAUSTED: a quota (calls per minute, active jobs) is used up."""


class Unavailable(ApqError):
    """UNAVAILABLE: no server answers at the address."""


class DeadlineExceeded(ApqError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


class Cancelled(ApqError):
    """CANCELLED."""


class Internal(ApqError):
    """INTERNAL, DATA_LOSS, UNKNOWN and any other code: the server failed."""


_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: FailedPrecondition,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def _error_of(rpc_error):
    """The ApqError of a grpc.RpcError, with the details of its trailer when present."""
    rich = None
    for key, value in (rpc_error.trailing_metadata() or ()):
        if key == _DETAILS_KEY:
            rich = status_pb2.Status()
            rich.ParseFromString(value)
    code = rpc_error.code()
    return _ERRORS.get(code, Internal)(code, rpc_error.details() or "", rich)


def _dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _state_name(state):
    return apq_pb2.JobState.Name(state).replace("JOB_STATE_", "").lower()


class SearchResult:
    """A search job as the server last reported it.

    job_id, state ("queued", "running", "succeeded", "failed", "cancelled"), ok (succeeded),
    error, config (the best network's config, parsed from its JSON), metrics (its predicted
    accuracy and costs, and measured_accuracy when the job verified it), engine_metrics, job
    (the whole job as a dict).
    """

    def __init__(self, job):
        self.job = _dict(job)
        self.job_id = job.id
        self.state = _state_name(job.state)
        self.ok = job.state == apq_pb2.JOB_STATE_SUCCEEDED
        self.error = job.error
        self.config = json.loads(job.best.config_json) if job.HasField("best") else None
        self.metrics = _dict(job.best.metrics) if job.HasField("best") else {}
        self.engine_metrics = dict(job.engine_metrics)

    def __repr__(self):
        return f"SearchResult({self.job_id}, {self.state}, metrics={self.metrics})"


def _option_value(value):
    option = apq_pb2.EngineOptionValue()
    if isinstance(value, bool):
        option.bool_value = value
    elif isinstance(value, int):
        option.int_value = value
    elif isinstance(value, float):
        option.double_value = value
    elif isinstance(value, str):
        option.choice_value = value
    else:
        raise TypeError(f"engine option values are bool, int, float or str, got {value!r}")
    return option


class Client:
    """One apqd. `token`: an API token ("apq_<id>_<secret>") or None; `tls`: verify the server
    (with `ca`, PEM bytes, or the system's roots); `timeout`: seconds per unary call."""

    def __init__(self, address="127.0.0.1:50051", token=None, tls=False, ca=None, timeout=60.0):
        if tls or ca is not None:
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca))
        else:
            self._channel = grpc.insecure_channel(address)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout = timeout
        self._search = apq_pb2_grpc.SearchServiceStub(self._channel)
        self._devices = apq_pb2_grpc.DeviceServiceStub(self._channel)
        self._predictors = apq_pb2_grpc.PredictorServiceStub(self._channel)
        self._spaces = apq_pb2_grpc.SpaceServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout=None):
        try:
            return method(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise _error_of(error) from None

    # What can be searched.
    def spaces(self):
        """Every space, summarised: devices, supernet, predictor, field count."""
        response = self._call(self._spaces.ListSpaces, apq_pb2.ListSpacesRequest())
        return [_dict(space) for space in response.spaces]

    def describe_space(self, space):
        """Every field of a space's configs: its JSON path, choices and JSON values."""
        return _dict(self._call(self._spaces.DescribeSpace,
                                apq_pb2.DescribeSpaceRequest(space=space)))

    def devices(self):
        response = self._call(self._devices.ListDevices, apq_pb2.ListDevicesRequest())
        return [_dict(device) for device in response.devices]

    def engines(self):
        response = self._call(self._search.ListEngines, apq_pb2.ListEnginesRequest())
        return [_dict(engine) for engine in response.engines]

    # Searches.
    def search(self, space, device, *, max_latency_ms=None, max_energy_mj=None,
               max_size_mb=None, max_bitops=None, engine=None, options=None, population=None,
               generations=None, seed=0, label="", uniform_bits=0, fixed_architecture=None,
               verify_top_k=0, wait=True, progress=False):
        """Submits a search; with `wait`, follows it to its end (`progress`: a tqdm bar) and
        returns its SearchResult, else the submitted job's. `engine` and `options` (a dict of
        bool, int, float or str values) pick another engine than evolution;
        `fixed_architecture` (a config, or its JSON) holds the architecture."""
        request = apq_pb2.SubmitSearchRequest(space=space, device=device, seed=seed, label=label,
                                              uniform_bits=uniform_bits)
        for name, value in (("max_latency_ms", max_latency_ms), ("max_energy_mj", max_energy_mj),
                            ("max_size_mb", max_size_mb), ("max_bitops", max_bitops)):
            if value is not None:
                setattr(request.budgets, name, float(value))
        if engine is not None and engine != "evolution":
            request.engine_request.name = engine
            for name, value in (options or {}).items():
                request.engine_request.options[name].CopyFrom(_option_value(value))
        else:
            if options:
                request.engine_request.name = "evolution"
                for name, value in options.items():
                    request.engine_request.options[name].CopyFrom(_option_value(value))
            if population is not None:
                request.evolution.population_size = population
            if generations is not None:
                request.evolution.generations = generations
        if fixed_architecture is not None:
            request.fixed_architecture = (fixed_architecture if isinstance(fixed_architecture, str)
                                          else json.dumps(fixed_architecture))
        if verify_top_k:
            request.verification.top_k = verify_top_k
        job = self._call(self._search.SubmitSearch, request)
        if not wait:
            return SearchResult(job)
        return self.watch(job.id, progress=progress)

    def watch(self, job_id, progress=True):
        """Follows a job to its end (a tqdm bar of its steps when `progress` and tqdm is
        installed) and returns its SearchResult."""
        bar = None
        if progress:
            try:
                from tqdm import tqdm
                bar = tqdm(desc=job_id, unit="step")
            except ImportError:
                bar = None
        try:
            stream = self._search.WatchJob(apq_pb2.WatchJobRequest(job_id=job_id),
                                           metadata=self._metadata)
            for update in stream:
                if bar is not None:
                    bar.total = update.total_generations or None
                    bar.n = update.generation
                    if update.HasField("best") and update.best.metrics.HasField("accuracy"):
                        bar.set_postfix(accuracy=f"{update.best.metrics.accuracy:.4f}")
                    bar.refresh()
        except grpc.RpcError as error:
            raise _error_of(error) from None
        finally:
            if bar is not None:
                bar.close()
        return self.job(job_id)

    def job(self, job_id):
        return SearchResult(self._call(self._search.GetJob, apq_pb2.GetJobRequest(job_id=job_id)))

    def jobs(self, state=None, space=None, device=None, label=None, limit=None):
        """The newest jobs first (every page), only those of the state ("succeeded", ...),
        space, device and label given ("" is the jobs without a label), at most `limit`."""
        request = apq_pb2.ListJobsRequest(space=space or "", device=device or "")
        if label is not None:
            request.label = label
        if state is not None:
            request.state = apq_pb2.JobState.Value("JOB_STATE_" + state.upper())
        jobs = []
        while True:
            response = self._call(self._search.ListJobs, request)
            jobs += [SearchResult(job) for job in response.jobs]
            if not response.next_page_token or (limit is not None and len(jobs) >= limit):
                return jobs[:limit] if limit is not None else jobs
            request.page_token = response.next_page_token

    def cancel(self, job_id):
        return SearchResult(self._call(self._search.CancelJob,
                                       apq_pb2.CancelJobRequest(job_id=job_id)))

    def evaluate(self, space, configs, device=None, measure=None, split="validation"):
        """Predicted accuracy and costs of each config (dicts or JSON texts); `measure`
        "fp32" or "quantized" also measures them on the space's supernet, on `split`."""
        request = apq_pb2.EvaluateRequest(space=space, device=device or "")
        for config in configs:
            request.configs_json.append(config if isinstance(config, str) else json.dumps(config))
        if measure is not None:
            request.measure = apq_pb2.MeasureMode.Value("MEASURE_MODE_" + measure.upper())
            request.split = apq_pb2.DataSplit.Value("DATA_SPLIT_" + split.upper())
        response = self._call(self._search.Evaluate, request, timeout=max(self._timeout, 600))
        return [_dict(metrics) for metrics in response.metrics]

    def candidates(self, job_id, sort=None, feasible=None, front_only=False, limit=None,
                   dataframe=False):
        """The job's candidates (every page, at most `limit`), each a dict with its config
        parsed and its metrics flattened; `sort` "accuracy", "latency", ...; `feasible`
        True/False filters; `dataframe`: a pandas DataFrame (pandas must be installed)."""
        request = apq_pb2.ListCandidatesRequest(job_id=job_id, pareto_front_only=front_only)
        if sort is not None:
            request.sort_by = apq_pb2.SortMetric.Value("SORT_METRIC_" + sort.upper())
        if feasible is not None:
            request.feasibility = (apq_pb2.FEASIBILITY_FEASIBLE if feasible
                                   else apq_pb2.FEASIBILITY_INFEASIBLE)
        rows = []
        while True:
            response = self._call(self._search.ListCandidates, request)
            for candidate in response.candidates:
                row = {"id": candidate.id, "name": candidate.name,
                       "generation": candidate.generation,
                       "feasible": candidate.feasible,
                       "on_pareto_front": candidate.on_pareto_front,
                       "times_seen": candidate.times_seen,
                       "config": json.loads(candidate.config_json)}
                row.update(_dict(candidate.metrics))
                rows.append(row)
            if not response.next_page_token or (limit is not None and len(rows) >= limit):
                break
            request.page_token = response.next_page_token
        rows = rows[:limit] if limit is not None else rows
        if dataframe:
            import pandas
            return pandas.DataFrame(rows)
        return rows

    def deployable_config(self, job_id):
        """The finished job's network: config (parsed), metrics, budgets, versions, front."""
        config = self._call(self._search.GetDeployableConfig,
                            apq_pb2.GetDeployableConfigRequest(job_id=job_id))
        out = _dict(config)
        out["config"] = json.loads(config.config_json)
        return out

    def export_torchscript(self, job_id, path):
        """Writes the job's network as a TorchScript file (from the space's supernet, or the
        module a training engine made) and returns its measured test accuracy (None when the
        server gives none)."""
        config = self._call(self._search.GetDeployableConfig,
                            apq_pb2.GetDeployableConfigRequest(job_id=job_id,
                                                               include_torchscript=True),
                            timeout=max(self._timeout, 600))
        with open(path, "wb") as out:
            out.write(config.torchscript)
        return config.torchscript_accuracy if config.HasField("torchscript_accuracy") else None

    # Hardware teams and predictors.
    def upload_table(self, device, table_format, paths, description=""):
        """A new version of `device`'s cost table from files; `table_format` "ofa-yaml",
        "apq-bitfusion" or "conv-json"."""
        request = apq_pb2.UploadCostTableRequest(device=device, description=description)
        request.format = apq_pb2.TableFormat.Value(
            "TABLE_FORMAT_" + table_format.upper().replace("-", "_"))
        for path in paths:
            with open(path, "rb") as source:
                request.files.add(name=path.rsplit("/", 1)[-1], content=source.read())
        return _dict(self._call(self._devices.UploadCostTable, request))

    def upload_dataset(self, name, space, records, description=""):
        """A dataset of measurements: each record a dict with "config" (or "config_json"),
        "accuracy", and optionally "method", "seconds" and "split"."""
        request = apq_pb2.UploadDatasetRequest(name=name, space=space, description=description)
        for record in records:
            config = record.get("config_json") or json.dumps(record["config"])
            request.records.add(config_json=config, accuracy=record["accuracy"],
                                method=record.get("method", ""),
                                seconds=record.get("seconds", 0.0),
                                split=record.get("split", ""))
        return _dict(self._call(self._predictors.UploadDataset, request))

    def train(self, space, dataset, kind="transfer", seed=0, make_default=False, wait=True,
              poll_s=2.0):
        """Trains an accuracy predictor on a dataset; with `wait`, polls until it ends and
        returns the training job (its predictor_version and held-out metrics)."""
        request = apq_pb2.TrainPredictorRequest(space=space, dataset=dataset, seed=seed,
                                                make_default=make_default)
        request.kind = apq_pb2.PredictorKind.Value(
            "PREDICTOR_KIND_" + {"transfer": "MLP_TRANSFER", "scratch": "MLP_SCRATCH"}.get(
                kind, kind.upper()))
        job = self._call(self._predictors.TrainPredictor, request)
        while wait and job.state in (apq_pb2.JOB_STATE_QUEUED, apq_pb2.JOB_STATE_RUNNING):
            time.sleep(poll_s)
            job = self._call(self._predictors.GetTrainingJob,
                             apq_pb2.GetTrainingJobRequest(job_id=job.id))
        out = _dict(job)
        out["state"] = _state_name(job.state)
        return out
