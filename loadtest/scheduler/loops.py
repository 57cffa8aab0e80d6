"""Runs jobs under a load shape until a count, a deadline or a stop signal. Knows nothing of LLMs:
a job is an awaitable taking an index (closed loop), or an index, its scheduled start and the
time it waited for a slot (open loop)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator
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


async def run_open_loop(times: Iterator[float], job: Callable[[int, int, int], Awaitable[None]], *,
                        origin_ns: int, count: int | None, deadline_ns: int | None, stop: asyncio.Event,
                        max_concurrency: int | None = None, first_index: int = 0,
                        indices: Iterable[int] | None = None) -> str:
    """Start ``job(i, scheduled_ns, queue_ns)`` at ``origin_ns + times[i]`` whatever is in flight.

    ``times`` are a load shape's absolute offsets in seconds (see loadshape.OpenLoop). With
    ``max_concurrency`` a started request first waits for a free slot (FIFO); that wait is passed
    as ``queue_ns`` so it never lands inside the request's own latency. ``indices``: the request
    index of each start (default first_index, first_index + 1, ...): a client given every k-th start
    of a shared schedule (scale-out) passes its own indices and offsets. Returns "done" (count
    started and finished), "deadline" or "stopped"; in-flight jobs are then cancelled."""
    slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    tasks: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def one(i: int, scheduled_ns: int) -> None:
        queue_ns = 0
        if slots is not None:
            t_wait = perf_counter_ns()
            await slots.acquire()
            queue_ns = perf_counter_ns() - t_wait
        try:
            await job(i, scheduled_ns, queue_ns)
        finally:
            if slots is not None:
                slots.release()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failure.append(task.exception())  # type: ignore[arg-type]
            stop.set()

    loop = asyncio.get_running_loop()
    all_started: asyncio.Future[None] = loop.create_future()
    schedule = zip(times, iter(indices) if indices is not None else itertools.count(first_index))
    due: tuple[int, int] | None = None  # the next start (at_ns, index), once taken from the schedule
    started = 0

    def start_due() -> None:
        """Start every job whose time has come, then arm the timer for the next. Runs as the
        timer's own callback: a task awaiting the timer would start each job one loop turn later."""
        nonlocal due, started
        try:
            while not all_started.done():
                if due is None:
                    if stop.is_set() or (count is not None and started >= count):
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
                due = None
                task = loop.create_task(one(i, at))
                tasks.add(task)
                task.add_done_callback(finished)
                started += 1
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
        while tasks:  # every request started: wait for the last to end
            await asyncio.wait(set(tasks))

    dispatcher = asyncio.create_task(dispatch())
    stopper = asyncio.create_task(stop.wait())
    timeout = None if deadline_ns is None else max(0.0, (deadline_ns - perf_counter_ns()) / 1e9)
    try:
        done, _ = await asyncio.wait({dispatcher, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        completed = dispatcher in done
    finally:
        timer.close()  # no start may slip in from a timer callback while the run winds down
        stopper.cancel()
        dispatcher.cancel()
        pending = list(tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(dispatcher, *pending, return_exceptions=True)
    if failure:
        raise failure[0]  # a job's exception: a bug, not a failed request
    if completed and not stop.is_set():
        return "done"
    return "stopped" if stop.is_set() else "deadline"
