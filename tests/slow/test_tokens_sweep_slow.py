"""The slowest prefill/decode sweeps of tests/integration/test_tokens_sweep.py (5-9 s each against a
server slowed on purpose), moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from test_tokens_sweep import by_test, sweep


def test_sweep_measures_exact_lengths_and_the_configured_rates(sim: Any, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=2, tpot_ms=4,
                 prefill_tokens_per_s=20000, template_tokens=7, timings=True)
    code, doc = sweep(server, tmp_path, "--prompt-tokens", "16,128,512", "--gen-tokens", "16,64", "--repeat", "3")
    assert code == 0
    s = by_test(doc)
    assert [t["status"] for t in doc["scenarios"]] == ["ok"] * 5
    for test, n in (("pp16", 16), ("pp128", 128), ("pp512", 512)):
        d = Path(s[test]["directory"])
        rows = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines()]
        measured = [r for r in rows if not r["warmup"]]
        assert len(measured) == 3 and all(r["prompt_tokens"] == n for r in measured)  # exact, as the server counts
        summary = json.loads((d / "summary.json").read_text())
        assert summary["prompts"]["usage_exact"] == 3 and summary["config"]["prompt_tokens"] == n
        assert summary["prompts"]["prompt_tokens_cached_mean"] is None  # the sim's timings carry no cache_n
        # prompt tokens / TTFT: the server's first token is due 2 ms + n / 20000 tokens/s after receipt;
        # the client's TTFT adds only loopback and its own stamping (a few ms at most on a busy machine).
        implied_ttft = n / s[test]["tokens_per_s_mean"]
        assert 0.002 + n / 20000 <= implied_ttft < 0.002 + n / 20000 + 0.005
    assert s["tg64"]["tokens_per_s_mean"] == pytest.approx(250, rel=0.05)  # 1 / 4 ms
    # The engine's own figures (the sim's llama.cpp-style timings) beside ours.
    assert s["tg64"]["engine_tokens_per_s_mean"] == pytest.approx(250)
    assert s["pp512"]["engine_tokens_per_s_mean"] == pytest.approx(512 / (0.002 + 512 / 20000))
    assert s["tg64"]["gen_tokens"] == 64 and s["tg64"]["prompt_tokens"] == 16
    assert doc["config"]["repeat"] == 3 and doc["config"]["seed"] == 0 and doc["context_tokens"] is None
    table = capsys.readouterr().out
    assert "pp512" in table and "tg64" in table and "±" in table
    # The directory reads as saved runs: one row per scenario, never pooled across lengths.
    assert main(["report", str(tmp_path), "--format", "json", "--output", str(tmp_path / "r.json")]) == 0


def test_a_slow_server_makes_the_sweep_skip_larger_sizes_and_say_why(sim: Any, tmp_path: Path) -> None:
    # 40 prompt tokens/s: pp16 and pp128 finish within their timeouts (x0.5: 4 s and 6.4 s), but
    # pp512 would need ~13 s against its 10.2 s: it and pp1024 are skipped with the reason.
    server = sim(prompt_tokenizer="cl100k_base", ttft_ms=1, tpot_ms=1, prefill_tokens_per_s=40)
    code, doc = sweep(server, tmp_path, "--prompt-tokens", "16,128,512,1024", "--gen-tokens", "16",
                      "--repeat", "1", "--timeout-scale", "0.5", "--warmup", "0")
    s = by_test(doc)
    assert code == 0
    assert s["pp16"]["status"] == s["pp128"]["status"] == "ok" == s["tg16"]["status"]
    assert s["pp128"]["tokens_per_s_mean"] == pytest.approx(40, rel=0.05)
    for test in ("pp512", "pp1024"):
        assert s[test]["status"] == "skipped" and s[test]["directory"] is None
        # The rate in the reason is the measured one (39.9 on a busy machine), so read it, do not match it.
        reason = re.fullmatch(r"too slow: ([\d.]+) tokens/s at pp128 would take ~(\d+) s for pp512, "
                              r"beyond its 10 s timeout", s[test]["reason"])
        assert reason is not None, s[test]["reason"]
        assert float(reason[1]) == pytest.approx(40, rel=0.05) and 12 <= int(reason[2]) <= 14
    assert not (tmp_path / "pp512").exists()


def test_lengths_beyond_the_context_are_skipped_with_a_note(sim: Any, tmp_path: Path) -> None:
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.5, n_ctx=300)
    code, doc = sweep(server, tmp_path, "--prompt-tokens", "16,128,512", "--gen-tokens", "16,128,512",
                      "--repeat", "2")
    s = by_test(doc)
    assert code == 0 and doc["context_tokens"] == 300
    assert [s[t]["status"] for t in ("pp16", "pp128", "tg16", "tg128")] == ["ok"] * 4
    assert s["pp512"]["status"] == "skipped" and s["pp512"]["reason"] == "beyond the server's context (513 > n_ctx 300 tokens)"
    assert s["tg512"]["status"] == "skipped" and "528 > n_ctx 300" in s["tg512"]["reason"]
