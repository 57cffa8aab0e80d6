"""The summary's ``sessions`` block (multi-turn runs): metrics by turn index, which show what a
growing history and a warm prefix cache do to each turn, and per session (its duration, think
time included, and how many turns it completed). Computed from the records in one pass; only
measured (non-warm-up) turns count. With --tools a turn's tool rounds (tool_round > 0) are not
turns: they count in their session's duration and failures only (measure/tools.py has them). Definitions: loadtest.measure.definitions ("sessions.*")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadtest.measure.metrics import summarize


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def session_block(rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """None when no record belongs to a session (a run of single requests)."""
    turns: dict[int, dict[str, list[float]]] = {}
    spans: dict[str, list[float]] = {}  # session -> [first start, last end, ok turns, failed]
    for r in rows:
        if r.get("session_id") is None or r.get("warmup"):
            continue
        span = spans.setdefault(r["session_id"], [r["start_s"], r["start_s"], 0, 0])
        span[0] = min(span[0], r["start_s"])
        if r.get("tool_round"):  # a tool round (--tools) belongs to its turn's task: the session's time only
            if not r.get("ok"):
                span[3] += r.get("error_kind") != "cancelled"
            else:
                span[1] = max(span[1], r["end_s"])
            continue
        k = r["turn"]
        t = turns.setdefault(k, {"ttft_s": [], "e2e_s": [], "prompt_tokens": [], "cached_tokens": [], "n": [], "ok": []})
        t["n"].append(1)
        if not r.get("ok"):
            span[3] += r.get("error_kind") != "cancelled"
            continue
        t["ok"].append(1)
        span[1], span[2] = max(span[1], r["end_s"]), span[2] + 1
        for name in ("ttft_s", "e2e_s", "prompt_tokens", "cached_tokens"):
            if r.get(name) is not None:
                t[name].append(r[name])
    if not spans:
        return None
    by_turn = []
    for k in sorted(turns):
        t = turns[k]
        ttft = summarize(t["ttft_s"])
        by_turn.append({"turn": k, "requests": len(t["n"]), "ok": len(t["ok"]),
                        "ttft_s_p50": ttft["p50"], "ttft_s_mean": ttft["mean"], "e2e_s_mean": _mean(t["e2e_s"]),
                        "prompt_tokens_mean": _mean(t["prompt_tokens"]),
                        "cached_tokens_mean": _mean(t["cached_tokens"])})
    done = [s for s in spans.values() if s[2]]
    return {"sessions": len(spans), "sessions_with_failed_turn": sum(1 for s in spans.values() if s[3]),
            "by_turn": by_turn,
            "duration_s": summarize([s[1] - s[0] for s in done]),
            "turns_ok": summarize([s[2] for s in spans.values()])}
