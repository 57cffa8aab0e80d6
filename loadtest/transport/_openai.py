"""``--transport openai``: the official ``openai`` SDK (AsyncOpenAI) behind the same interface,
for users who want the SDK's exact behaviour (its HTTP client, SSE parser and typed models).

Each chunk the SDK yields is stamped as it is handed over, then written back as one SSE event of
its JSON (``model_dump_json``), so one parser (loadtest.measure.sse / chunks) interprets every transport.
What the SDK adds per chunk (SSE decode, JSON parse, pydantic model) is inside those stamps: that
is the point of comparing it with the default transport (benchmarks/client_overhead.py). The
SDK's own retries are off (``max_retries=0``): 429s are retried by loadtest.client.sender, visibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from time import perf_counter_ns
from typing import Any
from urllib.parse import parse_qsl

import httpx

from loadtest.errors import ConfigError
from loadtest.transport._giveup import GiveUp, event_hook
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
)

try:
    import openai
    from openai import AsyncOpenAI, AsyncStream
except ImportError:  # pragma: no cover - the extra is not installed
    openai = None  # type: ignore[assignment]


def _kinds() -> dict[str, tuple[Any, Any]]:
    """Path -> (non-stream model, stream chunk model) of the SDK."""
    from openai.types import Completion
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    return {"/chat/completions": (ChatCompletion, ChatCompletionChunk), "/completions": (Completion, Completion),
            "/responses": (Response, ResponseStreamEvent)}


def _keep_headers(ex: Exchange, headers: httpx.Headers) -> None:
    kept = {k.lower(): v for k, v in headers.items() if is_limit_header(k.lower().encode())}
    ex.limit_headers = kept or None


class OpenAITransport:
    def __init__(self, base_url: str, *, max_connections: int, headers: dict[str, str], query: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if openai is None:
            raise ConfigError("--transport openai needs the openai package: pip install 'loadtest[openai]'")
        self.base_url = base_url.rstrip("/")
        self.limits: tuple[int, int] | None = None
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=max_connections,
                                                     max_keepalive_connections=max_connections),
                                 timeout=httpx.Timeout(None), verify=ssl_context if ssl_context is not None else True,
                                 event_hooks={"request": [event_hook]})  # --cancel-after (see _giveup.py)
        self._http, self._headers, self._query = http, dict(headers), dict(parse_qsl(query))
        # No key (a local server, or Azure's api-key header): the SDK must send no Authorization.
        keyless = not any(k.lower() == "authorization" for k in headers)
        self._options: Any = {"headers": {"Authorization": openai.Omit()}} if keyless else {}
        self._client = AsyncOpenAI(api_key="unused", base_url=self.base_url, max_retries=0, http_client=http,
                                   default_headers=dict(headers), default_query=dict(parse_qsl(query)) or None)
        self._kinds = _kinds()

    async def preconnect(self, n: int, timeout_s: float) -> bool:
        """The SDK opens connections on demand."""
        return False

    async def post(self, path: str, body: bytes, timeout_s: float, abandon_after_s: float | None = None,
                   headers: dict[str, str] | None = None, affinity: object | None = None) -> Exchange:
        options = {**self._options, "headers": {**self._options.get("headers", {}), **headers}} if headers else self._options
        plain, chunk = self._kinds.get(path, (object, object))
        stream = b'"stream":true' in body
        ex = Exchange(t_start_ns=perf_counter_ns())
        giveup = GiveUp(abandon_after_s, ex.t_start_ns) if abandon_after_s is not None else None
        events: Any = None
        try:
            async with asyncio.timeout(timeout_s), asyncio.timeout(None) as scope:  # scope: see _giveup.py
                if giveup is not None:
                    giveup.scope = scope
                with giveup if giveup is not None else contextlib.nullcontext():
                    if not stream:
                        raw = await self._client.post(path, cast_to=httpx.Response, content=body,
                                                      options=options)
                        ex.status, ex.content_type = raw.status_code, raw.headers.get("content-type", "")
                        _keep_headers(ex, raw.headers)
                        data = raw.content
                        ex.t_end_ns = perf_counter_ns()
                        ex.pieces.append((ex.t_end_ns, data))
                        return ex
                    events = await self._client.post(path, cast_to=plain, content=body, stream=True,
                                                     options=options,
                                                     stream_cls=AsyncStream[chunk])  # type: ignore[valid-type]
                ex.status, ex.content_type = events.response.status_code, "text/event-stream"
                _keep_headers(ex, events.response.headers)
                pieces, size = ex.pieces, 0
                async for item in events:
                    t = perf_counter_ns()
                    piece = b"data: " + item.model_dump_json(exclude_unset=True).encode() + b"\n\n"
                    pieces.append((t, piece))
                    size += len(piece)
                    if self.limits and (message := runaway_message(len(pieces), size, self.limits)):
                        ex.error_kind, ex.error = RUNAWAY, message
                        await events.close()
                        return ex
                ex.t_end_ns = pieces[-1][0] if len(pieces) else perf_counter_ns()
        except TimeoutError:
            if giveup is not None and giveup.fired():
                mark_abandoned(ex, giveup.after_s)
                if events is not None:  # httpcore already closed the connection; this closes the response
                    await events.close()
            else:
                ex.error_kind, ex.error = TIMEOUT, f"no complete response within {timeout_s:g} s"
        except openai.APIStatusError as exc:
            ex.status, ex.content_type = exc.status_code, exc.response.headers.get("content-type", "")
            _keep_headers(ex, exc.response.headers)
            ex.t_end_ns = perf_counter_ns()
            ex.pieces.append((ex.t_end_ns, exc.response.content))
        except openai.APITimeoutError:
            ex.error_kind, ex.error = TIMEOUT, f"no complete response within {timeout_s:g} s"
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            kind = DISCONNECT if ex.status is not None or isinstance(cause, httpx.RemoteProtocolError) else CONNECT
            limit = out_of_files(exc)
            ex.error_kind, ex.error = (CLIENT_LIMIT, limit) if limit else (kind, str(cause or exc) or type(exc).__name__)
        except openai.OpenAIError as exc:  # the SDK's own stream errors (an `error` event, bad JSON)
            ex.error_kind, ex.error = PROTOCOL, f"{type(exc).__name__}: {exc}"
        return ex

    def release(self, affinity: object) -> None:
        """Connections are the pool's own here: nothing is kept per affinity."""

    async def get(self, path: str, timeout_s: float) -> Exchange:
        ex = Exchange(t_start_ns=perf_counter_ns())
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self._http.get(self.base_url + path, headers=self._headers, params=self._query)
            ex.status, ex.content_type = resp.status_code, resp.headers.get("content-type", "")
            ex.t_end_ns = perf_counter_ns()
            ex.pieces.append((ex.t_end_ns, resp.content))
        except TimeoutError:
            ex.error_kind, ex.error = TIMEOUT, f"no complete response within {timeout_s:g} s"
        except httpx.HTTPError as exc:
            ex.error_kind, ex.error = CONNECT, str(exc) or type(exc).__name__
        return ex

    async def aclose(self) -> None:
        await self._client.close()
