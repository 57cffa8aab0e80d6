"""From a run's options to the scheduler: which load shape, how many requests, until when, and
which phase (warmup / measured / cooldown) a request belongs to. The runner calls in here with a
few lines; the shapes stay pure (shapes.py) and the loops generic (loops.py)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loadtest.config import RunConfig
from loadtest.scheduler.loops import run_closed_loop, run_open_loop
from loadtest.scheduler.replay import Schedule
from loadtest.scheduler.shapes import ClosedLoop, OpenLoop

WARMUP, MEASURED, COOLDOWN = "warmup", "measured", "cooldown"
OPEN_LOOP_CONNECTIONS = 64
"""Keep-alive connections opened ahead of an open-loop run without --max-concurrency (more are
opened as needed; their set-up is then reported as connect_s)."""

Job = Callable[[int, int | None, int], Awaitable[None]]


@dataclass(frozen=True)
class Phases:
    """Which phase a request is in. ``--warmup N`` counts requests (by index); ``--warmup 5s``
    and ``--cooldown S`` are times around a ``--duration`` window (by scheduled or start time,
    seconds after the run's first start): the run lasts warmup_s + duration_s + cooldown_s and
    load keeps flowing through the cooldown so the last measured requests finish under it."""

    warmup_count: int = 0
    warmup_s: float | None = None
    duration_s: float | None = None
    cooldown_s: float = 0.0

    @classmethod
    def of(cls, cfg: RunConfig) -> Phases:
        return cls(cfg.warmup, cfg.warmup_s, cfg.duration_s, cfg.cooldown_s)

    @property
    def timed(self) -> bool:
        return self.warmup_s is not None or self.cooldown_s > 0

    def phase(self, index: int, t_s: float) -> str:
        if not self.timed:
            return WARMUP if index < self.warmup_count else MEASURED
        w = self.warmup_s or 0.0
        if t_s < w:
            return WARMUP
        if self.duration_s is not None and t_s >= w + self.duration_s:
            return COOLDOWN
        return MEASURED

    def total_s(self) -> float | None:
        """How long the timed run lasts, all phases together."""
        if self.duration_s is None:
            return None
        return (self.warmup_s or 0.0) + self.duration_s + self.cooldown_s


def is_open(cfg: RunConfig) -> bool:
    """An open loop: a request rate, or a replayed trace's own start times."""
    return cfg.request_rate is not None or cfg.trace is not None


def open_loop_shape(cfg: RunConfig) -> OpenLoop | Schedule | None:
    if cfg.trace is not None:
        return Schedule.given(cfg.trace_schedule_s)
    if cfg.request_rate is None:
        return None
    return OpenLoop(cfg.request_rate, cfg.arrival, cfg.burstiness, cfg.seed, cfg.ramp_up_s)  # type: ignore[arg-type]


def connections(cfg: RunConfig) -> int:
    """Connections to open ahead of the run (and the transport's pool hint)."""
    if not is_open(cfg):
        return cfg.concurrency
    return cfg.max_concurrency or OPEN_LOOP_CONNECTIONS


PRECONNECT_MAX_S = 30.0


def preconnect_s(cfg: RunConfig, duration_s: float | None) -> float:
    """How long opening the connections ahead of the run may take: within the run's own budget
    (--timeout, and a --duration: a 2 s run never waits 30 s for a server whose backlog is full;
    its requests then meet the same server and say why)."""
    return min(cfg.timeout_s, PRECONNECT_MAX_S, duration_s if duration_s else math.inf)


def separate_warmup(cfg: RunConfig) -> bool:
    """A counted warm-up runs as its own closed-loop pass before the measured one; an open loop
    runs warm-up and measured requests as one schedule (the rate must not restart)."""
    return not is_open(cfg) and cfg.warmup_s is None


async def run_shape(cfg: RunConfig, job: Job, *, count: int | None, deadline_ns: int | None, stop: asyncio.Event,
                    first_index: int = 0, origin_ns: int, with_warmup: bool = False) -> str:
    """Run ``job(i, scheduled_ns, queue_ns)`` under the configured shape. ``with_warmup``: the
    counted warm-up requests are part of this pass (open loop): indices start at 0."""
    shape = open_loop_shape(cfg)
    if shape is None:
        # The ramp runs once, at the very start: in the counted warm-up pass when there is one.
        ramped = with_warmup and cfg.warmup > 0 and separate_warmup(cfg)
        closed = ClosedLoop(cfg.concurrency, 0.0 if ramped else cfg.ramp_up_s)
        return await run_closed_loop(closed, lambda i: job(i, None, 0), count=count, deadline_ns=deadline_ns,
                                     stop=stop, first_index=first_index)
    if with_warmup:
        count, first_index = (count + cfg.warmup if count is not None else None), 0
    return await run_open_loop(shape.iter_times(), job, origin_ns=origin_ns, count=count, deadline_ns=deadline_ns,
                               stop=stop, max_concurrency=cfg.max_concurrency, first_index=first_index)


def run_deadline_ns(cfg: RunConfig, origin_ns: int, duration_s: float | None) -> int | None:
    """The end of a --duration run: the window plus timed warm-up and cooldown."""
    if not duration_s:
        return None
    total = duration_s + (cfg.warmup_s or 0.0) + cfg.cooldown_s
    return origin_ns + int(total * 1e9)


def describe(cfg: RunConfig) -> dict[str, object]:
    """The load shape for summary.json's run block."""
    if cfg.trace is not None:
        return {"kind": "trace", "max_concurrency": cfg.max_concurrency, "replay_speed": cfg.replay_speed}
    if cfg.request_rate is None:
        return {"kind": "closed_loop", "concurrency": cfg.concurrency, "ramp_up_s": cfg.ramp_up_s}
    return {"kind": "open_loop", "request_rate": "inf" if math.isinf(cfg.request_rate) else cfg.request_rate,
            "arrival": cfg.arrival, "burstiness": cfg.burstiness if cfg.arrival == "gamma" else None,
            "max_concurrency": cfg.max_concurrency, "ramp_up_s": cfg.ramp_up_s, "seed": cfg.seed}
