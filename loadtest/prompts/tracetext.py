"""The prompts of a replayed trace: each row's input length synthesised exactly as ``--dataset
synthetic`` does (one-token words, counted by the served model's tokenizer, the chat template's
tokens taken off), with the row's own output length. A trace that gives ``messages`` sends them.

Mooncake's ``hash_ids`` say which 512-token blocks rows share: block text is a function of the
hash id alone (seeded), so rows that share their first k ids share exactly 512 x k leading prompt
tokens, and what follows differs from its first word (the first word of a block is the id's own,
distinct for ids that differ modulo the word pool's size, about a thousand words)."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from loadtest.prompts.sources import Prompt, first_user_turn
from loadtest.prompts.synthetic import Counter, SyntheticPlan, _exact
from loadtest.prompts.trace import BLOCK_TOKENS, TraceRow

DATASET = "trace"


def block_words(h: int, pool: list[str], seed: int) -> list[str]:
    """The 512 words of hash id ``h``: the same for every row that carries it."""
    rng = random.Random(f"block-{seed}-{h}")
    n = len(pool)
    return [pool[h % n], pool[(h // n) % n]] + [rng.choice(pool) for _ in range(BLOCK_TOKENS - 2)]


def trace_prompts(rows: Sequence[TraceRow], *, stem: str, counter: Counter | None, pool: list[str],
                  overhead: int | None, seed: int, later: Collection[int] = frozenset()) -> SyntheticPlan:
    """One prompt per row, in the rows' order. ``counter`` may be None only when every row gives
    its messages (nothing to synthesise). ``later``: positions of rows that are a session's later
    turns (prompts/tracesessions.py): their text is exactly the row's tokens, with no template
    taken off (the request's one template is counted in turn 0), and their request's length is not
    checked (it carries the history)."""
    rng = random.Random(seed)
    firsts = list(pool)
    rng.shuffle(firsts)
    seen: set[tuple[str, str]] = set()
    blocks: dict[int, list[str]] = {}
    prompts: list[Prompt] = []
    expected: dict[str, int] = {}
    short = synthesised = 0
    for i, row in enumerate(rows):
        pid = f"{stem}-{row.line}"
        if row.messages is not None:
            text = first_user_turn({"messages": list(row.messages)}) or ""
            prompts.append(Prompt(pid, text, max_tokens=row.output_tokens, messages=row.messages))
            continue
        assert row.input_tokens is not None and counter is not None
        synthesised += 1
        content = row.input_tokens - (0 if i in later else overhead or 0)
        if content < 1:  # the template alone is longer than the row's input: the shortest prompt
            content, short = 1, short + 1
        if row.hash_ids:
            words = [w for h in row.hash_ids for w in blocks.setdefault(h, block_words(h, pool, seed))][:content]
        else:  # every prompt starts differently (a prefix cache cannot flatter the replay)
            first, second = firsts[i % len(firsts)], rng.choice(pool)
            while (first, second) in seen and len(seen) < len(pool) ** 2:
                second = rng.choice(pool)
            seen.add((first, second))
            words = [first, second] + [rng.choice(pool) for _ in range(max(0, content - 2))]
            words = words[:content]
        text, _ = _exact(words, content, counter, rng, pool)
        prompts.append(Prompt(pid, text, max_tokens=row.output_tokens))
        if i not in later:
            expected[pid] = max(row.input_tokens, content + (overhead or 0))
    info = {"dataset": DATASET, "seed": seed, "prompts": len(prompts), "synthesised": synthesised,
            "given_messages": len(prompts) - synthesised, "tokenizer": counter.name if counter else None,
            "word_pool": len(pool), "template_overhead_tokens": overhead,
            "template_compensated": bool(overhead) and short < synthesised,
            "prompts_too_short_to_compensate": short, "block_tokens": BLOCK_TOKENS if blocks else None}
    return SyntheticPlan(prompts=prompts, expected=expected, info=info)
