#!/usr/bin/env python3
"""How far the client's own overhead is below what it measures.

The test server runs pinned to one core and the client (``loadtest throughput``) to the other.
For each concurrency it reports the achieved token rate, the TTFT error and the client's CPU
seconds per 1,000 tokens, against the targets of issue #2.

TTFT error, per request: the client's arrival stamp of the first content chunk minus the moment
the server wrote that chunk (both CLOCK_MONOTONIC, matched by response id). That is everything
the client adds to TTFT (kernel loopback included) and nothing the server's own lateness adds.
For context the table also shows client mean TTFT minus the server's mean TTFT (receipt to first
write), which also charges the client for requests waiting in the server's socket buffers.

TPOT error, per request: the client's TPOT minus the true one, from the server's log of every
chunk's tokens and send time (``--log-chunks``): (last send - first send) / (tokens after the first
chunk). ``--chunk-tokens-max 4`` makes the server send chunks of 1..4 tokens (the first of 1), as
vLLM/SGLang do, where tokens per chunk decide TPOT; ``--client-path DIR`` runs the client from
another source tree (e.g. a copy of the code before a change) against the same server.

    python benchmarks/client_overhead.py                      # 1, 64, 512 with both transports
    python benchmarks/client_overhead.py --concurrency 64 --transport fast
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchlib import Table, run_loadtest, ttft_errors_s

from loadtest.sim.process import start_sim

TARGETS = {64: (0.005, None), 512: (0.050, 0.012)}  # concurrency: (mean TTFT error s, CPU s per 1k tokens)


def run_client(base_url: str, concurrency: int, transport: str, requests: int, tokens: int, cpu: int | None,
               out: Path, client_path: Path | None = None, extra: tuple[str, ...] = ()) -> tuple[dict, list[dict]]:
    env = dict(os.environ, PYTHONPATH=str(client_path)) if client_path else None
    # python -m puts the working directory first on sys.path: run there so that tree is the one imported
    return run_loadtest(["throughput", "--endpoint", base_url, "--model", "sim-model", "--concurrency", str(concurrency),
                         "--num-prompts", str(requests), "--max-tokens", str(tokens), "--transport", transport,
                         *extra], out, cpu=cpu, env=env, cwd=client_path)


def measure(concurrency: int, transport: str, args: argparse.Namespace, server_metrics: str | None) -> list:
    """``server_metrics``: None leaves the client's default; "on" has the server serve vLLM's /metrics
    and the client sample it every second (its scraper inherits the client's core); "off" passes
    --no-server-metrics."""
    requests = max(args.min_requests, concurrency * args.waves)
    pin = len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "chunks.jsonl"
        with start_sim(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, output_tokens=args.tokens,
                       chunk_tokens_max=args.chunk_tokens_max, log_chunks=str(log), cpu=1 if pin else None,
                       metrics=("vllm",) if server_metrics == "on" else ()) as sim:
            extra = ("--no-server-metrics",) if server_metrics == "off" else ()
            summary, rows = run_client(sim.base_url, concurrency, transport, requests, args.tokens,
                                       0 if pin else None, Path(tmp) / "run", args.client_path, extra)
            stats = sim.stats()
        truth = {e["id"]: e for e in map(json.loads, log.read_text().splitlines())}
    m, run = summary["metrics"], summary["run"]
    server_ttft = stats["ttft_server_s"]
    server_mean = sum(server_ttft) / len(server_ttft)
    delays = sorted(ttft_errors_s(summary, rows, stats["first_token_ns"]).tolist())  # no warm-up: every row measured
    err = sum(delays) / len(delays)
    tpot_errs = []
    for r in rows:
        t = truth.get(r["response_id"])
        if r["ok"] and r["tpot_s"] is not None and t is not None and sum(t["tokens"]) > t["tokens"][0]:
            true_tpot = (t["sent_ns"][-1] - t["sent_ns"][0]) / 1e9 / (sum(t["tokens"]) - t["tokens"][0])
            tpot_errs.append((r["tpot_s"] - true_tpot, r["tpot_s"] / true_tpot - 1))
    tpot_err_ms = sum(e for e, _ in tpot_errs) / len(tpot_errs) * 1e3
    tpot_err_pct = sum(e for _, e in tpot_errs) / len(tpot_errs) * 100
    err_p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    ttft_target, cpu_target = TARGETS.get(concurrency, (None, None))
    verdict = []
    if ttft_target is not None:
        verdict.append("TTFT ok" if err < ttft_target else f"TTFT MISS (> {ttft_target * 1e3:g} ms)")
    if cpu_target is not None:
        cpu_ok = run["client_cpu_s_per_1k_tokens"] < cpu_target
        verdict.append("CPU ok" if cpu_ok else f"CPU MISS (> {cpu_target})")
    scraper = (summary.get("server_metrics") or {}).get("scraper_cpu_s")
    return [transport, server_metrics or "default", concurrency, summary["counts"]["completed"], round(m["output_tokens_per_s"]),
            round(m["ttft_s"]["mean"] * 1e3, 2), round((m["ttft_s"]["mean"] - server_mean) * 1e3, 2),
            round(err * 1e3, 3), round(err_p99 * 1e3, 2), round(m["tpot_s"]["mean"] * 1e3, 3),
            f"{tpot_err_ms:+.4f} ({tpot_err_pct:+.3f}%)",
            round(run["client_cpu_s_per_1k_tokens"], 4),
            round(run["client_cpu_s"] / m["window_s"] * 100),
            round(100 * run["client_cpu_system_s"] / (run["client_cpu_user_s"] + run["client_cpu_system_s"]))
            if run.get("client_cpu_system_s") is not None else "-",
            round(stats["lateness_ms"]["mean"], 2),
            "-" if scraper is None else round(scraper, 3),
            ", ".join(verdict) or "-"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 512])
    p.add_argument("--transport", nargs="+", default=["fast", "httpx"], choices=["fast", "httpx", "openai"],
                   help="openai: the official SDK (--transport openai), to compare its overhead and accuracy")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--tpot-ms", type=float, default=10.0, help="10 ms: 64 streams ~6,400 tokens/s, 512 ~51,000")
    p.add_argument("--tokens", type=int, default=128, help="completion tokens per request")
    p.add_argument("--waves", type=int, default=4, help="requests = concurrency x waves")
    p.add_argument("--min-requests", type=int, default=40)
    p.add_argument("--chunk-tokens-max", type=int, default=None,
                   help="server chunks of 1..N tokens, the first of 1 (default: one token per chunk)")
    p.add_argument("--client-path", type=Path, default=None, help="run the client from this source tree")
    p.add_argument("--server-metrics", nargs="+", choices=["on", "off"], default=None,
                   help="on: the server serves /metrics and the client samples it; off: --no-server-metrics; "
                        "both (on off) alternate (default: the client's default against a server without /metrics)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    table = Table(["transport", "server metrics", "conc.", "done", "tok/s", "TTFT ms", "TTFT - server's ms", "TTFT error ms",
                   "error p99 ms", "TPOT ms", "TPOT error ms", "client CPU s/1k tok", "client CPU %", "of it kernel %",
                   "server late ms", "scraper CPU s", "targets"])
    for c in args.concurrency:
        for t in args.transport:
            for sm in args.server_metrics or [None]:
                table.add(measure(c, t, args, sm))
    table.finish(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
