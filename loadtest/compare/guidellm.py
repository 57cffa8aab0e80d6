"""GuideLLM's report (`guidellm benchmark --output-path benchmarks.json`) as a side of a comparison.

Shape read (GuideLLM's GenerativeBenchmarksReport, metadata.version 2): a top-level object with
``benchmarks``, one per load level; each holds ``requests`` split into ``successful``, ``errored`` and
``incomplete`` lists of per-request stats. Every timestamp is Unix epoch seconds
(``info.timings.request_start``, ``first_token_iteration``, ``last_token_iteration``, ``request_end``);
the derived times GuideLLM writes beside them end in ``_ms``. The lists hold every request of the
benchmark, warm-up and cool-down ones included, so the requests are cut here to the measurement window
GuideLLM's own metrics use (``scheduler_metrics.measure_start_time`` .. ``measure_end_time``: a request
counts when it ends after the start and starts before the end).

Only per-request values are read; there are no per-chunk arrival times (GuideLLM keeps the first and
last token's and a count of iterations), so chunk ITL is not derived. A report of several benchmarks
(a sweep) is refused in one line naming them; one is taken out with jq (docs/compare.md).
This module only builds plain dicts; foreign.py wraps them.
"""

from __future__ import annotations

from typing import Any

from loadtest.measure.record import CANCELLED
from loadtest.report.load import dig

GUIDELLM = "GuideLLM"
NOT_RECORDED = ["api", "stream", "dataset", "prompt_tokens", "max_tokens", "ignore_eos", "temperature", "seed"]


class GuideLLMError(Exception):
    """A GuideLLM report that cannot be compared as it is (a sweep, no benchmarks, no requests)."""


def is_guidellm(doc: Any) -> bool:
    benches = doc.get("benchmarks") if isinstance(doc, dict) else None
    return isinstance(benches, list) and (not benches or (
        isinstance(benches[0], dict) and isinstance(benches[0].get("requests"), dict)))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def strategy_name(bench: dict[str, Any]) -> str:
    s = dig(bench, "config", "strategy", default={})
    if not isinstance(s, dict):
        return "?"
    kind = s.get("type_", "?")
    if kind == "synchronous":
        return "concurrency 1"
    if kind == "concurrent":
        return f"concurrency {s.get('streams')}"
    if kind in ("constant", "poisson"):
        cap = s.get("max_concurrency")
        return f"rate {float(s.get('rate') or 0):g}/s" + (f", max concurrency {cap}" if cap else "") + \
            (" (poisson)" if kind == "poisson" else "")
    if kind == "throughput":
        cap = s.get("max_concurrency")
        return f"concurrency {cap}" if cap else "every request at once"
    return str(kind)


def pick(doc: dict[str, Any], where: str) -> dict[str, Any]:
    benches = doc["benchmarks"]
    if not benches:
        raise GuideLLMError(f"{where}: a GuideLLM report with no benchmarks in it")
    if len(benches) > 1:
        names = "; ".join(f"{i}: {strategy_name(b)}" for i, b in enumerate(benches))
        raise GuideLLMError(f"{where}: a GuideLLM report of {len(benches)} benchmarks ({names}); compare one at a "
                            f"time: jq '.benchmarks |= [.[N]]' {where} > one.json")
    return benches[0]


def _row(req: dict[str, Any], ok: bool, status: str, t0: float) -> dict[str, Any]:
    t = dig(req, "info", "timings", default={}) or {}
    start, end = _num(t.get("request_start")), _num(t.get("request_end"))
    first, last = _num(t.get("first_token_iteration")), _num(t.get("last_token_iteration"))
    tokens = req.get("output_tokens")
    tokens = int(tokens) if _num(tokens) is not None else None
    ttft = first - start if first is not None and start is not None else None
    e2e = end - start if end is not None and start is not None else None
    tpot = (last - first) / (tokens - 1) if ok and first is not None and last is not None and tokens and tokens > 1 \
        else None
    return {"ok": ok, "error_kind": None if ok else status, "ttft_s": ttft if ok else None,
            "e2e_s": e2e if ok else None, "tpot_s": tpot,
            "tokens_per_s": tokens / e2e if ok and tokens and e2e else None, "completion_tokens": tokens,
            "prompt_tokens": req.get("prompt_tokens"), "chunk_offsets_s": None, "chunk_tokens": None,
            "start_s": start - t0 if start is not None else None}


def _in_window(req: dict[str, Any], lo: float | None, hi: float | None) -> bool:
    t = dig(req, "info", "timings", default={}) or {}
    start = _num(t.get("request_start")) or _num(t.get("resolve_start"))
    end = _num(t.get("request_end")) or _num(t.get("resolve_end"))
    return (lo is None or end is None or end >= lo) and (hi is None or start is None or start <= hi)


def read(doc: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[str]]:
    """(records, summary, settings, definitions) of the one benchmark in a GuideLLM report."""
    bench = pick(doc, where)
    lo = _num(dig(bench, "scheduler_metrics", "measure_start_time"))
    hi = _num(dig(bench, "scheduler_metrics", "measure_end_time"))
    groups = [(status, [r for r in (bench["requests"].get(status) or []) if isinstance(r, dict)])
              for status in ("successful", "errored", "incomplete")]
    total = sum(len(rows) for _, rows in groups)
    kept = [(status, r) for status, rows in groups for r in rows if _in_window(r, lo, hi)]
    starts = [_num(dig(r, "info", "timings", "request_start")) for _, r in kept]
    t0 = min((s for s in starts if s is not None), default=lo or 0.0)
    # incomplete = cancelled after it started (GuideLLM's status "cancelled"): loadtest's cancelled
    records = [_row(r, status == "successful", CANCELLED if status == "incomplete" else "errored", t0)
               for status, r in kept]
    ok = [r for r in records if r["ok"]]
    window = hi - lo if lo is not None and hi is not None and hi > lo else None
    metrics = {"requests_per_min": len(ok) / window * 60.0 if window else None,
               "output_tokens_per_s": sum(r["completion_tokens"] or 0 for r in ok) / window if window else None}
    summary = {"command": GUIDELLM, "metrics": metrics,
               "foreign": {"tool": GUIDELLM, "version": dig(doc, "metadata", "guidellm_version")}}
    model = dig(bench, "config", "backend", "model") or dig(doc, "config", "backend", "model")
    settings = {"model": model if isinstance(model, str) else None, "num_prompts": None,
                "load": strategy_name(bench)}
    recorded = dig(bench, "metrics", "request_totals", "successful")
    definitions = [
        ("TTFT: GuideLLM stops the clock at the first streamed chunk its handler counts as generated tokens, "
         "reasoning included (first_token_iteration - request_start); loadtest's at the first chunk carrying text"),
        ("e2e: GuideLLM's request_latency ends when the response stream is closed (request_end, after [DONE]); "
         "loadtest's at the answer's last byte"),
        ("TPOT: GuideLLM's time_per_output_token_ms runs from the request's start (TTFT included) over all output "
         "tokens; its inter_token_latency_ms is (last - first token time) / (output tokens - 1), closest to "
         "loadtest's tpot_s and the one derived here"),
        ("ITL: GuideLLM keeps no per-chunk arrival times (only the first and last token times and an iteration "
         "count), so neither ITL per token nor per chunk is derived or compared"),
        ("output tokens: GuideLLM takes the response's usage when it has one, else counts one token per streamed "
         "iteration; loadtest takes the server's usage (tokens/s per request and TPOT follow)"),
        ("input lengths: GuideLLM's prompt_tokens are the server's usage or its own count (not compared)"),
        (f"warm-up and cool-down: GuideLLM's lists keep every request; the {len(kept)} of {total} inside its "
         "measurement window (measure_start_time .. measure_end_time, as its own metrics) are read; errored and "
         "incomplete (cancelled after starting) requests count as loadtest's errors and cancelled ones"),
        ("output tokens/s, requests/min: derived here as the window's completed requests and their output tokens "
         "over GuideLLM's measurement window; loadtest's over its measurement window"),
    ]
    if _num(recorded) is not None and int(recorded) != len(ok):  # type: ignore[arg-type]
        definitions.append(f"requests: GuideLLM's metrics count {int(recorded)} successful requests in the "  # type: ignore[arg-type]
                           f"window, its list holds {len(ok)} (an older report that sampled them); rates from the list")
    return records, summary, settings, definitions
