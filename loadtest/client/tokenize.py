"""The server's own tokenizer, asked over HTTP: ``POST /tokenize`` (llama.cpp, vLLM, SGLang) to
count prompts of exact length before a run and each response's chunks after it, and ``GET /props``
(llama.cpp) or ``/models`` (vLLM) for the context size. Never during the measured window: only
measured requests reach the server then.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from loadtest.measure.retokenize import TextLog, refine_run
from loadtest.redact import redact

if TYPE_CHECKING:
    import httpx

# httpx is imported where it is used: a run whose server has no /tokenize never pays for it
# (httpx pulls in its command line, rich and click: ~0.1 s of start-up).

_CONCURRENCY = 16


def root_url(base_url: str) -> str:
    """Engines serve /tokenize and /props beside /v1, not under it."""
    return re.sub(r"/v\d+/?$", "", base_url.rstrip("/"))  # /v1, and /v2 (rerank)


class TokenizeEndpoint:
    """A server's /tokenize and the request shape it answers."""

    def __init__(self, url: str, mode: str, model: str | None, headers: dict[str, str]) -> None:
        self.url, self.mode, self.model, self.headers = url, mode, model, headers
        self.last_status: int | None = None

    def _body(self, text: str) -> bytes:
        if self.mode == "pieces":
            return orjson.dumps({"content": text, "with_pieces": True})
        if self.mode == "content":
            return orjson.dumps({"content": text})
        return orjson.dumps({"model": self.model, "prompt": text, "add_special_tokens": False})

    async def _call(self, client: httpx.AsyncClient, text: str) -> list[Any] | None:
        import httpx

        try:
            r = await client.post(self.url, content=self._body(text), headers=self.headers)
        except httpx.HTTPError:
            return None
        self.last_status = r.status_code
        if r.status_code != 200:
            return None
        try:
            tokens = orjson.loads(r.content).get("tokens")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return tokens if isinstance(tokens, list) else None

    async def chunk_counts(self, client: httpx.AsyncClient, texts: list[str]) -> list[int] | None:
        """Tokens per chunk text, or None when the server would not say."""
        if self.mode == "pieces":
            tokens = await self._call(client, "".join(texts))
            return None if tokens is None else pieces_per_chunk(tokens, texts)
        counts = []
        for text in texts:
            tokens = await self._call(client, text)
            if tokens is None:
                return None
            counts.append(len(tokens))
        return counts


def pieces_per_chunk(tokens: list[Any], texts: list[str]) -> list[int] | None:
    """Each token goes to the chunk holding its last byte; None when the pieces do not spell the
    text (a tokenizer that normalises it), so positions cannot be trusted."""
    ends, pos = [], 0
    for t in texts:
        pos += len(t.encode())
        ends.append(pos)
    counts = [0] * len(texts)
    at, j = 0, 0
    for tok in tokens:
        piece = tok.get("piece") if isinstance(tok, dict) else None
        if isinstance(piece, str):
            at += len(piece.encode())
        elif isinstance(piece, list):  # llama.cpp: the bytes of a piece that is not valid UTF-8
            at += len(piece)
        else:
            return None
        while j < len(ends) - 1 and at > ends[j]:
            j += 1
        counts[j] += 1
    return counts if at == pos else None


async def probe_chunks(base_url: str, model: str | None, headers: dict[str, str],
                timeout_s: float = 5.0) -> TokenizeEndpoint | None:
    """Whether the server tokenizes, and how: one or two small requests, after the run."""
    import httpx

    url = root_url(base_url) + "/tokenize"
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        for mode in ("pieces", "prompt"):
            ep = TokenizeEndpoint(url, mode, model, {**headers, "Content-Type": "application/json"})
            tokens = await ep._call(client, "Hello world")
            if tokens:
                if mode == "pieces" and not isinstance(tokens[0], dict):
                    ep.mode = "content"
                return ep
            if ep.last_status not in (400, 422):  # no such endpoint (404), or no server answer
                return None
    return None


class ServerCounter:
    """Counts with the server's own tokenizer: llama.cpp's ``POST /tokenize {content}`` or vLLM's
    ``{model, prompt}`` (both fields are sent; each server ignores the other's)."""

    def __init__(self, root_url: str, model: str | None, headers: dict[str, str]) -> None:
        import httpx

        self.name = f"server:{root_url}/tokenize"
        self._client = httpx.Client(base_url=root_url, headers=headers, timeout=30.0)
        self._model = model

    def count(self, text: str) -> int:
        body: dict[str, Any] = {"content": text, "prompt": text, "add_special": False, "add_special_tokens": False}
        if self._model:
            body["model"] = self._model
        r = self._client.post("/tokenize", json=body)
        r.raise_for_status()
        doc = r.json()
        tokens = doc.get("tokens")
        return len(tokens) if isinstance(tokens, list) else int(doc["count"])

    def works(self) -> bool:
        import httpx

        try:
            return self.count("hello world") >= 1
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False

    def close(self) -> None:
        self._client.close()


def context_limit(base_url: str, headers: dict[str, str]) -> int | None:
    """The server's context in tokens: llama.cpp's /props n_ctx (per slot), vLLM's max_model_len."""
    import httpx

    with httpx.Client(headers=headers, timeout=10.0) as client:
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError, TypeError):
            r = client.get(root_url(base_url) + "/props")
            if r.status_code == 200:
                doc = r.json()
                n = (doc.get("default_generation_settings") or {}).get("n_ctx") or doc.get("n_ctx")
                if isinstance(n, int) and n > 0:
                    return n
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError, TypeError, IndexError):
            r = client.get(base_url.rstrip("/") + "/models")
            n = (r.json().get("data") or [{}])[0].get("max_model_len")
            if isinstance(n, int) and n > 0:
                return n
    return None


async def refine_records(log: TextLog | None, records: Path, *, base_url: str, model: str | None,
                         headers: dict[str, str], stopped: bool) -> dict[str, Any]:
    """The post-run pass (measure/retokenize.py), when chunk texts were kept and the server answers
    /tokenize (probed now, after the run, so the measured requests are the only ones the server saw
    during it); not after Ctrl-C or an abort. Returns what summary.run says about it."""
    endpoint, refined = None, None
    if log is not None:
        log.close()
        if not stopped and log.count:
            try:
                endpoint = await asyncio.wait_for(probe_chunks(base_url, model, headers), 10.0)
            except asyncio.TimeoutError:
                endpoint = None
            if endpoint is not None:
                import httpx

                async with httpx.AsyncClient(timeout=30.0,
                                             limits=httpx.Limits(max_connections=_CONCURRENCY)) as client:
                    refined = await refine_run(log, lambda texts: endpoint.chunk_counts(client, texts), records,
                                               concurrency=_CONCURRENCY)
        log.discard()
    return {"tokenize_endpoint": redact(endpoint.url) if endpoint is not None else None,
            "chunk_tokens_refined": refined.rows if refined is not None else None,
            "tokenize_to_usage_ratio": refined.ratio if refined is not None else None}
