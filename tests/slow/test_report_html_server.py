"""The HTML report with the server's side (issue 23) in a real headless Chromium: the server
columns and the per-run timeline lay out, and the page logs nothing to the browser's console."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from test_report_html import CHROMIUM, FLAGS, _chromium
from test_report_server import write_run

from loadtest.cli.main import main

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")


def _console(tmp_path: Path, page: Path) -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and every message the page logged to its console
    (Chromium writes them to stderr as ':CONSOLE:' lines with --enable-logging=stderr)."""
    assert CHROMIUM is not None
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                          "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, [line for line in out.stderr.splitlines() if ":CONSOLE" in line]


def test_console_messages_are_seen(tmp_path: Path) -> None:
    """The check below can fail: a page that throws is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('broken'); noSuchFunction();</script></body></html>")
    _, messages = _console(tmp_path, bad)
    assert any("broken" in m for m in messages) and any("noSuchFunction" in m for m in messages)


def test_server_report_renders_without_console_errors(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = tmp_path / "runs"
    write_run(runs / "vllm-run")
    write_run(runs / "plain-run", engine="llamacpp", server=False, samples=False)
    page = tmp_path / "report.html"
    assert main(["report", str(runs), "--format", "html", "--output", str(page)]) == 0
    dom, messages = _console(tmp_path, page)
    assert messages == []
    # runs (2 rows), method (2); no requests/min pivot: these runs recorded no requests/min, and a
    # pivot with nothing in it is left out
    assert re.search(r'data-tables="(\d+)"', dom) and int(re.search(r'data-tables="(\d+)"', dom)[1]) == 4
    assert "<th>KV max %</th>" in dom and "<th>prefix hit %</th>" in dom
    figures = dict(re.findall(r'<figure data-plot="([^"]+)"><svg[^>]*data-rendered="(\d+x\d+)"', dom))
    assert sorted(figures) == ["distributions", "latency_throughput", "timeline-vllm-run", "timeseries"]
    width, height = map(int, figures["timeline-vllm-run"].split("x"))
    assert width > 400 and height > 300
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", page.as_uri())
    assert shot.read_bytes()[:4] == b"\x89PNG"
