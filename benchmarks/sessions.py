#!/usr/bin/env python3
"""Multi-turn sessions: does a session cost the client more per token than single requests, and
does its memory stay bounded?

The test server runs pinned to one core and the real ``loadtest throughput`` CLI, as a child
process, to the other. Two kinds of run, alternated over several rounds (medians, so the machine's
drift cancels):

- **sessions**: ``--dataset synthetic --turns 5`` (1,000 sessions by default, each turn carrying the
  whole history so far);
- **single**: ``--dataset synthetic`` single-turn requests, as many as the sessions' turns (the same
  completion tokens), at the same concurrency and max tokens, so at the same token rate (printed:
  a warning when the two differ by more than 15%).

CPU is the child's own, user + system, from ``os.wait4``, less the start-up the client reports
(``run.client_startup_cpu_s``: interpreter, imports, building the prompts; a fixed cost that
differs between the two kinds, 5,000 single prompts of 512 tokens taking longer to build than
1,000 sessions), so the load, the statistics pass and the result files: per 1,000 completion
tokens (summary.json). The target (issue: sessions within 10% of single-turn runs at the same
token rate): the ratio of the medians at most 1.10. Shown beside it: the same with start-up
included, and the measured window alone (the summary's ``client_cpu_s_per_1k_tokens``).

Memory, sampled from outside (VmRSS every 0.1 s) and from ``os.wait4`` (``ru_maxrss``): the RSS
before the load (start-up: the prompts, built up front, and the connections), its peak during the
load (while requests.jsonl grows), the growth between the two, and the peak of the whole run (with
the statistics pass over the records after the load). Sessions runs with 1x (the rounds') and 4x
the sessions at the same concurrency: the growth during the load stays flat, since a history lives
only while its session runs; what 4x the sessions adds is their prompts and records. And with 2x
the concurrency: the growth per extra session in flight.

    python benchmarks/sessions.py            # make bench-sessions: 3 rounds, then the memory runs
    python benchmarks/sessions.py --quick    # smoke test, < 1 minute, target not checked
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import ChildUsage, Table, run_loadtest_usage
from tabulate import tabulate

from loadtest.sim.process import start_sim

TARGET_RATIO = 1.10
RATE_TOLERANCE = 0.15
FULL = {"sessions": 1000, "turns": 5, "prompt_tokens": 512, "turn_prompt_tokens": 128, "max_tokens": 128,
        "concurrency": 50, "ttft_ms": 20.0, "tpot_ms": 3.0, "rounds": 3}
QUICK = {"sessions": 40, "turns": 5, "prompt_tokens": 128, "turn_prompt_tokens": 32, "max_tokens": 32,
         "concurrency": 8, "ttft_ms": 10.0, "tpot_ms": 2.0, "rounds": 2}


def cores() -> tuple[int | None, int | None]:
    """(client core, server core): the first two this process may run on; neither pinned on one core."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def measure(kind: str, sessions: int, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``kind`` ("sessions" or "single") against a fresh pinned test server."""
    client_cpu, sim_cpu = cores()
    load = ["throughput", "--model", "sim-model", "--dataset", "synthetic", "--concurrency", str(concurrency),
            "--max-tokens", str(args.max_tokens), "--warmup", "0", "--no-server-metrics"]
    if kind == "sessions":
        requests = sessions * args.turns
        load += ["--turns", str(args.turns), "--prompt-tokens", str(args.prompt_tokens),
                 "--turn-prompt-tokens", str(args.turn_prompt_tokens), "--num-prompts", str(sessions)]
    else:
        requests = sessions * args.turns  # as many requests as the sessions' turns: the same completion tokens
        load += ["--prompt-tokens", str(args.single_prompt_tokens), "--num-prompts", str(requests)]
    with start_sim(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, cpu=sim_cpu) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        summary, usage = run_loadtest_usage([*load, "--endpoint", sim.base_url], Path(tmp) / "run",
                                            cpu=client_cpu, sample_s=args.sample_s)
        late_ms = sim.stats()["lateness_ms"]["mean"]
    return row(kind, sessions, concurrency, requests, summary, usage, late_ms)


def row(kind: str, sessions: int, concurrency: int, requests: int, summary: dict[str, Any], usage: ChildUsage,
        late_ms: float) -> dict[str, Any]:
    m, run, counts = summary["metrics"], summary["run"], summary["counts"]
    tokens = m["completion_tokens_total"] or 0
    startup = run.get("client_startup_cpu_s")
    after = usage.cpu_s - startup if startup is not None else None
    pre, peak = usage.rss_preload_kib, usage.rss_load_peak_kib
    return {
        "kind": kind, "sessions": sessions if kind == "sessions" else None, "concurrency": concurrency,
        "requests": requests, "completed": counts["completed"], "failed": counts["failed"],
        "completion_tokens": tokens, "tokens_per_s": m["output_tokens_per_s"], "window_s": m["window_s"],
        "cpu_s": usage.cpu_s, "cpu_user_s": usage.user_s, "cpu_sys_s": usage.sys_s, "startup_cpu_s": startup,
        "cpu_after_startup_s": after,
        "cpu_s_per_1k_tokens": after / tokens * 1e3 if tokens and after is not None else None,
        "all_cpu_s_per_1k_tokens": usage.cpu_s / tokens * 1e3 if tokens else None,
        "window_cpu_s_per_1k_tokens": run.get("client_cpu_s_per_1k_tokens"),
        "preload_rss_kib": pre, "load_rss_peak_kib": peak,
        "load_rss_growth_kib": peak - pre if peak is not None and pre is not None else None,
        "max_rss_kib": usage.max_rss_kib, "wall_s": usage.wall_s, "server_late_ms_mean": late_ms,
    }


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def mib(kib: float | None) -> str:
    return fmt(kib / 1024 if kib is not None else None, ".1f")


HEADERS = ["run", "kind", "sessions", "conc.", "done", "completion tok", "tok/s", "CPU s", "start-up CPU s",
           "CPU s/1k tok", "incl. start-up", "window only", "RSS before load MiB", "peak in load MiB", "max RSS MiB",
           "server late ms"]


def table_row(label: str, r: dict[str, Any]) -> list[Any]:
    return [label, r["kind"], r["sessions"] or "-", r["concurrency"], f"{r['completed']}/{r['requests']}",
            r["completion_tokens"], round(r["tokens_per_s"]), fmt(r["cpu_s"], ".2f"), fmt(r["startup_cpu_s"], ".2f"),
            fmt(r["cpu_s_per_1k_tokens"], ".4f"), fmt(r["all_cpu_s_per_1k_tokens"], ".4f"),
            fmt(r["window_cpu_s_per_1k_tokens"], ".4f"), mib(r["preload_rss_kib"]), mib(r["load_rss_peak_kib"]),
            mib(r["max_rss_kib"]), fmt(r["server_late_ms_mean"], ".2f")]


MEDIAN_KEYS = ("cpu_s_per_1k_tokens", "all_cpu_s_per_1k_tokens", "window_cpu_s_per_1k_tokens", "tokens_per_s",
               "startup_cpu_s", "preload_rss_kib", "load_rss_peak_kib", "load_rss_growth_kib", "max_rss_kib")


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def per(a: float | None, b: float | None, n: int) -> float | None:
    """KiB per unit: (a - b) / n."""
    return (a - b) / n if a is not None and b is not None and n else None


def memory_report(base: dict[str, Any], big: dict[str, Any], wide: dict[str, Any],
                  args: argparse.Namespace) -> dict[str, Any]:
    """The sessions runs' memory: ``base`` the rounds' medians (N sessions, C in flight), ``big`` one
    run with more sessions, ``wide`` one with more in flight; prints a table and three lines."""
    keys = ("preload_rss_kib", "load_rss_peak_kib", "load_rss_growth_kib", "max_rss_kib")
    rows = [("1x (median of the rounds)", args.sessions, args.concurrency, base),
            (f"{args.memory_sessions_factor}x sessions", big["sessions"], big["concurrency"], big),
            (f"{args.memory_concurrency_factor}x concurrency", wide["sessions"], wide["concurrency"], wide)]
    print()
    print(tabulate([[label, n, c, *(mib(r[k]) for k in keys)] for label, n, c, r in rows],
                   headers=["sessions runs", "sessions", "conc.", "RSS before load MiB", "peak in load MiB",
                            "growth in load MiB", "max RSS MiB"]))
    more_sessions = big["sessions"] - args.sessions
    more_in_flight = wide["concurrency"] - args.concurrency
    memory = {
        "baseline": {k: base[k] for k in keys}, "more_sessions": {k: big[k] for k in keys},
        "more_concurrency": {k: wide[k] for k in keys},
        "sessions_factor": args.memory_sessions_factor, "concurrency_factor": args.memory_concurrency_factor,
        "kib_per_extra_session_in_flight_growth": per(wide["load_rss_growth_kib"], base["load_rss_growth_kib"],
                                                      more_in_flight),
        "kib_per_extra_session_in_flight_peak": per(wide["load_rss_peak_kib"], base["load_rss_peak_kib"],
                                                    more_in_flight),
        "kib_per_extra_session_preload": per(big["preload_rss_kib"], base["preload_rss_kib"], more_sessions),
        "kib_per_extra_session_max_rss": per(big["max_rss_kib"], base["max_rss_kib"], more_sessions),
    }
    print(f"histories: growth during the load {mib(base['load_rss_growth_kib'])} MiB with {args.sessions} sessions, "
          f"{mib(big['load_rss_growth_kib'])} MiB with {big['sessions']} (same {args.concurrency} in flight: "
          "expected flat, a history lives only while its session runs)")
    print(f"per extra session in flight ({args.concurrency} -> {wide['concurrency']}): "
          f"{fmt(memory['kib_per_extra_session_in_flight_growth'], '.1f')} KiB of growth during the load (history, "
          f"buffers), {fmt(memory['kib_per_extra_session_in_flight_peak'], '.1f')} KiB at the load's peak "
          "(with its connection, opened before the load)")
    print(f"per extra session in the run ({args.sessions} -> {big['sessions']}): "
          f"{fmt(memory['kib_per_extra_session_preload'], '.2f')} KiB before the load (its prompts, built up front), "
          f"{fmt(memory['kib_per_extra_session_max_rss'], '.2f')} KiB at max RSS (with the statistics pass over "
          "its records after the load)")
    return memory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: small numbers, < 1 minute, target not checked")
    p.add_argument("--sessions", type=int, help="sessions per run (default 1000; quick 40)")
    p.add_argument("--turns", type=int, help="turns per session (default 5)")
    p.add_argument("--prompt-tokens", type=int, help="first turn's tokens (default 512; quick 128)")
    p.add_argument("--turn-prompt-tokens", type=int, help="each later user turn's tokens (default 128; quick 32)")
    p.add_argument("--single-prompt-tokens", type=int,
                   help="the single-turn runs' prompt tokens (default --prompt-tokens)")
    p.add_argument("--max-tokens", type=int, help="completion tokens per turn and per request (default 128; quick 32)")
    p.add_argument("--concurrency", type=int, help="sessions (or single requests) in flight (default 50; quick 8)")
    p.add_argument("--ttft-ms", type=float, help="test server's TTFT (default 20; quick 10)")
    p.add_argument("--tpot-ms", type=float, help="test server's time per token (default 3: 50 streams ~15,800 tok/s; "
                                                 "quick 2)")
    p.add_argument("--rounds", type=int,
                   help="rounds of (sessions, single), alternating the order (default 3; quick 2)")
    p.add_argument("--memory-sessions-factor", type=int, default=4, help="the memory run with N x the sessions (4)")
    p.add_argument("--memory-concurrency-factor", type=int, default=2,
                   help="the memory run with N x the concurrency (2)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--sample-s", type=float, default=0.1, help="VmRSS sampling interval of the child (0.1 s)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="exit 1 when the CPU ratio misses the target (default: on, off with --quick)")
    p.add_argument("--out", type=Path, help="JSON result file (default results/bench-sessions-<time>.json)")
    args = p.parse_args()
    profile = QUICK if args.quick else FULL
    for key, value in profile.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.single_prompt_tokens is None:
        args.single_prompt_tokens = args.prompt_tokens
    check = (not args.quick) if args.check is None else args.check
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    out = args.out or Path("results") / f"bench-sessions-{stamp}.json"
    client_cpu, sim_cpu = cores()
    print(f"sessions benchmark: {args.sessions} sessions x {args.turns} turns (first {args.prompt_tokens} tokens, "
          f"later {args.turn_prompt_tokens}) against {args.sessions * args.turns} single requests of "
          f"{args.single_prompt_tokens} tokens; {args.max_tokens} tokens per reply, concurrency {args.concurrency}, "
          f"test server TTFT {args.ttft_ms:g} ms + {args.tpot_ms:g} ms/token; "
          f"client on cpu {client_cpu}, server on cpu {sim_cpu}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr, flush=True)

    table = Table(HEADERS)
    runs: dict[str, list[dict[str, Any]]] = {"sessions": [], "single": []}
    for r in range(args.rounds):
        for kind in ("sessions", "single") if r % 2 == 0 else ("single", "sessions"):
            res = measure(kind, args.sessions, args.concurrency, args)
            runs[kind].append(res)
            table.add(table_row(f"round {r + 1}", res))
    memory_runs: dict[str, dict[str, Any]] = {}
    if not args.no_memory:
        n4, c2 = args.sessions * args.memory_sessions_factor, args.concurrency * args.memory_concurrency_factor
        memory_runs[f"{args.memory_sessions_factor}x sessions"] = res = measure("sessions", n4, args.concurrency, args)
        table.add(table_row(f"memory: {args.memory_sessions_factor}x sessions", res))
        res = measure("sessions", args.sessions, c2, args)
        memory_runs[f"{args.memory_concurrency_factor}x concurrency"] = res
        table.add(table_row(f"memory: {args.memory_concurrency_factor}x concurrency", res))
    print(file=sys.stderr)
    table.finish(None)

    # CPU: medians over the rounds, and their ratio.
    med = {kind: {key: median(rows, key) for key in MEDIAN_KEYS} for kind, rows in runs.items()}
    cpu_ratio = ratio(med["sessions"]["cpu_s_per_1k_tokens"], med["single"]["cpu_s_per_1k_tokens"])
    all_ratio = ratio(med["sessions"]["all_cpu_s_per_1k_tokens"], med["single"]["all_cpu_s_per_1k_tokens"])
    window_ratio = ratio(med["sessions"]["window_cpu_s_per_1k_tokens"], med["single"]["window_cpu_s_per_1k_tokens"])
    rate_ratio = ratio(med["sessions"]["tokens_per_s"], med["single"]["tokens_per_s"])
    failed = sum(r["failed"] for rows in runs.values() for r in rows) + sum(r["failed"] for r in memory_runs.values())
    print()
    print(f"tokens/s (median): sessions {med['sessions']['tokens_per_s']:,.0f}, "
          f"single {med['single']['tokens_per_s']:,.0f}"
          f" (sessions / single {rate_ratio:.3f})")
    warnings = []
    if rate_ratio is None or abs(rate_ratio - 1) > RATE_TOLERANCE:
        warnings.append(f"token rates differ by more than {RATE_TOLERANCE:.0%}: "
                        "the CPU comparison is not at the same rate")
    if failed:
        warnings.append(f"{failed} requests failed")

    def line(key: str) -> str:
        return f"{fmt(med['sessions'][key], '.4f')} / {fmt(med['single'][key], '.4f')}"

    print(f"client CPU s per 1k completion tokens, sessions / single (medians of {args.rounds}): after start-up "
          f"{line('cpu_s_per_1k_tokens')} = {fmt(cpu_ratio, '.3f')} (target <= {TARGET_RATIO:.2f}); incl. start-up "
          f"{line('all_cpu_s_per_1k_tokens')} = {fmt(all_ratio, '.3f')} (start-up "
          f"{fmt(med['sessions']['startup_cpu_s'], '.2f')} / {fmt(med['single']['startup_cpu_s'], '.2f')} s); "
          f"measured window alone {line('window_cpu_s_per_1k_tokens')} = {fmt(window_ratio, '.3f')}")

    memory: dict[str, Any] = {}
    if memory_runs:
        memory = memory_report(med["sessions"], memory_runs[f"{args.memory_sessions_factor}x sessions"],
                               memory_runs[f"{args.memory_concurrency_factor}x concurrency"], args)

    met = cpu_ratio is not None and cpu_ratio <= TARGET_RATIO
    for w in warnings:
        print(f"WARNING: {w}")
    verdict = ("CPU target met" if met else "CPU target MISSED") + ("" if check else " (not checked)")
    print(verdict)
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick,
        "settings": {k: getattr(args, k) for k in (*FULL, "single_prompt_tokens", "memory_sessions_factor",
                                                   "memory_concurrency_factor", "sample_s")},
        "machine": {"cpus": os.cpu_count(), "client_cpu": client_cpu, "server_cpu": sim_cpu,
                    "load_average_at_end": os.getloadavg()},
        "runs": runs, "memory_runs": memory_runs, "medians": med,
        "cpu_ratio": cpu_ratio, "cpu_ratio_incl_startup": all_ratio, "window_cpu_ratio": window_ratio,
        "tokens_per_s_ratio": rate_ratio,
        "target_ratio": TARGET_RATIO, "target_met": met, "checked": check, "warnings": warnings, "memory": memory,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")
    return 1 if check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
