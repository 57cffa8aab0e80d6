"""The report's plots, as matplotlib Figures (no pyplot: no global state, no display needed).

Each ``*_figure`` function returns a Figure, or None when the runs hold nothing to draw, so tests
can read the series and labels back before anything is saved. matplotlib is the optional extra
``loadtest[report]``; only this module imports it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.errors import ConfigError
from loadtest.report.fit import fit_records
from loadtest.report.load import SavedRun
from loadtest.report.tables import group_runs, group_stats
from loadtest.report.timeline import Timeline, run_timeline

MAX_SERIES = 10
MAX_TIMELINES = 20
"""Per-run timelines drawn at most (the first runs with server samples, in the report's order)."""


def _figure(n_axes: int = 1, width: float = 7.0, height: float = 4.0) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'loadtest[report]'") from None
    fig = Figure(figsize=(width * (1 if n_axes == 1 else 1.0), height * (1 if n_axes == 1 else 1.6)),
                 layout="constrained")
    axes = fig.subplots(n_axes, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def tokens_per_s_figure(runs: Sequence[SavedRun], by: Sequence[str] = ("engine", "model")) -> Any:
    """Bars: mean tokens/s per request of single runs, grouped by the second --by key (model), one
    bar colour per value of the first (engine)."""
    by = list(by) if len(by) >= 2 else ["engine", "model"]
    groups, _ = group_runs([r for r in runs if r.command == "single"], by[:2])
    values = {(g.key[1], g.key[0] + (f" ({g.settings})" if g.settings else "")): group_stats(g)["tokens_per_s_mean"]
              for g in groups}  # runs whose settings differ stay separate bars
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return None
    xs = sorted({k[0] for k in values})
    series = sorted({k[1] for k in values})
    fig, (ax,) = _figure()
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        heights = [values.get((x, s), 0.0) for x in xs]
        bars = ax.bar(np.arange(len(xs)) + (i - (len(series) - 1) / 2) * width, heights, width, label=s)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(np.arange(len(xs)), xs)
    ax.set_xlabel(by[1])
    ax.set_ylabel("tokens/s per request (mean)")
    ax.set_title(f"tokens/s per {by[1]} and {by[0]} (single)")
    ax.legend(title=by[0])
    return fig


def latency_throughput_figure(runs: Sequence[SavedRun], slo_ttft_s: float | None = None,
                              slo_e2e_s: float | None = None) -> Any:
    """Lines, one per engine (and model): p50 TTFT (top) and p50 end-to-end latency (bottom)
    against output tokens/s, one point per throughput run (a sweep gives the curve); dashed
    horizontal lines at the SLOs."""
    series: dict[str, list[tuple[float, float | None, float | None]]] = {}
    for r in runs:
        tps = r.metric("output_tokens_per_s")
        if r.command == "single" or tps is None:
            continue
        series.setdefault(f"{r.engine} / {r.model}", []).append((tps, r.metric("ttft_s", "p50"),
                                                               r.metric("e2e_s", "p50")))
    if not series:
        return None
    fig, (ax1, ax2) = _figure(2)
    for name, pts in sorted(series.items())[:MAX_SERIES]:
        pts.sort()
        x = [p[0] for p in pts]
        ax1.plot(x, [p[1] * 1e3 if p[1] is not None else np.nan for p in pts], marker="o", label=name)
        ax2.plot(x, [p[2] if p[2] is not None else np.nan for p in pts], marker="o", label=name)
    if slo_ttft_s is not None:
        ax1.axhline(slo_ttft_s * 1e3, linestyle="--", color="red", label=f"SLO {slo_ttft_s * 1e3:g} ms")
    if slo_e2e_s is not None:
        ax2.axhline(slo_e2e_s, linestyle="--", color="red", label=f"SLO {slo_e2e_s:g} s")
    ax1.set_ylabel("TTFT p50 (ms)")
    ax2.set_ylabel("end-to-end p50 (s)")
    ax2.set_xlabel("output tokens/s (throughput)")
    ax1.set_title("latency vs throughput")
    ax1.legend(fontsize=8)
    return fig


def _cdf(ax: Any, values: Sequence[float], label: str, scale: float = 1.0) -> None:
    v = np.sort(np.asarray(values, dtype=float)) * scale
    ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=label)


def distributions_figure(runs: Sequence[SavedRun]) -> Any:
    """CDFs, one line per run: TTFT per request (top), ITL per token gap (bottom; a chunk's gap
    shared among its tokens, as in docs/metrics.md)."""
    drawn = [r for r in runs if any(rec.get("ttft_s") is not None for rec in r.ok_records)][:MAX_SERIES]
    if not drawn:
        return None
    fig, (ax1, ax2) = _figure(2)
    for r in drawn:
        name = f"{r.engine} / {r.model} / {r.command}" if len(drawn) > 1 else r.label
        _cdf(ax1, [rec["ttft_s"] for rec in r.ok_records if rec.get("ttft_s") is not None], name, 1e3)
        itl = _itl(r.ok_records)
        if itl.size:
            _cdf(ax2, itl, name, 1e3)
    ax1.set_xlabel("TTFT (ms)")
    ax2.set_xlabel("ITL (ms)")
    for ax in (ax1, ax2):
        ax.set_ylabel("fraction of requests" if ax is ax1 else "fraction of tokens")
    ax1.set_title("TTFT and ITL distributions")
    ax1.legend(fontsize=8)
    return fig


def _itl(records: Sequence[dict[str, Any]]) -> np.ndarray:
    out = []
    for rec in records:
        offs, toks = rec.get("chunk_offsets_s"), rec.get("chunk_tokens")
        if not offs or not toks or len(offs) < 2 or len(toks) != len(offs):
            continue
        gaps, k = np.diff(np.asarray(offs, dtype=float)), np.asarray(toks[1:], dtype=float)
        mask = k > 0
        out.append(np.repeat(gaps[mask] / k[mask], np.maximum(np.round(k[mask]).astype(int), 1)))
    return np.concatenate(out) if out else np.empty(0)


def output_length_figure(runs: Sequence[SavedRun]) -> Any:
    """Scatter, one colour per run: tokens/s per request against its output tokens, with the
    steady-state fit drawn as tokens / (overhead + tokens / rate) where the fit exists."""
    drawn = [r for r in runs if any(rec.get("tokens_per_s") is not None for rec in r.ok_records)][:MAX_SERIES]
    if not drawn:
        return None
    fig, (ax,) = _figure()
    for r in drawn:
        pts = [(rec["completion_tokens"], rec["tokens_per_s"]) for rec in r.ok_records
               if rec.get("tokens_per_s") is not None and rec.get("completion_tokens") is not None]
        name = f"{r.engine} / {r.model} / {r.command}"
        sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, label=name)
        f = fit_records(r.ok_records)
        if f is not None and f.decode_tokens_per_s:
            n = np.linspace(max(1, min(p[0] for p in pts)), max(p[0] for p in pts), 100)
            ax.plot(n, n / (f.intercept_s + n * f.slope_s_per_token), color=sc.get_facecolor()[0],
                    label=f"fit: {f.decode_tokens_per_s:.1f} tok/s, {f.intercept_s * 1e3:.0f} ms overhead")
    ax.set_xlabel("output tokens per request")
    ax.set_ylabel("tokens/s per request")
    ax.set_title("tokens/s against output length")
    ax.legend(fontsize=8)
    return fig


def timeseries_figure(runs: Sequence[SavedRun], bin_s: float | None = None) -> Any:
    """Over each run's time: requests in flight (top) and output tokens/s (bottom, tokens counted
    when their chunk arrived, in bins), one line per run."""
    drawn = [r for r in runs if any(rec.get("end_s") is not None for rec in r.ok_records)][:MAX_SERIES]
    if not drawn:
        return None
    fig, (ax1, ax2) = _figure(2)
    for r in drawn:
        recs = [rec for rec in r.records if rec.get("start_s") is not None]
        t0 = min(rec["start_s"] for rec in recs)
        events = sorted([(rec["start_s"] - t0, 1) for rec in recs]
                        + [(rec["end_s"] - t0, -1) for rec in recs if rec.get("end_s") is not None])
        ts = [0.0] + [e[0] for e in events]
        level = np.concatenate([[0], np.cumsum([e[1] for e in events])])
        name = f"{r.engine} / {r.model} / {r.command}"
        ax1.step(ts, level, where="post", label=name)
        arrivals, tokens = [], []
        for rec in r.ok_records:
            offs, toks = rec.get("chunk_offsets_s") or [], rec.get("chunk_tokens") or []
            if len(offs) == len(toks):
                arrivals.extend(rec["start_s"] - t0 + o for o in offs)
                tokens.extend(toks)
        if arrivals:
            span = max(arrivals)
            width = bin_s or max(span / 50, 0.01)
            edges = np.arange(0.0, span + width, width)
            hist, _ = np.histogram(arrivals, bins=edges, weights=tokens)
            ax2.step(edges[:-1], hist / width, where="post", label=name)
    ax1.set_ylabel("requests in flight")
    ax2.set_ylabel("output tokens/s")
    ax2.set_xlabel("time since the run's first request (s)")
    ax1.set_title("in-flight requests and throughput over the run")
    ax1.legend(fontsize=8)
    return fig


def _offset_twin(ax: Any, position: float) -> Any:
    """A further right-hand axis, its spine moved out so two right axes do not overlap."""
    twin = ax.twinx()
    twin.spines.right.set_position(("axes", position))
    return twin


def _legend(ax: Any, *twins: Any) -> None:
    handles = [h for a in (ax, *twins) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")


def timeline_caption(tl: Timeline) -> str:
    return (f"run clock (s). In flight: requests started and not ended. TTFT p50: over requests whose first token "
            f"came in the trailing {tl.window_s:g} s. Output tokens/s: per {tl.bin_s:g} s bin, each request's "
            f"tokens spread evenly over its decode span (first token to end). Server: its /metrics samples"
            + (f", summed over {tl.server.sources} sources (KV: the fullest)" if tl.server.sources > 1 else "") + ".")


def run_timeline_figure(tl: Timeline) -> Any:
    """Client (top: in flight, rolling TTFT p50, output tokens/s) and server (bottom: running,
    waiting, KV-cache usage %, GPU power) on the run's clock; the server panel alone when the run
    left no requests."""
    from matplotlib.ticker import MaxNLocator  # _figure has made sure matplotlib is there

    fig, axes = _figure(2 if tl.client is not None else 1, width=8.0)
    srv_ax = axes[-1]
    if tl.client is not None:
        ax = axes[0]
        ax.step(*tl.in_flight_steps(), where="post", color="C0", label="in flight")
        ax.set_ylabel("requests in flight")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        tok = ax.twinx()
        tps = tl.tokens_per_s  # per bin: drawn from each bin's start to its end
        tok.step(tl.edges, np.append(tps, tps[-1]), where="post", color="C2", label="output tok/s")
        tok.set_ylabel("output tokens/s")
        ttft = _offset_twin(ax, 1.12)
        ttft.plot(tl.edges[1:], tl.ttft_p50_s * 1e3, color="C3", label=f"TTFT p50 ({tl.window_s:g} s)")
        ttft.set_ylabel("TTFT p50 (ms)")
        ax.set_title(f"{tl.label}: client", fontsize=9)
        _legend(ax, tok, ttft)
        srv_ax.sharex(ax)
    srv = tl.server
    twins = []
    for key, label, color in (("running", "running", "C0"), ("waiting", "waiting", "C1")):
        if (v := getattr(srv, key)) is not None:
            srv_ax.step(srv.t_s, v, where="post", color=color, label=label)
    srv_ax.set_ylabel("requests on the server")
    srv_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if srv.kv_cache_usage is not None:
        kv = srv_ax.twinx()
        kv.plot(srv.t_s, srv.kv_cache_usage * 100, color="C4", label="KV cache %")
        kv.set_ylabel("KV-cache usage (%)")
        kv.set_ylim(0, 105)
        twins.append(kv)
    if srv.gpu_power_w is not None:
        power = _offset_twin(srv_ax, 1.12) if twins else srv_ax.twinx()
        power.plot(srv.t_s, srv.gpu_power_w, color="C5", linestyle="--", label="GPU power W")
        power.set_ylabel("GPU power (W)")
        twins.append(power)
    srv_ax.set_title(f"{tl.label}: server" if tl.client is not None else tl.label, fontsize=9)
    srv_ax.set_xlabel("run clock (s)")
    _legend(srv_ax, *twins)
    fig.supxlabel(timeline_caption(tl), fontsize=7, wrap=True)
    return fig


def timeline_figures(runs: Sequence[SavedRun]) -> dict[str, Any]:
    """One timeline per run with server samples, named timeline-<run label> (a file name)."""
    out: dict[str, Any] = {}
    for r in runs:
        if len(out) >= MAX_TIMELINES:
            break
        tl = run_timeline(r)
        if tl is None:
            continue
        name = base = "timeline-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", r.label).strip("_") or "run")
        n = 1
        while name in out:  # two runs of one name in different folders
            n += 1
            name = f"{base}-{n}"
        out[name] = run_timeline_figure(tl)
    return out


PLOTS: dict[str, Callable[..., Any]] = {
    "tokens_per_s": tokens_per_s_figure,
    "latency_throughput": latency_throughput_figure,
    "distributions": distributions_figure,
    "output_length": output_length_figure,
    "timeseries": timeseries_figure,
}


def figures(runs: Sequence[SavedRun], by: Sequence[str] = ("engine", "model"),
            slos: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Every plot that has data, by name. `slos`: slo_ttft_s / slo_e2e_s lines on the latency plot."""
    out = {}
    for name, make in PLOTS.items():
        fig = make(runs, by) if name == "tokens_per_s" else make(runs, **(slos or {})) \
            if name == "latency_throughput" else make(runs)
        if fig is not None:
            out[name] = fig
    out.update(timeline_figures(runs))
    return out


def save_plots(runs: Sequence[SavedRun], directory: Path, by: Sequence[str] = ("engine", "model"),
               slos: dict[str, float | None] | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(runs, by, slos).items():
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def svg(fig: Any) -> str:
    """The figure as an inline <svg> element (for the HTML page)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]
