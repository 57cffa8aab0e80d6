"""One line, never a traceback (docs/faults.md), round two: empty path arguments (Path('') is the
current directory), summaries whose fields have the wrong types, the level lists of sweep and
tokens, and a scale-out schedule too large to deal. Against the sim where a run is needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.scaleout.share import MAX_DEALT_STARTS

pytestmark = pytest.mark.timeout(120)
NOWHERE = ["--endpoint", "http://127.0.0.1:9/v1", "--model", "m"]


@pytest.fixture
def saved_run(sim, tmp_path_factory) -> Path:
    """A finished four-request run."""
    s = sim(ttft_ms=1, tpot_ms=1, output_tokens=4)
    out = tmp_path_factory.mktemp("saved") / "run"
    assert main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "4",
                 "--max-tokens", "4", "--quiet", "--output", str(out)]) == 0
    return out


# -- an empty path is not the current directory -------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["report", ""], "argument RUN_DIR: is empty"),
    (["report", "RUN", " "], "argument RUN_DIR: is empty"),
    (["compare", "RUN", ""], "argument CANDIDATE: is empty"),
    (["compare", "", "RUN"], "argument BASELINE: is empty"),
    (["rerun", ""], "argument DIR: is empty"),
    (["validate", ""], "argument FILE: is empty"),
    (["run", ""], "argument FILE: is empty"),
    (["throughput", "--resume", "", *NOWHERE, "--concurrency", "1"], "argument --resume: is empty"),
    (["engine", "install", "--dir", "", "llamacpp"], "argument --dir: is empty"),
])
def test_an_empty_path_is_refused(refused, saved_run, tmp_path, monkeypatch, argv, says):
    """``report ''`` reported the run in the current directory (exit 0); now one line, exit 2."""
    monkeypatch.chdir(saved_run)  # the current directory is a run: '' must not mean it
    refused([str(saved_run) if a == "RUN" else a for a in argv], tmp_path / "out", says)


# -- a summary whose fields have the wrong types ------------------------------------------------

@pytest.mark.parametrize("counts", [
    {"completed": "many", "failed": 0}, {"completed": [1], "failed": 0}, {"completed": {"a": 1}, "failed": 0},
    {"completed": True, "failed": 0}, {"completed": -3, "failed": 0}, None, "counts", [1, 2],
])
def test_report_reads_a_count_of_the_wrong_type_as_not_measured(saved_run, tmp_path, capsys, counts):
    """A string count was an internal error (int('many')), a missing one read as 0 requests."""
    summary = json.loads((saved_run / "summary.json").read_text())
    summary["counts"] = counts
    (saved_run / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(saved_run)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    header, _, row = out.splitlines()[3:6]
    cells = dict(zip([h.strip() for h in header.split("  ") if h.strip()], row.split()))
    assert cells["requests"] == "-" and cells["errors %"] == "-"
    assert cells["req/min"] != "-"  # the rest of the summary is still read


# -- level lists ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["sweep", "--concurrency", "1,,2"], "--concurrency: an empty level in '1,,2'"),
    (["sweep", "--request-rate", "1,2,"], "--request-rate: an empty level"),
    (["sweep", "--concurrency", "99999999999999999999999"], "is past 64 bits"),
    (["sweep", "--concurrency", "1000000000"], "ulimit -n"),
    (["sweep", "--concurrency", "0"], "each level must be a whole number > 0"),
    (["sweep", "--request-rate", "1e400"], "each level must be a finite number > 0"),
    (["tokens", "--prompt-tokens", "16,,128"], "expected comma-separated token counts"),
    (["tokens", "--prompt-tokens", "99999999999999999999999"], "token counts must be at most 10,000,000"),
    (["tokens", "--gen-tokens", "10000001"], "token counts must be at most 10,000,000"),
    (["tokens", "--timeout-scale", "inf"], "argument --timeout-scale: must be a finite number"),
    (["tokens", "--timeout-scale", "nan"], "argument --timeout-scale: must be a finite number"),
    (["tokens", "--repeat", "-5"], "argument --repeat: must be >= 1"),
])
def test_level_lists_are_checked_before_the_first_level(refused, tmp_path, argv, says):
    """'1,,2' was read as 1,2; a level past 64 bits was an internal error (orjson); a 10^23-token
    prompt was built and sent; --timeout-scale inf was taken."""
    refused([*argv, *NOWHERE, "--output", str(tmp_path / "out")], tmp_path / "out", says)


# -- what scale-out would build in memory up front -----------------------------------------------

@pytest.mark.parametrize("amount", [["--num-prompts", str(10 ** 12)], ["--duration", "1e6"]])
def test_a_schedule_too_large_to_deal_is_refused(refused, tmp_path, amount):
    """--workers deals an open loop's whole schedule first: 10^12 starts ran until memory ran out."""
    refused(["throughput", *NOWHERE, "--request-rate", "1e6", *amount, "--workers", "2",
             "--output", str(tmp_path / "out")], tmp_path / "out", f"is more than {MAX_DEALT_STARTS:,}")


def test_a_huge_closed_loop_count_is_not_held_in_memory():
    """A closed loop's indices are a range: 10^12 requests over 2 workers cost nothing to deal."""
    from loadtest.scaleout.share import Share

    assert len(Share(0, 2, 1).closed_indices(0, 10 ** 12)) == 5 * 10 ** 11


def test_the_refusals_leave_the_current_directory_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["report", ""])
    assert os.listdir(tmp_path) == []
