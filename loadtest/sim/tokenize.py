"""The sim's ``/tokenize`` endpoint, in llama.cpp's and vLLM's shapes, with the sim's own tokenizer.

The sim writes one whitespace-led word per token (``" tok7"``), so its tokenizer is exact: each run
of whitespace plus the word after it is one token. A client that counts chunk texts with this
endpoint after a run must then get every chunk's token count right.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_TOKEN = re.compile(r"\s*\S+|\s+$")


def sim_tokens(text: str) -> list[str]:
    """The pieces of ``text``; they concatenate back to it."""
    return _TOKEN.findall(text)


def tokenize_body(raw: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for a /tokenize request: ``content`` (llama.cpp, optionally
    ``with_pieces``) or ``prompt`` (vLLM, answered with ``count``)."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 400, b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}'
    if not isinstance(body, dict):
        return 400, b'{"error":{"message":"body must be an object","type":"invalid_request_error"}}'
    text = body.get("content", body.get("prompt"))
    if not isinstance(text, str):
        return 400, b'{"error":{"message":"content (or prompt) must be a string","type":"invalid_request_error"}}'
    pieces = sim_tokens(text)
    if body.get("with_pieces") is True:
        return 200, orjson.dumps({"tokens": [{"id": i, "piece": p} for i, p in enumerate(pieces)]})
    ids = list(range(len(pieces)))
    if "prompt" in body:
        return 200, orjson.dumps({"tokens": ids, "count": len(ids), "max_model_len": 1 << 20})
    return 200, orjson.dumps({"tokens": ids})
