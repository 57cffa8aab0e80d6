"""Both commands end to end against real engines on the embedded SmolLM2, through `--launch`.

Run as a user would (a `loadtest` subprocess): the run completes, tokens come from the engine's
usage, the numbers are plausible, the decode rate agrees with llama.cpp's own clock, and no
engine process is left afterwards.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.errors import LaunchError
from loadtest.launch import ensure_engine
from loadtest.launch.process import _proc_table

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


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
    assert summary["counts"] == {"requests": n, "completed": n, "failed": 0, "cancelled": 0}
    assert summary["token_source"] == {"usage": n}
    for r in rows:
        assert r["ok"] and r["completion_tokens"] > 0 and r["tokens_per_s"] > 0
        assert 0 < r["ttft_s"] < r["e2e_s"]
        assert r["prompt_tokens"] > 0
    m = summary["metrics"]
    assert m["output_tokens_per_s"] > 0 and m["requests_per_min"] > 0
    res = summary["server"]["resources"]
    assert res["rss_peak_mb"] > 50


@pytest.fixture(scope="module")
def llamacpp() -> None:
    try:
        ensure_engine("llamacpp")
    except LaunchError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def transformers() -> None:
    try:
        ensure_engine("transformers")
    except LaunchError as exc:
        pytest.skip(str(exc))


def test_llamacpp_single_decode_rate_agrees_with_the_engines_clock(llamacpp, tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["single", "--launch", "llamacpp", "--num-prompts", "6", "--max-tokens", "64",
                                 "--ignore-eos"], tmp_path)
    assert_plausible(summary, rows, 6)
    assert summary["server"]["engine"] == "llamacpp" and summary["server"]["quantisation"] == "Q4_1"
    assert summary["server"]["model"]["sha256"] and summary["config"]["ignore_eos"] is True
    for r in rows:
        timings = r["engine_timings"]
        assert r["completion_tokens"] == 64 == timings["predicted_n"]  # ignore_eos honoured, usage exact
        # Our decode rate (after the first chunk) against llama.cpp's predicted_per_second, same request.
        assert r["decode_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=0.05)
        # TTFT covers prompt processing and the first token, plus HTTP: at least the engine's prompt_ms.
        assert r["ttft_s"] * 1000 >= timings["prompt_ms"]
    assert_engine_gone(summary)


def test_llamacpp_throughput(llamacpp, tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["throughput", "--launch", "llamacpp", "--slots", "4", "--concurrency", "4",
                                 "--num-prompts", "12", "--max-tokens", "48"], tmp_path)
    assert_plausible(summary, rows, 12)
    assert summary["server"]["slots"] == 4
    # Closed loop at concurrency 4: never more than 4 requests overlap at any moment.
    events = sorted([(r["start_s"], 1) for r in rows] + [(r["end_s"], -1) for r in rows])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == 4
    assert_engine_gone(summary)


def test_transformers_serve_single_and_throughput(transformers, tmp_path: Path) -> None:
    summary, rows, stderr = loadtest(["single", "--launch", "transformers", "--num-prompts", "3",
                                      "--max-tokens", "24", "--ignore-eos"], tmp_path / "single")
    assert_plausible(summary, rows, 3)
    # transformers serve answers 422 to unknown fields: ignore_eos is not sent to it, and the user is told.
    assert "does not accept ignore_eos" in stderr and summary["config"]["ignore_eos"] is False
    assert summary["server"]["engine"] == "transformers"
    assert_engine_gone(summary)
    summary, rows, _ = loadtest(["throughput", "--launch", "transformers", "--concurrency", "2",
                                 "--num-prompts", "4", "--max-tokens", "16"], tmp_path / "throughput")
    assert_plausible(summary, rows, 4)
    assert_engine_gone(summary)
