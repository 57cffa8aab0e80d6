"""One worker of a scaled-out run: the ordinary Run on its share (share.py), its hooks pointed at
the coordinator (coordinator.py): every finished record, with its chunk texts when they are to be
counted after the run, streams to the coordinator instead of a requests.jsonl of its own, and the
start and the measured phase wait at the coordinator's barriers. Messages: wire.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from loadtest.config import RunConfig
from loadtest.measure import retokenize
from loadtest.measure.record import RequestRecord
from loadtest.prompts.sources import Prompt
from loadtest.redact import redact
from loadtest.run.hooks import MEASURED, START, Hooks
from loadtest.run.output import RecordWriter
from loadtest.scaleout import wire
from loadtest.scaleout.share import Share
from loadtest.scheduler import phases
from loadtest.scheduler.loops import sleep_until

Send = Callable[[bytes], None]
COORDINATOR_FIELDS = frozenset((
    "started_at", "ended", "model", "clock_origin_ns", "warmup_requests", "resumed", "pieces", "load", "monitors",
    "connections_preopened", "tokenizer", "client_cpu_s", "client_cpu_s_per_1k_tokens", "client_cpu_user_s",
    "client_cpu_system_s", "client_startup_cpu_s", "client_cpu_span_s", "error", "tokenize_endpoint", "chunk_tokens_refined",
    "tokenize_to_usage_ratio"))
"""summary.run fields the coordinator makes itself; a worker forwards the others (the sender's facts:
stream_options, continuous usage, provider limits...) from its own summary."""


class StreamingTextLog(retokenize.TextLog):
    """Chunk texts kept for the post-run /tokenize pass wait here for their record and travel with it
    (one ``P`` message), so the coordinator's merged side file and requests.jsonl keep one order;
    the coordinator runs the pass. ``count`` stays 0: the worker never refines its private copy."""

    pending: tuple[int, list[str]] | None = None

    def write(self, request_id: int, texts: list[str]) -> None:
        self.pending = (request_id, texts)


class StreamingWriter(RecordWriter):
    """RecordWriter's file (the worker's private copy, for its own end-of-run figures) plus each
    record sent to the coordinator the moment it is written."""

    def __init__(self, directory: Path, send: Send, texts: StreamingTextLog | None) -> None:
        super().__init__(directory)
        self.send, self.texts = send, texts

    def write(self, record: RequestRecord) -> None:
        if record.error is not None:
            record.error = redact(record.error)
        line = record.to_json()
        self._append(line + b"\n")
        pending = self.texts.pending if self.texts is not None else None
        if pending is not None and pending[0] == record.id:
            self.texts.pending = None  # type: ignore[union-attr]
            self.send(wire.record_with_texts(pending[0], pending[1], line))
        else:
            self.send(wire.record(line))


class WorkerHooks(Hooks):
    """The run's hooks in a worker: records and chunk texts to the coordinator, only this share of
    the load shape, and the coordinator's barriers, listening to the coordinator from ``open``."""

    samples_server = False

    def __init__(self, cfg: RunConfig, share: Share, send: Send, recv: Callable[[], bytes]) -> None:
        self.share, self.send, self.recv = share, send, recv
        self.counted_warmup = bool(cfg.warmup) and phases.separate_warmup(cfg)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.go: asyncio.Future[float] | None = None
        self.measured: asyncio.Event | None = None
        self.on_stop: Callable[[], None] = lambda: None
        self.texts: StreamingTextLog | None = None

    def record_writer(self, directory: Path) -> RecordWriter:
        return StreamingWriter(directory, self.send, self.texts)

    def text_log(self, directory: Path, cfg: RunConfig, tokenizer_given: bool) -> retokenize.TextLog | None:
        if retokenize.text_log(directory, cfg.stream, tokenizer_given) is None:
            return None
        self.texts = StreamingTextLog(directory)
        return self.texts

    async def run_shape(self, cfg: RunConfig, job: phases.Job, **kwargs: Any) -> str:
        """This share of the shape; each start is told to the coordinator (one tag byte) before the
        request goes out, so that if this process dies the requests it had in flight are counted as
        lost, not silently missing."""
        send = self.send

        async def counted(index: int, scheduled_ns: int | None, queue_ns: int) -> None:
            send(wire.STARTED)
            await job(index, scheduled_ns, queue_ns)

        return await self.share.run_shape(cfg, counted, **kwargs)

    async def open(self) -> None:
        """Listen to the coordinator from here on (a reader thread: the pipe's reads block)."""
        self.loop = asyncio.get_running_loop()
        self.go = self.loop.create_future()
        self.measured = asyncio.Event()
        threading.Thread(target=self._read, name="loadtest-worker-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self.recv()
            except (EOFError, OSError):
                message = wire.STOP
            self.receive(message)
            if message[:1] == wire.STOP:
                return

    def receive(self, message: bytes) -> None:
        """Called from the reader thread."""
        assert self.loop is not None
        tag, body = wire.split(message)
        if tag == wire.GO:
            self.loop.call_soon_threadsafe(lambda: self.go.done() or self.go.set_result(float(body)))  # type: ignore[union-attr]
        elif tag == wire.MEASURED:
            self.loop.call_soon_threadsafe(self.measured.set)  # type: ignore[union-attr]
        else:  # STOP, or the coordinator gone
            self.loop.call_soon_threadsafe(self.on_stop)

    async def barrier(self, point: str) -> None:
        """START: report ready, then start at the coordinator's wall-clock instant (every worker's
        run origin within the host clocks' agreement). MEASURED: after a counted warm-up, wait until
        every worker has finished its share of it."""
        assert self.go is not None and self.measured is not None
        if point == START:
            self.send(wire.READY)
            at_wall = await self.go
            await sleep_until(perf_counter_ns() + int(max(0.0, at_wall - time.time()) * 1e9))
        elif point == MEASURED and self.counted_warmup:
            self.send(wire.WARM)
            await self.measured.wait()


def done_info(outcome: Any) -> dict[str, Any]:
    """What the coordinator needs of a worker's own outcome (the ``D`` message)."""
    s = outcome.summary
    return {
        "ended": s["run"]["ended"], "exit_code": outcome.exit_code, "message": outcome.message,
        "model": s["run"]["model"], "clock_origin_ns": s["run"]["clock_origin_ns"],
        "connections_preopened": s["run"]["connections_preopened"],
        "client_cpu_s": s["run"]["client_cpu_s"], "client_startup_cpu_s": s["run"]["client_startup_cpu_s"],
        "client_cpu_span_s": s["run"].get("client_cpu_span_s"), "schedule": s.get("schedule"),
        "window_s": s["metrics"]["window_s"], "warmup_requests": s["run"]["warmup_requests"],
        "send_lag_p99_s": (s["metrics"].get("send_lag_s") or {}).get("p99"),
        "event_loop_delay": (s["run"]["monitors"] or {}).get("event_loop_delay"),
        "sender": {k: v for k, v in s["run"].items() if k not in COORDINATOR_FIELDS},
        "pid": os.getpid(), "host": os.uname().nodename,
    }


def run_worker(cfg: RunConfig, prompts: list[Prompt], share: Share, send: Send, recv: Callable[[], bytes]) -> int:
    """Run one worker to the end; every outcome is reported through ``send``. Returns the exit code."""
    from loadtest.run.execute import execute
    from loadtest.run.runner import Run
    from loadtest.tokens import load_tokenizer

    directory = Path(tempfile.mkdtemp(prefix=f"loadtest-worker{share.worker}-"))
    try:
        cfg = replace(cfg, concurrency=share.concurrency, max_concurrency=share.max_concurrency or cfg.max_concurrency,
                      quiet=True, output_dir=directory)
        tokenizer = load_tokenizer(cfg.tokenizer, cfg.model) if cfg.tokenizer else None
        hooks = WorkerHooks(cfg, share, send, recv)
        run = Run(cfg, prompts, directory=directory, tokenizer=tokenizer, hooks=hooks)

        def stop() -> None:
            if not run.stop.is_set():
                run.interrupted = True
                run.stop.set()

        hooks.on_stop = stop
        outcome = execute(run, handle_signals=False)  # the coordinator owns the signals
        send(wire.done(done_info(outcome)))
        return outcome.exit_code
    except BaseException as exc:  # one line to the coordinator, which names this worker
        send(wire.error(redact(f"{type(exc).__name__}: {exc}")))
        return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def process_main(cfg: RunConfig, prompts: list[Prompt], share: Share, rx: Any, tx: Any) -> None:
    """multiprocessing entry point (spawn): pipes as the channels."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's; it sends STOP
    code = run_worker(cfg, prompts, share, tx.send_bytes, rx.recv_bytes)
    tx.close()
    os._exit(code)  # no lingering threads (the reader waits on the pipe)
