"""The per-run timeline plot (client and server on the run clock): the series and labels read back
from the figure, the PNG that --plots writes and the figure in the HTML page, and no plot without
server samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from test_report_server import KV, POWER, RUNNING, TIMES, WAITING, write_run

from loadtest.cli.main import main
from loadtest.report import plots
from loadtest.report.load import load_runs
from loadtest.report.timeline import run_timeline


def _line(ax, label: str):  # type: ignore[no-untyped-def]
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return line


def test_timeline_figure_series(tmp_path: Path) -> None:
    (run,) = load_runs([write_run(tmp_path / "run")])
    tl = run_timeline(run)
    assert tl is not None
    fig = plots.run_timeline_figure(tl)
    client, server, tok, ttft, kv, power = fig.axes  # the two panels, then their right-hand axes
    assert (client.get_ylabel(), tok.get_ylabel(), ttft.get_ylabel()) == (
        "requests in flight", "output tokens/s", "TTFT p50 (ms)")
    assert (server.get_ylabel(), kv.get_ylabel(), power.get_ylabel(), server.get_xlabel()) == (
        "requests on the server", "KV-cache usage (%)", "GPU power (W)", "run clock (s)")
    in_flight = _line(client, "in flight")  # a step at every start and end
    assert in_flight.get_xdata().tolist() == [-1.0, 0.0, 0.5, 2.0, 2.5, 3.0, 3.2, 3.6, 4.0]
    assert in_flight.get_ydata().tolist() == [0, 1, 2, 3, 2, 1, 2, 1, 0]
    tps = _line(tok, "output tok/s")
    assert tps.get_xdata().tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    assert tps.get_ydata()[:-1].tolist() == pytest.approx([0, 0, 10 + 20 / 1.5, 10 + 10 / 1.5 + 10, 10])
    ttft_ms = _line(ttft, "TTFT p50 (5 s)").get_ydata()
    assert math.isnan(ttft_ms[0]) and ttft_ms[1:].tolist() == pytest.approx([750, 750, 500, 500])
    assert _line(server, "running").get_xdata().tolist() == TIMES
    assert _line(server, "running").get_ydata().tolist() == RUNNING
    assert _line(server, "waiting").get_ydata().tolist() == WAITING
    assert _line(kv, "KV cache %").get_ydata().tolist() == pytest.approx(np.array(KV) * 100)
    assert _line(power, "GPU power W").get_ydata().tolist() == POWER
    caption = fig.get_supxlabel()
    assert "trailing 5 s" in caption and "per 1 s bin" in caption and "decode span" in caption
    assert "summed over 2 sources" in caption
    assert client.get_shared_x_axes().joined(client, server)


def test_figures_only_for_runs_with_server_samples(tmp_path: Path) -> None:
    write_run(tmp_path / "with" / "run")
    write_run(tmp_path / "without" / "run", engine="llamacpp", samples=False)
    runs = load_runs([tmp_path])
    names = [n for n in plots.figures(runs) if n.startswith("timeline")]
    assert names == ["timeline-with_run"]
    assert plots.timeline_figures(load_runs([tmp_path / "without"])) == {}


def test_report_writes_the_png_and_the_html_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    write_run(runs / "a")
    write_run(runs / "b", engine="llamacpp", samples=False)
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--plots", str(tmp_path / "plots"), "--format", "html",
                 "--output", str(out)]) == 0
    png = tmp_path / "plots" / "timeline-a.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "plots" / "timeline-b.png").exists()
    page = out.read_text()
    assert page.count('data-plot="timeline-') == 1 and 'data-plot="timeline-a"' in page


def test_server_panel_alone_without_requests(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    (run_dir / "requests.jsonl").write_text("")  # a run killed before its first request ended
    tl = run_timeline(load_runs([run_dir])[0])
    assert tl is not None and tl.client is None
    assert tl.server.t_s.tolist() == [-3.0, *TIMES]  # nothing to cut to
    fig = plots.run_timeline_figure(tl)
    assert len(fig.axes) == 3  # the server panel and its KV and power axes
    server = fig.axes[0]
    assert server.get_title() == "run" and server.get_xlabel() == "run clock (s)"
    assert _line(server, "running").get_ydata().tolist() == [9, *RUNNING]
