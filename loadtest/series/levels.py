"""The load levels of ``sweep`` and ``capacity``: parsing ``--concurrency 1,2,4`` /
``--request-rate 1,2,4|auto``, spacing the automatic rates between a synchronous and a saturating
probe, and running one level: a throughput run at a given concurrency or rate in its own
sub-directory, judged against the SLOs, summarised as one table row. Every level runs through
run/execute.py under the command's one ``Signals``: a signal stops the level it lands in (its
summary is written, marked interrupted) and the series after it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.judge import slo as slos
from loadtest.run.execute import NothingMeasured, Signals, command_signals, execute, remove_unmeasured
from loadtest.run.output import prepare_output_dir
from loadtest.run.postrun import judge

INT_LIMIT = 2 ** 63 - 1
"""The largest level a summary holds (an integer past it was an internal error)."""

RATE, CONCURRENCY = "rate", "concurrency"
AUTO_LEVELS = 10


def parse_levels(text: str, *, integer: bool, flag: str) -> list[float]:
    """'1,2,4' -> [1, 2, 4] (sorted, unique); each > 0 and finite; an empty item ('1,,2') is a typo,
    refused rather than skipped. A level past 64 bits is refused here; one past what this process
    may open (the open-files limit) is refused by the sweep before its first level
    (run/openfiles.py), with the ulimit -n to ask for."""
    values: list[float] = []
    limit = INT_LIMIT if integer else None
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ConfigError(f"{flag}: an empty level in {text!r} (give a comma-separated list, e.g. 1,2,4)")
        try:
            v = float(part) if not integer or not part.isdigit() else int(part)
        except ValueError:
            raise ConfigError(f"{flag}: {part!r} is not a number (give a comma-separated list, e.g. 1,2,4)") from None
        if not (math.isfinite(v) and v > 0) or (integer and v != int(v)):
            raise ConfigError(f"{flag}: each level must be a {'whole number' if integer else 'finite number'} > 0, "
                              f"got {part!r}")
        if limit is not None and v > limit:
            raise ConfigError(f"{flag}: level {part} is past 64 bits ({limit:,} at most)")
        values.append(int(v) if integer else v)
    return sorted(set(values))


def auto_rates(sync_rps: float, max_rps: float, n: int = AUTO_LEVELS) -> list[float]:
    """GuideLLM's sweep: ``n`` rates evenly spaced from the synchronous rate (one request at a
    time) to the saturated one (everything at once), both ends included, rounded to 3 figures."""
    if not (sync_rps > 0 and max_rps > 0):
        raise ConfigError("--request-rate auto: a probe completed no request; give the rates explicitly")
    lo, hi = min(sync_rps, max_rps), max(sync_rps, max_rps)
    return [float(f"{r:.3g}") for r in np.linspace(lo, hi, n)]


def level_name(by: str, level: float) -> str:
    """Sub-directory of a level: rate-4, rate-2.5, concurrency-16."""
    return f"{by}-{level:g}"


@dataclass(frozen=True)
class LevelSettings:
    """What every level of a sweep or capacity search shares besides the run's own config: the
    axis, how many requests a level measures, and what makes it pass."""

    by: str                                    # RATE or CONCURRENCY
    objectives: tuple[slos.Objective, ...] = ()
    attainment: float = slos.DEFAULT_ATTAINMENT
    num_prompts: int | None = None             # per level; None: max(100, 4 x level), rates 10 s worth
    max_error_rate: float = 0.05
    allow_client_bound: bool = False
    repeat: Any = None                         # RepeatSettings | None: --repeat N at each level (repeat.py)


@dataclass
class LevelResult:
    by: str
    level: float
    directory: Path
    summary: dict[str, Any]
    exit_code: int
    message: str | None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.summary["metrics"]

    @property
    def error_rate(self) -> float:
        c = self.summary["counts"]
        return c["failed"] / c["requests"] if c["requests"] else 1.0

    @property
    def slo(self) -> dict[str, Any] | None:
        return self.summary.get("slo")

    @property
    def client_bound(self) -> bool:
        return bool((self.summary.get("verdict") or {}).get("client_bound"))

    @property
    def interrupted(self) -> bool:
        """Stopped by a signal: what it measured is kept on disk but is not a level's result."""
        return self.summary["run"].get("ended") == "interrupted"

    def passes(self, max_error_rate: float) -> bool:
        """A level meets its objectives: it ran, few enough requests failed, SLOs (if any) met, and
        an open loop's server kept up (completions at >= 90% of the target rate) and its schedule
        was issued (no start dropped: a level that dropped starts never ran at its rate)."""
        if self.exit_code != 0 or self.error_rate > max_error_rate:
            return False
        if self.slo is not None and not self.slo["met"]:
            return False
        verdict = self.summary.get("verdict") or {}
        return not verdict.get("server_saturated") and not verdict.get("schedule_missed")

    def row(self) -> dict[str, Any]:
        m = self.metrics

        def stat(name: str, key: str) -> float | None:
            return (m.get(name) or {}).get(key)

        verdict = self.summary.get("verdict") or {}
        rep = self.summary.get("repeat")  # --repeat: the level's row is its group's, with the intervals
        repeat = None if not rep else {"runs": rep.get("runs"), "ci95_half_width": {
            k: (rep.get("metrics", {}).get(k) or {}).get("half_width")
            for k in ("output_tokens_per_s", "requests_per_min", "ttft_s.p99")}}
        return {
            "level": self.level, "by": self.by, "directory": self.directory.name,
            "achieved_rate_per_s": m.get("achieved_rate_per_s"),
            "requests_per_s": m.get("requests_per_s"), "requests_per_min": m.get("requests_per_min"),
            "output_tokens_per_s": m.get("output_tokens_per_s"),
            "prompt_tokens_per_s": m.get("prompt_tokens_per_s"), "inputs_per_s": m.get("inputs_per_s"),
            "documents_per_s": m.get("documents_per_s"),
            "ttft_p50_s": stat("ttft_s", "p50"), "ttft_p99_s": stat("ttft_s", "p99"),
            "tpot_p50_s": stat("tpot_s", "p50"), "tpot_p99_s": stat("tpot_s", "p99"),
            "e2e_p50_s": stat("e2e_s", "p50"), "e2e_p99_s": stat("e2e_s", "p99"),
            "send_lag_p99_s": stat("send_lag_s", "p99"),
            "errors": self.summary["counts"]["failed"], "error_rate": self.error_rate,
            "goodput_requests_per_min": (self.slo or {}).get("goodput_requests_per_min"),
            "slo_met": None if self.slo is None else self.slo["met"],
            "verdict": verdict.get("labels"),
            "exit_code": self.exit_code,
            **({"repeat": repeat} if repeat else {}),
        }


class LevelRunner:
    """Runs levels against one endpoint with everything else fixed (prompts, seed, tokenizer)."""

    def __init__(self, base: RunConfig, prompts: list[Any], settings: LevelSettings, *, root: Path,
                 tokenizer: Any = None, server_info: Callable[[], dict[str, Any] | None] | None = None,
                 signals: Signals | None = None) -> None:
        self.base, self.prompts, self.settings, self.root = base, prompts, settings, root
        self.by = settings.by
        self.tokenizer, self.server_info = tokenizer, server_info
        self.signals = signals if signals is not None else command_signals()

    @property
    def interrupted(self) -> bool:
        return self.signals.received is not None

    def config(self, level: float, directory: Path, by: str | None = None) -> RunConfig:
        by = by or self.by
        cfg = self.base
        if cfg.duration_s is None:
            n = self.settings.num_prompts or (max(50, math.ceil(10 * level)) if by == RATE and math.isfinite(level)
                                              else max(100, 4 * int(level)) if by == CONCURRENCY else 100)
            cfg = replace(cfg, num_prompts=n)
        if by == RATE:
            return replace(cfg, request_rate=level, output_dir=directory, command="throughput")
        return replace(cfg, concurrency=int(level), request_rate=None, max_concurrency=None, output_dir=directory,
                       command="throughput")

    def run(self, level: float, name: str | None = None, *, by: str | None = None) -> LevelResult:
        by = by or self.by
        directory = self.root / (name or level_name(by, level))
        prepare_output_dir(directory, overwrite=True)
        cfg = self.config(level, directory, by)
        try:
            if self.settings.repeat is not None:  # the level is a group of reps; its row their summary
                from loadtest.series.repeat import run_group

                group = run_group(cfg, self.settings.repeat, self._run_one, self.signals, overwrite=True)
                return LevelResult(by, level, directory, group.summary, group.exit_code, group.message)
            outcome = self._run_one(cfg)
        except NothingMeasured as exc:  # stopped before its first request: no directory, not a row
            remove_unmeasured(directory)  # (a --repeat level's own directory, when no rep is left in it)
            return LevelResult(by, level, directory, {"run": {"ended": "interrupted"}, "metrics": {},
                                                      "counts": {"requests": 0, "completed": 0, "failed": 0}},
                               exc.exit_code, None)
        return LevelResult(by, level, directory, outcome.summary, outcome.exit_code, outcome.message)

    def _run_one(self, cfg: RunConfig) -> Any:
        """One run in cfg.output_dir, judged against the SLOs: its RunOutcome."""
        from loadtest.run.runner import Run

        assert cfg.output_dir is not None
        run = Run(cfg, self.prompts, directory=cfg.output_dir, tokenizer=self.tokenizer, server_info=self.server_info)
        outcome = execute(run, self.signals)
        judge(cfg.output_dir, outcome.summary, list(self.settings.objectives), self.settings.attainment)
        return outcome
