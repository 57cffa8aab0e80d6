"""Embeddings and rerank answers read without a server (the shapes of OpenAI, vLLM, llama.cpp, Jina,
Cohere and TEI, and the faults no test server sends on demand), and how a dataset's prompts become
their requests."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from loadtest.config import RunConfig
from loadtest.measure.pooling import PooledRequest, dimension, pooled_record, read_answer
from loadtest.prompts.batches import batches, pooled_prompts, with_documents
from loadtest.prompts.sources import Prompt
from loadtest.transport import Exchange
from loadtest.transport.base import AttemptInfo

EMB = PooledRequest("embeddings", None, ("a b", "c"))
RR = PooledRequest("rerank", "q", ("a", "b", "c"))


def _emb(n: int, **extra: object) -> bytes:
    return orjson.dumps({"object": "list", "data": [{"index": i, "embedding": [0.5, -0.25, 1e-3]} for i in range(n)],
                         **extra})


def test_dimension_of_lists_and_base64():
    assert dimension(b"[0.1, 0.2,-3e-05]") == 3 and dimension(b"[]") is None
    packed = base64.b64encode(struct.pack("<5f", *range(5)))
    assert dimension(b'"' + packed + b'"') == 5
    assert dimension(b'"not base64!"') is None and dimension(b"null") is None


@pytest.mark.parametrize(("body", "tokens"), [
    (_emb(2, usage={"prompt_tokens": 7, "total_tokens": 7}), 7),           # OpenAI, vLLM, llama.cpp
    (_emb(2, usage={"total_tokens": 9}), 9),                               # Jina
    (_emb(2, meta={"billed_units": {"input_tokens": 4}}), 4),              # Cohere
    (_emb(2), None),                                                       # none reported
])
def test_embeddings_answers_and_their_token_counts(body, tokens):
    facts = read_answer(body, EMB)
    assert facts.problem is None and facts.items == 2 and facts.dim == 3 and facts.prompt_tokens == tokens


@pytest.mark.parametrize(("body", "words"), [
    (_emb(1), "1 embeddings for 2 inputs"),
    (_emb(3), "3 embeddings for 2 inputs"),
    (orjson.dumps({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}), "indexes"),
    (orjson.dumps({"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": [1.0]}]}), "empty"),
    (orjson.dumps({"results": []}), "0 embeddings"),
    (b"[1, 2]", "not an embeddings answer"),
])
def test_embeddings_answers_that_do_not_match_the_request(body, words):
    assert words in (read_answer(body, EMB).problem or "")


def test_rerank_answers():
    ok = orjson.dumps({"id": "r1", "results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
                       "usage": {"total_tokens": 12}})
    facts = read_answer(ok, RR)
    assert facts.problem is None and facts.items == 3 and facts.prompt_tokens == 12 and facts.response_id == "r1"
    bare = read_answer(orjson.dumps([{"index": 1, "score": 0.7, "document": "b"}]), RR)  # SGLang, TEI
    assert bare.problem is None and bare.items == 3 and bare.prompt_tokens is None
    for results, words in (([{"index": 3, "relevance_score": 0.5}], "indexes"),
                           ([{"index": 1, "relevance_score": 0.5}, {"index": 1, "relevance_score": 0.4}], "indexes"),
                           ([{"index": 1}], "relevance_score"), ([], "no results")):
        assert words in (read_answer(orjson.dumps({"results": results}), RR).problem or "")


def _exchange(body: bytes, status: int = 200) -> Exchange:
    ex = Exchange(t_start_ns=1_000_000_000, status=status, content_type="application/json")
    ex.pieces.append((1_050_000_000, body))
    ex.t_end_ns = 1_050_000_000
    ex.attempt_info = AttemptInfo(attempts=2)
    return ex


def test_the_record_claims_no_generation_and_counts_with_the_tokenizer_only_without_usage():
    class Words:
        name = "words"

        def count(self, text: str) -> int:
            return len(text.split())

    rec = pooled_record(_exchange(_emb(2)), EMB, request_id=3, prompt_id="b1+1", run_t0_ns=0, tokenizer=Words())
    assert rec.ok and rec.e2e_s == pytest.approx(0.05) and rec.inputs == 2 and rec.embedding_dim == 3
    assert rec.prompt_tokens == 3 and rec.token_source == "tokenizer" and rec.attempts == 2
    assert rec.ttft_s is None and rec.tpot_s is None and rec.completion_tokens is None and rec.tokens_per_s is None
    rec = pooled_record(_exchange(orjson.dumps({"results": [{"index": 0, "relevance_score": 1.0}]})), RR,
                        request_id=0, prompt_id="q", run_t0_ns=0, tokenizer=Words())
    assert rec.documents == 3 and rec.prompt_tokens == 3 + 3 * 1  # every (query, document) pair
    bad = pooled_record(_exchange(_emb(1)), EMB, request_id=0, prompt_id="x", run_t0_ns=0, tokenizer=None)
    assert not bad.ok and bad.error_kind == "malformed" and bad.inputs is None
    gone = pooled_record(_exchange(b'{"error":{"message":"This server does not support embeddings"}}', 501), EMB,
                         request_id=0, prompt_id="x", run_t0_ns=0, tokenizer=None)
    assert gone.error_kind == "server_error" and "does not support embeddings" in (gone.error or "")


def test_a_dataset_grouped_into_batches_and_queries():
    prompts = [Prompt(id=f"p{i}", text=f"text {i}") for i in range(10)]
    b = batches(prompts, 4, seed=1)
    assert len(b) == 10 and b[3].id == "p3+3" and b[3].inputs[0] == "text 3" and len(set(b[3].inputs)) == 4
    assert b == batches(prompts, 4, seed=1) and b != batches(prompts, 4, seed=2)
    assert [p.inputs for p in batches(prompts, 1, seed=0)] == [(p.text,) for p in prompts]
    r = with_documents(prompts, 9, seed=0)
    assert all(p.text not in p.inputs and len(set(p.inputs)) == 9 for p in r)
    assert len(with_documents(prompts[:2], 5, seed=0)[0].inputs) == 5  # fewer prompts than documents: repeats
    cfg = RunConfig(command="single", base_url="http://x/v1", model=None)
    assert pooled_prompts(prompts, cfg) is prompts
