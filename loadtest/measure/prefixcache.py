"""summary.json's ``prefix_cache``: how much of the prompts the server answered from its prefix
cache, by the records' ``cached_tokens`` (usage.prompt_tokens_details.cached_tokens, else llama.cpp's
timings.cache_n), and what a hit saved: TTFT of the requests that hit against those that missed.

Fed one completed measured record at a time from the summary's streaming pass (measure/metrics.py),
so it keeps running sums and two TTFT columns (8 bytes a request), never the records."""

from __future__ import annotations

from array import array
from typing import Any, Protocol

import numpy as np

SOURCES = {"usage": "usage", "timings": "llama.cpp timings", "anthropic": "anthropic usage"}
"""record.cached_tokens_source -> the block's source."""


class _Row(Protocol):
    prompt_tokens: int | None
    cached_tokens: int | None
    cached_tokens_source: str | None
    cache_creation_tokens: int | None
    ttft_s: float | None


class PrefixCacheTotals:
    def __init__(self) -> None:
        self.cached = self.prompt = self.hits = self.misses = 0
        self.sources: set[str] = set()
        self.created: int | None = None  # cache_creation_tokens summed (the Messages API's; None: none reported)
        self.ttft_hit: array[float] = array("d")
        self.ttft_miss: array[float] = array("d")

    def add(self, row: _Row) -> None:
        """One completed measured record; those that report no cached_tokens (or no prompt_tokens)
        are left out, so the rate is over the requests the server spoke for."""
        cached, prompt = row.cached_tokens, row.prompt_tokens
        if cached is None or prompt is None:
            return
        self.cached += cached
        self.prompt += prompt
        self.sources.add(SOURCES.get(row.cached_tokens_source or "", "usage"))
        if row.cache_creation_tokens is not None:
            self.created = (self.created or 0) + row.cache_creation_tokens
        if cached > 0:
            self.hits += 1
            if row.ttft_s is not None:
                self.ttft_hit.append(row.ttft_s)
        else:
            self.misses += 1
            if row.ttft_s is not None:
                self.ttft_miss.append(row.ttft_s)

    def block(self) -> dict[str, Any]:
        """Every figure None (not 0) when no record reported cached tokens (source 'none')."""
        reported = self.hits + self.misses
        return {
            "source": " + ".join(sorted(self.sources)) if reported else "none",
            "requests_reporting": reported,
            "hit_rate": self.cached / self.prompt if self.prompt else None,
            "cached_tokens_total": self.cached if reported else None,
            "prompt_tokens_total": self.prompt if reported else None,
            "hits": self.hits if reported else None,
            "misses": self.misses if reported else None,
            "cache_creation_tokens_total": self.created,
            "ttft_hit_s": _stats(self.ttft_hit),
            "ttft_miss_s": _stats(self.ttft_miss),
        }


def _stats(values: array[float]) -> dict[str, Any]:
    if not len(values):
        return {"count": 0, "p50": None, "mean": None}
    v = np.frombuffer(values, dtype=float)
    return {"count": int(v.size), "p50": float(np.percentile(v, 50)), "mean": float(v.mean())}


def console_line(summary: dict[str, Any]) -> list[str]:
    """One line when the server reported cached tokens, none otherwise."""
    b = summary.get("prefix_cache")
    if not b or b.get("hit_rate") is None:
        return []
    hit, miss = b["ttft_hit_s"], b["ttft_miss_s"]

    def ms(s: dict[str, Any]) -> str:
        return "-" if s["p50"] is None else f"{s['p50'] * 1000:.1f} ms"

    line = (f"prefix cache ({b['source']}): hit rate {b['hit_rate']:.1%} of prompt tokens, {b['hits']} requests hit, "
            f"{b['misses']} missed; TTFT p50 hits {ms(hit)}, misses {ms(miss)}")
    return [line]
