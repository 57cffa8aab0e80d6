"""Shared checks for the end-to-end engine tests: run `loadtest` as a user would (a subprocess,
`--launch ENGINE`), then check the numbers are plausible and no engine process is left."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.errors import LaunchError
from loadtest.launch.launcher import ensure_engine
from loadtest.launch.process import _proc_table

def loadtest(args: list[str], out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    proc = subprocess.run([sys.executable, "-m", "loadtest", *args, "--output", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return summary, rows, proc.stderr


def assert_engine_gone(summary: dict[str, Any]) -> None:
    server = summary["server"]
    pid = server["pid"]
    left = [p for p, (ppid, pgid, state, _) in _proc_table().items()
            if (p == pid or pgid == pid) and state not in ("Z", "X")]
    assert left == [], f"engine processes left behind: {left}"
    port = int(server["base_url"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "engine port still accepting connections"


def assert_plausible(summary: dict[str, Any], rows: list[dict[str, Any]], n: int) -> None:
    assert summary["counts"] == {"requests": n, "completed": n, "failed": 0, "cancelled": 0, "abandoned": 0,
                                 "rate_limited": 0}
    assert summary["token_source"] == {"usage": n}
    for r in rows:
        assert r["ok"] and r["completion_tokens"] > 0 and r["tokens_per_s"] > 0
        assert 0 < r["ttft_s"] < r["e2e_s"]
        assert r["prompt_tokens"] > 0
    m = summary["metrics"]
    assert m["output_tokens_per_s"] > 0 and m["requests_per_min"] > 0
    res = summary["server"]["resources"]
    assert res["rss_peak_mb"] > 50




def require_engine(engine: str) -> None:
    try:
        ensure_engine(engine)
    except LaunchError as exc:
        pytest.skip(str(exc))


def alive(pids: list[int]) -> list[int]:
    """The pids among `pids` that are still running (zombies count as gone)."""
    table = _proc_table()
    return [p for p in pids if p in table and table[p][2] not in ("Z", "X")]
