"""One run, wired stage by stage: prompts -> payloads -> scheduler -> transport -> record ->
metrics -> output. The only module that knows all the stages."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

try:
    import resource
except ImportError:  # Windows: the CPU split is then not measured
    resource = None  # type: ignore[assignment]

from loadtest.config import RunConfig
from loadtest.measure.metrics import compute_metrics, load_columns
from loadtest.run.output import RecordWriter, build_summary, client_info, write_summary
from loadtest.redact import redact
from loadtest.run import resume as resuming
from loadtest.client.payloads import base_body
from loadtest.prompts.sources import Prompt
from loadtest.prompts.order import PromptOrder
from loadtest.client.aborts import abort_message
from loadtest.client.discovery import discover_model
from loadtest.measure import retokenize as refine
from loadtest.measure.record import CANCELLED, RequestRecord, build_record, cancelled_record
from loadtest.scheduler.loops import until_stopped
from loadtest.scheduler import phases as shaping
from loadtest.judge.monitors import RunMonitor
from loadtest.run import live
from loadtest.run.livestats import LiveStats
from loadtest.run.gctimer import collect_garbage
from loadtest.tokens import Tokenizer
from loadtest.transport import Exchange, Transport
from loadtest.client.auth import build_auth, open_transport
from loadtest.client.sender import Sender
from loadtest.transport.base import CONNECT, response_limits

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 130


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    directory: Path
    exit_code: int
    message: str | None


def _rusage() -> Any:
    return resource.getrusage(resource.RUSAGE_SELF) if resource is not None else None


def _cpu_split(before: Any, after: Any) -> tuple[float, float] | None:
    """(user, system) CPU seconds between two rusage samples. The system share is mostly the
    kernel's per-token socket reads: what no user-space speed-up can remove."""
    if before is None or after is None:
        return None
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


class Run:
    def __init__(self, cfg: RunConfig, prompts: list[Prompt], *, directory: Path,
                 tokenizer: Tokenizer | None = None,
                 server_info: Callable[[], dict[str, Any] | None] | None = None, resume: bool = False,
                 scale_out: Any = None) -> None:
        self.cfg = cfg
        self.scale_out = scale_out  # a worker's share, record sink and barriers (worker_main.py)
        self.prompts = prompts
        self.directory = directory
        self.tokenizer = tokenizer
        self.server_info = server_info
        self.stop = asyncio.Event()
        self.interrupted = False
        self.resume = resume
        self._ok_count = 0
        self._warmup_count = 0
        self._span_start: float | None = None  # this run's measured first start and last end (_window_s)
        self._span_end: float | None = None
        self._sender: Sender = None  # type: ignore[assignment]  # made with the transport (execute)
        # chunk texts whose token counts are estimated, to count exactly after the run
        self._texts = refine.text_log(directory, cfg.stream, tokenizer is not None)
        self._order = PromptOrder(prompts, cfg.seed)
        self._any_ok = False
        self._early_failures: list[RequestRecord] = []
        self._connect_streak = 0
        self._measured_done = 0
        self._measured_failed = 0
        self._abort: RequestRecord | None = None
        self._abort_reason: str | None = None
        self._t0_ns = 0
        self._transport: Transport | None = None
        self._writer: RecordWriter | None = None
        self._model: str | None = cfg.model
        self._base: dict[str, Any] = {}
        # Finished exchanges wait here to be interpreted, one per event-loop turn (see _process).
        self._pending: deque[tuple[Exchange, int, str, bool, tuple[Any, Any, str]]] = deque()
        self._phases = shaping.Phases.of(cfg)
        self._phase_t0_ns = 0
        self.live = LiveStats()
        self._pending_ready = asyncio.Event()

    # -- one request ----------------------------------------------------------------------
    async def _job(self, i: int, scheduled_ns: int | None = None, queue_ns: int = 0) -> None:
        cfg = self.cfg
        prompt = self._order[i]
        t_start = perf_counter_ns()
        self.live.sent += 1
        phase = self._phases.phase(i, ((scheduled_ns or t_start) - self._phase_t0_ns) / 1e9)
        warmup = phase != shaping.MEASURED
        sched = (None if scheduled_ns is None else (scheduled_ns - self._t0_ns) / 1e9,
                 None if scheduled_ns is None else queue_ns / 1e9, phase)
        try:
            ex = await self._sender.send(prompt, self._base)  # budgets, 429 retries, dialect fallbacks
        except asyncio.CancelledError:
            rec = cancelled_record(request_id=i, prompt_id=prompt.id, t_start_ns=t_start,
                                   run_t0_ns=self._t0_ns, warmup=warmup, reason="run stopped while in flight")
            rec.scheduled_s, rec.queue_s, rec.phase = sched
            self._emit(rec)
            raise
        if ex.error_kind is not None or (ex.status or 0) >= 400:
            self._interpret((ex, i, prompt.id, warmup, sched))  # cheap, and abort detection must not lag
            return
        self._pending.append((ex, i, prompt.id, warmup, sched))
        self._pending_ready.set()

    def _interpret(self, item: tuple[Exchange, int, str, bool, tuple[Any, Any, str]]) -> None:
        ex, i, prompt_id, warmup, sched = item
        rec = build_record(ex, request_id=i, prompt_id=prompt_id, run_t0_ns=self._t0_ns, stream=self.cfg.stream,
                           tokenizer=self.tokenizer, warmup=warmup,
                           keep_texts=self._texts.write if self._texts is not None else None)
        rec.scheduled_s, rec.queue_s, rec.phase = sched
        self._emit(rec)

    async def _process(self) -> None:
        """Interpret finished exchanges one per event-loop turn, after the job has already sent its
        next request. When many requests finish together (fixed output lengths keep a closed loop
        in lock-step), interpreting them back to back would hold up the arrival stamps of every
        other stream for the whole batch; this way a stamp waits at most for one record."""
        while True:
            while self._pending:
                self._interpret(self._pending.popleft())
                await asyncio.sleep(0)
            self._pending_ready.clear()
            await self._pending_ready.wait()

    def _drain(self) -> None:
        while self._pending:
            self._interpret(self._pending.popleft())

    def _emit(self, rec: RequestRecord) -> None:
        assert self._writer is not None
        self._writer.write(rec)
        self.live.add(rec)
        if not rec.warmup:
            self._measured_done += 1
            self._measured_failed += not rec.ok
            if self._span_start is None or rec.start_s < self._span_start:
                self._span_start = rec.start_s
            if rec.end_s is not None and (self._span_end is None or rec.end_s > self._span_end):
                self._span_end = rec.end_s
        else:
            self._warmup_count += 1
        if rec.ok:
            self._ok_count += 1
            self._any_ok = True
            self._connect_streak = 0
            return
        if rec.error_kind == CANCELLED or self._abort is not None:
            return
        if not self._any_ok:
            self._early_failures.append(rec)
            n = len(self._early_failures)
            if n >= self._abort_threshold and len({r.error_kind for r in self._early_failures}) == 1:
                self._abort, self._abort_reason = rec, "first_requests_failed"
                self.stop.set()
        self._connect_streak = self._connect_streak + 1 if rec.error_kind == CONNECT else 0
        if self._any_ok and self._connect_streak >= 3:
            self._abort, self._abort_reason = rec, "server_gone"
            self.stop.set()

    @property
    def _abort_threshold(self) -> int:
        total = (self.cfg.num_prompts or 3) + self.cfg.warmup if self.cfg.duration_s is None else 3
        return max(1, min(3, total))

    def _note(self, text: str) -> None:
        if not self.cfg.quiet:
            print(f"\nloadtest: {text}", file=sys.stderr, flush=True)

    # -- the run --------------------------------------------------------------------------
    async def execute(self) -> RunOutcome:
        cfg = self.cfg
        self._transport = open_transport(cfg, shaping.connections(cfg))
        self._transport.limits = response_limits(cfg.max_tokens)
        self._sender = Sender(cfg, self._transport, note=self._note, tokenizer=self.tokenizer)
        plan = resuming.plan_resume(self.directory, cfg) if self.resume else resuming.start(self.directory, cfg)
        self._writer = (self.scale_out.sink if self.scale_out else RecordWriter)(self.directory)
        started_at = time.time()
        progress: asyncio.Task[None] | None = None
        processor = asyncio.create_task(self._process())
        # Automatic cyclic GC off for the run, a timer collects instead (see gctimer.py).
        gc.collect()
        gc.freeze()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        collector = asyncio.create_task(collect_garbage())
        ended = "done"
        measured_t0 = 0
        duration_s = plan.remaining_s if plan.remaining_s is not None else cfg.duration_s
        cpu_measured = None
        cpu_split: tuple[float, float] | None = None
        monitored: dict[str, Any] | None = None
        monitor = RunMonitor(cfg.base_url).start()
        try:
            if self._model is None:
                self._model = await until_stopped(self.stop, discover_model(self._transport, cfg.base_url))
            if not self.stop.is_set():
                self._base = base_body(cfg, self._model)  # type: ignore[arg-type]
                if cfg.preconnect:
                    await until_stopped(self.stop, self._transport.preconnect(shaping.connections(cfg),
                                                                              min(cfg.timeout_s, 30.0)))
            if not cfg.quiet and not self.stop.is_set():
                total = len(plan.todo) if plan.todo is not None else cfg.num_prompts
                progress = asyncio.create_task(live.show(self.live, cfg.command, total=total if cfg.duration_s is None
                                                         else None, duration_s=self._phases.total_s()))
            if self.scale_out and not self.stop.is_set():
                await until_stopped(self.stop, self.scale_out.sync("start"))  # the coordinator's start barrier
            self._t0_ns = perf_counter_ns()
            if cfg.warmup and shaping.separate_warmup(cfg) and not self.resume and not self.stop.is_set():
                ended = await self._schedule(count=cfg.warmup, deadline_ns=None)
                self._drain()
            if self.scale_out and not self.stop.is_set():
                await until_stopped(self.stop, self.scale_out.sync("measured"))
            if not self.stop.is_set():
                monitor.begin()
                measured_t0 = self._phase_t0_ns = perf_counter_ns()
                cpu0, rusage0 = time.process_time(), _rusage()
                deadline = shaping.run_deadline_ns(cfg, measured_t0, duration_s)
                if plan.todo is not None:  # resumed: only the prompts not done yet, by their own ids
                    todo = plan.todo
                    ended = await self._schedule(lambda k, *a: self._job(todo[k], *a), count=len(todo))
                else:
                    ended = await self._schedule(count=cfg.num_prompts if deadline is None else None,
                                                 deadline_ns=deadline, first_index=plan.next_index, with_warmup=True)
                self._drain()  # interpreting the records is part of the client's cost
                monitored = monitor.stop()
                cpu_measured = time.process_time() - cpu0
                cpu_split = _cpu_split(rusage0, _rusage())
        except BaseException:
            if self._texts is not None:
                self._texts.discard()
            if not self.resume and self._writer.count == 0:
                self._writer.close()
                resuming.remove_empty_run(self.directory)  # a failed start leaves no empty run behind
            raise
        finally:
            if monitored is None:
                monitor.stop()
            processor.cancel()
            collector.cancel()
            self._drain()
            if progress is not None:
                progress.cancel()
            await self._transport.aclose()
            self._writer.close()
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()

        if self._abort is not None:
            ended = "aborted"
        elif self.interrupted:
            ended = "interrupted"
        window_s = duration_s if ended == "deadline" and duration_s else self._window_s()
        piece = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at)), "ended": ended,
                 "window_s": window_s, "requests": self._measured_done}
        pieces = [*plan.pieces, piece]
        if plan.pieces:
            windows = [p["window_s"] for p in pieces if p["window_s"] is not None]
            window_s = sum(windows) if windows else None
        # After the measured window (never during it): exact tokens per chunk from the server's /tokenize.
        chunk_info = await refine.finish(self._texts, self._writer.path, base_url=cfg.base_url, model=self._model,
                                         headers=build_auth(cfg).headers, stopped=self.interrupted or self._abort is not None)
        # The statistics come from the records file in one streaming pass (bounded memory; a
        # post-run pass that rewrites the file composes with it).
        result = compute_metrics(load_columns(self._writer.path), window_s=window_s)
        run_info = {
            "started_at": pieces[0]["started_at"],
            "ended": ended, "model": self._model, "clock_origin_ns": self._t0_ns, "warmup_requests": self._warmup_count,
            "resumed": bool(plan.pieces), "pieces": pieces,
            "load": shaping.describe(cfg), "monitors": monitored,
            **self._sender.run_info(), **chunk_info,
            "connections_preopened": cfg.preconnect and cfg.transport == "fast",
            "tokenizer": self.tokenizer.name if self.tokenizer else None,
            # The client's own cost over the measured phase: known overhead, not a guess.
            "client_cpu_s": cpu_measured,
            "client_cpu_s_per_1k_tokens": (cpu_measured / tokens * 1000
                                           if cpu_measured is not None and (tokens := result["metrics"]["completion_tokens_total"])
                                           else None),
            "client_cpu_user_s": cpu_split[0] if cpu_split else None,
            "client_cpu_system_s": cpu_split[1] if cpu_split else None,
        }
        summary = build_summary(command=cfg.command, config=cfg.to_json(),
                                client=client_info(cfg.transport, type(asyncio.get_running_loop()).__module__),
                                result=result, run=run_info,
                                server=self.server_info() if self.server_info else None)
        message = None
        exit_code = EXIT_OK
        counts = result["counts"]
        if self._abort is not None:
            message = await abort_message(cfg, self._abort, reason=self._abort_reason, ok_count=self._ok_count,
                                          model=self._model, directory=self.directory,
                                          failures=len(self._early_failures))
            exit_code = EXIT_FAILED
        elif self.interrupted:
            exit_code = EXIT_INTERRUPTED
        elif duration_s and counts["requests"] and counts["completed"] == 0 and not result["errors"]:
            message, exit_code = (f"no request completed within --duration {duration_s:g} s ({counts['cancelled']} "
                                  "cancelled at the deadline): nothing was measured; use a longer --duration"), EXIT_FAILED
        elif counts["requests"] and counts["completed"] == 0:
            kinds = ", ".join(f"{k} x{v['count']}" for k, v in result["errors"].items())
            message, exit_code = f"no request succeeded ({kinds})", EXIT_FAILED
        summary["run"]["error"] = redact(message) if message else None
        write_summary(self.directory, summary)
        return RunOutcome(summary, self.directory, exit_code, message)

    async def _schedule(self, job: shaping.Job | None = None, *, count: int | None, deadline_ns: int | None = None,
                        first_index: int = 0, with_warmup: bool = False) -> str:
        run_shape = self.scale_out.run_shape if self.scale_out else shaping.run_shape
        return await run_shape(self.cfg, job or self._job, count=count, deadline_ns=deadline_ns, stop=self.stop,
                                       first_index=first_index, origin_ns=self._phase_t0_ns or perf_counter_ns(),
                                       with_warmup=with_warmup and not self.resume)

    def _window_s(self) -> float | None:
        """First measured start to last measured end of this run (None when nothing finished)."""
        if self._span_end is None or self._span_start is None:
            return None
        return self._span_end - self._span_start
