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

With --tools each user turn is a task: its request, then one more per round of tool calls the
replies make (``_task``), each its own record with ``tool_round``, ``tool_calls`` and
``tool_wait_s``; ids then leave room for every round: ``(index * stride + turn) * (rounds + 1) +
round``. A run of single prompts with tools runs here too: each prompt a one-turn session.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from loadtest.config import RunConfig
from loadtest.measure.record import OnReply, RequestRecord, take_attempts
from loadtest.prompts.sources import Prompt
from loadtest.run.tracehold import Hold, tag_trace_turn, turn_max_tokens
from loadtest.scheduler.loops import sleep_until
from loadtest.transport import Exchange

Send = Callable[[Prompt, "dict[str, str] | None", str], Awaitable[Exchange]]
Record = Callable[[Exchange, int, str, bool, OnReply], RequestRecord]
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
    """``send(prompt, headers, session)`` sends one request over the session's connection;
    ``record(ex, id, prompt_id, warmup, on_reply)`` interprets it (the reply's visible text and tool
    calls handed to on_reply); ``cancelled(id, prompt_id, warmup, start_ns)`` is the record of a
    request the run stopped; ``emit`` writes a record; ``release(session)`` hands the session's
    connection back to the pool when it ends. A session's requests share its phase."""

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

    @property
    def per_turn(self) -> int:
        """Record ids per user turn: the turn's request and, with --tools, one per tool round."""
        return self.cfg.max_tool_rounds + 1 if self.cfg.tools is not None else 1

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
            task = _Task(index, session.id, sid, turn, user, headers, think, sched, warmup,
                         turn_max_tokens(session, turn), held)
            reply = await self._task(task, history)
            if reply is None:
                return  # the next turn would need the reply that did not come
            text = recorded[turn] if recorded is not None and turn < len(recorded) and recorded[turn] else reply
            history.append({"role": "assistant", "content": text})

    async def _task(self, task: _Task, history: list[dict[str, Any]]) -> str | None:
        """One user turn, then (with --tools) a round per reply that calls tools: the assistant's
        calls and one canned result per call join the history, and after --tool-latency the
        conversation is sent again, until a reply calls no tool (the final answer, returned), a
        request fails, or --max-tool-rounds rounds were answered (the task is cut off: None). The
        pause is outside every latency: each record times its own request only."""
        cfg = self.cfg
        rounds = cfg.max_tool_rounds if cfg.tools is not None else 0
        wait: float | None = None
        for rnd in range(rounds + 1):
            if rnd:
                wait = 0.0
                if cfg.tool_latency_s:  # to the microsecond, as think time; recorded as it was slept
                    t_wait = perf_counter_ns()
                    await sleep_until(t_wait + round(cfg.tool_latency_s * 1e9))
                    wait = (perf_counter_ns() - t_wait) / 1e9
                if self.stop.is_set():
                    return None
            rid = task.index * self.stride * self.per_turn + task.turn * self.per_turn + rnd
            reply = await self._request(task, rid, history, rnd, wait)
            if reply is None:
                return None
            text, calls = reply
            if cfg.tools is None or not calls:
                return text
            if rnd == rounds:
                return None  # --max-tool-rounds: the task ends without a final answer
            history.append({"role": "assistant", "content": text or None, "tool_calls": calls})
            result = self.tool_result()
            history.extend({"role": "tool", "tool_call_id": c["id"], "content": result} for c in calls)
        return None

    async def _request(self, task: _Task, rid: int, history: list[dict[str, Any]], rnd: int,
                       wait: float | None) -> tuple[str, list[dict[str, Any]]] | None:
        """Send the conversation so far as one request, interpret it at once (the next request
        needs its reply) and write its record: (the reply's visible text, its tool calls), or None
        when it failed."""
        replies: list[tuple[str, list[dict[str, Any]]]] = []
        prompt = Prompt(id=task.prompt_id, text=task.user, messages=tuple(history), max_tokens=task.asks)
        t_start = perf_counter_ns()
        try:
            ex = await self.send(prompt, task.headers, task.sid)
        except asyncio.CancelledError as exc:
            rec = self.cancelled(rid, task.prompt_id, task.warmup, t_start)
            take_attempts(rec, getattr(exc, "attempt_info", None))  # stopped during a retry wait: its 429s
            self._tag(rec, task, rnd, wait, None)
            self.emit(rec)
            raise
        rec = self.record(ex, rid, task.prompt_id, task.warmup, lambda text, calls: replies.append((text, calls)))
        reply = replies[0] if rec.ok and replies else None
        self._tag(rec, task, rnd, wait, None if reply is None else reply[1])
        self.emit(rec)
        return reply

    def tool_result(self) -> str:
        """Every tool call's canned result: made before the run, exactly --tool-result-tokens long
        by the server's tokenizer (client/synthetic.py); a loop built without it answers N words."""
        text = self.cfg.tool_result_text
        return text if text is not None else " ".join(["result"] * self.cfg.tool_result_tokens)

    def _tag(self, rec: RequestRecord, task: _Task, rnd: int, wait: float | None,
             calls: list[dict[str, Any]] | None) -> None:
        """The session's fields (and with --tools the round's); the schedule (when the load shape
        wanted it, its queue wait) is the first request's alone: later ones start when the previous
        reply and the pause end."""
        rec.session_id, rec.turn = task.sid, task.turn
        rec.think_s = task.think if not rnd else None
        first = task.turn == 0 and not rnd
        rec.scheduled_s, rec.queue_s = task.sched[:2] if first else (None, None)
        rec.phase = task.sched[2]
        tag_trace_turn(rec, task.asks, task.held if not rnd else None)
        if self.cfg.tools is not None:
            rec.tool_round, rec.tool_wait_s = rnd, wait
            rec.tool_calls = None if calls is None else len(calls)


@dataclass(frozen=True)
class _Task:
    """What every request of one user turn shares: its session, its turn, its schedule."""

    index: int
    prompt_id: str
    sid: str
    turn: int
    user: str
    headers: dict[str, str] | None
    think: float | None
    sched: tuple[Any, Any, str]
    warmup: bool
    asks: int | None  # a trace turn's own output length (run/tracehold.py), else None: --max-tokens
    held: tuple[float, float] | None  # a later trace turn's (held_s, late_s)
