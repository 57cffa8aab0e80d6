"""Runs jobs under a load shape until a count, a deadline or a stop signal. Knows nothing of LLMs:
a job is an awaitable taking an index."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import TypeVar

from .loadshape import ClosedLoop

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

    async def worker() -> None:
        nonlocal next_index
        while not stop.is_set():
            if end_index is not None and next_index >= end_index:
                return
            if deadline_ns is not None and perf_counter_ns() >= deadline_ns:
                return
            i = next_index
            next_index += 1
            await job(i)

    workers = [asyncio.create_task(worker()) for _ in range(shape.concurrency)]
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
