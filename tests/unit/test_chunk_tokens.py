"""The tokens-per-chunk rule (loadtest.measure.chunk_tokens) and the /tokenize piece mapping, without sockets."""

from __future__ import annotations

import random

import pytest

from loadtest.measure.chunk_tokens import (TEXT_SHARE, TOKENIZER, USAGE_PER_CHUNK, from_usage, proportional,
                                           reconcile, split_chunk_tokens, text_share, tpot_from)
from loadtest.client.tokenize import pieces_per_chunk, root_url


def test_proportional_sums_exactly_and_is_proportional():
    assert proportional(10, [1, 1, 1]) == [3, 4, 3]  # boundaries at 3.3 -> 3, 6.7 -> 7, 10
    assert proportional(7, [2, 5]) == [2, 5]
    assert proportional(5, [0, 0]) == [3, 2]  # no weight: evenly
    assert proportional(0, [3, 4]) == [0, 0]
    assert proportional(3, []) == []
    rng = random.Random(1)
    for _ in range(500):
        weights = [rng.randint(0, 40) for _ in range(rng.randint(1, 30))]
        total = rng.randint(0, 400)
        out = proportional(total, weights)
        assert sum(out) == total and all(c >= 0 for c in out)
        size = sum(weights) or len(weights)
        for c, w in zip(out, weights if sum(weights) else [1] * len(weights)):
            assert abs(c - total * w / size) < 1  # within one token of its exact share


def test_first_chunk_carries_one_token_and_the_rest_goes_by_text():
    # chunks of 1, 3, 2, 4 tokens written as one space-led word each
    texts = [" aa", " bb cc dd", " ee ff", " gg hh ii jj"]
    out = text_share(texts, 10)
    assert out[0] == 1 and sum(out) == 10
    assert out == [1, 3, 2, 4]


def test_one_token_per_chunk_and_degenerate_totals():
    assert text_share(["x", "yy", "zzz"], 3) == [1, 1, 1]  # as many tokens as chunks: one each
    assert text_share(["only"], 7) == [7]
    assert text_share(["a", "b"], 1) == [1, 0]
    assert text_share([], 0) == []
    # a chunk with text gets at least one token when there are enough to go round
    assert text_share(["a", "b" * 100, "c"], 5) == [1, 3, 1]


def test_even_spread_is_what_the_rule_replaces():
    """The old rule credited the first chunk with total/n tokens: at chunks of 1..4 tokens (mean
    2.5) TPOT's denominator lost ~1.5 tokens per request. The rule gives the first chunk its 1."""
    texts = [" t0"] + [" t t t"] * 9  # 1 + 9 * 3 = 28 tokens
    assert text_share(texts, 28) == [1] + [3] * 9
    offsets = [0.0] + [0.03 * (i + 1) for i in range(9)]
    tpot, _ = tpot_from(offsets, text_share(texts, 28), 28)
    assert tpot == pytest.approx(0.27 / 27)


def test_per_chunk_usage_is_used_exactly_when_complete():
    assert from_usage([2, 3, 7], 7) == [2, 1, 4]
    assert from_usage([1, None, 7], 7) is None   # a chunk without usage
    assert from_usage([1, 3, 6], 7) is None       # does not end at the total
    assert from_usage([0, 3, 7], 7) is None       # a first chunk of no token
    assert from_usage([3, 2, 7], 7) is None       # not cumulative
    assert split_chunk_tokens(["a", "b c", "d e f g"], [1, 3, 7], 7) == ([1, 2, 4], USAGE_PER_CHUNK)
    # the stream says the first chunk held two tokens: believed
    assert split_chunk_tokens(["a b", "c"], [2, 3], 3) == ([2, 1], USAGE_PER_CHUNK)


def test_tokenizer_counts_reconciled_to_the_total():
    assert reconcile([1, 2, 4], 7) == [1, 2, 4]
    assert sum(reconcile([1, 2, 4], 8)) == 8
    assert reconcile([1, 1, 1, 5], 4) == [1, 1, 1, 1]  # fewer tokens than counted: every chunk keeps one
    words = lambda text: len(text.split())  # noqa: E731
    assert split_chunk_tokens(["a", "b c"], [None, None], 3, count=words) == ([1, 2], TOKENIZER)
    assert split_chunk_tokens(["a", "b c"], [1, 3], 3, count=words.__call__) == ([1, 2], USAGE_PER_CHUNK)
    assert split_chunk_tokens(["a", "b c"], [None, None], 3) == ([1, 2], TEXT_SHARE)


def test_tpot_needs_two_chunks_and_tokens_after_the_first():
    assert tpot_from([0.1], [5], 5) is None
    assert tpot_from([0.1, 0.2], [3, 0], 3) is None
    tpot, rate = tpot_from([0.1, 0.2, 0.4], [1, 2, 3], 6)
    assert tpot == pytest.approx(0.06) and rate == pytest.approx(1 / 0.06)


def test_pieces_map_to_the_chunk_holding_their_last_byte():
    texts = ["Hel", "lo wor", "ld!"]
    tokens = [{"id": 1, "piece": "Hello"}, {"id": 2, "piece": " world"}, {"id": 3, "piece": "!"}]
    assert pieces_per_chunk(tokens, texts) == [0, 1, 2]
    # a multi-byte character split over two byte-pieces (llama.cpp sends such pieces as byte lists)
    texts = ["é", "x"]
    assert pieces_per_chunk([{"piece": [0xC3]}, {"piece": [0xA9]}, {"piece": "x"}], texts) == [2, 1]
    assert pieces_per_chunk([{"piece": " Hello"}], ["Hello"]) is None  # normalised: positions unusable
    assert pieces_per_chunk([1, 2], ["ab"]) is None


def test_tokenize_lives_at_the_server_root():
    assert root_url("http://h:8000/v1") == "http://h:8000"
    assert root_url("http://h:8000/v1/") == "http://h:8000"
    assert root_url("http://h:8000") == "http://h:8000"


def test_a_launched_models_tokenizer_is_found_without_a_flag(tmp_path, monkeypatch):
    from loadtest.tokens import launched_tokenizer

    assert launched_tokenizer({"path": str(tmp_path / "model.gguf")}) is None  # GGUF: /tokenize instead
    assert launched_tokenizer({"path": str(tmp_path)}) is None                 # no tokenizer.json
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert launched_tokenizer({"hub_id": "nobody/not-cached-here"}) is None    # never downloaded
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    found = launched_tokenizer({"path": str(tmp_path)})
    assert found is not None and found.count("a b a") == 3 and "launched model" in found.name
    # a GGUF that an engine serves from an exported HF directory (transformers serve)
    found = launched_tokenizer({"path": str(tmp_path / "model.gguf"), "served_path": str(tmp_path)})
    assert found is not None and found.count("b b") == 2
