"""Judgements made after a run, from its summary and records: SLOs and goodput (slo.py) and the
verdict on the measurement itself (verdict.py). Written into summary.json, one line each on the
console."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loadtest.judge import slo
from loadtest.judge import verdict
from loadtest.run.output import write_summary

RED, RESET = "\033[31m", "\033[0m"


def judge(directory: Path, summary: dict[str, Any], objectives: list[slo.Objective],
          attainment: float = slo.DEFAULT_ATTAINMENT) -> None:
    """Add the slo and verdict blocks to a finished run's summary.json."""
    if objectives:
        summary["slo"] = slo.evaluate(summary, directory / "requests.jsonl", objectives, attainment=attainment)
    summary["verdict"] = verdict.judge(summary)
    write_summary(directory, summary)


def verdict_line(summary: dict[str, Any], stream: Any = sys.stdout) -> str:
    text = verdict.line(summary["verdict"])
    if summary["verdict"]["client_bound"] and getattr(stream, "isatty", lambda: False)():
        return RED + text + RESET
    return text


def after_run(ns: argparse.Namespace, outcome: Any) -> None:
    judge(outcome.directory, outcome.summary, slo.parse(getattr(ns, "slo", None)),
          getattr(ns, "slo_attainment", slo.DEFAULT_ATTAINMENT))
    if outcome.summary.get("slo") is not None:
        print(slo.line(outcome.summary["slo"]))
    print(verdict_line(outcome.summary))
