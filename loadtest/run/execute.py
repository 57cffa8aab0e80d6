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
    """The command's signal policy, one for all its runs. Plain signal handlers, installed for the
    whole command (not the event loop's, which go with each loop and leave the default, deadly
    action behind them): while a run's loop runs, a signal is handed to the loop, which stops the
    run (first) or cancels it (second); between runs, a first signal is noted (a series starts no
    further run) and a second quits at once."""

    received: signal.Signals | None = None
    _active: tuple[asyncio.AbstractEventLoop, Runnable, asyncio.Task[Any]] | None = None
    _installed: bool = False

    @property
    def exit_code(self) -> int | None:
        """128 + the signal, as a process killed by it would report: 130 (SIGINT), 143 (SIGTERM)."""
        return None if self.received is None else 128 + int(self.received)

    def install(self) -> None:
        if not self._installed:
            for sig in SIGNALS:
                signal.signal(sig, self._handle)
            self._installed = True

    def _first(self, sig: signal.Signals) -> bool:
        """Note ``sig``; True when it is the command's first signal (said once on stderr)."""
        if self.received is not None:
            return False
        self.received = sig
        hint = " (Ctrl-C again to quit now)" if sig == signal.SIGINT else ""
        print(f"\nloadtest: stopping ({sig.name}); writing the summary of what completed{hint}",
              file=sys.stderr, flush=True)
        return True

    def _handle(self, signum: int, frame: Any) -> None:
        sig = signal.Signals(signum)
        if self._active is not None:
            loop = self._active[0]
            try:  # the loop acts on it at its next turn, never in the middle of its own work
                loop.call_soon_threadsafe(self._in_loop, sig)
                return
            except RuntimeError:  # the loop closed a moment ago: between runs
                self._active = None
        if not self._first(sig):
            raise Interrupted("interrupted", self.exit_code or EXIT_INTERRUPTED)

    def _in_loop(self, sig: signal.Signals) -> None:
        if self._active is None:
            return
        _, run, task = self._active
        if self._first(sig) or not run.stop.is_set():
            run.interrupted = True
            run.stop.set()
        else:
            task.cancel()


def execute(run: Runnable, signals: Signals | None = None, *, handle_signals: bool = True) -> RunOutcome:
    """Run ``run.execute()`` to its outcome under the signal policy above. ``handle_signals=False``
    for a process whose signals belong to someone else (a scale-out worker: the coordinator tells
    it to stop). A run started after the command was signalled stops at once."""
    signals = signals if signals is not None else Signals()
    if handle_signals:
        signals.install()

    async def main() -> RunOutcome:
        task = asyncio.current_task()
        assert task is not None
        if handle_signals:
            signals._active = (asyncio.get_running_loop(), run, task)
        if signals.received is not None:  # signalled before this run began: it measures nothing new
            run.interrupted = True
            run.stop.set()
        try:
            return await run.execute()
        finally:
            signals._active = None

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
