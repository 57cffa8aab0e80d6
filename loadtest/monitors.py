"""What else happened while a run measured: the event loop's own delay (a stalled loop stamps
arrivals late) and the host's CPU by owner (this client, the server under test when it runs on
this host, everyone else). verdict.py turns these into "client-bound" and "disturbed".

Why: one `pip install` beside a llama.cpp demo made it 24x slower (117 -> 4.9 tokens/s; its
threads spin on barriers). Nothing in the latencies says so; the host's CPU does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
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


def _busy(t: Any) -> float:
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def sample(client_pid: int, base_url: str, interval_s: float, stop: Any) -> dict[str, Any]:
    """Sample until ``stop(timeout)`` returns True; the summary of host CPU by owner, in cores.
    Runs in its own process (see HostMonitor): 'others' = host busy - client - server - sampler."""
    pid = server_pid(base_url)
    server = psutil.Process(pid) if pid else None
    client, me = psutil.Process(client_pid), psutil.Process()
    server_procs: dict[int, psutil.Process] = {}

    def snap() -> tuple[float, ...]:
        c, m = client.cpu_times(), me.cpu_times()
        return (time.monotonic(), _busy(psutil.cpu_times()), c.user + c.system, _tree_cpu_s(server_procs, server),
                m.user + m.system)

    samples = []
    prev = snap()
    while not stop(interval_s):
        now = snap()
        samples.append([b - a for a, b in zip(prev, now)])
        prev = now
    out: dict[str, Any] = {"span_s": 0.0, "cpu_count": psutil.cpu_count(), "server_pid": pid,
                           "interval_s": interval_s}
    s = np.array(samples) if samples else np.zeros((0, 5))
    s = s[s[:, 0] > 0]
    if not len(s):
        return out
    busy, cl, sv, own = (s[:, k] / s[:, 0] for k in (1, 2, 3, 4))
    others = np.maximum(busy - cl - sv - own, 0.0)
    return out | {
        "span_s": float(s[:, 0].sum()), "host_busy_cores_mean": float(busy.mean()),
        "client_cores_mean": float(cl.mean()), "client_cores_max": float(cl.max()),
        "server_cores_mean": float(sv.mean()) if server else None,
        "others_cores_mean": float(others.mean()), "others_cores_p90": float(np.percentile(others, 90)),
    }


class HostMonitor:
    """Host CPU by owner, sampled every HOST_INTERVAL_S by a child process: a sampling thread in
    the client would take the GIL from the event loop (walking /proc costs milliseconds) and
    delay arrival stamps by as much. The child stops when its stdin closes and prints JSON."""

    def __init__(self, base_url: str, interval_s: float = HOST_INTERVAL_S) -> None:
        self._args = [sys.executable, "-m", "loadtest.monitors", str(os.getpid()), base_url, str(interval_s)]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HostMonitor:
        """Spawn the sampler early: its start-up (~0.2 s of imports) must be over before the
        measured phase, or it competes with the client for a core right then."""
        try:
            # Niced: its start-up (imports) must not take a core from the client or the server.
            self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL,
                                          preexec_fn=(lambda: os.nice(10)) if os.name == "posix" else None)
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
            return json.loads(out) if out.strip() else None
        except (subprocess.TimeoutExpired, ValueError):
            self._proc.kill()
            self._proc.wait()
            return None


def _main(argv: list[str]) -> None:
    import select

    client_pid, base_url, interval_s = int(argv[0]), argv[1], float(argv[2])
    if not sys.stdin.readline():  # wait for "begin"; EOF: the run ended before measuring
        return

    def stop(timeout: float) -> bool:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return bool(ready)  # stdin readable = closed by the parent (it never writes)

    print(json.dumps(sample(client_pid, base_url, interval_s, stop)), flush=True)


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


if __name__ == "__main__":
    _main(sys.argv[1:])
