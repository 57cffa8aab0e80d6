"""`loadtest memory`: the published serving-memory table reproduced from the models' architectures."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.errors import LaunchError
from loadtest.launch.memory import PRECISIONS, count_config, memory_rows, parse_count, render_memory, resolve

FIXTURES = Path(__file__).parents[1] / "fixtures" / "memory"

# The published table: GB (2^30 bytes) for FP32, FP16/BF16, INT8, INT4, the 1.2 overhead included.
PUBLISHED = {
    "llama-7b": (29.61, 14.81, 7.4, 3.7),
    "llama-13b": (57.55, 28.77, 14.39, 7.19),
    "llama-65b": (290.87, 145.43, 72.72, 36.36),
    "llama-2-70b": (307.55, 153.78, 76.89, 38.44),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_table_within_3_percent(name: str) -> None:
    size = resolve(str(FIXTURES / name / "config.json"))
    assert size.source == "config.json" and size.name == name
    for (precision, bytes_per_param), published in zip(PRECISIONS, PUBLISHED[name]):
        ours = size.weights_gb(bytes_per_param)
        assert abs(ours - published) / published < 0.03, (name, precision, ours, published)


def test_parameter_counts_match_the_known_models() -> None:
    # LLaMA-7B has 6,738,415,616 parameters (the checkpoint's own count); 70B uses GQA (8 KV heads).
    assert resolve(str(FIXTURES / "llama-7b")).parameters == 6_738_415_616
    assert resolve(str(FIXTURES / "llama-2-70b")).parameters == 68_976_648_192


def test_counts_parse() -> None:
    assert parse_count("7b") == 7_000_000_000
    assert parse_count("70B") == 70_000_000_000
    assert parse_count("135m") == 135_000_000
    assert parse_count("1.5b") == 1_500_000_000
    assert parse_count("6738415616") == 6_738_415_616
    assert parse_count("seven") is None
    assert round(resolve("7b").weights_gb(4), 2) == 31.29  # 7e9 x 4 x 1.2 / 2^30


def test_kv_cache_is_exact() -> None:
    # Llama-2-70B, fp16, 4,096 tokens: 2 x 80 layers x 8 KV heads x 128 x 4096 x 2 bytes = 1.25 GiB
    size = resolve(str(FIXTURES / "llama-2-70b"))
    assert size.kv_cache_gb(4096, 1, 2.0) == 1.25
    rows = memory_rows([size], context=4096, batch=2)
    assert [r["what"].split(" ")[0] for r in rows] == ["weights", "KV", "total"]
    assert rows[1]["FP16/BF16"] == 2.5 and rows[2]["FP16/BF16"] == round(154.17 + 2.5, 2)


def test_tied_embeddings_and_gguf_agree() -> None:
    """SmolLM2-135M: counting its config.json (tied embeddings, GQA) gives exactly the tensors of its GGUF."""
    from loadtest.launch.envs import all_pythons
    from loadtest.launch.models import find_embedded_gguf

    config_count, _ = count_config(__import__("json").loads((FIXTURES / "smollm2-135m" / "config.json").read_text()))
    try:
        gguf, _ = find_embedded_gguf(all_pythons())
    except LaunchError:
        pytest.skip("the embedded SmolLM2 GGUF is not installed (make engine-llamacpp)")
    size = resolve(str(gguf))
    assert size.source == "gguf"
    assert round(size.parameters / 1e6, 1) == 134.5
    assert size.parameters == config_count == 134_515_008
    assert size.arch is not None and (size.arch.layers, size.arch.kv_heads, size.arch.head_dim) == (30, 3, 64)


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", str(FIXTURES / "llama-7b"), "13b", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| llama-7b | 6.738B |" in out.replace("  ", " ").replace("  ", " ").replace("  ", " ")
    assert "30.12" in out and "58.11" in out  # 13e9 x 4 x 1.2 / 2^30 = 58.11


def test_bad_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a parameter count" in err
    assert main(["memory", "7b", "--context", "1024"]) == 2  # a bare count has no architecture
    assert "needs the architecture" in capsys.readouterr().err


def test_render_formats() -> None:
    rows = memory_rows([resolve("135m")])
    assert "0.60" in render_memory(rows) and '"FP32": 0.6' in render_memory(rows, "json")
