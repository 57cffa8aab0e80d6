"""A dataset's prompts as the requests of the APIs that generate nothing: ``--api embeddings``
sends ``--batch-size`` texts per request, ``--api rerank`` one query and ``--documents`` documents.

Grouping happens here, before the run, so a request is still one :class:`Prompt` (its texts in
``inputs``) and the run's seeded order, scale-out and records work as for any API. Synthetic texts
of exact length are made in client/pooling_prompts.py, from the server's tokenizer.
"""

from __future__ import annotations

import random

from loadtest.config import RunConfig
from loadtest.prompts.sources import Prompt


def pooled_prompts(prompts: list[Prompt], cfg: RunConfig) -> list[Prompt]:
    """``prompts`` as the run's requests: unchanged for the generation APIs."""
    if cfg.api == "embeddings":
        return batches(prompts, cfg.batch_size, cfg.seed)
    if cfg.api == "rerank":
        return with_documents(prompts, cfg.documents, cfg.seed)
    return prompts


def batches(prompts: list[Prompt], size: int, seed: int) -> list[Prompt]:
    """One batch per prompt: the prompt first, then ``size - 1`` others (a seeded choice, none twice
    while the dataset has enough), so the run has as many distinct requests as the dataset has
    prompts. A batch's id is its first prompt's plus how many more it holds (``b017+3``): stable for a
    dataset, seed and size, so two runs' records join on it."""
    if size == 1:
        return [Prompt(id=p.id, text=p.text, inputs=(p.text,)) for p in prompts]
    return [Prompt(id=f"{p.id}+{size - 1}", text=p.text, inputs=(p.text, *others))
            for p, others in zip(prompts, _others(prompts, size - 1, f"batches-{seed}"))]


def with_documents(prompts: list[Prompt], documents: int, seed: int) -> list[Prompt]:
    """Each prompt a query, scored against ``documents`` other prompts of the dataset (a seeded
    choice per query, its own text left out while the dataset has enough others)."""
    return [Prompt(id=p.id, text=p.text, inputs=others)
            for p, others in zip(prompts, _others(prompts, documents, f"documents-{seed}"))]


def _others(prompts: list[Prompt], k: int, seed: str) -> list[tuple[str, ...]]:
    """For each prompt, the texts of ``k`` others: distinct ones while there are enough, drawn with
    repeats (itself included) from a dataset smaller than that. O(k) per prompt."""
    rng = random.Random(seed)
    n = len(prompts)
    out = []
    for i in range(n):
        picks = ([j + (j >= i) for j in rng.sample(range(n - 1), k)] if k <= n - 1
                 else [rng.randrange(n) for _ in range(k)])
        out.append(tuple(prompts[j].text for j in picks))
    return out
