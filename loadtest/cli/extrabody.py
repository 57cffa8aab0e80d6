"""``--extra-body``: fields merged into every request body, except those the run itself controls.

A field the run sets from its own options (or from the prompts, or for its measurement) would be
silently overridden or would silently change what is measured: ``{"stream": false}`` turned
streaming off and the whole response time was reported as TTFT; ``{"max_tokens": 1}`` contradicted
--max-tokens. Such fields are refused with one line naming the option to use instead, whatever the
--api (the names of every dialect: chat's max_tokens / max_completion_tokens, the Responses API's
max_output_tokens, Messages' max_tokens). Sampling fields that have their own option
(temperature, top_p, ignore_eos, tools) are taken from --extra-body only when that option is not
given too. What is left is sent as given, and summary.json's config records it (extra_body).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loadtest.errors import ConfigError

CONTROLLED: dict[str, str] = {
    "stream": "streaming is the run's: use --no-stream to turn it off (then TTFT is not measured)",
    "stream_options": "the run asks for usage itself (stream_options.include_usage) and drops it when the "
                      "server rejects it",
    "max_tokens": "use --max-tokens (sent under the name the API and server take)",
    "max_completion_tokens": "use --max-tokens (sent as max_completion_tokens when the server asks for it)",
    "max_output_tokens": "use --max-tokens (the Responses API's name for it)",
    "model": "use --model",
    "messages": "the prompts come from --dataset",
    "prompt": "the prompts come from --dataset",
    "input": "the prompts come from --dataset",
    "query": "the prompts come from --dataset",
    "documents": "the prompts come from --dataset",
    "file": "the audio comes from --dataset",
    "n": "one completion per request is measured (its choices[0]); more would be generated but not counted",
}
"""Fields refused in --extra-body, and what to do instead."""

OWN_OPTION = {"temperature": "--temperature", "top_p": "--top-p", "ignore_eos": "--ignore-eos", "tools": "--tools"}
"""Fields with their own option: refused in --extra-body only when that option is given too."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def extra_body(text: str, ns: argparse.Namespace | None = None) -> dict[str, Any]:
    """The --extra-body object, or ConfigError (one line). ``ns``: the options, to refuse a field
    that contradicts one that was given."""
    try:
        extra = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"--extra-body is not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ConfigError("--extra-body must be a JSON object")
    for key in extra:
        if key in CONTROLLED:
            raise ConfigError(f"--extra-body {key}: a field the run controls; {CONTROLLED[key]}")
        flag = OWN_OPTION.get(key)
        given = getattr(ns, flag[2:].replace("-", "_"), None) if ns is not None and flag else None
        if given not in (None, False):
            raise ConfigError(f"--extra-body {key} contradicts {flag}: give it once")
    return extra
