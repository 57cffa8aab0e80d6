"""The sim's endpoints that generate nothing: ``POST /v1/embeddings`` (OpenAI's shape) and ``POST
/v1/rerank`` / ``/v2/rerank`` (the shape vLLM, llama.cpp, Jina and Cohere share), so a client's
embeddings and rerank numbers can be checked against a known truth (docs/test-server.md).

- An embedding is ``--embedding-dim`` floats (the request's ``dimensions`` when given), seeded from
  the input alone and of unit length, so the same input always gets the same vector; as a JSON
  list, or base64 little-endian float32 with ``encoding_format: base64``.
- A rerank result's ``relevance_score`` is seeded from (query, document); results are sorted by it,
  highest first, cut to ``top_n``, with ``document.text`` when ``return_documents`` is true.
- usage.prompt_tokens counts every input (embeddings) or every (query, document) pair (rerank, as
  a cross-encoder reads them: what vLLM and llama.cpp report), by the sim's prompt tokenizer
  (whitespace words, or --prompt-tokenizer), plus --template-tokens per input or pair (the BOS, EOS
  or separators a real tokenizer adds); ``--no-usage`` leaves usage out.
- Timing: a reply holds a slot (--max-concurrency queues it, as a generation), and goes out whole
  at slot + prompt tokens / --prefill-tokens-per-s + --ttft-ms, so its latency is known exactly.
- --log-chunks: one line per reply, with ``api``, ``inputs`` (or ``documents``), ``dimension`` and
  ``encoding_format``; ``prefill_s`` is the prefill part of the schedule and ``due_ns`` the send time.
"""

from __future__ import annotations

import base64
import hashlib
from time import monotonic_ns
from typing import Any

import numpy as np
import orjson

from loadtest.sim.generate import Plan, RequestError
from loadtest.sim.state import SimState
from loadtest.sim.stream import Stream

PATHS = {b"/v1/embeddings": "embeddings", b"/v1/rerank": "rerank", b"/v2/rerank": "rerank"}


def vector(key: bytes, dim: int) -> np.ndarray:
    """A unit vector of ``dim`` float32s, a function of ``key`` alone (numpy: a 4096-float vector in
    ~30 us, so a large batch does not slow the sim's event loop)."""
    seed = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big")
    v = np.random.default_rng(seed).standard_normal(dim, dtype=np.float32)
    return v / (np.linalg.norm(v) or np.float32(1.0))


def score(query: str, document: str) -> float:
    """A relevance score in [0, 1), a function of the pair alone."""
    digest = hashlib.blake2b(f"{query}\x00{document}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _texts(value: Any) -> list[Any]:
    """OpenAI's ``input``: a string, a list of strings, a list of token ids, or a list of such lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
        return value
    raise RequestError(400, "'input' must be a non-empty string, array of strings, or array of token arrays",
                       param="input")


def _count(sim: Any, value: Any) -> int:
    """Prompt tokens of one text (token ids: one each), by the sim's prompt tokenizer."""
    if isinstance(value, list):
        return len(value)
    return sim.prompting.count(value)


def answer(sim: Any, api: str, body: Any, rid: int, v2: bool) -> tuple[bytes, int, dict[str, Any]]:
    """(the whole JSON answer, its prompt tokens, what --log-chunks says of it); RequestError to refuse."""
    config = sim.config
    if not isinstance(body, dict):
        raise RequestError(400, "Request body must be a JSON object")
    model = body.get("model")
    if model and model != config.model:
        raise RequestError(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")
    if v2 and not model:
        raise RequestError(400, "'model' is a required property", param="model")  # Cohere's v2 requires it
    usage = config.usage
    if api == "embeddings":
        texts = _texts(body.get("input"))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise RequestError(400, f"encoding_format must be 'float' or 'base64', got {fmt!r}", param="encoding_format")
        dim = body.get("dimensions") or config.embedding_dim
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise RequestError(400, f"dimensions must be an integer >= 1, got {dim!r}", param="dimensions")
        tokens = sum(_count(sim, t) + config.template_tokens for t in texts)
        items = []
        for i, t in enumerate(texts):
            v = vector(t.encode() if isinstance(t, str) else orjson.dumps(t), dim)
            emb = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else v
            items.append({"object": "embedding", "index": i, "embedding": emb})
        out: dict[str, Any] = {"id": f"embd-{rid}", "object": "list", "data": items, "model": config.model}
        log = {"api": api, "inputs": len(texts), "dimension": dim, "encoding_format": fmt}
    else:
        query, docs = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(docs, list) or not docs:
            raise RequestError(400, "'query' must be a string and 'documents' a non-empty array", param="documents")
        texts = [d.get("text") if isinstance(d, dict) else d for d in docs]
        if not all(isinstance(t, str) for t in texts):
            raise RequestError(400, "each document must be a string or {\"text\": ...}", param="documents")
        top_n = body.get("top_n") or len(texts)
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
            raise RequestError(400, f"top_n must be an integer >= 1, got {top_n!r}", param="top_n")
        q = sim.prompting.count(query)
        tokens = sum(q + sim.prompting.count(t) + config.template_tokens for t in texts)
        ranked = sorted(((score(query, t), i) for i, t in enumerate(texts)), reverse=True)[:top_n]
        results = [{"index": i, "relevance_score": s, **({"document": {"text": texts[i]}}
                                                         if body.get("return_documents") else {})}
                   for s, i in ranked]
        out = {"id": f"rerank-{rid}", "model": config.model, "results": results}
        log = {"api": api, "documents": len(texts), "top_n": top_n, "path": "/v2/rerank" if v2 else "/v1/rerank"}
    if usage:
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), tokens, log


class PoolingReply(Stream):
    """One embeddings or rerank reply: a slot, its prefill, then the whole answer at once."""

    __slots__ = ("answer",)

    def start(self) -> None:
        sim = self.sim
        sim.engine.take_slot(self)
        self.due = self.recv_ns + sim.ttft_ns  # recv_ns: the slot plus the prompt's prefill (Sim._prefill)
        sim.scheduler.push(self.due, self)

    def step(self) -> None:
        now = monotonic_ns()
        sim, plan = self.sim, self.plan
        engine = sim.engine
        sim.stats.late(now - self.due)
        prefill_ns = self.recv_ns - self.slot_ns
        engine.prompt_tokens += plan.prompt_tokens  # /metrics: prompt tokens processed, no generation
        engine.lc_prompt_tokens += plan.prompt_tokens
        engine.lc_prompt_ns += prefill_ns
        if plan.log_extra is not None:
            plan.log_extra.update(prefill_s=prefill_ns / 1e9, due_ns=self.due)
        self.conn.send(200, self.answer, self.keep_alive)
        self._close(now, completed=True)


def handle(sim: Any, conn: Any, req: Any, path: bytes) -> None:
    """Route one request to /v1/embeddings, /v1/rerank or /v2/rerank (the sim's server.py calls this)."""
    if req.method != b"POST":
        return conn.respond(405, RequestError(405, f"Method {req.method.decode()} not allowed").body(), req.keep_alive)
    state: SimState = sim
    api = PATHS[path]
    if not sim.config.embeddings:  # llama.cpp's words when started without --embeddings (or --reranking)
        flag, what = ("--embeddings", "embeddings") if api == "embeddings" else ("--reranking", "reranking")
        return conn.respond(501, orjson.dumps({"error": {"code": 501, "type": "not_supported_error", "message":
                            f"This server does not support {what}. Start it with `{flag}`"}}), req.keep_alive)
    state.stats.received(req.recv_ns)
    try:
        if not sim._authorized(req):
            raise RequestError(401, "Incorrect API key provided.", code="invalid_api_key")
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, f"Could not parse request body as JSON: {exc}") from None
        nth = sim.valid_requests + 1
        fail = sim.config.fail_every is None or nth % sim.config.fail_every == 0
        data, tokens, log = answer(sim, api, body, sim.last_id + 1, path == b"/v2/rerank")
        if sim.limits is not None and (refusal := sim.limits.admit(tokens)):
            state.stats.rate_limited += 1
            raise refusal
        sim.valid_requests = nth
        if fail and sim.config.fail_status is not None:
            raise RequestError(sim.config.fail_status, f"simulated failure (HTTP {sim.config.fail_status})")
    except RequestError as error:
        state.stats.requests_failed += 1
        state.stats.last_done_ns = monotonic_ns()
        return conn.respond(error.status, error.body(), req.keep_alive, error.headers)
    sim.last_id += 1
    plan = Plan(chat=False, stream=False, include_usage=False, continuous_usage=False, prompt_tokens=tokens,
                n_tokens=0, reasoning_tokens=0, finish_reason="stop", fault=None, fault_after=0, seed=sim.last_id,
                log_extra={**log, "connection": conn.number})
    head = b'{"id":"%s-%d"' % (b"embd" if api == "embeddings" else b"rerank", sim.last_id)  # the log's id
    reply = PoolingReply(sim, conn, plan, req.recv_ns, head, req.keep_alive, arrival_ns=req.recv_ns)
    reply.answer = data
    if sim.config.max_concurrency is not None and state.stats.active >= sim.config.max_concurrency:
        conn.stream = reply  # a waiting reply: a closed connection still cancels it
        sim.waiting.append(reply)
        state.engine.waiting += 1
        return None
    sim._prefill(reply)
    conn.begin(reply)
    return None
