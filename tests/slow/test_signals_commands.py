"""Stop means stop, in every command (#26): SIGINT and SIGTERM sent to each command as a user
would start it (a subprocess against the test server with slow replies), by one helper. First
signal: the command stops gracefully, writes what completed marked interrupted, starts no further
run, and exits 130/143 with no traceback; a second quits at once. sweep, capacity and tokens are
in test_signals.py; the quick checks in tests/integration/test_faults_stops.py."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import faultserver
import pytest

LOADTEST = [sys.executable, "-m", "loadtest"]
ROOT = Path(__file__).resolve().parents[2]
CODES = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]

pytestmark = pytest.mark.timeout(120)


def stop(args: list[str], sig: signal.Signals, ready: Callable[[], bool], *, second: bool = False,
         ready_s: float = 30.0) -> tuple[int, str, str, float]:
    """Start ``loadtest ARGS``, wait until ``ready()``, send ``sig`` (twice with ``second``):
    (exit code, stdout, stderr, seconds from the signal to the exit)."""
    proc = subprocess.Popen([*LOADTEST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + ready_s
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never got ready"
            time.sleep(0.02)
        t0 = time.monotonic()
        proc.send_signal(sig)
        if second:
            time.sleep(0.02)
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def measuring(root: Path) -> Callable[[], bool]:
    """Ready once a run under ``root`` holds records, and a moment more."""
    seen: list[float] = []

    def ready() -> bool:
        if not seen and any(p.stat().st_size for p in root.rglob("requests.jsonl")):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 0.3

    return ready


def after(seconds: float) -> Callable[[], bool]:
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0 > seconds


def summaries(root: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("summary.json")}


def runs_of(root: Path) -> list[Path]:
    """Every run directory (requests.jsonl), each of which must have its summary."""
    return [p.parent for p in root.rglob("requests.jsonl")]


SUITE = """command = "throughput"
endpoint = "{url}"
model = "sim-model"
max-tokens = 40
concurrency = 2
[[runs]]
name = "a"
num-prompts = {first}
[[runs]]
name = "b"
num-prompts = 60
[[runs]]
name = "c"
num-prompts = 60
"""


def command_line(command: str, url: str, out: Path, tmp: Path) -> list[str]:
    common = ["--endpoint", url, "--model", "sim-model", "--max-tokens", "40"]
    if command == "suite":
        (tmp / "suite.toml").write_text(SUITE.format(url=url, first=60))
        return ["run", str(tmp / "suite.toml"), "--output", str(out)]
    return {
        "single": ["single", *common, "--num-prompts", "60"],
        "closed": ["throughput", *common, "--concurrency", "2", "--num-prompts", "60"],
        "closed-duration": ["throughput", *common, "--concurrency", "2", "--duration", "30"],
        "open": ["throughput", *common, "--request-rate", "4", "--num-prompts", "60"],
        "open-duration": ["throughput", *common, "--request-rate", "4", "--duration", "30"],
        "repeat": ["throughput", *common, "--concurrency", "2", "--num-prompts", "30", "--repeat", "3"],
        "workers": ["throughput", *common, "--concurrency", "4", "--num-prompts", "80", "--workers", "2"],
    }[command] + ["--output", str(out)]


@pytest.mark.parametrize("sig,code", CODES)
@pytest.mark.parametrize("command", ["single", "closed", "closed-duration", "open", "open-duration", "repeat",
                                     "suite", "workers"])
def test_first_signal_stops_each_command_and_writes_what_completed(sim, tmp_path, command, sig, code):
    s = sim(ttft_ms=5, tpot_ms=20, max_concurrency=2)
    out = tmp_path / "out"
    got, stdout, err, took = stop(command_line(command, s.base_url, out, tmp_path), sig, measuring(out))
    assert got == code and took < 10 and "Traceback" not in err, (got, took, err)
    assert ("Ctrl-C again" in err) == (sig == signal.SIGINT), err
    done = summaries(out)
    assert {str(d.relative_to(out)) for d in runs_of(out)} <= set(done), done.keys()  # every run has its summary
    ended = {name: (doc.get("run") or {}).get("ended") for name, doc in done.items()}
    if command == "repeat":  # rep-1 stopped: not a measurement, no rep-2; the group says so
        assert ended == {".": "interrupted", "rep-1": "interrupted"} and not (out / "rep-2").exists(), ended
        assert (done["."]["repeat"]["runs"], done["."]["repeat"]["stopped"]) == (0, "rep-1")
        assert "outside the statistics" in err
    elif command == "suite":  # run a stopped; b and c never started
        assert ended == {"a": "interrupted"} and not (out / "b").exists(), ended
        assert "scenario: stopped after" in err
    else:
        assert ended == {".": "interrupted"}, ended
        assert "run ended early: interrupted" in stdout


@pytest.mark.parametrize("sig,code", CODES)
def test_rerun_stops_like_the_run_it_repeats(sim, tmp_path, sig, code):
    s = sim(ttft_ms=5, tpot_ms=20, max_concurrency=2)
    first = tmp_path / "first"
    subprocess.run([*LOADTEST, "throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "40",
                    "--concurrency", "2", "--num-prompts", "4", "--output", str(first), "--quiet"],
                   check=True, timeout=60, cwd=ROOT, capture_output=True)
    # the saved run made longer by its recipe: a rerun repeats num_prompts, so give it a long one
    config = json.loads((first / "config.json").read_text())
    config["num_prompts"] = 60
    (first / "config.json").write_text(json.dumps(config))
    summary = json.loads((first / "summary.json").read_text())
    summary["config"]["num_prompts"] = 60
    (first / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "again"
    got, _, err, took = stop(["rerun", str(first), "--output", str(out)], sig, measuring(out))
    assert got == code and took < 10 and "Traceback" not in err, (got, err)
    assert json.loads((out / "summary.json").read_text())["run"]["ended"] == "interrupted"


@pytest.mark.parametrize("sig,code", CODES)
def test_a_signal_between_two_runs_of_a_suite_stops_the_suite(sim, tmp_path, sig, code):
    """Each command of a suite had its own Signals: a signal after run a ended was noted by a's
    and lost when b installed its own; the suite ran to the end and exited 0."""
    s = sim(ttft_ms=5, tpot_ms=20, max_concurrency=2)
    (tmp_path / "suite.toml").write_text(SUITE.format(url=s.base_url, first=2))
    out = tmp_path / "out"
    got, _, err, took = stop(["run", str(tmp_path / "suite.toml"), "--output", str(out)], sig,
                             lambda: (out / "a" / "summary.json").exists())
    assert got == code and took < 10 and "Traceback" not in err, (got, err)
    ended = {name: doc["run"]["ended"] for name, doc in summaries(out).items()}
    # the signal lands after a (done) and stops b at once, or before b began (then b never starts)
    assert ended.get("a") == "done" and ended.get("b") in (None, "interrupted") and "c" not in ended, ended


@pytest.mark.parametrize("sig,code", CODES)
def test_a_second_signal_quits_at_once_with_the_records_whole(sim, tmp_path, sig, code):
    """The graceful stop of a large run is 0.3-0.5 s of work here that never yields to the event loop
    (its metrics over ~1,500 records of 400 tokens, its summary): a second signal 20 ms into it quits
    at once, from the signal handler, so no summary is written, and every record is whole."""
    s = sim(ttft_ms=0, tpot_ms=0.01, output_tokens=400)
    out = tmp_path / "out"
    got, _, err, took = stop(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "400",
                              "--concurrency", "8", "--duration", "60", "--quiet", "--output", str(out)], sig,
                             after(6), second=True)
    assert got == code and "Traceback" not in err, (got, err)
    assert "interrupted" in err.splitlines()[-1] and took < 5, (took, err)
    assert not (out / "summary.json").exists()  # the graceful stop did not get to write it
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]  # every one whole
    assert len(rows) > 300


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that never says a word (tests/faultserver.py)."""
    with faultserver.silent_server() as where:
        yield where


@pytest.mark.parametrize("sig,code", CODES)
@pytest.mark.parametrize("what", ["discovery", "models"])
def test_a_signal_while_the_server_is_asked_its_model(silent, tmp_path, what, sig, code):
    out = tmp_path / "out"
    args = (["throughput", "--endpoint", silent, "--concurrency", "2", "--num-prompts", "4", "--output", str(out)]
            if what == "discovery" else ["models", "--endpoint", silent])
    got, _, err, took = stop(args, sig, after(1.5))
    assert got == code and took < 5 and "Traceback" not in err, (got, err)
    # nothing to write: one line, and no run directory (discovery left one holding an empty run and
    # said it was "writing the summary of what completed")
    assert [line for line in err.splitlines() if line.strip()] == [
        f"loadtest: interrupted ({sig.name}) before anything was measured"]
    assert not out.exists()


@pytest.mark.parametrize("sig,code", CODES)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_quick_commands_stop_with_one_line(tmp_path, command, sig, code):
    """A signal once the command has started (its imports done, or not: no traceback either way)."""
    runs = ROOT / "tests" / "fixtures" / "runs" / "compare"
    a, b = runs / "llamacpp-smollm2" / "throughput", runs / "transformers-smollm2" / "throughput"
    args = ["report", str(runs)] if command == "report" else ["compare", str(a), str(b)]
    got, _, err, _ = stop(args, sig, after(0.15))
    assert "Traceback" not in err, err
    if got != 0:  # it had not finished: stopped with one line
        assert got in (code, -sig) and ("interrupted" in err or got == -sig), (got, err)


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@pytest.mark.ray
@pytest.mark.skipif(not _has_ray(), reason="ray not installed (pip install 'loadtest[ray]')")
@pytest.mark.parametrize("address", ["closed", "silent"])
def test_a_ray_address_that_does_not_answer_fails_in_bounded_time_and_stops_on_a_signal(
        sim, silent, tmp_path, address):
    """It hung past two minutes, ignoring Ctrl-C and SIGTERM (ray.init blocked the event loop)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    where = f"127.0.0.1:{closed}" if address == "closed" else silent.removeprefix("http://").removesuffix("/v1")
    s = sim(ttft_ms=5, tpot_ms=5)
    args = ["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "2", "--num-prompts",
            "4", "--ray-address", where, "--timeout", "3"]
    t0 = time.monotonic()
    done = subprocess.run([*LOADTEST, *args, "--output", str(tmp_path / "a")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 2 and time.monotonic() - t0 < 20, done.stderr
    assert f"loadtest: error: --ray-address {where}: no Ray cluster answered within 3 s" in done.stderr
    got, _, err, took = stop([*args[:-1], "30", "--output", str(tmp_path / "b")], signal.SIGINT, after(2.5))
    assert got == 130 and took < 5 and "Traceback" not in err, (got, err)
    assert f"interrupted while joining the Ray cluster at {where}" in err
    assert "writing the summary" not in err and not (tmp_path / "b").exists()  # nothing was measured, nor written
