"""Run-level metrics, derived from per-request records (which hold the raw timings), streamed
from requests.jsonl at the end of a run."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from loadtest.measure.chunk_tokens import EXACT_SOURCES
from loadtest.measure.hosted import HostedTotals
from loadtest.measure.media import MediaTotals
from loadtest.measure.pooling import PoolingTotals
from loadtest.measure.prefixcache import PrefixCacheTotals
from loadtest.measure.record import ABANDONED, CANCELLED, RequestRecord

STAT_KEYS = ("mean", "p50", "p90", "p95", "p99", "min", "max", "std")
_QUANTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def summarize(values: Sequence[float] | np.ndarray, weights: np.ndarray | None = None) -> dict[str, Any]:
    """Statistics of a sample; every field None (not measured) when the sample is empty."""
    v = np.asarray(values, dtype=float)
    out: dict[str, Any] = {"count": int(v.size)}
    if v.size == 0:
        return out | {k: None for k in STAT_KEYS}
    if weights is None:
        out["mean"] = float(v.mean())
        out.update({k: float(np.percentile(v, q)) for k, q in _QUANTILES.items()})
        out["std"] = float(v.std())
    else:
        w = np.asarray(weights, dtype=float)
        order = np.argsort(v, kind="stable")
        v_sorted, cum = v[order], np.cumsum(w[order])
        total = cum[-1]
        mean = float((v * w).sum() / total)
        out["mean"] = mean
        for k, q in _QUANTILES.items():
            idx = int(np.searchsorted(cum, q / 100 * total - 1e-12 * total, side="left"))
            out[k] = float(v_sorted[min(idx, v.size - 1)])
        out["std"] = float(np.sqrt((w * (v - mean) ** 2).sum() / total))
        out["weight"] = float(total)
    out["min"], out["max"] = float(v.min()), float(v.max())
    return {k: out[k] for k in ("count", *STAT_KEYS, *(["weight"] if "weight" in out else []))}


_SAMPLED = ("tokens_per_s", "ttft_s", "ttft_content_s", "tpot_s", "decode_tokens_per_s", "e2e_s")


class Columns:
    """What the summary needs from the measured records, as compact columns (8 bytes per value in
    ``array('d')``) instead of record objects: a run's statistics are computed from the records
    file in one streaming pass (:func:`load_columns`), so memory does not grow with every request
    during the run and stays ~8 bytes per value after it. Percentiles stay exact."""

    def __init__(self) -> None:
        self.values: dict[str, array[float]] = {name: array("d") for name in _SAMPLED}
        self._itl_offsets: array[float] = array("d")
        self._itl_tokens: array[float] = array("d")
        self._itl_starts: array[int] = array("q")
        self.requests = self.completed = self.cancelled = self.warmup = 0
        self.abandoned = self.abandoned_tokens = 0  # --cancel-rate: apart from every statistic
        self.completion_total = 0
        self.prompt_total: int | None = None
        self.token_source: Counter[str] = Counter()
        self.chunk_token_source: Counter[str] = Counter()
        self.errors: dict[str, dict[str, Any]] = {}
        self.usage_invalid: dict[str, Any] | None = None  # replies whose usage held an invalid count
        self.start_min: float | None = None
        self.end_max: float | None = None
        self.hosted = HostedTotals()
        self.prefix = PrefixCacheTotals()
        self.pooling = PoolingTotals()
        self.media = MediaTotals()
        # Open loop: every measured request that started, failed ones too (the client's lateness
        # does not depend on how the server answered).
        self.send_lag: array[float] = array("d")
        self.queue: array[float] = array("d")
        self.started = 0
        self.open_start_min, self.open_start_max = float("inf"), float("-inf")

    def add_itl(self, offsets: Sequence[float] | None, tokens: Sequence[float] | None) -> None:
        if not offsets or not tokens or len(offsets) < 2:
            return
        self._itl_starts.append(len(self._itl_offsets))
        self._itl_offsets.extend(offsets)
        self._itl_tokens.extend(tokens)

    def _gaps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gaps between consecutive content chunks, tokens of the later chunk, keep mask): the gap
        from one request's last chunk to the next request's first is masked out."""
        off = np.frombuffer(self._itl_offsets, dtype=float) if len(self._itl_offsets) else np.empty(0)
        if off.size < 2:
            return np.empty(0), np.empty(0), np.empty(0, dtype=bool)
        keep = np.ones(off.size - 1, dtype=bool)
        starts = np.frombuffer(self._itl_starts, dtype=np.int64)
        keep[starts[1:] - 1] = False
        return np.diff(off), np.frombuffer(self._itl_tokens, dtype=float)[1:], keep

    def itl(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-token ITL (values, weights), vectorised over all requests at once."""
        gaps, k, keep = self._gaps()
        keep &= k > 0
        return gaps[keep] / k[keep], k[keep]

    def itl_chunk(self) -> np.ndarray:
        """Chunk-level ITL: every gap between content chunks, whatever they carried."""
        gaps, _, keep = self._gaps()
        return gaps[keep]

    def add(self, row: RequestRecord | _Row) -> None:
        """One record (a RequestRecord, or a requests.jsonl row). Warm-up rows are counted and
        otherwise left out."""
        if row.warmup:
            self.warmup += 1
            return
        self.requests += 1
        start, end = row.start_s, row.end_s
        if start is not None and (self.start_min is None or start < self.start_min):
            self.start_min = start
        if row.scheduled_s is not None:
            queue = row.queue_s or 0.0
            self.queue.append(queue)
            self.send_lag.append(start - row.scheduled_s - queue)
            self.started += 1
            self.open_start_min = min(self.open_start_min, start)
            self.open_start_max = max(self.open_start_max, start)
        if end is not None and (self.end_max is None or end > self.end_max):
            self.end_max = end
        self.hosted.add(row)
        if row.usage_invalid:
            self._note_invalid(row.usage_invalid)
        if not row.ok:
            kind = row.error_kind
            if kind == CANCELLED:
                self.cancelled += 1
            elif kind == ABANDONED:
                self.abandoned += 1
                self.abandoned_tokens += row.partial_tokens or 0
            else:
                e = self.errors.setdefault(kind or "unknown", {"count": 0, "example": row.error})
                e["count"] += 1
            return
        self.completed += 1
        for name, column in self.values.items():
            v = getattr(row, name)
            if v is not None:
                column.append(v)
        self.completion_total += row.completion_tokens or 0
        pt = row.prompt_tokens
        if pt is not None:
            self.prompt_total = (self.prompt_total or 0) + pt
        if row.token_source:
            self.token_source[row.token_source] += 1
        if row.chunk_token_source:
            self.chunk_token_source[row.chunk_token_source] += 1
        self.add_itl(row.chunk_offsets_s, row.chunk_tokens)
        self.prefix.add(row)
        self.pooling.add(row)
        self.media.add(row)

    def _note_invalid(self, fields: dict[str, str]) -> None:
        """summary.usage_invalid: measured replies whose usage held a value that is not a token count
        (measure/usage.py), how often each field was, and the first one seen."""
        if self.usage_invalid is None:
            name, raw = next(iter(fields.items()))
            self.usage_invalid = {"requests": 0, "fields": {}, "example": f"{name} = {raw}"}
        self.usage_invalid["requests"] += 1
        counts = self.usage_invalid["fields"]
        for name in fields:
            counts[name] = counts.get(name, 0) + 1

    @property
    def span_s(self) -> float | None:
        """First measured start to last measured end: the window when no deadline fixed it."""
        if self.start_min is None or self.end_max is None:
            return None
        return self.end_max - self.start_min


class _Row(msgspec.Struct, gc=False):
    """The fields of a requests.jsonl row that the summary needs; msgspec skips the rest in C."""

    ok: bool
    start_s: float
    warmup: bool = False
    scheduled_s: float | None = None
    queue_s: float | None = None
    error_kind: str | None = None
    error: str | None = None
    end_s: float | None = None
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    ttft_content_s: float | None = None
    tpot_s: float | None = None
    decode_tokens_per_s: float | None = None
    e2e_s: float | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    token_source: str | None = None
    chunk_token_source: str | None = None
    chunk_offsets_s: list[float] | None = None
    chunk_tokens: list[float] | None = None
    attempts: int = 1
    rate_limited: int = 0
    retry_wait_s: float = 0.0
    limit_wait_s: float | None = None
    reasoning_tokens: int | None = None
    partial_tokens: int | None = None
    cached_tokens: int | None = None
    cached_tokens_source: str | None = None
    inputs: int | None = None
    documents: int | None = None
    images: int | None = None
    image_bytes: int | None = None
    prompt_image_tokens: int | None = None
    prompt_text_tokens: int | None = None
    audio_seconds: float | None = None
    rtfx: float | None = None
    cache_creation_tokens: int | None = None
    usage_invalid: dict[str, str] | None = None


_BATCH_ROWS = msgspec.json.Decoder(list[_Row])
_ONE_ROW = msgspec.json.Decoder(_Row)


def load_columns(path: Path, *, batch_bytes: int = 4 << 20, into: Columns | None = None) -> Columns:
    """One streaming pass over requests.jsonl, decoded a few MB at a time (one msgspec call per
    batch: ~1 s per million rows). A line a crash cut short is skipped. ``into``: add to these
    columns (several runs pooled: measure/repeats.py) instead of new ones."""
    cols = into if into is not None else Columns()
    add = cols.add
    with open(path, "rb") as fh:
        while True:
            lines = fh.readlines(batch_bytes)
            if not lines:
                break
            try:
                rows = _BATCH_ROWS.decode(b"[" + b",".join(lines) + b"]")
            except msgspec.DecodeError:
                rows = []
                for line in lines:
                    try:
                        rows.append(_ONE_ROW.decode(line))
                    except msgspec.DecodeError:
                        continue
            for row in rows:
                add(row)
    return cols


def compute_metrics(records: Sequence[RequestRecord] | Columns, *, window_s: float | None) -> dict[str, Any]:
    """Everything in summary.json's counts/metrics/token_source/errors, from measured records or
    their columns (warm-up records are left out)."""
    if isinstance(records, Columns):
        cols = records
    else:
        cols = Columns()
        for r in records:
            cols.add(r)
    metrics: dict[str, Any] = {name: summarize(np.frombuffer(col, dtype=float) if len(col) else [])
                               for name, col in cols.values.items()}
    metrics["itl_s"] = summarize(*cols.itl())
    if cols.started:
        metrics["send_lag_s"] = summarize(np.frombuffer(cols.send_lag, dtype=float))
        metrics["queue_s"] = summarize(np.frombuffer(cols.queue, dtype=float))
        span = cols.open_start_max - cols.open_start_min
        metrics["achieved_rate_per_s"] = (cols.started - 1) / span if cols.started > 1 and span > 0 else None
    metrics["itl_chunk_s"] = summarize(cols.itl_chunk())
    rps = cols.completed / window_s if window_s else None
    metrics.update({
        "window_s": window_s,
        "requests_per_s": rps,
        "requests_per_min": rps * 60 if rps is not None else None,
        "output_tokens_per_s": cols.completion_total / window_s if window_s else None,
        "completion_tokens_total": cols.completion_total,
        "prompt_tokens_total": cols.prompt_total,
        "abandoned_tokens_received": cols.abandoned_tokens,
    })
    metrics.update(cols.hosted.metrics(window_s))
    metrics.update(cols.pooling.metrics(window_s, cols.prompt_total))
    metrics.update(cols.media.metrics(window_s, summarize))
    failed = cols.requests - cols.completed - cols.cancelled - cols.abandoned
    return {
        "counts": {"requests": cols.requests, "completed": cols.completed, "failed": failed,
                   "cancelled": cols.cancelled, "abandoned": cols.abandoned, "rate_limited": cols.hosted.rate_limited},
        "metrics": metrics,
        "token_source": dict(cols.token_source),
        "chunk_token_source": dict(cols.chunk_token_source),
        "chunk_tokens_exact": (all(k in EXACT_SOURCES for k in cols.chunk_token_source)
                               if cols.chunk_token_source else None),
        "errors": cols.errors,
        "usage_invalid": cols.usage_invalid,
        "prefix_cache": cols.prefix.block(),
    }
