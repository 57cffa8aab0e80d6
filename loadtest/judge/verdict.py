"""Was the measurement valid? The questions, answered from the summary after every run:

- client_bound: the client, not the server, limited the load: it sent late (open-loop send lag
  p99 above CLIENT_LAG_P99_S), its event loop stalled (delay p99 above LOOP_DELAY_P99_S), or it
  used nearly a whole core (CLIENT_CORES; the client is one Python thread).
- disturbed: other processes on this host (neither the client nor the server under test) used
  more than DISTURBED_CORES cores on average: their load, not the server's, may be in the numbers.
- server_saturated: an open loop's server completed under SATURATED_SHARE of the rate asked:
  queues grew during the run, and the latencies depend on its length.
- schedule_missed: the client could not issue an open loop's schedule: starts were dropped (every
  --max-concurrency slot busy and the backlog full, scheduler/phases.py) or a start went out more
  than SCHEDULE_LAG_MAX_S late. The load the server saw was not the one asked.
- worker_lost: a scaled-out run (--workers, --on-worker-failure continue) went on after a worker
  died: from then on it offered less load than asked, so its numbers are not those of that load.

A CPU share, a host's load and a completion rate are divided by time: over less than
MIN_JUDGE_S (or fewer than MIN_HOST_SAMPLES host samples) they are mostly a run's fixed costs
and noise (an interrupted run once read 9 million cores), so that part says "cannot judge".

Thresholds are documented in docs/load-shapes.md ("Verdicts") and written into each verdict.
"""

from __future__ import annotations

import math
from typing import Any

CLIENT_LAG_P99_S = 0.010
LOOP_DELAY_P99_S = 0.010
CLIENT_CORES = 0.9
DISTURBED_CORES = 0.5
SATURATED_SHARE = 0.9
SCHEDULE_LAG_MAX_S = 1.0
MIN_JUDGE_S = 1.0  # four host samples; a sweep's 1.5 s levels are still judged
MIN_HOST_SAMPLES = 4
THRESHOLDS = {"client_send_lag_p99_s": CLIENT_LAG_P99_S, "event_loop_delay_p99_s": LOOP_DELAY_P99_S,
              "client_cores": CLIENT_CORES, "others_cores_mean": DISTURBED_CORES,
              "saturated_completed_share": SATURATED_SHARE, "schedule_send_lag_max_s": SCHEDULE_LAG_MAX_S,
              "min_window_s": MIN_JUDGE_S, "min_host_samples": MIN_HOST_SAMPLES}


def kept_up(metrics: dict[str, Any], rate: Any, kept_share: float = 1.0) -> tuple[bool, str]:
    """Did an open loop's server complete what was asked? Completions/s against the start rate
    actually achieved (a Poisson schedule's own count varies) or the target, whichever is lower,
    times ``kept_share``: the share of requests not abandoned (--cancel-rate), which the server
    was never asked to complete."""
    done = metrics.get("requests_per_s")
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or done is None:
        return True, ""
    asked = min(rate, metrics.get("achieved_rate_per_s") or rate) * kept_share
    kept = "" if kept_share == 1.0 else " and not abandoned"
    return done >= SATURATED_SHARE * asked, f"completed {done:.3g} req/s of {asked:.3g} started{kept}"


def kept_share(counts: dict[str, Any]) -> float:
    """The share of measured requests the client did not abandon (--cancel-rate)."""
    requests, abandoned = counts.get("requests") or 0, counts.get("abandoned") or 0
    return (requests - abandoned) / requests if requests else 1.0


def cpu_span_s(summary: dict[str, Any]) -> float | None:
    """The time client_cpu_s was counted over: as measured (run.client_cpu_span_s, the same clock
    interval), else (an older summary) the window plus a timed warm-up and cooldown."""
    if summary["run"].get("client_cpu_span_s") is not None:
        return float(summary["run"]["client_cpu_span_s"])
    window, cfg = summary["metrics"].get("window_s"), summary["config"]
    if not window:
        return None
    return window + (cfg.get("warmup_s") or 0.0) + (cfg.get("cooldown_s") or 0.0)


def worker_reasons(workers: list[dict[str, Any]], span: float | None) -> list[str]:
    """Scale-out (--workers): the CPU test per worker process (each is one Python thread). Send
    lag comes from every worker's records and the event-loop delay is the worst worker's, so the
    other two tests already cover every worker."""
    out = []
    for w in workers:
        cpu, own = w.get("client_cpu_s"), w.get("client_cpu_span_s") or span
        if cpu is not None and own and own >= MIN_JUDGE_S and w.get("completed") and cpu / own > CLIENT_CORES:
            out.append(f"worker {w['name']} CPU {cpu / own:.2f} cores > {CLIENT_CORES:g} (one Python thread)")
    return out


def too_short(what: str, span: float | None) -> str | None:
    """The note for a part of the verdict whose time span is too short to judge (None: long enough)."""
    if span is not None and span >= MIN_JUDGE_S:
        return None
    shown = "none" if not span else f"{span:.2f} s"
    return f"cannot judge {what}: window {shown} shorter than {MIN_JUDGE_S:g} s"


def schedule_reasons(summary: dict[str, Any]) -> list[str]:
    """schedule_missed: starts dropped, or sent more than SCHEDULE_LAG_MAX_S late."""
    out = []
    sched, m, cfg = summary.get("schedule") or {}, summary["metrics"], summary["config"]
    dropped, due = sched.get("dropped") or 0, sched.get("due") or 0
    if dropped:
        rate, e2e = cfg.get("request_rate"), (m.get("e2e_s") or {}).get("mean")
        need = (f"; about {rate * e2e:,.0f} in flight would keep up (rate x mean e2e)"
                if isinstance(rate, (int, float)) and math.isfinite(rate) and e2e else "")
        out.append(f"client could not issue the schedule: {dropped:,} of {due:,} starts dropped "
                   f"({dropped / due:.0%}): all {sched.get('max_concurrency')} --max-concurrency slots busy and "
                   f"{sched.get('backlog_bound'):,} starts waiting{need}")
    lag = (m.get("send_lag_s") or {}).get("max")
    if lag is not None and lag > SCHEDULE_LAG_MAX_S:
        out.append(f"client could not issue the schedule: a start went out {lag:.2f} s late "
                   f"(send lag max > {SCHEDULE_LAG_MAX_S:g} s)")
    return out


def worker_lost(run: dict[str, Any]) -> list[str]:
    """Scale-out: each worker that died while the run went on (--on-worker-failure continue; with
    stop the run failed anyway). Its share of the load was missing from then on."""
    scale_out = run.get("scale_out") or {}
    out = []
    for f in scale_out.get("failed") or []:
        at = f.get("died_at_s")
        when = f"{max(at, 0.0):.1f} s into the run" if isinstance(at, (int, float)) else "before the run started"
        out.append(f"worker {f.get('name')} of {scale_out.get('workers')} died {when} ({f.get('recorded')} of its "
                   f"requests recorded, {f.get('lost_in_flight')} lost in flight): less load than asked after it")
    return out


def judge(summary: dict[str, Any]) -> dict[str, Any]:
    m, run, cfg = summary["metrics"], summary["run"], summary["config"]
    mon = run.get("monitors") or {}
    host, loop = mon.get("host_cpu") or {}, mon.get("event_loop_delay") or {}
    client: list[str] = []
    lag = (m.get("send_lag_s") or {}).get("p99")
    if lag is not None and lag > CLIENT_LAG_P99_S:
        client.append(f"sent late: send lag p99 {lag * 1e3:.1f} ms > {CLIENT_LAG_P99_S * 1e3:g} ms")
    delay = loop.get("p99_s")
    if delay is not None and delay > LOOP_DELAY_P99_S:
        client.append(f"event loop stalled: delay p99 {delay * 1e3:.1f} ms > {LOOP_DELAY_P99_S * 1e3:g} ms")
    cpu = run.get("client_cpu_s")
    span = cpu_span_s(summary)
    cannot: list[str] = []  # parts too short to judge
    short_cpu = too_short("client CPU", span) if cpu is not None else None
    cores = cpu / span if cpu is not None and span and not short_cpu else None
    if run.get("workers"):  # scaled out: each worker is one Python thread of its own
        client += worker_reasons(run["workers"], span)
    elif cores is not None and cores > CLIENT_CORES:
        client.append(f"client CPU {cores:.2f} cores > {CLIENT_CORES:g} (one Python thread)")
    if short_cpu and not run.get("workers"):
        cannot.append(short_cpu)
    disturbed: list[str] = []
    notes = [] if host.get("span_s") else ["host CPU not sampled (run shorter than one sample, or no sampler)"]
    samples = host.get("samples") or 0
    others = host.get("others_cores_mean") if samples >= MIN_HOST_SAMPLES else None
    if host.get("span_s") and samples < MIN_HOST_SAMPLES:
        cannot.append(f"cannot judge other processes' load: {samples} host samples ({host['span_s']:.2f} s), "
                      f"fewer than {MIN_HOST_SAMPLES}")
    if others is not None and others > DISTURBED_CORES:
        disturbed.append(f"other processes used {others:.2f} cores on average (> {DISTURBED_CORES:g}) of "
                         f"{host.get('cpu_count')}")
    saturated: list[str] = []
    rate = cfg.get("request_rate")
    short_rate = too_short("server saturation", m.get("window_s")) if isinstance(rate, (int, float)) and \
        math.isfinite(rate) and m.get("requests_per_s") is not None else None
    ok, why = kept_up(m, rate, kept_share(summary.get("counts") or {}))
    if short_rate:
        cannot.append(short_rate)
    elif not ok:
        saturated.append(why)
    schedule = schedule_reasons(summary)
    lost = worker_lost(run)
    labels = [name for name, why in (("client-bound", client), ("disturbed", disturbed),
                                     ("server-saturated", saturated), ("schedule-missed", schedule),
                                     ("worker-lost", lost)) if why]
    flagged = bool(client or disturbed or schedule or lost)
    return {
        "valid": False if flagged else None if cannot else True,
        "labels": labels,
        "client_bound": bool(client), "disturbed": bool(disturbed) if not notes and others is not None else None,
        "server_saturated": bool(saturated), "schedule_missed": bool(schedule), "worker_lost": bool(lost),
        "reasons": client + disturbed + saturated + schedule + lost, "notes": cannot + notes,
        "client_cores": cores,
        "server_cores": host.get("server_cores_mean"), "others_cores": others,
        "thresholds": THRESHOLDS,
    }


def line(v: dict[str, Any]) -> str:
    """One console line; red on a terminal when the client limited the load."""
    cannot = [n for n in v.get("notes") or [] if n.startswith("cannot judge")]
    if not v["labels"]:
        if v.get("valid") is None:
            return "verdict: " + "; ".join(v.get("notes") or ["cannot judge"])
        return "verdict: valid (client kept up, " + ("host quiet)" if not v.get("notes") else v["notes"][0] + ")")
    return ("verdict: " + ", ".join(v["labels"]).upper() + ": " + "; ".join(v["reasons"])
            + (" (" + "; ".join(cannot) + ")" if cannot else ""))
