"""--repeat N against the test server: the reps, the group summary's values, --until-ci's stop,
--vary-seed, a sweep's levels as groups, a signal during a rep, and the options' one-line errors."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.compare.sides import load_side
from loadtest.errors import ConfigError
from loadtest.stats.dist import t_ppf

ROOT = Path(__file__).resolve().parents[2]


def repeat(sim, out: Path, *extra: str, command: str = "single", n: int = 4, max_tokens: int = 10) -> int:
    return main([command, "--endpoint", sim.base_url, "--model", "sim-model", "--num-prompts", str(n),
                 "--max-tokens", str(max_tokens), "--output", str(out), "--quiet", *extra])


def load(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "requests.jsonl").read_text().splitlines()]


def test_reps_are_complete_runs_and_the_group_values_are_theirs(sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1)
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "3", "--seed", "5") == 0
    group = load(out)
    reps = [out / f"rep-{k}" for k in (1, 2, 3)]
    for rep in reps:  # each a complete run directory
        assert {"summary.json", "requests.jsonl", "config.json"} <= {p.name for p in rep.iterdir()}
        assert load(rep)["config"]["seed"] == 5 and load(rep)["verdict"] is not None
    orders = [[r["prompt_id"] for r in rows(rep)] for rep in reps]
    assert orders[0] == orders[1] == orders[2]  # identical runs: the same prompts in the same order
    summaries = [load(rep) for rep in reps]
    block = group["repeat"]
    assert block["n"] == 3 and block["runs"] == 3 and block["dirs"] == ["rep-1", "rep-2", "rep-3"]
    assert block["seeds"] == [5, 5, 5] and block["vary_seed"] is False and block["converged"] is None
    for name, get in (("output_tokens_per_s", lambda m: m["output_tokens_per_s"]),
                      ("ttft_s.p50", lambda m: m["ttft_s"]["p50"]), ("e2e_s.p99", lambda m: m["e2e_s"]["p99"])):
        values = [get(x["metrics"]) for x in summaries]
        mean = sum(values) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        b = block["metrics"][name]
        assert b["values"] == pytest.approx(values) and b["mean"] == pytest.approx(mean)
        assert b["half_width"] == pytest.approx(t_ppf(0.975, 2) * std / math.sqrt(3))
        assert b["cv"] == pytest.approx(std / mean)
    # top level: rates the mean over runs, per-request statistics pooled over every request
    assert group["metrics"]["output_tokens_per_s"] == pytest.approx(block["metrics"]["output_tokens_per_s"]["mean"])
    assert group["counts"]["requests"] == 12 and group["metrics"]["ttft_s"]["count"] == 12
    pooled_ttft = sorted(r["ttft_s"] for rep in reps for r in rows(rep))
    assert group["metrics"]["ttft_s"]["max"] == pytest.approx(pooled_ttft[-1])
    assert group["metrics"]["completion_tokens_total"] == 12 * 10
    assert group["command"] == "single" and group["config"]["output_dir"] == str(out)
    # a second group into the same directory is refused, in one line
    assert repeat(s, out, "--repeat", "2") == 2
    # a report of the folder holding the group shows the group once, not its reps besides
    assert main(["report", str(tmp_path), "--format", "json", "--output", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    (row,) = next(t for t in report["tables"] if t["name"] == "runs")["rows"]
    assert row["runs"] == 1 and row["requests"] == 12


def test_vary_seed_gives_each_rep_its_own_seed_and_sample(sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1)
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "3", "--seed", "7", "--vary-seed", n=6) == 0
    assert load(out)["repeat"]["seeds"] == [7, 8, 9]
    assert [load(out / f"rep-{k}")["config"]["seed"] for k in (1, 2, 3)] == [7, 8, 9]
    orders = [[r["prompt_id"] for r in rows(out / f"rep-{k}")] for k in (1, 2, 3)]
    assert len({tuple(o) for o in orders}) == 3


def test_until_ci_stops_at_the_minimum_when_the_server_is_steady(sim, tmp_path, capsys):
    s = sim(ttft_ms=20, tpot_ms=2)  # fixed lengths and timing: the runs differ by < 1%
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "6", "--until-ci", "5", n=5, max_tokens=20) == 0
    block = load(out)["repeat"]
    assert block["runs"] == 3 and block["converged"] is True and block["converged_after"] == 3
    assert block["ci_metric"] == "output_tokens_per_s" and block["ci_half_width_pct"] < 5
    assert not (out / "rep-4").exists()
    assert "converged after 3 runs" in capsys.readouterr().out


def test_until_ci_runs_them_all_and_says_not_converged_when_runs_are_noisy(sim, tmp_path, capsys):
    s = sim(ttft_ms=5, tpot_ms=1, early_stops=True)  # output lengths drawn anew for every request
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "4", "--until-ci", "0.5", "--ci-metric", "requests_per_min", n=4,
                  max_tokens=30) == 0
    block = load(out)["repeat"]
    assert block["runs"] == 4 and block["converged"] is False and block["converged_after"] is None
    assert block["ci_metric"] == "requests_per_min" and block["ci_half_width_pct"] > 0.5
    assert "NOT converged after 4 runs" in capsys.readouterr().out


def test_a_ci_metric_the_runs_do_not_measure_is_said_and_never_converges(sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1)
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "3", "--until-ci", "50", "--ci-metric", "no_such_metric", n=2) == 0
    assert load(out)["repeat"]["converged"] is False and load(out)["repeat"]["runs"] == 3
    assert "the run measured no no_such_metric" in capsys.readouterr().err


def test_sweep_levels_are_groups(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1)
    out = tmp_path / "sweep"
    assert repeat(s, out, "--concurrency", "1,2", "--repeat", "2", command="sweep", n=4) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["level"] for r in sweep["rows"]] == [1, 2]
    for level, row in zip(("concurrency-1", "concurrency-2"), sweep["rows"], strict=True):
        group = load(out / level)
        assert group["repeat"]["runs"] == 2 and (out / level / "rep-2" / "requests.jsonl").is_file()
        assert row["output_tokens_per_s"] == pytest.approx(group["repeat"]["metrics"]["output_tokens_per_s"]["mean"])
        assert group["counts"]["requests"] == 8


@pytest.mark.parametrize("args,message", [
    (["--until-ci", "5"], "need --repeat N"),
    (["--vary-seed"], "need --repeat N"),
    (["--repeat", "2", "--until-ci", "5"], "N >= 3"),
    (["--repeat", "3", "--ci-metric", "ttft:p99"], "give --until-ci PCT too"),
    (["--repeat", "3", "--until-ci", "5", "--ci-metric", "TTFT p99!"], "--ci-metric 'TTFT p99!'"),
    (["--repeat", "0"], "argument --repeat: must be >= 1"),
])
def test_bad_repeat_options_are_one_line(tmp_path, capsys, args, message):
    try:
        code = main(["single", "--endpoint", "http://127.0.0.1:9/v1", "--output", str(tmp_path / "x"), *args])
    except SystemExit as exc:  # argparse's own check of the value
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "x").exists()
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_signal_during_a_rep_stops_the_group_and_keeps_the_reps_done(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=20)
    out = tmp_path / "g"
    proc = subprocess.Popen([sys.executable, "-m", "loadtest", "single", "--endpoint", s.base_url, "--model",
                             "sim-model", "--num-prompts", "8", "--max-tokens", "10", "--repeat", "4",
                             "--output", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    second = out / "rep-2" / "requests.jsonl"
    while not (second.is_file() and second.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    group = load(out)
    assert group["repeat"]["runs"] == 1 and group["repeat"]["interrupted"] is True
    assert group["run"]["ended"] == "interrupted" and group["counts"]["requests"] == 8
    assert load(out / "rep-2")["run"]["ended"] == "interrupted"
    assert group["repeat"]["dirs"] == ["rep-1"] and group["repeat"]["stopped"] == "rep-2"
    assert not (out / "rep-3").exists()
    # compare reads the group as its completed reps only, and says it was interrupted
    side = load_side(out, "candidate")
    assert [r.path.name for r in side.runs] == ["rep-1"] and side.stopped == ["rep-2"]
    assert side.contamination()[0] == "interrupted (1 of 4 repeats completed; rep-2 stopped by a signal, left out)"


def stopped_in_rep_1(s, out: Path, sig: signal.Signals) -> tuple[int, str, str]:
    """``single --repeat 3`` signalled once rep-1 holds records: (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "loadtest", "single", "--endpoint", s.base_url, "--model",
                             "sim-model", "--num-prompts", "20", "--max-tokens", "10", "--repeat", "3",
                             "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    first = out / "rep-1" / "requests.jsonl"
    deadline = time.monotonic() + 60
    while not (first.is_file() and first.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    got, err = proc.communicate(timeout=60)
    return proc.returncode, got, err


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_rep_1_still_writes_the_group_which_measured_nothing(sim, tmp_path, capsys, sig, code):
    """It wrote no group summary at all: report then showed rep-1's partial numbers as the group's
    and compare took rep-1 as a repeat."""
    s = sim(ttft_ms=5, tpot_ms=20)
    out = tmp_path / "g"
    got, stdout, err = stopped_in_rep_1(s, out, sig)
    assert got == code and "Traceback" not in err, err
    group, rep1 = load(out), load(out / "rep-1")
    assert rep1["run"]["ended"] == "interrupted" and rep1["counts"]["requests"] >= 1
    assert group["run"]["ended"] == "interrupted" and group["repeat"]["interrupted"] is True
    assert (group["repeat"]["runs"], group["repeat"]["dirs"], group["repeat"]["stopped"]) == (0, [], "rep-1")
    assert group["counts"]["requests"] == 0 and group["metrics"]["output_tokens_per_s"] is None  # not measured
    assert group["repeat"]["metrics"] == {} and not (out / "rep-2").exists()
    assert "interrupted: no run completed, the group measured nothing" in stdout
    capsys.readouterr()
    assert main(["report", str(out)]) == 0  # the group stands for its reps: one row, 0 requests
    table = capsys.readouterr().out
    assert "sim-model" in table and " 0 " in table
    with pytest.raises(ConfigError, match="no finished repeat .rep-1 interrupted by a signal"):
        load_side(out, "candidate")


def test_the_api_key_is_in_no_file_of_the_group(sim, tmp_path, capsys):
    key = "sk-repeat-secret-0123456789"
    s = sim(ttft_ms=2, tpot_ms=1, api_key=key)
    out = tmp_path / "g"
    assert repeat(s, out, "--repeat", "2", "--api-key", key, n=2) == 0
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err
    for path in out.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
