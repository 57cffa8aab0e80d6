"""One run, wired stage by stage: prompts -> payloads (client) -> scheduler -> transport ->
record (measure) -> metrics -> output. The only module that knows all the stages; what is around
the run (its own files, or a scale-out coordinator) comes in through ``Hooks`` (hooks.py), and how
it ends is decided by outcome.py."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from loadtest.client.abandon import abandonment
from loadtest.client.aborts import abort_message
from loadtest.client.auth import auth_hint, build_auth, open_transport
from loadtest.client.discovery import discover_model
from loadtest.client.payloads import base_body
from loadtest.client.sender import Sender
from loadtest.client.tokenize import refine_records
from loadtest.config import RunConfig
from loadtest.judge.monitors import RunMonitor
from loadtest.measure.media import note_media
from loadtest.measure.metrics import compute_metrics, load_columns
from loadtest.measure.pooling import PooledRequest, pooled_record
from loadtest.measure.record import (
    ABANDONED, CANCELLED, OnReply, RequestRecord, asked, build_record, cancelled_record, take_attempts)
from loadtest.prompts.attach import media_numbers, with_media
from loadtest.prompts.order import PromptOrder
from loadtest.prompts.sources import Prompt
from loadtest.run import live
from loadtest.run import resume as resuming
from loadtest.run.clientcpu import ClientCpu
from loadtest.run.execute import remove_unmeasured
from loadtest.run.gctimer import collect_garbage
from loadtest.run.hooks import MEASURED, START, Hooks
from loadtest.run.livestats import LiveStats
from loadtest.run.outcome import RunOutcome, conclude, run_block, timestamp
from loadtest.run.output import RecordWriter, WriteFailed, client_info, write_failure_line
from loadtest.run.serverside import ServerSide
from loadtest.run.sessions import SessionLoop, stride
from loadtest.run.tracehold import trace_hold
from loadtest.scheduler import phases
from loadtest.scheduler.loops import until_stopped
from loadtest.tokens import Tokenizer
from loadtest.transport import Exchange, Transport
from loadtest.transport.base import CONNECT, response_limits


class Run:
    """``stop`` ends the run early (set by a signal, an abort, a coordinator); ``interrupted`` says
    a signal or a coordinator asked (the outcome is then 130). ``stop_on_failure``: the first
    failed measured request ends the run (a prefill/decode scenario that failed once has failed)."""

    def __init__(self, cfg: RunConfig, prompts: list[Prompt], *, directory: Path,
                 tokenizer: Tokenizer | None = None,
                 server_info: Callable[[], dict[str, Any] | None] | None = None, resume: bool = False,
                 hooks: Hooks | None = None, stop_on_failure: bool = False) -> None:
        prompts = with_media(cfg, prompts)  # images and audio, made now, before the run (prompts/attach.py)
        self._media = media_numbers(prompts)  # prompt id -> what its records say it carried
        self.cfg = cfg
        self.hooks = hooks or Hooks()
        self.stop_on_failure = stop_on_failure
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
        self._texts = self.hooks.text_log(directory, cfg, tokenizer is not None)
        # A trace's rows go in the trace's order, each once; any other source in the seeded order.
        self._order: PromptOrder | list[Prompt] = prompts if cfg.trace is not None else PromptOrder(prompts, cfg.seed)
        self._any_ok = False
        self._preopened = False  # every connection asked for opened before the run (summary: run)
        self._early_failures: list[RequestRecord] = []
        self._connect_streak = 0
        self._measured_done = 0
        self._abort: RequestRecord | None = None
        self._abort_reason: str | None = None
        self._unwritten = 0  # records that came after a failed write (disk full): not in the file
        self._t0_ns = 0
        self._transport: Transport | None = None
        self._writer: RecordWriter | None = None
        self._model: str | None = cfg.model
        self._base: dict[str, Any] = {}
        # Finished exchanges wait here to be interpreted, one per event-loop turn (see _process).
        self._pending: deque[tuple[Exchange, int, Prompt, bool, tuple[Any, Any, str]]] = deque()
        self._phases = phases.Phases.of(cfg)
        self._phase_t0_ns = 0
        self.live = LiveStats()
        self._pending_ready = asyncio.Event()
        self._backlog = phases.backlog(cfg)  # an open loop's waiting starts and what became of them
        self._abandon_after = abandonment(cfg)  # request index -> --cancel-after, or None (client/abandon.py)
        self._sessions: SessionLoop | None = None  # made with the sender (execute) when the jobs are sessions
        # A trace whose rows share session_ids: its sessions run in the session loop beside its loose rows,
        # whose record ids then step by the most turns as a session's do (no two records share an id).
        self._trace_sessions = cfg.trace is not None and any(p.turns is not None for p in prompts)
        self._id_stride = stride(prompts) if self._trace_sessions else 1

    @property
    def measuring(self) -> bool:
        """A request was sent (or a resumed run holds earlier ones): a stop has records to write."""
        return self.resume or self.live.sent > 0

    # -- one request ----------------------------------------------------------------------
    async def _job(self, i: int, scheduled_ns: int | None = None, queue_ns: int = 0) -> None:
        prompt = self._order[i]
        t_start = perf_counter_ns()
        phase = self._phases.phase(i, ((scheduled_ns or t_start) - self._phase_t0_ns) / 1e9)
        warmup = phase != phases.MEASURED
        sched = (None if scheduled_ns is None else (scheduled_ns - self._t0_ns) / 1e9,
                 None if scheduled_ns is None else queue_ns / 1e9, phase)
        if self._sessions is not None and (self.cfg.sessions or prompt.turns is not None):
            await self._sessions.run(i, prompt, sched, warmup)  # a session: its turns one after another
            return
        rid = i * self._id_stride
        self.live.sent += 1
        try:
            # budgets, 429 retries, dialect fallbacks; the seeded share of --cancel-rate is let go on time
            ex = await self._sender.send(prompt, self._base, self._abandon_after(i))
        except asyncio.CancelledError as exc:
            rec = cancelled_record(request_id=rid, prompt_id=prompt.id, t_start_ns=t_start,
                                   run_t0_ns=self._t0_ns, warmup=warmup, reason="run stopped while in flight")
            take_attempts(rec, getattr(exc, "attempt_info", None))  # stopped during a retry wait: its 429s
            rec.scheduled_s, rec.queue_s, rec.phase = sched
            rec.max_tokens = prompt.max_tokens
            self._emit(rec)
            raise
        if (ex.error_kind is not None and ex.error_kind != ABANDONED) or (ex.status or 0) >= 400:
            self._interpret((ex, rid, prompt, warmup, sched))  # cheap, and abort detection must not lag
            return
        self._pending.append((ex, rid, prompt, warmup, sched))
        self._pending_ready.set()

    def _record(self, ex: Exchange, i: int, prompt_id: str, warmup: bool,
                on_reply: OnReply | None = None, prompt: Prompt | None = None) -> RequestRecord:
        if self.cfg.pooled and prompt is not None:  # embeddings, rerank: one JSON answer (measure/pooling.py)
            return pooled_record(ex, PooledRequest(self.cfg.api, prompt.text, prompt.inputs or (prompt.text,)),
                                 request_id=i, prompt_id=prompt_id, run_t0_ns=self._t0_ns, tokenizer=self.tokenizer,
                                 warmup=warmup)
        return build_record(ex, request_id=i, prompt_id=prompt_id, run_t0_ns=self._t0_ns, stream=self.cfg.stream,
                            tokenizer=self.tokenizer, warmup=warmup,
                            keep_texts=self._texts.write if self._texts is not None else None, on_reply=on_reply)

    def _session_loop(self, ids_per_session: int) -> SessionLoop:
        """The session loop's view of the run: send a turn, interpret it at once (the next turn
        needs its reply), write its record."""
        async def send(prompt: Prompt, headers: dict[str, str] | None, session: str) -> Exchange:
            self.live.sent += 1
            return await self._sender.send(prompt, self._base, None, headers, session)

        def cancelled(rid: int, prompt_id: str, warmup: bool, t_start_ns: int) -> RequestRecord:
            return cancelled_record(request_id=rid, prompt_id=prompt_id, t_start_ns=t_start_ns,
                                    run_t0_ns=self._t0_ns, warmup=warmup, reason="run stopped while in flight")

        def release(session: str) -> None:
            if self._transport is not None:
                self._transport.release(session)

        hold = trace_hold(lambda: self._t0_ns) if self._trace_sessions else None
        return SessionLoop(self.cfg, send, self._record, cancelled, self._emit, self.stop, ids_per_session, release,
                           hold=hold)

    def _interpret(self, item: tuple[Exchange, int, Prompt, bool, tuple[Any, Any, str]]) -> None:
        ex, i, prompt, warmup, sched = item
        rec = self._record(ex, i, prompt.id, warmup, prompt=prompt)
        rec.scheduled_s, rec.queue_s, rec.phase = sched
        if prompt.id in self._media:
            note_media(rec, *self._media[prompt.id])
        if self.cfg.trace is not None:
            asked(rec, self._order[i // self._id_stride].max_tokens)
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
        try:
            self._writer.write(rec)
        except WriteFailed:  # disk full: the run stops; the file keeps whole records only
            self._unwritten += 1
            self.stop.set()
            return
        self.live.add(rec)
        if not rec.warmup:
            self._measured_done += 1
            if not rec.ok and self.stop_on_failure and rec.error_kind != ABANDONED:
                self.stop.set()
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
        if rec.error_kind in (CANCELLED, ABANDONED) or self._abort is not None:
            return  # neither says anything about the server: no abort
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
        await self.hooks.open()
        self._transport = open_transport(cfg, phases.connections(cfg))
        # (an embeddings or rerank answer is one JSON body bounded by its request: no runaway limit)
        self._transport.limits = None if cfg.pooled else response_limits(cfg.max_tokens)
        self._sender = Sender(cfg, self._transport, note=self._note, tokenizer=self.tokenizer)
        if cfg.sessions or self._trace_sessions:
            self._sessions = self._session_loop(stride(self.prompts))
        plan = resuming.plan_resume(self.directory, cfg) if self.resume else resuming.start(self.directory, cfg)
        self._writer = self.hooks.record_writer(self.directory)
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
        duration_s = plan.remaining_s if plan.remaining_s is not None else cfg.duration_s
        cpu = ClientCpu()
        monitored: dict[str, Any] | None = None
        monitor = RunMonitor(cfg.base_url).start()
        server_side = ServerSide(cfg if self.hooks.samples_server else replace(cfg, server_metrics=()),
                                 self.directory, self.live)
        server_side.start()  # a child process: its first samples come while the run gets ready
        empty = False
        try:
            if self._model is None:
                self._model = await until_stopped(self.stop, discover_model(
                    self._transport, cfg.base_url, min(10.0, cfg.timeout_s), hint=auth_hint(cfg)))
            if not self.stop.is_set():
                self._base = base_body(cfg, self._model)  # type: ignore[arg-type]
                if cfg.preconnect:
                    self._preopened = bool(await until_stopped(self.stop, self._transport.preconnect(
                        phases.connections(cfg), phases.preconnect_s(cfg, duration_s))))
            if not cfg.quiet and not self.stop.is_set():
                total = len(plan.todo) if plan.todo is not None else cfg.num_prompts
                progress = asyncio.create_task(live.show(self.live, cfg.command, total=total if cfg.duration_s is None
                                                         else None, duration_s=self._phases.total_s()))
            if not self.stop.is_set():
                await until_stopped(self.stop, self.hooks.barrier(START))
            self._t0_ns = perf_counter_ns()
            server_side.set_origin(self._t0_ns)
            if cfg.warmup and phases.separate_warmup(cfg) and not self.resume and not self.stop.is_set():
                ended = await self._schedule(count=cfg.warmup, deadline_ns=None)
                self._drain()
            if not self.stop.is_set():
                await until_stopped(self.stop, self.hooks.barrier(MEASURED))
            if not self.stop.is_set():
                await server_side.ready()
            if not self.stop.is_set():
                monitor.begin()
                measured_t0 = self._phase_t0_ns = perf_counter_ns()
                cpu.begin()
                deadline = phases.run_deadline_ns(cfg, measured_t0, duration_s)
                if plan.todo is not None:  # resumed: only the prompts not done yet, by their own ids
                    todo = plan.todo
                    ended = await self._schedule(lambda k, *a: self._job(todo[k], *a), count=len(todo))
                else:
                    ended = await self._schedule(count=cfg.num_prompts if deadline is None else None,
                                                 deadline_ns=deadline, first_index=plan.next_index, with_warmup=True)
                self._drain()  # interpreting the records is part of the client's cost
                monitored = monitor.stop()
                cpu.end()
                await server_side.stop(final=not self.interrupted and self._abort is None)
        except BaseException:
            if self._texts is not None:
                self._texts.discard()
            empty = not self.resume and self._writer.count == 0
            raise
        finally:
            if monitored is None:
                monitor.stop()
            server_side.stop_now()
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
            if empty:  # a failed start leaves no empty run behind (the scraper stopped first: its file too)
                remove_unmeasured(self.directory)

        if self._abort is not None or self._writer.failed is not None:
            ended = "aborted"
        elif self.interrupted:
            ended = "interrupted"
        window_s = duration_s if ended == "deadline" and duration_s else self._window_s()
        pieces = [*plan.pieces, {"started_at": timestamp(started_at), "ended": ended, "window_s": window_s,
                                 "requests": self._measured_done}]
        if plan.pieces:
            windows = [p["window_s"] for p in pieces if p["window_s"] is not None]
            window_s = sum(windows) if windows else None
        # After the measured window (never during it): exact tokens per chunk from the server's /tokenize.
        chunk_info = await refine_records(self._texts, self._writer.path, base_url=cfg.base_url, model=self._model,
                                          headers=build_auth(cfg).headers,
                                          stopped=self.interrupted or ended == "aborted")
        # The statistics come from the records file in one streaming pass (bounded memory; a
        # post-run pass that rewrites the file composes with it).
        result = compute_metrics(load_columns(self._writer.path), window_s=window_s)
        run = run_block(cfg, started_at=pieces[0]["started_at"], ended=ended, model=self._model,
                        clock_origin_ns=self._t0_ns, warmup_requests=self._warmup_count, pieces=pieces,
                        monitors=monitored, sender=self._sender.run_info(), chunk_info=chunk_info,
                        tokenizer=self.tokenizer.name if self.tokenizer else None, cpu_s=cpu.cpu_s,
                        cpu_split=cpu.split, completion_tokens=result["metrics"]["completion_tokens_total"],
                        startup_cpu_s=cpu.startup_s, preopened=self._preopened, cpu_span_s=cpu.span_s)
        abort = None
        if self._writer.failed is not None:
            abort = write_failure_line(self._writer.path, self._writer.failed, self._writer.count) + (
                f" ({self._unwritten} from it on were not written)" if self._unwritten else "")
        elif self._abort is not None:
            abort = await abort_message(cfg, self._abort, reason=self._abort_reason, ok_count=self._ok_count,
                                        model=self._model, directory=self.directory, failures=len(self._early_failures))
        return conclude(cfg, self.directory, result=result, run=run,
                        client=client_info(cfg.transport, type(asyncio.get_running_loop()).__module__),
                        server=self.server_info() if self.server_info else None, abort=abort,
                        interrupted=self.interrupted, duration_s=duration_s,
                        extra={"schedule": phases.schedule_block(cfg, [self._backlog]),
                               "server_metrics": server_side.block(self._writer.path, begin_s=self._span_start,
                                                                   end_s=self._span_end)})

    async def _schedule(self, job: phases.Job | None = None, *, count: int | None, deadline_ns: int | None = None,
                        first_index: int = 0, with_warmup: bool = False) -> str:
        return await self.hooks.run_shape(self.cfg, job or self._job, count=count, deadline_ns=deadline_ns,
                                          stop=self.stop, first_index=first_index,
                                          origin_ns=self._phase_t0_ns or perf_counter_ns(),
                                          with_warmup=with_warmup and not self.resume, held=self._backlog)

    def _window_s(self) -> float | None:
        """First measured start to last measured end of this run (None when nothing finished)."""
        if self._span_end is None or self._span_start is None:
            return None
        return self._span_end - self._span_start
