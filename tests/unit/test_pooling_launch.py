"""The launch side of embeddings and rerank: the flags each engine gets for --embeddings (and the
pooling), implied by --api embeddings|rerank, refused where an engine serves neither endpoint."""

from __future__ import annotations

import pytest
from test_launch import no_binary, root, write_gguf  # noqa: F401  (root: the fake engine venvs fixture)

from loadtest.cli.main import build_parser
from loadtest.cli.run import configure
from loadtest.errors import ConfigError
from loadtest.launch import engines as eng
from loadtest.launch.launcher import LaunchSpec
from loadtest.launch.models import ResolvedModel, resolve_model


def test_llamacpp_gets_embeddings_and_the_pooling(root, monkeypatch):  # noqa: F811
    no_binary(monkeypatch, "llama-server", "nvidia-smi")
    model = resolve_model(str(write_gguf(root / "m.gguf")))
    a = eng.get_engine("llamacpp").command(LaunchSpec("llamacpp", embeddings=True, pooling="rank"), model, 1).argv
    assert a[a.index("--embeddings"):a.index("--embeddings") + 3] == ["--embeddings", "--pooling", "rank"]
    assert "--embeddings" not in eng.get_engine("llamacpp").command(LaunchSpec("llamacpp"), model, 1).argv


def test_vllm_runs_its_pooling_runner_and_the_others_refuse(root, monkeypatch):  # noqa: F811
    no_binary(monkeypatch, "nvidia-smi")
    model = ResolvedModel(requested="org/embedder", hub_id="org/embedder")
    a = eng.get_engine("vllm").command(LaunchSpec("vllm", embeddings=True), model, 1).argv
    assert a[a.index("--runner") + 1] == "pooling"
    for engine in ("transformers", "tgi"):
        with pytest.raises(ConfigError, match="embeddings"):
            eng.get_engine(engine).command(LaunchSpec(engine, embeddings=True), model, 1)


@pytest.mark.parametrize(("args", "embeddings", "pooling"), [
    (["--api", "embeddings"], True, "mean"),
    (["--api", "rerank"], True, "rank"),
    (["--embeddings", "--pooling", "cls"], True, "cls"),
    ([], False, None),
])
def test_the_api_implies_embeddings_on_launch(args, embeddings, pooling):
    ns = build_parser().parse_args(["single", "--launch", "llamacpp", *args])
    spec = configure(ns)[1].launch
    assert (spec.embeddings, spec.pooling) == (embeddings, pooling)


def test_pooling_without_embeddings_is_refused():
    with pytest.raises(ConfigError, match="--pooling needs --embeddings"):
        configure(build_parser().parse_args(["single", "--launch", "llamacpp", "--pooling", "mean"]))
