"""A trace made ready to replay against a server (``--trace``): the rows read (prompts/trace.py), the
replay's start times (scheduler/replay.py: window, speed, idle compression), the jobs (a loose row,
or the rows of one ``session_id`` chained into a multi-turn session: prompts/tracesessions.py) and
each kept row's prompt, synthesised with the server's own tokenizer as --dataset synthetic is
(client/synthetic.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from loadtest.client.auth import build_auth
from loadtest.client.synthetic import PROBE_TIMEOUT_S, choose_counter, probe_overhead, served_tokenizer_dir
from loadtest.client.tokenize import ServerCounter
from loadtest.config import RunConfig
from loadtest.errors import ConfigError, DatasetError
from loadtest.prompts.synthetic import SyntheticPlan, word_pool
from loadtest.prompts.trace import Trace, load_trace
from loadtest.prompts.tracesessions import Job, group_jobs, job_prompts, later_turns, window_keys
from loadtest.prompts.tracetext import trace_prompts
from loadtest.scheduler.replay import ReplaySpec, Schedule, replay


@dataclass
class TracePlan:
    """``prompts.prompts`` holds one prompt per job (a session's is its turns); ``starts`` are the
    jobs' start times, the open loop's schedule."""

    trace: Trace
    schedule: Schedule
    prompts: SyntheticPlan
    jobs: list[Job]

    @property
    def has_sessions(self) -> bool:
        return any(j.session_id is not None for j in self.jobs)

    @property
    def starts(self) -> tuple[float, ...]:
        return tuple(self.schedule.times[j.rows[0]] for j in self.jobs)

    def configure(self, cfg: RunConfig) -> RunConfig:
        """The run's config with the schedule in it: one job per loose row or session (the counted
        warm-up being the first ones), and --max-tokens the longest row's (the response size limits)."""
        n = len(self.jobs)
        longest = max(max(p.turn_max_tokens or (p.max_tokens or 0,)) for p in self.prompts.prompts)
        return replace(cfg, trace_schedule_s=self.starts, num_prompts=n - cfg.warmup, duration_s=None,
                       max_tokens=max(1, longest))

    def block(self, cfg: RunConfig) -> dict[str, Any]:
        """summary.json's ``trace`` block."""
        window = cfg.trace_window
        used = len(self.schedule.times)
        sessions = [j for j in self.jobs if j.session_id is not None]
        return {"file": str(self.trace.path), "format": self.trace.format, "rows": len(self.trace.rows),
                "rows_used": used, "rows_skipped": self.trace.skipped,
                "rows_skipped_why": self.trace.skip_reasons or None,
                "rows_outside_window": len(self.trace.rows) - used,
                "trace_duration_s": self.trace.duration_s, "speed": cfg.replay_speed,
                "window_s": list(window) if window else None, "max_idle_s": cfg.max_idle_s,
                "idle_compressed": self.schedule.gaps_compressed > 0,
                "gaps_compressed": self.schedule.gaps_compressed, "idle_removed_s": self.schedule.idle_removed_s,
                "schedule_duration_s": self.schedule.duration_s,
                "sessions": len({r.session_id for r in self.trace.rows if r.session_id is not None}) or None,
                "session_starts": len(sessions), "rows_chained": sum(len(j.rows) - 1 for j in sessions),
                "jobs": len(self.jobs)}


def session_conflicts(cfg: RunConfig, trace: Trace, jobs: list[Job]) -> None:
    """What a trace with sessions cannot combine with, as one line, once the trace says it has them."""
    if not any(j.session_id is not None for j in jobs):
        return
    why = f"{trace.path}: rows sharing a session_id replay as multi-turn sessions"
    if cfg.api != "chat":
        raise ConfigError(f"{why}, which need --api chat (a turn carries the conversation as chat messages)")
    if cfg.cancel_rate is not None:
        raise ConfigError(f"{why}, which do not combine with --cancel-rate (a turn abandoned leaves no reply "
                          "for the next)")


def plan_trace(cfg: RunConfig, server: Any = None) -> TracePlan:
    """Read, window and time the trace, group its sessions, then synthesise the kept rows' prompts."""
    assert cfg.trace is not None
    trace = load_trace(cfg.trace)
    schedule = replay([r.offset_s for r in trace.rows], ReplaySpec(cfg.replay_speed, cfg.trace_window, cfg.max_idle_s),
                      keys=window_keys(trace.rows))
    rows = [trace.rows[i] for i in schedule.indices]
    jobs = group_jobs(rows)
    session_conflicts(cfg, trace, jobs)
    if len(jobs) <= cfg.warmup:
        raise DatasetError(f"{trace.path}: {len(jobs)} rows or sessions in the replay, not more than --warmup "
                           f"{cfg.warmup}" + (" (see --trace-window)" if cfg.trace_window else ""))
    stem, later = trace.path.stem, later_turns(jobs)

    def planned(plan: SyntheticPlan) -> TracePlan:
        plan.prompts = job_prompts(rows, plan.prompts, jobs, schedule.times, str(trace.path))
        return TracePlan(trace, schedule, plan, jobs)

    if all(r.messages is not None for r in rows):
        return planned(trace_prompts(rows, stem=stem, counter=None, pool=[], overhead=None, seed=cfg.seed))
    headers = build_auth(cfg).headers
    counter, on_server = choose_counter(cfg.base_url, cfg.model, headers, cfg.tokenizer or served_tokenizer_dir(server))
    try:
        pool = word_pool(counter)
        overhead, why = probe_overhead(cfg.base_url, cfg.model, cfg.api, headers, pool, counter, cfg.seed,
                                       PROBE_TIMEOUT_S)
        plan = trace_prompts(rows, stem=stem, counter=counter, pool=pool, overhead=overhead, seed=cfg.seed,
                             later=later)
    finally:
        if isinstance(counter, ServerCounter):
            counter.close()
    plan.info["verified_by_server_tokenize"] = on_server
    plan.info["template_overhead_unknown_because"] = why
    return planned(plan)
