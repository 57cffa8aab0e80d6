"""The cyclic garbage collector during a run: off automatically, on a timer instead.

Every arriving piece allocates objects, so the automatic collector would run every few hundred
pieces: ~6-10% of the client's CPU at 512 streams, in pauses that land on arrival stamps. The
run therefore disables it (start-up objects frozen out of its view) and this task collects
instead, so long runs stay bounded in memory without per-allocation pauses.
"""

from __future__ import annotations

import asyncio
import gc


async def collect_garbage(interval_s: float = 1.0, full_every: int = 30) -> None:
    """Young generations every ``interval_s``, everything every ``full_every`` intervals. Records
    are not kept during a run, so each pass scans little more than what the last second made."""
    n = 0
    while True:
        await asyncio.sleep(interval_s)
        n += 1
        gc.collect(2 if n % full_every == 0 else 1)
