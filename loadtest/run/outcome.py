"""How a run ends, by one set of rules for a run in one process and a scaled-out one: the
``run`` block of summary.json, the summary itself, the exit code and the one line that says why a
run failed. The runner (runner.py) and the scale-out coordinator (scaleout/coordinator.py) each
measure their own way and hand what they measured here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, OutputError  # noqa: F401 (codes re-exported)
from loadtest.redact import redact
from loadtest.run.output import build_summary, write_summary
from loadtest.scheduler import phases


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    directory: Path
    exit_code: int
    message: str | None


def timestamp(t: float) -> str:
    """A wall-clock time as summary.json writes it (local time with its offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def run_block(cfg: RunConfig, *, started_at: str, ended: str, model: str | None, clock_origin_ns: int | None,
              warmup_requests: int, pieces: list[dict[str, Any]], monitors: dict[str, Any] | None,
              sender: dict[str, Any], chunk_info: dict[str, Any], tokenizer: str | None,
              cpu_s: float | None, cpu_split: tuple[float, float] | None, completion_tokens: int,
              startup_cpu_s: float | None, preopened: bool | None = None,
              cpu_span_s: float | None = None) -> dict[str, Any]:
    """summary.json's ``run`` block: what happened, and the client's own cost.

    ``cpu_s`` is the client's CPU over the measured phase (the known overhead of what was measured);
    ``startup_cpu_s`` what it spent before it (imports, prompts, connections), reported apart so a
    short run's fixed cost is not read as a per-token one. ``preopened``: every connection asked
    for was open before the measured window (never claimed for ones that did not open in time).
    ``cpu_span_s``: the wall-clock seconds ``cpu_s`` was counted over (the verdict's CPU share
    divides by it, not by the window, which an interrupted or aborted run ends long before the CPU
    clock stops)."""
    return {
        "started_at": started_at, "ended": ended, "model": model, "clock_origin_ns": clock_origin_ns,
        "warmup_requests": warmup_requests, "resumed": len(pieces) > 1, "pieces": pieces,
        "load": phases.describe(cfg), "monitors": monitors, **sender, **chunk_info,
        "connections_preopened": bool(preopened),
        "tokenizer": tokenizer,
        "client_cpu_s": cpu_s,
        "client_cpu_span_s": cpu_span_s,
        "client_cpu_s_per_1k_tokens": cpu_s / completion_tokens * 1000 if cpu_s is not None and completion_tokens
        else None,
        "client_cpu_user_s": cpu_split[0] if cpu_split else None,
        "client_cpu_system_s": cpu_split[1] if cpu_split else None,
        "client_startup_cpu_s": startup_cpu_s,
    }


def failure(result: dict[str, Any], *, abort: str | None, interrupted: bool, worker_failure: str | None,
            duration_s: float | None, unconnected: bool = False) -> tuple[int, str | None]:
    """(exit code, why it failed) from what the run measured and how it ended, in this order: an
    abort (the first requests all failed, the server went away), a stop by signal, a dead worker
    (with --on-worker-failure stop), nothing completed. A run whose requests were all abandoned
    (--cancel-rate) failed nothing but measured nothing either: it exits 2 like any run that
    measured nothing, with a line that says so rather than "no request succeeded". ``unconnected``:
    the connections opened ahead of the run did not open (a longer --duration would not help)."""
    counts = result["counts"]
    if abort is not None:
        return EXIT_FAILED, abort
    if interrupted:
        return EXIT_INTERRUPTED, None
    if worker_failure is not None:
        return EXIT_FAILED, worker_failure
    abandoned = counts.get("abandoned") or 0
    if abandoned and counts["completed"] == 0 and not result["errors"]:
        cut = f", {counts['cancelled']} cancelled at the deadline" if counts["cancelled"] else ""
        return EXIT_FAILED, (f"no request completed: {abandoned} of {counts['requests']} measured requests were "
                             f"abandoned as --cancel-rate asked{cut}, none failed, and nothing was measured; lower "
                             "--cancel-rate or raise --cancel-after")
    if duration_s and counts["completed"] == 0 and not result["errors"]:
        # also when none even started (a closed loop's deadline can pass before its first send)
        why = ("the server did not accept the connections opened ahead of the run either (listen backlog full?)"
               if unconnected else "use a longer --duration")
        return EXIT_FAILED, (f"no request completed within --duration {duration_s:g} s ({counts['cancelled']} "
                             f"cancelled at the deadline): nothing was measured; {why}")
    if counts["requests"] and counts["completed"] == 0:
        kinds = ", ".join(f"{k} x{v['count']}" for k, v in result["errors"].items())
        return EXIT_FAILED, f"no request succeeded ({kinds})"
    return EXIT_OK, None


def conclude(cfg: RunConfig, directory: Path, *, result: dict[str, Any], run: dict[str, Any],
             client: dict[str, Any], server: dict[str, Any] | None, abort: str | None = None,
             interrupted: bool = False, worker_failure: str | None = None,
             duration_s: float | None = None, extra: dict[str, Any] | None = None) -> RunOutcome:
    """Write summary.json and say how the run ended. ``extra``: top-level blocks of the summary a
    run adds when it has them (``server_metrics``)."""
    summary = build_summary(command=cfg.command, config=cfg.to_json(), client=client, result=result, run=run,
                            server=server)
    summary.update({k: v for k, v in (extra or {}).items() if v is not None})
    unconnected = cfg.preconnect and cfg.transport == "fast" and run.get("connections_preopened") is False
    code, message = failure(result, abort=abort, interrupted=interrupted, worker_failure=worker_failure,
                            duration_s=duration_s, unconnected=unconnected)
    summary["run"]["error"] = redact(message) if message else None
    try:
        write_summary(directory, summary)
    except OutputError as exc:  # the disk is full: the records stay, a report can read them later
        code, message = EXIT_FAILED, (f"{message}; " if message else "") + str(exc)
        summary["run"]["error"] = redact(message)
    return RunOutcome(summary, directory, code, message)
