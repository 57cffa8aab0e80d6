"""A trace session's later turns on the trace's clock (``--trace`` rows sharing a session_id;
prompts/tracesessions.py): the session loop (run/sessions.py) sends a turn only after the previous
reply, and this hook then holds it until its own replayed offset when the reply came earlier. So a
turn is never early against the trace, never overlaps the previous one, and when the server was
slower than the recorded user the turn goes at once and its lateness is recorded, not hidden.

Kept apart from the session loop, which only awaits the hook: the loop stays one loop for every kind
of session, and the hold is the trace's alone. The hold is outside every latency (a turn's record
times its own request) and inside the session's duration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any

from loadtest.measure.record import RequestRecord, asked
from loadtest.prompts.sources import Prompt
from loadtest.scheduler.loops import sleep_until

Hold = Callable[[Prompt, int, "tuple[Any, Any, str]"], Awaitable["tuple[float, float] | None"]]
"""``hold(session, turn, sched)``, awaited before each later turn: (held_s, late_s), or None when the
session has no replayed offsets (nothing to hold for)."""


def trace_hold(t0_ns: Callable[[], int]) -> Hold:
    """The hook for a run whose clock starts at ``t0_ns()`` (read when a turn is due, as the run's
    origin is set after the hook is made). ``sched[0]`` is the session's scheduled start, seconds on
    that clock; turn k is due at it plus ``session.turn_offsets_s[k]``."""

    async def hold(session: Prompt, turn: int, sched: tuple[Any, Any, str]) -> tuple[float, float] | None:
        offsets = session.turn_offsets_s
        if offsets is None or sched[0] is None or turn >= len(offsets):
            return None
        due_ns = t0_ns() + round((sched[0] + offsets[turn]) * 1e9)
        now = perf_counter_ns()
        if now >= due_ns:
            return 0.0, (now - due_ns) / 1e9
        await sleep_until(due_ns)
        return (perf_counter_ns() - now) / 1e9, 0.0

    return hold


def turn_max_tokens(session: Prompt, turn: int) -> int | None:
    """The output length turn ``turn`` asks (a trace row's own), or None: the run's --max-tokens."""
    lengths = session.turn_max_tokens
    return lengths[turn] if lengths is not None and turn < len(lengths) else None


def tag_trace_turn(rec: RequestRecord, max_tokens: int | None, held: tuple[float, float] | None) -> None:
    """A trace turn's own fields: the length it asked (and whether the reply stopped before it), and
    for a later turn its hold or its lateness."""
    if max_tokens is not None:
        asked(rec, max_tokens)
    if held is not None:
        rec.held_s, rec.late_s = held
