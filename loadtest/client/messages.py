"""The Anthropic Messages API (``--api messages``) on the request side: its headers and its body.

The run's common fields (model, ``max_tokens``, stream, sampling) are the chat API's; the Messages
API takes the user turn as ``messages`` and any system text as a top-level ``system`` (it has no
system role). ``max_tokens`` is required there, and base_body always sends it. Usage comes with
every reply (``message_start``/``message_delta``), so no ``stream_options`` is sent. The reply is
read by loadtest.measure.messages.
"""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.measure.usage import check_anthropic
from loadtest.prompts.sources import Prompt

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent unless --header gives one (the version of the Messages API
this client reads; Anthropic requires the header)."""

KEY_ENV = "ANTHROPIC_API_KEY"
"""Where --api messages finds its key when neither --api-key nor --api-key-env gives one."""


def auth_headers(api_key: str | None, headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Anthropic's auth: the key in ``x-api-key`` (not ``Authorization: Bearer``), and the API
    version the client speaks (kept out when the user's --header sets its own)."""
    out: dict[str, str] = {}
    if api_key:
        out["x-api-key"] = api_key
    if not any(name.lower() == "anthropic-version" for name, _ in headers):
        out["anthropic-version"] = ANTHROPIC_VERSION
    return out


def messages_body(prompt: Prompt, body: dict[str, Any]) -> bytes:
    """``body`` (the run's fields, already a copy) with the prompt: its text as one user turn, or a
    trace's own messages with their system messages moved to ``system``."""
    if prompt.messages is None:
        body["messages"] = [{"role": "user", "content": prompt.text}]
        return orjson.dumps(body)
    system = [m.get("content") for m in prompt.messages if m.get("role") == "system"]
    if system:
        body["system"] = "\n\n".join(s if isinstance(s, str) else orjson.dumps(s).decode() for s in system)
    body["messages"] = [m for m in prompt.messages if m.get("role") != "system"]
    return orjson.dumps(body)


def prompt_tokens(usage: Any) -> int | None:
    """The prompt tokens a Messages reply's usage says the model saw (input after the cache
    breakpoints + read from the cache + written to it); None when it does not say."""
    if not isinstance(usage, dict):
        return None
    return check_anthropic(usage)["prompt_tokens"]  # every count checked (measure/usage.py)
