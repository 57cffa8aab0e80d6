"""One load level of a sweep or a capacity search: a throughput run at a given concurrency or
rate in its own sub-directory, judged against the SLOs, summarised as one table row."""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.judge import slo as slos
from loadtest.config import RunConfig
from loadtest.run.output import prepare_output_dir
from loadtest.run.postrun import judge
from loadtest.eventloop import loop_factory

RATE, CONCURRENCY = "rate", "concurrency"


def level_name(by: str, level: float) -> str:
    """Sub-directory of a level: rate-4, rate-2.5, concurrency-16."""
    return f"{by}-{level:g}"


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

    def passes(self, max_error_rate: float) -> bool:
        """A level meets its objectives: it ran, few enough requests failed, SLOs (if any) met, and
        an open loop's server kept up (completions at >= 90% of the target rate)."""
        if self.exit_code != 0 or self.error_rate > max_error_rate:
            return False
        if self.slo is not None and not self.slo["met"]:
            return False
        return not (self.summary.get("verdict") or {}).get("server_saturated")

    def row(self) -> dict[str, Any]:
        m = self.metrics

        def stat(name: str, key: str) -> float | None:
            return (m.get(name) or {}).get(key)

        verdict = self.summary.get("verdict") or {}
        return {
            "level": self.level, "by": self.by, "directory": self.directory.name,
            "achieved_rate_per_s": m.get("achieved_rate_per_s"),
            "requests_per_s": m.get("requests_per_s"), "requests_per_min": m.get("requests_per_min"),
            "output_tokens_per_s": m.get("output_tokens_per_s"),
            "ttft_p50_s": stat("ttft_s", "p50"), "ttft_p99_s": stat("ttft_s", "p99"),
            "tpot_p50_s": stat("tpot_s", "p50"), "tpot_p99_s": stat("tpot_s", "p99"),
            "e2e_p50_s": stat("e2e_s", "p50"), "e2e_p99_s": stat("e2e_s", "p99"),
            "send_lag_p99_s": stat("send_lag_s", "p99"),
            "errors": self.summary["counts"]["failed"], "error_rate": self.error_rate,
            "goodput_requests_per_min": (self.slo or {}).get("goodput_requests_per_min"),
            "slo_met": None if self.slo is None else self.slo["met"],
            "verdict": verdict.get("labels"),
            "exit_code": self.exit_code,
        }


class LevelRunner:
    """Runs levels against one endpoint with everything else fixed (prompts, seed, tokenizer)."""

    def __init__(self, base: RunConfig, prompts: list[Any], *, by: str, root: Path, tokenizer: Any = None,
                 server_info: Callable[[], dict[str, Any] | None] | None = None,
                 objectives: list[slos.Objective] | None = None, attainment: float = slos.DEFAULT_ATTAINMENT,
                 num_prompts: int | None = None) -> None:
        self.base, self.prompts, self.by, self.root = base, prompts, by, root
        self.tokenizer, self.server_info = tokenizer, server_info
        self.objectives, self.attainment = objectives or [], attainment
        self.num_prompts = num_prompts
        self.interrupted = False

    def config(self, level: float, directory: Path) -> RunConfig:
        cfg = self.base
        if cfg.duration_s is None:
            n = self.num_prompts or (max(50, math.ceil(10 * level)) if self.by == RATE and math.isfinite(level)
                                     else max(100, 4 * int(level)) if self.by == CONCURRENCY else 100)
            cfg = replace(cfg, num_prompts=n)
        if self.by == RATE:
            return replace(cfg, request_rate=level, output_dir=directory, command="throughput")
        return replace(cfg, concurrency=int(level), request_rate=None, output_dir=directory, command="throughput")

    def run(self, level: float, name: str | None = None) -> LevelResult:
        from loadtest.run.runner import Run

        directory = self.root / (name or level_name(self.by, level))
        prepare_output_dir(directory, overwrite=True)
        cfg = self.config(level, directory)
        run = Run(cfg, self.prompts, directory=directory, tokenizer=self.tokenizer, server_info=self.server_info)

        async def main() -> Any:
            loop = asyncio.get_running_loop()

            def on_signal() -> None:
                self.interrupted = run.interrupted = True
                run.stop.set()
                print("\nloadtest: stopping after this level", file=sys.stderr, flush=True)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            return await run.execute()

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(main())
        result = LevelResult(self.by, level, directory, outcome.summary, outcome.exit_code, outcome.message)
        judge(directory, outcome.summary, self.objectives, self.attainment)
        return result
