"""The test server's prefix cache (``--prefix-cache-tokens N --prefix-block-tokens B``): what vLLM's
automatic prefix caching does, small enough to be the truth a client's hit rate is checked against.

A prompt's tokens (sim/prompting.py's ``token_keys``: the prompt tokenizer's ids, else the whitespace
words the sim counts) are cut into whole blocks of B; each block is keyed by a hash chained over
every block before it, so a block hits only when the whole prefix up to its end is the same. A
request looks its blocks up when it takes a slot, stops at the first miss, and always leaves the
last prompt token to compute (an engine needs its logits), so cached tokens are a whole number of
blocks below the prompt length. Its blocks enter the cache when its prefill completes (its first
token), not at receipt: requests that arrive together all miss, as on a real engine. Capacity is
N // B blocks, least recently used first out; a prompt's blocks are touched tail first, so its tail
leaves before its head (vLLM frees a request's blocks in reverse for the same reason).

All the work is per request (one hash per block, a dict lookup each); nothing runs per token.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol


class Owner(Protocol):
    """The reply whose prefill fills the cache (sim/stream.py's Stream)."""

    disconnect_ns: int | None


class PrefixCache:
    def __init__(self, capacity_tokens: int, block_tokens: int, *, keep_on_disconnect: bool = False) -> None:
        self.block_tokens = block_tokens
        self.capacity_blocks = capacity_tokens // block_tokens
        self.keep_on_disconnect = keep_on_disconnect  # the prefill of a request whose client left still completes
        self._lru: OrderedDict[int, None] = OrderedDict()
        self._pending: list[tuple[int, int, tuple[int, ...], Owner]] = []  # (ready_ns, seq, hashes, owner)
        self._seq = itertools.count()

    def block_hashes(self, keys: Sequence[object]) -> tuple[int, ...]:
        """One key per whole block of ``keys``, each hashing its block and every block before it."""
        b = self.block_tokens
        out: list[int] = []
        parent = 0
        for i in range(0, len(keys) - b + 1, b):
            parent = hash((parent, tuple(keys[i:i + b])))
            out.append(parent)
        return tuple(out)

    def lookup(self, hashes: tuple[int, ...], prompt_tokens: int, now_ns: int) -> int:
        """Cached tokens of a prompt taking its slot at ``now_ns``: its leading blocks found, at most
        (prompt_tokens - 1) // B of them. Found blocks become the most recently used."""
        self._settle(now_ns)
        lru = self._lru
        found = 0
        for h in hashes[:max(prompt_tokens - 1, 0) // self.block_tokens]:
            if h not in lru:
                break
            found += 1
        for h in reversed(hashes[:found]):
            lru.move_to_end(h)
        return found * self.block_tokens

    def insert_at(self, ready_ns: int, hashes: tuple[int, ...], owner: Owner) -> None:
        """The prompt's blocks enter the cache at ``ready_ns`` (its prefill's end), unless its client
        left before then and the engine stopped it. Applied by the next lookup at or after that time."""
        if hashes and self.capacity_blocks:
            heapq.heappush(self._pending, (ready_ns, next(self._seq), hashes, owner))

    def _settle(self, now_ns: int) -> None:
        pending, lru, cap = self._pending, self._lru, self.capacity_blocks
        while pending and pending[0][0] <= now_ns:
            ready_ns, _, hashes, owner = heapq.heappop(pending)
            gone = owner.disconnect_ns
            if gone is not None and gone < ready_ns and not self.keep_on_disconnect:
                continue
            for h in reversed(hashes):
                if h in lru:
                    lru.move_to_end(h)
                else:
                    lru[h] = None
            while len(lru) > cap:
                lru.popitem(last=False)

    @property
    def blocks(self) -> int:
        """Blocks held now (pending inserts not yet applied)."""
        return len(self._lru)
