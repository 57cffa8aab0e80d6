"""What an embeddings or rerank answer said (``--api embeddings``, ``--api rerank``): the dialect of
the APIs that generate nothing, beside chat's chunks (chunks.py) and the Responses API's events.

One JSON body per request, read once when it is complete: its latency is the whole round trip
(e2e_s), and ttft_s, tpot_s, itl and completion_tokens stay None, since nothing is generated. The
prompt tokens come from ``usage.prompt_tokens`` (else ``usage.total_tokens``, else Cohere's
``meta.billed_units.input_tokens``), and from --tokenizer when the server reports none (token_source
says which). The vectors are not parsed: msgspec keeps each one as raw bytes, and only the first is
measured for its dimension (a 2.6 MB answer of 32 x 4096 floats decodes in ~1 ms instead of ~4).

An answer that does not match its request fails as ``malformed``: fewer or more embeddings than
inputs, an index out of range or repeated, an empty vector, a rerank result for no document.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import msgspec

from loadtest.config import POOLING_APIS
from loadtest.measure.chunks import MALFORMED, error_message
from loadtest.measure.record import RequestRecord, _http_error_kind, take_attempts
from loadtest.measure.usage import take
from loadtest.tokens import TOKENIZER, USAGE, Tokenizer
from loadtest.transport import Exchange
from loadtest.transport.base import ABANDONED


class PooledRequest(NamedTuple):
    """What a request sent, to check its answer against: the API, the query (rerank) and the texts
    (the embeddings batch, or the documents)."""

    api: str
    query: str | None
    texts: Sequence[str]


class _Vector(msgspec.Struct, gc=False):
    index: int | None = None
    embedding: msgspec.Raw = msgspec.Raw(b"null")


class _Result(msgspec.Struct, gc=False):
    index: int | None = None
    relevance_score: float | None = None
    score: float | None = None               # SGLang's and TEI's name for it


class _Answer(msgspec.Struct, gc=False):
    data: list[_Vector] | None = None        # embeddings (OpenAI, vLLM, llama.cpp, SGLang, TEI)
    results: list[_Result] | None = None     # rerank (vLLM, llama.cpp, Jina, Cohere; SGLang, TEI: the body)
    usage: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None       # Cohere: meta.billed_units
    id: Any = None
    error: Any = None


_ANSWER = msgspec.json.Decoder(_Answer | list[_Result])  # SGLang, TEI: rerank results as a bare list


def dimension(raw: bytes) -> int | None:
    """Floats in one embedding: a JSON list of numbers, or base64 little-endian float32 (OpenAI's
    encoding_format base64); None when it is neither."""
    if raw[:1] == b"[":
        n = raw.count(b",") + 1 if raw.strip(b"[] \n") else 0
        return n or None
    if raw[:1] == b'"':
        try:
            size = len(binascii.a2b_base64(raw[1:-1]))
        except binascii.Error:
            return None
        return size // 4 if size and size % 4 == 0 else None
    return None


class Facts(NamedTuple):
    """An answer, checked: (items, dimension, prompt tokens from usage, response id), or why it is
    malformed."""

    items: int | None
    dim: int | None
    prompt_tokens: int | None
    response_id: str | None
    problem: str | None
    usage_invalid: dict[str, str] | None = None


def read_answer(body: bytes, req: PooledRequest) -> Facts:
    try:
        a = _ANSWER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        return Facts(None, None, None, None, f"not an {req.api} answer ({exc}): {body[:80]!r}")
    if isinstance(a, list):
        a = _Answer(results=a)
    rid = None if a.id is None else str(a.id)
    sent = len(req.texts)
    if req.api == "embeddings":
        items, problem, dim = (len(a.data) if a.data is not None else None), None, None
        if items != sent:
            problem = f"{items or 0} embeddings for {sent} inputs"
        elif any(v.index is not None and not 0 <= v.index < sent for v in a.data or ()) or \
                len({v.index for v in a.data or () if v.index is not None}) not in (0, sent):
            problem = "embedding indexes are not 0..inputs-1, each once"
        else:
            dims = [dimension(bytes(v.embedding)) for v in (a.data or [])[:1]]
            dim = dims[0] if dims else None
            if dim is None or any(len(v.embedding) < 3 for v in a.data or ()):
                problem = "an embedding is empty or neither a list of floats nor base64"
    else:
        results = a.results if a.results is not None else []
        items, dim, problem = sent, None, None
        indexes = [r.index for r in results]
        if a.results is None or (sent and not results):
            problem = f"no results for {sent} documents"
        elif any(i is None or not 0 <= i < sent for i in indexes) or len(set(indexes)) != len(indexes):
            problem = f"result indexes are not documents 0..{sent - 1}, each at most once"
        elif any(r.relevance_score is None and r.score is None for r in results):
            problem = "a result has no relevance_score"
    invalid: dict[str, str] = {}
    tokens = _prompt_tokens(a, invalid)
    return Facts(items, dim, tokens, rid, problem if problem is None else f"{req.api}: {problem}", invalid or None)


def _prompt_tokens(a: _Answer, invalid: dict[str, str]) -> int | None:
    """The first valid count of usage.prompt_tokens, usage.total_tokens, Cohere's billed input
    tokens; invalid ones are noted (measure/usage.py) and passed over."""
    billed = (a.meta or {}).get("billed_units") if isinstance(a.meta, dict) else None
    for source, key, name in ((a.usage, "prompt_tokens", "usage.prompt_tokens"),
                              (a.usage, "total_tokens", "usage.total_tokens"),
                              (billed, "input_tokens", "meta.billed_units.input_tokens")):
        value = take(source, key, invalid, name)
        if value is not None:
            return value
    return None


def counted_tokens(req: PooledRequest, count: Callable[[str], int]) -> int:
    """The request's prompt tokens by a tokenizer, as servers count them: every input, or every
    (query, document) pair a cross-encoder reads."""
    total = sum(count(t) for t in req.texts)
    return total + (count(req.query) * len(req.texts) if req.api == "rerank" and req.query else 0)


def pooled_record(ex: Exchange, req: PooledRequest, *, request_id: int, prompt_id: str, run_t0_ns: int,
                  tokenizer: Tokenizer | None, warmup: bool = False) -> RequestRecord:
    """Interpret one embeddings or rerank Exchange (the counterpart of record.build_record)."""
    ok, kind, message = ex.error_kind is None, ex.error_kind, ex.error
    status = ex.status or 0
    facts = None
    body = ex.body() if len(ex.pieces) else b""  # joined once: an answer may be megabytes
    if ok and status >= 400:
        ok, kind, message = False, _http_error_kind(status), f"HTTP {status}: {error_message(body)}"
    elif ok:
        facts = read_answer(body, req)
        if facts.problem is not None:
            ok, kind, message = False, MALFORMED, facts.problem
    ms = 1e9
    e2e = (ex.t_end_ns - ex.t_start_ns) / ms if ex.t_end_ns is not None else None
    rec = RequestRecord(
        id=request_id, prompt_id=prompt_id, ok=ok, status=ex.status, error_kind=kind, error=message,
        start_s=(ex.t_start_ns - run_t0_ns) / ms, end_s=(ex.t_end_ns - run_t0_ns) / ms if ex.t_end_ns is not None else None,
        ttft_s=None, ttft_content_s=None, e2e_s=e2e, tpot_s=None, decode_tokens_per_s=None, tokens_per_s=None,
        completion_tokens=None, prompt_tokens=None, token_source=None, finish_reason=None, chunks=0, content_chunks=0,
        connect_s=ex.connect_s, warmup=warmup, response_id=facts.response_id if facts else None)
    take_attempts(rec, ex.attempt_info)
    if body:
        rec.bytes_received = len(body)
    if kind == ABANDONED and ex.abandoned_ns is not None:  # --cancel-rate: let go on purpose
        rec.abandoned_after_s = (ex.abandoned_ns - ex.t_start_ns) / ms
    if not ok or facts is None:
        return rec
    rec.usage_invalid = facts.usage_invalid
    if req.api == "embeddings":
        rec.inputs, rec.embedding_dim = facts.items, facts.dim
    else:
        rec.documents = facts.items
    if facts.prompt_tokens is not None:
        rec.prompt_tokens, rec.token_source = facts.prompt_tokens, USAGE
    elif tokenizer is not None:
        rec.prompt_tokens, rec.token_source = counted_tokens(req, tokenizer.count), TOKENIZER
    return rec


class PoolingTotals:
    """Run-level sums of the completed measured requests: inputs embedded, documents scored."""

    def __init__(self) -> None:
        self.inputs: int | None = None
        self.documents: int | None = None

    def add(self, row: Any) -> None:
        if row.inputs is not None:
            self.inputs = (self.inputs or 0) + row.inputs
        if row.documents is not None:
            self.documents = (self.documents or 0) + row.documents

    def metrics(self, window_s: float | None, prompt_total: int | None) -> dict[str, Any]:
        per_s = (lambda n: n / window_s if n is not None and window_s else None)
        return {"inputs_total": self.inputs, "inputs_per_s": per_s(self.inputs), "documents_total": self.documents,
                "documents_per_s": per_s(self.documents), "prompt_tokens_per_s": per_s(prompt_total)}


NO_GENERATION = "no TTFT, TPOT or ITL (not a generation): each request's latency is its whole round trip (e2e)"


def console_head(summary: dict[str, Any]) -> list[str] | None:
    """The console's rates line for an embeddings or rerank run, and the line that says which
    metrics apply (None for the generation APIs, whose line says output tokens/s)."""
    api = summary["config"].get("api")
    if api not in POOLING_APIS:
        return None
    m = summary["metrics"]
    fmt = (lambda v, d=1: "-" if v is None else f"{v:,.{d}f}")
    srcs = ", ".join(f"{k}: {v}" for k, v in summary["token_source"].items()) or "none reported"
    per = (f"inputs/s {fmt(m.get('inputs_per_s'))} (batch {summary['config'].get('batch_size')})" if api == "embeddings"
           else f"documents/s {fmt(m.get('documents_per_s'))} ({summary['config'].get('documents')} per query)")
    tokens = m.get("prompt_tokens_total")
    rates = (f"requests/s {fmt(m.get('requests_per_s'), 2)}  |  requests/min {fmt(m.get('requests_per_min'))}  |  "
             f"{per}  |  prompt tokens/s {fmt(m.get('prompt_tokens_per_s'))}  |  prompt tokens "
             f"{'-' if tokens is None else format(tokens, ',')}  |  token source: {srcs}")
    return [rates, f"{api}: {NO_GENERATION}"]
