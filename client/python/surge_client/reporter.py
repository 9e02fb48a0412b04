"""Reporter: streams one run's per-step telemetry to surge without blocking.

    with Reporter("my-job", "bs64", batch_size=64, server="host:50051") as rep:
        for step in ...:
            rep.log(step=step, loss=loss.item(), lr=lr)

log() only validates the values and appends a tuple to a buffer (microseconds,
no I/O, no protobuf). A background thread seals the buffer into batches (every
`batch_records` records or `linger` seconds after the first), numbers them with
increasing seq and writes them on the bidirectional Ingest stream. The server
acks a seq after the SQLite commit holding it (IngestResponse.acked_seq covers
every batch with seq <= it); only then is a batch dropped from memory. When the
stream breaks (server killed or restarted, network), the thread reconnects
(wait_for_ready, exponential backoff) and re-sends every unacked batch; the
server stores each (run, step) once, so re-sends never duplicate.

Buffer policy (server gone for long): at most `max_buffered` records are kept
(logged but not yet acked). When log() would exceed it, the OLDEST unacked batch
(or, with none sealed, the oldest record) is dropped and counted in
stats().dropped; a warning is logged once per overflow episode. log() therefore
never waits for the server. Dropped records may or may not reach the server:
a dropped batch that was already written (or handed to gRPC for a stream that
waits for the server) is not recalled.

Permanent errors (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...): the server acks every batch
before the bad one, the reporter stops, and every later log(), flush() and
close() raises SurgeError with the server's code and message. The bad batch and
anything after it are not stored.
"""
import atexit
import collections
import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import NamedTuple, Optional

import grpc

from ._proto import pb
from .client import FlushTimeout, SurgeClient, SurgeError

log = logging.getLogger("surge_client")

# Codes that re-sending cannot fix (same set as the C++ IngestSession).
PERMANENT_CODES = frozenset({
    "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNIMPLEMENTED", "UNAUTHENTICATED",
    "RESOURCE_EXHAUSTED", "DATA_LOSS"})


class GradStats(NamedTuple):
    """Squared gradient norms at two batch sizes in one step (surge.v1.GradStats)."""
    grad_sq_small: float  # |G_small|^2, mean over the small batches
    grad_sq_big: float    # |G_big|^2
    b_small: int
    b_big: int


@dataclass(frozen=True)
class ReporterStats:
    logged: int           # records accepted by log()
    acked: int            # durable on the server (acked + dropped + buffered == logged)
    stored: int           # acked and new on the server
    duplicate: int        # acked but already stored (re-sends after a reconnect)
    dropped: int          # removed by the buffer policy without an ack
    buffered: int         # logged, not yet acked nor dropped
    batches_sent: int     # including re-sends
    batches_resent: int
    reconnects: int       # streams that broke and were retried


class _Batch:
    __slots__ = ("seq", "records", "request")

    def __init__(self, seq, records):
        self.seq = seq
        self.records = records  # list of validated tuples
        self.request = None     # IngestRequest, built lazily outside the lock


def _finite(value, name):
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return v


def _grad_stats(g):
    if g is None:
        return None
    if isinstance(g, dict):
        g = (g["grad_sq_small"], g["grad_sq_big"], g["b_small"], g["b_big"])
    small, big, bs, bb = g
    small, big = _finite(small, "grad_stats.grad_sq_small"), _finite(big, "grad_stats.grad_sq_big")
    bs, bb = int(bs), int(bb)
    if small < 0 or big < 0:
        raise ValueError(f"grad_stats: norms must be >= 0, got {small!r}, {big!r}")
    if bs < 1 or bb <= bs:
        raise ValueError(f"grad_stats: need 1 <= b_small < b_big, got {bs}, {bb}")
    return (small, big, bs, bb)


_open_reporters = weakref.WeakSet()


@atexit.register
def _close_open_reporters():
    for r in list(_open_reporters):
        try:
            r.close(timeout=r.close_timeout)
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log.warning("surge_client: closing reporter %s/%s at exit: %s", r.job, r.run, e)


class Reporter:
    """Declares `job` (created if missing, with `unit`) and run `run` (CreateRun
    is idempotent for the same batch size and protocol), then streams records.

    Construction makes two unary calls (waiting up to `connect_timeout` for the
    server); everything after is asynchronous. Use as a context manager, or
    call close(), to flush what is buffered.
    """

    def __init__(self, job: str, run: str, batch_size: int, *, server: Optional[str] = None,
                 unit: str = "examples", description: str = "", protocol: str = "plain",
                 base_lr: float = 0.0, optimizer=None, labels: Optional[dict] = None,
                 max_buffered: int = 100_000, batch_records: int = 1000,
                 linger: float = 0.5, connect_timeout: float = 30.0,
                 close_timeout: float = 30.0, stream_deadline: float = 1800.0,
                 initial_backoff: float = 0.05, max_backoff: float = 2.0,
                 validate: bool = True):
        if max_buffered < 1 or not 1 <= batch_records <= 100_000:
            raise ValueError("need max_buffered >= 1 and 1 <= batch_records <= 100000")
        self.job, self.run, self.batch_size = job, run, int(batch_size)
        self.close_timeout = close_timeout
        self._max_buffered = int(max_buffered)
        self._batch_records = int(batch_records)
        self._linger = float(linger)
        self._stream_deadline = float(stream_deadline)
        self._initial_backoff, self._max_backoff = initial_backoff, max_backoff
        self._validate = validate

        self.client = SurgeClient(server, timeout=connect_timeout)
        try:
            self.client.ensure_job(job, unit, description)
            self.run_info = self.client.create_run(
                job, run, self.batch_size, protocol=protocol, base_lr=base_lr,
                optimizer=optimizer, labels=labels)
        except BaseException:
            self.client.close()
            raise

        self._cv = threading.Condition(threading.Lock())
        self._pending = collections.deque()   # validated tuples, not yet in a batch
        self._pending_since = 0.0
        self._unacked = collections.deque()   # sealed _Batch, in seq order
        self._sent_on_stream = 0              # prefix of _unacked written on this stream
        self._next_seq = 1
        self._max_seq_sent = 0
        self._buffered = 0
        self._flush_requested = False
        self._stream_gen = 0                  # bumped when a stream ends
        self._call = None
        self._stopping = False                # close(): finish cleanly
        self._stop_now = False                # close() gave up: cancel
        self._stopped = False
        self._closed = False
        self._error: Optional[SurgeError] = None
        self._overflowing = False
        self._s = dict(logged=0, acked=0, stored=0, duplicate=0, dropped=0, batches_sent=0,
                       batches_resent=0, reconnects=0)
        self._thread = threading.Thread(target=self._run, name=f"surge-reporter-{run}",
                                        daemon=True)
        self._thread.start()
        _open_reporters.add(self)

    # ------------------------------------------------------------------ API
    def log(self, step: int, loss: float, lr: float, batch_size: Optional[int] = None,
            examples_seen: Optional[int] = None, eval_loss: Optional[float] = None,
            grad_stats=None) -> None:
        """Queues one step's record and returns at once (never waits for the
        server). `examples_seen` defaults to (step + 1) * batch_size; `batch_size`,
        when given, must be the run's (a run has one batch size). `grad_stats`:
        a GradStats, a (grad_sq_small, grad_sq_big, b_small, b_big) tuple, a dict,
        or None. ValueError for an invalid value (nothing queued); SurgeError
        once the reporter has stopped on a permanent error."""
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._closed:
            raise SurgeError("FAILED_PRECONDITION", "reporter is closed")
        step = int(step)
        if batch_size is not None and int(batch_size) != self.batch_size:
            raise ValueError(f"batch_size: run {self.run!r} has batch size {self.batch_size}, "
                             f"got {batch_size}; report another batch size as another run")
        examples = (step + 1) * self.batch_size if examples_seen is None else int(examples_seen)
        if self._validate:
            if step < 0:
                raise ValueError(f"step: must be >= 0, got {step}")
            if examples < 0:
                raise ValueError(f"examples_seen: must be >= 0, got {examples}")
            lr = _finite(lr, "lr")
            if lr < 0:
                raise ValueError(f"lr: must be >= 0, got {lr!r}")
            loss = _finite(loss, "loss")
            if eval_loss is not None:
                eval_loss = _finite(eval_loss, "eval_loss")
            grad_stats = _grad_stats(grad_stats)
        else:
            lr, loss = float(lr), float(loss)
            eval_loss = None if eval_loss is None else float(eval_loss)
            if grad_stats is not None:
                g = grad_stats
                grad_stats = (float(g[0]), float(g[1]), int(g[2]), int(g[3]))
        rec = (step, examples, lr, loss, eval_loss, grad_stats)
        with self._cv:
            pending = self._pending
            pending.append(rec)
            self._buffered += 1
            self._s["logged"] += 1
            if self._buffered > self._max_buffered:
                self._drop_oldest_locked()
            n = len(pending)
            if n == 1:
                self._pending_since = time.monotonic()
                self._cv.notify_all()  # the sender starts the linger timer
            elif n >= self._batch_records:
                self._cv.notify_all()

    def flush(self, timeout: Optional[float] = 30.0) -> None:
        """Waits until every logged record is acked (durable) or dropped.
        FlushTimeout (a SurgeError, DEADLINE_EXCEEDED) when time runs out."""
        with self._cv:
            self._flush_requested = True
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._error is not None or self._buffered == 0
                              or self._stopped, timeout)
            if self._error is not None:
                raise self._error.with_traceback(None)
            if self._buffered > 0:
                raise FlushTimeout(self._buffered, timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """flush(timeout), then stops the background thread and the channel.
        Idempotent; raises what flush raised (the first time)."""
        if self._closed:
            return
        self._closed = True
        _open_reporters.discard(self)
        timeout = self.close_timeout if timeout is None else timeout
        err = None
        try:
            self.flush(timeout)
        except SurgeError as e:
            err = e
        with self._cv:
            self._stopping = True
            if self._buffered > 0 or self._error is not None:
                self._stop_now = True
                if self._call is not None:
                    self._call.cancel()
            self._cv.notify_all()
        self._thread.join(10.0)
        self.client.close()
        if err is not None:
            raise err

    def stats(self) -> ReporterStats:
        with self._cv:
            return ReporterStats(buffered=self._buffered, **self._s)

    @property
    def error(self) -> Optional[SurgeError]:
        """The permanent error that stopped the reporter, if any."""
        return self._error

    def advise(self, batch_size: Optional[float] = None, step: Optional[int] = None):
        """SurgeClient.advise for this job (default: this run's batch size), on the
        reporter's channel: call it before close()."""
        if self._closed:
            raise SurgeError("FAILED_PRECONDITION", "reporter is closed; use surge_client.advise()")
        return self.client.advise(self.job, self.batch_size if batch_size is None else batch_size,
                                  step)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:  # do not hide the exception that ends the with-block
            self.close()
        except SurgeError as e:
            log.warning("surge_client: closing reporter %s/%s: %s", self.job, self.run, e)

    # ------------------------------------------------------------- internals
    def _drop_oldest_locked(self):
        if self._unacked:
            b = self._unacked.popleft()
            if self._sent_on_stream > 0:
                self._sent_on_stream -= 1
            n = len(b.records)
        else:
            self._pending.popleft()
            n = 1
        self._buffered -= n
        self._s["dropped"] += n
        if not self._overflowing:
            self._overflowing = True
            log.warning("surge_client: %s/%s: buffer full (%d records unacked); dropping the "
                        "oldest (is the server reachable?)", self.job, self.run,
                        self._max_buffered)

    def _seal_locked(self):
        self._flush_requested = False
        if not self._pending:
            return
        records = list(self._pending)
        self._pending.clear()
        self._unacked.append(_Batch(self._next_seq, records))
        self._next_seq += 1

    def _build(self, batch):
        req = pb.IngestRequest(job=self.job, seq=batch.seq)
        add = req.records.add
        run = self.run
        for step, examples, lr, loss, eval_loss, g in batch.records:
            r = add(run=run, step=step, examples=examples, lr=lr, loss=loss)
            if eval_loss is not None:
                r.eval_loss = eval_loss
            if g is not None:
                gs = r.grad_stats
                gs.grad_sq_small, gs.grad_sq_big, gs.b_small, gs.b_big = g
        return req

    def _requests(self, gen):
        """The request iterator of stream `gen` (run by gRPC's sender thread)."""
        cv = self._cv
        while True:
            with cv:
                while True:
                    if self._stream_gen != gen or self._stop_now:
                        return
                    now = time.monotonic()
                    if self._pending and (
                            self._flush_requested or self._stopping
                            or len(self._pending) >= self._batch_records
                            or now - self._pending_since >= self._linger):
                        self._seal_locked()
                    if self._sent_on_stream < len(self._unacked):
                        break
                    if self._stopping and not self._unacked and not self._pending:
                        return  # clean end: half-close, the server finishes OK
                    if self._pending:
                        cv.wait(max(0.0, self._linger - (now - self._pending_since)))
                    else:
                        cv.wait()
                batch = self._unacked[self._sent_on_stream]
                self._sent_on_stream += 1
                self._s["batches_sent"] += 1
                if batch.seq <= self._max_seq_sent:
                    self._s["batches_resent"] += 1
                else:
                    self._max_seq_sent = batch.seq
            if batch.request is None:
                batch.request = self._build(batch)
            yield batch.request

    def _run_stream(self):
        """One Ingest stream: (None after a clean end, else the RpcError; whether an
        ack arrived)."""
        with self._cv:
            if self._stop_now:
                return None, False
            gen = self._stream_gen
            self._sent_on_stream = 0  # everything unacked is (re-)sent on this stream
        # wait_for_ready: the stream waits for the (re)connected channel instead of
        # failing fast; close() cancels it through self._call.
        call = self.client.stub.Ingest(self._requests(gen), timeout=self._stream_deadline,
                                       wait_for_ready=True)
        with self._cv:
            self._call = call
            if self._stop_now:
                call.cancel()
        last_stored = last_dup = 0
        acked_any = False
        try:
            for ack in call:
                with self._cv:
                    q = self._unacked
                    while q and q[0].seq <= ack.acked_seq:
                        n = len(q.popleft().records)
                        self._s["acked"] += n
                        self._buffered -= n
                        if self._sent_on_stream > 0:
                            self._sent_on_stream -= 1
                    self._s["stored"] += ack.records_stored - last_stored
                    self._s["duplicate"] += ack.records_duplicate - last_dup
                    last_stored, last_dup = ack.records_stored, ack.records_duplicate
                    acked_any = True
                    if self._buffered < self._max_buffered // 2:
                        self._overflowing = False
                    self._cv.notify_all()
            return None, acked_any
        except grpc.RpcError as e:
            return e, acked_any
        finally:
            with self._cv:
                self._stream_gen += 1
                self._call = None
                self._cv.notify_all()

    def _wait_for_channel(self):
        """Waits until the channel is connected (False if close() gave up first).
        Batches are handed to gRPC only on a connected channel: a stream that
        waits for the server would take (and later send) batches that the buffer
        policy may have dropped meanwhile."""
        ready = grpc.channel_ready_future(self.client.channel)
        try:
            while True:
                try:
                    ready.result(timeout=0.25)
                    return True
                except grpc.FutureTimeoutError:
                    with self._cv:
                        if self._stop_now:
                            return False
        finally:
            ready.cancel()

    def _run(self):
        backoff = self._initial_backoff
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._stopping or self._unacked or self._pending)
                    if self._stop_now or (self._stopping and not self._unacked
                                          and not self._pending):
                        break
                if not self._wait_for_channel():
                    break
                err, acked_any = self._run_stream()
                with self._cv:
                    if self._stop_now:
                        break
                    if acked_any:
                        backoff = self._initial_backoff
                    if err is None:
                        backoff = self._initial_backoff
                        continue
                    e = SurgeError.from_rpc_error(err)
                    if e.code in PERMANENT_CODES:
                        # Everything before the bad batch was acked: it is the front.
                        self._error = e
                        log.error("surge_client: %s/%s: reporter stopped: %s", self.job,
                                  self.run, e)
                        break
                    self._s["reconnects"] += 1
                    self._cv.wait_for(lambda: self._stop_now, backoff)
                    if self._stop_now:
                        break
                    backoff = min(backoff * 2, self._max_backoff)
        finally:
            with self._cv:
                self._stopped = True
                self._cv.notify_all()
