"""HTTP transports behind one small interface.

Every transport returns the same :class:`Exchange`: the status, and the body bytes exactly as they
arrived, each piece stamped with ``time.perf_counter_ns()`` *before* anything parses it. Nothing on
the per-chunk path interprets SSE or JSON; that happens once per request in :mod:`loadtest.sse`
and :mod:`loadtest.record`, so one parser serves every transport and the hot path stays a stamp
and an append.
"""

from __future__ import annotations

from .base import Exchange, Transport, TransportKind, make_transport, normalize_base_url

__all__ = ["Exchange", "Transport", "TransportKind", "make_transport", "normalize_base_url"]
