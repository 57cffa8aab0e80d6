"""The server's side of one run, lined up with the client's: the scraper started and stopped around
the measured window (servermetrics/), then its samples summed over that window and set against the
records: the server's token counters against the usage the client received, the client's TTFT split
into the server's queue and prefill and the rest (network, HTTP, the client), and the prefix-cache
hit rate from the server's counters beside the one from usage.

Only the runner calls this; it never touches the event loop's hot path (start, origin and stop are
pipe writes; the summing reads files after the window)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.config import RunConfig
from loadtest.run.livestats import LiveStats
from loadtest.run.output import read_records
from loadtest.servermetrics import scraper as scraping
from loadtest.servermetrics import window


class ServerSide:
    """The scraper of one run (None inside: switched off)."""

    def __init__(self, cfg: RunConfig, directory: Path, live: LiveStats) -> None:
        self.cfg = cfg
        self.metrics: scraping.ServerMetrics | None = None
        if cfg.server_metrics:
            sources = scraping.resolve_sources(cfg.base_url, cfg.server_metrics)
            self.metrics = scraping.ServerMetrics(sources, interval_s=cfg.server_metrics_interval_s,
                                                  directory=directory,
                                                  on_live=lambda known: setattr(live, "server", known))
        self._stopped = False

    def start(self) -> None:
        if self.metrics is not None:
            self.metrics.start()

    def set_origin(self, origin_ns: int) -> None:
        if self.metrics is not None:
            self.metrics.set_origin(origin_ns)

    async def ready(self) -> None:
        """Before the measured window: every source's first sample (the counters' baseline), waited
        for at most scraper.READY_WAIT_S, off the loop."""
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.wait_ready)

    async def stop(self, *, final: bool) -> None:
        if self.metrics is not None and not self._stopped:
            self._stopped = True
            await asyncio.to_thread(self.metrics.stop, final=final)

    def stop_now(self) -> None:
        """On the way out of a failed or interrupted run: quit at once, keep what was written."""
        if self.metrics is not None and not self._stopped:
            self._stopped = True
            self.metrics.stop(final=False)

    def block(self, records: Path, *, begin_s: float | None, end_s: float | None) -> dict[str, Any] | None:
        """summary.json's ``server_metrics`` (None when switched off)."""
        if self.metrics is None:
            return None
        lines = scraping.read_lines(self.metrics.path)
        out = window.summarise(lines, begin_s=begin_s, end_s=end_s, interval_s=self.metrics.interval_s,
                               sources=self.metrics.labels)
        out["scraper_cpu_s"] = self.metrics.cpu_s
        out["gpu"] = _gpu_status(out)
        client = _client_side(records)
        out["tokens_check"] = tokens_check(out, client, lines)
        out["ttft_split"] = ttft_split(out["known"], client)
        out["abandoned_freed"] = abandoned_freed(lines, client, interval_s=self.metrics.interval_s) if (
            self.cfg.cancel_rate) else None
        out["prefix_cache"] = {"server_hit_rate": out["known"].get("prefix_cache_hit_rate"),
                               "usage_hit_rate": client["cached_hit_rate"],
                               "agree": _agree(out["known"].get("prefix_cache_hit_rate"), client["cached_hit_rate"])}
        return out


def _gpu_status(block: dict[str, Any]) -> dict[str, Any]:
    nvml = next((s for s in block["sources"] if s["url"] == "nvml"), None)
    block["sources"] = [s for s in block["sources"] if s["url"] != "nvml"] + ([nvml] if nvml and nvml["samples"]
                                                                            else [])
    k = block["known"]
    energy, tokens = k.get("gpu_energy_j"), k.get("generation_tokens")
    if "gpu_power_w" not in k and energy is None:
        return {"sampled": False, "note": nvml["note"] if nvml else "NVML not asked for"}
    return {"sampled": True, "energy_j": energy, "power_w": k.get("gpu_power_w"),
            "joules_per_output_token": energy / tokens if energy and tokens else None,
            "output_tokens_per_joule": tokens / energy if energy and tokens else None}




def _client_side(records: Path) -> dict[str, Any]:
    """What the records say, in one streaming pass: usage sums with each request's span (for the
    counted-span check) and how many ended without the server's count (``unknown``); TTFT of every
    request that had a first token (the population the server's TTFT histogram counts), and of the
    measured successes with llama.cpp-style engine timings."""
    spans: list[tuple[float, float]] = []
    held: list[tuple[float, float]] = []  # while the client held each request open (to its end, or letting go)
    abandoned = 0
    prompt = completion = cached = cached_prompt = 0
    unknown = 0
    ttft_all: list[float] = []
    ttft: list[float] = []
    prefill: list[float] = []
    for r in read_records(records):
        end = r.get("end_s") if r.get("end_s") is not None else r["start_s"]
        spans.append((r["start_s"], end))
        if r.get("abandoned_after_s") is not None:
            abandoned += 1
            held.append((r["start_s"], r["start_s"] + r["abandoned_after_s"]))
        else:
            held.append((r["start_s"], end))
        prompt += r.get("prompt_tokens") or 0
        completion += r.get("completion_tokens") or r.get("partial_tokens") or 0
        if not r.get("ok") or r.get("token_source") != "usage":
            unknown += 1  # cancelled, failed, abandoned or counted by the client: the server's count is unknown
        if r.get("ttft_s") is not None:
            ttft_all.append(r["ttft_s"])
        if r.get("cached_tokens") is not None:
            cached += r["cached_tokens"]
            cached_prompt += r.get("prompt_tokens") or 0
        if r.get("warmup") or not r.get("ok") or r.get("ttft_s") is None:
            continue
        ttft.append(r["ttft_s"])
        t = r.get("engine_timings") or {}
        if isinstance(t.get("prompt_ms"), (int, float)):
            prefill.append(t["prompt_ms"] / 1000)
        else:
            prefill.append(np.nan)
    return {"spans": spans, "held": held, "abandoned": abandoned, "unknown": unknown, "prompt_tokens": prompt,
            "completion_tokens": completion, "ttft_all": np.array(ttft_all), "ttft": np.array(ttft),
            "prefill": np.array(prefill),
            "cached_hit_rate": cached / cached_prompt if cached_prompt else None}


def tokens_check(block: dict[str, Any], client: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The server's prompt and generation counters over the counted span against the usage the
    client received. Compared only when every request lies wholly inside the span or wholly
    outside it (warm-up requests or slow scrapes straddling an edge would make a false mismatch)."""
    k = block["known"]
    server = {"prompt_tokens": k.get("prompt_tokens"), "generation_tokens": k.get("generation_tokens")}
    out: dict[str, Any] = {"server": server, "client": None, "checked": False, "agree": None, "note": None}
    spans = [s["span_s"] for s in block["sources"] if s.get("span_s")]
    if server["generation_tokens"] is None or not spans:
        out["note"] = "the server exposes no token counters" if spans else "no server sample"
        return out
    if len(spans) > 1:
        out["note"] = "several sources: counters summed, not checked against one client"
        return out
    lo, hi = spans[0]
    inside = [(a, b) for a, b in client["spans"] if a >= lo and b <= hi]
    straddle = [(a, b) for a, b in client["spans"] if a < lo < b or a < hi < b]
    if straddle:
        out["note"] = f"{len(straddle)} requests straddle the counted span's edges: not compared"
        return out
    if client["unknown"]:
        out["note"] = (f"{client['unknown']} requests ended without the server's usage (cancelled, failed, "
                       "abandoned): what the server generated for them is unknown, not compared")
        return out
    out["client"] = {"prompt_tokens": client["prompt_tokens"], "completion_tokens": client["completion_tokens"]}
    out["checked"] = bool(inside)
    gen_ok = server["generation_tokens"] == client["completion_tokens"]
    prompt_ok = server["prompt_tokens"] is None or server["prompt_tokens"] == client["prompt_tokens"]
    out["agree"] = gen_ok and prompt_ok
    if not out["agree"]:
        out["note"] = (f"server counted {server['generation_tokens']:.0f} generated and "
                       f"{server['prompt_tokens'] or 0:.0f} prompt tokens; usage says {client['completion_tokens']} "
                       f"and {client['prompt_tokens']} (another client, or tokens the server generated for "
                       "requests the client gave up on)")
    return out


def ttft_split(known: dict[str, Any], client: dict[str, Any]) -> dict[str, Any]:
    """Where the client's TTFT went, in means (means add up; percentiles do not).

    Per run from the server's histograms: queue, prefill, the server's own TTFT (its remainder is
    tokenisation, scheduling, detokenising), and client TTFT minus server TTFT (network, HTTP, this
    client). Per request from engine timings (llama.cpp's prompt_ms): prefill, and the rest."""
    ttft = client["ttft"]
    out: dict[str, Any] = {"client_ttft_mean_s": float(ttft.mean()) if ttft.size else None,
                           "from_histograms": None, "from_engine_timings": None}
    if not ttft.size:
        return out
    q, p, s = (known.get(k, {}) or {} for k in ("queue_s", "prefill_s", "ttft_s"))
    every = client["ttft_all"]
    counts = {x.get("count") for x in (q, p, s) if x.get("mean") is not None}
    if counts and counts != {float(every.size)}:
        out["note"] = (f"the server's histograms count {', '.join(f'{c:.0f}' for c in sorted(counts))} requests, "
                       f"the client saw {every.size} first tokens: not split (requests that never got one, or "
                       "another client)")
    elif counts:
        mean = float(every.mean())
        parts = {"queue_s": q.get("mean"), "prefill_s": p.get("mean")}
        server_ttft = s.get("mean")
        if server_ttft is not None:
            parts["server_other_s"] = (server_ttft - (parts["queue_s"] or 0) - (parts["prefill_s"] or 0)
                                       if parts["queue_s"] is not None or parts["prefill_s"] is not None else None)
            parts["network_http_client_s"] = mean - server_ttft
        else:
            parts["rest_s"] = mean - (parts["queue_s"] or 0) - (parts["prefill_s"] or 0)
        out["from_histograms"] = {"client_ttft_s": mean, "server_ttft_s": server_ttft, **parts,
                                  "requests": every.size}
    have = ~np.isnan(client["prefill"])
    if have.any():
        pre = client["prefill"][have]
        out["from_engine_timings"] = {"requests": int(have.sum()), "ttft_s": float(ttft[have].mean()),
                                      "prefill_s": float(pre.mean()),
                                      "rest_s": float((ttft[have] - pre).mean())}
    return out


def _agree(a: float | None, b: float | None) -> bool | None:
    if a is None or b is None:
        return None
    return abs(a - b) <= 0.02 + 0.05 * max(a, b)


FREED_WITHIN_S = 0.25
"""How soon after the client lets go the server must have stopped counting a request as running
(the gauge is read at some instant of a scrape; a disconnect takes an engine step to notice)."""


def abandoned_freed(lines: list[dict[str, Any]], client: dict[str, Any], *, interval_s: float) -> dict[str, Any]:
    """Did the server really stop the requests the client abandoned? At every sample, the server's
    running requests should not exceed what the client held open at some moment in the
    FREED_WITHIN_S before it. An engine that keeps generating for a disconnected client shows
    more running requests than the client has open (the excess), until those replies would have ended."""
    out: dict[str, Any] = {"abandoned": client["abandoned"], "within_s": FREED_WITHIN_S, "samples": 0,
                           "after_run": None,
                           "excess_running_max": None, "excess_s": None, "freed": None, "note": None}
    sources = {ln["source"] for ln in lines if ln.get("ok") and "running" in ln.get("known", {})}
    if not client["abandoned"]:
        out["note"] = "no request was abandoned"
        return out
    if len(sources) != 1:
        out["note"] = "no running-requests gauge" if not sources else "several sources: not compared"
        return out
    held = np.array(client["held"], dtype=float).reshape(-1, 2)
    first, last = float(held[:, 0].min()), float(held[:, 1].max())
    excess = []
    for ln in lines:
        t = ln["t_s"]
        if not ln.get("ok") or "running" not in ln.get("known", {}) or t < first or t > last + 2 * interval_s:
            continue
        lo = t - FREED_WITHIN_S  # the most the client held open at any moment of [lo, t]
        edges = np.concatenate(([lo], held[:, 0][(held[:, 0] > lo) & (held[:, 0] <= t)]))
        open_max = max(int(((held[:, 0] <= e) & (held[:, 1] > e)).sum()) for e in edges)
        excess.append(ln["known"]["running"] - open_max)
    if not excess:
        out["note"] = "no sample while requests were in flight"
        return out
    ex = np.array(excess)
    last = next((ln for ln in reversed(lines) if ln.get("ok") and "running" in ln.get("known", {})), {})
    out["after_run"] = last.get("known")  # the last sample, taken once the client held nothing open
    out |= {"samples": len(ex), "excess_running_max": float(ex.max()),
            "excess_s": float((ex > 0).sum() * interval_s), "freed": bool(ex.max() <= 0)}
    if not out["freed"]:
        out["note"] = (f"the server ran up to {ex.max():.0f} more requests than the client held open, in "
                       f"{(ex > 0).sum()} of {len(ex)} samples: abandoned requests were not stopped (or another "
                       "client was using the server)")
    return out
