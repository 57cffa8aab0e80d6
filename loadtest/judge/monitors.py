"""What else happened while a run measured: the event loop's own delay (a stalled loop stamps
arrivals late) and the host's CPU by owner (this client, the server under test when it runs on
this host, everyone else). verdict.py turns these into "client-bound" and "disturbed".

Why: one `pip install` beside a llama.cpp demo made it 24x slower (117 -> 4.9 tokens/s; its
threads spin on barriers). Nothing in the latencies says so; the host's CPU does.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np

LOOP_TICK_S = 0.02
HOST_INTERVAL_S = 0.25


def summarise(samples: list[list[float]], *, server_pid: int | None, interval_s: float) -> dict[str, Any]:
    """Intervals of (seconds, host busy, client, server) CPU seconds -> cores by owner; 'others' =
    host busy - client - server, never below 0."""
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "server_pid": server_pid, "interval_s": interval_s,
                           "span_s": 0.0}
    s = np.array(samples, dtype=float).reshape(-1, 4)
    s = s[s[:, 0] > 0]
    if not len(s):
        return out
    busy, cl, sv = (s[:, k] / s[:, 0] for k in (1, 2, 3))
    others = np.maximum(busy - cl - sv, 0.0)
    return out | {
        "span_s": float(s[:, 0].sum()), "samples": int(len(s)), "host_busy_cores_mean": float(busy.mean()),
        "client_cores_mean": float(cl.mean()), "client_cores_max": float(cl.max()),
        "server_cores_mean": float(sv.mean()) if server_pid else None,
        "others_cores_mean": float(others.mean()), "others_cores_p90": float(np.percentile(others, 90)),
    }


class HostMonitor:
    """Host CPU by owner (hostsample.Sampler): the server and its tree found when the run starts,
    sampled on a thread from ``begin`` (the measured phase) to ``stop``."""

    def __init__(self, base_url: str, interval_s: float = HOST_INTERVAL_S) -> None:
        self.base_url, self.interval_s = base_url, interval_s
        self._sampler: Any = None

    def start(self) -> HostMonitor:
        try:
            from loadtest.judge.hostsample import Sampler

            self._sampler = Sampler(self.base_url, self.interval_s)
        except Exception:  # psutil missing or /proc unreadable: the verdict says "not sampled"
            self._sampler = None
        return self

    def begin(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    def stop(self) -> dict[str, Any] | None:
        if self._sampler is None:
            return None
        return summarise(self._sampler.stop(), server_pid=self._sampler.server_pid, interval_s=self.interval_s)


class LoopMonitor:
    """An asyncio task sleeping LOOP_TICK_S at a time: how late each wake-up came is the delay any
    arrival stamp could have suffered then."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:  # perf_counter, not loop.time(): uvloop's clock is cached at 1 ms
            t = time.perf_counter()
            await asyncio.sleep(LOOP_TICK_S)
            self.delays.append(max(0.0, time.perf_counter() - t - LOOP_TICK_S))

    def start(self) -> LoopMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
        d = np.array(self.delays)
        if not d.size:
            return {"count": 0, "p50_s": None, "p99_s": None, "max_s": None}
        return {"count": int(d.size), "p50_s": float(np.percentile(d, 50)), "p99_s": float(np.percentile(d, 99)),
                "max_s": float(d.max())}


class RunMonitor:
    """Both: started with the run, measuring from ``begin`` (the measured phase) to ``stop``."""

    def __init__(self, base_url: str) -> None:
        self.host = HostMonitor(base_url)
        self.loop = LoopMonitor()

    def start(self) -> RunMonitor:
        self.host.start()
        return self

    def begin(self) -> None:
        self.host.begin()
        self.loop.start()

    def stop(self) -> dict[str, Any]:
        return {"host_cpu": self.host.stop(), "event_loop_delay": self.loop.stop()}
