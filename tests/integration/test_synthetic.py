"""Synthetic prompts of exact token length against the test server, which counts prompt tokens with
the same tokenizer (tiktoken cl100k_base) the client uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _run(cli: Callable[..., Any], sim: Any, out: Path, *extra: str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    return cli(["single", "--endpoint", sim.base_url, "--dataset", "synthetic", "--max-tokens", "4", *extra], out)


def test_server_tokenize_is_used_and_the_template_compensated(sim: Any, cli: Any, tmp_path: Path) -> None:
    # The server adds 9 tokens of chat template; /tokenize makes the client count with its tokenizer.
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, template_tokens=9, ttft_ms=1, tpot_ms=0.1)
    code, summary, rows = _run(cli, server, tmp_path, "--prompt-tokens", "100", "--num-prompts", "10")
    assert code == 0 and [r["prompt_tokens"] for r in rows] == [100] * 10
    p = summary["prompts"]
    assert p["verified_by_server_tokenize"] is True and p["tokenizer"].endswith("/tokenize")
    assert p["template_overhead_tokens"] == 9 and p["template_compensated"] is True
    assert p["usage_mismatched"] == 0


def test_a_tokenizer_mismatch_is_reported(sim: Any, cli: Any, tmp_path: Path) -> None:
    # The server counts whitespace words, the client cl100k: the probe sees the difference, and
    # prompts whose words split differently are reported with the size of the mismatch.
    server = sim(ttft_ms=1, tpot_ms=0.1, template_tokens=3)
    code, summary, _ = _run(cli, server, tmp_path, "--prompt-tokens", "64", "--prompt-tokens-stddev", "8",
                            "--num-prompts", "20")
    assert code == 0
    p = summary["prompts"]
    assert p["usage_checked"] == 20 and p["usage_exact"] + p["usage_mismatched"] == 20
    assert p["template_overhead_tokens"] is not None
    server2 = sim(ttft_ms=1, tpot_ms=0.1, template_tokens=200)  # the template is longer than the prompt asked
    code, summary, rows = _run(cli, server2, tmp_path / "b", "--prompt-tokens", "16", "--num-prompts", "4")
    p = summary["prompts"]
    assert code == 0 and p["template_compensated"] is False and p["prompts_too_short_to_compensate"] == 4
    assert p["usage_mismatched"] == 4 and p["usage_mismatch_tokens_min"] == 185  # 200 + 1 word - 16
    assert all(r["prompt_tokens"] == 201 for r in rows)


def test_short_completions_are_counted(sim: Any, cli: Any, tmp_path: Path) -> None:
    server = sim(ttft_ms=1, tpot_ms=0.1, output_tokens=3)  # stops early unless ignore_eos
    code, summary, _ = cli(["single", "--endpoint", server.base_url, "--max-tokens", "8", "--num-prompts", "5",
                            "--dataset", "synthetic", "--prompt-tokens", "20"], tmp_path)
    assert code == 0 and summary["prompts"]["completions_short"] == 5
    assert summary["prompts"]["completions_short_min_tokens"] == 3
    code, summary, _ = cli(["single", "--endpoint", server.base_url, "--max-tokens", "8", "--num-prompts", "5",
                            "--dataset", "synthetic", "--prompt-tokens", "20", "--ignore-eos"], tmp_path / "b")
    assert code == 0 and summary["prompts"]["completions_short"] == 0


def test_stddev_varies_lengths_exactly(sim: Any, cli: Any, tmp_path: Path) -> None:
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.1)
    code, summary, rows = _run(cli, server, tmp_path, "--prompt-tokens", "200", "--prompt-tokens-stddev", "40",
                               "--num-prompts", "30")
    lengths = [r["prompt_tokens"] for r in rows]
    assert code == 0 and len(set(lengths)) > 10 and 150 < sum(lengths) / 30 < 250
    assert summary["prompts"]["usage_exact"] == 30


def test_a_hugging_face_tokenizer_counts_exactly(sim: Any, cli: Any, tmp_path: Path) -> None:
    """A local tokenizer directory (`--tokenizer DIR`, or the launched model's exported directory): a
    small byte-level BPE trained here stands in for a model's, on both sides."""
    tokenizers = pytest.importorskip("tokenizers")
    from loadtest.prompts.sources import load_prompts
    from loadtest.client.synthetic import served_tokenizer_dir as launched_tokenizer

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=1500, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([p.text for p in load_prompts("builtin")] * 3, trainer)
    directory = tmp_path / "tok"
    directory.mkdir()
    tok.save(str(directory / "tokenizer.json"))
    server = sim(prompt_tokenizer=str(directory), ttft_ms=1, tpot_ms=0.1, template_tokens=4)
    code, summary, rows = _run(cli, server, tmp_path / "run", "--prompt-tokens", "80", "--num-prompts", "6",
                               "--tokenizer", str(directory))
    assert code == 0 and [r["prompt_tokens"] for r in rows] == [80] * 6
    assert summary["prompts"]["tokenizer"] == f"hf:{directory / 'tokenizer.json'}"
    launched = type("Server", (), {"info": {"model": {"served_path": str(directory)}}})()
    assert launched_tokenizer(launched) == str(directory)
