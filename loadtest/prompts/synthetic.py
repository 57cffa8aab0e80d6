"""Synthetic prompts of exact token length (``--dataset synthetic --prompt-tokens N``): part of the
prompt stage, producing the same :class:`Prompt` objects as any dataset. What asks the server
(its /tokenize, the overhead probe) is in client/synthetic.py; this module only builds and checks.

A prompt is a seeded sequence of common English words, each of which is one token in the served
model's vocabulary (checked with the counter below), so N words are N tokens; every prompt is then
counted as a whole and trimmed or extended until the count is exactly right. The counter is, in
order of trust: the server's own ``/tokenize`` (llama.cpp, vLLM: the served model's tokenizer,
whatever it is), ``--tokenizer``, else tiktoken ``cl100k_base`` (right for GPT-class hosted models,
approximate for others: the mismatch against ``usage.prompt_tokens`` is always reported).

The server may add tokens of its own (a chat template, a BOS token): one probe request measures
that overhead from ``usage.prompt_tokens`` before the run, and prompts are shortened by it so the
server processes the requested count. Every prompt starts differently (a prefix cache cannot
flatter the result), unless ``--shared-prefix-tokens K`` asks for exactly K shared leading tokens:
by every prompt, or with ``--prefix-groups G`` within each of G groups whose prefixes differ from
their first token (prompt i is in group i % G; a run sends its prompts in a seeded shuffle, so the
groups are spread over the run). ``--cache-bust`` puts a word no other prompt starts with first in
every prompt (two words past word_pool prompts: then the first pair is unique), so no prefix cache
can hit: the baseline the cached run is compared with.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loadtest.errors import ConfigError
from loadtest.prompts.sources import BUILTIN_PATH, Prompt, load_prompts

DATASET = "synthetic"
PROBE_TOKENS = 8


class Counter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


@dataclass(frozen=True)
class SyntheticSpec:
    prompt_tokens: int
    stddev: float = 0.0
    shared_prefix_tokens: int = 0
    seed: int = 0
    prefix_groups: int = 1
    cache_bust: bool = False


@dataclass
class SyntheticPlan:
    """The prompts, the length requested for each (by prompt id), and how they were made."""

    prompts: list[Prompt]
    expected: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)


def word_pool(counter: Counter) -> list[str]:
    """Distinct lowercase words of the builtin prompts that are one token each with a leading space
    (the form every word of a prompt takes), in a fixed order."""
    text = " ".join(p.text for p in load_prompts("builtin", builtin_path=BUILTIN_PATH))
    seen: dict[str, None] = {}
    for w in re.findall(r"[a-z]+", text.lower()):
        if 2 <= len(w) <= 10:
            seen.setdefault(w)
    pool: list[str] = []

    def keep(words: list[str]) -> None:  # bisect: one count per batch that is all single tokens
        if not words:
            return
        if counter.count(" " + " ".join(words)) == len(words):
            pool.extend(words)
        elif len(words) > 1:
            keep(words[:len(words) // 2])
            keep(words[len(words) // 2:])

    candidates = list(seen)
    for i in range(0, len(candidates), 128):
        keep(candidates[i:i + 128])
    if len(pool) < 32:
        raise ConfigError(f"synthetic prompts: only {len(pool)} one-token words for tokenizer {counter.name}")
    return pool


def probe_text(pool: list[str], seed: int) -> str:
    """The short prompt (PROBE_TOKENS one-token words, seeded) whose usage.prompt_tokens tells what
    the server adds to a prompt (client/synthetic.py sends it)."""
    rng = random.Random(f"probe-{seed}")
    return "".join(" " + rng.choice(pool) for _ in range(PROBE_TOKENS))


def _exact(words: list[str], n: int, counter: Counter, rng: random.Random, pool: list[str]) -> tuple[str, int]:
    """Join ``words`` and trim or extend the tail until the whole text counts ``n`` tokens. Every word
    is space-led (the pool's words are one token in that form), the first one too."""
    words = list(words)
    text = " " + " ".join(words)
    c = counter.count(text)
    for _ in range(64):
        if c == n or not words:
            break
        if c > n and len(words) > 1:
            words.pop()
        elif c > n:
            words = [rng.choice(pool)]
        else:
            words.append(rng.choice(pool))
        text = " " + " ".join(words)
        c = counter.count(text)
    return text, c


def exact_text(n: int, counter: Counter, pool: list[str], seed: str) -> tuple[str, int]:
    """(text, its count): seeded one-token words counting exactly ``n`` tokens by ``counter`` (the
    count says when 64 trims could not get there). The canned tool result of --tool-result-tokens is
    one: the same words and check as a synthetic prompt, with no template overhead taken off."""
    rng = random.Random(seed)
    return _exact([rng.choice(pool) for _ in range(max(n, 1))], n, counter, rng, pool)


def _group_prefixes(spec: SyntheticSpec, pool: list[str], shared: list[str]) -> list[list[str]]:
    """The K-word prefix of each group: group 0's is ``shared`` (the one every prompt had before
    groups), the others start with distinct words that are not its first."""
    k, g = spec.shared_prefix_tokens, spec.prefix_groups
    if g == 1 or not k:
        return [shared]
    if g > len(pool):
        raise ConfigError(f"--prefix-groups {g}: at most {len(pool)} groups (the one-token words that can start one)")
    rng = random.Random(f"groups-{spec.seed}")
    heads = [w for w in pool if w != shared[0]]
    rng.shuffle(heads)
    return [shared] + [[w] + [rng.choice(pool) for _ in range(k - 1)] for w in heads[:g - 1]]


def build_prompts(spec: SyntheticSpec, count: int, counter: Counter, pool: list[str], overhead: int | None) -> SyntheticPlan:
    """``count`` prompts; the server should count each one's length (requested +- stddev) exactly.

    Within a group (all prompts, without --prefix-groups) the word after the shared prefix differs
    between any two prompts while the group has at most as many prompts as pool words (else the
    first two words differ), so no two prompts share more than K leading tokens."""
    rng = random.Random(spec.seed)
    k = spec.shared_prefix_tokens
    shared = [rng.choice(pool) for _ in range(k)]
    firsts = list(pool)
    rng.shuffle(firsts)
    prefixes = _group_prefixes(spec, pool, shared)
    busts = list(pool)
    random.Random(f"bust-{spec.seed}").shuffle(busts)
    bust_words = 0 if not spec.cache_bust else 1 if count <= len(busts) else 2
    seen: set[tuple[int, str, str]] = set()
    prompts: list[Prompt] = []
    expected: dict[str, int] = {}
    compensated = overhead is not None and overhead != 0
    short = 0
    lead = bust_words + k  # words before the first one that differs within a group
    for i in range(count):
        want = spec.prompt_tokens if not spec.stddev else max(lead + 1, round(rng.gauss(spec.prompt_tokens, spec.stddev)))
        content = want - (overhead or 0)
        if content < lead + 1:  # the overhead alone is longer than the request: send the shortest prompt
            content, short = lead + 1, short + 1
        group, j = i % len(prefixes), i // len(prefixes)
        first = firsts[j % len(firsts)]
        second = rng.choice(pool)
        while (group, first, second) in seen:
            second = rng.choice(pool)
        seen.add((group, first, second))
        bust = [busts[i % len(busts)], busts[i // len(busts) % len(busts)]][:bust_words]
        words = bust + prefixes[group] + [first, second] + [rng.choice(pool) for _ in range(max(0, content - lead - 2))]
        text, _ = _exact(words[:max(content, 1)], content, counter, rng, pool)
        pid = f"syn-{spec.seed}-{i}"
        prompts.append(Prompt(id=pid, text=text))
        expected[pid] = want  # what the server should count: compared with its usage after the run
    info = {"dataset": DATASET, "prompt_tokens": spec.prompt_tokens, "prompt_tokens_stddev": spec.stddev,
            "shared_prefix_tokens": k, "prefix_groups": len(prefixes) if k else None,
            "prefix_group_of_prompt": "i % prefix_groups" if k else None, "cache_bust": spec.cache_bust,
            "cache_bust_tokens": bust_words, "seed": spec.seed, "prompts": count, "tokenizer": counter.name,
            "word_pool": len(pool), "template_overhead_tokens": overhead,
            "template_compensated": compensated and short < count, "prompts_too_short_to_compensate": short}
    return SyntheticPlan(prompts=prompts, expected=expected, info=info)


def check_records(rows: Iterable[dict[str, Any]], expected: dict[str, int] | None, *, max_tokens: int) -> dict[str, Any]:
    """Measured, completed requests against what was asked: the server's usage.prompt_tokens against
    the length requested for each prompt, the engine's cached prompt tokens, and completions shorter
    than max_tokens. One streaming pass: only running totals are kept, however long the run. (A
    session's later turns and a task's tool rounds carry a history: only first requests are checked
    against the length.)"""
    checked = done = mismatched = diff_sum = short = cached_n = cached_sum = 0
    diff_min: int | None = None
    diff_max: int | None = None
    short_min: int | None = None
    for r in rows:
        if not r.get("ok") or r.get("warmup"):
            continue
        done += 1
        got = r.get("prompt_text_tokens") if r.get("images") else r.get("prompt_tokens")  # images: the text's
        first = not r.get("turn") and not r.get("tool_round")  # later requests carry a history
        if expected is not None and got is not None and r.get("prompt_id") in expected and first:
            checked += 1
            diff = got - expected[r["prompt_id"]]
            if diff:
                mismatched, diff_sum = mismatched + 1, diff_sum + diff
                diff_min = diff if diff_min is None else min(diff_min, diff)
                diff_max = diff if diff_max is None else max(diff_max, diff)
        n = r.get("completion_tokens")
        if n is not None and n < (r.get("max_tokens") or max_tokens) and r.get("finish_reason") != "tool_calls":
            # (the max_tokens a trace row asked, else the run's; a reply that calls tools ends early by design)
            short += 1
            short_min = n if short_min is None else min(short_min, n)
        timings = r.get("engine_timings")
        if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
            cached_n, cached_sum = cached_n + 1, cached_sum + timings["cache_n"]
    out: dict[str, Any] = {}
    if expected is not None:
        out.update(usage_checked=checked, usage_exact=checked - mismatched, usage_mismatched=mismatched,
                   usage_mismatch_tokens_mean=diff_sum / mismatched if mismatched else None,
                   usage_mismatch_tokens_min=diff_min, usage_mismatch_tokens_max=diff_max)
    out["prompt_tokens_cached_mean"] = cached_sum / cached_n if cached_n else None
    out.update(completions_checked=done, completions_short=short, completions_short_min_tokens=short_min)
    return out


def warnings(check: dict[str, Any], max_tokens: int) -> list[str]:
    """One line per thing the user must know: lengths the server did not see as asked."""
    lines = []
    if check.get("usage_mismatched"):
        lines.append(f"{check['usage_mismatched']} of {check['usage_checked']} prompts were counted differently by "
                     f"the server (usage.prompt_tokens - requested: {check['usage_mismatch_tokens_min']:+d} .. "
                     f"{check['usage_mismatch_tokens_max']:+d} tokens)")
    if check.get("completions_short"):
        lines.append(f"{check['completions_short']} of {check['completions_checked']} completions came back shorter "
                     f"than max_tokens {max_tokens} (shortest {check['completions_short_min_tokens']}); "
                     "--ignore-eos forces the length where the engine accepts it")
    return lines
