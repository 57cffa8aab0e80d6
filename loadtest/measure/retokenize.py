"""Exact tokens per chunk after the run, from the server's own ``/tokenize`` (llama.cpp, vLLM, SGLang).

During the run a request whose per-chunk counts are only estimated (the first-chunk rule, see
:mod:`loadtest.chunk_tokens`) leaves its chunk texts in a side file next to requests.jsonl (on disk,
so memory does not grow). After the measured window, never during it, each response is tokenized
by the server and requests.jsonl is rewritten with the exact per-chunk counts and the TPOT that
follows from them. Statistics are computed from the file afterwards, so they see the exact counts.

Two ways to count, chosen by a probe after the run (nothing but measured requests reaches the
server during it):
- ``pieces`` (llama.cpp ``with_pieces``): one call per response, each token's bytes mapped to the
  chunk its last byte falls in: exactly the split the server streamed;
- ``content`` / ``prompt`` (llama.cpp without pieces, vLLM/SGLang): one call per chunk text.
Counts are reconciled to the request's usage total either way.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from loadtest.redact import redact
from loadtest.measure.chunk_tokens import TEXT_SHARE, TOKENIZE_ENDPOINT, reconcile, tpot_from

SIDE_FILE = ".chunk_texts.jsonl"
_CONCURRENCY = 16
_BATCH = 256


def root_url(base_url: str) -> str:
    """/tokenize lives at the server root, not under /v1."""
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


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


async def probe(base_url: str, model: str | None, headers: dict[str, str],
                timeout_s: float = 5.0) -> TokenizeEndpoint | None:
    """Whether the server tokenizes, and how; one or two small requests before the run."""
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


class TextLog:
    """The side file: one line per request whose per-chunk counts are estimated. Written during the
    run (buffered, no flush per line), read once after it; capped at ``max_bytes`` on disk."""

    def __init__(self, directory: Path, max_bytes: int = 256 << 20) -> None:
        self.path = directory / SIDE_FILE
        self.max_bytes = max_bytes
        self._fh: IO[bytes] | None = None  # opened at the first write: no file when nothing is estimated
        self.count = 0
        self.bytes = 0

    def write(self, request_id: int, texts: list[str]) -> None:
        if self.bytes > self.max_bytes:
            return  # requests beyond the cap keep their estimate
        if self._fh is None:
            self._fh = open(self.path, "wb")
        line = orjson.dumps({"id": request_id, "texts": texts}) + b"\n"
        self._fh.write(line)
        self.bytes += len(line)
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def discard(self) -> None:
        """A run that stopped short (an error, Ctrl-C, an abort) is not refined: no side file is left."""
        self.close()
        self.path.unlink(missing_ok=True)


def text_log(directory: Path, stream: bool, tokenizer_given: bool) -> TextLog | None:
    """A side file for the run when refining can help: streamed, and no --tokenizer counts chunks."""
    return TextLog(directory) if stream and not tokenizer_given else None


class Refined:
    """What the pass did: rows made exact, and how the server's counts compared with usage (the sum
    of its per-chunk counts over the sum of completion_tokens, same rows: ~1.0 when the endpoint
    tokenizes as the model generated)."""

    def __init__(self) -> None:
        self.rows = 0
        self.counted = 0
        self.usage = 0

    @property
    def ratio(self) -> float | None:
        return self.counted / self.usage if self.usage else None


def _refined(row: dict[str, Any], counts: list[int]) -> bool:
    """Rewrite one requests.jsonl row with exact per-chunk counts; False when they do not fit it."""
    offsets, total = row.get("chunk_offsets_s"), row.get("completion_tokens")
    if not row.get("ok") or row.get("chunk_token_source") != TEXT_SHARE or not offsets or not total \
            or len(offsets) != len(counts):
        return False
    tokens = reconcile(counts, total)
    row["chunk_tokens"], row["chunk_token_source"] = tokens, TOKENIZE_ENDPOINT
    rates = tpot_from(offsets, tokens, total)
    row["tpot_s"], row["decode_tokens_per_s"] = rates if rates is not None else (None, None)
    return True


async def refine_run(log: TextLog, endpoint: TokenizeEndpoint, records: Path, *, budget_s: float = 300.0) -> Refined:
    """Count every logged response's chunks with the server and rewrite ``records`` in place (via a
    temporary file, one batch of responses in memory at a time). Rows left when ``budget_s`` runs
    out keep their estimate. The side file is removed."""
    done = Refined()
    deadline = time.monotonic() + budget_s
    tmp = records.with_suffix(".jsonl.tmp")
    sem = asyncio.Semaphore(_CONCURRENCY)
    try:
        async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=_CONCURRENCY)) as client:

            async def count(texts: list[str]) -> list[int] | None:
                async with sem:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    try:  # a server that drips bytes would outlast every per-read timeout
                        return await asyncio.wait_for(endpoint.chunk_counts(client, texts), left)
                    except asyncio.TimeoutError:
                        return None

            with open(log.path, "rb") as side, open(records, "rb") as src, open(tmp, "wb") as dst:
                while True:
                    batch = [orjson.loads(line) for line in side.readlines(_BATCH * 4096)]
                    if not batch:
                        break
                    results = await asyncio.gather(*(count(e["texts"]) for e in batch))
                    wanted = {e["id"]: c for e, c in zip(batch, results) if c is not None}
                    last = batch[-1]["id"]
                    for line in src:  # rows and side entries are in the same order
                        try:
                            row = orjson.loads(line)
                        except orjson.JSONDecodeError:  # a line a crash cut short stays as it was
                            dst.write(line)
                            continue
                        rid = row.get("id")
                        counts = wanted.pop(rid, None) if row.get("ok") else None
                        if counts is not None and _refined(row, counts):
                            line = orjson.dumps(row) + b"\n"
                            done.rows += 1
                            done.counted += sum(counts)
                            done.usage += row["completion_tokens"]
                        dst.write(line)
                        if rid == last and row.get("ok"):
                            break
                for line in src:
                    dst.write(line)
        os.replace(tmp, records)
    finally:
        tmp.unlink(missing_ok=True)
    return done


async def finish(log: TextLog | None, records: Path, *, base_url: str, model: str | None,
                 headers: dict[str, str], stopped: bool) -> dict[str, Any]:
    """The post-run pass, when chunk texts were kept and the server answers /tokenize (probed now,
    after the run, so the measured requests are the only ones the server saw during it); not after
    Ctrl-C or an abort. Returns what summary.run says about it."""
    endpoint, refined = None, None
    if log is not None:
        log.close()
        if not stopped and log.count:
            try:
                endpoint = await asyncio.wait_for(probe(base_url, model, headers), 10.0)
            except asyncio.TimeoutError:
                endpoint = None
            if endpoint is not None:
                refined = await refine_run(log, endpoint, records)
        log.discard()
    return {"tokenize_endpoint": redact(endpoint.url) if endpoint is not None else None,
            "chunk_tokens_refined": refined.rows if refined is not None else None,
            "tokenize_to_usage_ratio": refined.ratio if refined is not None else None}
