"""What else happened while a run measured: the event loop's own delay (a stalled loop stamps
arrivals late) and the host's CPU by owner (this client, the server under test when it runs on
this host, everyone else). verdict.py turns these into "client-bound" and "disturbed".

Why: one `pip install` beside a llama.cpp demo made it 24x slower (117 -> 4.9 tokens/s; its
threads spin on barriers). Nothing in the latencies says so; the host's CPU does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psutil

LOOP_TICK_S = 0.005
HOST_INTERVAL_S = 0.25


def _is_local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:
            addr = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return False
    return addr.is_loopback or str(addr) in {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}


def server_pid(base_url: str) -> int | None:
    """The local process listening on the endpoint's port (None when remote or not visible)."""
    parts = urlsplit(base_url)
    if not parts.hostname or not _is_local(parts.hostname):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return int(c.pid)
    except (psutil.Error, OSError):
        return None
    return None


def _tree_cpu_s(procs: dict[int, psutil.Process], root: psutil.Process | None) -> float:
    """CPU seconds of a process tree; processes seen once keep being counted while they live."""
    if root is None:
        return 0.0
    try:
        for p in [root, *root.children(recursive=True)]:
            procs.setdefault(p.pid, p)
    except psutil.Error:
        pass
    total = 0.0
    for pid, p in list(procs.items()):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            procs.pop(pid, None)
    return total


class HostMonitor:
    """A daemon thread: every HOST_INTERVAL_S, host busy CPU, this process's and the server tree's.
    'Others' = host busy - client - server, in cores (1.0 = one core fully used)."""

    def __init__(self, base_url: str, interval_s: float = HOST_INTERVAL_S) -> None:
        self.interval_s = interval_s
        pid = server_pid(base_url)
        self._server = psutil.Process(pid) if pid else None
        self._server_procs: dict[int, psutil.Process] = {}
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loadtest-host-monitor", daemon=True)
        self.samples: list[tuple[float, float, float, float]] = []  # (dt, busy, client, server) CPU seconds

    @staticmethod
    def _busy(t: Any) -> float:
        return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))

    def _snap(self) -> tuple[float, float, float, float]:
        me = self._me.cpu_times()
        return (time.monotonic(), self._busy(psutil.cpu_times()), me.user + me.system,
                _tree_cpu_s(self._server_procs, self._server))

    def _loop(self) -> None:
        prev = self._snap()
        while not self._stop.wait(self.interval_s):
            now = self._snap()
            self.samples.append(tuple(b - a for a, b in zip(prev, now)))  # type: ignore[arg-type]
            prev = now

    def start(self) -> HostMonitor:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=2)
        s = np.array(self.samples) if self.samples else np.zeros((0, 4))
        span = float(s[:, 0].sum()) if len(s) else 0.0
        if span <= 0:
            return {"span_s": 0.0, "cpu_count": psutil.cpu_count(), "server_pid": self._server and self._server.pid}
        busy, client, server = (s[:, 1] / s[:, 0]), s[:, 2] / s[:, 0], s[:, 3] / s[:, 0]
        others = np.maximum(busy - client - server, 0.0)
        return {
            "span_s": span, "cpu_count": psutil.cpu_count(),
            "server_pid": self._server.pid if self._server else None,
            "host_busy_cores_mean": float(busy.mean()),
            "client_cores_mean": float(client.mean()), "client_cores_max": float(client.max()),
            "server_cores_mean": float(server.mean()) if self._server else None,
            "others_cores_mean": float(others.mean()), "others_cores_p90": float(np.percentile(others, 90)),
        }


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
    """Both, started and stopped together around a run's measured phase."""

    def __init__(self, base_url: str) -> None:
        self.host = HostMonitor(base_url)
        self.loop = LoopMonitor()

    def start(self) -> RunMonitor:
        self.host.start()
        self.loop.start()
        return self

    def stop(self) -> dict[str, Any]:
        return {"host_cpu": self.host.stop(), "event_loop_delay": self.loop.stop()}
