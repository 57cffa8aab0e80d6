"""What a run prints: its table (statistics by metric, the counts, the load, the token sources),
and the plain tables every command prints through ``render_rows``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from loadtest.measure.hosted import console_lines
from loadtest.measure.media import console_lines as media_lines
from loadtest.measure.pooling import console_head as pooled_head
from loadtest.measure.prefixcache import console_line as prefix_cache_line
from loadtest.servermetrics.scraper import metrics_url


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
    ("rtfx", "RTFx (audio s / e2e s)", 1, 1),
]


def _load(cfg: dict[str, Any]) -> str:
    """The load shape in a few words: 'concurrency 8' or 'rate 40 req/s (poisson, max 16 in flight)'."""
    rate = cfg.get("request_rate")
    if cfg.get("trace"):
        cap = f", max {cfg['max_concurrency']} in flight" if cfg.get("max_concurrency") else ""
        return f"trace {Path(cfg['trace']).name} x{cfg.get('replay_speed', 1):g}{cap}"
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
    ]
    head += pooled_head(summary) or [  # embeddings, rerank: their rates, and no generation metrics
        (f"requests/min {_fmt(m['requests_per_min'], 1, 1)}  |  output tokens/s {_fmt(m['output_tokens_per_s'], 1, 1)}"
         f"  |  completion tokens {m['completion_tokens_total']:,}  |  token source: {srcs}")]
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
    head += prefix_cache_line(summary)
    head += media_lines(summary)
    if bad := summary.get("usage_invalid"):
        head.append(f"usage invalid in {bad['requests']} replies (e.g. {bad['example']}): ignored, those counts "
                    "fell back as without usage (see token source)")
    if summary["errors"]:
        head.append("errors: " + "; ".join(f"{k} x{v['count']} ({v['example']})" for k, v in summary["errors"].items()))
    head += schedule_lines(summary)
    if summary["run"].get("ended") not in (None, "done", "deadline"):
        head.append(f"run ended early: {summary['run']['ended']}")
    if summary["run"].get("resumed"):
        spans = ", ".join(f"{p['window_s']:.1f} s" if p["window_s"] is not None else "-" for p in summary["run"]["pieces"])
        head.append(f"resumed run: {len(summary['run']['pieces'])} pieces ({spans}), statistics over all of them")
    parts = [part for part in (session_lines(summary), tool_lines(summary), server_lines(summary)) if part]
    return "\n\n".join(["\n".join(head), table, *("\n".join(part) for part in parts)])


def schedule_lines(summary: dict[str, Any]) -> list[str]:
    """An open loop's starts that were never sent: dropped with the backlog full, or still waiting
    for a slot when the run ended (nothing when every start was sent)."""
    s = summary.get("schedule") or {}
    dropped, unsent = s.get("dropped") or 0, s.get("unsent_at_end") or 0
    if not dropped and not unsent:
        return []
    parts = []
    if dropped:
        parts.append(f"{dropped:,} of {s['due']:,} starts dropped ({dropped / s['due']:.0%}): all "
                     f"{s['max_concurrency']} --max-concurrency slots busy and the backlog of {s['backlog_bound']:,} "
                     "waiting starts full")
    if unsent:
        parts.append(f"{unsent:,} still waiting for a slot at the end, never sent")
    return [f"schedule: {s['sent']:,} of {s['due']:,} starts sent; " + "; ".join(parts)]


def session_lines(summary: dict[str, Any]) -> list[str]:
    """Multi-turn sessions: how they ended, and each turn index's requests (the growing history
    and the prefix cache in one table); with a trace, how its later turns kept their offsets."""
    s = summary.get("sessions")
    if not s:
        return []
    duration, turns = s["duration_s"], s["turns_ok"]
    lines = [(f"sessions: {s['sessions']}, {s['sessions_with_failed_turn']} with a failed turn  |  turns ok mean "
             f"{_fmt(turns['mean'], 1, 2)}  |  duration p50 {_fmt(duration['p50'], 1, 3)} s, "
             f"max {_fmt(duration['max'], 1, 3)} s (pauses between turns included)")]
    t = summary.get("trace") or {}
    if t.get("session_starts"):
        late = f", max {_fmt(t['late_s_max'], 1e3, 1)} ms" if t.get("late_s_max") is not None else ""
        lines.append(f"trace sessions: {t['sessions']} ({t['rows_chained']} rows chained as later turns): "
                     f"{t['turns_held']} turns held for their offset, {t['turns_late']} late{late}")
    rows = [[str(r["turn"]), f"{r['ok']}/{r['requests']}", _fmt(r["ttft_s_p50"], 1e3, 1),
             _fmt(r["ttft_s_mean"], 1e3, 1), _fmt(r["e2e_s_mean"], 1, 3), _fmt(r["prompt_tokens_mean"], 1, 1),
             _fmt(r["cached_tokens_mean"], 1, 1)] for r in s["by_turn"]]
    return lines + render_rows(rows, ["turn", "ok", "TTFT p50 (ms)", "TTFT mean (ms)", "e2e mean (s)",
                                      "prompt tokens mean", "cached tokens mean"]).splitlines()


def tool_lines(summary: dict[str, Any]) -> list[str]:
    """Tool loops (--tools): how the tasks ended, and each round's requests (nothing without tools)."""
    t = summary.get("tools")
    if not t:
        return []
    per, loop = t["requests_per_task"], t["loop_latency_s"]
    lines = [(f"tool loops: {t['tasks']} tasks, {t['tasks_completed']} completed, {t['tasks_failed']} failed, "
             f"{t['tasks_at_max_rounds']} cut off at --max-tool-rounds {t['max_tool_rounds']}  |  "
             f"{t['tool_calls']:,} tool calls  |  requests per task mean {_fmt(per['mean'], 1, 2)}, max "
             f"{_fmt(per['max'], 1, 0)}  |  loop latency p50 {_fmt(loop['p50'], 1, 3)} s, p90 {_fmt(loop['p90'], 1, 3)} s "
             f"(tool wait {t['tool_latency_s']:g} s per round included)")]
    rows = [[str(r["round"]), f"{r['ok']}/{r['requests']}", _fmt(r["ttft_s_p50"], 1e3, 1), _fmt(r["ttft_s_mean"], 1e3, 1),
             _fmt(r["e2e_s_mean"], 1, 3), _fmt(r["prompt_tokens_mean"], 1, 1)] for r in t["by_round"]]
    return lines + render_rows(rows, ["round", "ok", "TTFT p50 (ms)", "TTFT mean (ms)", "e2e mean (s)",
                                      "prompt tokens mean"]).splitlines()


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _mean_max(k: dict[str, Any], key: str, fmt: Any = lambda v: f"{v:.1f}") -> str | None:
    g = k.get(key)
    return None if not g else f"{key.replace('_', ' ')} mean {fmt(g['mean'])} max {fmt(g['max'])}"


def server_lines(summary: dict[str, Any]) -> list[str]:
    """The server's side in a few lines under the run's table (nothing when it was not sampled)."""
    block = summary.get("server_metrics")
    if not block:
        return []
    lines = []
    for s in block["sources"]:
        asked = summary["config"].get("server_metrics") not in (None, ["auto"])
        if s["status"] == "absent" and not asked and s["url"] == metrics_url(summary["config"]["base_url"]):
            continue  # the endpoint has no /metrics: nothing to say unless asked for it
        if s["status"] != "ok" or s.get("note"):
            lines.append(f"server metrics {s['url']}: {s['status']}" + (f" ({s['note']})" if s.get("note") else ""))
    k = block["known"]
    engines = ", ".join(sorted({s["engine"] for s in block["sources"] if s.get("engine")}))
    parts = [p for p in (_mean_max(k, "running"), _mean_max(k, "waiting"),
                         _mean_max(k, "kv_cache_usage", _pct)) if p]
    if k.get("preemptions") is not None:
        parts.append(f"preemptions {k['preemptions']:.0f}")
    pc = block.get("prefix_cache") or {}
    if pc.get("server_hit_rate") is not None or pc.get("usage_hit_rate") is not None:
        agree = {True: "agree", False: "DISAGREE", None: ""}[pc.get("agree")]
        parts.append(f"prefix cache hits {_pct(pc.get('server_hit_rate'))} (usage: {_pct(pc.get('usage_hit_rate'))}"
                     + (f", {agree})" if agree else ")"))
    if parts:
        lines.append(f"server ({engines}): " + "  |  ".join(parts))
    tc = block.get("tokens_check") or {}
    if tc.get("agree") is False:
        lines.append(f"server tokens DISAGREE with usage: {tc['note']}")
    elif tc.get("agree"):
        lines.append(f"server token counters match usage ({tc['client']['completion_tokens']:,} generated, "
                     f"{tc['client']['prompt_tokens']:,} prompt)")
    freed = block.get("abandoned_freed") or {}
    if freed.get("freed") is True:
        lines.append(f"abandoned requests freed on the server: running never exceeded what the client held open "
                     f"({freed['samples']} samples, within {freed['within_s']:g} s)")
    elif freed.get("freed") is False:
        lines.append(f"abandoned requests NOT freed on the server: {freed['note']}")
    gpu = block.get("gpu") or {}
    if gpu.get("sampled") and gpu.get("energy_j") is not None:
        per = gpu.get("joules_per_output_token")
        lines.append(f"GPU energy {gpu['energy_j']:,.0f} J" + (f", {per:.3f} J per output token" if per else ""))
    split = block.get("ttft_split") or {}
    if split.get("note") and not split.get("from_engine_timings"):
        lines.append(f"where TTFT goes: {split['note']}")
    table = ttft_table(split)
    return lines + ([""] + table if table else [])


def ttft_table(split: dict[str, Any]) -> list[str]:
    """Where TTFT goes, one column per source of the split (means, ms)."""
    h, t = split.get("from_histograms"), split.get("from_engine_timings")
    if not h and not t:
        return []
    ms = lambda v: "-" if v is None else f"{round(v * 1e3, 1) + 0.0:,.1f}"  # never "-0.0"
    rows = [["queue (server)", ms(h and h.get("queue_s")), "-"],
            ["prefill (server)", ms(h and h.get("prefill_s")), ms(t and t["prefill_s"])],
            ["rest of the server's TTFT", ms(h and h.get("server_other_s")), "-"],
            ["network, HTTP, client", ms(h and h.get("network_http_client_s")), "-"],
            ["everything but prefill", ms(h and h.get("rest_s")), ms(t and t["rest_s"])],
            ["client TTFT", ms(h and h.get("client_ttft_s")), ms(t and t["ttft_s"])]]
    rows = [r for r in rows if r[1] != "-" or r[2] != "-"]
    return ["where TTFT goes (means, ms)"] + render_rows(
        rows, ["", "server histograms", "engine timings"]).splitlines()
