"""The httpx transport: the card's HTTP client, kept for TLS-heavy or proxied set-ups
(HTTP proxies from the environment, HTTP/2 gateways) where a full client matters more than
per-chunk cost. Same Exchange as the fast transport, stamped on each raw piece."""

from __future__ import annotations

import asyncio
import ssl
from time import perf_counter_ns

import httpx

from loadtest import __version__
from loadtest.transport._giveup import GiveUp
from loadtest.transport.base import (
    CLIENT_LIMIT,
    CONNECT,
    DISCONNECT,
    PROTOCOL,
    RUNAWAY,
    TIMEOUT,
    Exchange,
    is_limit_header,
    mark_abandoned,
    out_of_files,
    runaway_message,
    with_query,
)


class HttpxTransport:
    def __init__(self, base_url: str, *, max_connections: int, headers: dict[str, str], query: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._query = query
        self.limits: tuple[int, int] | None = None  # see base.response_limits
        # httpx's defaults (100 connections, 5 s timeouts) would queue requests silently and cut off
        # long generations; the pool is sized to the load and the deadline is ours (post()).
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            limits=limits, timeout=httpx.Timeout(None), verify=ssl_context if ssl_context is not None else True,
            headers={"User-Agent": f"loadtest/{__version__}", "Accept-Encoding": "identity", **headers})

    async def preconnect(self, n: int, timeout_s: float) -> bool:
        """httpx opens connections on demand; its first requests include connection set-up."""
        return False

    async def _exchange(self, method: str, path: str, body: bytes | None, timeout_s: float,
                        abandon_after_s: float | None = None, headers: dict[str, str] | None = None) -> Exchange:
        ex = await self._attempt(method, path, body, timeout_s, perf_counter_ns(), abandon_after_s, headers)
        if ex.error_kind in (PROTOCOL, DISCONNECT) and ex.status is None and not ex.pieces:
            # A kept-alive connection the server had already closed: nothing came back, so the
            # request never reached it. Retry once on a fresh connection, as the fast transport
            # and browsers do (the latency still counts from the first attempt).
            ex = await self._attempt(method, path, body, timeout_s, ex.t_start_ns, abandon_after_s, headers)
        return ex

    async def _attempt(self, method: str, path: str, body: bytes | None, timeout_s: float,
                       t_start_ns: int, abandon_after_s: float | None = None,
                       extra: dict[str, str] | None = None) -> Exchange:
        ex = Exchange(t_start_ns=t_start_ns)
        giveup = GiveUp(abandon_after_s, t_start_ns) if abandon_after_s is not None else None
        try:
            async with asyncio.timeout(timeout_s), asyncio.timeout(None) as scope:  # scope: see _giveup.py
                headers = {"Content-Type": "application/json", **(extra or {})} if body is not None else None
                if giveup is not None:
                    giveup.scope = scope
                extensions = {"trace": giveup.trace} if giveup is not None else None
                async with self._client.stream(method, with_query(self.base_url + path, self._query), content=body,
                                               headers=headers, extensions=extensions) as resp:
                    ex.status = resp.status_code
                    ex.content_type = resp.headers.get("content-type", "")
                    kept = {k: v for k, v in resp.headers.items() if is_limit_header(k.lower().encode())}
                    ex.limit_headers = {k.lower(): v for k, v in kept.items()} or None
                    pieces = ex.pieces
                    size = 0
                    async for piece in resp.aiter_raw():
                        pieces.append((perf_counter_ns(), piece))
                        size += len(piece)  # httpx is not the per-token path; a check per piece is fine
                        if self.limits and (message := runaway_message(len(pieces), size, self.limits)):
                            ex.error_kind, ex.error = RUNAWAY, message
                            return ex
                    ex.t_end_ns = pieces[-1][0] if pieces else perf_counter_ns()
        except TimeoutError:
            if giveup is not None and giveup.fired():
                mark_abandoned(ex, giveup.after_s)
            else:
                ex.error_kind, ex.error = TIMEOUT, f"no complete response within {timeout_s:g} s"
        except httpx.ConnectError as exc:
            limit = out_of_files(exc)
            ex.error_kind, ex.error = (CLIENT_LIMIT, limit) if limit else (CONNECT, str(exc) or "connection failed")
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            kind = DISCONNECT if ex.status is not None or "disconnect" in str(exc).lower() else PROTOCOL
            ex.error_kind, ex.error = kind, str(exc) or type(exc).__name__
        except httpx.HTTPError as exc:
            ex.error_kind, ex.error = CONNECT, f"{type(exc).__name__}: {exc}"
        return ex

    async def post(self, path: str, body: bytes, timeout_s: float, abandon_after_s: float | None = None,
                   headers: dict[str, str] | None = None, affinity: object | None = None) -> Exchange:
        return await self._exchange("POST", path, body, timeout_s, abandon_after_s, headers)

    def release(self, affinity: object) -> None:
        """Connections are the pool's own here: nothing is kept per affinity."""

    async def get(self, path: str, timeout_s: float) -> Exchange:
        return await self._exchange("GET", path, None, timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()
