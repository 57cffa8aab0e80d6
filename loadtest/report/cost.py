"""What the measured throughput costs: a GPU's price per hour, or a hosted API's per-token prices.

GPU: the hour buys output_tokens_per_s x 3600 tokens and requests_per_min x 60 requests.
API: each request pays for its prompt and completion tokens at the given prices per 1M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest.report.load import SavedRun


@dataclass(frozen=True)
class Prices:
    per_hour: float | None = None
    per_1m_input: float | None = None
    per_1m_output: float | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.per_hour, self.per_1m_input, self.per_1m_output))


def run_cost(run: SavedRun, prices: Prices) -> dict[str, float | None]:
    """$ per 1M output tokens and $ per 1,000 requests for one run (None where not computable)."""
    if prices.per_hour is not None:
        tps, rpm = run.metric("output_tokens_per_s"), run.metric("requests_per_min")
        return {"usd_per_1m_output_tokens": prices.per_hour / (tps * 3600) * 1e6 if tps else None,
                "usd_per_1k_requests": prices.per_hour / (rpm * 60) * 1000 if rpm else None}
    completed = run.count("completed")
    out_tokens = run.metric("completion_tokens_total")
    in_tokens = run.metric("prompt_tokens_total")
    if not completed or not out_tokens:
        return {"usd_per_1m_output_tokens": None, "usd_per_1k_requests": None}
    total = (out_tokens * (prices.per_1m_output or 0.0)) / 1e6
    if prices.per_1m_input:
        if in_tokens is None:
            return {"usd_per_1m_output_tokens": None, "usd_per_1k_requests": None}
        total += in_tokens * prices.per_1m_input / 1e6
    return {"usd_per_1m_output_tokens": total / out_tokens * 1e6, "usd_per_1k_requests": total / completed * 1000}


def describe(prices: Prices) -> str:
    if prices.per_hour is not None:
        return f"at ${prices.per_hour:g} per hour of the server, at the measured throughput"
    return (f"at ${prices.per_1m_input or 0:g} per 1M input and ${prices.per_1m_output or 0:g} per 1M output tokens "
            "(hosted API prices), with the runs' measured token counts")


def cost_summary(runs: list[SavedRun], prices: Prices) -> list[dict[str, Any]]:
    return [{"run": r.label, "engine": r.engine, "model": r.model, "command": r.command, **run_cost(r, prices)}
            for r in runs]
