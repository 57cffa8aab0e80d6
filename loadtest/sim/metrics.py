"""GET /metrics of the sim: the Prometheus text page of vLLM, llama.cpp and DCGM (``--metrics``),
written from ``Engine`` (sim/engine.py) when asked, never on the token path.

Each family is written as its real server writes it, since a client's scraper must read those:
vLLM as prometheus_client writes it for vLLM (labels model_name and engine, ``_total`` counters
with ``_created`` series beside them, float values; written directly, see _VllmPage); llama.cpp by hand as its server.cpp does (no labels,
every name prefixed ``llamacpp:``, values printed as C++ streams print doubles: 6 significant
digits, so counters past 999999 lose digits); DCGM as dcgm-exporter does (GPU labels, integers,
power as ``%f``).
"""

from __future__ import annotations

from time import monotonic_ns

from loadtest.sim.config import SimConfig
from loadtest.sim.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4"
_DCGM_LABELS = 'gpu="0",UUID="GPU-sim-0",device="nvidia0",modelName="Sim GPU"'
# A page cut off mid-line: what a proxy's timeout or a crashing exporter leaves; the parser rejects it.
_MALFORMED_TAIL = b'vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_na'


class MetricsPage:
    """Built once per server; ``render`` writes one answer to GET /metrics."""

    def __init__(self, config: SimConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.families = config.metrics
        self._vllm = _VllmPage(config.model, engine) if "vllm" in self.families else None
        self.padding = _padding(config.metrics_extra_series)

    def render(self) -> bytes:
        """The page as of now (the server routes GET /metrics here only when families are served)."""
        parts = []
        if self._vllm is not None:
            parts.append(self._vllm.render())
        if "llamacpp" in self.families:
            parts.append(self._llamacpp())
        if "dcgm" in self.families:
            parts.append(self._dcgm(monotonic_ns()))
        parts.append(self.padding)
        if self.config.metrics_malformed:
            parts.append(_MALFORMED_TAIL)
        return b"".join(parts)

    def _llamacpp(self) -> bytes:
        e = self.engine
        counters = (
            ("prompt_tokens_total", "Number of prompt tokens processed.", e.lc_prompt_tokens),
            ("prompt_seconds_total", "Prompt process time", e.lc_prompt_ns / 1e9),
            ("tokens_predicted_total", "Number of generation tokens processed.", e.lc_predicted_tokens),
            ("tokens_predicted_seconds_total", "Predict process time", e.lc_predicted_ns / 1e9),
            ("n_decode_total", "Total number of llama_decode() calls", e.n_decode),
        ) + ((("prompt_tokens_cached_total", "Number of prompt tokens taken from the prompt cache.",
               e.lc_prompt_cached),) if e.prefix_cache_on else ())
        gauges = (
            ("kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage()),
            ("kv_cache_tokens", "KV-cache tokens.", min(e.kv_tokens, e.kv_capacity_tokens)),
            ("requests_processing", "Number of requests processing.", e.stats.active),
            ("requests_deferred", "Number of requests deferred.", e.waiting),
        )
        lines = []
        for kind, metrics in (("counter", counters), ("gauge", gauges)):
            for name, help_text, value in metrics:
                lines.append(f"# HELP llamacpp:{name} {help_text}\n# TYPE llamacpp:{name} {kind}\n"
                             f"llamacpp:{name} {value:g}\n")
        return "".join(lines).encode()

    def _dcgm(self, now_ns: int) -> bytes:
        e = self.engine
        fields = (
            ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", str(100 if e.stats.active else 0)),
            ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", str(e.fb_used_mib())),
            ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", f"{e.power_w():f}"),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
             str(e.energy_mj(now_ns))),
        )
        return "".join(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name}{{{_DCGM_LABELS}}} {value}\n"
                       for name, kind, help_text, value in fields).encode()


def _padding(n: int) -> bytes:
    """``n`` extra gauge series, written once: a page as large as a busy multi-model server's."""
    if not n:
        return b""
    head = "# HELP loadtest_sim_padding Extra series (--metrics-extra-series) to make the page large.\n" \
           "# TYPE loadtest_sim_padding gauge\n"
    return (head + "".join(f'loadtest_sim_padding{{series="{i}"}} {i}\n' for i in range(n))).encode()


class _VllmPage:
    """vLLM's families as prometheus_client writes them for vLLM (the same text, lines and number
    format), but written directly: prometheus_client's collectors take ~10 ms for this page, and the
    sim's event loop, which writes every token, must not stall while a client scrapes it."""

    def __init__(self, model: str, engine: Engine) -> None:
        from prometheus_client.utils import floatToGoString

        self.fmt = floatToGoString
        self.labels = f'engine="0",model_name="{model}"'
        self.model = f'model_name="{model}"'  # labels are written sorted: engine, finished_reason/le, model_name
        self.engine = engine

    def render(self) -> bytes:
        e, f, lab = self.engine, self.fmt, self.labels
        created = f(e.created_s)
        out: list[str] = []
        for name, doc, value in (
                ("vllm:num_requests_running", "Number of requests in model execution batches.", e.stats.active),
                ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", e.waiting),
                ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage())):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n{name}{{{lab}}} {f(value)}\n")
        for name, doc, value in (
                ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                 e.prefix_cache_queries),
                ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                 e.prefix_cache_hits),
                ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", 0),
                ("vllm:prompt_tokens", "Number of prefill tokens processed.", e.prompt_tokens),
                ("vllm:generation_tokens", "Number of generation tokens processed.", e.generation_tokens)):
            out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n{name}_total{{{lab}}} {f(value)}\n"
                       f"# HELP {name}_created {doc}\n# TYPE {name}_created gauge\n"
                       f"{name}_created{{{lab}}} {created}\n")
        name, doc = "vllm:request_success", "Count of successfully processed requests."
        out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n")
        out += [f'{name}_total{{engine="0",finished_reason="{r}",{self.model}}} {f(n)}\n' for r, n in e.finished.items()]
        out.append(f"# HELP {name}_created {doc}\n# TYPE {name}_created gauge\n")
        out += [f'{name}_created{{engine="0",finished_reason="{r}",{self.model}}} {created}\n' for r in e.finished]
        for name, doc, hist in (
                ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", e.ttft),
                ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", e.itl()),
                ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", e.e2e),
                ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                 e.queue),
                ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
                 e.prefill),
                ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
                 e.decode)):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} histogram\n")
            cum = hist.cumulative()
            out += [f'{name}_bucket{{engine="0",le="{f(float(le))}",{self.model}}} {f(n)}\n' for le, n in cum]
            out.append(f"{name}_count{{{lab}}} {f(cum[-1][1])}\n{name}_sum{{{lab}}} {f(hist.sum_ns / 1e9)}\n"
                       f"# HELP {name}_created {doc}\n# TYPE {name}_created gauge\n"
                       f"{name}_created{{{lab}}} {created}\n")
        return "".join(out).encode()
