"""What the benchmark scripts share: running the client against a test server and reading its
result files, the TTFT error against the server's own write times, and the table they print.

Imported as a sibling module (``python benchmarks/X.py`` puts this folder first on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
