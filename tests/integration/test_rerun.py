"""``loadtest rerun DIR`` against the test server: the server's own log (--log-chunks: each request
body's SHA-256 as received, and when it was received) proves the rerun sent the same bytes, in the
same order one at a time, the same multiset under concurrency."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from loadtest.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-rerun-secret-9876543210"


def bodies(log: Path) -> list[str]:
    """Request body hashes in the order the server received them."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line["body_sha256"] for line in sorted(lines, key=lambda x: x["recv_ns"])]


def load(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "requests.jsonl").read_text().splitlines()]


def servers(sim, tmp_path, **config):
    """Two test servers (the rerun goes to another one), each logging what it received."""
    return [sim(ttft_ms=2, tpot_ms=1, log_chunks=str(tmp_path / f"{name}.jsonl"), **config) for name in "ab"]


def test_rerun_of_single_sends_byte_identical_bodies_in_the_same_order(sim, tmp_path):
    a, b = servers(sim, tmp_path)
    orig, again = tmp_path / "orig", tmp_path / "again"
    assert main(["single", "--endpoint", a.base_url, "--num-prompts", "8", "--max-tokens", "6", "--seed", "3",
                 "--temperature", "0.3", "--extra-body", '{"top_k": 5}',
                 "--output", str(orig), "--quiet"]) == 0
    assert main(["rerun", str(orig), "--endpoint", b.base_url, "--output", str(again), "--quiet"]) == 0
    sent, resent = bodies(tmp_path / "a.jsonl"), bodies(tmp_path / "b.jsonl")
    assert len(sent) == 8 and len(set(sent)) > 1 and resent == sent
    assert [r["prompt_id"] for r in rows(again)] == [r["prompt_id"] for r in rows(orig)]
    first, second = load(orig)["config"], load(again)["config"]
    differ = {k for k in first if first[k] != second.get(k)}
    assert differ == {"base_url", "output_dir", "model"}  # the model: found on /v1/models then, sent as found now
    assert second["model"] == load(orig)["run"]["model"] == "sim-model"


def test_rerun_of_an_open_loop_sends_the_same_bodies_on_the_same_schedule(sim, tmp_path):
    a, b = servers(sim, tmp_path)
    orig, again = tmp_path / "orig", tmp_path / "again"
    assert main(["throughput", "--endpoint", a.base_url, "--model", "sim-model", "--request-rate", "40",
                 "--max-concurrency", "4", "--num-prompts", "16", "--max-tokens", "8", "--seed", "11",
                 "--slo", "ttft=0.5,e2e:p99=2.5", "--slo-attainment", "0.8",
                 "--output", str(orig), "--quiet"]) == 0
    assert main(["rerun", str(orig), "--endpoint", b.base_url, "--output", str(again), "--quiet"]) == 0
    assert Counter(bodies(tmp_path / "b.jsonl")) == Counter(bodies(tmp_path / "a.jsonl"))
    assert len(bodies(tmp_path / "a.jsonl")) == 16
    first, second = (sorted(rows(d), key=lambda r: r["id"]) for d in (orig, again))
    assert [r["prompt_id"] for r in first] == [r["prompt_id"] for r in second]
    gaps = [[r["scheduled_s"] - rs[0]["scheduled_s"] for r in rs] for rs in (first, second)]
    assert gaps[1] == pytest.approx(gaps[0], abs=1e-6)  # the seeded arrivals, not a new draw
    slo = load(again)["slo"]  # judged against the same objectives
    assert slo["objectives"] == ["ttft <= 500 ms", "p99 e2e <= 2.5 s"] and slo["attainment_target"] == 0.8


def test_rerun_of_a_repeat_group_runs_the_group_again(sim, tmp_path):
    a, b = servers(sim, tmp_path)
    orig, again = tmp_path / "orig", tmp_path / "again"
    assert main(["single", "--endpoint", a.base_url, "--num-prompts", "3", "--max-tokens", "4", "--repeat", "2",
                 "--vary-seed", "--seed", "4", "--output", str(orig), "--quiet"]) == 0
    assert main(["rerun", str(orig), "--endpoint", b.base_url, "--output", str(again), "--quiet"]) == 0
    block = load(again)["repeat"]
    assert block["runs"] == 2 and block["seeds"] == [4, 5] and block["vary_seed"] is True
    assert bodies(tmp_path / "b.jsonl") == bodies(tmp_path / "a.jsonl")


def test_the_key_is_given_again_and_written_nowhere(sim, tmp_path, capsys, monkeypatch):
    a, b = servers(sim, tmp_path, api_key=KEY)
    orig, again, without = tmp_path / "orig", tmp_path / "again", tmp_path / "without"
    assert main(["single", "--endpoint", a.base_url, "--api-key", KEY, "--num-prompts", "2", "--max-tokens", "4",
                 "--output", str(orig), "--quiet"]) == 0
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["rerun", str(orig), "--endpoint", b.base_url, "--output", str(again), "--quiet"]) == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["rerun", str(orig), "--endpoint", b.base_url, "--output", str(without), "--quiet"]) != 0
    captured = capsys.readouterr()
    assert "the saved run sent an API key" in captured.err
    assert KEY not in captured.out + captured.err
    for path in (p for d in (orig, again, without) if d.exists() for p in d.rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes(), path


def test_an_older_versions_run_is_rerun_with_its_options(sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1)
    old = tmp_path / "old"
    shutil.copytree(ROOT / "tests" / "fixtures" / "runs" / "compare" / "llamacpp-smollm2" / "single", old)
    summary = load(old)
    summary["config"]["option_from_the_future"] = 1
    (old / "summary.json").write_text(json.dumps(summary))
    assert main(["rerun", str(old), "--output", str(tmp_path / "x"), "--quiet"]) == 2  # its engine is gone
    assert "launched (llamacpp)" in capsys.readouterr().err
    assert main(["rerun", str(old), "--endpoint", s.base_url, "--output", str(tmp_path / "again"), "--quiet"]) == 0
    assert "'option_from_the_future' of the saved run is unknown" in capsys.readouterr().err
    config = load(tmp_path / "again")["config"]
    for key in ("num_prompts", "max_tokens", "seed", "dataset", "api", "stream"):
        assert config[key] == summary["config"][key]


def test_refusals_are_one_line(sim, tmp_path, capsys):
    s = sim(ttft_ms=1, tpot_ms=1)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    orig = tmp_path / "orig"
    assert main(["single", "--endpoint", s.base_url, "--header", "X-Api-Key: hidden-value-1", "--num-prompts", "1",
                 "--max-tokens", "2", "--output", str(orig), "--quiet"]) == 0
    capsys.readouterr()
    for directory, extra, says in ((tmp_path / "nowhere", [], "no such run directory"),
                                   (sweep, [], "is a sweep: rerun one of its levels"),
                                   (orig, [], "give it again with --header 'X-Api-Key: VALUE'")):
        assert main(["rerun", str(directory), *extra, "--output", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["rerun", str(orig), "--header", "X-Api-Key: hidden-value-1", "--output", str(tmp_path / "ok"),
                 "--quiet"]) == 0
