"""The coordinator's view of each worker process (scale-out): what it told of its requests, how it
ended, and the processes' CPU together as one client."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson

from loadtest.scaleout.share import Share


@dataclass
class Worker:
    name: str
    share: Share
    proc: Any = None
    pid: int | None = None
    host: str | None = None
    rx: Any = None
    tx: Any = None
    ready: bool = False
    warm: bool = False
    closed: bool = False
    done: dict[str, Any] | None = None
    error: str | None = None
    last_record_error: str | None = None
    started: int = 0  # requests it told us it started (wire.STARTED), warm-up included
    sent: int = 0
    completed: int = 0
    failed: int = 0
    span: list[float] = field(default_factory=list)  # measured [first start, last end]

    def take(self, line: bytes) -> dict[str, Any]:
        rec = orjson.loads(line)
        self.sent += 1
        if rec["ok"]:
            self.completed += 1
        elif rec.get("error_kind") != "abandoned":  # let go on purpose (--cancel-rate): not a failure
            self.failed += 1
            self.last_record_error = rec.get("error")
        if not rec.get("warmup"):
            start, end = rec["start_s"], rec.get("end_s")
            if not self.span:
                self.span = [start, end if end is not None else start]
            self.span[0] = min(self.span[0], start)
            if end is not None:
                self.span[1] = max(self.span[1], end)
        return rec


def signal_name(code: Any) -> str | None:
    """SIGKILL for a process's exit code -9 (killed by that signal); None for an ordinary exit."""
    if not isinstance(code, int) or code >= 0:
        return None
    return signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"


class ProcessGroup:
    """psutil-like cpu_times() of the coordinator and its workers together (the 'client' of the
    host monitor, so that workers are not counted as other processes disturbing the host)."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.procs = [psutil.Process(), *(psutil.Process(p) for p in pids)]

    def cpu_times(self) -> Any:
        user = system = 0.0
        for p in self.procs:
            try:
                t = p.cpu_times()
                user, system = user + t.user, system + t.system
            except Exception:  # gone: its time so far stays in the earlier samples
                continue
        return SimpleNamespace(user=user, system=system)
