"""One scrape of a Prometheus text page, and the difference between two scrapes.

prometheus-client's parser reads the page (escapes, exemplars, NaN and +Inf are its job). What it
returns is reshaped into four flat maps keyed by series (`name{label="v",...}`, labels sorted), the
form a sample line of server_metrics.jsonl stores: gauges as values, counters and histograms as
deltas since the previous scrape (so a window's change is a sum of lines, and a counter that reset
counts from zero instead of going negative)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Histogram = dict[str, Any]
"""{"buckets": {le: cumulative count}, "sum": float, "count": float}"""


class ExpositionError(ValueError):
    """The page is not Prometheus text format."""


def series_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metric_name(series: str) -> str:
    """The metric name of a series key (what the engine maps look up)."""
    return series.split("{", 1)[0]


def labels_of(series: str) -> str:
    """The label part of a series key, '' when none."""
    _, _, rest = series.partition("{")
    return rest[:-1] if rest else ""


def _num(v: float) -> float | None:
    """JSON has no NaN or infinity: a gauge that is NaN is not measured (None)."""
    return None if math.isnan(v) or math.isinf(v) else float(v)


@dataclass
class Scrape:
    """Absolute values of one page. ``untyped`` keeps what the page did not type (kept raw, as the
    issue asks for unknown metrics)."""

    gauges: dict[str, float | None] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    untyped: dict[str, float | None] = field(default_factory=dict)

    def series_count(self) -> int:
        return len(self.gauges) + len(self.counters) + len(self.histograms) + len(self.untyped)


def parse(text: str) -> Scrape:
    """Reshape a page. Raises ExpositionError when the parser rejects it."""
    from prometheus_client.parser import text_string_to_metric_families

    out = Scrape()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError, TypeError, IndexError... on garbage
        raise ExpositionError(f"not Prometheus text format ({type(e).__name__}: {e})") from None
    for fam in families:
        kind = fam.type
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue  # a series' creation time, not a measurement
            if kind == "counter":
                out.counters[series_key(s.name, s.labels)] = float(s.value)
            elif kind == "gauge":
                out.gauges[series_key(s.name, s.labels)] = _num(s.value)
            elif kind == "histogram":
                _histogram_sample(out.histograms, fam.name, s.name, s.labels, float(s.value))
            elif kind == "summary" and s.name in (f"{fam.name}_sum", f"{fam.name}_count"):
                out.counters[series_key(s.name, s.labels)] = float(s.value)
            elif kind == "summary":
                out.gauges[series_key(s.name, s.labels)] = _num(s.value)  # a quantile the server computed
            else:
                out.untyped[series_key(s.name, s.labels)] = _num(s.value)
    if not families and text.strip():
        raise ExpositionError("not Prometheus text format (no metric on the page)")
    return out


def _histogram_sample(hists: dict[str, Histogram], family: str, name: str, labels: dict[str, str],
                      value: float) -> None:
    rest = {k: v for k, v in labels.items() if k != "le"}
    h = hists.setdefault(series_key(family, rest), {"buckets": {}, "sum": 0.0, "count": 0.0})
    if name == f"{family}_bucket" and "le" in labels:
        h["buckets"][_edge(labels["le"])] = value
    elif name == f"{family}_sum":
        h["sum"] = value
    elif name == f"{family}_count":
        h["count"] = value


def _edge(le: str) -> str:
    """Bucket edges normalised ("1" and "1.0" are one edge), "+Inf" kept."""
    x = float(le)
    return "+Inf" if math.isinf(x) else repr(x)


def edge_value(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)


def _delta(now: float, before: float | None) -> float:
    """A counter's change; a drop means the server restarted, and it then counted from zero."""
    if before is None or now < before:
        return now
    return now - before


def difference(now: Scrape, before: Scrape | None) -> dict[str, Any]:
    """The sample line's payload: gauges as they are, counters and histograms as deltas since
    ``before`` (absolute when there is no earlier scrape: the line is then the baseline)."""
    line: dict[str, Any] = {"gauges": now.gauges}
    if before is None:
        line |= {"baseline": True, "counters": now.counters, "histograms": now.histograms}
    else:
        line["counters"] = {k: _delta(v, before.counters.get(k)) for k, v in now.counters.items()}
        hd: dict[str, Histogram] = {}
        for k, h in now.histograms.items():
            b = before.histograms.get(k)
            reset = b is not None and h["count"] < b["count"]
            if b is None or reset:
                hd[k] = h
                continue
            hd[k] = {"buckets": {le: _delta(c, b["buckets"].get(le)) for le, c in h["buckets"].items()},
                     "sum": h["sum"] - b["sum"], "count": h["count"] - b["count"]}
        line["histograms"] = hd
    if now.untyped:
        line["untyped"] = now.untyped
    return line
