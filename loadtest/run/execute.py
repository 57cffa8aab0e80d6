"""The one way every command executes a run: on a fresh event loop (uvloop where installed), under
one signal policy.

- First SIGINT or SIGTERM: stop gracefully. The run stops starting requests, cancels and records
  those in flight, and writes the summary of what completed (``run.ended: "interrupted"``). A
  command running several runs (a sweep, a capacity search, the prefill/decode scenarios, a
  matrix) starts no further run; the command exits with 130 (SIGINT) or 143 (SIGTERM).
- Second signal: quit now. The run is cancelled where it stands (requests.jsonl keeps every record
  written so far) and ``Interrupted`` is raised, which the CLI turns into one line and 130/143.
- Before anything was measured (discovery, prompts, an engine starting, a Ray cluster joined,
  connections opened, the scraper's first sample: no request sent yet) and in the waits a command
  marks ``abortable()``: the first signal quits at once with one line, as there is nothing
  completed to write; a run stopped so leaves no directory behind (``NothingMeasured``), and says
  nothing of a summary it will not write.

The command holds one ``Signals`` for all its runs (``command_signals()``: the CLI begins one per
command, a ``loadtest run`` suite one for all its commands), so a signal between two runs is not
lost, and the command's exit code is 130/143 whatever it would have been otherwise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loadtest.errors import EXIT_INTERRUPTED, LoadtestError
from loadtest.eventloop import loop_factory

if TYPE_CHECKING:  # (not imported at run time: the CLI takes the signals before its heavy imports)
    from loadtest.run.outcome import RunOutcome

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Runnable(Protocol):
    """A run (runner.Run) or anything run-shaped (scaleout's coordinator). ``measuring``: a request
    was sent (there will be records to write a summary of); before that, a signal is told so."""

    stop: asyncio.Event
    interrupted: bool
    directory: Path

    @property
    def measuring(self) -> bool: ...

    async def execute(self) -> RunOutcome: ...


class Interrupted(LoadtestError):
    """The second signal: the command quits at once."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class QuitNow(KeyboardInterrupt):
    """A second signal while the first one's graceful stop is under way: raised from the signal
    handler itself, wherever the main thread stands, because the stop may be seconds of work that
    never yields to the event loop (the metrics of a large run, its summary). A KeyboardInterrupt,
    so asyncio lets it through instead of logging it; ``finally`` blocks still run (a launched
    engine is stopped), and every record already written is whole (one write each)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NothingMeasured(Interrupted):
    """A signal stopped a run before it sent a request: its directory is removed (a directory that
    holds no run is never left behind) and the command quits with one line."""


RUN_OWN_FILES = ("requests.jsonl", "config.json", "summary.json", "summary.json.tmp", "server_metrics.jsonl",
                 ".chunk_texts.jsonl")
"""What a run itself writes in its directory (output.py, resume.py, the scraper, the chunk texts):
removed when it measured nothing. Anything else there (a launched engine's log) is left, and so is
the directory then."""


def remove_unmeasured(directory: Path) -> None:
    """Remove a run that measured nothing: its own files, then its directory when that is empty."""
    for name in RUN_OWN_FILES:
        try:
            (directory / name).unlink()
        except OSError:
            pass
    try:
        directory.rmdir()
    except OSError:
        pass


def _nothing_written(run: Runnable, outcome: RunOutcome) -> bool:
    """A signal stopped the run before any record (a resumed run's earlier ones count): nothing to
    keep."""
    if (outcome.summary.get("run") or {}).get("ended") != "interrupted":
        return False
    try:
        return (run.directory / "requests.jsonl").stat().st_size == 0
    except OSError:
        return True


@dataclass
class Signals:
    """The command's signal policy, one for all its runs. Plain signal handlers, installed for the
    whole command (not the event loop's, which go with each loop and leave the default, deadly
    action behind them): while a run's loop runs, a signal is handed to the loop, which stops the
    run (first) or cancels it (second); between runs, a first signal is noted (a series starts no
    further run) and a second quits at once."""

    received: signal.Signals | None = None
    measured: bool = False
    """A run has begun: a first signal outside a run is noted (what completed is being written),
    not acted on at once."""
    completed: bool = False
    """A run of this command ended with records (a series writes them whatever the next run does): a
    signal before the next run's first request still has what completed to write."""
    _active: tuple[asyncio.AbstractEventLoop, Runnable | None, asyncio.Task[Any]] | None = None
    _installed: bool = False
    _abortable: int = 0
    _previous: dict[int, Any] | None = None

    @property
    def exit_code(self) -> int | None:
        """128 + the signal, as a process killed by it would report: 130 (SIGINT), 143 (SIGTERM)."""
        return None if self.received is None else 128 + int(self.received)

    def install(self) -> None:
        """Take SIGINT and SIGTERM for this command (from the main thread only; elsewhere the
        process's own handlers stay)."""
        if not self._installed and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
            self._installed = True

    def uninstall(self) -> None:
        """Give the signals back to whoever had them before (an in-process caller, a test)."""
        if self._installed and self._previous is not None:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            self._installed = False

    @contextmanager
    def abortable(self) -> Iterator[None]:
        """A wait with nothing of its own to write (an engine starting, a cluster joined): the
        first signal quits it at once (``Interrupted``) even after runs completed; the caller
        writes what those completed when it catches it."""
        self._abortable += 1
        try:
            if self.received is not None:
                raise Interrupted(f"interrupted ({self.received.name})", self.exit_code or EXIT_INTERRUPTED)
            yield
        finally:
            self._abortable -= 1

    def _first(self, sig: signal.Signals, graceful: bool = True) -> bool:
        """Note ``sig``; True when it is the command's first signal (said once on stderr when the
        command goes on to write what completed)."""
        if self.received is not None:
            return False
        self.received = sig
        if graceful:
            hint = " (Ctrl-C again to quit now)" if sig == signal.SIGINT else ""
            print(f"\nloadtest: stopping ({sig.name}); writing the summary of what completed{hint}",
                  file=sys.stderr, flush=True)
        return True

    def _handle(self, signum: int, frame: Any) -> None:
        sig = signal.Signals(signum)
        if self._active is not None and self.received is not None and self._active[1] is not None \
                and self._active[1].stop.is_set():  # the second signal: not another turn of the loop
            raise QuitNow(f"interrupted again ({sig.name}): quit at once; the records written so far are in "
                          f"{self._active[1].directory / 'requests.jsonl'}", self.exit_code or EXIT_INTERRUPTED)
        if self._active is not None:
            loop = self._active[0]
            try:  # the loop acts on it at its next turn, never in the middle of its own work
                loop.call_soon_threadsafe(self._in_loop, sig)
                return
            except RuntimeError:  # the loop closed a moment ago: between runs
                self._active = None
        at_once = not self.measured or self._abortable > 0
        if not self._first(sig, graceful=not at_once) or at_once:
            if not self.measured and not self._abortable and _in_import(frame):
                # raised inside an import, the exception becomes an ImportError (numpy's "PLEASE READ
                # THIS"), a silent fallback (`except ImportError`) or a crash in a C extension's
                # initialisation; nothing was measured and no engine is waited for: quit right here
                print(f"loadtest: {self._why(sig)}", file=sys.stderr, flush=True)
                os._exit(self.exit_code or EXIT_INTERRUPTED)
            raise Interrupted(self._why(sig), self.exit_code or EXIT_INTERRUPTED)

    def _why(self, sig: signal.Signals) -> str:
        return f"interrupted ({sig.name})" + ("" if self.measured else " before anything was measured")

    def _in_loop(self, sig: signal.Signals) -> None:
        if self._active is None:
            return
        _, run, task = self._active
        if run is None:  # not a run (a model listing): nothing to write, it ends now
            self._first(sig, graceful=False)
            task.cancel()
        elif self._first(sig, graceful=self.completed or getattr(run, "measuring", True)) or not run.stop.is_set():
            # (no request sent yet: the run quits at once, writes nothing, and says so in one line)
            run.interrupted = True
            run.stop.set()
        else:
            task.cancel()


def _in_import(frame: Any) -> bool:
    """Whether the main thread was stopped inside an import (the handler's frame and its callers)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


_command: Signals | None = None


def command_signals() -> Signals:
    """The running command's one Signals (a fresh one, not installed, outside a command: a library
    caller's run then installs it as it starts)."""
    return _command if _command is not None else Signals()


@contextmanager
def command() -> Iterator[Signals]:
    """One command, start to end, under one Signals (the CLI's main wraps every command but the
    servers, which keep their own signals): installed before anything runs, so no signal finds
    the default action (SIGTERM's kills without a word), and given back after."""
    global _command
    outer, _command = _command, Signals()
    _command.install()
    try:
        yield _command
    finally:
        _command.uninstall()
        _command = outer


def execute(run: Runnable, signals: Signals | None = None, *, handle_signals: bool = True) -> RunOutcome:
    """Run ``run.execute()`` to its outcome under the signal policy above. ``handle_signals=False``
    for a process whose signals belong to someone else (a scale-out worker: the coordinator tells
    it to stop). A run started after the command was signalled stops at once."""
    signals = signals if signals is not None else command_signals()
    if handle_signals:
        signals.install()
        signals.measured = True

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
    if handle_signals and _nothing_written(run, outcome):  # (a worker's run is its coordinator's to judge)
        remove_unmeasured(run.directory)
        received = signals.received or signal.SIGINT
        raise NothingMeasured(f"interrupted ({received.name}) before anything was measured",
                              signals.exit_code or EXIT_INTERRUPTED)
    signals.completed = True
    if outcome.exit_code == EXIT_INTERRUPTED and signals.exit_code is not None:
        outcome.exit_code = signals.exit_code
    return outcome


def run_async(coro: Any, signals: Signals | None = None) -> Any:
    """A coroutine that is not a run (a model listing) on the same event loop as every run; a
    signal cancels it and the command quits (``Interrupted``)."""
    signals = signals if signals is not None else command_signals()
    signals.install()

    async def main() -> Any:
        task = asyncio.current_task()
        assert task is not None
        signals._active = (asyncio.get_running_loop(), None, task)
        try:
            return await coro
        finally:
            signals._active = None

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            return runner.run(main())
        except asyncio.CancelledError:
            received = signals.received or signal.SIGINT
            raise Interrupted(signals._why(received), signals.exit_code or EXIT_INTERRUPTED) from None
