"""Issue #26, the last leftovers: rerun of a recipe that is unbounded or out of its options' ranges,
a multi-turn session's turn stopped during a 429 retry wait (its 429s kept), --api transcriptions
against hostile usage. Against the test server on loopback."""

from __future__ import annotations

import json
import shutil

import pytest

from loadtest.errors import LoadtestError
from loadtest.report.make import make_report

pytestmark = pytest.mark.timeout(60)


# -- a session's turn cancelled at the deadline during a rate-limit retry wait -------------------------

def test_session_turn_stopped_in_a_retry_wait_keeps_its_429s(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1, rate_limit_every=3, retry_after_s=5)  # every 3rd arrival: 429, wait 5 s
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "4",
                               "--dataset", "synthetic", "--prompt-tokens", "8", "--turns", "3", "--concurrency", "1",
                               "--duration", "1"], tmp_path / "out")
    assert code == 0
    stopped = [r for r in rows if r.get("error_kind") == "cancelled"]
    assert len(stopped) == 1, rows
    rec = stopped[0]
    assert rec["session_id"] is not None and rec["turn"] >= 1  # a later turn of a session
    assert rec["rate_limited"] == 1 and rec["attempts"] == 1 and 0 < rec["retry_wait_s"] <= 5
    assert sum(r["rate_limited"] for r in rows) == s.stats()["rate_limited"] == 1



# -- rerun: a recipe must describe a bounded run, each option within its command-line range ------------

@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    """(the test server, a finished three-request single run against it)."""
    from loadtest.cli.main import main
    from loadtest.sim.process import start_sim

    s = start_sim(ttft_ms=1, tpot_ms=1, output_tokens=4)
    out = tmp_path_factory.mktemp("saved") / "run"
    try:
        assert main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "3",
                     "--max-tokens", "4", "--quiet", "--output", str(out)]) == 0
        yield s, out
    finally:
        s.stop()


def _spoilt(run, tmp_path, **changes):
    """A copy of the run directory whose recipe (summary.json's config) has ``changes``."""
    import shutil

    copy = tmp_path / "spoilt"
    shutil.copytree(run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["config"].update(changes)
    (copy / "summary.json").write_text(json.dumps(summary))
    return copy


@pytest.mark.parametrize("changes, says", [
    ({"num_prompts": None, "duration_s": None}, "a recipe must describe a bounded run"),
    ({"concurrency": -5}, "concurrency (--concurrency) is -5: must be >= 1"),  # a single run has no --concurrency
    ({"concurrency": 0}, "concurrency (--concurrency) is 0: must be >= 1"),
    ({"num_prompts": 0}, "num_prompts (--num-prompts) is 0: must be >= 1"),
    ({"num_prompts": None, "duration_s": 0.0}, "duration_s (--duration) is 0.0: must be > 0"),  # ran without end
    ({"num_prompts": None, "duration_s": 0.01}, "duration_s (--duration) is 0.01: must be 0.1 s or more"),
    ({"max_tokens": -1}, "max_tokens (--max-tokens) is -1: must be >= 1"),
    ({"timeout_s": 0}, "timeout_s (--timeout) is 0: must be > 0"),
    ({"request_rate": -2.5}, "request_rate (--request-rate) is -2.5: rate must be > 0"),
    ({"max_retries": 2 ** 63}, "max_retries (--max-retries) is 9223372036854775808: "),
    ({"images": -1}, "images (--images) is -1: must be an integer >= 0"),
])
def test_rerun_refuses_an_unbounded_or_out_of_range_recipe(served_run, tmp_path, refused, changes, says):
    _, run = served_run
    refused(["rerun", str(_spoilt(run, tmp_path, **changes))], tmp_path / "again", says)


def test_rerun_refuses_a_non_finite_number(served_run, tmp_path, refused):
    _, run = served_run
    copy = _spoilt(run, tmp_path)
    text = (copy / "summary.json").read_text()
    (copy / "summary.json").write_text(text.replace('"timeout_s": 600.0', '"timeout_s": 1e999'))
    refused(["rerun", str(copy)], tmp_path / "again", "not valid JSON")


def test_rerun_ignores_a_corrupt_requests_file(served_run, tmp_path):
    """The recipe is summary.json's config: the records are not read, so their corruption cannot matter."""
    from loadtest.cli.main import main

    s, run = served_run
    copy = _spoilt(run, tmp_path)
    (copy / "requests.jsonl").write_bytes(b'{"bad\n\x00garbage')
    assert main(["rerun", str(copy), "--endpoint", s.base_url, "--quiet", "--output", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["counts"]["completed"] == 3


# -- --api transcriptions against hostile usage ------------------------------------------------------

@pytest.mark.parametrize("usage, field", [
    ({"type": "tokens", "input_tokens": 12, "output_tokens": "ten", "total_tokens": 22}, "usage.output_tokens"),
    ({"type": "tokens", "input_tokens": 12, "output_tokens": -3, "total_tokens": 9}, "usage.output_tokens"),
    ({"type": "tokens", "input_tokens": 10 ** 30, "output_tokens": 4, "total_tokens": 4}, "usage.input_tokens"),
])
def test_transcriptions_with_hostile_usage_complete_and_say_so(cli, tmp_path, usage, field):
    """A non-streamed transcription whose usage holds a count that is not one: the run completes,
    each record names the field in usage_invalid, and the count is not taken (None, never the raw value)."""
    from faultserver import response, serve

    body = json.dumps({"text": "hello there world", "usage": usage}).encode()

    def behaviour(server, sock, n, head):
        sock.sendall(response(200, body))

    with serve(behaviour) as server:
        code, summary, rows = cli(["single", "--endpoint", server.base_url, "--model", "whisper", "--api",
                                   "transcriptions", "--no-stream", "--audio-seconds", "1", "--num-prompts", "3"],
                                  tmp_path / "out")
    assert code == 0 and summary["counts"]["completed"] == 3
    assert all(r["ok"] and field in (r["usage_invalid"] or {}) for r in rows), rows
    key = {"usage.output_tokens": "completion_tokens", "usage.input_tokens": "prompt_tokens"}[field]
    assert all(key in r and r[key] != usage[field.split(".")[1]] for r in rows)


# -- report --format csv|markdown|json|html over wrong-typed summary fields ----------------------------

@pytest.mark.parametrize("section, name, value", [
    ("metrics", "ttft_s", "x"), ("metrics", "e2e_s", [1]), ("counts", "completed", None),
    ("counts", "failed", {"a": 1}), ("run", "model", [1]), ("config", "concurrency", "x"),
])
def test_report_formats_survive_a_wrong_typed_field(served_run, tmp_path, section, name, value):
    """The renderers in-process (the slow test runs the table over every field): each format gives
    its text, or one ConfigError line, never an internal error."""
    _, run = served_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary[section][name] = value
    (copy / "summary.json").write_text(json.dumps(summary))
    for fmt in ("csv", "markdown", "json", "html"):
        try:
            assert make_report([copy], by=["model"], fmt=fmt, output=None, plots=None)
        except LoadtestError:
            pass
