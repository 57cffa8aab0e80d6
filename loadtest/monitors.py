"""What else happened while a run measured: the event loop's own delay (a stalled loop stamps
arrivals late) and the host's CPU by owner (this client, the server under test when it runs on
this host, everyone else). verdict.py turns these into "client-bound" and "disturbed".

Why: one `pip install` beside a llama.cpp demo made it 24x slower (117 -> 4.9 tokens/s; its
threads spin on barriers). Nothing in the latencies says so; the host's CPU does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

LOOP_TICK_S = 0.005
HOST_INTERVAL_S = 0.25


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """The sampler's raw intervals -> cores by owner; 'others' = host busy - client - server -
    the sampler itself, never below 0."""
    out = {k: raw.get(k) for k in ("cpu_count", "server_pid", "interval_s")} | {"span_s": 0.0}
    s = np.array(raw.get("samples") or [], dtype=float).reshape(-1, 5)
    s = s[s[:, 0] > 0]
    if not len(s):
        return out
    busy, cl, sv, own = (s[:, k] / s[:, 0] for k in (1, 2, 3, 4))
    others = np.maximum(busy - cl - sv - own, 0.0)
    return out | {
        "span_s": float(s[:, 0].sum()), "samples": int(len(s)), "host_busy_cores_mean": float(busy.mean()),
        "client_cores_mean": float(cl.mean()), "client_cores_max": float(cl.max()),
        "server_cores_mean": float(sv.mean()) if raw.get("server_pid") else None,
        "others_cores_mean": float(others.mean()), "others_cores_p90": float(np.percentile(others, 90)),
    }


class HostMonitor:
    """Host CPU by owner, sampled every HOST_INTERVAL_S by a child process: a sampling thread in
    the client would take the GIL from the event loop (walking /proc costs milliseconds) and
    delay arrival stamps by as much. The child stops when its stdin closes and prints JSON."""

    def __init__(self, base_url: str, interval_s: float = HOST_INTERVAL_S) -> None:
        self._args = [sys.executable, "-m", "loadtest.hostsample", str(os.getpid()), base_url, str(interval_s)]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HostMonitor:
        """Spawn the sampler early: its start-up (~0.2 s of imports) must be over before the
        measured phase, or it competes with the client for a core right then."""
        try:
            self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        except OSError:
            self._proc = None
        return self

    def begin(self) -> None:
        """The measured phase starts: the sampler takes its first sample now."""
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(b"begin\n")
                self._proc.stdin.flush()
            except OSError:
                pass

    def stop(self) -> dict[str, Any] | None:
        if self._proc is None:
            return None
        try:
            out, _ = self._proc.communicate(timeout=10)
            return summarise(json.loads(out)) if out.strip() else None
        except (subprocess.TimeoutExpired, ValueError):
            self._proc.kill()
            self._proc.wait()
            return None


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
