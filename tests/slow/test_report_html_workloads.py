"""The HTML report of embeddings, transcription and chat runs side by side in a real headless
Chromium: the workload columns lay out and the page logs nothing to the browser's console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_report_html import CHROMIUM
from test_report_html_server import _console

from loadtest.cli.main import main

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")


def test_workload_columns_render_without_console_errors(sim: Any, tmp_path: Path) -> None:
    s = sim(ttft_ms=5, tpot_ms=2, prefill_tokens_per_s=10_000, audio_tokens_per_s=50, transcript_words_per_s=3)
    runs = tmp_path / "runs"
    for name, extra in (("emb", ["--api", "embeddings"]), ("asr", ["--api", "transcriptions", "--audio-seconds", "2"]),
                        ("chat", ["--max-tokens", "8"])):
        assert main(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "6",
                     "--concurrency", "2", *extra, "--output", str(runs / name), "--quiet"]) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(runs), "--by", "run", "--format", "html", "--output", str(page)]) == 0
    dom, messages = _console(tmp_path, page)
    assert messages == []
    for label in ("inputs/s", "prompt tok/s", "RTFx mean", "audio s/s", "TTFT p50 ms"):
        assert f"<th>{label}</th>" in dom
    assert "<th>docs/s</th>" not in dom and "<th>images/s</th>" not in dom
