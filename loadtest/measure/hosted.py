"""Run-level figures of hosted APIs, summed from the records: rate-limited attempts, the time spent
waiting (for retries and for client-side budgets), whether that waiting, not the server, set the
pace, and the reasoning / visible split of the output tokens."""

from __future__ import annotations

from typing import Any, Protocol

WAIT_SHARE_LIMITED = 0.5
"""Above this share of request time spent waiting, the run measured a limit, not a speed."""


class _Row(Protocol):
    ok: bool
    e2e_s: float | None
    attempts: int
    rate_limited: int
    retry_wait_s: float
    limit_wait_s: float | None
    completion_tokens: int | None
    reasoning_tokens: int | None


class HostedTotals:
    def __init__(self) -> None:
        self.rate_limited = 0
        self.attempts = 0
        self.retry_wait_s = 0.0
        self.limit_wait_s: float | None = None
        self.busy_s = 0.0
        self.reasoning_tokens: int | None = None
        self.visible_tokens: int | None = None

    def add(self, row: _Row) -> None:
        """One measured (non-warm-up) record, completed or not."""
        self.rate_limited += row.rate_limited
        self.attempts += row.attempts
        self.retry_wait_s += row.retry_wait_s
        if row.limit_wait_s is not None:
            self.limit_wait_s = (self.limit_wait_s or 0.0) + row.limit_wait_s
        if row.e2e_s is not None:
            self.busy_s += row.e2e_s
        if row.ok and row.reasoning_tokens is not None and row.completion_tokens is not None:
            self.reasoning_tokens = (self.reasoning_tokens or 0) + row.reasoning_tokens
            self.visible_tokens = (self.visible_tokens or 0) + row.completion_tokens - row.reasoning_tokens

    def metrics(self, window_s: float | None) -> dict[str, Any]:
        waited = self.retry_wait_s + (self.limit_wait_s or 0.0)
        share = waited / (waited + self.busy_s) if waited + self.busy_s > 0 else None
        limited_by = None
        if share is not None and share > WAIT_SHARE_LIMITED:
            limited_by = "provider" if self.retry_wait_s >= (self.limit_wait_s or 0.0) else "client_limit"
        per_s = (lambda n: n / window_s if n is not None and window_s else None)
        return {
            "attempts_total": self.attempts,
            "retry_wait_s_total": self.retry_wait_s,
            "limit_wait_s_total": self.limit_wait_s,
            "wait_share": share,
            "limited_by": limited_by,
            "reasoning_tokens_total": self.reasoning_tokens,
            "visible_tokens_total": self.visible_tokens,
            "reasoning_tokens_per_s": per_s(self.reasoning_tokens),
            "visible_tokens_per_s": per_s(self.visible_tokens),
        }


def console_lines(summary: dict[str, Any]) -> list[str]:
    """The console's hosted-API lines (none for a run that met no limit and saw no reasoning)."""
    m, counts, lines = summary["metrics"], summary["counts"], []
    limit_wait = m.get("limit_wait_s_total")
    if counts.get("rate_limited") or limit_wait:
        lines.append(f"rate limited: {counts.get('rate_limited', 0)} attempts answered 429, "
                     f"{m['retry_wait_s_total']:.1f} s waited for retries"
                     + (f", {limit_wait:.1f} s for --rpm-limit/--tpm-limit" if limit_wait else ""))
    if m.get("limited_by") == "provider":
        lines.append(f"note: {m['wait_share']:.0%} of request time was spent waiting on the provider's rate limit: "
                     "this run measured the limit, not the server's speed")
    elif m.get("limited_by") == "client_limit":
        lines.append(f"note: {m['wait_share']:.0%} of request time was spent waiting for --rpm-limit/--tpm-limit: "
                     "the rate is the one you set, not the server's")
    if m.get("reasoning_tokens_total"):
        lines.append(f"reasoning tokens {m['reasoning_tokens_total']:,} ({_rate(m['reasoning_tokens_per_s'])}/s), "
                     f"visible {m['visible_tokens_total']:,} ({_rate(m['visible_tokens_per_s'])}/s)")
    return lines


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"
