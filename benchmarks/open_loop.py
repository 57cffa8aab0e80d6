#!/usr/bin/env python3
"""Open-loop accuracy: does the client start requests when the load shape says, and stamp
arrivals as well as in a closed loop?

The test server runs pinned to one core and `loadtest throughput --request-rate R` to the other.
Per rate it reports the achieved start rate, the send lag (actual start - scheduled - queue: the
client's own lateness, mean / p99 / max), the event loop's delay, and the TTFT error (the client's
arrival stamp of the first content chunk minus the moment the server wrote it, matched by response
id, both CLOCK_MONOTONIC; as in client_overhead.py). Targets (issue #11): at 500 req/s (short
outputs) and at ~50k tokens/s the TTFT error mean under 1 ms, as the closed loop's at 64 streams.

Beside each rate, ``--closed`` (the default) runs the closed loop at the same load (concurrency =
rate x reply time, the streams the open loop keeps in flight) against a fresh server in the same
minute, measured the same way: "the closed loop's accuracy" on this machine today. "server late"
is how far behind its own schedule the test server wrote (mean): when it cannot keep up, it
catches up in bursts, and a chunk at the end of a burst waits for the client to read the ones
before it, so the TTFT error then measures the server's bursts as much as the client.

    python benchmarks/open_loop.py     # 500 req/s x 8 tokens; 100 req/s x 500 tokens in 1- and 2-token chunks
    python benchmarks/open_loop.py --rate 500 --tokens 8 --tokens-per-chunk 1 --seconds 10 --no-closed
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from benchlib import Table, run_loadtest, ttft_errors_s

from loadtest.sim.process import start_sim

TTFT_ERROR_TARGET_S = 0.001


def measure(rate: float, tokens: int, per_chunk: int, seconds: float, args: argparse.Namespace,
            closed: bool = False) -> list:
    pin = len(os.sched_getaffinity(0)) >= 2
    # Warm-up and cooldown: one reply's length each, so the measured window sees the steady number
    # in flight (rate x reply time: 100 req/s x 5 s = 500 streams) and its requests finish.
    warmup_s = (args.ttft_ms + tokens * args.tpot_ms) / 1e3  # tpot is per token, whatever the chunk
    streams = max(1, round(rate * warmup_s))
    load = ["--concurrency", str(streams)] if closed else ["--request-rate", str(rate)]
    with start_sim(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, output_tokens=tokens,
                   tokens_per_chunk=per_chunk, cpu=1 if pin else None) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        summary, rows = run_loadtest(["throughput", "--endpoint", sim.base_url, "--model", "sim-model", *load,
                                      "--duration", str(seconds), "--warmup", f"{warmup_s:.3f}s",
                                      "--cooldown", f"{warmup_s:.3f}", "--max-tokens", str(tokens)],
                                     Path(tmp), cpu=0 if pin else None)
        stats = sim.stats()
    m, run = summary["metrics"], summary["run"]
    err = ttft_errors_s(summary, rows, stats["first_token_ns"])
    lag, loop = m.get("send_lag_s"), run["monitors"]["event_loop_delay"]
    ok = err.mean() < TTFT_ERROR_TARGET_S
    achieved = m.get("achieved_rate_per_s") or m["requests_per_s"]
    return [f"closed, {streams} streams" if closed else f"open, {rate:g} req/s", f"{tokens} ({per_chunk}/chunk)",
            summary["counts"]["completed"],
            round(achieved, 1), round(m["output_tokens_per_s"]),
            f"{lag['mean'] * 1e3:.3f} / {lag['p99'] * 1e3:.2f} / {lag['max'] * 1e3:.1f}" if lag else "-",
            f"{loop['p99_s'] * 1e3:.2f}" if loop["p99_s"] is not None else "-",
            f"{err.mean() * 1e3:.3f} / {np.percentile(err, 99) * 1e3:.2f}",
            round(run["client_cpu_s"] / (m["window_s"] + 2 * warmup_s) * 100),  # CPU counted over all phases
            f"{stats['lateness_ms']['mean']:.1f}",
            ", ".join(summary["verdict"]["labels"]) if "verdict" in summary else "-",
            "-" if closed else "TTFT ok" if ok else f"TTFT MISS (> {TTFT_ERROR_TARGET_S * 1e3:g} ms)"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, nargs="+", default=[500.0, 100.0, 100.0])
    p.add_argument("--tokens", type=int, nargs="+", default=[8, 500, 500], help="one per --rate")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per rate (after a warm-up of one reply)")
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--tpot-ms", type=float, default=10.0, help="100 req/s x 500 tokens at 10 ms: ~50k tokens/s")
    p.add_argument("--tokens-per-chunk", type=int, nargs="+", default=[1, 1, 2],
                   help="the server's tokens per SSE chunk, one per --rate (2: ~50k tokens/s in half the chunks)")
    p.add_argument("--closed", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the closed loop at the same load, for comparison (default: on)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    if not len(args.tokens) == len(args.tokens_per_chunk) == len(args.rate):
        raise SystemExit("give one --tokens and one --tokens-per-chunk value per --rate")
    table = Table(["load", "tokens", "done", "achieved req/s", "tok/s", "send lag mean/p99/max ms",
                   "loop delay p99 ms", "TTFT error mean/p99 ms", "client CPU %", "server late ms", "verdict", "target"])
    for rate, tokens, per_chunk in zip(args.rate, args.tokens, args.tokens_per_chunk):
        for closed in (False, True) if args.closed else (False,):
            table.add(measure(rate, tokens, per_chunk, args.seconds, args, closed))
    table.finish(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
