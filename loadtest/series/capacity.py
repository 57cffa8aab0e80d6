"""``loadtest capacity --slo ...``: the highest load (request rate, or concurrency) at which the
server still meets the SLOs. Bracket by doubling from --start, then bisect until the bracket is
within --precision; finally repeat the boundary level to say how firm the answer is.

A level *passes* when its run succeeded, its failed share is within --max-error-rate, every
run-level objective holds, at least --slo-attainment of its requests met the per-request ones,
and (open loop) the server completed at least 90% of the rate asked (levelrun.LevelResult.passes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.judge import slo as slos
from loadtest.errors import ConfigError
from loadtest.series.level import CONCURRENCY, RATE, LevelResult, LevelRunner
from loadtest.run.output import default_output_dir
from loadtest.series.sweep import base_namespace, render

MAX_LEVELS = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    from loadtest.cli.argtypes import positive_float as _positive_float

    g = p.add_argument_group("capacity search")
    g.add_argument("--start", type=_positive_float, default=1.0, help="first level tried (default 1)")
    g.add_argument("--precision", type=_positive_float, default=0.05,
                   help="stop when the bracket is within this fraction of the answer (default 0.05; "
                        "concurrency: within 1)")
    g.add_argument("--max-levels", type=int, default=MAX_LEVELS, help=f"runs at most (default {MAX_LEVELS})")
    g.add_argument("--no-repeat", dest="repeat", action="store_false",
                   help="do not run the boundary level a second time")


def _say(text: str) -> None:
    print(f"capacity: {text}", file=sys.stderr, flush=True)


class Search:
    """Bracketing and bisection over levels; ``run(level) -> LevelResult``. Pure logic apart from
    the runs, so its steps are easy to follow in the log and in capacity.json."""

    def __init__(self, run: Callable[[float], LevelResult], *, integer: bool, precision: float,
                 max_error_rate: float, max_levels: int) -> None:
        self.run, self.integer, self.precision = run, integer, precision
        self.max_error_rate, self.max_levels = max_error_rate, max_levels
        self.tried: list[LevelResult] = []

    def _ok(self, level: float) -> bool:
        r = self.run(level)
        self.tried.append(r)
        ok = r.passes(self.max_error_rate)
        _say(f"level {level:g}: {'meets' if ok else 'misses'} the objectives"
             + (f" ({slos.line(r.slo)})" if r.slo else ""))
        return ok

    def _narrow(self, lo: float, hi: float) -> bool:
        return hi - lo <= 1 if self.integer else (hi - lo) <= self.precision * lo

    def _mid(self, lo: float, hi: float) -> float:
        return float((lo + hi) // 2) if self.integer else float(f"{(lo + hi) / 2:.4g}")

    def find(self, start: float) -> tuple[float | None, float | None, str | None]:
        """(highest passing level, lowest failing level, why it ended early)."""
        lo: float | None = None
        hi: float | None = None
        level = start
        # Bracket: double up from a pass, halve down from a failure.
        while len(self.tried) < self.max_levels:
            if self._ok(level):
                lo = level
                if hi is not None:
                    break
                level = level * 2
            else:
                hi = level
                if lo is not None:
                    break
                level = float(int(level // 2)) if self.integer else level / 2
                if level < (1 if self.integer else start / 64):
                    return None, hi, "even the lowest level tried misses the objectives"
        else:
            return lo, hi, f"--max-levels {self.max_levels} reached while bracketing"
        assert lo is not None and hi is not None
        while not self._narrow(lo, hi):
            if len(self.tried) >= self.max_levels:
                return lo, hi, f"--max-levels {self.max_levels} reached while bisecting"
            mid = self._mid(lo, hi)
            if mid <= lo or mid >= hi:
                break
            if self._ok(mid):
                lo = mid
            else:
                hi = mid
        return lo, hi, None


def answer_line(by: str, level: float | None, result: LevelResult | None, objectives: list[slos.Objective]) -> str:
    what = " and ".join(o.text() for o in objectives) or "no failed requests"
    if level is None or result is None:
        return f"does not meet {what} at any level tried"
    m = result.metrics
    if by == RATE:
        return f"sustains {level:g} req/s ({level * 60:,.0f} req/min) with {what}"
    rpm = m.get("requests_per_min") or 0
    return f"sustains {level:g} concurrent requests ({rpm:,.0f} req/min) with {what}"


def run(ns: argparse.Namespace, *, make_config: Callable[[argparse.Namespace], Any],
        maybe_launch: Callable[..., Any]) -> int:
    from loadtest.prompts.sources import load_prompts
    from loadtest.tokens import load_tokenizer

    objectives = slos.parse(ns.slo)
    if not objectives:
        raise ConfigError("capacity needs at least one --slo (e.g. --slo ttft:p99=0.5)")
    if getattr(ns, "resume", None) is not None:
        raise ConfigError("capacity has no --resume")
    by = RATE if ns.by == "rate" else CONCURRENCY
    integer = by == CONCURRENCY
    start = max(1.0, float(int(ns.start))) if integer else ns.start
    root: Path = ns.output or default_output_dir("capacity")
    if (root / "capacity.json").exists() and not ns.overwrite:
        raise ConfigError(f"--output {root} already holds a capacity search; pass --overwrite to replace it")
    root.mkdir(parents=True, exist_ok=True)
    cfg = make_config(base_namespace(ns, by=by, first=start))
    prompts = load_prompts(cfg.dataset)
    tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    t0 = time.monotonic()
    with maybe_launch(ns, cfg) as (cfg, server):
        info = (lambda: {**server.info, "resources": server.resources()}) if server is not None else None
        runner = LevelRunner(cfg, prompts, by=by, root=root, tokenizer=tokenizer, server_info=info,
                             objectives=objectives, attainment=ns.slo_attainment, num_prompts=ns.num_prompts)
        search = Search(runner.run, integer=integer, precision=ns.precision, max_error_rate=ns.max_error_rate,
                        max_levels=ns.max_levels)
        lo, hi, early = search.find(start)
        repeat = None
        if lo is not None and ns.repeat and not runner.interrupted:
            again = runner.run(lo, f"{by}-{lo:g}-repeat")
            repeat = again.passes(ns.max_error_rate)
            search.tried.append(again)
    best = next((r for r in search.tried if r.level == lo and r.passes(ns.max_error_rate)), None)
    line = answer_line(by, lo, best, objectives)
    confidence = ("not repeated" if repeat is None else
                  "the boundary level passed again when repeated" if repeat else
                  "the boundary level FAILED when repeated: the answer is at the edge; treat it as an upper bound")
    out = {"by": by, "answer": lo, "lowest_failing": hi, "precision": ns.precision, "answer_line": line,
           "confidence": confidence, "ended_early": early, "objectives": [o.text() for o in objectives],
           "rows": [r.row() for r in search.tried], "elapsed_s": time.monotonic() - t0}
    (root / "capacity.json").write_text(json.dumps(out, indent=2))
    print(render(out["rows"], by))
    print(f"\n{line}")
    bracket = f"between {lo:g} (passes) and {hi:g} (misses)" if lo is not None and hi is not None else ""
    print(f"search: {len(search.tried)} runs{', ' + bracket if bracket else ''}; {confidence}"
          + (f"; ended early: {early}" if early else ""))
    print(f"\nresults: {root}/capacity.json (a sub-directory per level)")
    return 0 if lo is not None else 2
