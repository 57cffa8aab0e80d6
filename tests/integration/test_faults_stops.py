"""Stop means stop (#26), the quick half: a malformed --ray-address is one line before anything
runs, preconnect stays within the run's own budget and claims only connections it opened, and the
command's one Signals (run/execute.py) takes the signals for the command and gives them back. The
signals sent to each command as a user would are in tests/slow/test_signals_commands.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

import faultserver
from loadtest.cli.main import main

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("address", ["foo:bar:baz", "::", "", "ray://", "head", "head:0", "head:99999", "a b:1"])
def test_a_malformed_ray_address_is_one_line_before_anything_runs(refused, tmp_path, address):
    """It reached Ray, which died with an internal AttributeError (foo:bar:baz, ::)."""
    out = tmp_path / "out"
    refused(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--concurrency", "2",
             "--ray-address", address, "--output", str(out)], out, "is not a Ray address")


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose backlog is full (tests/faultserver.py)."""
    with faultserver.full_backlog() as where:
        yield where


def test_preconnect_to_a_full_backlog_is_bounded_by_the_duration_and_not_claimed(tmp_path, capsys, full_backlog):
    """A --duration 1 run waited 30 s for connections that never came, said 'use a longer
    --duration' and recorded connections_preopened: true."""
    out = tmp_path / "out"
    t0 = time.monotonic()
    code = main(["throughput", "--endpoint", f"http://127.0.0.1:{full_backlog}/v1", "--model", "m",
                 "--concurrency", "2", "--duration", "1", "--timeout", "30", "--output", str(out), "--quiet"])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2 and took < 1 + 1 + 3, (took, err)  # preconnect <= 1 s, the window 1 s, start-up
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["connections_preopened"] is False
    assert "did not accept the connections" in summary["run"]["error"] and "longer --duration" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("transport,opened", [("fast", True), ("httpx", False)])
def test_connections_preopened_says_what_was_opened(cli, sim, tmp_path, transport, opened):
    s = sim(ttft_ms=1, tpot_ms=1, output_tokens=4)
    code, summary, _ = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "2",
                            "--num-prompts", "4", "--transport", transport], tmp_path / transport)
    assert code == 0 and summary["run"]["connections_preopened"] is opened


def test_a_command_takes_the_signals_and_gives_them_back(cli, sim, tmp_path):
    """The CLI's main holds one Signals for the command; an in-process caller (a test, a notebook)
    gets its own handlers back."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    s = sim(ttft_ms=1, tpot_ms=1, output_tokens=4)
    code, _, _ = cli(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "2"], tmp_path / "a")
    assert code == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before


def _signal_soon(sig: signal.Signals, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


def test_a_signal_cancels_a_wait_that_is_not_a_run():
    """run_async (a model listing): the signal cancels it and the command quits with 143, however
    long the wait would have been."""
    from loadtest.run.execute import Interrupted, command, run_async

    with command() as signals:
        timer = _signal_soon(signal.SIGTERM, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Interrupted) as stopped:
            run_async(asyncio.sleep(30))
        timer.join()
    assert time.monotonic() - t0 < 5 and stopped.value.exit_code == 143 and signals.exit_code == 143
    assert "before anything was measured" in str(stopped.value)


def test_before_anything_was_measured_a_signal_quits_at_once():
    """No run has begun (prompts, a tokenizer, an engine starting): nothing to write, one line."""
    from loadtest.run.execute import Interrupted, command

    with command() as signals:
        timer = _signal_soon(signal.SIGINT, 0.1)
        t0 = time.monotonic()
        with pytest.raises(Interrupted) as stopped:
            while time.monotonic() - t0 < 10:
                time.sleep(0.01)
        timer.join()
    assert time.monotonic() - t0 < 5 and stopped.value.exit_code == 130 and signals.received == signal.SIGINT


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that never says a word (tests/faultserver.py)."""
    with faultserver.silent_server() as where:
        yield where


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("phase", ["discovery", "preconnect", "scaleout"])
def test_a_run_stopped_before_its_first_request_leaves_no_directory_and_says_so(
        tmp_path, capsys, silent, full_backlog, phase, sig, code):
    """It said 'writing the summary of what completed' and left a directory holding an empty
    requests.jsonl, config.json, server_metrics.jsonl and a summary of nothing (discovery,
    preconnect), or only server_metrics.jsonl (a scaled-out run whose workers were still opening
    their connections)."""
    from loadtest.run.execute import command

    out = tmp_path / "out"
    args = {"discovery": ["--endpoint", silent],  # the model asked of a server that never answers
            "preconnect": ["--endpoint", f"http://127.0.0.1:{full_backlog}/v1", "--model", "m"],
            "scaleout": ["--endpoint", f"http://127.0.0.1:{full_backlog}/v1", "--model", "m", "--workers", "2"],
            }[phase]
    with command():
        timer = _signal_soon(sig, 1.0)
        t0 = time.monotonic()
        got = main(["throughput", *args, "--concurrency", "2", "--num-prompts", "4", "--timeout", "30",
                    "--server-metrics", "auto", "--output", str(out)])
        timer.join()
    err = capsys.readouterr().err
    assert got == code and time.monotonic() - t0 < 6, (got, err)
    assert [line for line in err.splitlines() if line.strip()] == [
        f"loadtest: interrupted ({sig.name}) before anything was measured"], err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
