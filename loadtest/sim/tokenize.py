"""The sim's ``/tokenize`` endpoint (``--tokenize-endpoint``), in llama.cpp's and vLLM's shapes.

By default with the sim's own tokenizer: the sim writes one whitespace-led word per token
(``" tok7"``), so each run of whitespace plus the word after it is one token, and a client that
counts chunk texts with this endpoint after a run must get every chunk's token count right. With
``--prompt-tokenizer`` the endpoint counts with that tokenizer instead, as the server's usage does
for prompts, so a client building prompts of an exact length can be checked token for token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

_TOKEN = re.compile(r"\s*\S+|\s+$")


def sim_tokens(text: str) -> list[str]:
    """The pieces of ``text``; they concatenate back to it."""
    return _TOKEN.findall(text)


def tokenize_body(raw: bytes, tokenize: Callable[[str, bool], tuple[list[int], list[str] | None]] | None = None
                  ) -> tuple[int, bytes]:
    """(status, JSON body) for a /tokenize request: ``content`` (llama.cpp, optionally
    ``with_pieces``) or ``prompt`` (vLLM, answered with ``count``). ``tokenize(text, with_pieces)``
    replaces the sim's own word tokenizer (sim/prompting.py's, for --prompt-tokenizer)."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 400, b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}'
    if not isinstance(body, dict):
        return 400, b'{"error":{"message":"body must be an object","type":"invalid_request_error"}}'
    text = body.get("content", body.get("prompt"))
    if not isinstance(text, str):
        return 400, b'{"error":{"message":"content (or prompt) must be a string","type":"invalid_request_error"}}'
    with_pieces = body.get("with_pieces") is True
    pieces: list[str] | None
    if tokenize is None:
        pieces = sim_tokens(text)
        ids = list(range(len(pieces)))
    else:
        ids, pieces = tokenize(text, with_pieces)
    if with_pieces and pieces is not None:
        return 200, orjson.dumps({"tokens": [{"id": i, "piece": p} for i, p in zip(ids, pieces)]})
    if "prompt" in body:
        return 200, orjson.dumps({"tokens": ids, "count": len(ids), "max_model_len": 1 << 20})
    return 200, orjson.dumps({"tokens": ids})
