"""Letting go of a request on purpose (--cancel-after) on the httpx-based transports (httpx, openai).

httpx has no "abandon at" of its own, and a plain ``asyncio.timeout(S)`` around the request would
also run during connection set-up, so a request let go "at once" would never reach the server. So
the deadline is an ``asyncio.timeout`` scope left unarmed until httpcore reports, through its
``trace`` request extension, that the request body was written; it is then set to S after the
request start (at once when that is past). Its expiry cancels the task inside httpcore, whose
clean-up closes a connection whose response was not read to its end (never returned to the pool
half-read): the server sees the disconnect.

The trace callback reaches the request by an httpx ``request`` event hook reading a context
variable (:func:`event_hook`), because the openai SDK builds its requests itself; the context
variable is the running task's, so concurrent requests never see each other's deadline.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any, Self

import httpx

from loadtest.transport.base import abandon_delay_s

_CURRENT: ContextVar[GiveUp | None] = ContextVar("loadtest_giveup", default=None)


class GiveUp:
    """One request's planned abandonment: ``after_s`` seconds after ``t_start_ns``, never before
    its body was written."""

    def __init__(self, after_s: float, t_start_ns: int) -> None:
        self.after_s = after_s
        self.t_start_ns = t_start_ns
        self.scope: asyncio.Timeout | None = None

    async def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace extension: arm the deadline once the request is on the wire
        (``http11.send_request_body.complete``, ``http2.send_request_body.complete``)."""
        if name.endswith("send_request_body.complete") and self.scope is not None:
            loop = asyncio.get_running_loop()
            self.scope.reschedule(loop.time() + abandon_delay_s(self.after_s, self.t_start_ns))

    def fired(self) -> bool:
        return self.scope is not None and self.scope.expired()

    def __enter__(self) -> Self:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


async def event_hook(request: httpx.Request) -> None:
    """httpx ``request`` event hook: hands the running task's GiveUp (if any) to httpcore."""
    giveup = _CURRENT.get()
    if giveup is not None:
        request.extensions["trace"] = giveup.trace
