"""The precise one-shot timer shared by the test server's token schedule and the client's
open-loop starts (loadtest/timer.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from time import perf_counter_ns

import pytest

from loadtest.timer import Alarm, LoopTimer, TimerFdTimer, make_timer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux-only")
def test_monotonic_clocks_get_a_timerfd_and_other_clocks_the_loop_timer():
    async def main() -> tuple[object, object, object]:
        loop = asyncio.get_running_loop()
        timers = (make_timer(loop, lambda: None), make_timer(loop, lambda: None, perf_counter_ns),
                  make_timer(loop, lambda: None, lambda: time.time_ns()))
        kinds = tuple(type(t) for t in timers)
        for t in timers:
            t.close()
        return kinds

    assert asyncio.run(main()) == (TimerFdTimer, TimerFdTimer, LoopTimer)


@pytest.mark.parametrize("clock", [perf_counter_ns, lambda: perf_counter_ns()], ids=["timerfd", "loop-timer"])
def test_alarm_never_wakes_early_and_sleeps_instead_of_spinning(clock):
    async def main() -> tuple[list[int], float]:
        alarm = Alarm(clock)
        lateness = []
        cpu0 = time.process_time()
        try:
            due = clock() + 2_000_000
            for k in range(100):  # starts 2 ms apart, as an open loop at 500 req/s makes
                await alarm.until(due)
                lateness.append(clock() - due)
                due += 2_000_000
            await alarm.until(clock() - 1)  # already due: returns at once
        finally:
            alarm.close()
        return lateness, time.process_time() - cpu0

    lateness, cpu_s = asyncio.run(main())
    assert min(lateness) >= 0  # never before its time
    # 200 ms of waiting: yielding through the last 1.5 ms before each start (what the scheduler
    # did before) burns ~150 ms of it; sleeping in the poller costs next to nothing.
    assert cpu_s < 0.05


def test_a_cancelled_wait_leaves_no_waiter_behind():
    async def main() -> None:
        alarm = Alarm(perf_counter_ns)
        task = asyncio.create_task(alarm.until(perf_counter_ns() + 10_000_000_000))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await alarm.until(perf_counter_ns() + 2_000_000)  # the same alarm still works
        alarm.close()

    asyncio.run(main())
