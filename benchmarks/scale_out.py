#!/usr/bin/env python3
"""Client capacity with scale-out: the most output tokens/s the client measures accurately (TTFT
error mean < 1 ms) with 1 and with 2 worker processes (--workers), against the test server.

Per (workers, concurrency): a timed closed-loop run; the TTFT error per request is the worker's
arrival stamp of the first content chunk minus the moment the sim wrote it (matched by response
id, both CLOCK_MONOTONIC, as in client_overhead.py / open_loop.py; a record's worker is id %
workers, its clock origin run.workers[k].clock_origin_ns). Capacity = the highest tokens/s whose
TTFT error mean stays under 1 ms. The sim shares the machine: on a small host the server or the
other processes, not the client, may set the limit; the figures are then indicative only.

    python benchmarks/scale_out.py                                # workers 1 and 2, concurrency 16..128
    python benchmarks/scale_out.py --workers 1 2 4 --concurrency 64 256 --seconds 10
    python benchmarks/scale_out.py --ray-address auto             # the same through Ray actors
    python benchmarks/scale_out.py --ray-local 2 --workers 2      # through a local Ray cluster started here
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from benchlib import Table, run_loadtest, ttft_errors_s

from loadtest.sim.process import start_sim

TTFT_ERROR_TARGET_S = 0.001


def measure(workers: int, concurrency: int, args: argparse.Namespace) -> list:
    with start_sim(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, output_tokens=args.tokens) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        cmd = ["throughput", "--endpoint", sim.base_url, "--model", "sim-model",
               "--concurrency", str(concurrency), "--duration", str(args.seconds), "--warmup", "1s",
               "--max-tokens", str(args.tokens)]
        if workers > 1 or args.ray_address:
            cmd += ["--workers", str(workers)] + (["--ray-address", args.ray_address] if args.ray_address else [])
        summary, rows = run_loadtest(cmd, Path(tmp))
        stats = sim.stats()
    err = ttft_errors_s(summary, rows, stats["first_token_ns"])
    m, v = summary["metrics"], summary.get("verdict", {})
    ok = bool(err.size) and err.mean() < TTFT_ERROR_TARGET_S
    return [workers, concurrency, summary["counts"]["completed"], round(m["output_tokens_per_s"] or 0),
            f"{err.mean() * 1e3:.3f} / {np.percentile(err, 99) * 1e3:.2f}" if err.size else "-",
            round(summary["run"]["client_cpu_s"] or 0, 2), ", ".join(v.get("labels", [])) or "valid",
            "accurate" if ok else "MISS"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--seconds", type=float, default=5.0, help="measured window per run (after a 1 s warm-up)")
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--tpot-ms", type=float, default=5.0)
    p.add_argument("--ray-address", help="run the workers as Ray actors on this cluster")
    p.add_argument("--ray-local", type=int, metavar="CPUS",
                   help="start a local Ray cluster of CPUS for the runs (stopped at the end) and use it")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    if args.ray_local:
        import ray

        ray.init(num_cpus=args.ray_local, include_dashboard=False, log_to_driver=False)
        args.ray_address = "auto"
        try:
            return run_all(args)
        finally:
            ray.shutdown()
    return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    table = Table(["workers", "conc.", "done", "tok/s", "TTFT error mean/p99 ms", "client CPU s", "verdict", "target"])
    rows = table.rows
    for w in args.workers:
        for c in args.concurrency:
            if c >= w:
                table.add(measure(w, c, args))
    table.finish(args.json)
    for w in args.workers:
        good = [r[3] for r in rows if r[0] == w and r[-1] == "accurate"]
        print(f"capacity, {w} worker(s): {max(good) if good else '-'} tokens/s with TTFT error mean < 1 ms "
              f"(highest level tried: {max(r[3] for r in rows if r[0] == w)} tokens/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
