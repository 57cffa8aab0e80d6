"""The engine the sim's GET /metrics reports on: slots, queue, KV cache, token counters, latency
histograms and a GPU power model, kept as the replies run so a scrape only reads them.

Every figure here is exact and reproducible, so a client comparing what it scraped with what it
measured can be checked to the token and to the nanosecond (``--log-chunks`` records each request's
side of it). Two clocks meet here, on purpose:

- slots, KV and power change at the real (CLOCK_MONOTONIC) instants a reply takes or frees its slot;
- latencies use the engine's clock, the schedule: token i of a reply is generated at
  ``slot + prefill + ttft + i*tpot`` (``Stream.recv_ns`` + ttft + i*tpot), and the sim's write of
  the chunk holding it may lag that by its scheduling lateness (``/sim/stats``), as an engine's
  own figures leave out the time its HTTP layer takes to send. So TTFT = queue + prefill exactly,
  ITL is tpot for every token and decode = (tokens - 1) * tpot.

Per-event work is a few integer additions (a bisect for the per-request histograms); the page
itself is written only when asked (sim/metrics.py).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from time import monotonic_ns
from typing import Protocol

from loadtest.sim.config import SimConfig

# vLLM's bucket edges (vllm/v1/metrics/loggers.py), so a client's quantiles over them read as on vLLM.
TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                  20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                 40.0, 80.0)
REQUEST_BUCKETS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                     240.0, 480.0, 960.0, 1920.0, 7680.0)

IDLE_W = 60
"""The power model: a GPU draws IDLE_W, plus PER_REQUEST_W for each request holding a slot."""
PER_REQUEST_W = 50
WEIGHTS_MIB = 1024
KV_KIB_PER_TOKEN = 128  # an 8B model's fp16 KV; engines allocate the whole cache at start


class SlotCount(Protocol):
    """The slot count the engine keeps in /sim/stats (sim/state.py's Stats)."""

    active: int
    max_active: int


class Request(Protocol):
    """What the engine reads of a reply (sim/stream.py's Stream)."""

    arrival_ns: int  # receipt of the request
    slot_ns: int  # when it took a slot (== arrival_ns when one was free)
    recv_ns: int  # the schedule's anchor: slot + prefill; token i is due at recv_ns + ttft + i*tpot
    sent: int  # tokens generated so far
    tpot_ns: int  # this reply's time per token (the configured one, or --jitter's draw)

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int: ...  # prompt tokens found in the prefix cache (sim/prefixcache.py)


class Histogram:
    """Bucket counts (not cumulative), the sum in integer ns (exact) and the count."""

    __slots__ = ("count", "counts", "edges_s", "sum_ns")

    def __init__(self, edges_s: tuple[float, ...]) -> None:
        self.edges_s = edges_s
        self.counts = [0] * (len(edges_s) + 1)  # the last: beyond every edge (+Inf only)
        self.sum_ns = 0
        self.count = 0

    def observe(self, value_ns: int, times: int = 1) -> None:
        # Prometheus buckets are "le": a value equal to an edge belongs to that edge's bucket.
        self.counts[bisect_left(self.edges_s, value_ns / 1e9)] += times
        self.sum_ns += value_ns * times
        self.count += times

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as exposed, ending with +Inf."""
        out, total = [], 0
        for edge, n in zip((*self.edges_s, float("inf")), self.counts):
            total += n
            out.append(("+Inf" if edge == float("inf") else repr(edge), total))
        return out


class Engine:
    """The server-side truth behind /metrics; ``Stream`` reports its events here."""

    def __init__(self, config: SimConfig, stats: SlotCount, ttft_ns: int, tpot_ns: int) -> None:
        self.stats = stats  # stats.active is the number of requests holding a slot ("running")
        self.kv_capacity_tokens = config.kv_cache_tokens
        self.ttft_ns = ttft_ns
        self.tpot_ns = tpot_ns
        self.created_s = time.time()  # the counters' _created, as prometheus_client reports it
        self.waiting = 0  # requests queued for a slot
        self.kv_tokens = 0  # prompt + generated tokens of the running requests
        # vLLM: prompt tokens are counted when their prefill completes (the step of the first token),
        # prefix-cache queries when the request is scheduled, generated tokens as they are produced.
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0
        self.prefix_cache_on = bool(config.prefix_cache_tokens)
        self.finished = {"stop": 0, "length": 0, "abort": 0}
        self.queue = Histogram(REQUEST_BUCKETS_S)
        self.prefill = Histogram(REQUEST_BUCKETS_S)
        self.decode = Histogram(REQUEST_BUCKETS_S)
        self.e2e = Histogram(REQUEST_BUCKETS_S)
        self.ttft = Histogram(TTFT_BUCKETS_S)
        self.itl_tokens = 0  # ITL observations, each tpot (the schedule): the histogram is built on a scrape
        self.itl_jittered: dict[int, int] = {}  # --jitter: of those, tokens per other tpot
        # llama.cpp: prompt tokens and seconds when the prefill completes; predicted tokens and
        # seconds only when a request finishes (server.cpp's on_prediction), so an aborted one never counts.
        self.lc_prompt_tokens = 0  # computed ones: cached tokens count apart (lc_prompt_cached)
        self.lc_prompt_cached = 0
        self.lc_prompt_ns = 0
        self.lc_predicted_tokens = 0
        self.lc_predicted_ns = 0
        self.n_decode = 0  # one llama_decode() per chunk produced: the sim does not batch slots together
        # The power integral: energy up to power_since_ns, piecewise constant between slot changes.
        self.energy_nj = 0  # W * ns
        self.power_since_ns = monotonic_ns()

    # -- state changes --------------------------------------------------------------------------
    def _power_changes(self, now_ns: int) -> None:
        if now_ns > self.power_since_ns:
            self.energy_nj += self.power_w() * (now_ns - self.power_since_ns)
            self.power_since_ns = now_ns

    def take_slot(self, req: Request) -> None:
        """A request starts its prefill (at ``req.slot_ns``): it runs, and its prompt fills KV."""
        self._power_changes(req.slot_ns)
        stats = self.stats
        stats.active += 1
        stats.max_active = max(stats.max_active, stats.active)
        prompt = req.prompt_tokens
        self.kv_tokens += prompt
        self.prefix_cache_queries += prompt
        self.prefix_cache_hits += req.cached_tokens
        self.queue.observe(req.slot_ns - req.arrival_ns)

    def generated(self, req: Request, start: int, end: int) -> None:
        """Tokens start..end-1 were produced (``req.sent`` already counts them)."""
        n = end - start
        self.n_decode += 1
        self.generation_tokens += n
        self.kv_tokens += n
        if start == 0:
            first_ns = req.recv_ns + self.ttft_ns
            prefill_ns = first_ns - req.slot_ns
            prompt = req.prompt_tokens
            self.prompt_tokens += prompt
            cached = req.cached_tokens
            self.lc_prompt_tokens += prompt - cached
            self.lc_prompt_cached += cached
            self.lc_prompt_ns += prefill_ns
            self.prefill.observe(prefill_ns)
            self.ttft.observe(first_ns - req.arrival_ns)
            n -= 1
        self.itl_tokens += n
        tpot = getattr(req, "tpot_ns", self.tpot_ns)
        if tpot != self.tpot_ns and n:
            self.itl_jittered[tpot] = self.itl_jittered.get(tpot, 0) + n

    def free_slot(self, req: Request, now_ns: int, finish_reason: str | None) -> None:
        """The request leaves its slot and frees its KV: finished ("stop"/"length"), or aborted
        (``"abort"``: client gone, or a simulated fault) or ``None`` (not counted as finished)."""
        self._power_changes(now_ns)
        self.stats.active -= 1
        self.kv_tokens -= req.prompt_tokens + req.sent
        if finish_reason is None:
            return
        # A reply of tool calls ended on the model's stop token: the engine counts "stop" (vLLM's
        # tool parser renames the reason in the API's answer only).
        self.finished["stop" if finish_reason == "tool_calls" else finish_reason] += 1
        if finish_reason == "abort" or not req.sent:
            return
        first_ns = req.recv_ns + self.ttft_ns
        decode_ns = (req.sent - 1) * getattr(req, "tpot_ns", self.tpot_ns)
        self.decode.observe(decode_ns)
        self.e2e.observe(first_ns + decode_ns - req.arrival_ns)
        self.lc_predicted_tokens += req.sent
        self.lc_predicted_ns += decode_ns

    # -- what a scrape reads ----------------------------------------------------------------------
    def power_w(self) -> int:
        return IDLE_W + PER_REQUEST_W * self.stats.active

    def energy_mj(self, now_ns: int) -> int:
        """Energy since the server started, in mJ (DCGM's unit), exact to the nJ before flooring."""
        since = self.power_since_ns
        return (self.energy_nj + self.power_w() * max(now_ns - since, 0)) // 1_000_000

    def kv_usage(self) -> float:
        """KV-cache usage as a 0..1 ratio (capped: a real cache cannot hold more than it has)."""
        return min(self.kv_tokens, self.kv_capacity_tokens) / self.kv_capacity_tokens

    def fb_used_mib(self) -> int:
        """GPU memory used: the weights and the whole KV cache, allocated at start as engines do."""
        return WEIGHTS_MIB + self.kv_capacity_tokens * KV_KIB_PER_TOKEN // 1024

    def itl(self) -> Histogram:
        hist = Histogram(ITL_BUCKETS_S)
        plain = self.itl_tokens - sum(self.itl_jittered.values())
        if plain:
            hist.observe(self.tpot_ns, plain)
        for tpot_ns, tokens in self.itl_jittered.items():
            hist.observe(tpot_ns, tokens)
        return hist
