"""Multi-turn sessions (--turns, --multi-turn): the job the scheduler starts is a session, and this
loop sends its turns strictly one after another. Each turn carries the whole history: the leading
system messages, every earlier user turn and, after each, the server's actual reply (default) or
the dataset's recorded one (--history recorded). The reply's text is kept only while the session
runs (it lives in this coroutine's history list), never in the records.

Between a reply and the next turn the user "thinks": a seeded exponential pause of mean
--think-time, drawn from the session's own generator (``think-<seed>-<index>``), so the pauses do
not depend on which session finishes first. The pause is outside every latency (each turn's
record times its own request only) and inside the session's duration. A turn that fails ends its
session: the next turn would need the reply that did not come.

Each turn is its own record: id ``index * stride + turn`` (stride: the longest session's turns),
unique within the run, with ``session_id``, ``turn`` and ``think_s``.

A session keeps one keep-alive connection for all its turns, as one user's client would (the
transport holds it under the session's id until ``release``); a connection the server closed is
replaced, and transports that pool on their own (httpx, the openai SDK) simply reuse theirs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from loadtest.config import RunConfig
from loadtest.measure.record import RequestRecord
from loadtest.prompts.sources import Prompt
from loadtest.run.tracehold import Hold, tag_trace_turn, turn_max_tokens
from loadtest.scheduler.loops import sleep_until
from loadtest.transport import Exchange

Send = Callable[[Prompt, "dict[str, str] | None", str], Awaitable[Exchange]]
Record = Callable[[Exchange, int, str, bool, Callable[[str], None]], RequestRecord]
Cancelled = Callable[[int, str, bool, int], RequestRecord]


def session_id(index: int) -> str:
    """The session's id: its record field and its --session-header value, stable for the session."""
    return f"s{index}"


def stride(prompts: list[Prompt]) -> int:
    """Record ids per session: the most turns any session has."""
    return max((len(p.turns) if p.turns else 1 for p in prompts), default=1)


def think_times(cfg: RunConfig, index: int) -> Callable[[], float]:
    """The session's pauses, seeded per session: exponential with mean --think-time, or 0."""
    mean = cfg.think_time_s
    if mean <= 0:
        return lambda: 0.0
    rng = random.Random(f"think-{cfg.seed}-{index}")
    return lambda: rng.expovariate(1.0 / mean)


@dataclass
class SessionLoop:
    """``send(prompt, headers, session)`` sends one turn over the session's connection;
    ``record(ex, id, prompt_id, warmup, on_reply)`` interprets it (the reply's text handed to
    on_reply); ``cancelled(id, prompt_id, warmup, start_ns)`` is the record of a turn the run
    stopped; ``emit`` writes a record; ``release(session)`` hands the session's connection back to
    the pool when it ends. A session's turns share its phase."""

    cfg: RunConfig
    send: Send
    record: Record
    cancelled: Cancelled
    emit: Callable[[RequestRecord], None]
    stop: asyncio.Event
    stride: int
    release: Callable[[str], None]
    hold: Hold | None = None
    """Trace sessions (run/tracehold.py): awaited before each later turn, it holds the turn until its
    replayed offset; None: a later turn follows the reply and the think time alone."""

    async def run(self, index: int, session: Prompt, sched: tuple[Any, Any, str], warmup: bool) -> None:
        sid = session_id(index)
        try:
            await self._turns(index, sid, session, sched, warmup)
        finally:
            self.release(sid)

    async def _turns(self, index: int, sid: str, session: Prompt, sched: tuple[Any, Any, str], warmup: bool) -> None:
        cfg = self.cfg
        headers = {cfg.session_header: sid} if cfg.session_header else None
        pause = think_times(cfg, index)
        recorded = session.replies if cfg.history == "recorded" else None
        history: list[dict[str, Any]] = list(session.messages or ())
        turns = session.turns or (session.text,)
        think: float | None = None
        held: tuple[float, float] | None = None
        for turn, user in enumerate(turns):
            if turn:
                think = pause()
                if think:  # to the microsecond: the loop's own timers may wake up to 1 ms early
                    await sleep_until(perf_counter_ns() + round(think * 1e9))
                if self.hold is not None:
                    held = await self.hold(session, turn, sched)
                if self.stop.is_set():
                    return
            history.append({"role": "user", "content": user})
            rid = index * self.stride + turn
            reply: list[str] = []
            asks = turn_max_tokens(session, turn)
            t_start = perf_counter_ns()
            try:
                ex = await self.send(Prompt(id=session.id, text=user, messages=tuple(history), max_tokens=asks),
                                     headers, sid)
            except asyncio.CancelledError:
                rec = self.cancelled(rid, session.id, warmup, t_start)
                self._tag(rec, sid, turn, think, sched)
                tag_trace_turn(rec, asks, held)
                self.emit(rec)
                raise
            rec = self.record(ex, rid, session.id, warmup, reply.append)
            self._tag(rec, sid, turn, think, sched)
            tag_trace_turn(rec, asks, held)
            self.emit(rec)
            if not rec.ok or not reply:
                return  # the next turn would need the reply that did not come
            text = recorded[turn] if recorded is not None and turn < len(recorded) and recorded[turn] else reply[0]
            history.append({"role": "assistant", "content": text})

    @staticmethod
    def _tag(rec: RequestRecord, sid: str, turn: int, think: float | None, sched: tuple[Any, Any, str]) -> None:
        """The session's fields; the schedule (when the load shape wanted it, its queue wait) is the
        first turn's alone: later turns start when the previous reply and the pause end."""
        rec.session_id, rec.turn, rec.think_s = sid, turn, think
        rec.scheduled_s, rec.queue_s = sched[:2] if turn == 0 else (None, None)
        rec.phase = sched[2]
