"""Judgements made after a run, from its summary and records: SLOs and goodput (judge/slo.py),
the verdict on the measurement itself (judge/verdict.py), and for synthetic prompts how exactly the
server saw the lengths asked. Written into summary.json, one line each on the console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import OutputError
from loadtest.judge import slo, verdict
from loadtest.measure.sessions import session_block
from loadtest.measure.tools import tool_block
from loadtest.prompts.synthetic import SyntheticPlan, check_records, warnings
from loadtest.run.output import read_records, write_summary

RED, RESET = "\033[31m", "\033[0m"


def judge(directory: Path, summary: dict[str, Any], objectives: list[slo.Objective],
          attainment: float = slo.DEFAULT_ATTAINMENT) -> None:
    """Add the slo and verdict blocks to a finished run's summary.json."""
    if objectives:
        summary["slo"] = slo.evaluate(summary, directory / "requests.jsonl", objectives, attainment=attainment)
    summary["verdict"] = verdict.judge(summary)
    try:
        write_summary(directory, summary)
    except OutputError as exc:  # said once, with what the run said about it (records stopped too?)
        said = (summary.get("run") or {}).get("error")
        raise OutputError(said if said and str(exc) in said else str(exc)) from None


def verdict_line(summary: dict[str, Any], stream: Any = None) -> str:
    """The verdict, red on a terminal when the client was the bottleneck. ``stream`` (default: the
    sys.stdout of the moment, not of the import, which a test's capture may since have closed)."""
    text = verdict.line(summary["verdict"])
    stream = sys.stdout if stream is None else stream
    if summary["verdict"]["client_bound"] and getattr(stream, "isatty", lambda: False)():
        return RED + text + RESET
    return text


def judge_and_say(directory: Path, summary: dict[str, Any], objectives: list[slo.Objective],
                  attainment: float = slo.DEFAULT_ATTAINMENT) -> None:
    """``judge``, then the SLO line (when there are objectives) and the verdict line on stdout."""
    judge(directory, summary, objectives, attainment)
    if summary.get("slo") is not None:
        print(slo.line(summary["slo"]))
    print(verdict_line(summary))



def annotate_trace(directory: Path, summary: dict[str, Any], block: dict[str, Any]) -> None:
    """Add ``trace`` (what was replayed, how, how many replies stopped early and, with sessions, how
    many later turns were held for their offset or went late) to the summary."""
    asked = early = held = 0
    late: list[float] = []
    for r in read_records(directory / "requests.jsonl"):
        if r.get("warmup"):
            continue
        if r.get("late_s") is not None:  # a later turn of a trace session that was sent
            held += r["held_s"] > 0
            if r["late_s"] > 0:
                late.append(r["late_s"])
        if r.get("stopped_early") is None:
            continue
        asked += 1
        early += bool(r["stopped_early"])
    summary["trace"] = {**block, "completions_checked": asked, "stopped_early": early}
    if block.get("session_starts"):
        summary["trace"].update(turns_held=held, turns_late=len(late), late_s_max=max(late, default=None),
                                late_s_mean=sum(late) / len(late) if late else None)
    write_summary(directory, summary)


def annotate_sessions(directory: Path, summary: dict[str, Any]) -> None:
    """Add ``sessions`` (by turn index and per session: measure/sessions.py) to the summary."""
    summary["sessions"] = session_block(read_records(directory / "requests.jsonl"))
    write_summary(directory, summary)


def annotate_tools(directory: Path, summary: dict[str, Any], cfg: RunConfig, info: dict[str, Any]) -> None:
    """Add ``tools`` (tasks, rounds, loop latency: measure/tools.py) to the summary, with what the
    run offered and answered (``info``: how the canned result was made, client/synthetic.py)."""
    assert cfg.tools is not None
    block = tool_block(read_records(directory / "requests.jsonl"), cfg.max_tool_rounds)
    summary["tools"] = {"tools": [t["function"]["name"] for t in cfg.tools], "source": cfg.tools_source,
                        "max_tool_rounds": cfg.max_tool_rounds, "tool_latency_s": cfg.tool_latency_s,
                        "tool_result_tokens_asked": cfg.tool_result_tokens, **info, **block}
    write_summary(directory, summary)


def annotate_prompts(directory: Path, summary: dict[str, Any], plan: SyntheticPlan | None, max_tokens: int,
                     *, quiet: bool = False) -> dict[str, Any]:
    """Add ``prompts`` (how synthetic prompts were made and how exactly the server saw them) to the
    summary, in memory and in summary.json; say what did not match on stderr."""
    check = check_records(read_records(directory / "requests.jsonl"), plan.expected if plan else None,
                          max_tokens=max_tokens)
    summary["prompts"] = {**(plan.info if plan else {}), **check}
    write_summary(directory, summary)
    if not quiet:
        for line in warnings(check, max_tokens):
            print(f"loadtest: warning: {line}", file=sys.stderr)
    return summary["prompts"]
