"""Exact tokens per chunk after the run, from the server's own ``/tokenize`` (llama.cpp, vLLM, SGLang).

During the run a request whose per-chunk counts are only estimated (the first-chunk rule, see
:mod:`loadtest.measure.chunk_tokens`) leaves its chunk texts in a side file next to requests.jsonl (on disk,
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import orjson

from loadtest.measure.chunk_tokens import TEXT_SHARE, TOKENIZE_ENDPOINT, reconcile, tpot_from

SIDE_FILE = ".chunk_texts.jsonl"
_CONCURRENCY = 16
_BATCH = 256

ChunkCounter = Callable[[list[str]], Awaitable["list[int] | None"]]
"""Tokens in each of a response's chunk texts, or None when the server would not say."""


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


async def refine_run(log: TextLog, count_chunks: ChunkCounter, records: Path, *, budget_s: float = 300.0,
                     concurrency: int = _CONCURRENCY) -> Refined:
    """Count every logged response's chunks with ``count_chunks`` (the server's /tokenize, see
    client/tokenize.py) and rewrite ``records`` in place (via a temporary file, one batch of
    responses in memory at a time). Rows left when ``budget_s`` runs out keep their estimate."""
    done = Refined()
    deadline = time.monotonic() + budget_s
    tmp = records.with_suffix(".jsonl.tmp")
    sem = asyncio.Semaphore(concurrency)

    async def count(texts: list[str]) -> list[int] | None:
        async with sem:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:  # a server that drips bytes would outlast every per-read timeout
                return await asyncio.wait_for(count_chunks(texts), left)
            except asyncio.TimeoutError:
                return None

    try:
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
