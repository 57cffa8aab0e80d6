"""Was the measurement valid? Three questions, answered from the summary after every run:

- client_bound: the client, not the server, limited the load: it sent late (open-loop send lag
  p99 above CLIENT_LAG_P99_S), its event loop stalled (delay p99 above LOOP_DELAY_P99_S), or it
  used nearly a whole core (CLIENT_CORES; the client is one Python thread).
- disturbed: other processes on this host (neither the client nor the server under test) used
  more than DISTURBED_CORES cores on average: their load, not the server's, may be in the numbers.
- server_saturated: an open loop's server completed under SATURATED_SHARE of the rate asked:
  queues grew during the run, and the latencies depend on its length.
- worker_lost: a scaled-out run (--workers, --on-worker-failure continue) went on after a worker
  died: from then on it offered less load than asked, so its numbers are not those of that load.

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
THRESHOLDS = {"client_send_lag_p99_s": CLIENT_LAG_P99_S, "event_loop_delay_p99_s": LOOP_DELAY_P99_S,
              "client_cores": CLIENT_CORES, "others_cores_mean": DISTURBED_CORES,
              "saturated_completed_share": SATURATED_SHARE}


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
    """The time client_cpu_s was counted over: the window, plus a timed warm-up and cooldown (the
    CPU clock runs from the first measured-phase start to the run's end)."""
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
        cpu = w.get("client_cpu_s")
        if cpu is not None and span and w.get("completed") and cpu / span > CLIENT_CORES:
            out.append(f"worker {w['name']} CPU {cpu / span:.2f} cores > {CLIENT_CORES:g} (one Python thread)")
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
    cores = cpu / span if cpu is not None and span else None
    if run.get("workers"):  # scaled out: each worker is one Python thread of its own
        client += worker_reasons(run["workers"], span)
    elif cores is not None and cores > CLIENT_CORES:
        client.append(f"client CPU {cores:.2f} cores > {CLIENT_CORES:g} (one Python thread)")
    disturbed: list[str] = []
    notes = [] if host.get("span_s") else ["host CPU not sampled (run shorter than one sample, or no sampler)"]
    others = host.get("others_cores_mean")
    if others is not None and others > DISTURBED_CORES:
        disturbed.append(f"other processes used {others:.2f} cores on average (> {DISTURBED_CORES:g}) of "
                         f"{host.get('cpu_count')}")
    saturated: list[str] = []
    ok, why = kept_up(m, cfg.get("request_rate"), kept_share(summary.get("counts") or {}))
    if not ok:
        saturated.append(why)
    lost = worker_lost(run)
    labels = [name for name, why in (("client-bound", client), ("disturbed", disturbed),
                                     ("server-saturated", saturated), ("worker-lost", lost)) if why]
    return {
        "valid": not client and not disturbed and not lost,
        "labels": labels,
        "client_bound": bool(client), "disturbed": bool(disturbed) if not notes else None,
        "server_saturated": bool(saturated), "worker_lost": bool(lost),
        "reasons": client + disturbed + saturated + lost, "notes": notes,
        "client_cores": cores,
        "server_cores": host.get("server_cores_mean"), "others_cores": others,
        "thresholds": THRESHOLDS,
    }


def line(v: dict[str, Any]) -> str:
    """One console line; red on a terminal when the client limited the load."""
    if not v["labels"]:
        return "verdict: valid (client kept up, " + ("host quiet)" if not v.get("notes") else v["notes"][0] + ")")
    return "verdict: " + ", ".join(v["labels"]).upper() + ": " + "; ".join(v["reasons"])
