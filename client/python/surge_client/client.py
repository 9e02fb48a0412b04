"""Unary calls to surge-server: jobs, runs, records, fits and advice.

Every call has a deadline, waits for the channel to be ready (so a server that
is restarting is waited for, up to the deadline), and is retried with backoff on
UNAVAILABLE. Errors are raised as :class:`SurgeError` carrying the gRPC status
code name (``err.code == "NOT_FOUND"``) and the server's message.
"""
import collections
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, Optional, Sequence, Tuple

import grpc

from ._proto import pb, pb_grpc

DEFAULT_SERVER = "127.0.0.1:50051"

# Reconnect quickly after a server restart (gRPC's default backoff grows to 120 s).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
)

_UNITS = {"examples": pb.BATCH_UNIT_EXAMPLES, "tokens": pb.BATCH_UNIT_TOKENS}
_CRITERIA = {"improvement": pb.CRITERION_IMPROVEMENT, "fastest": pb.CRITERION_FASTEST}
_PROTOCOLS = {"plain": pb.PROTOCOL_PLAIN, "probe": pb.PROTOCOL_PROBE,
              "full_run": pb.PROTOCOL_FULL_RUN}


def resolve_server(server: Optional[str]) -> str:
    """`server`, else $SURGE_SERVER, else 127.0.0.1:50051."""
    return server or os.environ.get("SURGE_SERVER") or DEFAULT_SERVER


class _CallDetails(
        collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ("authorization", "Bearer <token>") to every call's metadata."""

    def __init__(self, token: str):
        self._entry = ("authorization", f"Bearer {token}")

    def _details(self, d):
        metadata = list(d.metadata or []) + [self._entry]
        return _CallDetails(d.method, d.timeout, metadata, d.credentials,
                            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_channel(server: Optional[str] = None, *, token: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None) -> grpc.Channel:
    """A channel to `server`. `token` (default $SURGE_TOKEN) is sent with every
    call, for a server with tokens. `tls_ca` (default $SURGE_TLS_CA), the CA
    file of a TLS server's certificate, makes the channel TLS; `tls_cert` and
    `tls_key` ($SURGE_CLIENT_CERT, $SURGE_CLIENT_KEY) add a client certificate
    (mutual TLS)."""
    target = resolve_server(server)
    token = token if token is not None else os.environ.get("SURGE_TOKEN") or None
    tls_ca = tls_ca or os.environ.get("SURGE_TLS_CA") or None
    tls_cert = tls_cert or os.environ.get("SURGE_CLIENT_CERT") or None
    tls_key = tls_key or os.environ.get("SURGE_CLIENT_KEY") or None
    if tls_ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca), private_key=_read(tls_key),
            certificate_chain=_read(tls_cert))
        channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel


class SurgeError(Exception):
    """An error from surge: `code` is the gRPC status code name, `details` the
    server's message. str(err) is "CODE: message", like the CLI prints."""

    def __init__(self, code: str, details: str):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, e: grpc.RpcError) -> "SurgeError":
        code = e.code() if hasattr(e, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        details = e.details() if hasattr(e, "details") else str(e)
        return cls(name, details or "")


class FlushTimeout(SurgeError, TimeoutError):
    """flush()/close() ran out of time with records still unacknowledged."""

    def __init__(self, unacked: int, timeout: float):
        super().__init__("DEADLINE_EXCEEDED",
                         f"{unacked} records not acked by the server within {timeout:g} s")
        self.unacked = unacked


def _enum_name(enum, value, prefix):
    name = enum.Name(value)
    return name[len(prefix):].lower() if name.startswith(prefix) else name.lower()


def _interval(i) -> Tuple[float, float]:
    return (i.lo, i.hi)


@dataclass(frozen=True)
class Transfer:
    """A tuned LR at batch B0 scaled to the asked batch size by the job's
    fitted curve: lr = reference_lr * eps_opt(B) / eps_opt(B0) (see
    AdviceTransfer in surge.proto)."""
    reference_batch_size: float
    reference_lr: float
    reference_loss: float                # the loss the reference stands at
    ratio: float                         # eps_opt(B) / eps_opt(B0)
    lr: float                            # reference_lr * ratio
    lr_ci95: Tuple[float, float]         # 95% prediction interval (curves + scatter at B and B0)
    linear_rule_lr: float                # reference_lr * B / B0
    sqrt_rule_lr: float                  # reference_lr * sqrt(B / B0)
    fitted_lr_at_reference: float        # the job's own optimum at B0
    flags: FrozenSet[str]                # reference_outside_data, reference_other_stage, ...
    lr_curve_ci95: Tuple[float, float] = (float("nan"), float("nan"))  # the curves alone

    @classmethod
    def from_proto(cls, t) -> "Transfer":
        flags = frozenset(name for name in ("reference_outside_data",
                                            "reference_extrapolated_in_loss",
                                            "reference_other_stage") if getattr(t, name))
        return cls(reference_batch_size=t.reference.batch_size, reference_lr=t.reference.lr,
                   reference_loss=t.reference_loss, ratio=t.ratio, lr=t.lr,
                   lr_ci95=_interval(t.lr_ci95), linear_rule_lr=t.linear_rule_lr,
                   sqrt_rule_lr=t.sqrt_rule_lr, fitted_lr_at_reference=t.fitted_lr_at_reference,
                   flags=flags, lr_curve_ci95=_interval(t.lr_curve_ci95))


@dataclass(frozen=True)
class Advice:
    """The optimal LR for one batch size at one step (see Advice in surge.proto)."""
    job: str
    fit_version: int
    batch_size: float
    step: Optional[int]
    loss: float                          # the loss the advice is for
    lr: float                            # model-averaged optimal learning rate
    lr_ci95: Tuple[float, float]         # 95% prediction interval for the optimum at B
    b_noise: float                       # point, or the bound (see b_noise_kind)
    b_noise_kind: str                    # point, lower_bound, upper_bound, unknown
    b_noise_ci95: Tuple[float, float]
    eps_max: float                       # NaN unless the peak is identified
    eps_max_ci95: Tuple[float, float]
    recommended_batch_size: float        # the speed/data balance point (= B_noise)
    steps_ratio: float                   # S/S_min at batch_size
    examples_ratio: float                # E/E_min at batch_size
    flags: FrozenSet[str]                # e.g. {"extrapolated_in_batch"}
    model: str                           # e.g. "average: surge 0.81, ..."
    model_weights: Dict[str, Tuple[float, float]]  # model -> (weight, its lr)
    verdict: str                         # yes, no, undecided, unspecified
    verdict_reason: str
    stages_used: Tuple[int, ...]
    criterion: str = "improvement"       # improvement (the paper's) or fastest
    evidence: str = ""                   # plain_runs, full_runs, probes, measured ("+"-joined)
    runs_used: int = 0                   # training runs behind the answer
    step_mapping: str = ""               # speed_data, loss_curve, or "" (no step)
    transfer: Optional[Transfer] = None  # with a reference: the tuned LR scaled to batch_size
    lr_curve_ci95: Tuple[float, float] = (float("nan"), float("nan"))  # the fitted curve alone

    @classmethod
    def from_proto(cls, a) -> "Advice":
        flags = frozenset(f.name for f, v in a.flags.ListFields() if v)
        return cls(
            job=a.job, fit_version=a.fit_version, batch_size=a.batch_size,
            step=a.step if a.HasField("step") else None, loss=a.loss, lr=a.lr,
            lr_ci95=_interval(a.lr_ci95), b_noise=a.b_noise,
            b_noise_kind=_enum_name(pb.BNoiseKind, a.b_noise_kind, "B_NOISE_KIND_"),
            b_noise_ci95=_interval(a.b_noise_ci95), eps_max=a.eps_max,
            eps_max_ci95=_interval(a.eps_max_ci95),
            recommended_batch_size=a.recommended_batch_size, steps_ratio=a.steps_ratio,
            examples_ratio=a.examples_ratio, flags=flags, model=a.model,
            model_weights={w.model: (w.weight, w.lr) for w in a.model_weights},
            verdict=_enum_name(pb.Verdict, a.verdict, "VERDICT_"),
            verdict_reason=a.verdict_reason, stages_used=tuple(a.stages_used),
            criterion=_enum_name(pb.Criterion, a.criterion, "CRITERION_"),
            evidence=a.evidence, runs_used=a.runs_used, step_mapping=a.step_mapping,
            transfer=Transfer.from_proto(a.transfer) if a.HasField("transfer") else None,
            lr_curve_ci95=_interval(a.lr_curve_ci95))


def optimizer_spec(optimizer) -> Optional[dict]:
    """Optimizer settings for CreateRun from a dict or a torch.optim.Optimizer
    (name from the class, betas/eps/weight_decay from param_groups[0])."""
    if optimizer is None:
        return None
    if isinstance(optimizer, dict):
        return dict(optimizer)
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        raise TypeError("optimizer: expected a dict or a torch.optim.Optimizer")
    g = groups[0]
    spec = {"name": type(optimizer).__name__.lower()}
    if "betas" in g:
        spec["beta1"], spec["beta2"] = float(g["betas"][0]), float(g["betas"][1])
    elif "momentum" in g:
        spec["beta1"] = float(g["momentum"])
    if "eps" in g:
        spec["eps"] = float(g["eps"])
    if "weight_decay" in g:
        spec["weight_decay"] = float(g["weight_decay"])
    return spec


class SurgeClient:
    """A channel to surge-server and its unary calls. Thread-safe; close() it
    (or use it as a context manager) when done."""

    def __init__(self, server: Optional[str] = None, *, timeout: float = 10.0,
                 retries: int = 4, channel: Optional[grpc.Channel] = None,
                 token: Optional[str] = None, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None):
        """`token` and the TLS files as for make_channel() (defaults from the
        environment: SURGE_TOKEN, SURGE_TLS_CA, SURGE_CLIENT_CERT, SURGE_CLIENT_KEY)."""
        self.server = resolve_server(server)
        self.timeout = timeout
        self.retries = retries
        self._own_channel = channel is None
        self.channel = channel if channel is not None else make_channel(
            self.server, token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self.stub = pb_grpc.SurgeStub(self.channel)

    def close(self):
        if self._own_channel:
            self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        backoff = 0.05
        for attempt in range(self.retries + 1):
            left = max(0.001, deadline - time.monotonic())
            try:
                return method(request, timeout=left, wait_for_ready=True)
            except grpc.RpcError as e:
                err = SurgeError.from_rpc_error(e)
                if (err.code != "UNAVAILABLE" or attempt == self.retries
                        or time.monotonic() + backoff >= deadline):
                    raise err from None
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    # Jobs -----------------------------------------------------------------
    def create_job(self, name: str, unit: str = "examples", description: str = "",
                   targets: Optional[Sequence[float]] = None, k_steps: int = 0):
        """Creates a job. `targets`: the target losses at which its plain runs
        are compared (default: chosen from the data); `k_steps`: the steps after
        a target for the paper's improvement (0: 10)."""
        if unit not in _UNITS:
            raise ValueError(f"unit: must be one of {sorted(_UNITS)}, got {unit!r}")
        job = pb.Job(name=name, batch_unit=_UNITS[unit], description=description,
                     target_losses=list(targets or []), k_steps=int(k_steps))
        return self._call(self.stub.CreateJob, pb.CreateJobRequest(job=job))

    def get_job(self, name: str):
        return self._call(self.stub.GetJob, pb.GetJobRequest(name=name))

    def ensure_job(self, name: str, unit: str = "examples", description: str = ""):
        """Creates the job, or returns it when it exists with the same unit
        (ALREADY_EXISTS when it exists with another unit)."""
        try:
            return self.create_job(name, unit, description)
        except SurgeError as e:
            if e.code != "ALREADY_EXISTS":
                raise
        job = self.get_job(name)
        if job.batch_unit != _UNITS[unit]:
            have = _enum_name(pb.BatchUnit, job.batch_unit, "BATCH_UNIT_")
            raise SurgeError("ALREADY_EXISTS",
                             f"job {name!r} exists with unit {have}, not {unit}")
        return job

    def delete_job(self, name: str):
        return self._call(self.stub.DeleteJob, pb.DeleteJobRequest(name=name))

    def delete_run(self, job: str, run: str):
        """Deletes one run with its records (the job is refitted)."""
        return self._call(self.stub.DeleteRun, pb.DeleteRunRequest(job=job, run=run))

    # Runs -----------------------------------------------------------------
    def create_run(self, job: str, name: str, batch_size: int, *, protocol: str = "plain",
                   base_lr: float = 0.0, optimizer=None, labels: Optional[dict] = None,
                   target_loss: Optional[float] = None, parent: Optional[dict] = None):
        """Declares a run; idempotent for the same batch size and protocol."""
        if protocol not in _PROTOCOLS:
            raise ValueError(f"protocol: must be one of {sorted(_PROTOCOLS)}, got {protocol!r}")
        run = pb.Run(name=name, batch_size=int(batch_size), protocol=_PROTOCOLS[protocol],
                     base_lr=float(base_lr))
        spec = optimizer_spec(optimizer)
        if spec:
            run.optimizer.CopyFrom(pb.Optimizer(**spec))
        if labels:
            for k, v in labels.items():
                run.labels[str(k)] = str(v)
        if target_loss is not None:
            run.target_loss = float(target_loss)
        if parent:
            run.parent.CopyFrom(pb.ParentStage(**parent))
        return self._call(self.stub.CreateRun, pb.CreateRunRequest(job=job, run=run))

    def list_runs(self, job: str):
        """Every run of `job` (follows next_page_token)."""
        runs, token = [], ""
        while True:
            page = self._call(self.stub.ListRuns, pb.ListRunsRequest(job=job, page_token=token))
            runs.extend(page.runs)
            token = page.next_page_token
            if not token:
                return runs

    def list_jobs(self):
        """Every job (follows next_page_token)."""
        jobs, token = [], ""
        while True:
            page = self._call(self.stub.ListJobs, pb.ListJobsRequest(page_token=token))
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    # Records --------------------------------------------------------------
    def list_records(self, job: str, run: str = "", page_size: int = 10000) -> Iterator:
        """Yields the stored surge.v1.Record messages, by run and step."""
        token = ""
        while True:
            page = self._call(self.stub.ListRecords, pb.ListRecordsRequest(
                job=job, run=run, page_size=page_size, page_token=token))
            yield from page.records
            token = page.next_page_token
            if not token:
                return

    # Fits and advice ------------------------------------------------------
    def get_fit(self, job: str, targets: Optional[Sequence[float]] = None,
                k_steps: int = 0):
        """The latest fit (surge.v1.Fit message; `error` set when not fittable yet).
        With `targets` (target losses for plain runs) or `k_steps`, a fit with
        those settings is computed now and not stored (version 0)."""
        req = pb.GetFitRequest(job=job, target_losses=list(targets or []), k_steps=int(k_steps))
        return self._call(self.stub.GetFit, req)

    def advise(self, job: str, batch_size: float, step: Optional[int] = None,
               timeout: Optional[float] = None, criterion: str = "improvement",
               reference: Optional[Tuple[float, float]] = None,
               reference_step: Optional[int] = None,
               reference_loss: Optional[float] = None) -> Advice:
        """The optimal LR for `batch_size` at `step` (None: the latest stage).
        `criterion`: "improvement" (the paper's: the largest loss fall over the
        k steps after each stage) or "fastest" (fewest steps to each stage's
        target loss; needs training runs). `reference=(B0, lr0)`: "my LR lr0
        is tuned at batch B0": the answer's `transfer` scales it to
        `batch_size` by the job's fitted curve (optionally tuned at
        `reference_step` or `reference_loss`). Raises SurgeError:
        INVALID_ARGUMENT (naming the field, e.g. reference.lr), NOT_FOUND
        (job), FAILED_PRECONDITION (no usable fit yet; the message says what
        evidence is missing)."""
        b = float(batch_size)
        if not math.isfinite(b):
            raise ValueError(f"batch_size: must be finite, got {batch_size!r}")
        if criterion not in _CRITERIA:
            raise ValueError(f"criterion: must be one of {sorted(_CRITERIA)}, got {criterion!r}")
        req = pb.GetAdviceRequest(job=job, batch_size=b, criterion=_CRITERIA[criterion])
        if step is not None:
            req.step = int(step)
        if reference is None and (reference_step is not None or reference_loss is not None):
            raise ValueError("reference_step and reference_loss need reference=(B0, lr0)")
        if reference is not None:
            try:
                b0, lr0 = reference
            except (TypeError, ValueError):
                raise ValueError(f"reference: expected (batch_size, lr), got {reference!r}")
            req.reference.batch_size = float(b0)  # the server checks > 0 and finite
            req.reference.lr = float(lr0)
            if reference_step is not None:
                req.reference.step = int(reference_step)
            if reference_loss is not None:
                req.reference.loss = float(reference_loss)
        return Advice.from_proto(self._call(self.stub.GetAdvice, req, timeout))


def advise(job: str, batch_size: float, step: Optional[int] = None, *,
           server: Optional[str] = None, timeout: float = 10.0,
           criterion: str = "improvement",
           reference: Optional[Tuple[float, float]] = None,
           reference_step: Optional[int] = None,
           reference_loss: Optional[float] = None) -> Advice:
    """One-shot GetAdvice on a fresh channel (see SurgeClient.advise), e.g.
    advise("job", 1024, reference=(256, 3e-4)).transfer.lr."""
    with SurgeClient(server, timeout=timeout) as c:
        return c.advise(job, batch_size, step, criterion=criterion, reference=reference,
                        reference_step=reference_step, reference_loss=reference_loss)
