"""What the benchmark scripts share: running the client against a test server and reading its
result files, the TTFT error against the server's own write times, and the table they print.

Imported as a sibling module (``python benchmarks/X.py`` puts this folder first on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate


def run_loadtest(args: list[str], out: Path, *, cpu: int | None = None, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``python -m loadtest ARGS --output OUT --quiet`` (pinned to ``cpu`` when given): its summary
    and records; one line and exit when the client fails."""
    cmd = [sys.executable, "-m", "loadtest", *args, "--output", str(out), "--quiet"]
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=preexec, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"client failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return summary, rows


@dataclass
class ChildUsage:
    """What one ``loadtest`` child process used, from ``os.wait4`` (its own usage and that of the
    processes it reaped): CPU seconds in user and kernel mode, its peak resident memory, wall time.
    With sampling, ``rss_preload_kib`` is the highest VmRSS seen before its first record (start-up:
    prompts built, connections open) and ``rss_load_peak_kib`` the highest seen while its
    requests.jsonl still grew (the load phase, before the statistics pass over the records)."""

    user_s: float
    sys_s: float
    max_rss_kib: int
    wall_s: float
    returncode: int
    rss_preload_kib: int | None = None
    rss_load_peak_kib: int | None = None
    rss_samples: list[tuple[float, int, int]] = field(default_factory=list, repr=False)
    """(seconds since spawn, VmRSS KiB, requests.jsonl bytes) per sample."""

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _vmrss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None  # gone, or a zombie (no memory left)


def run_loadtest_usage(args: list[str], out: Path, *, cpu: int | None = None, env: dict[str, str] | None = None,
                       cwd: Path | None = None, sample_s: float | None = None,
                       ) -> tuple[dict[str, Any], ChildUsage]:
    """``python -m loadtest ARGS --output OUT --quiet`` as one child (pinned to ``cpu`` when given),
    reaped with ``os.wait4`` for its resource usage: its summary and that usage; one line and exit
    when the client fails. ``sample_s``: also sample its VmRSS (and how far requests.jsonl has got)
    this often from outside."""
    cmd = [sys.executable, "-m", "loadtest", *args, "--output", str(out), "--quiet"]
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    records = out / "requests.jsonl"
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as err:  # a file: never blocks the child
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=err, preexec_fn=preexec, env=env, cwd=cwd)
        samples: list[tuple[float, int, int]] = []
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG if sample_s else 0)
            if pid:
                break
            rss = _vmrss_kib(proc.pid)
            if rss is not None:
                size = records.stat().st_size if records.exists() else 0
                samples.append((time.monotonic() - t0, rss, size))
            time.sleep(sample_s or 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"client failed ({proc.returncode}): {stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    final = records.stat().st_size if records.exists() else 0
    preload = [rss for _, rss, size in samples if size == 0]
    growing = [rss for _, rss, size in samples if size < final]
    return summary, ChildUsage(user_s=ru.ru_utime, sys_s=ru.ru_stime, max_rss_kib=ru.ru_maxrss, wall_s=wall,
                               returncode=proc.returncode, rss_preload_kib=max(preload) if preload else None,
                               rss_load_peak_kib=max(growing) if growing else None, rss_samples=samples)


def ttft_errors_s(summary: dict[str, Any], rows: list[dict[str, Any]], first_write: dict[str, int]) -> np.ndarray:
    """Per measured request: the client's arrival stamp of the first content chunk minus the moment
    the server wrote it (both CLOCK_MONOTONIC, matched by response id). Scaled out, worker k's
    records (id % N == k) count from its own clock origin."""
    workers = summary["run"].get("workers")
    origins = [w["clock_origin_ns"] for w in workers] if workers else [summary["run"]["clock_origin_ns"]]
    n = len(origins)
    return np.array([(origins[r["id"] % n] + (r["start_s"] + r["ttft_s"]) * 1e9 - first_write[r["response_id"]]) / 1e9
                     for r in rows if r["ok"] and r.get("phase", "measured") == "measured" and r["response_id"] in first_write])


class Table:
    """Rows printed to stderr as each is measured, then all of them to stdout (and to --json)."""

    def __init__(self, headers: list[str]) -> None:
        self.headers = headers
        self.rows: list[list[Any]] = []

    def add(self, row: list[Any]) -> None:
        self.rows.append(row)
        print(tabulate([row], headers=self.headers), file=sys.stderr, flush=True)

    def finish(self, json_path: Path | None) -> None:
        print(tabulate(self.rows, headers=self.headers))
        if json_path:
            json_path.write_text(json.dumps([dict(zip(self.headers, r)) for r in self.rows], indent=2))
