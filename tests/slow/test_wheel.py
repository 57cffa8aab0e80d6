"""The installed tool, not the checkout: a wheel built from this repository, installed into a fresh
venv, run from an empty directory with no checkout in sight (issue: the wheel could not even find
its default dataset). Slow (~1 min: a wheel build and a venv with the dependencies, from pip's
cache after the first time), and it runs in `make test`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Longer than the suite's 300 s: the build, the venv and the install allow up to 600 + 120 + 900 s
# themselves (a cold pip cache on CI), and the module's first test waits for them.
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://\S+/v1)")


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LOADTEST_ROOT", "VIRTUAL_ENV", "PYTHONHOME")}
    env["LOADTEST_HOME"] = str(tmp / "home")  # no engines installed there
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel installed; the build's and install's output checked."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    log = build.stdout + build.stderr
    for noise in ("Package would be ignored", "importable package", "SetuptoolsDeprecationWarning"):
        assert noise not in log, f"the wheel build warns: {noise}\n{log}"
    (wheel,) = (tmp / "dist").glob("loadtest-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=120)
    pip = subprocess.run([str(tmp / "venv/bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return tmp / "venv" / "bin"


def test_wheel_runs_the_default_dataset_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(tmp_path)
    sim = subprocess.Popen([str(installed / "loadtest"), "serve", "sim", "--port", "0", "--ttft-ms", "5",
                            "--tpot-ms", "1"], cwd=work, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline() if sim.stdout else ""
        m = LISTENING.search(line)
        assert m, f"the installed test server did not start: {line!r}"
        run = subprocess.run([str(installed / "loadtest"), "single", "--endpoint", m.group(1), "--num-prompts", "3",
                              "--max-tokens", "8", "--quiet"], cwd=work, env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    (summary,) = (work / "results").glob("*-single/summary.json")
    import json

    data = json.loads(summary.read_text())
    assert data["config"]["dataset"] == "builtin"
    assert data["counts"]["completed"] == 3 and data["metrics"]["completion_tokens_total"] == 24
    # the package really came from the venv, not from this checkout
    where = subprocess.run([str(installed / "python"), "-c", "import loadtest, sys; print(loadtest.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(installed.parent) in where and str(ROOT) not in where


def test_wheel_engine_list_version_and_module(installed: Path, tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    out = subprocess.run([str(installed / "loadtest"), "engine", "list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    assert set(rows) == {"llamacpp", "transformers", "vllm", "tgi"}
    assert "not installed" in rows["llamacpp"] and "`loadtest engine install llamacpp`" in rows["llamacpp"]
    assert "make engine" not in out.stdout  # no checkout: no make hint
    # the pins ship in the wheel: an installed tool builds the same engines as a checkout
    from loadtest.launch import pins

    want = pins.read_pins(pins.constraints_file("llamacpp", gpu=False))["xllamacpp"]
    assert f"xllamacpp {want}" in rows["llamacpp"]
    version = subprocess.run([str(installed / "python"), "-m", "loadtest", "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "loadtest 0.1.0"
    launch = subprocess.run([str(installed / "loadtest"), "single", "--launch", "llamacpp", "--num-prompts", "1",
                             "--output", str(tmp_path / "r")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert launch.returncode == 2 and "Traceback" not in launch.stderr
    assert launch.stderr.strip().splitlines()[-1] == (
        "loadtest: error: engine llamacpp is not installed: run `loadtest engine install llamacpp`")
