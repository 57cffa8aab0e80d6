"""What each engine's metrics mean: a known-metric map per engine (and per GPU exporter), so a
summary can say "KV cache 93% full, 12 requests waiting" whichever server was measured.

Names were read from the engines' own documentation and code (vLLM's production metrics, SGLang's
collector, TGI's router, llama.cpp's server with --metrics, NVIDIA's dcgm-exporter) and, where an
engine renamed a metric, both names are listed, newest first. A metric an engine lacks is simply
absent from the summary (None), never 0."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.servermetrics.exposition import Scrape, metric_name


@dataclass(frozen=True)
class Engine:
    """``gauges`` and ``counters``: known name -> metric names (first present wins), summed over
    label sets (several GPUs, finished reasons) except ``max_gauges`` (a ratio is not summed).
    ``histograms``: known name -> histogram names in seconds. ``scale``: a unit conversion for a
    known name (DCGM's energy counter is in millijoules)."""

    name: str
    prefix: str
    gauges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    histograms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # counters read from a histogram's _sum (TGI counts tokens only in histograms)
    histogram_sums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # counters that are the sum of several (llama.cpp counts cached prompt tokens apart)
    counter_sums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_gauges: frozenset[str] = frozenset({"kv_cache_usage"})
    scale: dict[str, float] = field(default_factory=dict)


VLLM = Engine(
    "vllm", "vllm:",
    gauges={"running": ("vllm:num_requests_running",), "waiting": ("vllm:num_requests_waiting",),
            "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")},
    counters={"prompt_tokens": ("vllm:prompt_tokens_total",),
              "generation_tokens": ("vllm:generation_tokens_total",),
              "preemptions": ("vllm:num_preemptions_total",),
              "prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
              "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
              "requests_finished": ("vllm:request_success_total",)},
    histograms={"ttft_s": ("vllm:time_to_first_token_seconds",),
                "itl_s": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
                "e2e_s": ("vllm:e2e_request_latency_seconds",),
                "queue_s": ("vllm:request_queue_time_seconds",),
                "prefill_s": ("vllm:request_prefill_time_seconds",),
                "decode_s": ("vllm:request_decode_time_seconds",)},
)
SGLANG = Engine(
    "sglang", "sglang:",
    gauges={"running": ("sglang:num_running_reqs",), "waiting": ("sglang:num_queue_reqs",),
            "kv_cache_usage": ("sglang:token_usage",)},
    counters={"prompt_tokens": ("sglang:prompt_tokens_total",),
              "generation_tokens": ("sglang:generation_tokens_total",),
              "prefix_cache_hits": ("sglang:cached_tokens_total",),
              "prefix_cache_queries": ("sglang:prompt_tokens_total",),
              "requests_finished": ("sglang:num_requests_total",)},
    histograms={"ttft_s": ("sglang:time_to_first_token_seconds",),
                "itl_s": ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
                "e2e_s": ("sglang:e2e_request_latency_seconds",),
                "queue_s": ("sglang:queue_time_seconds",)},
)
TGI = Engine(
    "tgi", "tgi_",
    gauges={"running": ("tgi_batch_current_size",), "waiting": ("tgi_queue_size",)},
    counters={"requests_finished": ("tgi_request_success_total", "tgi_request_success")},
    histogram_sums={"prompt_tokens": ("tgi_request_input_length",),
                    "generation_tokens": ("tgi_request_generated_tokens",)},
    histograms={"queue_s": ("tgi_request_queue_duration",), "e2e_s": ("tgi_request_duration",),
                "itl_s": ("tgi_request_mean_time_per_token_duration",)},
)
LLAMACPP = Engine(
    "llamacpp", "llamacpp:",
    gauges={"running": ("llamacpp:requests_processing",), "waiting": ("llamacpp:requests_deferred",),
            "kv_cache_usage": ("llamacpp:kv_cache_usage_ratio",)},
    counters={"generation_tokens": ("llamacpp:tokens_predicted_total",),
              "prefix_cache_hits": ("llamacpp:prompt_tokens_cached_total",),
              "prefill_seconds": ("llamacpp:prompt_seconds_total",),
              "decode_seconds": ("llamacpp:tokens_predicted_seconds_total",)},
    # prompt_tokens_total counts the tokens it computed; usage's prompt_tokens adds the cached ones
    counter_sums={"prompt_tokens": ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total"),
                  "prefix_cache_queries": ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")},
)
DCGM = Engine(
    "dcgm", "DCGM_FI_",
    gauges={"gpu_power_w": ("DCGM_FI_DEV_POWER_USAGE",), "gpu_utilization_pct": ("DCGM_FI_DEV_GPU_UTIL",),
            "gpu_memory_used_mib": ("DCGM_FI_DEV_FB_USED",)},
    # typed counter without _total: prometheus-client's parser names its sample ..._total
    counters={"gpu_energy_j": ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")},
    scale={"gpu_energy_j": 1e-3},  # mJ
    max_gauges=frozenset({"gpu_utilization_pct"}),
)
NVML = Engine(  # our own names for what gpu.py reads through NVML, so NVML and DCGM read alike
    "nvml", "nvml:",
    gauges={"gpu_power_w": ("nvml:power_watts",), "gpu_utilization_pct": ("nvml:utilization_percent",),
            "gpu_memory_used_mib": ("nvml:memory_used_mib",)},
    counters={"gpu_energy_j": ("nvml:energy_millijoules_total",)},
    scale={"gpu_energy_j": 1e-3},
    max_gauges=frozenset({"gpu_utilization_pct"}),
)
ENGINES = (VLLM, SGLANG, TGI, LLAMACPP, DCGM, NVML)
LIVE = ("running", "waiting", "kv_cache_usage", "gpu_power_w")
"""The known gauges every sample line carries under "known" (the live view and report plots)."""


def present(names: set[str]) -> list[Engine]:
    """The engines (and GPU exporters) whose names are on a page, most names first: one page can
    carry several (an engine and a DCGM exporter behind one proxy, or the test server)."""
    hits = [(sum(1 for m in names if m.startswith(e.prefix)), i, e) for i, e in enumerate(ENGINES)]
    return [e for n, _, e in sorted(hits, key=lambda h: (-h[0], h[1])) if n]


def detect(names: set[str]) -> Engine | None:
    """The engine whose prefix most metric names on the page carry (None: an unknown exporter)."""
    found = present(names)
    return found[0] if found else None


def by_name(names: list[str] | None) -> list[Engine]:
    return [e for n in names or () for e in ENGINES if e.name == n]


def names_of(scrape: Scrape) -> set[str]:
    maps = (scrape.gauges, scrape.counters, scrape.histograms, scrape.untyped)
    return {metric_name(k) for m in maps for k in m}


def pick(values: dict[str, float | None], names: tuple[str, ...], *, take_max: bool = False) -> float | None:
    """The first of ``names`` present in ``values`` (series keys), summed (or maxed) over its label
    sets; None when none is present or every value is None."""
    for name in names:
        found = [v for k, v in values.items() if metric_name(k) == name and v is not None]
        if found:
            return max(found) if take_max else sum(found)
        if any(metric_name(k) == name for k in values):
            return None
    return None


def live_gauges(found: list[Engine], gauges: dict[str, float | None]) -> dict[str, float]:
    """The known gauges of one scrape, for its sample line's "known" (absent when not served)."""
    out: dict[str, float] = {}
    for engine in found:
        for key in LIVE:
            names = engine.gauges.get(key)
            if names and key not in out:
                v = pick(gauges, names, take_max=key in engine.max_gauges)
                if v is not None:
                    out[key] = v
    return out
