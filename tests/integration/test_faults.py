"""Every row of docs/faults.md: a fault or bad input, and what the run does with it.

Each fault is played by a server on loopback (the sim, or a scripted one from faultserver.py).
For every one: the run completes or stops as documented, each error kind has a one-line cause,
requests.jsonl holds exactly one complete row per request sent, the process is done within
--timeout + 2 s, and no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from faultserver import SSE_HEAD, FaultServer, event, hold, serve
from loadtest.cli.main import main

TIMEOUT_S = 2.0


def run_main(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, float, str]:
    t0 = time.monotonic()
    # The command, then the defaults of these tests, then the test's own options (which win).
    code = main([args[0], "--timeout", str(TIMEOUT_S), *args[1:], "--output", str(out), "--quiet"])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, took, err


def check_files(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One complete row per request (ids unique), counts that match, one-line causes."""
    summary = json.loads((out / "summary.json").read_text())
    raw = (out / "requests.jsonl").read_bytes()
    assert raw.endswith(b"\n") or raw == b""
    rows = [json.loads(line) for line in raw.splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a request id appears twice"
    assert len(rows) == summary["counts"]["requests"] + summary["run"]["warmup_requests"]
    for kind, e in summary["errors"].items():
        assert "\n" not in e["example"] and len(e["example"]) <= 300, (kind, e["example"])
    if summary["run"]["error"]:
        assert "\n" not in summary["run"]["error"]
    return summary, rows


# -- behaviours of the scripted server (the rest, with the scripted faults: tests/slow/test_faults_slow.py)

def b_never_answer(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    hold(server)


def b_endless(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD)
    piece = event("more")
    while not server.stopping.is_set():
        sock.sendall(piece * 20)
        server.stopping.wait(0.001)


def test_runaway_is_cut_by_the_limit_not_the_timeout(tmp_path, capsys):
    with serve(b_endless) as server:
        got, took, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--max-tokens", "16",
                                   "--num-prompts", "1", "--timeout", "30"], tmp_path / "out", capsys)
    assert got == 2 and took < 5, (took, err)


# -- stops: every stop cancels what is in flight promptly ---------------------------------------

def test_duration_deadline_cancels_requests_that_never_get_an_answer(tmp_path, capsys):
    with serve(b_never_answer) as server:
        got, took, err = run_main(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "4",
                                   "--duration", "1", "--timeout", "30"], tmp_path / "out", capsys)
    assert took < 3, took
    summary, rows = check_files(tmp_path / "out")
    assert rows and all(r["error_kind"] == "cancelled" for r in rows)
    assert got == 2 and "no request completed within --duration 1 s" in err


def test_cancelling_requests_as_their_connects_complete_is_never_swallowed():
    """The cause of stopped runs hanging: asyncio.wait_for (Python 3.11) returned the connection and
    swallowed a cancellation that arrived as the connect completed; the request then waited its
    full timeout and was recorded as `timeout`. Reproduced here with many connects in flight."""
    from loadtest.transport._fast import FastTransport

    async def go() -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        swallowed = 0
        for trial in range(12):
            t = FastTransport(f"http://127.0.0.1:{port}/v1", max_connections=300, headers={})
            tasks = [asyncio.create_task(t.post("/x", b"{}", 3)) for _ in range(150)]
            for _ in range(trial % 5):
                await asyncio.sleep(0)
            await asyncio.sleep(0.0002 * trial)
            for k in tasks:
                k.cancel()
            res = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
            swallowed += sum(1 for r in res if not isinstance(r, asyncio.CancelledError))
            await t.aclose()
        listener.close()
        return swallowed

    import uvloop

    t0 = time.monotonic()
    assert uvloop.run(go()) == 0
    assert time.monotonic() - t0 < 5


# -- signals (a child process, as a user would send them) -------------------------------------

LOADTEST = [sys.executable, "-m", "loadtest"]


def _start(args: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*LOADTEST, *args, "--output", str(out), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])


def test_ctrl_c_during_model_discovery_is_prompt(tmp_path):
    with serve(b_never_answer) as server:
        proc = _start(["single", "--endpoint", server.base_url], tmp_path / "out")
        time.sleep(1.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 2 and proc.returncode == 130, err
    # nothing was measured: one line, and no run directory left behind (there is no run to resume)
    assert err.strip().endswith("interrupted (SIGINT) before anything was measured"), err
    assert not (tmp_path / "out").exists()
