"""Prefix caching without a server: --prefix-groups builds G groups sharing exactly K tokens,
--cache-bust leaves nothing shared, the sim's cache hits whole blocks only and evicts LRU, and the
summary block is null (not 0) when the server reports nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loadtest.errors import ConfigError
from loadtest.measure.prefixcache import PrefixCacheTotals
from loadtest.prompts.synthetic import SyntheticSpec, build_prompts, word_pool
from loadtest.sim.prefixcache import PrefixCache
from loadtest.tokens import load_tokenizer

CL100K = load_tokenizer("cl100k_base")
POOL = word_pool(CL100K)


def _ids(text: str) -> list[int]:
    return CL100K._enc.encode(text)  # type: ignore[attr-defined]


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_groups_share_exactly_k_tokens_within_and_none_between() -> None:
    g, k = 3, 24
    plan = build_prompts(SyntheticSpec(80, shared_prefix_tokens=k, seed=5, prefix_groups=g), 30, CL100K, POOL, 0)
    ids = [_ids(p.text) for p in plan.prompts]
    assert all(len(x) == 80 for x in ids)  # exact lengths, as without groups
    for i in range(30):
        for j in range(i + 1, 30):
            assert _common(ids[i], ids[j]) == (k if i % g == j % g else 0), (i, j)
    assert plan.info["prefix_groups"] == 3 and plan.info["prefix_group_of_prompt"] == "i % prefix_groups"
    again = build_prompts(SyntheticSpec(80, shared_prefix_tokens=k, seed=5, prefix_groups=g), 30, CL100K, POOL, 0)
    assert [p.text for p in again.prompts] == [p.text for p in plan.prompts]  # seeded


def test_one_group_is_the_shared_prefix_of_before() -> None:
    one = build_prompts(SyntheticSpec(64, shared_prefix_tokens=16, seed=2, prefix_groups=1), 10, CL100K, POOL, 0)
    plain = build_prompts(SyntheticSpec(64, shared_prefix_tokens=16, seed=2), 10, CL100K, POOL, 0)
    assert [p.text for p in one.prompts] == [p.text for p in plain.prompts]


def test_cache_bust_shares_nothing_and_keeps_the_length() -> None:
    plan = build_prompts(SyntheticSpec(64, shared_prefix_tokens=32, seed=1, prefix_groups=2, cache_bust=True),
                         40, CL100K, POOL, 0)
    ids = [_ids(p.text) for p in plan.prompts]
    assert all(len(x) == 64 for x in ids) and len({x[0] for x in ids}) == 40
    assert plan.info["cache_bust"] is True and plan.info["cache_bust_tokens"] == 1
    # past the word pool, the first pair is unique instead
    many = build_prompts(SyntheticSpec(8, seed=1, cache_bust=True), len(POOL) + 5, CL100K, POOL, 0)
    assert many.info["cache_bust_tokens"] == 2
    assert len({tuple(_ids(p.text)[:2]) for p in many.prompts}) == len(POOL) + 5


def test_more_groups_than_words_is_refused() -> None:
    with pytest.raises(ConfigError, match="--prefix-groups"):
        build_prompts(SyntheticSpec(64, shared_prefix_tokens=8, prefix_groups=len(POOL) + 1), 4, CL100K, POOL, 0)


def _owner(gone: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(disconnect_ns=gone)


def test_sim_cache_hits_whole_blocks_after_the_prefill_and_evicts_lru() -> None:
    cache = PrefixCache(capacity_tokens=8, block_tokens=4)  # two blocks
    a = cache.block_hashes(list("abcdefghij"))  # 10 tokens: 2 whole blocks
    assert len(a) == 2 and cache.block_hashes(list("abcdXfgh"))[0] == a[0] != cache.block_hashes(list("Xbcd"))[0]
    assert cache.block_hashes(list("abcdXfgh"))[1] != a[1]  # a block's key holds the prefix before it
    assert cache.lookup(a, 10, now_ns=0) == 0
    cache.insert_at(100, a, _owner())
    assert cache.lookup(a, 10, now_ns=99) == 0  # the prefill has not ended yet
    assert cache.lookup(a, 10, now_ns=100) == 8
    assert cache.lookup(a, 8, now_ns=101) == 4  # the last prompt token is always computed
    b = cache.block_hashes(list("zyxwvuts"))
    cache.insert_at(200, b, _owner())
    assert cache.lookup(b, 9, now_ns=200) == 8 and cache.lookup(a, 10, now_ns=200) == 0  # a evicted
    cache.insert_at(300, a, _owner(gone=250))  # its client left during the prefill: never cached
    assert cache.lookup(a, 10, now_ns=300) == 0 and cache.blocks == 2


def test_summary_block_is_null_without_reports_and_splits_hits() -> None:
    empty = PrefixCacheTotals()
    empty.add(SimpleNamespace(prompt_tokens=10, cached_tokens=None, cached_tokens_source=None, cache_creation_tokens=None,
                              ttft_s=0.1))
    b = empty.block()
    assert b["source"] == "none" and b["hit_rate"] is None and b["hits"] is None and b["ttft_hit_s"]["p50"] is None
    t = PrefixCacheTotals()
    for cached, ttft in ((0, 0.3), (64, 0.1), (64, 0.2)):
        t.add(SimpleNamespace(prompt_tokens=128, cached_tokens=cached, cached_tokens_source="timings",
                              cache_creation_tokens=None, ttft_s=ttft))
    b = t.block()
    assert b["source"] == "llama.cpp timings" and b["hit_rate"] == 128 / 384
    assert (b["hits"], b["misses"]) == (2, 1)
    assert b["ttft_hit_s"] == {"count": 2, "p50": pytest.approx(0.15), "mean": pytest.approx(0.15)}
    assert b["ttft_miss_s"]["p50"] == 0.3
