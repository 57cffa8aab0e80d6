"""From a run's options to the scheduler: which load shape, how many requests, until when, and
which phase (warmup / measured / cooldown) a request belongs to. The runner calls in here with a
few lines; the shapes stay pure (shapes.py) and the loops generic (loops.py)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loadtest.config import RunConfig
from loadtest.scheduler.loops import Backlog, run_closed_loop, run_open_loop
from loadtest.scheduler.replay import Schedule
from loadtest.scheduler.shapes import ClosedLoop, OpenLoop

WARMUP, MEASURED, COOLDOWN = "warmup", "measured", "cooldown"
OPEN_LOOP_CONNECTIONS = 64
"""Keep-alive connections opened ahead of an open-loop run without --max-concurrency (more are
opened as needed; their set-up is then reported as connect_s)."""

Job = Callable[[int, int | None, int], Awaitable[None]]
BACKLOG_S = 1.0
BACKLOG_MAX = 10_000
"""An open loop's starts that find every --max-concurrency slot busy wait, at most
max(C, min(rate x BACKLOG_S, BACKLOG_MAX)) of them; a start due while that many wait is dropped
and counted (summary.json ``schedule``). Why: a start that waits for a slot longer than about a
second of its schedule is no longer at its scheduled time; past that the run is a closed loop of
C with a queue that grows as long as the run lasts (memory, and queue waits that say nothing about
the server). One second absorbs a Poisson burst at any rate; 10,000 waiting starts (~1 MB) bound
the memory at any rate. An infinite rate ("all at once, up to the cap", as vLLM bench) drops
nothing: its schedule is read only as slots free, so it is a closed loop of C by definition."""


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


def schedule_rate(cfg: RunConfig) -> float | None:
    """Starts per second the open loop asks (a trace: its rows over its span; inf when all at once)."""
    shape = open_loop_shape(cfg)
    if shape is None:
        return None
    if isinstance(shape, Schedule):
        n, span = len(shape.times), shape.duration_s
        return (n - 1) / span if n > 1 and span > 0 else math.inf
    return shape.rate


def backlog(cfg: RunConfig, *, share: int = 1, max_concurrency: int | None = None) -> Backlog:
    """The open loop's bounded backlog (see BACKLOG_S), for one process or one of ``share``
    scaled-out workers (each holds its own cap and its part of the rate)."""
    cap = max_concurrency or cfg.max_concurrency
    rate = schedule_rate(cfg)
    if not cap or rate is None:
        return Backlog(bound=None)
    if math.isinf(rate):
        return Backlog(bound=0, drop=False)
    return Backlog(bound=max(cap, min(math.ceil(rate / share * BACKLOG_S), BACKLOG_MAX)))


async def run_shape(cfg: RunConfig, job: Job, *, count: int | None, deadline_ns: int | None, stop: asyncio.Event,
                    first_index: int = 0, origin_ns: int, with_warmup: bool = False,
                    held: Backlog | None = None) -> str:
    """Run ``job(i, scheduled_ns, queue_ns)`` under the configured shape. ``with_warmup``: the
    counted warm-up requests are part of this pass (open loop): indices start at 0. ``held``: the
    open loop's backlog (phases.backlog), whose counts the caller reports."""
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
                               stop=stop, max_concurrency=cfg.max_concurrency, first_index=first_index,
                               backlog=held if held is not None else backlog(cfg))


def schedule_block(cfg: RunConfig, parts: list[Backlog]) -> dict[str, object] | None:
    """summary.json's ``schedule``: what became of an open loop's starts (None for a closed loop).
    ``parts``: one backlog, or each scaled-out worker's."""
    if not is_open(cfg) or not parts:
        return None
    due, dropped, unsent = (sum(getattr(b, k) for b in parts) for k in ("due", "dropped", "unsent"))
    bounds = [b.bound for b in parts if b.bound is not None]
    return {"max_concurrency": cfg.max_concurrency,
            "overflow": None if not cfg.max_concurrency else "drop" if parts[0].drop else "wait",
            "backlog_bound": sum(bounds) if bounds and parts[0].drop else None,
            "due": due, "sent": due - dropped - unsent, "waited": sum(b.waited for b in parts),
            "waiting_max": max(b.waiting_max for b in parts), "dropped": dropped, "unsent_at_end": unsent,
            "dropped_share": dropped / due if due else None}


def backlog_of(block: dict[str, object]) -> Backlog:
    """A scaled-out worker's ``schedule`` block back as its Backlog (the coordinator sums them)."""
    get = block.get
    return Backlog(bound=get("backlog_bound"), drop=get("overflow") != "wait", due=get("due") or 0,  # type: ignore[arg-type]
                   dropped=get("dropped") or 0, waited=get("waited") or 0, waiting_max=get("waiting_max") or 0,  # type: ignore[arg-type]
                   unsent=get("unsent_at_end") or 0)  # type: ignore[arg-type]


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
