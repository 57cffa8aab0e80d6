"""HTTP transports behind one small interface.

Every transport returns the same :class:`Exchange`: the status, and the body bytes exactly as they
arrived, each piece stamped with ``time.perf_counter_ns()`` *before* anything parses it. Nothing on
the per-chunk path interprets SSE or JSON; that happens once per request in :mod:`loadtest.measure.sse`
and :mod:`loadtest.measure.record`, so one parser serves every transport and the hot path stays a stamp
and an append.
"""

from __future__ import annotations

import ssl

from loadtest.errors import ConfigError
from loadtest.transport.base import Exchange, Transport, TransportKind, normalize_base_url

__all__ = ["Exchange", "Transport", "TransportKind", "make_transport", "normalize_base_url"]


def make_transport(kind: TransportKind, base_url: str, *, max_connections: int, headers: dict[str, str],
                   query: str = "", ssl_context: ssl.SSLContext | None = None) -> Transport:
    """A transport for ``base_url``. ``query`` is appended to every request path (Azure's
    api-version); ``ssl_context`` replaces the default verifying one (``--insecure``). Here, not in
    base.py, so that base.py imports none of the transports that import it."""
    if kind == "fast":
        from loadtest.transport._fast import FastTransport

        return FastTransport(base_url, max_connections=max_connections, headers=headers, query=query,
                             ssl_context=ssl_context)
    if kind == "httpx":
        from loadtest.transport._httpx import HttpxTransport

        return HttpxTransport(base_url, max_connections=max_connections, headers=headers, query=query,
                              ssl_context=ssl_context)
    if kind == "openai":
        from loadtest.transport._openai import OpenAITransport

        return OpenAITransport(base_url, max_connections=max_connections, headers=headers, query=query,
                               ssl_context=ssl_context)
    raise ConfigError(f"unknown transport {kind!r} (choose fast, httpx or openai)")
