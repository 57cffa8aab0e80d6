"""The summary's ``tools`` block (--tools runs): how agentic tool loops went. A task is one user turn
and the tool rounds answering it (run/sessions.py); the block says how tasks ended, how many
requests a task took, what each round's requests cost (a later round carries a longer history, and a
prefix cache may serve it) and the whole loop's latency as its user waits for it: first request start
to last reply end, the tool pauses included. Computed from the records in one pass; only measured
(non-warm-up) requests count. Definitions: loadtest.measure.definitions ("tools", "tool_fields")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadtest.measure.metrics import summarize

COMPLETED, FAILED, AT_MAX_ROUNDS = "completed", "failed", "at_max_rounds"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def task_end(last: dict[str, Any], failed: bool, max_rounds: int) -> str | None:
    """How a task ended, from its records: a failed request ends it as failed; a last reply without
    tool calls is its final answer; one still calling tools at round --max-tool-rounds was cut off.
    None: it was stopped on the way (the run ended, a request was cancelled)."""
    if failed:
        return FAILED
    if not last.get("ok"):
        return None
    if last.get("tool_calls") == 0:
        return COMPLETED
    if last.get("tool_round") == max_rounds:
        return AT_MAX_ROUNDS
    return None


def tool_block(rows: Iterable[dict[str, Any]], max_rounds: int) -> dict[str, Any]:
    """The block over the records of a --tools run (tasks keyed by session and turn)."""
    rounds: dict[int, dict[str, list[float]]] = {}
    tasks: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in rows:
        if r.get("tool_round") is None or r.get("warmup"):
            continue
        k = r["tool_round"]
        stats = rounds.setdefault(k, {"n": [], "ok": [], "ttft_s": [], "e2e_s": [], "prompt_tokens": []})
        stats["n"].append(1)
        task = tasks.setdefault((r.get("session_id"), r.get("turn")),
                                {"start": r["start_s"], "end": None, "requests": 0, "calls": 0, "last": r,
                                 "failed": False})
        task["requests"] += 1
        task["start"] = min(task["start"], r["start_s"])
        if k >= task["last"].get("tool_round", 0):
            task["last"] = r
        if not r.get("ok"):
            task["failed"] = task["failed"] or r.get("error_kind") not in ("cancelled", "abandoned")
            continue
        stats["ok"].append(1)
        task["calls"] += r.get("tool_calls") or 0
        task["end"] = r["end_s"] if task["end"] is None else max(task["end"], r["end_s"])
        for name in ("ttft_s", "e2e_s", "prompt_tokens"):
            if r.get(name) is not None:
                stats[name].append(r[name])
    ends = {t: task_end(v["last"], v["failed"], max_rounds) for t, v in tasks.items()}
    by_round = []
    for k in sorted(rounds):
        s = rounds[k]
        ttft = summarize(s["ttft_s"])
        by_round.append({"round": k, "requests": len(s["n"]), "ok": len(s["ok"]), "ttft_s_p50": ttft["p50"],
                         "ttft_s_mean": ttft["mean"], "e2e_s_mean": _mean(s["e2e_s"]),
                         "prompt_tokens_mean": _mean(s["prompt_tokens"])})
    done = [v for t, v in tasks.items() if ends[t] == COMPLETED]
    return {"tasks": len(tasks),
            "tasks_completed": sum(1 for e in ends.values() if e == COMPLETED),
            "tasks_failed": sum(1 for e in ends.values() if e == FAILED),
            "tasks_at_max_rounds": sum(1 for e in ends.values() if e == AT_MAX_ROUNDS),
            "tool_calls": sum(v["calls"] for v in tasks.values()),
            "requests_per_task": summarize([v["requests"] for v in tasks.values()]),
            "loop_latency_s": summarize([v["end"] - v["start"] for v in done]),
            "by_round": by_round}
