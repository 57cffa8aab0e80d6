"""`loadtest tokens` against the test server: exact lengths, rates as configured, and the sweep's
timeout, early-stop, skip and context rules on a server slowed on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.series.prefill_decode import expected_speed, scenario_timeout, EXPECTED_PP, EXPECTED_TG


def sweep(server: Any, out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["tokens", "--endpoint", server.base_url, "--output", str(out), "--quiet", *args])
    doc = json.loads((out / "tokens.json").read_text())
    return code, doc


def by_test(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["test"]: s for s in doc["scenarios"]}


def test_timeouts_follow_the_tables() -> None:
    assert scenario_timeout(16, EXPECTED_PP, 1.0, 0.0) == 8.0
    assert scenario_timeout(4096, EXPECTED_PP, 2.0, 0.4) == pytest.approx(4096 / 250 * 2 + 0.4)
    assert scenario_timeout(128, EXPECTED_TG, 1.0, 0.0) == pytest.approx(25.6)
    assert expected_speed(2048, EXPECTED_PP) == 50 and expected_speed(8, EXPECTED_PP) == 2


def test_the_sweep_stops_when_the_smallest_size_times_out(sim: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # pp16 gets 8 s x 0.02 = 0.16 s; the server needs 16 / 20 = 0.8 s of prefill: a timeout.
    server = sim(ttft_ms=1, tpot_ms=1, prefill_tokens_per_s=20)
    code, doc = sweep(server, tmp_path, "--prompt-tokens", "16,128", "--gen-tokens", "16,128",
                      "--repeat", "3", "--timeout-scale", "0.02", "--warmup", "0")
    assert code == 2
    s = by_test(doc)
    assert s["pp16"]["status"] == "failed" and "timeout" in s["pp16"]["reason"]
    rows = [json.loads(x) for x in (tmp_path / "pp16" / "requests.jsonl").read_text().splitlines()]
    assert rows[0]["error_kind"] == "timeout" and len(rows) <= 2  # stopped at the first failure, not 3 timeouts
    for test in ("pp128", "tg16", "tg128"):
        assert s[test]["status"] == "skipped" and s[test]["reason"] == "stopped: the smallest size pp16 failed"
    assert "smallest size pp16 failed" in capsys.readouterr().err


def test_an_existing_sweep_is_not_overwritten(sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = sim(ttft_ms=1, tpot_ms=0.2)
    args = ["--prompt-tokens", "16", "--gen-tokens", "16", "--repeat", "1"]
    assert sweep(server, tmp_path, *args)[0] == 0
    assert main(["tokens", "--endpoint", server.base_url, "--output", str(tmp_path), "--quiet", *args]) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    assert sweep(server, tmp_path, *args, "--overwrite")[0] == 0


def test_a_failed_larger_size_skips_the_ones_above_it(sim: Any, tmp_path: Path) -> None:
    # The 4th generation request fails (HTTP 500): probe pp16, pp16, probe pp128, then pp128 itself.
    server = sim(ttft_ms=1, tpot_ms=0.2, fail_status=500, fail_every=4)
    code, doc = sweep(server, tmp_path, "--prompt-tokens", "16,128,512,1024", "--gen-tokens", "16",
                      "--repeat", "1", "--warmup", "0")
    s = by_test(doc)
    assert code == 0 and s["pp16"]["status"] == "ok"
    assert s["pp128"]["status"] == "failed" and "server_error" in s["pp128"]["reason"]
    assert s["pp512"]["status"] == s["pp1024"]["status"] == "skipped"
    assert s["pp512"]["reason"] == s["pp1024"]["reason"] == "pp128 failed"
    assert s["tg16"]["status"] == "ok"  # the other kind still runs


@pytest.mark.parametrize("args, text", [
    ([], "--endpoint is required"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--prompt-tokens", "16,x"], "expected comma-separated token counts"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--gen-tokens", "0"], "token counts must be >= 1"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--repeat", "0"], "argument --repeat: must be >= 1"),
])
def test_bad_options_are_one_line(args: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["tokens", *args, "--output", str(tmp_path / "o")])
    except SystemExit as exc:  # argparse's own errors (one line, see cli._Parser)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tokens", "--endpoint", "http://127.0.0.1:9/v1", "--prompt-tokens", "16", "--gen-tokens", "16",
                 "--output", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "smallest size pp16 failed" in err and len(err.strip().splitlines()) == 1
