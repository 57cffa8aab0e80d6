"""server_metrics.jsonl over the measured window -> summary.json's ``server_metrics`` block.

The window's edges are the client's (first measured start, last measured end). Counters and
histograms change from the *baseline* (each source's last sample at or before the window opened) to
the *final* sample (its first at or after the window closed): the sum of the delta lines in between.
So the counted span is the window plus at most one scrape interval on each side; the block states
the span, and the token cross-check (run/postrun) only compares when no request straddles its edges.
Gauges: mean and max over the samples inside the window (the two edge samples when none fell in it).
Histogram percentiles are interpolated within buckets as Prometheus' histogram_quantile does, with
the bucket edges that bound them: a percentile is only as fine as the server's buckets."""

from __future__ import annotations

import math
from typing import Any

from loadtest.servermetrics import engines
from loadtest.servermetrics.exposition import Histogram, edge_value, metric_name

QUANTILES = (50, 90, 99)


def quantile(h: Histogram, q: float) -> tuple[float | None, list[float | None]]:
    """(value, [lower edge, upper edge]) of quantile q (0..1) of a cumulative histogram; None when
    it counted nothing. In the +Inf bucket the value is the last finite edge (a lower bound)."""
    edges = sorted(((edge_value(le), c) for le, c in h["buckets"].items()), key=lambda e: e[0])
    total = edges[-1][1] if edges else 0.0
    if not edges or total <= 0:
        return None, [None, None]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cum in edges:
        if cum >= rank and cum > below:
            if math.isinf(upper):
                return lower, [lower, None]
            return lower + (upper - lower) * (rank - below) / (cum - below), [lower, upper]
        lower, below = upper, cum
    return lower, [lower, None]


def _add_hist(into: dict[str, Histogram], key: str, h: Histogram) -> None:
    acc = into.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
    for le, c in h["buckets"].items():
        acc["buckets"][le] = acc["buckets"].get(le, 0.0) + c
    acc["sum"] += h["sum"]
    acc["count"] += h["count"]


def histogram_stats(h: Histogram) -> dict[str, Any]:
    out: dict[str, Any] = {"count": h["count"], "mean": h["sum"] / h["count"] if h["count"] else None}
    for q in QUANTILES:
        v, bounds = quantile(h, q / 100)
        out[f"p{q}"], out[f"p{q}_bounds"] = v, bounds
    return out


def _span(lines: list[dict[str, Any]], begin_s: float, end_s: float) -> tuple[int, int, list[str]]:
    """Indexes of the baseline and final samples among one source's ok lines, and what was imperfect.
    A sample's t_s is its scrape's midpoint; the server read its values at some instant of the scrape,
    so the baseline must have been *answered* by the time the window opened and the final one *asked
    for* after it closed."""
    notes = []
    half = [ln.get("scrape_s", 0.0) / 2 for ln in lines]
    before = [i for i, ln in enumerate(lines) if ln["t_s"] + half[i] <= begin_s]
    after = [i for i, ln in enumerate(lines) if ln["t_s"] - half[i] >= end_s]
    b = before[-1] if before else 0
    if not before:
        notes.append(f"first sample {lines[0]['t_s'] - begin_s:.2f} s after the window opened")
    f = after[0] if after else len(lines) - 1
    if not after:
        notes.append(f"last sample {end_s - lines[-1]['t_s']:.2f} s before the window closed")
    return b, f, notes


def summarise_source(url: str, lines: list[dict[str, Any]], begin_s: float, end_s: float) -> dict[str, Any]:
    """One source: its status, and its gauges/counters/histograms over the window."""
    ok = [ln for ln in lines if ln.get("ok")]
    failed = [ln for ln in lines if not ln.get("ok")]
    info: dict[str, Any] = {"url": url, "engine": next((ln.get("engine") for ln in ok if "engine" in ln), None),
                            "engines": next((ln.get("engines") for ln in ok if "engines" in ln), []),
                            "samples": len(ok), "failed": len(failed), "status": "ok", "note": None}
    notes = [ln["note"] for ln in ok if ln.get("note")]
    if not ok:
        info["status"] = "absent" if any(ln.get("gave_up") for ln in failed) else "failed"
        info["note"] = failed[0]["error"] if failed else "no answer within the run"
        return {"info": info}
    if failed:
        notes.append(f"{len(failed)} scrapes failed (first: {failed[0]['error']})")
    b, f, edge_notes = _span(ok, begin_s, end_s)
    notes += edge_notes
    counters: dict[str, float] = {}
    hists: dict[str, Histogram] = {}
    for ln in ok[b + 1:f + 1]:
        for k, v in ln.get("counters", {}).items():
            counters[k] = counters.get(k, 0.0) + v
        for k, h in ln.get("histograms", {}).items():
            _add_hist(hists, k, h)
    inside = [ln for ln in ok if begin_s <= ln["t_s"] <= end_s] or [ok[b], ok[f]]
    gauges: dict[str, dict[str, float]] = {}
    for ln in inside:
        for k, v in ln.get("gauges", {}).items():
            if v is None:
                continue
            g = gauges.setdefault(k, {"sum": 0.0, "n": 0, "max": -math.inf})
            g["sum"] += v
            g["n"] += 1
            g["max"] = max(g["max"], v)
    info["note"] = "; ".join(notes) or None
    info["span_s"] = [ok[b]["t_s"], ok[f]["t_s"]]
    return {"info": info, "counters": counters, "histograms": hists,
            "gauges": {k: {"mean": g["sum"] / g["n"], "max": g["max"]} for k, g in gauges.items()},
            "inside": inside}


def _known(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The known block over all sources: counts and watts add up, a usage ratio takes the fullest."""
    known: dict[str, Any] = {}
    for part in parts:
        if "counters" in part:
            _known_of_part(known, part)
    return _finish_known(known)


def _known_of_part(known: dict[str, Any], part: dict[str, Any]) -> None:
    """Add one source's known values, from every engine map on its page; each key once per page
    (the first map that has it), then summed over sources (a ratio: the fullest source)."""
    seen: set[str] = set()
    served = part["all_series"]
    means = {k: g["mean"] for k, g in part["gauges"].items()}
    maxes = {k: g["max"] for k, g in part["gauges"].items()}
    sums = {k: h["sum"] for k, h in part["histograms"].items()}

    def add(key: str, value: Any, take_max: bool = False) -> None:
        seen.add(key)
        prev = known.get(key)
        if isinstance(value, dict):  # a gauge: mean and max
            if prev is None:
                known[key] = value
            else:
                op = max if take_max else (lambda x, y: x + y)
                known[key] = {"mean": op(prev["mean"], value["mean"]), "max": op(prev["max"], value["max"])}
        else:
            known[key] = (prev or 0.0) + value

    def on_page(name: str) -> bool:
        return any(metric_name(k) == name for k in served)

    for e in engines.by_name(part["info"]["engines"]):
        for key, names in e.gauges.items():
            take_max = key in e.max_gauges
            mean = engines.pick(means, names, take_max=take_max)
            if key not in seen and mean is not None:
                add(key, {"mean": mean, "max": engines.pick(maxes, names, take_max=take_max)}, take_max)
        for key, names in e.counters.items():
            name = next((n for n in names if on_page(n)), None)
            if key not in seen and name is not None:  # served; one that did not move counts 0
                add(key, (engines.pick(part["counters"], (name,)) or 0.0) * e.scale.get(key, 1.0))
        for key, names in e.counter_sums.items():
            present = [n for n in names if on_page(n)]
            if key not in seen and present:
                add(key, sum(engines.pick(part["counters"], (n,)) or 0.0 for n in present))
        for key, names in e.histogram_sums.items():
            v = engines.pick(sums, names)
            if key not in seen and v is not None:
                add(key, v)
        for key, names in e.histograms.items():
            name = next((n for n in names if any(metric_name(k) == n for k in part["histograms"])), None)
            if key in seen or name is None:
                continue
            seen.add(key)
            for k, h in part["histograms"].items():
                if metric_name(k) == name:
                    _add_hist(known.setdefault("_hist", {}), key, h)


def _finish_known(known: dict[str, Any]) -> dict[str, Any]:
    """Histograms merged over label sets and sources -> their statistics; the prefix-cache hit rate."""
    for key, h in known.pop("_hist", {}).items():
        known[key] = histogram_stats(h)
    q, hits = known.get("prefix_cache_queries"), known.get("prefix_cache_hits")
    known["prefix_cache_hit_rate"] = hits / q if q and hits is not None else None
    return known


def summarise(lines: list[dict[str, Any]], *, begin_s: float | None, end_s: float | None,
              interval_s: float, sources: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """The summary block; ``begin_s``/``end_s`` on the run clock (None when nothing was measured:
    every sample then counts). ``sources``: every source asked, so one that never answered within
    the run is listed too."""
    by_source: dict[str, list[dict[str, Any]]] = {s: [] for s in sources}
    for ln in lines:
        by_source.setdefault(ln["source"], []).append(ln)
    if begin_s is None or end_s is None:
        ts = [ln["t_s"] for ln in lines] or [0.0]
        begin_s, end_s = min(ts), max(ts)
    parts = []
    for url, src in by_source.items():
        part = summarise_source(url, src, begin_s, end_s)
        part["all_series"] = {k for ln in src if ln.get("ok") for k in ln.get("counters", {})}
        parts.append(part)
    measured = [p for p in parts if "counters" in p]
    return {
        "interval_s": interval_s,
        "sources": [p["info"] for p in parts],
        "known": _known(measured),
        "gauges": {k: v for p in measured for k, v in p["gauges"].items()},
        "counters": {k: v for p in measured for k, v in p["counters"].items()},
        "histograms": {k: histogram_stats(h) for p in measured for k, h in p["histograms"].items()},
    }
