"""PyTorch helpers: two-batch gradient statistics and applying advice.

TwoBatchGradStats measures, in the step being trained anyway, the squared
gradient norm at two batch sizes (the input of the gradient-noise-scale
estimator, McCandlish et al. 2018, App. A):

* gradient accumulation: M micro-batches of b each. A hook on every parameter
  sees each micro-batch's gradient as backward produces it (before it is added
  to .grad), and adds its squared norm. After the last micro-step:
      |G_small|^2 = mean over micro-batches of |g_i|^2        (b_small = b)
      |G_big|^2   = |accumulated gradient|^2                  (b_big = M * b)
  Cost: one norm per parameter tensor per micro-step and one over the
  accumulated gradient (reads of the gradients, no copies), one host sync per
  measured step (in compute()). With every=N only every Nth step is measured
  (the hooks return at once on the others).
* DDP (torch.nn.parallel.DistributedDataParallel), with or without
  accumulation: the hooks fire before DDP's all-reduce, so they see the
  rank-local gradient; after backward .grad holds the average over ranks:
      |G_small|^2 = local |g|^2, averaged over ranks with one all_reduce of a
                    single number (average_small=True; False: this rank's alone)
      |G_big|^2   = |all-reduced gradient|^2          (b_big = W * M * b)
  With no_sync() for micro-steps the two combine (b_small = micro-batch).

The loss of each micro-step is assumed to be its mean loss times `loss_scale`
(default 1/M, the usual `loss / accumulation_steps`); pass loss_scale=1.0 if
you do not divide, and include a GradScaler's scale if you use one.
"""
import concurrent.futures
import math
from typing import Callable, Iterable, Optional, Tuple

import torch

from .client import SurgeClient, SurgeError
from .reporter import GradStats


def _norms(tensors):
    if hasattr(torch, "_foreach_norm"):  # one call for all tensors where available
        return list(torch._foreach_norm(tensors))
    return [torch.linalg.vector_norm(t) for t in tensors]


def _sum_sq(norms):
    """Sum of squares of 0-d norm tensors, in float64."""
    return torch.stack(norms).double().square().sum()


class TwoBatchGradStats:
    """Usage (M micro-steps of `micro_batch_size` per optimizer step):

        stats = TwoBatchGradStats(model.parameters(), micro_batch_size=32)
        for step in ...:
            opt.zero_grad()
            for x, y in micro_batches:              # M of them
                (loss_fn(model(x), y) / M).backward()
            g = stats.compute()                      # GradStats; None if M*W == 1 or
                                                     # the step is not measured (every=N)
            opt.step()
            reporter.log(step=step, ..., grad_stats=g)
    """

    def __init__(self, params: Iterable[torch.Tensor], micro_batch_size: int, *,
                 loss_scale: Optional[float] = None, world_size: Optional[int] = None,
                 process_group=None, average_small: bool = True, every: int = 1):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("TwoBatchGradStats: no parameters that require grad")
        self.micro_batch_size = int(micro_batch_size)
        self.loss_scale = loss_scale
        self.process_group = process_group
        self.average_small = average_small
        if world_size is None:
            dist = torch.distributed
            world_size = (dist.get_world_size(process_group)
                          if dist.is_available() and dist.is_initialized() else 1)
        self.world_size = int(world_size)
        if every < 1:
            raise ValueError(f"every: must be >= 1, got {every}")
        self.every = int(every)
        self._step = 0
        self._armed = [True]                # measure the current step?
        self._norms = []                    # 0-d tensors: norms of hooked grads
        self._fired = [0] * len(self.params)
        self._handles = [p.register_hook(self._hook(i)) for i, p in enumerate(self.params)]

    def _hook(self, i):
        norms, fired, armed = self._norms, self._fired, self._armed

        def hook(g):
            fired[i] += 1
            if armed[0]:
                norms.append(torch.linalg.vector_norm(g.detach()))
            return None
        return hook

    @property
    def micro_steps(self) -> int:
        """Backward passes seen since the last compute()/reset()."""
        return max(self._fired)

    def reset(self):
        self._norms.clear()
        for i in range(len(self._fired)):
            self._fired[i] = 0

    def compute(self, accumulation_steps: Optional[int] = None) -> Optional[GradStats]:
        """Call after the last backward of an optimizer step (before zero_grad).
        Returns the step's GradStats (None when there is only one batch size:
        one micro-step and one rank) and resets for the next step."""
        m = int(accumulation_steps or self.micro_steps)
        measured = self._armed[0]
        self._step += 1
        self._armed[0] = self._step % self.every == 0
        if m < 1 or not measured or not self._norms:
            self.reset()
            return None
        c = self.loss_scale if self.loss_scale is not None else 1.0 / m
        small = _sum_sq(self._norms) / (c * c * m)
        grads = [p.grad.detach() for p in self.params if p.grad is not None]
        big = _sum_sq(_norms(grads)) / (c * m) ** 2
        self.reset()
        w = self.world_size
        if w > 1 and self.average_small:
            dist = torch.distributed
            t = small.to(grads[0].device, torch.float64 if grads[0].device.type == "cpu"
                         else torch.float32)
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.process_group)
            small = t.double() / w
        b_small, b_big = self.micro_batch_size, self.micro_batch_size * m * w
        if b_big <= b_small:
            return None
        return GradStats(float(small), float(big), b_small, b_big)

    def remove(self):
        """Removes the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []


def noise_scale_estimates(g: GradStats):
    """Unbiased one-step estimates (|G|^2, tr(Sigma), B_simple = tr(Sigma)/|G|^2)
    from a GradStats; very noisy alone: the server smooths them (EMAs)."""
    bs, bb = g.b_small, g.b_big
    g2 = (bb * g.grad_sq_big - bs * g.grad_sq_small) / (bb - bs)
    tr = (g.grad_sq_small - g.grad_sq_big) / (1.0 / bs - 1.0 / bb)
    return g2, tr, (tr / g2 if g2 > 0 else math.nan)


class _Pending(tuple):
    """(generation, future) of an advice request in flight."""

    def __new__(cls, generation, future):
        return super().__new__(cls, (generation, future))

    def done(self):
        return self[1].done()


class AdviceScheduler:
    """Applies surge's advice to an optimizer: every `every` steps it asks, in a
    background thread, for the optimal LR at (batch_size, step); at the first
    step() after the answer arrives it sets each param group's lr to
    advice.lr times the group's initial ratio to group 0 (clamped to
    [min_lr, max_lr]). step() never waits on the server. Errors (e.g.
    FAILED_PRECONDITION while the job has no fit yet) leave the LR unchanged and
    are kept in `last_error`. `accept(advice) -> bool` may veto an advice (e.g.
    lambda a: not a.flags).

    `criterion` selects the optimum ("improvement" or "fastest"). With
    `reference=(B0, lr0)` (an LR the user tuned at batch B0) every advice
    applies the transfer, lr0 scaled by the job's fitted eps_opt(B)/eps_opt(B0),
    instead of the job's absolute level. `set_batch_size(B1, step)` is for a
    job that changes its batch size mid-run: it asks (waiting, once) for the LR
    now in use at the old batch size transferred to B1 and applies it at the
    switch; later advice is for B1."""

    def __init__(self, optimizer, job: str, batch_size: float, *, every: int = 100,
                 client: Optional[SurgeClient] = None, server: Optional[str] = None,
                 use_step: bool = True, min_lr: float = 0.0, max_lr: float = math.inf,
                 accept: Optional[Callable] = None, criterion: str = "improvement",
                 reference: Optional[Tuple[float, float]] = None):
        self.optimizer, self.job, self.batch_size = optimizer, job, batch_size
        self.criterion, self.reference = criterion, reference
        self.every, self.use_step = int(every), use_step
        self.min_lr, self.max_lr, self.accept = min_lr, max_lr, accept
        self._own_client = client is None
        self.client = client if client is not None else SurgeClient(server)
        base = optimizer.param_groups[0]["lr"]
        self._ratios = [(g["lr"] / base) if base else 1.0 for g in optimizer.param_groups]
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="surge-advice")
        self._future = None
        self._generation = 0  # bumped by set_batch_size: older answers are dropped
        self.last_advice = None
        self.last_error: Optional[SurgeError] = None
        self.applied = 0

    def step(self, step: int):
        """Call once per optimizer step. Returns the advice applied now, or None."""
        applied = None
        f = self._future
        if f is not None and f.done():
            self._future = None
            generation, future = f
            try:
                advice = future.result()
                self.last_error = None
                if generation == self._generation:
                    applied = self._apply(advice)
            except SurgeError as e:
                self.last_error = e
        if self._future is None and step % self.every == 0:
            self._future = _Pending(self._generation, self._pool.submit(
                self._ask, self.batch_size, int(step) if self.use_step else None,
                self.reference))
        return applied

    def set_batch_size(self, batch_size: float, step: Optional[int] = None,
                       timeout: float = 10.0):
        """Switch to `batch_size` now: the LR in use at the old batch size is
        transferred to the new one by the job's fitted curve and applied (the
        returned Advice; its `transfer` holds the LR and the linear and
        square-root rules for comparison). On an error the LR is left as it
        is, the error is kept in `last_error` and None is returned; later
        advice is for the new batch size either way."""
        old_b = self.batch_size
        current = self.optimizer.param_groups[0]["lr"] / (self._ratios[0] or 1.0)
        reference = self.reference or (old_b, current)
        self.batch_size = batch_size
        self._generation += 1  # an answer in flight for the old batch size is dropped
        try:
            advice = self.client.advise(self.job, batch_size,
                                        int(step) if (self.use_step and step is not None) else None,
                                        timeout=timeout, criterion=self.criterion,
                                        reference=reference)
        except SurgeError as e:
            self.last_error = e
            return None
        self.last_error = None
        return self._apply(advice)

    def _ask(self, batch_size, step, reference):
        return self.client.advise(self.job, batch_size, step, criterion=self.criterion,
                                  reference=reference)

    def _apply(self, advice):
        if self.accept is not None and not self.accept(advice):
            return None
        lr = advice.transfer.lr if advice.transfer is not None else advice.lr
        lr = min(max(lr, self.min_lr), self.max_lr)
        for g, r in zip(self.optimizer.param_groups, self._ratios):
            g["lr"] = lr * r
        self.last_advice = advice
        self.applied += 1
        return advice

    def close(self):
        self._pool.shutdown(wait=True)
        if self._own_client:
            self.client.close()
