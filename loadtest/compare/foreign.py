"""Other tools' result files as a side of a comparison: a `vllm bench serve` (or
benchmarks/benchmark_serving.py) result saved with --save-result --save-detailed, and AIPerf's
per-request records (profile_export.jsonl, with its profile_export_aiperf.json beside it when there).

Each is read into loadtest's own per-request shape (ttft_s, e2e_s, tpot_s, tokens_per_s, chunk
arrivals) and run-level rates, so that compare tests them exactly as it tests a loadtest run. What
cannot be derived is left out (never zero), and every metric the tool defines differently from
loadtest is named, one line each (Foreign.definitions). The format is told by content, not by name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.compare import guidellm
from loadtest.measure.record import CANCELLED
from loadtest.report.load import SavedRun, dig, iter_jsonl

VLLM, AIPERF = "vllm bench serve", "AIPerf"
AIPERF_AGGREGATE = "profile_export_aiperf.json"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "seconds": 1.0}


class ForeignRun(SavedRun):
    """A SavedRun whose records were read from another tool's file, not from requests.jsonl."""

    def __init__(self, path: Path, summary: dict[str, Any], records: list[dict[str, Any]], label: str) -> None:
        super().__init__(path, summary, label)
        self.__dict__["records"] = records  # the cached_property's slot


@dataclass
class Foreign:
    """One other tool's result, read: its run, what it says about the settings, and how its
    metrics differ from loadtest's."""

    tool: str
    run: ForeignRun
    settings: dict[str, Any]          # model, num_prompts, load, where the tool recorded them
    not_recorded: list[str]           # loadtest settings this tool's file does not hold
    definitions: list[str] = field(default_factory=list)


class NotForeign(Exception):
    """The file is none of the formats read here (or is one without the per-request data)."""


def seconds(metric: Any) -> float | None:
    """An AIPerf {"value": v, "unit": u} as seconds; None when it is not a time in a known unit."""
    if not isinstance(metric, dict):
        return None
    v, scale = metric.get("value"), _UNITS.get(str(metric.get("unit", "")).strip().lower())
    if scale is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    return float(v) * scale


def _count(metric: Any) -> int | None:
    v = metric.get("value") if isinstance(metric, dict) else None
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def load_shape(rate: Any, concurrency: Any) -> str:
    """One name for a load however a tool wrote it: a rate of inf with a concurrency cap is a
    closed loop of that many (vLLM's default and loadtest's --concurrency alike)."""
    r = float("inf") if rate in (None, "inf", "Infinity") else float(rate)
    c = int(concurrency) if isinstance(concurrency, (int, float)) and concurrency else None
    if math.isinf(r):
        return f"concurrency {c}" if c else "every request at once"
    return f"rate {r:g}/s" + (f", max concurrency {c}" if c else "")


def _chunks(ttft: float | None, gaps: list[float], tokens: int | None) -> tuple[list[float] | None, list[int] | None,
                                                                               bool]:
    """Chunk arrivals from a TTFT and the gaps after it; one token each when the chunks and the
    tokens agree (then per-token ITL is derivable), else (None, None, False)."""
    if ttft is None or not gaps:
        return None, None, True
    if tokens != len(gaps) + 1:
        return None, None, False
    offsets = list(np.cumsum([ttft, *gaps]).tolist())
    return offsets, [1] * len(offsets), True


def _record(ok: bool, ttft: float | None, e2e: float | None, tokens: int | None, prompt: Any, tpot: float | None,
            chunk_offsets: list[float] | None, chunk_tokens: list[int] | None, error_kind: str | None = None,
            start: float | None = None) -> dict[str, Any]:
    if ok and tpot is None and ttft is not None and e2e is not None and tokens and tokens > 1:
        tpot = (e2e - ttft) / (tokens - 1)
    return {"ok": ok, "error_kind": None if ok else error_kind or "foreign", "ttft_s": ttft if ok else None,
            "e2e_s": e2e if ok else None, "tpot_s": tpot if ok else None,
            "tokens_per_s": tokens / e2e if ok and tokens and e2e else None, "completion_tokens": tokens,
            "prompt_tokens": prompt, "chunk_offsets_s": chunk_offsets, "chunk_tokens": chunk_tokens,
            "start_s": start}


def _itl_line(tool: str, per_chunk: str, mismatched: int, total: int) -> str:
    line = (f"ITL: {tool} records one gap per chunk ({per_chunk}, loadtest's itl_chunk_s); loadtest's itl_s shares "
            "a chunk's gap over its tokens")
    if mismatched:
        return line + (f"; {mismatched} of {total} completed requests had a chunk count other than their tokens, "
                       "so ITL per token cannot be derived and is not compared")
    return line + "; every request here had one token per chunk, so the two agree and ITL is compared"


# -- vLLM ------------------------------------------------------------------------------------------------------
def is_vllm(doc: Any) -> bool:
    return isinstance(doc, dict) and "request_throughput" in doc and ("model_id" in doc or "backend" in doc)


def read_vllm(path: Path, doc: dict[str, Any]) -> Foreign:
    ttfts, itls = doc.get("ttfts"), doc.get("itls")
    if not isinstance(ttfts, list) or not isinstance(itls, list):
        raise NotForeign(f"{path}: a vllm bench serve result without its per-request lists (run it with "
                         "--save-result --save-detailed)")
    n = len(ttfts)

    def column(name: str) -> list[Any]:
        v = doc.get(name)
        return v if isinstance(v, list) and len(v) == n else [None] * n

    errors, latencies, outs, ins = column("errors"), column("latencies"), column("output_lens"), column("input_lens")
    starts = column("start_times")
    t0 = min((s for s in starts if isinstance(s, (int, float))), default=None)
    records, mismatched, ok_n = [], 0, 0
    for i in range(n):
        ok = not errors[i] if doc.get("errors") is not None else bool(ttfts[i])
        gaps = [float(g) for g in itls[i]] if isinstance(itls[i], list) else []
        ttft = float(ttfts[i]) if isinstance(ttfts[i], (int, float)) and ttfts[i] > 0 else None
        e2e = latencies[i] if isinstance(latencies[i], (int, float)) else (
            ttft + sum(gaps) if ttft is not None else None)
        tokens = int(outs[i]) if isinstance(outs[i], (int, float)) else None
        offsets, chunk_tokens, agree = _chunks(ttft, gaps, tokens)
        if ok:
            ok_n += 1
            mismatched += not agree
        start = starts[i] - t0 if isinstance(starts[i], (int, float)) and t0 is not None else None
        records.append(_record(ok, ttft, e2e, tokens, ins[i], None, offsets, chunk_tokens, start=start))
    if mismatched:
        for r in records:
            r["chunk_offsets_s"] = r["chunk_tokens"] = None
    metrics = {"output_tokens_per_s": doc.get("output_throughput"),
               "requests_per_min": doc["request_throughput"] * 60.0
               if isinstance(doc.get("request_throughput"), (int, float)) else None}
    summary = {"command": VLLM, "metrics": metrics, "foreign": {"tool": VLLM, "date": doc.get("date")}}
    settings = {"model": doc.get("model_id"), "num_prompts": doc.get("num_prompts"),
                "load": load_shape(doc.get("request_rate"), doc.get("max_concurrency"))}
    definitions = [
        ("TTFT: vLLM stops the clock at the first streamed chunk with choices, even one without text (a role-only "
        "first chunk); loadtest's at the first chunk carrying text"),
        ("e2e: vLLM's ends at the last chunk with choices (a trailing usage chunk and [DONE] not included); "
        "loadtest's at the answer's last byte"),
        ("TPOT: vLLM's is per request (e2e - TTFT) / (output tokens - 1), one token assumed in the first chunk; "
        "loadtest's runs from the first to the last content chunk over the tokens after the first chunk; derived "
        "here with vLLM's definition"),
        _itl_line("vLLM", "empty chunks included", mismatched, ok_n),
        ("output tokens: vLLM takes the stream's usage when there is one, else counts the generated text with its "
        "own client tokenizer; loadtest takes the server's usage (tokens/s per request and TPOT follow)"),
        ("input lengths: vLLM's input_lens are its dataset's counts with its client tokenizer (no chat template); "
        "loadtest's prompt_tokens are the server's (not compared)"),
        ("output tokens/s, requests/min: vLLM's over its benchmark duration (first request sent to the last "
        "answer, its warm-ups excluded); loadtest's over its measurement window"),
    ]
    if doc.get("latencies") is None:
        definitions.append("e2e: this vLLM version saved no latencies; e2e derived as TTFT + the sum of its ITLs "
                           "(the same instant)")
    run = ForeignRun(path, summary, records, path.name)
    return Foreign(VLLM, run, settings, ["api", "stream", "dataset", "prompt_tokens", "max_tokens", "ignore_eos",
                                         "temperature", "seed"], definitions)


# -- AIPerf ----------------------------------------------------------------------------------------------------
def is_aiperf_record(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("metadata"), dict) and "metrics" in row


def aiperf_records_file(path: Path) -> Path | None:
    """The records file: the path itself, or the one JSON-lines file of records in a directory."""
    candidates = [path] if path.is_file() else sorted(path.glob("*.jsonl"))
    for p in candidates:
        first = next(iter_jsonl(p), None)
        if is_aiperf_record(first):
            return p
    return None


def _aiperf_row(row: dict[str, Any], t0: float | None) -> dict[str, Any]:
    meta, m = row["metadata"], row.get("metrics") or {}
    cancelled = bool(meta.get("was_cancelled"))
    ok = not cancelled and not row.get("error")
    ttft, e2e = seconds(m.get("time_to_first_token")), seconds(m.get("request_latency"))
    tokens = _count(m.get("output_sequence_length")) or _count(m.get("output_token_count"))
    icl = m.get("inter_chunk_latency")
    gaps = [g * (_UNITS.get(str(icl.get("unit")).lower()) or math.nan) for g in icl["value"]] \
        if isinstance(icl, dict) and isinstance(icl.get("value"), list) else []
    offsets, chunk_tokens, agree = _chunks(ttft, gaps, tokens)
    start = meta.get("request_start_ns")
    rec = _record(ok, ttft, e2e, tokens, _count(m.get("input_sequence_length")),
                  seconds(m.get("inter_token_latency")), offsets, chunk_tokens,
                  CANCELLED if cancelled else None,
                  (start - t0) / 1e9 if isinstance(start, (int, float)) and t0 is not None else None)
    rec["_agree"] = agree
    end = meta.get("request_end_ns")
    rec["_end_s"] = (end - t0) / 1e9 if isinstance(end, (int, float)) and t0 is not None else None
    return rec


def read_aiperf(path: Path, records_file: Path) -> Foreign:
    rows = [r for r in iter_jsonl(records_file) if is_aiperf_record(r)]
    profiling = [str(r["metadata"].get("benchmark_phase") or "profiling") == "profiling" for r in rows]
    warm = profiling.count(False)
    rows = [r for r, keep in zip(rows, profiling) if keep]
    starts = [r["metadata"].get("request_start_ns") for r in rows]
    t0 = min((s for s in starts if isinstance(s, (int, float))), default=None)
    records = [_aiperf_row(r, t0) for r in rows]
    ok = [r for r in records if r["ok"]]
    mismatched = sum(not r.pop("_agree") for r in records if r["ok"])
    if mismatched:
        for r in records:
            r["chunk_offsets_s"] = r["chunk_tokens"] = None
    agg_path = records_file.parent / AIPERF_AGGREGATE
    try:
        agg = json.loads(agg_path.read_text())
    except (OSError, ValueError):
        agg = {}
    agg = agg if isinstance(agg, dict) else {}
    ends = [r.pop("_end_s") for r in records]
    window = max((e for e in ends if e is not None), default=None)
    rate = dig(agg, "request_throughput", "avg")
    out_rate = dig(agg, "output_token_throughput", "avg")
    if rate is None and window:
        rate = len(ok) / window
        out_rate = sum(r["completion_tokens"] or 0 for r in ok) / window
    metrics = {"output_tokens_per_s": out_rate, "requests_per_min": rate * 60.0 if rate is not None else None}
    summary = {"command": AIPERF, "metrics": metrics, "foreign": {"tool": AIPERF}}
    loadgen = dig(agg, "input_config", "loadgen", default={})
    models = dig(agg, "input_config", "endpoint", "model_names")
    settings = {"model": models[0] if isinstance(models, list) and models else None,
                "num_prompts": loadgen.get("request_count") if isinstance(loadgen, dict) else None,
                "load": load_shape(loadgen.get("request_rate"), loadgen.get("concurrency"))
                if isinstance(loadgen, dict) and loadgen else None}
    definitions = [
        ("TPOT: AIPerf's inter_token_latency is per request (request_latency - TTFT) / (output tokens - 1); "
        "loadtest's tpot_s runs from the first to the last content chunk over the tokens after the first chunk"),
        _itl_line("AIPerf", "inter_chunk_latency", mismatched, len(ok)),
        ("output tokens: AIPerf counts output_sequence_length with its client tokenizer unless run with "
        "--use-server-token-count; loadtest takes the server's usage (tokens/s per request and TPOT follow)"),
        ("input lengths: AIPerf's input_sequence_length is its client tokenizer's count of the prompt it built; "
        "loadtest's prompt_tokens are the server's (not compared)"),
        (f"request count and warm-up: AIPerf's records of the profiling phase only ({warm} warm-up records "
        "left out, as loadtest leaves out --warmup); cancelled requests (was_cancelled) left out of the error rate "
        "as loadtest's cancelled ones"),
        "output tokens/s, requests/min: " + ("AIPerf's own, over its benchmark_duration"
                                             if dig(agg, "request_throughput", "avg") is not None else
                                             f"no {AIPERF_AGGREGATE} beside the records: derived over the first "
                                             "request's start to the last one's end") +
        "; loadtest's over its measurement window",
    ]
    run = ForeignRun(path, summary, records, records_file.name)
    not_recorded = ["api", "stream", "dataset", "prompt_tokens", "max_tokens", "ignore_eos", "temperature", "seed"]
    return Foreign(AIPERF, run, settings, not_recorded, definitions)


# -- GuideLLM (compare/guidellm.py) -----------------------------------------------------------------------------
def read_guidellm(path: Path, doc: dict[str, Any]) -> Foreign:
    try:
        records, summary, settings, definitions = guidellm.read(doc, str(path))
    except guidellm.GuideLLMError as exc:
        raise NotForeign(str(exc)) from None
    return Foreign(guidellm.GUIDELLM, ForeignRun(path, summary, records, path.name), settings,
                   guidellm.NOT_RECORDED, definitions)


# -- which, by content -----------------------------------------------------------------------------------------
def read_foreign(path: Path) -> Foreign:
    """The other tool's result at ``path``, told by its content; NotForeign when it is none of them."""
    if path.is_dir():
        records = aiperf_records_file(path)
        if records is not None:
            return read_aiperf(path, records)
        raise NotForeign(f"{path}: neither a run directory (summary.json), a repeat group (rep-1..N/) nor AIPerf "
                         "records (profile_export.jsonl)")
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        doc = None
    if is_vllm(doc):
        return read_vllm(path, doc)  # type: ignore[arg-type]
    if guidellm.is_guidellm(doc):
        return read_guidellm(path, doc)  # type: ignore[arg-type]
    if doc is None and aiperf_records_file(path) is not None:
        return read_aiperf(path, path)
    if isinstance(doc, dict) and isinstance(doc.get("input_config"), dict):
        records = aiperf_records_file(path.parent)
        if records is not None:
            return read_aiperf(path.parent, records)
        raise NotForeign(f"{path}: an AIPerf aggregate without its per-request records (profile_export.jsonl) "
                         "beside it")
    raise NotForeign(f"{path}: not a run directory (give the directory holding summary.json), a vllm bench serve "
                     "result (--save-result --save-detailed), a GuideLLM report (benchmarks.json) or AIPerf records "
                     "(profile_export.jsonl)")
