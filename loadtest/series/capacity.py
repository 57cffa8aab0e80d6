"""``loadtest capacity --slo ...``: the highest load (request rate, or concurrency) at which the
server still meets the SLOs. Bracket by doubling from --start, then bisect until the bracket is
within --precision; finally repeat the boundary level to say how firm the answer is.

A level *passes* when its run succeeded, its failed share is within --max-error-rate, every
run-level objective holds, at least --slo-attainment of its requests met the per-request ones,
and (open loop) the server completed at least 90% of the rate asked (levels.LevelResult.passes).
A level stopped by a signal is not a measurement: the search ends there, announcing no answer.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.run.output import writable_dir
from loadtest.judge import slo as slos
from loadtest.run.execute import command_signals
from loadtest.series.levels import CONCURRENCY, RATE, LevelResult, LevelRunner, LevelSettings
from loadtest.series.sweep import render

MAX_LEVELS = 16


@dataclass(frozen=True)
class CapacityConfig:
    """A capacity search: the run's config at the first level (its output_dir is the search's
    root), what every level shares, and the search's own settings."""

    base: RunConfig
    settings: LevelSettings
    start: float = 1.0
    precision: float = 0.05
    max_levels: int = MAX_LEVELS
    repeat: bool = True
    launch: Any = None           # LaunchSpec | None
    overwrite: bool = False


class Interrupted(Exception):
    """A level was stopped by a signal: the search ends without a verdict on that level."""


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
        if r.interrupted:
            raise Interrupted(level)
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


def run_capacity(cc: CapacityConfig) -> int:
    """Launch when asked, search, write capacity.json, print the table and the answer."""
    from loadtest.prompts.batches import pooled_prompts
    from loadtest.prompts.sources import load_prompts
    from loadtest.run.launched import launched, server_info
    from loadtest.tokens import load_tokenizer

    settings = cc.settings
    if not settings.objectives:
        raise ConfigError("capacity needs at least one --slo (e.g. --slo ttft:p99=0.5)")
    by = settings.by
    integer = by == CONCURRENCY
    start = max(1.0, float(int(cc.start))) if integer else cc.start
    root = cc.base.output_dir
    assert root is not None
    if (root / "capacity.json").exists() and not cc.overwrite:
        raise ConfigError(f"--output {root} already holds a capacity search; pass --overwrite to replace it")
    writable_dir(root)  # checked before anything runs, not when the last file is written
    prompts = pooled_prompts(load_prompts(cc.base.dataset), cc.base)  # embeddings, rerank: grouped
    tokenizer = load_tokenizer(cc.base.tokenizer) if cc.base.tokenizer else None
    signals = command_signals()
    t0 = time.monotonic()
    lo = hi = early = repeat = None
    with launched(cc.launch, cc.base) as (cfg, server):
        runner = LevelRunner(cfg, prompts, settings, root=root, tokenizer=tokenizer, server_info=server_info(server),
                             signals=signals)
        search = Search(runner.run, integer=integer, precision=cc.precision, max_error_rate=settings.max_error_rate,
                        max_levels=cc.max_levels)
        try:
            lo, hi, early = search.find(start)
            if lo is not None and cc.repeat:
                again = runner.run(lo, f"{by}-{lo:g}-repeat")
                if again.interrupted:
                    raise Interrupted(lo)
                repeat = again.passes(settings.max_error_rate)
                search.tried.append(again)
        except Interrupted as stopped:
            early = f"interrupted at level {stopped.args[0]:g}: no answer is given for an interrupted search"
            lo = None
    best = next((r for r in search.tried if r.level == lo and r.passes(settings.max_error_rate)), None)
    line = ("interrupted: no answer (an interrupted level is not a measurement)" if signals.received is not None
            else answer_line(by, lo, best, list(settings.objectives)))
    confidence = ("not repeated" if repeat is None else
                  "the boundary level passed again when repeated" if repeat else
                  "the boundary level FAILED when repeated: the answer is at the edge; treat it as an upper bound")
    out = {"by": by, "answer": lo, "lowest_failing": hi, "precision": cc.precision, "answer_line": line,
           "confidence": confidence, "ended_early": early, "interrupted": signals.received is not None,
           "objectives": [o.text() for o in settings.objectives],
           "rows": [r.row() for r in search.tried], "elapsed_s": time.monotonic() - t0}
    (root / "capacity.json").write_text(json.dumps(out, indent=2))
    print(render(out["rows"], by))
    print(f"\n{line}")
    bracket = f"between {lo:g} (passes) and {hi:g} (misses)" if lo is not None and hi is not None else ""
    print(f"search: {len(search.tried)} runs{', ' + bracket if bracket else ''}; {confidence}"
          + (f"; ended early: {early}" if early else ""))
    print(f"\nresults: {root}/capacity.json (a sub-directory per level)")
    if signals.exit_code is not None:
        return signals.exit_code
    return 0 if lo is not None else 2
