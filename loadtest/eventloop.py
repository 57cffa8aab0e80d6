"""The event loop every command runs on: uvloop where installed (its per-callback and per-read
overhead is several times lower than asyncio's, and the client's own overhead is what its
accuracy rests on), else asyncio's default."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For ``asyncio.Runner(loop_factory=...)``: uvloop's, or None for asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
