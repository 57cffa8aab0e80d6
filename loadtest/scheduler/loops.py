"""Runs jobs under a load shape until a count, a deadline or a stop signal. Knows nothing of LLMs:
a job is an awaitable taking an index (closed loop), or an index, its scheduled start and the
time it waited for a slot (open loop)."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TypeVar

from loadtest.scheduler.shapes import ClosedLoop
from loadtest.timer import Alarm, make_timer

T = TypeVar("T")


async def run_closed_loop(shape: ClosedLoop, job: Callable[[int], Awaitable[None]], *,
                          count: int | None, deadline_ns: int | None, stop: asyncio.Event,
                          first_index: int = 0) -> str:
    """Run ``job(first_index)``, ``job(first_index + 1)``, ... with ``shape.concurrency`` in flight.

    Returns why it ended: "done" (count reached), "deadline" or "stopped". Jobs in flight at a
    deadline or stop are cancelled: each job must record its own cancellation.
    """
    next_index = first_index
    end_index = first_index + count if count is not None else None

    async def worker(delay_s: float) -> None:
        nonlocal next_index
        if delay_s > 0:  # ramp-up: this worker joins later
            await asyncio.sleep(delay_s)
        while not stop.is_set():
            if end_index is not None and next_index >= end_index:
                return
            if deadline_ns is not None and perf_counter_ns() >= deadline_ns:
                return
            i = next_index
            next_index += 1
            await job(i)

    workers = [asyncio.create_task(worker(shape.worker_delay_s(w))) for w in range(shape.concurrency)]
    all_done = asyncio.ensure_future(asyncio.gather(*workers))
    stopper = asyncio.create_task(stop.wait())
    timeout = None if deadline_ns is None else max(0.0, (deadline_ns - perf_counter_ns()) / 1e9)
    finished = False
    try:
        done, _ = await asyncio.wait({all_done, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finished = all_done in done
    finally:
        stopper.cancel()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if not finished:
            all_done.cancel()
            await asyncio.gather(all_done, return_exceptions=True)
    if finished:
        all_done.result()  # re-raise a job's exception: a bug, not a failed request
        return "stopped" if stop.is_set() else "done"
    return "stopped" if stop.is_set() else "deadline"


async def until_stopped(stop: asyncio.Event, coro: Awaitable[T]) -> T | None:
    """Await ``coro`` unless ``stop`` is set first (Ctrl-C during model discovery or while
    connections open): then it is cancelled at once and None returned."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result() if not task.cancelled() else None


async def sleep_until(t_ns: int) -> None:
    """Sleep until perf_counter_ns() >= t_ns, to the microsecond (see timer.Alarm)."""
    alarm = Alarm(perf_counter_ns)
    try:
        await alarm.until(t_ns)
    finally:
        alarm.close()


@dataclass
class Backlog:
    """Where an open loop's starts wait when every --max-concurrency slot is busy, and what became
    of them. Held as small tuples (scheduled, index, since), never as tasks: a task per waiting
    start cost ~2 KB each and grew without bound (600 MB in 5 s at 100,000 req/s with 8 slots).

    ``bound``: the most starts that may wait (None: no slots, nothing ever waits). ``drop``: a start
    that comes due while ``bound`` starts wait is dropped and counted, never sent; without ``drop``
    (an infinite rate: "all at once, up to the cap") the schedule is read only as slots free, so
    nothing waits beyond the start at hand and nothing is dropped. Filled in by run_open_loop:
    ``due`` starts taken from the schedule (sent, waited or dropped), ``dropped``, ``waited``
    (starts that waited for a slot), ``waiting_max`` (the most waiting at once) and ``unsent``
    (still waiting when a deadline or a stop ended the run, or launched at that instant and
    cancelled before its job began: never sent, no record)."""

    bound: int | None = None
    drop: bool = True
    due: int = 0
    dropped: int = 0
    waited: int = 0
    waiting_max: int = 0
    unsent: int = 0


START_BATCH = 256
"""Starts handled in one timer callback before the loop turns to everything else (signals, the
deadline, replies): a schedule far behind is caught up in slices, never in one long callback."""


async def run_open_loop(times: Iterator[float], job: Callable[[int, int, int], Awaitable[None]], *,
                        origin_ns: int, count: int | None, deadline_ns: int | None, stop: asyncio.Event,
                        max_concurrency: int | None = None, first_index: int = 0,
                        indices: Iterable[int] | None = None, backlog: Backlog | None = None) -> str:
    """Start ``job(i, scheduled_ns, queue_ns)`` at ``origin_ns + times[i]`` whatever is in flight.

    ``times`` are a load shape's absolute offsets in seconds (see loadshape.OpenLoop). With
    ``max_concurrency`` a start that finds every slot busy waits in ``backlog`` (FIFO, bounded: see
    Backlog); the time from when it found every slot busy to its slot is passed as ``queue_ns`` so it
    never lands inside the request's own latency (nor in its send lag). ``indices``: the request index of each start (default
    first_index, first_index + 1, ...): a client given every k-th start of a shared schedule
    (scale-out) passes its own indices and offsets. ``count`` counts starts taken from the schedule,
    dropped ones included. Returns "done" (count due and every started job finished), "deadline"
    or "stopped"; in-flight jobs are then cancelled."""
    backlog = backlog if backlog is not None else Backlog()
    if max_concurrency and backlog.bound is None:
        backlog.bound = max_concurrency
    free = max_concurrency or 0  # free slots (unused without a cap)
    # (scheduled_ns, index, since_ns) of starts waiting for a slot: the wait counts from since_ns (when it found
    # every slot busy), so a start the loop took up late keeps that lateness in its send lag
    waiting: deque[tuple[int, int, int]] = deque()
    blocked_ns = 0  # without drops: since when every slot has been busy while starts were due; each start
    # read on from the schedule then waited from its scheduled time or that moment, whichever is later
    closing = False  # the run is winding down: a freed slot starts nothing more
    tasks: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    launched = begun = 0  # a task cancelled before its first step (launched at the deadline) never sent

    async def one(i: int, scheduled_ns: int, queue_ns: int) -> None:
        nonlocal begun
        begun += 1
        try:
            await job(i, scheduled_ns, queue_ns)
        finally:
            if max_concurrency:
                slot_freed()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failure.append(task.exception())  # type: ignore[arg-type]
            stop.set()

    def launch(i: int, at: int, queue_ns: int) -> None:
        nonlocal launched
        launched += 1
        task = loop.create_task(one(i, at, queue_ns))
        tasks.add(task)
        task.add_done_callback(finished)

    def slot_freed() -> None:
        """A job ended: the oldest waiting start takes its slot."""
        nonlocal free
        if closing:
            return
        if waiting:
            at, i, since = waiting.popleft()
            launch(i, at, perf_counter_ns() - since)
            return
        free += 1
        if not backlog.drop and due is not None:
            start_due()  # "all at once": the schedule is read on as slots free

    loop = asyncio.get_running_loop()
    all_started: asyncio.Future[None] = loop.create_future()
    schedule = zip(times, iter(indices) if indices is not None else itertools.count(first_index))
    due: tuple[int, int] | None = None  # the next start (at_ns, index), once taken from the schedule

    def start_due() -> None:
        """Start every job whose time has come, then arm the timer for the next. Runs as the
        timer's own callback: a task awaiting the timer would start each job one loop turn later."""
        nonlocal due, free, blocked_ns
        try:
            for _ in range(START_BATCH):
                if all_started.done() or closing:
                    return
                if due is None:
                    if stop.is_set() or (count is not None and backlog.due >= count):
                        all_started.set_result(None)
                        return
                    step = next(schedule, None)
                    if step is None:
                        all_started.set_result(None)
                        return
                    at = origin_ns + int(step[0] * 1e9)
                    if deadline_ns is not None and at >= deadline_ns:
                        return  # a timed run lasts to its deadline (the wait below ends it)
                    due = (at, step[1])
                at, i = due
                if perf_counter_ns() < at:
                    timer.arm(at)
                    return
                now = perf_counter_ns()
                if max_concurrency and not free and not backlog.drop:
                    blocked_ns = blocked_ns or now
                    return  # every slot busy: the next freed one reads on (slot_freed)
                due = None
                backlog.due += 1
                if not max_concurrency or free:
                    queue_ns = now - max(at, blocked_ns) if blocked_ns else 0
                    if max_concurrency:
                        blocked_ns = blocked_ns if free == 1 else 0  # slots to spare: no one waits any more
                        free -= 1
                    backlog.waited += queue_ns > 0
                    launch(i, at, queue_ns)
                elif backlog.bound is not None and len(waiting) >= backlog.bound:
                    backlog.dropped += 1  # counted, never sent: the schedule was not issued
                else:
                    waiting.append((at, i, now))
                    backlog.waited += 1
                    backlog.waiting_max = max(backlog.waiting_max, len(waiting))
            timer.arm(0)  # more is due: go on after the loop's other work (fires at once)
        except BaseException as exc:  # a broken schedule: fail the run, not a callback in the loop's log
            if not all_started.done():
                all_started.set_exception(exc)

    # One precise timer (timerfd) for every start: the loop sleeps between starts, with no busy
    # wait near each one (yielding through the last 1.5 ms cost half a core at 500 req/s).
    timer = make_timer(loop, start_due, perf_counter_ns)

    async def dispatch() -> None:
        start_due()
        try:
            await all_started
        finally:
            timer.close()
        while tasks:  # every request started: wait for the last to end (a waiting start takes a freed slot)
            await asyncio.wait(set(tasks))

    dispatcher = asyncio.create_task(dispatch())
    stopper = asyncio.create_task(stop.wait())
    timeout = None if deadline_ns is None else max(0.0, (deadline_ns - perf_counter_ns()) / 1e9)
    try:
        done, _ = await asyncio.wait({dispatcher, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        completed = dispatcher in done
    finally:
        closing = True
        timer.close()  # no start may slip in from a timer callback while the run winds down
        backlog.unsent += len(waiting)
        waiting.clear()
        stopper.cancel()
        dispatcher.cancel()
        pending = list(tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(dispatcher, *pending, return_exceptions=True)
        backlog.unsent += launched - begun  # their job never began: no request, no record
    if failure:
        raise failure[0]  # a job's exception: a bug, not a failed request
    if completed and not stop.is_set():
        return "done"
    return "stopped" if stop.is_set() else "deadline"
