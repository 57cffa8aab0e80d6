"""loadtest compare's parts in-process: reading sides (runs, repeat groups, older summaries),
the settings guard, contamination, the verdicts on fabricated runs of known distributions, the
--fail-if grammar and the four output formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.compare.analyze import BETTER, SAME, UNTESTED, WORSE, compare_sides
from loadtest.compare.gate import parse_rule
from loadtest.compare.make import make_comparison
from loadtest.compare.sides import VARIED, differences, load_side
from loadtest.errors import ConfigError
from loadtest.stats.significance import welch_t

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
OLD_A = FIXTURES / "compare" / "llamacpp-smollm2" / "single"  # written by an earlier version: no verdict
OLD_B = FIXTURES / "compare" / "transformers-smollm2" / "single"

CONFIG = {"command": "throughput", "api": "chat", "stream": True, "dataset": "builtin", "max_tokens": 16,
          "ignore_eos": False, "temperature": None, "concurrency": 4, "request_rate": None, "arrival": "poisson",
          "seed": 0, "api_key": None}


def write_run(path: Path, ttft: np.ndarray, *, tpot: float = 0.005, tokens: int = 16, failed: int = 0,
              rate: float | None = None, config: dict[str, Any] | None = None, verdict: dict[str, Any] | None = None,
              version: str = "0.1.0") -> Path:
    """A run directory as a run writes it: requests.jsonl (chunk offsets included) and summary.json."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, t in enumerate(ttft):
        offsets = [float(t) + k * tpot for k in range(tokens)]
        e2e = offsets[-1]
        rows.append({"id": i, "ok": True, "error_kind": None, "start_s": i * 0.1, "end_s": i * 0.1 + e2e,
                     "ttft_s": float(t), "tpot_s": tpot, "e2e_s": e2e, "tokens_per_s": tokens / e2e,
                     "completion_tokens": tokens, "chunk_offsets_s": offsets, "chunk_tokens": [1.0] * tokens,
                     "warmup": False})
    for j in range(failed):
        rows.append({"id": len(ttft) + j, "ok": False, "error_kind": "http_500", "start_s": 0.0, "end_s": 0.01,
                     "ttft_s": None, "e2e_s": None, "warmup": False})
    rows.append({"id": 10_000, "ok": False, "error_kind": "cancelled", "start_s": 0.0, "warmup": False})
    (path / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    window = max(r["end_s"] for r in rows if r.get("end_s")) or 1.0
    summary = {"schema_version": 1, "command": "throughput", "config": {**CONFIG, **(config or {})},
               "client": {"loadtest_version": version},
               "counts": {"requests": len(rows), "completed": len(ttft), "failed": failed, "cancelled": 1},
               "metrics": {"output_tokens_per_s": rate if rate is not None else len(ttft) * tokens / window,
                           "requests_per_min": 60 * len(ttft) / window,
                           "ttft_s": {"p50": float(np.percentile(ttft, 50))}},
               "run": {}, "verdict": verdict or {"labels": [], "client_bound": False, "disturbed": False,
                                                 "server_saturated": False, "reasons": []}}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def lognormal(seed: int, n: int, median: float, sigma: float = 0.2) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0, sigma, n))


def result(comparison: Any, key: str) -> Any:
    return next(r for r in comparison.results if r.metric.key == key)


# -- reading the sides -------------------------------------------------------------------------------
def test_a_run_a_group_and_what_is_neither(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", lognormal(1, 30, 0.05))
    side = load_side(run, "baseline")
    assert not side.group and len(side.runs) == 1 and side.describe().endswith("(1 run, 31 requests)")
    group = tmp_path / "group"
    for k in (1, 2, 10):
        write_run(group / f"rep-{k}", lognormal(k, 20, 0.05))
    (group / "rep-3").mkdir()  # an unfinished repeat: no summary.json
    (group / "summary.json").write_text('{"repeat": {"n": 4}}')  # the group's own summary is not needed
    side = load_side(group, "candidate")
    assert side.group and [r.label for r in side.runs] == ["rep-1", "rep-2", "rep-10"] and side.left_out == ["rep-3"]
    assert load_side(run / "summary.json", "baseline").path == run
    for bad, message in ((tmp_path / "nope", "no such file"), (tmp_path, "neither a run directory"),
                         (run / "requests.jsonl", "not a run directory")):
        with pytest.raises(ConfigError, match=message):
            load_side(bad, "baseline")
    (tmp_path / "empty" / "rep-1").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no finished repeat"):
        load_side(tmp_path / "empty", "baseline")


def test_settings_guard_names_what_differs(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 20, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 20, 0.05), config={"max_tokens": 32, "seed": 3, "stream": False},
                  version="0.2.0")
    differ, _ = differences(load_side(a, "baseline"), load_side(b, "candidate"))
    assert [(n, x, y) for n, x, y in differ] == [("stream", True, False), ("max_tokens", 16, 32), ("seed", 0, 3),
                                                 ("loadtest version", "0.1.0", "0.2.0")]
    with pytest.raises(ConfigError) as err:
        make_comparison(a, b)
    assert str(err.value).startswith("baseline and candidate differ in stream (True vs False); max_tokens (16 vs 32)")
    assert "--allow-different" in str(err.value) and "\n" not in str(err.value)
    made = make_comparison(a, b, allow_different=True)
    assert "settings differ (compared anyway, --allow-different): stream True vs False" in made.text
    with pytest.raises(ConfigError, match="the same directory"):
        make_comparison(a, a)


def test_a_setting_one_side_did_not_record_is_not_a_difference(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 20, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 20, 0.05), config={"arrival": None})
    made = make_comparison(a, b)
    assert "settings recorded by one side only (an older version), not checked: arrival" in made.text


def test_a_group_whose_repeats_drew_new_seeds_has_a_varied_seed(tmp_path: Path) -> None:
    for k in (1, 2):
        write_run(tmp_path / "g" / f"rep-{k}", lognormal(k, 20, 0.05), config={"seed": k})
    assert load_side(tmp_path / "g", "baseline").setting("seed") == VARIED


def test_runs_saved_by_an_earlier_version_compare(capsys: pytest.CaptureFixture[str]) -> None:
    """The fixtures predate verdicts, SLOs and most config keys: read with defaults, never a crash."""
    assert main(["compare", str(OLD_A), str(OLD_B), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = {r["key"]: r for r in out["results"]}
    assert by["ttft_s:p50"]["verdict"] == "worse" and by["tpot_s:p50"]["verdict"] == "worse"
    assert by["output_tokens_per_s"]["verdict"] == "untested"  # one run a side
    assert "goodput_requests_per_min" not in by


def test_metrics_a_side_did_not_measure_are_not_compared(tmp_path: Path) -> None:
    """An embeddings-like run: no TTFT, no chunks, no tokens: those metrics are left out, not zero."""
    a = write_run(tmp_path / "a", lognormal(1, 30, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 30, 0.05))
    for d in (a, b):
        rows = [json.loads(line) for line in (d / "requests.jsonl").read_text().splitlines()]
        for r in rows:
            r.update(ttft_s=None, tpot_s=None, chunk_offsets_s=None, chunk_tokens=None)
        (d / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = compare_sides(load_side(a, "baseline"), load_side(b, "candidate"))
    keys = {r.metric.key for r in c.results}
    assert not keys & {"ttft_s:p50", "tpot_s:p50", "itl_s:p50"} and "e2e_s:p50" in keys
    assert any(n.startswith("not measured on both sides (not compared): ") and "ttft_s, tpot_s, itl_s" in n
               for n in c.notes)


# -- verdicts on known distributions -----------------------------------------------------------------
def test_a_ten_percent_ttft_shift_is_worse_and_its_interval_holds_the_truth(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 400, 0.050))
    b = write_run(tmp_path / "b", lognormal(2, 400, 0.055))
    c = compare_sides(load_side(a, "baseline"), load_side(b, "candidate"))
    r = result(c, "ttft_s:p50")
    assert r.verdict == WORSE and r.test == "Mann-Whitney U" and r.ci[0] < 10.0 < r.ci[1]
    assert r.baseline == pytest.approx(np.percentile(lognormal(1, 400, 0.050), 50))
    assert result(c, "tpot_s:p50").verdict == SAME  # the TPOT did not change
    assert result(c, "ttft_s:p99").why.startswith("p99 needs 500 values a side")
    assert result(c, "ttft_s:p90").test == "bootstrap"


def test_identical_samples_are_no_significant_difference(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 200, 0.05))
    b = write_run(tmp_path / "b", lognormal(1, 200, 0.05))
    c = compare_sides(load_side(a, "baseline"), load_side(b, "candidate"))
    assert all(r.verdict in (SAME, UNTESTED) for r in c.results)
    assert result(c, "ttft_s:p50").p == pytest.approx(1.0, abs=0.01)


def test_rates_need_repeats_and_then_get_welch(tmp_path: Path) -> None:
    one_a = write_run(tmp_path / "one-a", lognormal(1, 30, 0.05), rate=1000.0)
    one_b = write_run(tmp_path / "one-b", lognormal(2, 30, 0.05), rate=1100.0)
    c = compare_sides(load_side(one_a, "baseline"), load_side(one_b, "candidate"))
    r = result(c, "output_tokens_per_s")
    assert r.verdict == UNTESTED and r.change == pytest.approx(10.0) and r.p is None
    assert "one run per side" in r.why
    rates_a, rates_b = [1000.0, 1010.0, 990.0], [1100.0, 1105.0, 1095.0]
    for k, (ra, rb) in enumerate(zip(rates_a, rates_b), 1):
        write_run(tmp_path / "ga" / f"rep-{k}", lognormal(k, 30, 0.05), rate=ra)
        write_run(tmp_path / "gb" / f"rep-{k}", lognormal(10 + k, 30, 0.05), rate=rb)
    c = compare_sides(load_side(tmp_path / "ga", "baseline"), load_side(tmp_path / "gb", "candidate"))
    r = result(c, "output_tokens_per_s")
    w = welch_t(rates_a, rates_b)
    assert r.test == "Welch t" and r.p == pytest.approx(w.p) and r.verdict == BETTER
    assert r.ci == pytest.approx((w.ci[0] / 10.0, w.ci[1] / 10.0))  # percent of the baseline's 1000
    assert "blocked by run" in c.notes[1]


def test_error_rate_in_points_with_fisher(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 100, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 100, 0.05), failed=25)
    c = compare_sides(load_side(a, "baseline"), load_side(b, "candidate"))
    r = result(c, "error_rate")
    assert r.n == (100, 125)  # the cancelled request counts on neither side
    assert r.change == pytest.approx(20.0) and r.test == "Fisher exact" and r.verdict == WORSE


def test_a_contaminated_side_is_flagged(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 30, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 30, 0.05), verdict={
        "labels": ["disturbed"], "disturbed": True, "client_bound": False, "server_saturated": False,
        "reasons": ["other processes used 0.80 cores on average (> 0.5) of 2"]})
    made = make_comparison(a, b)
    why = "disturbed (other processes used 0.80 cores on average (> 0.5) of 2)"
    assert made.comparison.contaminated == {"candidate": [why]}
    assert "CONTAMINATED candidate: disturbed" in made.text and made.summary_line().endswith("contaminated: candidate")


def test_an_interrupted_run_is_flagged_and_an_interrupted_rep_is_left_out(tmp_path: Path) -> None:
    """A run a signal stopped was compared as if it were whole, and a group's interrupted rep was
    taken as one of its repeats."""
    a = write_run(tmp_path / "a", lognormal(1, 30, 0.05))
    b = write_run(tmp_path / "b", lognormal(2, 30, 0.05))
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**summary, "run": {"ended": "interrupted"}}))
    made = make_comparison(a, b)
    assert made.comparison.contaminated == {"candidate": ["interrupted (stopped by a signal after 31 requests)"]}
    g = tmp_path / "g"
    for k in (1, 2):
        write_run(g / f"rep-{k}", lognormal(1, 30, 0.05))
    shutil.copytree(b, g / "rep-3")
    side = load_side(g, "baseline")
    assert [r.path.name for r in side.runs] == ["rep-1", "rep-2"] and side.stopped == ["rep-3"]
    assert side.contamination() == ["interrupted (2 repeats completed; rep-3 stopped by a signal, left out)"]
    made = make_comparison(g, a)
    assert "baseline: rep-3 left out (interrupted by a signal: partial, not a measurement)" in made.comparison.notes


# -- --fail-if -----------------------------------------------------------------------------------------
def test_fail_if_grammar() -> None:
    r = parse_rule("ttft:p99>+5%")
    assert (r.metric.key, r.op, r.threshold) == ("ttft_s:p99", ">", 5.0)
    r = parse_rule(" output_tokens_per_s < -3% ")
    assert (r.metric.key, r.op, r.threshold) == ("output_tokens_per_s", "<", -3.0)
    assert parse_rule("error_rate>+1pp").metric.points and parse_rule("errors>0.5%").threshold == 0.5
    assert parse_rule("e2e_s:p50>10%").metric.key == "e2e_s:p50" and parse_rule("goodput<-2%").metric.kind == "rate"
    for bad, message in (("ttft>5%", "ttft needs a statistic: ttft:p50, ttft:p90, ttft:p99"),
                         ("ttft:p99>5", "give the threshold with its unit"), ("foo:p50>1%", "unknown metric 'foo'"),
                         ("ttft:p95>1%", "no statistic 'p95'"), ("output_tokens_per_s:p50<1%", "one number per run"),
                         ("ttft:p99>+5pp", r"pp \(percentage points\) is for error_rate"), ("ttft p99 up", "expected")):
        with pytest.raises(ValueError, match=message):
            parse_rule(bad)


def test_a_bad_rule_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(["compare", str(OLD_A), str(OLD_B), "--fail-if", "ttft>5%"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("loadtest: error: argument --fail-if: ttft needs a statistic: ttft:p50, ttft:p90, ttft:p99 "
                    "(see loadtest compare --help)")]


def _exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_gate_exit_codes_and_untestable_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 400, 0.050))
    b = write_run(tmp_path / "b", lognormal(2, 400, 0.055))
    assert main(["compare", str(a), str(b), "--fail-if", "ttft:p50>+5%"]) == 3
    assert "ttft:p50>+5%: FAILED: +" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--fail-if", "ttft:p50>+25%", "--fail-if", "tpot:p50>+1%"]) == 0
    assert main(["compare", str(a), str(b), "--fail-if", "ttft:p50<-5%"]) == 0  # the other direction
    assert main(["compare", str(a), str(b), "--fail-if", "output_tokens_per_s<-3%",
                 "--fail-if", "goodput<-1%"]) == 0
    err = capsys.readouterr().err
    assert "output_tokens_per_s<-3%: not tested (one run per side" in err
    assert "goodput<-1%: not measured on both sides, cannot be checked" in err


# -- output formats ------------------------------------------------------------------------------------
def test_formats(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 400, 0.050))
    b = write_run(tmp_path / "b", lognormal(2, 400, 0.055))
    rules = [parse_rule("ttft:p50>+5%"), parse_rule("e2e:p50>+50%")]
    table = make_comparison(a, b, rules=rules).text
    assert table.startswith("compare: baseline ") and "TTFT p50 (ms)" in table and "gate FAILED" in table
    md = make_comparison(a, b, rules=rules, fmt="markdown").text
    assert md.startswith("### loadtest compare") and "**Gate: FAILED**" in md and "| metric" in md
    assert "**worse**" in md and "<details><summary>method</summary>" in md
    data = json.loads(make_comparison(a, b, rules=rules, fmt="json").text)
    assert data["gate_failed"] is True and [g["breached"] for g in data["gate"]] == [True, False]
    ttft = next(r for r in data["results"] if r["key"] == "ttft_s:p50")
    assert ttft["verdict"] == "worse" and ttft["change_unit"] == "percent" and ttft["baseline"] < ttft["candidate"]
    root = ET.fromstring(make_comparison(a, b, rules=rules, fmt="junit").text.split("\n", 1)[1])
    suite = root.find("testsuite")
    cases = suite.findall("testcase")  # type: ignore[union-attr]
    assert len(cases) == len(data["results"]) and suite.get("failures") == "1"  # type: ignore[union-attr]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert failed == ["ttft_s:p50"] and "output_tokens_per_s" in skipped


def test_the_cli_offers_the_formats_render_writes() -> None:
    from loadtest.cli.compare import FORMATS as CLI_FORMATS
    from loadtest.compare.render import FORMATS

    assert CLI_FORMATS == FORMATS  # kept apart so that --help imports no numpy


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "compare.xml"
    assert main(["compare", str(OLD_A), str(OLD_B), "--format", "junit", "--output", str(out)]) == 0
    assert out.read_text().startswith("<?xml") and capsys.readouterr().out == ""


def test_the_same_inputs_give_the_same_output(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", lognormal(1, 100, 0.050))
    b = write_run(tmp_path / "b", lognormal(2, 100, 0.052))
    assert make_comparison(a, b, fmt="json").text == make_comparison(a, b, fmt="json").text
    shutil.rmtree(tmp_path / "a")
