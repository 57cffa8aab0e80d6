"""Request payloads: a prompt and the run's options become the exact bytes sent."""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.client.media import content_parts
from loadtest.client.pooling import PATHS as POOLING_PATHS
from loadtest.client.pooling import pooled_base, pooled_body
from loadtest.config import RunConfig
from loadtest.prompts.sources import Prompt

MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
PATHS = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses",
         "transcriptions": "/audio/transcriptions", **POOLING_PATHS}


def request_path(cfg: RunConfig) -> str:
    return PATHS[cfg.api]


def base_body(cfg: RunConfig, model: str | None) -> dict[str, Any]:
    """Fields common to every request of a run. Optional sampling fields are sent only when the
    user set them, because engines differ in their defaults and in what they reject (422)."""
    if cfg.pooled:  # embeddings, rerank: nothing generated, nothing streamed (client/pooling.py)
        return pooled_base(cfg, model)
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    # The Responses API names the output cap max_output_tokens (max_tokens is rejected there).
    body["max_output_tokens" if cfg.api == "responses" else "max_tokens"] = cfg.max_tokens
    body["stream"] = cfg.stream
    if cfg.temperature is not None:
        body["temperature"] = cfg.temperature
    if cfg.top_p is not None:
        body["top_p"] = cfg.top_p
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    if cfg.tools is not None and cfg.api == "chat":  # --tools: offered with every request of the run
        body["tools"] = list(cfg.tools)
    body.update(cfg.extra_body)
    return body


def build_body(prompt: Prompt, base: dict[str, Any], *, api: str, include_usage: bool,
               continuous_usage: bool = False) -> bytes:
    """The prompt's text as one user turn (its own messages, when a trace gave them, on the chat
    API), and its own output length when it has one. ``continuous_usage`` asks for usage on every
    chunk (vLLM, SGLang): exact tokens per chunk, hence exact TPOT and per-token ITL."""
    if prompt.inputs is not None:  # --api embeddings|rerank (prompts/batches.py)
        return pooled_body(prompt, base, api)
    body = dict(base)
    if prompt.max_tokens is not None:
        for key in MAX_TOKENS_KEYS:  # whichever name the run sends (the sender may have switched it)
            if key in body:
                body[key] = prompt.max_tokens
    if api == "chat":
        body["messages"] = (list(prompt.messages) if prompt.messages is not None
                            else [{"role": "user", "content": prompt.text if prompt.media is None
                                   else content_parts(prompt.text, prompt.media.images)}])
    elif api == "responses":
        body["input"] = prompt.text  # usage always comes in response.completed: no stream_options
        return orjson.dumps(body)
    else:
        body["prompt"] = prompt.text
    if include_usage and body.get("stream"):
        body["stream_options"] = ({"include_usage": True, "continuous_usage_stats": True} if continuous_usage
                                  else {"include_usage": True})
    return orjson.dumps(body)
