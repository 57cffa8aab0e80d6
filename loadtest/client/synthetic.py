"""Synthetic prompts for a run against a real server: the prompt stage's builder (prompts/synthetic.py)
fed with the server's own tokenizer (its /tokenize, else --tokenizer, else cl100k_base) and the
tokens its chat template adds, measured by one probe request before the run."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from loadtest.client import messages as anthropic
from loadtest.client.auth import build_auth
from loadtest.client.tokenize import ServerCounter, root_url
from loadtest.config import RunConfig
from loadtest.errors import ConfigError, RunAborted
from loadtest.measure.usage import count, shown
from loadtest.prompts.sessions import join_synthetic
from loadtest.prompts.synthetic import (
    Counter,
    SyntheticPlan,
    SyntheticSpec,
    build_prompts,
    exact_text,
    probe_text,
    word_pool,
)
from loadtest.tokens import load_tokenizer

DEFAULT_DURATION_PROMPTS = 1000
"""Prompts made for a --duration run (a counted run makes exactly its warm-up + measured count)."""
LATER_TURNS_SEED = 7919
"""Added to --seed for the later turns of synthetic sessions, so they are words of their own."""
PROBE_TIMEOUT_S = 120.0
"""The overhead probe's own timeout (8 prompt tokens, 1 generated), apart from --timeout."""


def choose_counter(base_url: str, model: str | None, headers: dict[str, str], tokenizer: str | None) -> tuple[Counter, bool]:
    """(counter, whether it is the server's own tokenizer)."""
    server = ServerCounter(root_url(base_url), model, headers)
    if server.works():
        return server, True
    server.close()
    return load_tokenizer(tokenizer or "cl100k_base"), False


def probe_overhead(base_url: str, model: str | None, api: str, headers: dict[str, str], pool: list[str],
                   counter: Counter, seed: int, timeout_s: float,
                   tools: tuple[dict[str, Any], ...] | None = None) -> tuple[int | None, str | None]:
    """Tokens the server adds to a prompt (chat template, BOS, and with --tools the definitions the
    template renders): usage.prompt_tokens of one short request minus the prompt's own count.
    (None, why) when the server does not say."""
    text = probe_text(pool, seed)
    body: dict[str, Any] = {"max_tokens": 1, "stream": False}
    if tools is not None and api == "chat":
        body["tools"] = list(tools)
    if model:
        body["model"] = model
    if api in ("chat", "messages"):
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    try:
        with httpx.Client(headers=headers, timeout=timeout_s) as client:
            if not model:
                models = client.get(base_url.rstrip("/") + "/models").json().get("data") or []
                if models:
                    body["model"] = models[0]["id"]
            path = {"chat": "/chat/completions", "messages": "/messages"}.get(api, "/completions")
            r = client.post(base_url.rstrip("/") + path, json=body)
    except httpx.TimeoutException:
        return None, f"the probe request took over {timeout_s:g} s"
    except httpx.HTTPError as exc:
        raise RunAborted(f"synthetic prompts: the probe request to {base_url} failed: {type(exc).__name__}: {exc}") from None
    if r.status_code >= 400:
        return None, f"probe request answered HTTP {r.status_code}"
    try:
        usage = r.json().get("usage") or {}
        raw = None if api == "messages" else usage.get("prompt_tokens")
        seen = anthropic.prompt_tokens(usage) if api == "messages" else count(raw)
    except (ValueError, TypeError, AttributeError):
        return None, "the server reports no usage.prompt_tokens"
    if seen is None:
        return None, ("the server reports no usage.prompt_tokens" if raw is None else
                      f"the server's usage.prompt_tokens is not a token count: {shown(raw)}")
    return seen - counter.count(text), None


def prepare(spec: SyntheticSpec, count: int, *, base_url: str, model: str | None, api: str, headers: dict[str, str],
            tokenizer: str | None, timeout_s: float = 60.0, turns: int | None = None,
            turn_tokens: int | None = None, tools: tuple[dict[str, Any], ...] | None = None) -> SyntheticPlan:
    """Choose the counter, build the word pool, probe the server's overhead, build the prompts
    (with ``turns``: sessions, whose later user turns are ``turn_tokens`` long)."""
    if spec.prompt_tokens < 1:
        raise ConfigError("--prompt-tokens must be >= 1")
    if spec.shared_prefix_tokens + spec.cache_bust >= spec.prompt_tokens:
        raise ConfigError("--shared-prefix-tokens (+1 with --cache-bust) must be smaller than --prompt-tokens")
    counter, on_server = choose_counter(base_url, model, headers, tokenizer)
    try:
        pool = word_pool(counter)
        overhead, why = probe_overhead(base_url, model, api, headers, pool, counter, spec.seed, timeout_s, tools)
        plan = build_prompts(spec, count, counter, pool, overhead)
        if turns is not None and turns > 1:  # the later turns: exact on their own, no template of their own
            later = build_prompts(replace(spec, prompt_tokens=turn_tokens or spec.prompt_tokens, stddev=0.0,
                                          shared_prefix_tokens=0, prefix_groups=1, cache_bust=False,
                                          seed=spec.seed + LATER_TURNS_SEED), count * (turns - 1), counter, pool, 0)
            plan.prompts = join_synthetic(plan.prompts, later.prompts, turns)
            plan.info.update(turns=turns, turn_prompt_tokens=turn_tokens or spec.prompt_tokens)
    finally:
        if isinstance(counter, ServerCounter):
            counter.close()
    plan.info["verified_by_server_tokenize"] = on_server
    plan.info["template_overhead_unknown_because"] = why
    return plan


def served_tokenizer_dir(server: Any) -> str | None:
    """The launched model's own tokenizer, for engines without /tokenize (transformers serves an
    exported Hugging Face directory): used when the `tokenizers` package is installed."""
    served = ((getattr(server, "info", None) or {}).get("model") or {}).get("served_path")
    if served and (Path(served) / "tokenizer.json").is_file() and importlib.util.find_spec("tokenizers"):
        return str(served)
    return None


def plan_for(cfg: RunConfig, server: Any = None) -> SyntheticPlan:
    """The run's prompts (one per request, or per session, so none repeats) counted with the server's
    tokenizer."""
    assert cfg.prompt_tokens is not None
    count = (cfg.num_prompts or DEFAULT_DURATION_PROMPTS) + cfg.warmup
    spec = SyntheticSpec(cfg.prompt_tokens, cfg.prompt_tokens_stddev, cfg.shared_prefix_tokens, cfg.seed,
                         prefix_groups=cfg.prefix_groups or 1, cache_bust=cfg.cache_bust)
    return prepare(spec, count, base_url=cfg.base_url, model=cfg.model, api=cfg.api, headers=build_auth(cfg).headers,
                   tokenizer=cfg.tokenizer or served_tokenizer_dir(server), timeout_s=PROBE_TIMEOUT_S,
                   turns=cfg.turns, turn_tokens=cfg.turn_prompt_tokens, tools=cfg.tools)


def tool_result_text(cfg: RunConfig, server: Any = None) -> tuple[str, dict[str, Any]]:
    """The canned result every tool call gets (--tool-result-tokens N): seeded one-token words
    counting exactly N by the server's tokenizer (its /tokenize, else --tokenizer, else
    cl100k_base), as synthetic prompts are; and how it was made, for the summary's tools block."""
    counter, on_server = choose_counter(cfg.base_url, cfg.model, build_auth(cfg).headers,
                                        cfg.tokenizer or served_tokenizer_dir(server))
    try:
        pool = word_pool(counter)
        text, got = exact_text(cfg.tool_result_tokens, counter, pool, f"tool-result-{cfg.seed}")
    finally:
        if isinstance(counter, ServerCounter):
            counter.close()
    return text, {"tool_result_tokens": got, "tool_result_tokenizer": counter.name,
                  "tool_result_verified_by_server_tokenize": on_server}
