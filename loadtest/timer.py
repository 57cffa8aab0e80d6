"""A one-shot wake-up at an absolute CLOCK_MONOTONIC time, with microsecond precision.

Loop timers are too coarse here: uvloop rounds delays to whole milliseconds against a cached
clock, so a timer fires up to a millisecond early or late, and re-arming for the sub-millisecond
rest degenerates into a busy ``call_soon`` spin (measured: ~125k idle wake-ups/s at 64 streams).
A Linux timerfd armed at the absolute due time wakes the loop's poller exactly, and the loop
sleeps in between. Elsewhere we fall back to ``loop.call_later``.

Two users: the test server's token schedule (sim/stream.py) and the client's open-loop starts
(scheduler/loops.py), whose times are ``perf_counter_ns`` stamps: on Linux that is CLOCK_MONOTONIC too.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
from collections.abc import Callable
from time import get_clock_info, monotonic_ns

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class LoopTimer:
    """Fallback: the event loop's own timer (ms-granular under uvloop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None],
                 clock: Callable[[], int] = monotonic_ns) -> None:
        self._loop = loop
        self._callback = callback
        self._clock = clock
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def arm(self, due_ns: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(due_ns - self._clock(), 0) / 1e9, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._callback()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class TimerFdTimer:
    """Linux: a non-blocking timerfd registered as a loop reader; ``arm`` replaces any earlier setting."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        if hasattr(os, "timerfd_create"):  # Python >= 3.13
            self._fd = os.timerfd_create(CLOCK_MONOTONIC, flags=TFD_NONBLOCK | TFD_CLOEXEC)
            self._settime: Callable[[int], None] = self._settime_os
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            self._libc_settime = libc.timerfd_settime
            self._spec = _Itimerspec()
            self._spec_ref = ctypes.byref(self._spec)
            fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "timerfd_create failed")
            self._fd = fd
            self._settime = self._settime_ctypes
        loop.add_reader(self._fd, self._fire)

    def _settime_os(self, due_ns: int) -> None:
        os.timerfd_settime_ns(self._fd, flags=TFD_TIMER_ABSTIME, initial=due_ns)  # type: ignore[attr-defined]

    def _settime_ctypes(self, due_ns: int) -> None:
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(due_ns, 1_000_000_000)
        if self._libc_settime(self._fd, TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def arm(self, due_ns: int) -> None:
        # An absolute time of 0 would disarm the timer instead of firing at once.
        self._settime(max(due_ns, 1))

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)  # clear readiness; the expiry count itself does not matter
        except BlockingIOError:
            return  # re-armed to a later time after it had already fired: nothing due
        self._callback()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def _is_monotonic(clock: Callable[[], int]) -> bool:
    """Whether ``clock`` reads CLOCK_MONOTONIC, the timerfd's clock."""
    name = {"monotonic_ns": "monotonic", "perf_counter_ns": "perf_counter"}.get(getattr(clock, "__name__", ""))
    return name is not None and get_clock_info(name).implementation == "clock_gettime(CLOCK_MONOTONIC)"


def make_timer(loop: asyncio.AbstractEventLoop, callback: Callable[[], None],
               clock: Callable[[], int] = monotonic_ns) -> TimerFdTimer | LoopTimer:
    """The most precise timer this platform offers for due times read from ``clock``."""
    if sys.platform.startswith("linux") and _is_monotonic(clock):
        try:
            return TimerFdTimer(loop, callback)
        except (OSError, AttributeError):
            pass
    return LoopTimer(loop, callback, clock)


class Alarm:
    """``await alarm.until(t_ns)``: sleep until ``clock() >= t_ns`` on one reusable timer, with
    no busy wait near the due time (for a loop that starts requests at scheduled instants)."""

    def __init__(self, clock: Callable[[], int] = monotonic_ns) -> None:
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._timer = make_timer(self._loop, self._ring, clock)
        self._waiter: asyncio.Future[None] | None = None

    def _ring(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def until(self, t_ns: int) -> None:
        while self._clock() < t_ns:  # a wake-up a hair early (the fallback timer) sleeps again
            self._waiter = self._loop.create_future()
            self._timer.arm(t_ns)
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        self._timer.close()
