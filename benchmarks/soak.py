#!/usr/bin/env python3
"""Long-run soak: ``loadtest throughput --duration`` against the test server at a high request rate,
watching the client process from outside: resident memory (RSS), open file descriptors and
sockets, and how soon it exits after its deadline.

    python benchmarks/soak.py                    # one hour (outside CI), samples every 10 s
    python benchmarks/soak.py --duration 60      # the CI variant (tests/slow/test_soak.py)

Short replies (TTFT 24 ms, 8 tokens 1 ms apart) with 32 requests in flight make ~1,000
requests/s (the client alone sustains ~3,000-4,000/s on a 2-core VM with TTFT 1 ms). Prints one
JSON object: requests/s, RSS at start / 10 min (or 1/6 of the run) / end, fds and sockets at the
same points, the exit delay after the deadline and whether the records are intact.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtest.sim.process import start_sim


def sample(pid: int) -> dict[str, Any] | None:
    """RSS in MB, open fds and sockets of ``pid`` (Linux /proc); None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    if rss_kb is None:  # exiting (a zombie has no memory left)
        return None
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": len(fds), "sockets": sockets}


def soak(duration_s: float, concurrency: int, interval_s: float, out: Path) -> dict[str, Any]:
    # 32 in flight, ~32 ms each (TTFT 24 ms + 8 tokens 1 ms apart): ~1,000 requests/s.
    with start_sim(ttft_ms=24, tpot_ms=1, output_tokens=8) as sim:
        cmd = [sys.executable, "-m", "loadtest", "throughput", "--endpoint", sim.base_url, "--model", "sim-model",
               "--concurrency", str(concurrency), "--duration", str(duration_s), "--max-tokens", "8",
               "--output", str(out), "--quiet"]
        t_spawn = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The measured window starts once the first record is written (after start-up and preconnect).
        records = out / "requests.jsonl"
        while proc.poll() is None and not (records.exists() and records.stat().st_size):
            time.sleep(0.05)
        t0 = time.monotonic()
        samples: list[tuple[float, dict[str, Any]]] = []
        while proc.poll() is None:
            s = sample(proc.pid)
            if s is not None and time.monotonic() - t0 < duration_s:
                samples.append((time.monotonic() - t0, s))
            time.sleep(min(interval_s, max(0.05, duration_s - (time.monotonic() - t0))))
        t_exit = time.monotonic()
        stderr = proc.stderr.read() if proc.stderr else ""
    summary = json.loads((out / "summary.json").read_text())
    raw = records.read_bytes()
    rows = raw.count(b"\n")
    intact = raw.endswith(b"\n") and all(json.loads(line) is not None for line in raw.splitlines()[-100:])

    def at(t: float) -> dict[str, Any] | None:
        near = [s for when, s in samples if when >= t]
        return near[0] if near else (samples[-1][1] if samples else None)

    start = at(min(2.0, duration_s / 10))
    return {
        "duration_s": duration_s,
        "concurrency": concurrency,
        "exit_code": proc.returncode,
        "stderr_tail": stderr.strip()[-300:],
        "requests": summary["counts"]["requests"],
        "completed": summary["counts"]["completed"],
        "requests_per_s": summary["metrics"]["requests_per_s"],
        "rows_in_file": rows,
        "records_intact": intact,
        "start": start,
        "ten_min": at(min(600.0, duration_s / 6)),
        "end": samples[-1][1] if samples else None,
        "rss_peak_mb": max((s["rss_mb"] for _, s in samples), default=None),
        "startup_s": round(t0 - t_spawn, 2),
        "exit_after_deadline_s": round(t_exit - t0 - duration_s, 2),
        "client_cpu_s": summary["run"]["client_cpu_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--keep", type=Path, help="keep the run directory here instead of a temporary one")
    args = p.parse_args()
    if args.keep:
        result = soak(args.duration, args.concurrency, args.interval, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = soak(args.duration, args.concurrency, args.interval, Path(tmp) / "run")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
