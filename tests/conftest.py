from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli import main
from loadtest.sim.process import SimProcess, start_sim


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


@pytest.fixture
def cli() -> Callable[[list[str], Path], tuple[int, dict[str, Any], list[dict[str, Any]]]]:
    return run_cli


def run_cli(args: list[str], out: Path) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Run the CLI in-process; return (exit code, summary.json, requests.jsonl rows)."""
    code = main([*args, "--output", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return code, summary, rows
