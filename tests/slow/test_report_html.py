"""`loadtest report --format html` opened in a real headless Chromium: the tables and the plots render."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.cli.main import main
from test_report import RUNS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    path = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(RUNS), "--format", "html", "--output", str(path)]) == 0
    return path


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing fetched
    assert text.count("<figure") == 5 and text.count("<table") == 4
    assert "Definitions" in text and "ttft_s" in text and "Run configurations" in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
def test_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    # the page's script ran and measured what the browser laid out
    assert re.search(r'data-tables="(\d+)"', dom) and int(re.search(r'data-tables="(\d+)"', dom)[1]) == 5 + 1 + 1 + 2
    sizes = re.findall(r'data-rendered="(\d+)x(\d+)"', dom)
    assert len(sizes) == 5 and all(int(w) > 200 and int(h) > 150 for w, h in sizes)
    assert "runs differ in max_tokens" in dom and "<td class=\"num best\">" in dom
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", page.as_uri())
    data = shot.read_bytes()
    assert data[:4] == b"\x89PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 3000) and len(data) > 50_000  # a page with content, not a blank one
