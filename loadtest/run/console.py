"""What a run prints: its table (statistics by metric, the counts, the load, the token sources),
and the plain tables every command prints through ``render_rows``."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from loadtest.measure.hosted import console_lines


def _fmt(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v * scale:,.{digits}f}"


_ROWS = [  # (metric, label, scale, digits)
    ("tokens_per_s", "tokens/s per request (completion / e2e)", 1, 2),
    ("ttft_s", "TTFT (ms)", 1e3, 1),
    ("ttft_content_s", "TTFT, visible content (ms)", 1e3, 1),
    ("tpot_s", "TPOT (ms)", 1e3, 2),
    ("itl_s", "ITL (ms, per token)", 1e3, 2),
    ("itl_chunk_s", "ITL (ms, per chunk)", 1e3, 2),
    ("decode_tokens_per_s", "decode tokens/s", 1, 1),
    ("e2e_s", "end-to-end latency (s)", 1, 3),
]


def _load(cfg: dict[str, Any]) -> str:
    """The load shape in a few words: 'concurrency 8' or 'rate 40 req/s (poisson, max 16 in flight)'."""
    rate = cfg.get("request_rate")
    if rate is None:
        return f"concurrency {cfg['concurrency']}"
    cap = f", max {cfg['max_concurrency']} in flight" if cfg.get("max_concurrency") else ""
    return f"rate {rate if isinstance(rate, str) else format(rate, 'g')} req/s ({cfg.get('arrival', 'poisson')}{cap})"


def render_rows(rows: list[list[str]], headers: list[str]) -> str:
    """A plain console table (no number parsing: values are shown exactly as given)."""
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def render_table(summary: dict[str, Any]) -> str:
    m = summary["metrics"]
    counts = summary["counts"]
    rows = []
    for key, label, scale, digits in _ROWS:
        s = m.get(key)
        if not s or not s.get("count"):
            continue
        if key == "ttft_content_s" and m["ttft_s"].get("mean") == s.get("mean"):
            continue  # identical unless the model reasons
        rows.append([label] + [_fmt(s[k], scale, digits) for k in ("mean", "p50", "p90", "p99", "min", "max")])
    table = tabulate(rows, headers=["metric", "mean", "p50", "p90", "p99", "min", "max"],
                     tablefmt="simple", disable_numparse=True, colalign=("left",) + ("right",) * 6)
    srcs = ", ".join(f"{k}: {v}" for k, v in summary["token_source"].items()) or "-"
    head = [
        f"{summary['command']}: {counts['completed']}/{counts['requests']} requests completed, "
        f"{counts['failed']} failed" + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")
        + (f", {counts['abandoned']} abandoned" if counts.get("abandoned") else "")
        + f"  |  {_load(summary['config'])}  |  window {_fmt(m['window_s'], 1, 2)} s",
        f"requests/min {_fmt(m['requests_per_min'], 1, 1)}  |  output tokens/s {_fmt(m['output_tokens_per_s'], 1, 1)}"
        f"  |  completion tokens {m['completion_tokens_total']:,}  |  token source: {srcs}",
    ]
    chunk_srcs = summary.get("chunk_token_source")
    if chunk_srcs:
        how = "exact" if summary.get("chunk_tokens_exact") else "estimated (first chunk 1 token, the rest by text)"
        head.append(f"tokens per chunk: {how}: " + ", ".join(f"{k}: {v}" for k, v in chunk_srcs.items()))
    if counts.get("abandoned"):
        cfg = summary["config"]
        head.append(f"abandoned: {counts['abandoned']} requests let go {_fmt(cfg.get('cancel_after_s'), 1, 3)} s after "
                    f"sending (--cancel-rate {cfg.get('cancel_rate')}), {m.get('abandoned_tokens_received', 0):,} "
                    "tokens received before; outside every statistic above")
    head += console_lines(summary)
    if summary["errors"]:
        head.append("errors: " + "; ".join(f"{k} x{v['count']} ({v['example']})" for k, v in summary["errors"].items()))
    if summary["run"].get("ended") not in (None, "done", "deadline"):
        head.append(f"run ended early: {summary['run']['ended']}")
    if summary["run"].get("resumed"):
        spans = ", ".join(f"{p['window_s']:.1f} s" if p["window_s"] is not None else "-" for p in summary["run"]["pieces"])
        head.append(f"resumed run: {len(summary['run']['pieces'])} pieces ({spans}), statistics over all of them")
    return "\n".join(head) + "\n\n" + table

