"""Scale-out (--workers N): the coordinator. It deals the run into shares (share.py), starts one
worker process per share (worker.py, multiprocessing's spawn context), holds the start
barrier, writes every record the workers stream to the one requests.jsonl as it arrives, and
computes the summary from those raw records in one pass: percentiles are exact, never averaged
across workers. A worker that dies is named with its last error; its records stay.

Clocks: every per-request duration is measured inside one worker (monotonic perf_counter);
run-level windows are the coordinator's (its start barrier, the merged records' span, or
--duration). Workers start at one wall-clock instant the coordinator names: on one machine the
same clock; across machines (Ray) the hosts' clock offset only shifts when each worker starts."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from loadtest.client.auth import build_auth
from loadtest.client.tokenize import refine_records
from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.judge.monitors import HostMonitor
from loadtest.measure import retokenize
from loadtest.measure.metrics import compute_metrics, load_columns
from loadtest.prompts.sources import Prompt
from loadtest.redact import redact
from loadtest.run import live
from loadtest.run import resume as resuming
from loadtest.run.livestats import LiveStats
from loadtest.run.outcome import RunOutcome, conclude, run_block, timestamp
from loadtest.run.execute import remove_unmeasured
from loadtest.run.serverside import ServerSide
from loadtest.run.output import client_info
from loadtest.scaleout import wire
from loadtest.scaleout.share import deal
from loadtest.scaleout.workerview import ProcessGroup, Worker, signal_name
from loadtest.scheduler import phases

START_DELAY_S = 0.25
"""How far ahead of "now" the coordinator names the common start instant (covers the go message's trip)."""
READ_BATCH = 512
"""Messages read from one worker per wake-up before the event loop turns to the others."""
CLOCKS = {
    "request_durations": "per request, inside one worker: monotonic perf_counter (ttft_s, e2e_s, itl_s, ...)",
    "run_window": "the coordinator's: --duration, or the merged records' first measured start to last end",
    "start": "one wall-clock instant named by the coordinator after every worker is ready (start barrier); "
             "records' start_s/end_s are seconds from each worker's own start at that instant",
}


class Coordinator:
    """Run-shaped (stop, interrupted, directory, execute), so run/execute.py drives it like a Run."""

    backend = "processes"

    def __init__(self, cfg: RunConfig, prompts: list[Prompt], *, directory: Path, workers: int,
                 on_failure: str = "stop", server_info: Any = None) -> None:
        if cfg.duration_s is None and cfg.num_prompts is None:
            raise ConfigError("--workers needs --num-prompts or --duration")
        try:
            shares = deal(cfg, workers)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.cfg, self.prompts, self.directory = cfg, prompts, directory
        self.on_failure, self.server_info = on_failure, server_info
        self.workers = [Worker(f"w{s.worker}", s) for s in shares]
        self.stop = asyncio.Event()
        self.interrupted = False
        self.failures: list[str] = []
        self.failed: list[dict[str, Any]] = []  # each dead worker: when, why, what it recorded and lost
        self._go_ns: int | None = None  # the common start instant on our perf_counter clock
        self._stopping = False
        self._fh: Any = None
        self._texts: retokenize.TextLog | None = None
        self._all_closed: asyncio.Event | None = None
        self._host = HostMonitor(cfg.base_url)
        self._started = False
        self._go_at: float | None = None  # when the workers start sending (wall clock, as they are told)
        self._measured = False
        self.live = LiveStats()
        self._progress: asyncio.Future[None] | None = None
        self._startup_cpu_s = 0.0  # this process's CPU when the measured phase began
        self._server_side = ServerSide(cfg, directory, self.live)

    # -- messages ---------------------------------------------------------------------------
    @property
    def measuring(self) -> bool:
        """The workers' start time has come (requests may be in flight) or records came: a stop has
        what completed to write. Before (workers starting, a Ray cluster joined) it has nothing."""
        return (self._go_at is not None and time.time() >= self._go_at) or any(w.sent for w in self.workers)

    def _broadcast(self, message: bytes) -> None:
        for w in self.workers:
            if not w.closed and w.tx is not None:  # (a worker that never started has no channel)
                try:
                    w.tx.send_bytes(message)
                except OSError:
                    pass

    def _halt(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._broadcast(wire.STOP)

    def _handle(self, w: Worker, msg: bytes) -> None:
        tag, body = wire.split(msg)
        if tag == wire.STARTED:
            w.started += 1
            return
        if tag == wire.RECORD_WITH_TEXTS:  # chunk texts for the post-run /tokenize pass, then the record
            entry, body = wire.texts_and_record(body)
            if self._texts is not None:
                self._texts.write(entry["id"], entry["texts"])
            tag = wire.RECORD
        if tag == wire.RECORD:
            self._fh.write(body + b"\n")
            rec = w.take(body)
            self.live.sent += 1  # the coordinator sees finishes only: in flight is not shown
            self.live.add(SimpleNamespace(ok=rec["ok"], error_kind=rec.get("error_kind"), ttft_s=rec.get("ttft_s"),
                                          tpot_s=rec.get("tpot_s"),
                                          completion_tokens=rec.get("completion_tokens")))
            return  # records move no barrier
        if tag == wire.READY:
            w.ready = True
        elif tag == wire.WARM:
            w.warm = True
        elif tag == wire.DONE:
            w.done = orjson.loads(body)
        elif tag == wire.ERROR:
            w.error = body.decode(errors="replace")
        self._barriers()

    def _barriers(self) -> None:
        running = [w for w in self.workers if not w.closed]
        if not self._started and running and all(w.ready for w in running):
            self._started = True
            at_wall = self._go_at = time.time() + START_DELAY_S
            self._broadcast(wire.go(at_wall))
            # The workers' records count from that instant: the scraper's clock starts there too.
            self._go_ns = time.perf_counter_ns() + int((at_wall - time.time()) * 1e9)
            self._server_side.set_origin(self._go_ns)
            if not self.cfg.quiet:
                total = None if self.cfg.duration_s else (self.cfg.num_prompts or 0) + self.cfg.warmup
                self._progress = asyncio.ensure_future(live.show(self.live, self.cfg.command, total=total,
                                                                 duration_s=phases.Phases.of(self.cfg).total_s()))
            if not (self.cfg.warmup and phases.separate_warmup(self.cfg)):
                self._begin_measured()
        elif self._started and running and all(w.warm for w in running) and not self._measured:
            self._measured = True
            self._broadcast(wire.MEASURED)
            self._begin_measured()

    def _begin_measured(self) -> None:
        self._host.begin()
        self._startup_cpu_s = time.process_time()

    def _readable(self, w: Worker) -> None:
        try:
            for _ in range(READ_BATCH):  # then the other workers' turn (called again while data waits)
                if not w.rx.poll():
                    break
                self._handle(w, w.rx.recv_bytes())
        except (EOFError, OSError):
            self._close(w)
        self._fh.flush()

    def _close(self, w: Worker, code: Any = None) -> None:
        w.closed = True
        if w.proc is not None:  # a process: its pipe closed when it exited
            asyncio.get_running_loop().remove_reader(w.rx.fileno())
            w.proc.join(timeout=5)
            code, w.pid = w.proc.exitcode, w.proc.pid
        if w.done is None:
            self._died(w, code)
        self._barriers()
        if all(x.closed for x in self.workers):
            assert self._all_closed is not None
            self._all_closed.set()

    def _died(self, w: Worker, code: Any) -> None:
        """A worker ended without its done message: name it at once on the console (the run may go
        on without it), and keep when, why, and how many of its requests were recorded or lost."""
        at_s = (time.perf_counter_ns() - self._go_ns) / 1e9 if self._go_ns is not None else None
        sig = signal_name(code)
        why = redact(w.error or (f"last failed request: {w.last_record_error}" if w.last_record_error
                                 else f"killed by {sig}" if sig else "no error reported"))
        lost = max(0, w.started - w.sent)
        self.failed.append({"name": w.name, "pid": w.pid, "died_at_s": at_s, "exit_code": code, "signal": sig,
                            "reason": why, "started": w.started, "recorded": w.sent, "lost_in_flight": lost})
        when = f"{max(at_s, 0.0):.1f} s into the run" if at_s is not None else "before the run started"
        said = (f"worker {w.name} (pid {w.pid}) died (exit code {code}): {why}; {when}, {w.sent} of its requests "
                f"recorded, {lost} lost in flight")
        self.failures.append(said)
        if self.on_failure == "stop":
            self._halt()  # the run fails with this line (outcome.failure): said once, at its end
        elif alive := sum(not x.closed for x in self.workers):  # said now: the run goes on for a while
            print(f"\nloadtest: {said}; the run goes on with {alive} of {len(self.workers)} workers "
                  "(--on-worker-failure continue): less load than asked from here on", file=sys.stderr, flush=True)

    # -- the run ------------------------------------------------------------------------------
    async def _spawn(self) -> None:
        from loadtest.scaleout.worker import process_main

        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for w in self.workers:
            to_worker_r, to_worker_w = ctx.Pipe(duplex=False)
            from_worker_r, from_worker_w = ctx.Pipe(duplex=False)
            w.proc = ctx.Process(target=process_main, name=f"loadtest-{w.name}", daemon=True,
                                 args=(self.cfg, self.prompts, w.share, to_worker_r, from_worker_w))
            w.proc.start()
            w.pid = w.proc.pid
            to_worker_r.close()
            from_worker_w.close()
            w.rx, w.tx = from_worker_r, to_worker_w
            loop.add_reader(w.rx.fileno(), self._readable, w)

    async def _cleanup(self) -> None:
        """Backend teardown after every worker ended (Ray: the actors)."""

    async def execute(self) -> RunOutcome:
        cfg = self.cfg
        resuming.start(self.directory, cfg)
        self._fh = open(self.directory / "requests.jsonl", "ab")
        self._texts = retokenize.text_log(self.directory, cfg.stream, cfg.tokenizer is not None)
        self._all_closed = asyncio.Event()
        started_at = time.time()
        self._host.start()
        self._server_side.start()  # one scraper for the run, in the coordinator (workers sample nothing)
        watcher: asyncio.Task[None] | None = None
        empty = False
        try:
            await self._spawn()
            try:
                self._host._sampler.me = ProcessGroup([w.pid for w in self.workers if w.pid])  # type: ignore[union-attr]
            except Exception:  # no sampler, or a worker on another host
                pass

            async def watch_stop() -> None:
                await self.stop.wait()
                self._halt()

            watcher = asyncio.create_task(watch_stop())
            await self._all_closed.wait()
            await self._server_side.stop(final=not self.interrupted and not any(
                w.done and w.done["ended"] == "aborted" for w in self.workers))
        except BaseException:
            if self._texts is not None:
                self._texts.discard()
            empty = not self.measuring
            raise
        finally:
            for task in (watcher, self._progress):
                if task is not None:
                    task.cancel()
            self._halt()
            for w in self.workers:
                if w.proc is not None and w.proc.is_alive():
                    w.proc.join(timeout=10)
                    if w.proc.is_alive():
                        w.proc.kill()
            self._fh.close()
            self._server_side.stop_now()
            await self._cleanup()
            if empty:  # a failed start leaves no empty run behind (the scraper stopped first: its file too)
                remove_unmeasured(self.directory)
        host = self._host.stop()
        return await self._finish(started_at, host)

    async def _finish(self, started_at: float, host: Any) -> RunOutcome:
        cfg = self.cfg
        dones = [w.done for w in self.workers if w.done is not None]
        endings = {d["ended"] for d in dones}
        aborted = [d for d in dones if d["ended"] == "aborted"]
        if aborted:
            ended = "aborted"
        elif self.interrupted:
            ended = "interrupted"
        elif self.failures:
            ended = "worker_failed" if self.on_failure == "stop" else (endings - {"interrupted"} or {"done"}).pop()
        else:
            ended = "deadline" if "deadline" in endings else (endings.pop() if len(endings) == 1 else "done")
        spans = [w.span for w in self.workers if w.span]
        window_s = (cfg.duration_s if ended == "deadline" and cfg.duration_s
                    else (max(s[1] for s in spans) - min(s[0] for s in spans) if spans else None))
        model = next((d["model"] for d in dones if d.get("model")), cfg.model)
        # After the run (never during it): exact tokens per chunk from the server's /tokenize, as one process does.
        chunk_info = await refine_records(self._texts, self.directory / "requests.jsonl", base_url=cfg.base_url,
                                          model=model, headers=build_auth(cfg).headers,
                                          stopped=ended in ("aborted", "interrupted", "worker_failed"))
        result = compute_metrics(load_columns(self.directory / "requests.jsonl"), window_s=window_s)
        cpu = [d["client_cpu_s"] for d in dones if d.get("client_cpu_s") is not None]
        cpu_spans = [d["client_cpu_span_s"] for d in dones if d.get("client_cpu_span_s") is not None]
        startup = [d["client_startup_cpu_s"] for d in dones if d.get("client_startup_cpu_s") is not None]
        delays = [d["event_loop_delay"] for d in dones if d.get("event_loop_delay")]
        worst = max(delays, key=lambda d: d.get("p99_s") or 0.0) if delays else None
        run = run_block(cfg, started_at=timestamp(started_at), ended=ended, model=model, clock_origin_ns=None,
                        warmup_requests=sum(d.get("warmup_requests") or 0 for d in dones),
                        pieces=[{"started_at": timestamp(started_at), "ended": ended, "window_s": window_s,
                                 "requests": result["counts"]["requests"]}],
                        monitors={"host_cpu": host, "event_loop_delay": worst},
                        sender=dones[0]["sender"] if dones else {}, chunk_info=chunk_info, tokenizer=cfg.tokenizer,
                        cpu_s=sum(cpu) if cpu else None, cpu_split=None,
                        completion_tokens=result["metrics"]["completion_tokens_total"],
                        preopened=bool(dones) and all(d.get("connections_preopened") for d in dones),
                        # the workers' own start-up (spawned interpreters, imports, connections) and ours
                        startup_cpu_s=sum(startup) + self._startup_cpu_s if startup else None,
                        cpu_span_s=max(cpu_spans) if cpu_spans else None)
        run["scale_out"] = {"workers": len(self.workers), "backend": self.backend, "on_worker_failure": self.on_failure,
                            "worker_failures": self.failures, "failed": self.failed, "clocks": CLOCKS}
        run["workers"] = [self._worker_row(w) for w in self.workers]
        abort = aborted[0]["message"] if aborted else None
        stopped_by = (self.failures[0] + " (--on-worker-failure stop: the others were stopped)"
                      if self.failures and self.on_failure == "stop" else None)
        return conclude(cfg, self.directory, result=result, run=run,
                        client=client_info(cfg.transport, f"scale-out ({self.backend})"),
                        server=self.server_info() if self.server_info else None, abort=abort,
                        interrupted=self.interrupted, worker_failure=stopped_by, duration_s=cfg.duration_s,
                        extra={"schedule": phases.schedule_block(cfg, [phases.backlog_of(d["schedule"]) for d in dones
                                                                       if d.get("schedule")]),
                               "server_metrics": self._server_side.block(
                            self.directory / "requests.jsonl", begin_s=min(s[0] for s in spans) if spans else None,
                            end_s=max(s[1] for s in spans) if spans else None)})

    def _worker_row(self, w: Worker) -> dict[str, Any]:
        """One worker in summary.run.workers."""
        done = w.done or {}
        return {
            "name": w.name, "pid": w.pid or done.get("pid"), "host": w.host or done.get("host"),
            "concurrency": w.share.concurrency if self.cfg.request_rate is None else None,
            "scheduled": len(w.share.offsets) if self.cfg.request_rate is not None else None,
            "max_concurrency": w.share.max_concurrency, "sent": w.sent, "completed": w.completed, "failed": w.failed,
            "lost_in_flight": max(0, w.started - w.sent) if w.done is None else 0,
            "ended": done.get("ended", "died"), "client_cpu_s": done.get("client_cpu_s"),
            "client_cpu_span_s": done.get("client_cpu_span_s"),
            "dropped": (done.get("schedule") or {}).get("dropped"),
            "send_lag_p99_s": done.get("send_lag_p99_s"),
            "event_loop_delay_p99_s": (done.get("event_loop_delay") or {}).get("p99_s"),
            "error": done.get("message") or w.error,
            "clock_origin_ns": done.get("clock_origin_ns"),  # its records' start_s are from here
        }
