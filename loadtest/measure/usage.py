"""A server's ``usage`` is data from the other side of the wire: checked once per reply, never trusted.

Every token count a reply reports (chat's ``completion_tokens``, ``prompt_tokens``, the details'
``cached_tokens``/``reasoning_tokens``/``image_tokens``/``text_tokens``; the Responses API's and
transcriptions' ``output_tokens``/``input_tokens``; Anthropic's ``input_tokens``, ``output_tokens``,
``cache_read_input_tokens``, ``cache_creation_input_tokens``; embeddings' and rerank's
``prompt_tokens``/``total_tokens``) is a **count**: a non-negative JSON integer up to
``MAX_COUNT`` (2^53 - 1, the largest integer every JSON reader reads exactly). A float with an
integral value (``12.0``, as some proxies re-encode numbers) is taken as that integer. Anything else
(a string, even ``"12"``; ``true``; a fraction; a negative number; a larger number; an object or a
list) is *invalid*: that field is ignored as if absent, the count falls back as when the server
sends no usage (completion tokens: --tokenizer, else the content chunks), and the record names the
field and its raw value in ``usage_invalid`` (cut to ``SHOWN_CHARS``). ``null`` is absent, not
invalid (OpenAI sends ``null`` for details it does not report).

Checked once per reply, after it is complete (record.build_record; the dialects' mappers when their
usage event arrives, once per reply): nothing here runs per chunk.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_COUNT = 2**53 - 1
SHOWN_CHARS = 40


class Checked(dict):  # type: ignore[type-arg]
    """A reply's usage in chat's names with every count checked (values are ints or None), and
    ``invalid`` ({"usage.field": raw value shown}) or None. A dialect's mapper (Responses,
    Messages, transcriptions) returns one; chat's raw usage dict is checked by :func:`check_chat`."""


def count(value: Any) -> int | None:
    """``value`` as a token count, or None when it is not one (see the module's docstring)."""
    cls = value.__class__
    if cls is int:
        return value if 0 <= value <= MAX_COUNT else None
    if cls is float and value.is_integer() and 0 <= value <= MAX_COUNT:
        return int(value)
    return None


def shown(value: Any) -> str:
    """A raw value as JSON (repr when it is not JSON-able: a number past 64 bits), cut short."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def take(source: Any, key: str, invalid: dict[str, str], name: str) -> int | None:
    """``source[key]`` as a count; an invalid value is noted in ``invalid`` under ``name`` (the
    field as the server named it, e.g. ``usage.output_tokens``). Absent or null: None, not noted."""
    if not isinstance(source, dict):
        return None
    value = source.get(key)
    if value is None:
        return None
    n = count(value)
    if n is None:
        invalid[name] = shown(value)
    return n


def details(source: Any, key: str, invalid: dict[str, str], name: str) -> dict[str, Any] | None:
    """``source[key]`` when it is an object (``prompt_tokens_details``...); anything but an object
    or null is noted as invalid."""
    value = source.get(key) if isinstance(source, dict) else None
    if value is None or isinstance(value, dict):
        return value
    invalid[name] = shown(value)
    return None


def checked(invalid: dict[str, str], **counts: Any) -> Checked:
    out = Checked(counts)
    out["invalid"] = invalid or None
    return out


def check_chat(usage: Any) -> Checked:
    """Chat's and /completions' usage (also vLLM's transcription chunks, which are chat-shaped); a
    usage that is not an object at all is one invalid field, ``usage``."""
    bad: dict[str, str] = {}
    if not isinstance(usage, dict):
        return checked({"usage": shown(usage)}, completion_tokens=None, prompt_tokens=None, cached_tokens=None)
    prompt_details = details(usage, "prompt_tokens_details", bad, "usage.prompt_tokens_details")
    completion_details = details(usage, "completion_tokens_details", bad, "usage.completion_tokens_details")
    return checked(
        bad,
        completion_tokens=take(usage, "completion_tokens", bad, "usage.completion_tokens"),
        prompt_tokens=take(usage, "prompt_tokens", bad, "usage.prompt_tokens"),
        cached_tokens=take(prompt_details, "cached_tokens", bad, "usage.prompt_tokens_details.cached_tokens"),
        image_tokens=take(prompt_details, "image_tokens", bad, "usage.prompt_tokens_details.image_tokens"),
        text_tokens=take(prompt_details, "text_tokens", bad, "usage.prompt_tokens_details.text_tokens"),
        reasoning_tokens=take(completion_details, "reasoning_tokens", bad,
                              "usage.completion_tokens_details.reasoning_tokens"))


def check_openai_io(usage: dict[str, Any]) -> Checked:
    """The Responses API's and OpenAI transcriptions' usage: ``input_tokens``/``output_tokens`` and
    their details (``output_tokens_details.reasoning_tokens``, ``input_token(s)_details``)."""
    bad: dict[str, str] = {}
    out_details = details(usage, "output_tokens_details", bad, "usage.output_tokens_details")
    in_key = "input_tokens_details" if "input_tokens_details" in usage else "input_token_details"
    in_details = details(usage, in_key, bad, f"usage.{in_key}")
    return checked(
        bad,
        completion_tokens=take(usage, "output_tokens", bad, "usage.output_tokens"),
        prompt_tokens=take(usage, "input_tokens", bad, "usage.input_tokens"),
        cached_tokens=take(in_details, "cached_tokens", bad, f"usage.{in_key}.cached_tokens"),
        image_tokens=take(in_details, "image_tokens", bad, f"usage.{in_key}.image_tokens"),
        text_tokens=take(in_details, "text_tokens", bad, f"usage.{in_key}.text_tokens"),
        reasoning_tokens=take(out_details, "reasoning_tokens", bad, "usage.output_tokens_details.reasoning_tokens"))


def check_anthropic(usage: dict[str, Any]) -> Checked:
    """Anthropic's usage: completion = output_tokens (thinking included); the prompt the model saw =
    input_tokens + cache_read_input_tokens + cache_creation_input_tokens (unknown when input_tokens
    is); cached = the cache read."""
    bad: dict[str, str] = {}
    out = take(usage, "output_tokens", bad, "usage.output_tokens")
    inp = take(usage, "input_tokens", bad, "usage.input_tokens")
    read = take(usage, "cache_read_input_tokens", bad, "usage.cache_read_input_tokens")
    created = take(usage, "cache_creation_input_tokens", bad, "usage.cache_creation_input_tokens")
    prompt = None if inp is None else inp + (read or 0) + (created or 0)
    return checked(bad, completion_tokens=out, prompt_tokens=prompt, cached_tokens=read,
                   cache_creation_tokens=created, cached_tokens_source="anthropic" if read is not None else None)
