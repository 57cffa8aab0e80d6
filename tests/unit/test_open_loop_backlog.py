"""The open loop's bounded backlog (scheduler/loops.py, phases.backlog): jobs are plain awaitables
here (the scheduler knows nothing of LLMs), so what is counted, dropped and waited can be checked
exactly; the same loop against the test server is in tests/integration/test_faults_overload.py."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from time import perf_counter_ns

import pytest

from loadtest.config import RunConfig
from loadtest.scheduler import phases
from loadtest.scheduler.loops import START_BATCH, Backlog, run_open_loop

pytestmark = pytest.mark.timeout(30)


class Jobs:
    """Jobs that hold a slot for ``hold_s``; what started, in which order, and how many at once."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.started: list[tuple[int, int, int]] = []  # (index, scheduled_ns, queue_ns)
        self.in_flight = self.most = 0

    async def __call__(self, i: int, scheduled_ns: int, queue_ns: int) -> None:
        self.started.append((i, scheduled_ns, queue_ns))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.in_flight -= 1


def run(times, jobs, **kw):
    async def main():
        stop = asyncio.Event()
        origin = perf_counter_ns()
        deadline_s = kw.pop("deadline_s", None)
        stop_after_s = kw.pop("stop_after_s", None)
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.set)
        return await run_open_loop(iter(times), jobs, origin_ns=origin, stop=stop,
                                   deadline_ns=None if deadline_s is None else origin + int(deadline_s * 1e9), **kw)
    return asyncio.run(main())


def test_starts_past_the_bound_are_dropped_and_counted_never_sent():
    jobs, held = Jobs(0.05), Backlog(bound=10)
    times = [k * 0.001 for k in range(300)]  # 1,000 req/s for 0.3 s; 2 slots hold 40 req/s
    assert run(times, jobs, count=300, max_concurrency=2, backlog=held) == "done"
    assert jobs.most == 2
    assert held.due == 300 and held.waiting_max == 10 and held.unsent == 0
    assert len(jobs.started) == 300 - held.dropped and held.dropped > 250
    waited = [(i, q) for i, _, q in jobs.started if q > 0]
    assert len(waited) == held.waited  # every queued start was sent, oldest first
    assert [i for i, _ in waited] == sorted(i for i, _ in waited)


def test_the_queue_wait_counts_from_the_scheduled_start_not_into_send_lag():
    jobs, held = Jobs(0.05), Backlog(bound=100)
    run([0.0] * 3, jobs, count=3, max_concurrency=1, backlog=held)
    queue_s = [q / 1e9 for _, _, q in jobs.started]
    assert queue_s[0] == 0 and queue_s[1] == pytest.approx(0.05, abs=0.02) and queue_s[2] == pytest.approx(0.10, abs=0.03)
    assert held.dropped == 0 and held.waited == 2


def test_an_infinite_rate_with_a_cap_is_all_at_once_up_to_it_and_drops_nothing():
    jobs, held = Jobs(0.02), Backlog(bound=0, drop=False)
    assert run(iter(lambda: 0.0, None), jobs, count=40, max_concurrency=4, backlog=held) == "done"
    assert len(jobs.started) == 40 and jobs.most == 4 and held.dropped == 0 and held.due == 40
    assert jobs.started[-1][2] / 1e9 == pytest.approx(9 * 0.02, abs=0.06)  # the last waited 9 waves


def test_an_endless_schedule_all_due_at_once_ends_at_its_deadline():
    jobs, held = Jobs(0.01), Backlog(bound=0, drop=False)
    t0 = time.monotonic()
    assert run(iter(lambda: 0.0, None), jobs, count=None, max_concurrency=8, backlog=held, deadline_s=0.5) == "deadline"
    assert time.monotonic() - t0 < 1.0 and jobs.most == 8 and held.dropped == 0


def test_far_over_the_cap_memory_stays_the_bound_and_a_stop_ends_it_at_once():
    jobs, held = Jobs(0.05), Backlog(bound=1000)
    t0 = time.monotonic()
    gaps = (k * 1e-5 for k in range(10**9))  # 100,000 req/s without end
    assert run(gaps, jobs, count=None, max_concurrency=8, backlog=held, stop_after_s=1.0) == "stopped"
    assert time.monotonic() - t0 < 1.5
    # a slot freed while the stop was being noticed may still take a waiting start
    assert held.waiting_max == 1000 and 900 <= held.unsent <= 1000 and held.dropped > 20_000
    assert held.due == held.dropped + held.unsent + len(jobs.started)


def test_a_schedule_far_behind_is_caught_up_in_slices_the_loop_keeps_turning():
    jobs = Jobs(0.0)
    seen: list[int] = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: seen.append(len(jobs.started)))  # queued before the first slice ends
        return await run_open_loop(iter([0.0] * 5000), jobs, origin_ns=perf_counter_ns() - 10**9, count=5000,
                                   deadline_ns=None, stop=asyncio.Event())
    assert asyncio.run(main()) == "done"
    assert len(jobs.started) == 5000 and seen and seen[0] <= START_BATCH


def _cfg(**kw):
    return replace(RunConfig(base_url="http://x/v1", command="throughput", model="m"), **kw)


@pytest.mark.parametrize("rate,cap,bound,drop", [
    (100_000.0, 8, 10_000, True),   # capped at 10,000 waiting starts
    (50.0, 8, 50, True),            # one second of the schedule
    (2.0, 8, 8, True),              # at least the cap
    (math.inf, 8, 0, False),        # all at once: read on as slots free
    (50.0, None, None, True),       # no slots: nothing waits
])
def test_the_bound_rule(rate, cap, bound, drop):
    b = phases.backlog(_cfg(request_rate=rate, max_concurrency=cap))
    assert (b.bound, b.drop) == (bound, drop)


def test_a_worker_holds_its_share_of_the_rate_and_of_the_cap():
    b = phases.backlog(_cfg(request_rate=400.0, max_concurrency=8), share=4, max_concurrency=2)
    assert b.bound == 100
