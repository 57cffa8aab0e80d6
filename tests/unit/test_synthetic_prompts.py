"""Synthetic prompts as built, without a server (split from tests/integration/test_synthetic.py):
every prompt starts differently, a shared prefix is exactly K tokens, and bad options are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.prompts.synthetic import SyntheticSpec, build_prompts, word_pool
from loadtest.tokens import load_tokenizer

CL100K = load_tokenizer("cl100k_base")


def _first_tokens(text: str) -> list[int]:
    return CL100K._enc.encode(text)  # type: ignore[attr-defined]


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_every_prompt_starts_differently() -> None:
    pool = word_pool(CL100K)
    plan = build_prompts(SyntheticSpec(64, seed=3), 200, CL100K, pool, overhead=0)
    ids = [_first_tokens(p.text) for p in plan.prompts]
    assert all(len(t) == 64 for t in ids)
    assert len({t[0] for t in ids}) == 200  # no two prompts share even their first token
    again = build_prompts(SyntheticSpec(64, seed=3), 200, CL100K, pool, overhead=0)
    assert [p.text for p in again.prompts] == [p.text for p in plan.prompts]  # seeded
    other = build_prompts(SyntheticSpec(64, seed=4), 200, CL100K, pool, overhead=0)
    assert other.prompts[0].text != plan.prompts[0].text


@pytest.mark.parametrize("k", [1, 10, 50])
def test_shared_prefix_is_exactly_k_tokens(k: int) -> None:
    pool = word_pool(CL100K)
    plan = build_prompts(SyntheticSpec(64, shared_prefix_tokens=k), 50, CL100K, pool, overhead=0)
    ids = [_first_tokens(p.text) for p in plan.prompts]
    assert all(len(t) == 64 for t in ids)
    common = {_common(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]}
    assert common == {k}  # every pair shares exactly the K leading tokens, never more


@pytest.mark.parametrize("args, text", [
    (["--dataset", "synthetic"], "--dataset synthetic needs --prompt-tokens"),
    (["--prompt-tokens", "10"], "need --dataset synthetic"),
    (["--dataset", "synthetic", "--prompt-tokens", "10", "--shared-prefix-tokens", "10"], "--shared-prefix-tokens"),
])
def test_bad_options_are_one_line(args: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.cli.main import main

    code = main(["single", "--endpoint", "http://127.0.0.1:9/v1", *args, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1
    assert json  # noqa: B018
