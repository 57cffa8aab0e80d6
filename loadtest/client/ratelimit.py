"""Client-side request and token budgets (``--rpm-limit``, ``--tpm-limit``), so a run stays under
a provider's limits instead of measuring its 429s.

What "N per minute" means here, exactly: **no sliding 60-s window holds more than N** (requests
started, or tokens charged: a request costs its prompt's estimated tokens + its max tokens), which
is how providers count; and within the minute the budget is **paced**, N/60 per second, because
providers also enforce it over shorter windows (OpenAI: "60,000 requests/minute may be enforced as
1,000 requests/second"). So ``--rpm-limit 1`` sends one request at once and the next 60 s later
(never two in the first millisecond), and ``--rpm-limit 120`` one every 0.5 s. Pacing is GCRA (a
virtual schedule) with ``BURST_S`` of tolerance: a request may go up to 50 ms before its turn, so
the event loop waking a millisecond late costs the rate nothing (a strict one-per-interval
schedule would lose every late wake-up); the 60-s window is kept exactly, from the recorded starts.
FIFO: requests go in the order they asked. A request that costs more tokens than the whole
budget could never go; such budgets are refused before the run (:func:`impossible_tpm`), and one
found later (a session's history grew) is charged the whole budget, so it waits at most a minute.

Not aiolimiter's leaky bucket any more: its bucket had to hold two requests (a burst of two at any
rate: --rpm-limit 1 sent two requests at once), its FIFO is by amount (small requests overtake
large ones), and its clock is the loop's cached one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter

BURST_S = 0.05
WINDOW_S = 60.0


class Budget:
    """``per_minute`` units (requests or tokens): paced, and never more than that in 60 s."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.unit_s = WINDOW_S / per_minute
        self._due = float("-inf")  # when the next unit is due on the paced schedule (GCRA's TAT)
        self._window: deque[tuple[float, float]] = deque()  # (start, amount) of the last 60 s
        self._in_window = 0.0
        self._lock = asyncio.Lock()  # FIFO: waiters go in the order they came

    def ready_at(self, now: float, amount: float) -> float:
        """The earliest time (>= now) when ``amount`` may go."""
        window = self._window
        while window and window[0][0] <= now - WINDOW_S:
            self._in_window -= window.popleft()[1]
        at = max(now, self._due - BURST_S)
        excess = self._in_window + amount - self.per_minute
        if excess > 1e-9:  # wait until enough of the window's oldest starts are 60 s old
            for started, used in window:
                excess -= used
                if excess <= 1e-9:
                    at = max(at, started + WINDOW_S)
                    break
        return at

    async def acquire(self, amount: float = 1.0) -> None:
        amount = min(amount, self.per_minute)  # more than the budget (refused up front): the whole minute's
        async with self._lock:
            while (at := self.ready_at(now := perf_counter(), amount)) > now:
                await sleep(at - now)
            self._due = max(self._due, now) + amount * self.unit_s
            self._window.append((now, amount))
            self._in_window += amount


class ClientLimits:
    """Both budgets; ``acquire`` waits until a request may go and says how long it waited."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self._rpm = Budget(rpm) if rpm else None
        self._tpm = Budget(tpm) if tpm else None
        self.enabled = bool(rpm or tpm)

    async def acquire(self, tokens: int) -> float:
        """Seconds waited for capacity (0.0 when none was needed)."""
        if not self.enabled:
            return 0.0
        t0 = perf_counter()
        if self._rpm is not None:
            await self._rpm.acquire(1.0)
        if self._tpm is not None and tokens > 0:
            await self._tpm.acquire(float(tokens))
        return perf_counter() - t0


def impossible_tpm(tpm: float | None, largest_tokens: int) -> str | None:
    """Why a --tpm-limit can never let the largest request go (None: it can)."""
    if tpm and largest_tokens > tpm:
        return (f"--tpm-limit {tpm:g} is smaller than one request's cost ({largest_tokens} tokens: its prompt + "
                f"--max-tokens, as a provider charges it): no request could ever be sent; raise --tpm-limit to "
                f"at least {largest_tokens} or lower --max-tokens")
    return None


async def sleep(seconds: float) -> float:
    """Sleep at least ``seconds`` and return the time really slept (the retry wait reported is
    measured, not assumed). At least: uvloop's timers have millisecond granularity and a cached
    loop clock, so a bare sleep can end ~0.5 ms early, and a retry must not beat Retry-After."""
    t0 = perf_counter()
    end = t0 + seconds
    while (left := end - perf_counter()) > 0:
        await asyncio.sleep(left)
    return perf_counter() - t0
