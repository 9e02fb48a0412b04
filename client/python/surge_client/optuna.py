"""Optuna integration: every finished trial of a study becomes a PLAIN run of a surge job.

A callback streams each trial as it finishes:

    from surge_client.optuna import SurgeOptunaCallback
    cb = SurgeOptunaCallback("my-sweep", batch_param="batch_size", lr_param="lr")
    study.optimize(objective, n_trials=50, callbacks=[cb])   # objective: trial.report(v, step)
    print(cb.stats)

and a finished study is exported from its storage:

    python3 -m surge_client.optuna --storage sqlite:///study.db --study NAME --job my-sweep \
        --batch-param batch_size --lr-param lr [--server HOST:PORT] [--intermediate eval_loss|loss]

Trial -> run (see trial_run()): run `<run_prefix><number>` (default `trial-3`), batch size
`int(round(params[batch_param]))`, base_lr `params[lr_param]`, labels `optuna_study`,
`optuna_trial`, `optuna_state` (COMPLETE or PRUNED) and `seed` (from `seed_param`, when the
trial has it). Each intermediate value (step -> value, from `trial.report(value, step)`) is
one record: step, examples = step * batch_size, lr = base_lr, loss = value, and
eval_loss = value too when `intermediate == "eval_loss"` (the default: Optuna's intermediate
values are usually validation losses). Trials that are not COMPLETE or PRUNED (FAIL, RUNNING,
WAITING) are skipped, as are trials without intermediate values (counted, with a warning) and
non-finite values (counted). A trial to stream that lacks `batch_param` or `lr_param` (or
whose value is not a usable number) raises TrialParamError naming the param and the trial.

Streaming goes through Reporter (one per trial): the job is created if missing, CreateRun is
idempotent for the same batch size and protocol, records are unique per (run, step) on the
server, and the reporter is closed (everything acked, i.e. durable) before a trial's call
returns. Re-streaming a trial therefore stores nothing twice (ExportStats.records_duplicate
counts what was already there). A run of the same name that holds another study's trial (its
`optuna_study` label) or another base_lr is refused with ALREADY_EXISTS: give each study its
own `run_prefix` (or job).
"""
import argparse
import json
import logging
import math
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from .client import SurgeError, resolve_server
from .reporter import Reporter

log = logging.getLogger("surge_client")

INTERMEDIATE_KINDS = ("eval_loss", "loss")
STREAMED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
_RUN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class TrialParamError(ValueError):
    """A trial lacks a param the integration needs, or its value is unusable."""


@dataclass
class ExportStats:
    """What a callback or an export did, summed over trials."""
    trials_streamed: int = 0        # runs declared and their records acked
    trials_skipped_state: int = 0   # FAIL, RUNNING or WAITING: not streamed
    trials_skipped_empty: int = 0   # COMPLETE/PRUNED without intermediate values (warned)
    trials_failed: int = 0          # errors swallowed by a callback with raise_errors=False
    records_stored: int = 0         # records new on the server
    records_duplicate: int = 0      # records the server already had (re-streamed trials)
    values_skipped: int = 0         # non-finite intermediate values (not streamed)

    @property
    def records(self) -> int:
        """Records streamed and acked (new or already stored)."""
        return self.records_stored + self.records_duplicate

    def add(self, other: "ExportStats") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def summary(self) -> str:
        return (f"streamed {self.trials_streamed} trials, {self.records} records "
                f"({self.records_stored} new, {self.records_duplicate} already stored); "
                f"skipped {self.trials_skipped_empty} trials without intermediate values, "
                f"{self.trials_skipped_state} not COMPLETE/PRUNED, "
                f"{self.values_skipped} non-finite values")


class TrialRun(NamedTuple):
    """One trial as a surge run, with its records as (step, examples, lr, loss)."""
    name: str
    batch_size: int
    base_lr: float
    labels: Dict[str, str]
    records: List[Tuple[int, int, float, float]]
    values_skipped: int


def _number(trial: FrozenTrial, param: str, what: str) -> float:
    if param not in trial.params:
        have = ", ".join(sorted(trial.params)) or "none"
        raise TrialParamError(f"trial {trial.number}: no param {param!r} ({what}); "
                              f"the trial's params: {have}")
    value = trial.params[param]
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise TrialParamError(f"trial {trial.number}: param {param!r} ({what}) must be a "
                              f"number, got {value!r}") from None
    if not math.isfinite(v):
        raise TrialParamError(f"trial {trial.number}: param {param!r} ({what}) must be "
                              f"finite, got {value!r}")
    return v


def _label(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def trial_run(study_name: str, trial: FrozenTrial, *, batch_param: str = "batch_size",
              lr_param: str = "lr", seed_param: Optional[str] = None,
              run_prefix: str = "trial-") -> TrialRun:
    """The run a finished trial becomes (no I/O). TrialParamError when `batch_param` or
    `lr_param` is missing or not a usable number (batch size >= 1, lr >= 0)."""
    name = f"{run_prefix}{trial.number}"
    if not _RUN_NAME.match(name):
        raise ValueError(f"run name {name!r}: 1-128 characters of [A-Za-z0-9._-] "
                         f"(check run_prefix {run_prefix!r})")
    batch = int(round(_number(trial, batch_param, "batch size")))
    if batch < 1:
        raise TrialParamError(f"trial {trial.number}: param {batch_param!r} (batch size) "
                              f"must round to >= 1, got {trial.params[batch_param]!r}")
    lr = _number(trial, lr_param, "learning rate")
    if lr < 0:
        raise TrialParamError(f"trial {trial.number}: param {lr_param!r} (learning rate) "
                              f"must be >= 0, got {trial.params[lr_param]!r}")
    labels = {"optuna_study": study_name, "optuna_trial": str(trial.number),
              "optuna_state": trial.state.name}
    if seed_param is not None and seed_param in trial.params:
        labels["seed"] = _label(trial.params[seed_param])
    records, skipped = [], 0
    for step, value in sorted(trial.intermediate_values.items()):
        value = float(value)
        if not math.isfinite(value):
            skipped += 1
            continue
        records.append((int(step), int(step) * batch, lr, value))
    return TrialRun(name, batch, lr, labels, records, skipped)


def stream_trial(job: str, study_name: str, trial: FrozenTrial, *, server: Optional[str] = None,
                 batch_param: str = "batch_size", lr_param: str = "lr",
                 intermediate: str = "eval_loss", seed_param: Optional[str] = None,
                 run_prefix: str = "trial-", unit: str = "examples", optimizer=None,
                 timeout: float = 30.0, plan: Optional[TrialRun] = None) -> ExportStats:
    """Streams one trial as one PLAIN run of `job` and returns once every record is acked
    (durable). Skips (and counts) trials that are not COMPLETE/PRUNED or have no
    intermediate values. Raises TrialParamError, ValueError, SurgeError."""
    if intermediate not in INTERMEDIATE_KINDS:
        raise ValueError(f"intermediate: must be one of {INTERMEDIATE_KINDS}, "
                         f"got {intermediate!r}")
    stats = ExportStats()
    if trial.state not in STREAMED_STATES:
        stats.trials_skipped_state = 1
        return stats
    if plan is None and trial.intermediate_values:
        plan = trial_run(study_name, trial, batch_param=batch_param, lr_param=lr_param,
                         seed_param=seed_param, run_prefix=run_prefix)
    if plan is not None:
        stats.values_skipped = plan.values_skipped
    if plan is None or not plan.records:
        stats.trials_skipped_empty = 1
        log.warning("surge_client.optuna: study %r trial %d (%s) has no %sintermediate "
                    "values: not streamed", study_name, trial.number, trial.state.name,
                    "finite " if stats.values_skipped else "")
        return stats
    eval_too = intermediate == "eval_loss"
    with Reporter(job, plan.name, plan.batch_size, server=server, unit=unit, protocol="plain",
                  base_lr=plan.base_lr, optimizer=optimizer, labels=plan.labels,
                  connect_timeout=timeout, close_timeout=timeout,
                  batch_records=min(len(plan.records), 10_000)) as rep:
        stored = rep.run_info
        other = stored.labels.get("optuna_study")
        if (other is not None and other != study_name) or stored.base_lr != plan.base_lr:
            raise SurgeError(
                "ALREADY_EXISTS",
                f"job {job!r} run {plan.name!r} already holds "
                f"{'study ' + repr(other) if other is not None else 'another run'} "
                f"(base_lr {stored.base_lr:g}), not study {study_name!r} trial "
                f"{trial.number} (base_lr {plan.base_lr:g}): use another run prefix or job")
        for step, examples, lr, value in plan.records:
            rep.log(step=step, loss=value, lr=lr, examples_seen=examples,
                    eval_loss=value if eval_too else None)
    st = rep.stats()  # closed: everything acked
    stats.trials_streamed = 1
    stats.records_stored, stats.records_duplicate = st.stored, st.duplicate
    return stats


class SurgeOptunaCallback:
    """`study.optimize(objective, callbacks=[SurgeOptunaCallback(job, ...)])`: streams each
    finished trial (COMPLETE or PRUNED) as one PLAIN run of `job` (created if missing)
    before Optuna starts the next one. Re-streaming a trial stores nothing twice.

    job           the surge job
    batch_param   the trial param holding the batch size (rounded to an int)
    lr_param      the trial param holding the learning rate (the run's base_lr and every
                  record's lr)
    server        host:port; default $SURGE_SERVER, then 127.0.0.1:50051
    intermediate  "eval_loss" (default): each intermediate value is the record's loss and
                  eval_loss; "loss": the training loss only
    seed_param    optional param whose value becomes the run's `seed` label
    run_prefix    run name prefix (default "trial-": runs trial-0, trial-1, ...)
    unit          the job's batch unit when it is created ("examples" or "tokens")
    optimizer     optional optimizer spec for CreateRun (dict, see surge_client.optimizer_spec)
    timeout       seconds to wait for the server per trial (declaring, then flushing)
    raise_errors  True (default): an error (SurgeError, TrialParamError) propagates out of
                  study.optimize(); False: it is logged, counted in stats.trials_failed and
                  kept in last_error, and the study goes on

    `stats` (ExportStats) sums what was streamed and skipped. Thread-safe (n_jobs > 1).
    """

    def __init__(self, job: str, batch_param: str = "batch_size", lr_param: str = "lr",
                 server: Optional[str] = None, intermediate: str = "eval_loss", *,
                 seed_param: Optional[str] = None, run_prefix: str = "trial-",
                 unit: str = "examples", optimizer=None, timeout: float = 30.0,
                 raise_errors: bool = True):
        if intermediate not in INTERMEDIATE_KINDS:
            raise ValueError(f"intermediate: must be one of {INTERMEDIATE_KINDS}, "
                             f"got {intermediate!r}")
        if not _RUN_NAME.match(f"{run_prefix}0"):
            raise ValueError(f"run_prefix {run_prefix!r}: run names are 1-128 characters "
                             f"of [A-Za-z0-9._-]")
        self.job = job
        self.raise_errors = raise_errors
        self.last_error: Optional[Exception] = None
        self._kw = dict(server=server, batch_param=batch_param, lr_param=lr_param,
                        intermediate=intermediate, seed_param=seed_param,
                        run_prefix=run_prefix, unit=unit, optimizer=optimizer, timeout=timeout)
        self._lock = threading.Lock()
        self._stats = ExportStats()

    @property
    def stats(self) -> ExportStats:
        with self._lock:
            return ExportStats(**asdict(self._stats))

    def __call__(self, study: "optuna.Study", trial: FrozenTrial) -> None:
        try:
            s = stream_trial(self.job, study.study_name, trial, **self._kw)
        except (SurgeError, ValueError) as e:
            if self.raise_errors:
                raise
            with self._lock:
                self._stats.trials_failed += 1
                self.last_error = e
            log.warning("surge_client.optuna: study %r trial %d not streamed to job %r: %s",
                        study.study_name, trial.number, self.job, e)
            return
        with self._lock:
            self._stats.add(s)


def export_study(study: "optuna.Study", job: str, *, server: Optional[str] = None,
                 batch_param: str = "batch_size", lr_param: str = "lr",
                 intermediate: str = "eval_loss", seed_param: Optional[str] = None,
                 run_prefix: str = "trial-", unit: str = "examples", optimizer=None,
                 timeout: float = 30.0, workers: int = 4) -> ExportStats:
    """Streams every COMPLETE or PRUNED trial of `study` (see SurgeOptunaCallback for the
    arguments), `workers` trials at a time, and returns when all are acked (durable).
    Every trial is checked first, so a TrialParamError streams nothing. On a SurgeError
    the trials not started yet are not streamed (those in flight finish). Idempotent:
    exporting again stores 0 new records."""
    if intermediate not in INTERMEDIATE_KINDS:
        raise ValueError(f"intermediate: must be one of {INTERMEDIATE_KINDS}, "
                         f"got {intermediate!r}")
    trials = study.get_trials(deepcopy=False)
    plans = {}
    for t in trials:
        if t.state in STREAMED_STATES and t.intermediate_values:
            plans[t.number] = trial_run(study.study_name, t, batch_param=batch_param,
                                        lr_param=lr_param, seed_param=seed_param,
                                        run_prefix=run_prefix)
    def one(t):
        return stream_trial(job, study.study_name, t, server=server, intermediate=intermediate,
                            unit=unit, optimizer=optimizer, timeout=timeout,
                            plan=plans.get(t.number))

    total = ExportStats()
    if workers <= 1:
        for t in trials:
            total.add(one(t))
        return total
    # Trials in parallel: each Reporter's close() spends ~0.2 s waiting for gRPC's
    # channel-connectivity thread, so one at a time is slow for large studies.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="surge-optuna")
    try:
        for f in [pool.submit(one, t) for t in trials]:
            total.add(f.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return total


# ---------------------------------------------------------------------------- CLI
class _BadArguments(Exception):
    pass


def _study_names(storage) -> List[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def _open_storage(url: str):
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].split("?", 1)[0]
        if path and path != ":memory:" and not os.path.exists(path):
            # RDBStorage would create an empty database there.
            raise _BadArguments(f"--storage {url}: no such file {path!r}")
    try:
        return optuna.storages.get_storage(url)
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises many kinds
        raise _BadArguments(f"--storage {url}: cannot open: {e}") from None


def _load_study(storage, url: str, name: Optional[str]) -> "optuna.Study":
    names = _study_names(storage)
    listing = ", ".join(repr(n) for n in names) if names else "none"
    if name is None:
        if len(names) != 1:
            raise _BadArguments(f"--study is required: {url} holds {len(names)} studies "
                                f"({listing})")
        name = names[0]
    elif name not in names:
        raise _BadArguments(f"no study {name!r} in {url}; its studies: {listing}")
    return optuna.load_study(study_name=name, storage=storage)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m surge_client.optuna",
        description="Streams every COMPLETE or PRUNED trial of an Optuna study to surge as one "
                    "PLAIN run (trial-<number>): batch size and base LR from the trial's "
                    "params, one record per intermediate value. Idempotent. Exit 1 on a surge "
                    "error (CODE: message), 2 on bad arguments.")
    p.add_argument("--storage", required=True, help="Optuna storage URL, e.g. sqlite:///study.db")
    p.add_argument("--study", help="study name (may be omitted when the storage holds one)")
    p.add_argument("--job", required=True, help="surge job (created if missing)")
    p.add_argument("--batch-param", default="batch_size",
                   help="trial param holding the batch size (default: batch_size)")
    p.add_argument("--lr-param", default="lr",
                   help="trial param holding the learning rate (default: lr)")
    p.add_argument("--seed-param", help="trial param to store as the run's `seed` label")
    p.add_argument("--intermediate", choices=INTERMEDIATE_KINDS, default="eval_loss",
                   help="what the intermediate values are: eval_loss (default; stored as "
                        "loss and eval_loss) or loss (training loss)")
    p.add_argument("--run-prefix", default="trial-", help="run name prefix (default: trial-)")
    p.add_argument("--unit", choices=("examples", "tokens"), default="examples",
                   help="batch unit of the job when it is created (default: examples)")
    p.add_argument("--server", help="surge-server host:port (default: $SURGE_SERVER, then "
                                    "127.0.0.1:50051)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the server per trial (default: 30)")
    p.add_argument("--workers", type=int, default=4,
                   help="trials streamed in parallel (default: 4)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad usage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if args.workers < 1:
            raise _BadArguments(f"--workers: must be >= 1, got {args.workers}")
        if not _RUN_NAME.match(f"{args.run_prefix}0"):
            raise _BadArguments(f"--run-prefix {args.run_prefix!r}: run names are 1-128 "
                                f"characters of [A-Za-z0-9._-]")
        study = _load_study(_open_storage(args.storage), args.storage, args.study)
        stats = export_study(study, args.job, server=args.server,
                             batch_param=args.batch_param, lr_param=args.lr_param,
                             intermediate=args.intermediate, seed_param=args.seed_param,
                             run_prefix=args.run_prefix, unit=args.unit, timeout=args.timeout,
                             workers=args.workers)
    except (_BadArguments, TrialParamError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SurgeError as e:
        print(str(e), file=sys.stderr)
        if e.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            print(f"(is surge-server running at {resolve_server(args.server)}? set --server "
                  "or SURGE_SERVER)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dict(asdict(stats), records=stats.records, study=study.study_name,
                              job=args.job), sort_keys=True))
    else:
        print(f"study {study.study_name!r} -> job {args.job!r}: {stats.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
