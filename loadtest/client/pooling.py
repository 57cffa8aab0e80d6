"""The request side of the APIs that generate nothing (``--api embeddings``, ``--api rerank``): their
bodies (OpenAI's embeddings shape; the rerank shape vLLM, llama.cpp, Jina and Cohere share), what a
provider would charge for one, and the line a run ends with when the server does not serve the
endpoint. Kept out of payloads.py, which stays the chat path; it only dispatches here.

Every request is a JSON POST answered by one JSON body: nothing is streamed, so there is no
``stream``, ``stream_options`` or ``max_tokens`` to send, and no fallback to learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from loadtest.config import RunConfig
from loadtest.prompts.sources import Prompt

PATHS = {"embeddings": "/embeddings", "rerank": "/rerank"}
"""Under the base URL: /v1/embeddings, /v1/rerank; an --endpoint ending in /v2 gives /v2/rerank."""


def pooled_base(cfg: RunConfig, model: str | None) -> dict[str, Any]:
    """Fields common to every request of an embeddings or rerank run."""
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    if cfg.api == "embeddings" and cfg.encoding_format is not None:
        body["encoding_format"] = cfg.encoding_format
    body.update(cfg.extra_body)
    return body


def pooled_body(prompt: Prompt, base: dict[str, Any], api: str) -> bytes:
    """Embeddings: ``input`` is the batch's texts (a list even of one, as OpenAI's SDK sends it);
    rerank: ``query`` and ``documents`` as plain strings (Cohere's v2 takes no other kind)."""
    body = dict(base)
    texts = list(prompt.inputs) if prompt.inputs is not None else [prompt.text]
    if api == "embeddings":
        body["input"] = texts
    else:
        body["query"] = prompt.text
        body["documents"] = texts
    return orjson.dumps(body)


def pooled_tokens(prompt: Prompt, api: str, count: Callable[[str], int]) -> int:
    """A request's tokens as the server processes them, estimated for --tpm-limit: every input; for
    rerank every (query, document) pair, as a cross-encoder reads it."""
    texts = prompt.inputs if prompt.inputs is not None else (prompt.text,)
    total = sum(count(t) for t in texts)
    return total + (count(prompt.text) * len(texts) if api == "rerank" else 0)


ENGINE_HINTS = {
    "embeddings": ("start llama.cpp with --embeddings --pooling mean (loadtest: --launch llamacpp --api embeddings), "
                   "vLLM or SGLang with an embedding model (vLLM --runner pooling, SGLang --is-embedding)"),
    "rerank": ("start llama.cpp with --reranking and a reranker GGUF (loadtest: --launch llamacpp --api rerank "
               "--model FILE), vLLM with a reranker model (--runner pooling); /v2/rerank: --endpoint .../v2"),
}


def unserved_line(cfg: RunConfig, url: str, status: int | None, error: str | None) -> str | None:
    """The one line for a server that does not serve the run's endpoint (404, 405, 501: llama.cpp
    without --embeddings answers 501 "Start it with `--embeddings`"), or None for any other failure."""
    if not cfg.pooled or status not in (404, 405, 501):
        return None
    return f"{url} does not serve {cfg.api} ({error}); {ENGINE_HINTS[cfg.api]}"
