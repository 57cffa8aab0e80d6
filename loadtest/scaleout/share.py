"""One worker's share of a scaled-out run (--workers): which request indices it sends, with how
much concurrency, and, in an open loop, at which of the shared schedule's start times.

Pure dealing, no processes: the coordinator (coordinator.py) computes every share once, before any
worker starts, so the union of the shares is exactly the single-process run's requests (same
indices, so the same prompts in the same seeded order) and no index is sent twice."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from loadtest.config import RunConfig
from loadtest.scheduler import phases as shaping
from loadtest.scheduler.loops import Backlog, run_closed_loop, run_open_loop
from loadtest.scheduler.shapes import ClosedLoop

MAX_DEALT_STARTS = 10_000_000
"""The most open-loop starts dealt to workers up front (two floats and an int each: ~1 GB at this
many across the shares and their copies); more is refused, not built until memory runs out."""
FAR_S = 1e9
"""A start time beyond any run's end (about 31 years)."""


def split(total: int, workers: int) -> list[int]:
    """``total`` divided among ``workers``, the remainder spread one each over the first ones."""
    base, extra = divmod(total, workers)
    return [base + (w < extra) for w in range(workers)]


def open_schedule(cfg: RunConfig) -> list[float]:
    """The whole open-loop schedule, computed once: warm-up + measured requests of a counted run,
    or every start due before the end of a timed one (warm-up + duration + cooldown)."""
    shape = shaping.open_loop_shape(cfg)
    assert shape is not None
    end_s = shaping.Phases.of(cfg).total_s() or 0.0
    if cfg.duration_s is None:
        return [float(t) for t in shape.times((cfg.num_prompts or 0) + cfg.warmup)]
    if math.isinf(shape.rate):
        raise ValueError("--request-rate inf with --duration has no finite schedule to deal to workers")
    out: list[float] = []
    for t in shape.iter_times():
        if t >= end_s:
            break
        out.append(float(t))
    return out


@dataclass
class Share:
    """Worker ``worker`` of ``workers``. Closed loop: global indices ``worker, worker + workers,
    ...`` (of each pass) with ``concurrency`` in flight. Open loop: the dealt ``indices`` and their
    ``offsets`` in the shared schedule, with ``max_concurrency`` (a share of the run's cap)."""

    worker: int
    workers: int
    concurrency: int
    indices: list[int] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    max_concurrency: int | None = None

    def first(self, first_index: int) -> int:
        """This worker's first global index of a pass starting at ``first_index``."""
        return first_index + (self.worker - first_index) % self.workers

    def closed_indices(self, first_index: int, count: int) -> range:
        """A range, never a list: --num-prompts 10^12 is counted, not held in memory."""
        return range(self.first(first_index), first_index + count, self.workers)

    async def run_shape(self, cfg: RunConfig, job: shaping.Job, *, count: int | None, deadline_ns: int | None,
                        stop: asyncio.Event, first_index: int = 0, origin_ns: int, with_warmup: bool = False,
                        held: Backlog | None = None) -> str:
        """shaping.run_shape, on this share only (the runner calls this instead when scaled out)."""
        if cfg.request_rate is None:
            start, step = self.first(first_index), self.workers
            n = len(self.closed_indices(first_index, count)) if count is not None else None  # None: until the deadline
            if n == 0:
                return "done"
            ramped = with_warmup and cfg.warmup > 0 and shaping.separate_warmup(cfg)
            closed = ClosedLoop(self.concurrency, 0.0 if ramped else cfg.ramp_up_s)
            return await run_closed_loop(closed, lambda k: job(start + k * step, None, 0), count=n, deadline_ns=deadline_ns,
                                         stop=stop, first_index=0)
        offsets, indices = self.offsets, self.indices
        if deadline_ns is not None:  # a start past the end: the scheduler then waits for the deadline, as unshared
            offsets, indices = [*offsets, FAR_S], [*indices, -1]
        if not offsets:
            return "done"
        rule = shaping.backlog(cfg, share=self.workers, max_concurrency=self.max_concurrency)
        held = held if held is not None else Backlog()
        held.bound, held.drop = rule.bound, rule.drop  # this worker's cap and its part of the rate
        return await run_open_loop(iter(offsets), job, origin_ns=origin_ns, count=len(offsets),
                                   deadline_ns=deadline_ns, stop=stop, max_concurrency=self.max_concurrency,
                                   indices=indices, backlog=held)


def check(cfg: RunConfig, workers: int) -> None:
    """What ``deal`` refuses, found from the options alone (before a run directory is made), without
    building the schedule: ValueError with the one line to say."""
    if cfg.request_rate is None:
        if cfg.concurrency < workers:
            raise ValueError(f"--concurrency {cfg.concurrency} is fewer than --workers {workers}: "
                             "each worker needs at least one request in flight")
        return
    if cfg.max_concurrency and cfg.max_concurrency < workers:
        raise ValueError(f"--max-concurrency {cfg.max_concurrency} is fewer than --workers {workers}")
    shape = shaping.open_loop_shape(cfg)
    end_s = shaping.Phases.of(cfg).total_s() or 0.0
    rate = shape.rate if shape is not None else 0.0
    starts = ((cfg.num_prompts or 0) + cfg.warmup if cfg.duration_s is None
              else rate * end_s if math.isfinite(rate) else 0)
    if starts > MAX_DEALT_STARTS:
        raise ValueError(f"--workers deals an open loop's whole schedule before the run: {starts:,.0f} starts "
                         f"is more than {MAX_DEALT_STARTS:,} (use fewer --num-prompts, a shorter --duration, "
                         "or no --workers)")


def deal(cfg: RunConfig, workers: int) -> list[Share]:
    """Every worker's share of the run: closed-loop concurrency divided (remainders spread);
    an open loop's one schedule dealt round-robin, start by start; --max-concurrency divided."""
    check(cfg, workers)
    if cfg.request_rate is None:
        return [Share(w, workers, c) for w, c in enumerate(split(cfg.concurrency, workers))]
    times = open_schedule(cfg)
    caps: list[int | None] = [None] * workers
    if cfg.max_concurrency:
        caps = list(split(cfg.max_concurrency, workers))
    return [Share(w, workers, 1, indices=list(range(w, len(times), workers)), offsets=times[w::workers],
                  max_concurrency=caps[w]) for w in range(workers)]
