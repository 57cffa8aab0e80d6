"""Memory and CPU of the engine's whole process tree while it serves, sampled from /proc.

Throughput numbers mean little without what they cost: an engine that is 10% faster with 4x the
RAM is a different trade. The whole tree is measured because engines split work across processes
(vLLM: API server, engine core, workers). RSS summed over a tree counts shared pages (torch's
libraries) once per process, so PSS, which divides shared pages among their users, is recorded
too. GPU figures come from nvidia-smi and are device-wide, not per process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Callable

from loadtest.launch.process import process_tree

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def gpu_sample() -> tuple[float, float] | None:
    """(memory used MB, utilisation %) summed/averaged over GPUs, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
        rows = [[float(x) for x in line.split(",")] for line in out.strip().splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not rows:
        return None
    return sum(r[0] for r in rows), sum(r[1] for r in rows) / len(rows)


class ResourceMonitor:
    """A daemon thread sampling the tree rooted at `pid` every `interval_s` seconds."""

    def __init__(self, pid: int, interval_s: float = 1.0,
                 gpu: Callable[[], tuple[float, float] | None] | None = gpu_sample) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self._gpu = gpu if (gpu is not gpu_sample or shutil.which("nvidia-smi")) else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._prev_ticks: dict[int, int] = {}
        self._prev_t: float | None = None
        self.rss_mb: list[float] = []
        self.pss_mb: list[float] = []
        self.cpu_pct: list[float] = []
        self.gpu_mem_mb: list[float] = []
        self.gpu_util_pct: list[float] = []
        self.n_procs_max = 0

    def start(self) -> "ResourceMonitor":
        self.sample()  # baseline for CPU deltas
        self._thread = threading.Thread(target=self._run, name="loadtest-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, after one last sample: a run shorter than the interval would otherwise
        report only the engine's start-up footprint."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.sample_quietly()

    def sample_quietly(self) -> None:
        try:
            self.sample()
        except Exception:  # noqa: BLE001 - a monitor must never take the benchmark down
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_quietly()

    def sample(self) -> None:
        pids = process_tree(self.pid, self.pid)
        now = time.monotonic()
        ticks = {p: t for p in pids if (t := _cpu_ticks(p)) is not None}
        rss = sum(_rss_bytes(p) for p in ticks)
        pss_parts = [_pss_bytes(p) for p in ticks]
        gpu = self._gpu() if self._gpu else None
        with self._lock:
            if not ticks:
                return
            self.n_procs_max = max(self.n_procs_max, len(ticks))
            self.rss_mb.append(rss / 1e6)
            if pss_parts and all(x is not None for x in pss_parts):
                self.pss_mb.append(sum(pss_parts) / 1e6)
            if self._prev_t is not None and now > self._prev_t:
                # a process new since the last sample contributes all its ticks so far
                used = sum(t - self._prev_ticks.get(p, 0) for p, t in ticks.items())
                self.cpu_pct.append(max(0.0, used / _TICKS / (now - self._prev_t) * 100))
            self._prev_ticks, self._prev_t = ticks, now
            if gpu is not None:
                self.gpu_mem_mb.append(gpu[0])
                self.gpu_util_pct.append(gpu[1])

    def summary(self) -> dict:
        """Peaks and means so far. CPU % is of one core: 200 means two cores busy."""
        def stats(xs: list[float]) -> tuple[float | None, float | None]:
            return (round(max(xs), 1), round(sum(xs) / len(xs), 1)) if xs else (None, None)

        with self._lock:
            rss_peak, rss_mean = stats(self.rss_mb)
            pss_peak, pss_mean = stats(self.pss_mb)
            cpu_peak, cpu_mean = stats(self.cpu_pct)
            gpu_mem_peak, gpu_mem_mean = stats(self.gpu_mem_mb)
            gpu_util_peak, gpu_util_mean = stats(self.gpu_util_pct)
            return {
                "samples": len(self.rss_mb),
                "interval_s": self.interval_s,
                "processes_max": self.n_procs_max,
                "rss_peak_mb": rss_peak, "rss_mean_mb": rss_mean,
                "pss_peak_mb": pss_peak, "pss_mean_mb": pss_mean,
                "cpu_peak_pct": cpu_peak, "cpu_mean_pct": cpu_mean,
                "gpu_mem_peak_mb": gpu_mem_peak, "gpu_mem_mean_mb": gpu_mem_mean,
                "gpu_util_peak_pct": gpu_util_peak, "gpu_util_mean_pct": gpu_util_mean,
            }
