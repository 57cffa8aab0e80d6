from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.sim.process import SimProcess, start_sim

# The marker of each test directory (pyproject.toml lists them): `-m unit`, `-m "not slow"` and
# `-m "not engine"` select by where a test lives, and no test has to be marked by hand.
DIRECTORY_MARKERS = {"unit": "unit", "integration": "integration", "slow": "slow", "engines": "engine"}
TESTS = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            directory = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (given on the command line)
            continue
        marker = DIRECTORY_MARKERS.get(directory)
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture
def sim() -> Iterator[Callable[..., SimProcess]]:
    """Factory: sim(**SimConfig overrides) -> a running test server, stopped after the test."""
    started: list[SimProcess] = []

    def factory(**overrides: Any) -> SimProcess:
        proc = start_sim(**overrides)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop()


@pytest.fixture(params=["c", "python"])
def hot_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The per-token hot path in C (the default) and its pure-Python fall-back, which must give the
    same results."""
    from loadtest.measure import chunks
    from loadtest.measure import sse
    from loadtest.transport import _fast
    from loadtest.transport import base

    assert _fast._Conn is _fast.CConn and chunks.one_event_array is not sse._one_event_array, (
        "the C hot path was not built (or LOADTEST_PURE_PYTHON is set)")
    if request.param == "python":
        monkeypatch.setattr(_fast, "_Conn", _fast.PyConn)
        monkeypatch.setattr(base, "PiecesType", list)
        monkeypatch.setattr(chunks, "one_event_array", sse._one_event_array)
    return str(request.param)


@pytest.fixture
def cli() -> Callable[[list[str], Path], tuple[int, dict[str, Any], list[dict[str, Any]]]]:
    return run_cli


def run_cli(args: list[str], out: Path) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Run the CLI in-process; return (exit code, summary.json, requests.jsonl rows)."""
    code = main([*args, "--output", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return code, summary, rows


@pytest.fixture
def refused(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str], Path, str], None]:
    """``refused(argv, out, says)``: the command exits 2 with one ``loadtest: error:`` line that
    contains ``says`` (no traceback, no usage screen) and writes no ``out`` directory."""

    def check(argv: list[str], out: Path, says: str) -> None:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and "usage:" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("loadtest: error: ") and says in lines[0], err
        assert not out.exists()

    return check
