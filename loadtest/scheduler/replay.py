"""Replaying recorded start times (``--trace``): a load shape whose offsets were given, not drawn.
Pure, like shapes.py: the scheduler learns only numbers (seconds after the trace's first row), never
what a request asks; the prompt stage reads the trace and the run hands the offsets over here."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplaySpec:
    """``speed``: 2 plays the trace twice as fast. ``window``: only the rows whose recorded offset
    t has start <= t < end (seconds of trace time), the schedule then counted from ``start``.
    ``max_idle_s``: any gap of the schedule (wall seconds, after the speed-up; the lead-in from the
    window's start included) longer than this is shortened to it."""

    speed: float = 1.0
    window: tuple[float, float | None] | None = None
    max_idle_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ValueError("speed must be a finite number > 0")
        if self.max_idle_s is not None and not (math.isfinite(self.max_idle_s) and self.max_idle_s >= 0):
            raise ValueError("max_idle_s must be a finite number >= 0")
        if self.window is not None:
            a, b = self.window
            if not (math.isfinite(a) and a >= 0) or (b is not None and not b > a):
                raise ValueError("window must be START:END with 0 <= START < END")


@dataclass(frozen=True)
class Schedule:
    """The replay: ``indices`` of the rows kept (into the offsets given), their start ``times``
    (seconds from the run's origin, non-decreasing) and what the transformation did."""

    indices: tuple[int, ...]
    times: tuple[float, ...]
    idle_removed_s: float
    gaps_compressed: int

    @classmethod
    def given(cls, times: Sequence[float]) -> Schedule:
        """A schedule computed earlier (RunConfig.trace_schedule_s), to run as it is."""
        return cls(tuple(range(len(times))), tuple(times), 0.0, 0)

    @property
    def duration_s(self) -> float:
        return self.times[-1] if self.times else 0.0

    def iter_times(self) -> Iterator[float]:
        """The open loop's offsets (what shapes.OpenLoop.iter_times gives), ending with the trace."""
        return iter(self.times)

    def describe(self) -> dict[str, Any]:
        return {"requests": len(self.times), "schedule_s": self.duration_s, "idle_removed_s": self.idle_removed_s,
                "gaps_compressed": self.gaps_compressed}


def replay(offsets: Sequence[float], spec: ReplaySpec, keys: Sequence[float] | None = None) -> Schedule:
    """Window, speed-up, then idle compression of non-decreasing ``offsets`` (seconds). ``keys``: the
    offset each row is windowed by, when not its own (a trace session's later rows go with its first
    row, so a window never cuts a session); the kept rows are timed by their own offsets."""
    start, end = spec.window if spec.window is not None else (0.0, None)
    by = offsets if keys is None else keys
    kept = [i for i, t in enumerate(by) if t >= start and (end is None or t < end)]
    times: list[float] = []
    removed = 0.0
    compressed = 0
    prev_raw = 0.0  # the window's start is where the schedule begins
    prev_out = 0.0
    for i in kept:
        raw = (offsets[i] - start) / spec.speed
        gap = raw - prev_raw
        if spec.max_idle_s is not None and gap > spec.max_idle_s:
            removed += gap - spec.max_idle_s
            compressed += 1
            gap = spec.max_idle_s
        prev_raw = raw
        prev_out = prev_out + gap
        times.append(prev_out)
    return Schedule(tuple(kept), tuple(times), removed, compressed)
