"""One worker of a scaled-out run: the ordinary Run on its share (share.py), streaming every
finished record to the coordinator (workers.py) instead of owning requests.jsonl.

The wire is two one-way byte channels (a multiprocessing pipe each way, or Ray's object store):
a message is one tag byte and a payload. Worker -> coordinator: ``R`` record (its JSON line), ``P`` a record with its chunk texts,
``Y`` ready (connections open, waiting at the start barrier), ``W`` warm-up done, ``D`` done (JSON:
ended, exit code, message, CPU, monitors, lag), ``E`` error (one line; the worker then exits).
Coordinator -> worker: ``G`` go (payload: the start's wall-clock time), ``M`` measured phase may
begin, ``X`` stop (interrupt: in-flight requests are cancelled and recorded as such)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import orjson

from loadtest.config import RunConfig
from loadtest.run.output import RecordWriter
from loadtest.measure import retokenize as refine
from loadtest.prompts.sources import Prompt
from loadtest.measure.record import RequestRecord
from loadtest.redact import redact
from loadtest.scheduler.loops import sleep_until
from loadtest.scaleout.share import Share
from loadtest.scheduler import phases as shaping
from loadtest.eventloop import loop_factory

Send = Callable[[bytes], None]
COORDINATOR_FIELDS = frozenset((
    "started_at", "ended", "model", "clock_origin_ns", "warmup_requests", "resumed", "pieces", "load", "monitors",
    "connections_preopened", "tokenizer", "client_cpu_s", "client_cpu_s_per_1k_tokens", "client_cpu_user_s",
    "client_cpu_system_s", "error", "tokenize_endpoint", "chunk_tokens_refined", "tokenize_to_usage_ratio"))
"""summary.run fields the coordinator makes itself; a worker forwards the others (the sender's facts:
stream_options, continuous usage, provider limits...) from its own summary."""


class StreamingTextLog(refine.TextLog):
    """The chunk texts kept for the post-run /tokenize pass go to the coordinator with their record
    (one ``P`` message: text line, newline, record line), so the merged side file and the merged
    requests.jsonl keep the same order; the coordinator runs the pass. ``count`` stays 0: the
    worker itself never refines its private copy."""

    pending: tuple[int, bytes] | None = None

    def write(self, request_id: int, texts: list[str]) -> None:
        self.pending = (request_id, orjson.dumps({"id": request_id, "texts": texts}))


class StreamingWriter(RecordWriter):
    """RecordWriter's file (the worker's private copy, for its own end-of-run figures) plus each
    record sent to the coordinator the moment it is written."""

    send: Send
    texts: StreamingTextLog | None = None

    def write(self, record: RequestRecord) -> None:
        if record.error is not None:
            record.error = redact(record.error)
        line = record.to_json()
        self._fh.write(line + b"\n")
        self.count += 1
        pending = self.texts.pending if self.texts is not None else None
        if pending is not None and pending[0] == record.id:
            self.texts.pending = None  # type: ignore[union-attr]
            self.send(b"P" + pending[1] + b"\n" + line)
        else:
            self.send(b"R" + line)


class ScaleOut:
    """What the runner needs to run as a worker: the share, the record sink and the barriers."""

    def __init__(self, cfg: RunConfig, share: Share, send: Send) -> None:
        self.share, self.send = share, send
        self.run_shape = share.run_shape
        self.counted_warmup = bool(cfg.warmup) and shaping.separate_warmup(cfg)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.go: asyncio.Future[float] | None = None
        self.measured: asyncio.Event | None = None
        self.on_stop: Callable[[], None] = lambda: None
        self.texts: StreamingTextLog | None = None

    def sink(self, directory: Path) -> RecordWriter:
        writer = StreamingWriter(directory)
        writer.send, writer.texts = self.send, self.texts
        return writer

    def attach(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.go = self.loop.create_future()
        self.measured = asyncio.Event()

    def receive(self, message: bytes) -> None:
        """Called from the reader thread."""
        assert self.loop is not None
        tag, body = message[:1], message[1:]
        if tag == b"G":
            self.loop.call_soon_threadsafe(lambda: self.go.done() or self.go.set_result(float(body)))  # type: ignore[union-attr]
        elif tag == b"M":
            self.loop.call_soon_threadsafe(self.measured.set)  # type: ignore[union-attr]
        else:  # X, or the coordinator gone
            self.loop.call_soon_threadsafe(self.on_stop)

    async def sync(self, point: str) -> None:
        """The barriers. start: report ready, then start at the coordinator's wall-clock instant
        (every worker's run origin within the host clocks' agreement). measured: after a counted
        warm-up, wait until every worker has finished its share of it."""
        assert self.go is not None and self.measured is not None
        if point == "start":
            self.send(b"Y")
            at_wall = await self.go
            await sleep_until(perf_counter_ns() + int(max(0.0, at_wall - time.time()) * 1e9))
        elif point == "measured" and self.counted_warmup:
            self.send(b"W")
            await self.measured.wait()


def run_worker(cfg: RunConfig, prompts: list[Prompt], share: Share, send: Send, recv: Callable[[], bytes]) -> int:
    """Run one worker to the end; every outcome is reported through ``send``. Returns the exit code."""
    from loadtest.run.runner import Run
    from loadtest.tokens import load_tokenizer

    directory = Path(tempfile.mkdtemp(prefix=f"loadtest-worker{share.worker}-"))
    try:
        cfg = replace(cfg, concurrency=share.concurrency, max_concurrency=share.max_concurrency or cfg.max_concurrency,
                      quiet=True, output_dir=directory)
        tokenizer = load_tokenizer(cfg.tokenizer, cfg.model) if cfg.tokenizer else None
        scale = ScaleOut(cfg, share, send)
        run = Run(cfg, prompts, directory=directory, tokenizer=tokenizer, scale_out=scale)
        if run._texts is not None:  # chunk texts for /tokenize: streamed, refined by the coordinator
            run._texts = scale.texts = StreamingTextLog(directory)

        def stop() -> None:
            if not run.stop.is_set():
                run.interrupted = True
                run.stop.set()

        scale.on_stop = stop

        def reader() -> None:
            while True:
                try:
                    msg = recv()
                except (EOFError, OSError):
                    msg = b"X"
                scale.receive(msg)
                if msg[:1] == b"X":
                    return

        async def main() -> Any:
            scale.attach()
            threading.Thread(target=reader, name="loadtest-worker-reader", daemon=True).start()
            return await run.execute()

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(main())
        s = outcome.summary
        send(b"D" + orjson.dumps({
            "ended": s["run"]["ended"], "exit_code": outcome.exit_code, "message": outcome.message,
            "model": s["run"]["model"], "clock_origin_ns": s["run"]["clock_origin_ns"], "client_cpu_s": s["run"]["client_cpu_s"],
            "window_s": s["metrics"]["window_s"], "warmup_requests": s["run"]["warmup_requests"],
            "send_lag_p99_s": (s["metrics"].get("send_lag_s") or {}).get("p99"),
            "event_loop_delay": (s["run"]["monitors"] or {}).get("event_loop_delay"),
            "sender": {k: v for k, v in s["run"].items() if k not in COORDINATOR_FIELDS},
            "pid": os.getpid(), "host": os.uname().nodename,
        }, option=orjson.OPT_SERIALIZE_NUMPY))
        return outcome.exit_code
    except BaseException as exc:  # one line to the coordinator, which names this worker
        send(b"E" + redact(f"{type(exc).__name__}: {exc}").encode())
        return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def process_main(cfg: RunConfig, prompts: list[Prompt], share: Share, rx: Any, tx: Any) -> None:
    """multiprocessing entry point (spawn): pipes as the channels."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's; it sends X
    code = run_worker(cfg, prompts, share, tx.send_bytes, rx.recv_bytes)
    tx.close()
    os._exit(code)  # no lingering threads (the reader waits on the pipe)
