"""Every plot of `loadtest report`: the series and axis labels read back from the figure before it
is saved, then the file on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from loadtest.cli.main import main  # noqa: E402
from loadtest.report import plots  # noqa: E402
from loadtest.report.load import load_runs  # noqa: E402
from test_report import RUNS, _synthetic  # noqa: E402


@pytest.fixture(scope="module")
def runs():  # type: ignore[no-untyped-def]
    return load_runs([RUNS / "compare"])


def test_tokens_per_s_bars(runs) -> None:  # type: ignore[no-untyped-def]
    fig = plots.tokens_per_s_figure(runs)
    (ax,) = fig.axes
    assert len(ax.containers) == 2  # one bar series per engine
    assert [c.get_label() for c in ax.containers] == ["llamacpp", "transformers"]
    heights = [c.patches[0].get_height() for c in ax.containers]
    assert heights[0] == pytest.approx(runs[0].metric("tokens_per_s", "mean"))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("model", "tokens/s per request (mean)")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["smollm2"]


def test_latency_throughput_lines_and_slo(runs) -> None:  # type: ignore[no-untyped-def]
    fig = plots.latency_throughput_figure(runs, slo_ttft_s=0.03)
    ax1, ax2 = fig.axes
    assert len(ax1.lines) == 3 and len(ax2.lines) == 2  # two engines, plus the SLO line on top
    assert ax1.lines[-1].get_label() == "SLO 30 ms"
    assert (ax1.get_ylabel(), ax2.get_ylabel(), ax2.get_xlabel()) == (
        "TTFT p50 (ms)", "end-to-end p50 (s)", "output tokens/s (throughput)")


def test_distributions_cdfs(runs) -> None:  # type: ignore[no-untyped-def]
    fig = plots.distributions_figure(runs)
    ax1, ax2 = fig.axes
    assert len(ax1.lines) == 4 and len(ax2.lines) == 4  # one CDF per run
    y = ax1.lines[0].get_ydata()
    assert y[-1] == 1.0 and len(y) == 4  # four requests
    assert (ax1.get_xlabel(), ax2.get_xlabel()) == ("TTFT (ms)", "ITL (ms)")


def test_output_length_scatter_with_fit(tmp_path: Path) -> None:
    fig = plots.output_length_figure([_synthetic(tmp_path)])
    (ax,) = fig.axes
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == 40
    assert len(ax.lines) == 1 and ax.lines[0].get_label().startswith("fit: 100.")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("output tokens per request", "tokens/s per request")


def test_timeseries(runs) -> None:  # type: ignore[no-untyped-def]
    fig = plots.timeseries_figure([r for r in runs if r.command == "throughput"])
    ax1, ax2 = fig.axes
    assert len(ax1.lines) == 2 and len(ax2.lines) == 2
    assert max(ax1.lines[0].get_ydata()) == 2  # concurrency 2
    assert (ax1.get_ylabel(), ax2.get_ylabel()) == ("requests in flight", "output tokens/s")


def test_report_saves_every_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(RUNS / "compare"), "--plots", str(tmp_path / "plots")]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["distributions.png", "latency_throughput.png", "output_length.png", "timeseries.png",
                     "tokens_per_s.png"]
    assert all((tmp_path / "plots" / n).read_bytes()[:4] == b"\x89PNG" for n in names)
