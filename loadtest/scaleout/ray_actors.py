"""Scale-out on a Ray cluster (--ray-address, extra ``loadtest[ray]``): the same workers
(worker_main.run_worker) as Ray actors, spread over the cluster's nodes, the same messages and the
same coordinator (workers.Coordinator): records are written to the one requests.jsonl and the
summary computed from them exactly as with local processes.

Transport: each actor buffers its outgoing messages; the coordinator pulls every actor's buffer
every POLL_S (a batch per call, so a record reaches requests.jsonl within ~POLL_S of finishing);
control messages (go, measured, stop) are actor calls. A dead actor (its node lost, killed) is
reported by name like a dead process."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import socket
import threading
from collections import deque
from typing import Any

from loadtest.errors import ConfigError
from loadtest.run.execute import Interrupted
from loadtest.run.outcome import EXIT_INTERRUPTED
from loadtest.scaleout.coordinator import Coordinator
from loadtest.scaleout.workerview import Worker
from loadtest.scheduler.loops import until_stopped

POLL_S = 0.02
JOIN_TIMEOUT_S = 30.0
"""The most a Ray cluster is given to answer (less under a shorter --timeout)."""
PLACE_TIMEOUT_S = 120.0
"""The most the worker actors are given to start once the cluster answered."""


class ActorWorker:
    """The Ray actor's body (wrapped with ray.remote at run time, so importing this module does
    not need Ray). A threaded actor: ``start`` runs the worker on a thread of its own while
    ``poll`` and ``control`` are served."""

    def __init__(self) -> None:
        self.out: deque[bytes] = deque()
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.code: int | None = None

    def start(self, cfg: Any, prompts: Any, share: Any) -> tuple[int, str]:
        from loadtest.scaleout.worker import run_worker

        def target() -> None:
            self.code = run_worker(cfg, prompts, share, self.out.append, self.inbox.get)

        self.thread = threading.Thread(target=target, name="loadtest-worker", daemon=True)
        self.thread.start()
        return os.getpid(), socket.gethostname()

    def poll(self) -> tuple[list[bytes], int | None]:
        """Messages since the last poll, and the exit code once the worker has finished."""
        done = self.thread is not None and not self.thread.is_alive()
        batch = []
        while self.out:
            batch.append(self.out.popleft())
        return batch, (self.code if done else None)

    def control(self, message: bytes) -> None:
        self.inbox.put(message)


class _ActorTx:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def send_bytes(self, message: bytes) -> None:
        self.actor.control.remote(message)


class RayCoordinator(Coordinator):
    backend = "ray"

    def __init__(self, *args: Any, address: str, **kwargs: Any) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--ray-address needs Ray: pip install 'loadtest[ray]'") from None
        super().__init__(*args, **kwargs)
        self.address = address
        self._inited = False
        self._actors: list[Any] = []
        self._poller: asyncio.Task[None] | None = None

    async def _spawn(self) -> None:
        import ray

        if not ray.is_initialized():
            await self._join()
            self._inited = True
        remote = ray.remote(num_cpus=1, max_concurrency=4, scheduling_strategy="SPREAD")(ActorWorker)
        self._actors = [remote.remote() for _ in self.workers]
        starts = [a.start.remote(self.cfg, self.prompts, w.share) for a, w in zip(self._actors, self.workers)]
        loop = asyncio.get_running_loop()
        # bounded: an actor the cluster has no CPU for waits forever, and so would this thread
        placing = loop.run_in_executor(None, functools.partial(ray.get, starts, timeout=PLACE_TIMEOUT_S))
        try:
            placed = await until_stopped(self.stop, placing)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"--ray-address {self.address}: the cluster did not start {len(self.workers)} worker "
                              f"actors (1 CPU each) within {PLACE_TIMEOUT_S:g} s; fewer --workers?") from None
        if placed is None:  # stopped while the actors started: nothing was measured
            raise Interrupted("interrupted while the Ray actors started", EXIT_INTERRUPTED)
        for w, a, (pid, host) in zip(self.workers, self._actors, placed):
            w.tx, w.pid, w.host = _ActorTx(a), pid, host
        self._poller = asyncio.create_task(self._poll())

    async def _join(self) -> None:
        """``ray.init`` on a thread of its own: it blocks (an address that never answers keeps it
        past minutes), and on the event loop it would hold off the signal that stops the run. The
        wait is bounded by --timeout (at most JOIN_TIMEOUT_S) and ends at once on a stop; a join
        given up on is left to its daemon thread."""
        import ray

        loop = asyncio.get_running_loop()
        joined: asyncio.Future[None] = loop.create_future()

        def settle(exc: BaseException | None) -> None:
            if not joined.done():
                joined.set_exception(exc) if exc is not None else joined.set_result(None)

        def target() -> None:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            except BaseException as exc:  # noqa: BLE001 (handed to the loop, said there in one line)
                loop.call_soon_threadsafe(settle, exc)
            else:
                loop.call_soon_threadsafe(settle, None)

        threading.Thread(target=target, name="loadtest-ray-join", daemon=True).start()
        limit_s = min(self.cfg.timeout_s, JOIN_TIMEOUT_S)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            done, _ = await asyncio.wait({joined, stopped}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if self.stop.is_set() and joined not in done:  # a signal: nothing was measured, nothing to wait for
            raise Interrupted(f"interrupted while joining the Ray cluster at {self.address}", EXIT_INTERRUPTED)
        if joined in done:
            exc = joined.exception()
            if exc is not None:  # ConnectionError and friends: one line
                raise ConfigError(f"--ray-address {self.address}: cannot join the Ray cluster: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        else:
            raise ConfigError(f"--ray-address {self.address}: no Ray cluster answered within {limit_s:g} s "
                              "(--timeout); check the address (auto, HOST:PORT or ray://HOST:PORT)")

    async def _poll(self) -> None:
        import ray

        loop = asyncio.get_running_loop()
        while not all(w.closed for w in self.workers):
            live = [(w, a) for w, a in zip(self.workers, self._actors) if not w.closed]
            refs = [a.poll.remote() for _, a in live]
            for (w, _), ref in zip(live, refs):
                try:
                    batch, code = await loop.run_in_executor(None, ray.get, ref)
                except Exception as exc:  # RayActorError: the actor (or its node) is gone
                    w.error = w.error or f"Ray actor lost: {type(exc).__name__}"
                    self._close(w, code=None)
                    continue
                for message in batch:
                    self._handle(w, message)
                self._fh.flush()
                if code is not None:
                    self._close(w, code=code)
            await asyncio.sleep(POLL_S)

    async def _cleanup(self) -> None:
        import ray

        if self._poller is not None:
            self._poller.cancel()
        for a in self._actors:
            ray.kill(a)
        if self._inited:
            ray.shutdown()


__all__ = ["RayCoordinator", "Worker"]
