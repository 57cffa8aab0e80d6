"""Load shapes. A closed loop says how many requests may be in flight; an open loop says *when*
each request starts, as absolute offsets from the run's origin (GuideLLM's style). Both are pure:
no clock, no I/O, no HTTP. The scheduler executes what a shape computes, so a coordinator can
compute one open-loop schedule once and deal its start times out to several clients."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from loadtest.scheduler import ARRIVALS

Arrival = Literal["poisson", "constant", "gamma"]
_BLOCK = 4096  # gaps drawn per RNG call; times(n) and iter_times() draw the same sequence


@dataclass(frozen=True)
class ClosedLoop:
    """Exactly ``concurrency`` requests in flight: each finished request is replaced at once.
    ``single`` is ClosedLoop(1): requests strictly one after another. With ``ramp_up_s`` the
    in-flight target rises linearly from 1 to ``concurrency`` over that many seconds."""

    concurrency: int
    ramp_up_s: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not (math.isfinite(self.ramp_up_s) and self.ramp_up_s >= 0):
            raise ValueError("ramp_up_s must be a finite number >= 0")

    def worker_delay_s(self, worker: int) -> float:
        """When worker ``worker`` (0-based) joins: evenly over the ramp, the first at once."""
        if self.ramp_up_s <= 0 or self.concurrency == 1:
            return 0.0
        return self.ramp_up_s * worker / self.concurrency


@dataclass(frozen=True)
class OpenLoop:
    """Requests start at a target rate, whatever the server's state (vLLM bench, GuideLLM).

    ``rate``: requests/s (``math.inf``: every request at time 0). ``arrival``: ``poisson``
    (exponential gaps, CV 1), ``constant`` (equal gaps, CV 0) or ``gamma`` with shape
    ``burstiness`` and the mean gap kept at 1/rate (vLLM's definition: CV = 1/sqrt(burstiness);
    burstiness 1 is Poisson, < 1 burstier, > 1 more regular). ``ramp_up_s``: the rate rises
    linearly from 0 to ``rate`` over that many seconds (the arrival process runs in the warped
    time of the cumulative rate, so the shape of the gaps is kept). ``seed`` fixes everything."""

    rate: float
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    seed: int = 0
    ramp_up_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate > 0 or math.isnan(self.rate):
            raise ValueError("rate must be > 0 (inf: all at once)")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}")
        if not (math.isfinite(self.burstiness) and self.burstiness > 0):
            raise ValueError("burstiness must be a finite number > 0")
        if not (math.isfinite(self.ramp_up_s) and self.ramp_up_s >= 0):
            raise ValueError("ramp_up_s must be a finite number >= 0")

    def _gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mean = 1.0 / self.rate
        if self.arrival == "constant":
            return np.full(n, mean)
        if self.arrival == "poisson":
            return rng.exponential(mean, n)
        return rng.gamma(self.burstiness, mean / self.burstiness, n)

    def _warp(self, u: np.ndarray) -> np.ndarray:
        """Times of a constant-rate process -> times under the linear ramp. With a ramp over S the
        cumulative rate is R t^2 / 2S before S, R (t - S/2) after; u is that divided by R."""
        s = self.ramp_up_s
        if s <= 0:
            return u
        return np.where(u < s / 2, np.sqrt(2 * s * np.maximum(u, 0.0)), u + s / 2)

    def iter_times(self) -> Iterator[float]:
        """Start offsets (seconds from the origin), non-decreasing, without end. The first request
        starts at 0 (after a ramp, where the rate allows); the gaps follow."""
        if math.isinf(self.rate):
            while True:
                yield 0.0
        rng = np.random.default_rng(self.seed)
        u = 0.0
        first = True
        while True:
            gaps = self._gaps(rng, _BLOCK)
            if first:  # the first request goes at the origin, the first gap follows it
                gaps = np.concatenate(([0.0], gaps[:-1]))
                first = False
            cum = u + np.cumsum(gaps)
            u = float(cum[-1])
            yield from self._warp(cum).tolist()

    def times(self, count: int) -> np.ndarray:
        """The first ``count`` start offsets, in seconds: the whole schedule of a counted run."""
        it = self.iter_times()
        return np.fromiter((next(it) for _ in range(count)), dtype=float, count=count)

    def expected_count(self, duration_s: float) -> float:
        """Requests the shape starts in ``duration_s`` seconds (for progress and checks)."""
        if math.isinf(self.rate):
            return math.inf
        s = self.ramp_up_s
        if duration_s <= s:
            return self.rate * duration_s ** 2 / (2 * s)
        return self.rate * (duration_s - s / 2)
