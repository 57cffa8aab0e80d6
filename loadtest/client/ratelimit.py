"""Client-side request and token budgets (``--rpm-limit``, ``--tpm-limit``), so a run stays under
a provider's limits instead of measuring its 429s.

aiolimiter rather than asyncio-throttle: a token budget needs a *weighted* acquire (a request
costs its estimated tokens), which aiolimiter's ``acquire(amount)`` gives and asyncio-throttle
does not; one leaky-bucket mechanism then serves both limits. The bucket holds 50 ms worth (at
least two requests, or one request's tokens), not a minute's: a minute-sized bucket would let the
first minute run at twice the limit, so the achieved rate would overshoot any run shorter than a
few minutes; a bucket of exactly one request would lose capacity to every late timer wake-up.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from aiolimiter import AsyncLimiter

BURST_S = 0.05


def _bucket(per_minute: float, smallest: float) -> AsyncLimiter:
    """A leaky bucket draining ``per_minute``/60 per second, holding max(BURST_S worth, ``smallest``)."""
    capacity = max(per_minute / 60.0 * BURST_S, smallest)
    return AsyncLimiter(capacity, capacity * 60.0 / per_minute)


class ClientLimits:
    """Both budgets; ``acquire`` waits until a request may go and says how long it waited."""

    def __init__(self, rpm: float | None, tpm: float | None, *, max_request_tokens: int = 1) -> None:
        self._rpm = _bucket(rpm, 2.0) if rpm else None
        self._tpm = _bucket(tpm, min(float(max_request_tokens), tpm)) if tpm else None
        self.enabled = bool(rpm or tpm)

    async def acquire(self, tokens: int) -> float:
        """Seconds waited for capacity (0.0 when none was needed)."""
        if not self.enabled:
            return 0.0
        t0 = perf_counter()
        if self._rpm is not None:
            await self._rpm.acquire(1)
        if self._tpm is not None:
            left = float(tokens)
            while left > 0:  # a request larger than the bucket is charged in bucket-sized pieces
                piece = min(left, self._tpm.max_rate)
                await self._tpm.acquire(piece)
                left -= piece
        return perf_counter() - t0


async def sleep(seconds: float) -> float:
    """Sleep at least ``seconds`` and return the time really slept (the retry wait reported is
    measured, not assumed). At least: uvloop's timers have millisecond granularity and a cached
    loop clock, so a bare sleep can end ~0.5 ms early, and a retry must not beat Retry-After."""
    t0 = perf_counter()
    end = t0 + seconds
    while (left := end - perf_counter()) > 0:
        await asyncio.sleep(left)
    return perf_counter() - t0
