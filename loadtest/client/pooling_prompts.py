"""Synthetic requests of exact length for ``--api embeddings`` and ``--api rerank`` (``--dataset
synthetic``): every embeddings input ``--prompt-tokens`` long, every rerank query ``--prompt-tokens``
and every document ``--document-tokens`` long, by the server's own tokenizer, made with the same
words and checks as synthetic chat prompts (prompts/synthetic.py, client/synthetic.py).

What the server adds per text (a BOS or EOS token; for rerank, the separators of a (query,
document) pair) is measured before the run by one probe request, as for chat: embeddings inputs
are shortened by it so the server processes exactly the requested count, and a rerank request's
expected count includes it once per pair. Then summary.prompts compares usage.prompt_tokens with
that count request by request.

Texts are counted one by one against the server (one /tokenize each), so at most MAX_TEXTS are
made; a run that needs more draws them again, in a new seeded order each pass.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import httpx

from loadtest.client.auth import build_auth
from loadtest.client.pooling import PATHS
from loadtest.client.synthetic import DEFAULT_DURATION_PROMPTS, PROBE_TIMEOUT_S, choose_counter, served_tokenizer_dir
from loadtest.client.tokenize import ServerCounter
from loadtest.config import RunConfig
from loadtest.errors import RunAborted
from loadtest.measure.usage import count, shown
from loadtest.prompts.sources import Prompt
from loadtest.prompts.synthetic import Counter, SyntheticPlan, SyntheticSpec, build_prompts, probe_text, word_pool

MAX_TEXTS = 2048
"""Distinct synthetic texts made for one run (each counted by the server before the run)."""
DOCUMENTS_SEED = 104729
"""Added to --seed for rerank documents, so they are words of their own, apart from the queries."""


def probe_overhead(cfg: RunConfig, model: str | None, headers: dict[str, str], text: str,
                   counter: Counter) -> tuple[int | None, str | None]:
    """Tokens the server adds to one embeddings input, or to one rerank (query, document) pair:
    its usage for the probe text minus the text's own count. (None, why) when it does not say."""
    pair = cfg.api == "rerank"
    body: dict[str, Any] = {"query": text, "documents": [text]} if pair else {"input": [text]}
    if model:
        body["model"] = model
    try:
        with httpx.Client(headers=headers, timeout=PROBE_TIMEOUT_S) as client:
            if not model:
                models = client.get(cfg.base_url.rstrip("/") + "/models").json().get("data") or []
                if models:
                    body["model"] = models[0]["id"]
            r = client.post(cfg.base_url.rstrip("/") + PATHS[cfg.api], json=body)
    except httpx.TimeoutException:
        return None, f"the probe request took over {PROBE_TIMEOUT_S:g} s"
    except (httpx.HTTPError, ValueError) as exc:
        raise RunAborted(f"synthetic {cfg.api}: the probe request to {cfg.base_url} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    if r.status_code >= 400:
        return None, f"probe request answered HTTP {r.status_code}"
    try:
        usage = r.json().get("usage") or {}
        raw = usage.get("prompt_tokens", usage.get("total_tokens"))
    except (ValueError, TypeError, AttributeError):
        return None, "the server reports no usage.prompt_tokens"
    used = count(raw)
    if used is None:
        return None, ("the server reports no usage.prompt_tokens" if raw is None else
                      f"the server's usage.prompt_tokens is not a token count: {shown(raw)}")
    return used - counter.count(text) * (2 if pair else 1), None


def _draw(texts: list[Prompt], count: int, seed: str) -> list[Prompt]:
    """``count`` texts in order, then (past the texts made) again in a new seeded order per pass."""
    out = list(texts[:count])
    rng = random.Random(seed)
    while len(out) < count:
        again = list(texts)
        rng.shuffle(again)
        out += again[:count - len(out)]
    return out


def pooled_plan(cfg: RunConfig, server: Any = None) -> SyntheticPlan:
    """The run's requests: ``batch_size`` inputs each, or one query and ``documents`` documents."""
    assert cfg.prompt_tokens is not None
    requests = (cfg.num_prompts or DEFAULT_DURATION_PROMPTS) + cfg.warmup
    headers = build_auth(cfg).headers
    counter, on_server = choose_counter(cfg.base_url, cfg.model, headers, cfg.tokenizer or served_tokenizer_dir(server))
    spec = SyntheticSpec(cfg.prompt_tokens, cfg.prompt_tokens_stddev, cfg.shared_prefix_tokens, cfg.seed,
                         prefix_groups=cfg.prefix_groups or 1, cache_bust=cfg.cache_bust)
    try:
        pool = word_pool(counter)
        overhead, why = probe_overhead(cfg, cfg.model, headers, probe_text(pool, cfg.seed), counter)
        if cfg.api == "embeddings":
            plan = _embeddings(spec, requests, cfg.batch_size, counter, pool, overhead)
        else:
            plan = _rerank(spec, requests, cfg.documents, cfg.document_tokens or cfg.prompt_tokens, counter, pool, overhead)
    finally:
        if isinstance(counter, ServerCounter):
            counter.close()
    plan.info.update(verified_by_server_tokenize=on_server, template_overhead_unknown_because=why, api=cfg.api,
                     requests=requests)
    return plan


def _embeddings(spec: SyntheticSpec, requests: int, size: int, counter: Counter, pool: list[str],
                overhead: int | None) -> SyntheticPlan:
    made = min(requests * size, MAX_TEXTS)
    texts = build_prompts(spec, made, counter, pool, overhead)
    drawn = _draw(texts.prompts, requests * size, f"inputs-{spec.seed}")
    prompts, expected = [], {}
    for j in range(requests):
        batch = drawn[j * size:(j + 1) * size]
        pid = f"syn-{spec.seed}-b{j}"
        prompts.append(Prompt(id=pid, text=batch[0].text, inputs=tuple(p.text for p in batch)))
        expected[pid] = sum(texts.expected[p.id] for p in batch)  # the server counts every input
    texts.info.update(prompts=requests, batch_size=size, texts_made=made, texts_reused=requests * size > made)
    return SyntheticPlan(prompts=prompts, expected=expected, info=texts.info)


def _rerank(spec: SyntheticSpec, requests: int, documents: int, length: int, counter: Counter, pool: list[str],
            overhead: int | None) -> SyntheticPlan:
    queries = build_prompts(spec, requests, counter, pool, 0)
    made = min(requests * documents, MAX_TEXTS)
    docs = build_prompts(replace(spec, prompt_tokens=length, stddev=0.0, shared_prefix_tokens=0, prefix_groups=1,
                                 cache_bust=False, seed=spec.seed + DOCUMENTS_SEED), made, counter, pool, 0)
    drawn = _draw(docs.prompts, requests * documents, f"documents-{spec.seed}")
    prompts, expected = [], {}
    for j, q in enumerate(queries.prompts):
        scored = drawn[j * documents:(j + 1) * documents]
        prompts.append(Prompt(id=q.id, text=q.text, inputs=tuple(d.text for d in scored)))
        # every (query, document) pair is read whole, with what the server adds to a pair
        expected[q.id] = sum(queries.expected[q.id] + docs.expected[d.id] + (overhead or 0) for d in scored)
    info = {**queries.info, "template_overhead_tokens": overhead, "template_compensated": False,
            "documents": documents, "document_tokens": length, "texts_made": made,
            "texts_reused": requests * documents > made}
    return SyntheticPlan(prompts=prompts, expected=expected, info=info)
