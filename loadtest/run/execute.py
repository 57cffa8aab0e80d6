"""The one way every command executes a run: on a fresh event loop (uvloop where installed), under
one signal policy.

- First SIGINT or SIGTERM: stop gracefully. The run stops starting requests, cancels and records
  those in flight, and writes the summary of what completed (``run.ended: "interrupted"``). A
  command running several runs (a sweep, a capacity search, the prefill/decode scenarios, a
  matrix) starts no further run; the command exits with 130 (SIGINT) or 143 (SIGTERM).
- Second signal: quit now. The run is cancelled where it stands (requests.jsonl keeps every record
  written so far) and ``Interrupted`` is raised, which the CLI turns into one line and 130/143.

A command holds one ``Signals`` for all its runs, so a signal between two runs is not lost.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loadtest.errors import LoadtestError
from loadtest.eventloop import loop_factory
from loadtest.run.outcome import EXIT_INTERRUPTED, RunOutcome

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Runnable(Protocol):
    """A run (runner.Run) or anything run-shaped (scaleout's coordinator)."""

    stop: asyncio.Event
    interrupted: bool
    directory: Path

    async def execute(self) -> RunOutcome: ...


class Interrupted(LoadtestError):
    """The second signal: the command quits at once."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Signals:
    """The signal that stopped the command, if any: shared by all the runs of one command."""

    received: signal.Signals | None = None

    @property
    def exit_code(self) -> int | None:
        """128 + the signal, as a process killed by it would report: 130 (SIGINT), 143 (SIGTERM)."""
        return None if self.received is None else 128 + int(self.received)


def execute(run: Runnable, signals: Signals | None = None, *, handle_signals: bool = True) -> RunOutcome:
    """Run ``run.execute()`` to its outcome under the signal policy above. ``handle_signals=False``
    for a process whose signals belong to someone else (a scale-out worker: the coordinator tells
    it to stop). A run started after the command was signalled stops at once."""
    signals = signals if signals is not None else Signals()

    async def main() -> RunOutcome:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(sig: signal.Signals) -> None:
            if signals.received is None or not run.stop.is_set():
                first = signals.received is None
                signals.received = signals.received or sig
                run.interrupted = True
                run.stop.set()
                if first:
                    hint = " (Ctrl-C again to quit now)" if sig == signal.SIGINT else ""
                    print(f"\nloadtest: stopping ({sig.name}); writing the summary of what completed{hint}",
                          file=sys.stderr, flush=True)
            elif task is not None:
                task.cancel()

        if handle_signals:
            for sig in SIGNALS:
                loop.add_signal_handler(sig, on_signal, sig)
        if signals.received is not None:  # signalled before this run began: it measures nothing new
            run.interrupted = True
            run.stop.set()
        try:
            return await run.execute()
        finally:
            if handle_signals:
                for sig in SIGNALS:
                    loop.remove_signal_handler(sig)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            outcome = runner.run(main())
        except asyncio.CancelledError:
            raise Interrupted(f"interrupted; records so far are in {run.directory / 'requests.jsonl'}",
                              signals.exit_code or EXIT_INTERRUPTED) from None
    if outcome.exit_code == EXIT_INTERRUPTED and signals.exit_code is not None:
        outcome.exit_code = signals.exit_code
    return outcome


def run_async(coro: Any) -> Any:
    """A coroutine that is not a run (a model listing) on the same event loop as every run."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
