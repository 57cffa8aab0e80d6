"""One run's client and server side on one time axis (the run clock, seconds: requests.jsonl's
start_s/end_s and server_metrics.jsonl's t_s share an origin), as numbers for the timeline plot.

Client series come from requests.jsonl, streamed and reduced to a few numbers per request:
requests in flight (started and not yet ended), a rolling TTFT median, and output tokens/s in
bins, each request's completion tokens spread evenly over its decode span (first token to end),
so a long request does not show as one spike at its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.report.load import SavedRun, iter_jsonl
from loadtest.report.server import KNOWN, ServerSeries, run_server_series

MAX_BINS = 1200
"""Bins are 1 s wide, wider (whole seconds) for runs longer than this many seconds: a plot's lines
stay a few thousand points however long the run."""
MAX_STEPS = 4 * MAX_BINS
"""Requests in flight drawn exactly (a step at every start and end) up to this many steps."""
MIN_WINDOW_S = 5.0
WINDOW_FRACTION = 1 / 20
"""The rolling TTFT median looks back max(MIN_WINDOW_S, run span x WINDOW_FRACTION) seconds."""


def _f(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


@dataclass(frozen=True)
class ClientSeries:
    starts: np.ndarray          # every request's start_s, sorted
    ends: np.ndarray            # the end_s of those that ended, sorted
    first_token_s: np.ndarray   # start_s + ttft_s of ok requests, sorted ...
    ttft_s: np.ndarray          # ... and their TTFTs in the same order
    decode_from: np.ndarray     # ok requests' decode spans [from, to] and their completion tokens
    decode_to: np.ndarray
    tokens: np.ndarray

    @property
    def span(self) -> tuple[float, float]:
        return float(self.starts[0]), float(max(self.starts[-1], self.ends[-1] if self.ends.size else -math.inf))

    def in_flight_at(self, t: np.ndarray) -> np.ndarray:
        """Requests started at or before t and not ended at or before t."""
        return (np.searchsorted(self.starts, t, side="right")
                - np.searchsorted(self.ends, t, side="right")).astype(float)

    def tokens_per_s(self, edges: np.ndarray) -> np.ndarray:
        """Output tokens/s in each bin [edges[i], edges[i+1]): a request's tokens at a constant rate
        over its decode span, all at its end when the span is empty. Exact: the cumulative token
        count is piecewise linear, evaluated at the edges through sorted slope changes."""
        width = self.decode_to - self.decode_from
        spread = width > 0
        rate = np.where(spread, self.tokens / np.where(spread, width, 1.0), 0.0)
        times = np.concatenate([self.decode_from[spread], self.decode_to[spread]])
        slopes = np.concatenate([rate[spread], -rate[spread]])
        order = np.argsort(times, kind="stable")
        times, slopes = times[order], slopes[order]
        cum_slope = np.concatenate([[0.0], np.cumsum(slopes)])
        cum_offset = np.concatenate([[0.0], np.cumsum(slopes * times)])
        k = np.searchsorted(times, edges, side="right")
        cumulative = edges * cum_slope[k] - cum_offset[k]
        at_end = np.argsort(self.decode_to[~spread], kind="stable")
        end_t = self.decode_to[~spread][at_end]
        end_cumulative = np.concatenate([[0.0], np.cumsum(self.tokens[~spread][at_end])])
        cumulative += end_cumulative[np.searchsorted(end_t, edges, side="left")]  # ended before the edge
        return np.diff(cumulative) / np.diff(edges)

    def ttft_p50_at(self, t: np.ndarray, window_s: float) -> np.ndarray:
        """Median TTFT of the requests whose first token arrived in (t - window_s, t]; NaN where none."""
        hi = np.searchsorted(self.first_token_s, t, side="right")
        lo = np.searchsorted(self.first_token_s, t - window_s, side="right")
        return np.array([float(np.median(self.ttft_s[a:b])) if b > a else math.nan for a, b in zip(lo, hi)])


def read_client_series(path: Path) -> ClientSeries | None:
    """requests.jsonl streamed, warm-up requests left out; None when no request has a start_s."""
    starts, ends, first, ttft, d_from, d_to, tokens = [], [], [], [], [], [], []
    for row in iter_jsonl(path):
        start = _f(row.get("start_s"))
        if start is None or row.get("warmup"):
            continue
        starts.append(start)
        end = _f(row.get("end_s"))
        if end is not None:
            ends.append(end)
        if row.get("ok") is not True or end is None:
            continue
        t = _f(row.get("ttft_s"))
        if t is not None:
            first.append(start + t)
            ttft.append(t)
        n = _f(row.get("completion_tokens"))
        if n:
            d_from.append(min(start + t, end) if t is not None else end)
            d_to.append(end)
            tokens.append(n)
    if not starts:
        return None
    order = np.argsort(first, kind="stable")

    def arr(xs: list[float]) -> np.ndarray:
        return np.asarray(xs, dtype=float)

    return ClientSeries(np.sort(arr(starts)), np.sort(arr(ends)), arr(first)[order], arr(ttft)[order],
                        arr(d_from), arr(d_to), arr(tokens))


@dataclass(frozen=True)
class Timeline:
    """What the timeline plot draws for one run: client series on `edges` (bins of `bin_s`),
    server series at their sample times."""

    label: str
    bin_s: float
    window_s: float
    edges: np.ndarray
    client: ClientSeries | None
    server: ServerSeries

    def in_flight_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, requests in flight from each time on) across the edges: exact at every start and
        end while there are at most MAX_STEPS of them, sampled at quarter-bin steps beyond."""
        assert self.client is not None
        events = np.concatenate([self.client.starts, self.client.ends])
        if events.size <= MAX_STEPS:
            t = np.unique(np.concatenate([[self.edges[0]], events, [self.edges[-1]]]))
        else:
            t = np.arange(self.edges[0], self.edges[-1] + self.bin_s / 8, self.bin_s / 4)
        return t, self.client.in_flight_at(t)

    @property
    def tokens_per_s(self) -> np.ndarray:
        assert self.client is not None
        return self.client.tokens_per_s(self.edges)

    @property
    def ttft_p50_s(self) -> np.ndarray:
        """At each bin's end."""
        assert self.client is not None
        return self.client.ttft_p50_at(self.edges[1:], self.window_s)


def bins(lo_s: float, hi_s: float) -> tuple[float, np.ndarray]:
    """(bin width, edges) covering [lo_s, hi_s]: whole seconds, at most MAX_BINS bins."""
    width = float(max(1, math.ceil((hi_s - lo_s) / MAX_BINS)))
    start = math.floor(lo_s / width) * width
    n = max(1, math.ceil((hi_s - start) / width))
    return width, start + width * np.arange(n + 1)


def run_timeline(run: SavedRun) -> Timeline | None:
    """None unless server_metrics.jsonl has ok samples with a known value (the report's
    timeseries plot already draws the client side of every run); the server samples are cut to the requests' span, padded by a
    couple of sampling intervals."""
    server = run_server_series(run)
    if server is None or all(getattr(server, k) is None for k in KNOWN):
        return None  # no sample, or none with a value the panel draws
    client = read_client_series(run.path / "requests.jsonl")
    if client is not None:
        lo, hi = client.span
        gaps = np.diff(server.t_s)
        pad = max(2.0, 2 * float(np.median(gaps))) if gaps.size else 2.0
        server = server.clipped(lo - pad, hi + pad)  # type: ignore[assignment]
        if server is None:
            return None
        lo, hi = min(lo, float(server.t_s[0])), max(hi, float(server.t_s[-1]))
    else:
        lo, hi = float(server.t_s[0]), float(server.t_s[-1])
    width, edges = bins(lo, hi)
    window = max(MIN_WINDOW_S, (hi - lo) * WINDOW_FRACTION)
    return Timeline(run.label, width, window, edges, client, server)
