"""How many tokens each content chunk of a stream carried: the denominator of TPOT and per-token ITL.

Pure functions, no I/O. Order of trust (the record says which was used, ``chunk_token_source``):

1. per-chunk cumulative usage (vLLM/SGLang ``stream_options.continuous_usage_stats``): exact;
2. a tokenizer's count of each chunk's text (``--tokenizer``, or the server's ``/tokenize`` endpoint
   after the run), reconciled to the request's total;
3. the first-chunk rule: the first content chunk carries one token (prefill emits one token, and
   engines send it alone), the rest of the total is shared over the later chunks in proportion to
   their text. Spreading the total evenly instead credited the first chunk with ~2.5 tokens at
   chunks of 1..4 tokens and read TPOT 1.2% high.

Every split is in whole tokens and sums exactly to the total (cumulative rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

USAGE_PER_CHUNK, TOKENIZER, TOKENIZE_ENDPOINT, TEXT_SHARE = (
    "usage_per_chunk", "tokenizer", "tokenize_endpoint", "text_share")
EXACT_SOURCES = frozenset({USAGE_PER_CHUNK, TOKENIZER, TOKENIZE_ENDPOINT})
"""Sources whose per-chunk counts come from the server or a tokenizer (TEXT_SHARE is estimated)."""


def proportional(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in whole numbers in proportion to ``weights`` (all zero: evenly); sums to
    ``total`` exactly and each share is within one of its exact value. Cumulative rounding: the
    boundary after each item is its cumulative share rounded, as token boundaries fall along the
    text. O(n) with no sort: it runs per request on the record path."""
    n = len(weights)
    if n == 0:
        return []
    size = float(sum(weights))
    if size <= 0:
        weights, size = [1.0] * n, float(n)
    scale = total / size
    counts, prev, cum = [], 0, 0.0
    for w in weights:
        cum += w
        edge = int(cum * scale + 0.5)
        counts.append(edge - prev)
        prev = edge
    counts[-1] += total - prev  # float rounding at the very end
    return counts


def _at_least_one(counts: list[int]) -> list[int]:
    """A chunk that carried text carried at least one token: a zero takes one from the largest
    count (when that has more than one). Keeps the sum."""
    if 0 not in counts:
        return counts
    for i, c in enumerate(counts):
        if c == 0:
            j = max(range(len(counts)), key=counts.__getitem__)
            if counts[j] <= 1:
                break
            counts[j] -= 1
            counts[i] = 1
    return counts


def text_share(texts: Sequence[str], total: int) -> list[int]:
    """The first-chunk rule: 1 token for the first chunk, the rest shared by text length."""
    n = len(texts)
    if n == 0:
        return []
    if n == 1 or total <= 1:
        return [total] + [0] * (n - 1)
    rest = total - 1
    if rest == n - 1:  # one token per chunk: the common case, no arithmetic
        return [1] * n
    return [1, *_at_least_one(proportional(rest, list(map(len, texts[1:]))))]


def reconcile(counts: Sequence[int], total: int) -> list[int]:
    """Per-chunk counts from a tokenizer, made to sum to ``total`` (the server's usage): unchanged
    when they already do, else the total shared in proportion to them."""
    if sum(counts) == total:
        return list(counts)
    return _at_least_one(proportional(total, counts)) if total >= len(counts) else proportional(total, counts)


def from_usage(cum_usage: Sequence[int | None], total: int) -> list[int] | None:
    """Per-chunk deltas of cumulative usage, when every content chunk carried it and it ends at the
    total; else None. (The first chunk may then carry more than one token: the stream said so.)"""
    if not cum_usage or cum_usage[-1] != total:
        return None
    out, prev = [], 0
    for c in cum_usage:
        if c is None or c < prev:
            return None
        out.append(c - prev)
        prev = c
    return out if out[0] >= 1 else None


def split_chunk_tokens(texts: Sequence[str], cum_usage: Sequence[int | None], total: int,
                       count: Callable[[str], int] | None = None) -> tuple[list[int], str]:
    """(tokens per content chunk, chunk_token_source). ``count``: a tokenizer's count of one text,
    called only when per-chunk usage did not settle it."""
    exact = from_usage(cum_usage, total)
    if exact is not None:
        return exact, USAGE_PER_CHUNK
    if count is not None:
        counts = [count(t) for t in texts]
        if sum(counts) > 0:
            return reconcile(counts, total), TOKENIZER
    return text_share(texts, total), TEXT_SHARE


def tpot_from(offsets_s: Sequence[float], chunk_tokens: Sequence[int], total: int) -> tuple[float, float] | None:
    """(tpot_s, decode_tokens_per_s) from content-chunk arrivals and tokens per chunk, or None when
    not measurable (one chunk, or every token in the first)."""
    after_first = total - chunk_tokens[0]
    span_s = offsets_s[-1] - offsets_s[0]
    if after_first > 0 and span_s > 0:
        return span_s / after_first, after_first / span_s
    return None
