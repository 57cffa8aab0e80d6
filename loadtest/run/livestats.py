"""Running statistics for the live view: counts and rolling windows, updated once per record at
O(1) cost (the runner calls ``add`` for every record it writes), read twice a second."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLLING = 256
"""Records the rolling TTFT/TPOT medians and the rolling rates look back over."""


@dataclass
class LiveStats:
    sent: int = 0
    done: int = 0
    failed: int = 0
    tokens: int = 0
    t0: float = field(default_factory=time.monotonic)
    ttft: deque[float] = field(default_factory=lambda: deque(maxlen=ROLLING))
    tpot: deque[float] = field(default_factory=lambda: deque(maxlen=ROLLING))
    ends: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=ROLLING))
    server: dict[str, float] | None = None
    """The server's latest /metrics values (running, waiting, kv_cache_usage; any may be missing),
    or None without a scraper. Replaced whole by the scraper's thread, never mutated: a reader
    holding the old dict sees one consistent sample."""

    def add(self, rec: Any) -> None:
        self.done += 1
        if not rec.ok:
            self.failed += getattr(rec, "error_kind", None) != "abandoned"  # a user's choice, not a failure
            return
        if rec.ttft_s is not None:
            self.ttft.append(rec.ttft_s)
        if rec.tpot_s is not None:
            self.tpot.append(rec.tpot_s)
        n = rec.completion_tokens or 0
        self.tokens += n
        self.ends.append((time.monotonic(), n))

    def merge(self, other: LiveStats) -> LiveStats:
        """Two clients' (or two levels') counts together; rolling windows concatenated."""
        out = LiveStats(self.sent + other.sent, self.done + other.done, self.failed + other.failed,
                        self.tokens + other.tokens, min(self.t0, other.t0))
        for name in ("ttft", "tpot", "ends"):
            getattr(out, name).extend([*getattr(self, name), *getattr(other, name)])
        out.server = self.server if self.server is not None else other.server  # one server, seen by both
        return out

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        ends = list(self.ends)
        span = now - ends[0][0] if len(ends) > 1 else 0.0
        return {
            "elapsed_s": now - self.t0, "sent": self.sent, "done": self.done, "failed": self.failed,
            "in_flight": self.sent - self.done,
            "rate_per_s": (len(ends) - 1) / span if span > 0 else None,
            "tokens_per_s": sum(n for _, n in ends[1:]) / span if span > 0 else None,
            "ttft_p50_s": float(np.median(self.ttft)) if self.ttft else None,
            "tpot_p50_s": float(np.median(self.tpot)) if self.tpot else None,
            "server": self.server,
        }
