"""``loadtest sweep``: one throughput run per load level (concurrencies, rates, or GuideLLM-style
automatic rates), a sub-directory each, one ``sweep.json`` and one table. Stops early when the
server saturates, errors pass --max-error-rate, a run-level SLO breaks, or the client is bound.

    DIR/concurrency-4/ or DIR/rate-2.5/   summary.json, requests.jsonl (the usual run files)
    DIR/probe-synchronous/, probe-throughput/   with --request-rate auto
    DIR/sweep.json                         levels, rows, why it stopped
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.run.output import writable_dir
from loadtest.judge import slo as slos
from loadtest.run.console import render_rows
from loadtest.run.execute import command_signals
from loadtest.series.levels import CONCURRENCY, LevelResult, LevelRunner, LevelSettings, auto_rates

SATURATION_GAIN = 0.05
"""A level saturates when throughput grew by less than this over the best level so far..."""
SATURATION_LATENCY = 0.20
"""...while median e2e latency rose by more than this; or when an open loop's server completes
under 90% of the requests asked of it."""


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: the run's config at the first level (its output_dir is the sweep's root), the
    levels (None: --request-rate auto, from two probes), what they share, and how to launch."""

    base: RunConfig
    settings: LevelSettings
    levels: tuple[float, ...] | None
    early_stop: bool = True
    launch: Any = None           # LaunchSpec | None
    overwrite: bool = False


def stop_reason(done: list[LevelResult], r: LevelResult, settings: LevelSettings) -> str | None:
    """Why the sweep should not go higher than ``r`` (None: go on)."""
    if r.exit_code != 0:
        return f"level {r.level:g} failed: {r.message or 'exit ' + str(r.exit_code)}"
    if r.error_rate > settings.max_error_rate:
        return (f"errors: {r.error_rate:.1%} of requests failed at level {r.level:g} "
                f"(--max-error-rate {settings.max_error_rate:g})")
    if r.client_bound and not settings.allow_client_bound:
        return f"client bound at level {r.level:g}: the client, not the server, limited the load"
    broken = [c["objective"] for c in (r.slo or {}).get("run_level", []) if not c["met"]]
    if broken:
        return f"SLO broken at level {r.level:g}: {', '.join(broken)}"
    m = r.metrics
    if (r.summary.get("verdict") or {}).get("schedule_missed"):
        return f"schedule missed at level {r.level:g}: " + "; ".join(r.summary["verdict"]["reasons"])
    if (r.summary.get("verdict") or {}).get("server_saturated"):
        return f"saturated at {r.level:g} req/s: " + "; ".join(r.summary["verdict"]["reasons"])
    ok = [d for d in done if d.exit_code == 0 and d.metrics.get("requests_per_s")]
    if ok and m.get("requests_per_s"):
        best = max(ok, key=lambda d: d.metrics["requests_per_s"])
        gain = m["requests_per_s"] / best.metrics["requests_per_s"] - 1
        e2e_prev, e2e_now = best.metrics["e2e_s"]["p50"], m["e2e_s"]["p50"]
        if gain < SATURATION_GAIN and e2e_prev and e2e_now and e2e_now / e2e_prev - 1 > SATURATION_LATENCY:
            return (f"saturated: throughput {m['requests_per_s']:.3g} req/s at level {r.level:g} vs "
                    f"{best.metrics['requests_per_s']:.3g} at {best.level:g}, median e2e up {e2e_now / e2e_prev - 1:.0%}")
    return None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.1f}"


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _plus_minus(row: dict[str, Any], name: str) -> str:
    """' +/- h' (the 95% interval of the mean over a level's --repeat runs), or nothing."""
    half = ((row.get("repeat") or {}).get("ci95_half_width") or {}).get(name)
    return "" if half is None else f" +/- {half:,.1f}"


def render(rows: list[dict[str, Any]], by: str) -> str:
    """The levels' table; for embeddings or rerank levels (which generate nothing) their rates take the
    place of output tokens/s, TTFT and TPOT."""
    pooled = next((k for k in ("inputs_per_s", "documents_per_s") for r in rows if r.get(k) is not None), None)
    head = [by, "achieved req/s", "req/min", "out tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "e2e p50/p99 s",
            "errors", "goodput req/min", "verdict"]
    if pooled:
        head[3:6] = [pooled.replace("_per_s", "/s"), "prompt tok/s"]
    body = []
    for r in rows:
        rates = ([_num(r[pooled]) + _plus_minus(r, pooled), _num(r.get("prompt_tokens_per_s"))] if pooled else
                 [_num(r["output_tokens_per_s"]) + _plus_minus(r, "output_tokens_per_s"),
                  f"{_ms(r['ttft_p50_s'])} / {_ms(r['ttft_p99_s'])}",
                  f"{_ms(r['tpot_p50_s'])} / {_ms(r['tpot_p99_s'])}"])
        body.append([f"{r['level']:g}", _num(r["achieved_rate_per_s"], 2), _num(r["requests_per_min"]), *rates,
                     f"{_num(r['e2e_p50_s'], 3)} / {_num(r['e2e_p99_s'], 3)}", str(r["errors"]),
                     _num(r["goodput_requests_per_min"]) + ("" if r["slo_met"] in (None, True) else " (SLO missed)"),
                     ", ".join(r["verdict"] or []) or "valid"])
    return render_rows(body, head)


def _say(text: str) -> None:
    print(f"sweep: {text}", file=sys.stderr, flush=True)


def run_sweep(sc: SweepConfig) -> int:
    """Launch when asked, run the levels (probing first for auto), write sweep.json, print the table."""
    from loadtest.prompts.batches import pooled_prompts
    from loadtest.prompts.sources import load_prompts
    from loadtest.run.launched import launched, server_info
    from loadtest.tokens import load_tokenizer

    root = sc.base.output_dir
    assert root is not None
    if (root / "sweep.json").exists() and not sc.overwrite:
        raise ConfigError(f"--output {root} already holds a sweep; pass --overwrite to replace it")
    writable_dir(root)  # checked before anything runs, not when the last file is written
    by, auto = sc.settings.by, sc.levels is None
    levels = list(sc.levels or [])
    prompts = pooled_prompts(load_prompts(sc.base.dataset), sc.base)  # embeddings, rerank: grouped
    tokenizer = load_tokenizer(sc.base.tokenizer) if sc.base.tokenizer else None
    signals = command_signals()
    results: list[LevelResult] = []
    probes: dict[str, Any] = {}
    reason = None
    t0 = time.monotonic()
    with launched(sc.launch, sc.base) as (cfg, server):
        runner = LevelRunner(cfg, prompts, sc.settings, root=root, tokenizer=tokenizer, server_info=server_info(server),
                             signals=signals)
        if auto:
            _say("probing: one request at a time, then everything at once")
            sync = runner.run(1, "probe-synchronous", by=CONCURRENCY)
            peak = runner.run(math.inf, "probe-throughput") if not runner.interrupted else None
            if runner.interrupted or peak is None:
                reason = "interrupted while probing"
            else:
                probes = {"synchronous_requests_per_s": sync.metrics.get("requests_per_s"),
                          "throughput_requests_per_s": peak.metrics.get("requests_per_s")}
                levels = auto_rates(probes["synchronous_requests_per_s"] or 0, probes["throughput_requests_per_s"] or 0)
                _say(f"rates {', '.join(f'{r:g}' for r in levels)} req/s")
        for level in levels if reason is None else []:
            r = runner.run(level)
            if r.interrupted:  # never a measurement: its files stay, its row does not
                reason = f"interrupted at {by} {level:g}" + (f" (its partial results are in {r.directory})"
                                                             if r.directory.is_dir() else " before it sent a request")
                break
            results.append(r)
            latency = "e2e" if sc.base.pooled else "ttft"  # embeddings, rerank: no TTFT
            _say(f"{by} {level:g}: {_num(r.metrics.get('requests_per_min'))} req/min, {latency.upper()} p99 "
                 f"{_ms((r.metrics.get(latency + '_s') or {}).get('p99'))} ms, {r.summary['counts']['failed']} failed"
                 + (f"; {slos.line(r.slo)}" if r.slo else ""))
            reason = stop_reason(results[:-1], r, sc.settings)
            if reason and sc.early_stop:
                _say(f"stopping: {reason}")
                break
            reason = None if not reason else reason + " (--no-early-stop: went on)"
    rows = [r.row() for r in results]
    out = {"by": by, "levels": levels, "auto": auto, "probes": probes or None, "rows": rows, "stopped": reason,
           "interrupted": signals.received is not None,
           "objectives": [o.text() for o in sc.settings.objectives], "elapsed_s": time.monotonic() - t0}
    (root / "sweep.json").write_text(json.dumps(out, indent=2))
    print(render(rows, by))
    if reason:
        print(f"stopped early: {reason}")
    print(f"\nresults: {root}/sweep.json (a sub-directory per level)")
    if signals.exit_code is not None:
        return signals.exit_code
    return 0 if results and all(r.exit_code == 0 for r in results) else 2
