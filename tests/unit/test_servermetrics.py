"""The server-metrics stages that need no server: a page reshaped into series, deltas between
scrapes (resets included), histogram quantiles as Prometheus interpolates them, the known-metric
maps, and a window summed from sample lines."""

from __future__ import annotations

import math

import pytest

from loadtest.servermetrics import engines, window
from loadtest.servermetrics.exposition import ExpositionError, difference, parse, series_key

VLLM_PAGE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e9
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 500.0
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.1",model_name="m"} 2.0
vllm:request_queue_time_seconds_bucket{engine="0",le="1.0",model_name="m"} 4.0
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="m"} 4.0
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 4.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 1.2
some_unknown_thing 7
"""
L = '{engine="0",model_name="m"}'


def test_a_page_becomes_series_by_type() -> None:
    s = parse(VLLM_PAGE)
    assert s.gauges[f"vllm:num_requests_running{L}"] == 3.0
    assert s.counters == {f"vllm:prompt_tokens_total{L}": 1000.0, f"vllm:generation_tokens_total{L}": 500.0}
    h = s.histograms[f"vllm:request_queue_time_seconds{L}"]
    assert h == {"buckets": {"0.1": 2.0, "1.0": 4.0, "+Inf": 4.0}, "sum": 1.2, "count": 4.0}
    assert s.untyped == {"some_unknown_thing": 7.0}  # unknown metrics are kept raw


def test_labels_are_sorted_and_escaped() -> None:
    assert series_key("x", {"b": "2", "a": 'say "hi"'}) == 'x{a="say \\"hi\\"",b="2"}'


@pytest.mark.parametrize("text", ["<html><body>Not Found</body></html>", "{\"status\": \"ok\"}"])
def test_a_page_that_is_not_prometheus_is_refused(text: str) -> None:
    with pytest.raises(ExpositionError):
        parse(text)


def test_deltas_and_a_counter_reset() -> None:
    before = parse(VLLM_PAGE)
    after = parse(VLLM_PAGE.replace("} 1000.0", "} 1100.0").replace("} 500.0", "} 20.0")
                  .replace('le="0.1",model_name="m"} 2.0', 'le="0.1",model_name="m"} 3.0')
                  .replace('le="1.0",model_name="m"} 4.0', 'le="1.0",model_name="m"} 5.0')
                  .replace('le="+Inf",model_name="m"} 4.0', 'le="+Inf",model_name="m"} 5.0')
                  .replace("seconds_count" + L + " 4.0", "seconds_count" + L + " 5.0")
                  .replace("seconds_sum" + L + " 1.2", "seconds_sum" + L + " 1.25"))
    first = difference(before, None)
    assert first["baseline"] and first["counters"][f"vllm:prompt_tokens_total{L}"] == 1000.0
    d = difference(after, before)
    assert "baseline" not in d
    assert d["counters"][f"vllm:prompt_tokens_total{L}"] == 100.0
    assert d["counters"][f"vllm:generation_tokens_total{L}"] == 20.0  # fell: the server restarted, counts from 0
    h = d["histograms"][f"vllm:request_queue_time_seconds{L}"]
    assert h["buckets"] == {"0.1": 1.0, "1.0": 1.0, "+Inf": 1.0} and h["count"] == 1.0
    assert h["sum"] == pytest.approx(0.05)
    assert d["gauges"][f"vllm:num_requests_running{L}"] == 3.0  # gauges as values


def test_quantile_interpolates_within_buckets_with_its_edges() -> None:
    h = {"buckets": {"0.1": 2.0, "1.0": 4.0, "+Inf": 4.0}, "sum": 1.2, "count": 4.0}
    v, bounds = window.quantile(h, 0.5)  # rank 2 of 4: the top of the first bucket
    assert v == pytest.approx(0.1) and bounds == [0.0, 0.1]
    v, bounds = window.quantile(h, 0.75)  # rank 3: halfway through (0.1, 1.0]
    assert v == pytest.approx(0.55) and bounds == [0.1, 1.0]
    over = {"buckets": {"0.1": 1.0, "+Inf": 4.0}, "sum": 9.0, "count": 4.0}
    v, bounds = window.quantile(over, 0.99)  # in +Inf: the last finite edge, a lower bound
    assert v == 0.1 and bounds == [0.1, None]
    assert window.quantile({"buckets": {"+Inf": 0.0}, "sum": 0, "count": 0}, 0.5) == (None, [None, None])


def test_engines_are_told_apart_by_their_names() -> None:
    assert engines.detect(engines.names_of(parse(VLLM_PAGE))).name == "vllm"
    llama = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
    assert engines.detect(engines.names_of(parse(llama))).name == "llamacpp"
    assert engines.detect({"up", "process_cpu_seconds_total"}) is None
    known = engines.live_gauges([engines.VLLM], parse(VLLM_PAGE).gauges)
    assert known == {"running": 3.0, "waiting": 1.0, "kv_cache_usage": 0.25}


def _line(t: float, **kw: object) -> dict[str, object]:
    return {"t_s": t, "source": "http://s/metrics", "ok": True, "known": {}, "gauges": {}, "counters": {},
            "histograms": {}, **kw}


def test_a_window_sums_deltas_from_baseline_to_final_and_averages_gauges_inside() -> None:
    run, kv = f"vllm:num_requests_running{L}", f"vllm:kv_cache_usage_perc{L}"
    gen, q = f"vllm:generation_tokens_total{L}", f"vllm:request_queue_time_seconds{L}"
    hist = lambda n, s: {"buckets": {"0.1": n, "+Inf": n}, "sum": s, "count": n}  # noqa: E731
    lines = [
        _line(-0.5, engine="vllm", engines=["vllm"], baseline=True, gauges={run: 0.0, kv: 0.0}, counters={gen: 5000.0},
              histograms={q: hist(10.0, 0.5)}),
        _line(0.5, gauges={run: 4.0, kv: 0.5}, counters={gen: 100.0}, histograms={q: hist(2.0, 0.1)}),
        _line(1.5, gauges={run: 2.0, kv: 0.9}, counters={gen: 50.0}),
        {"t_s": 2.0, "source": "http://s/metrics", "ok": False, "error": "timeout after 2 s"},
        _line(2.5, gauges={run: 0.0, kv: 0.1}, counters={gen: 7.0}),
        _line(3.5, gauges={run: 0.0, kv: 0.0}, counters={gen: 999.0}),  # after the final sample: not counted
    ]
    block = window.summarise(lines, begin_s=0.0, end_s=2.2, interval_s=1.0)
    k = block["known"]
    assert k["generation_tokens"] == 157.0
    assert k["running"] == {"mean": 3.0, "max": 4.0}
    assert k["kv_cache_usage"]["max"] == 0.9
    assert k["queue_s"]["count"] == 2.0 and k["queue_s"]["mean"] == pytest.approx(0.05)
    assert "prompt_tokens" not in k  # not on this page: absent, never 0
    src = block["sources"][0]
    assert (src["samples"], src["failed"], src["span_s"]) == (5, 1, [-0.5, 2.5])
    assert "1 scrapes failed" in src["note"]


def test_a_source_without_metrics_is_absent_not_an_error() -> None:
    lines = [{"t_s": 0.1, "source": "http://s/metrics", "ok": False, "error": "HTTP 404: no /metrics here",
              "gave_up": True}]
    block = window.summarise(lines, begin_s=0.0, end_s=1.0, interval_s=1.0)
    assert block["sources"][0]["status"] == "absent"
    assert block["known"]["prefix_cache_hit_rate"] is None
    assert not math.isnan(block["interval_s"])


SGLANG_PAGE = """# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 5.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 2.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.5
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="m"} 400.0
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{model_name="m"} 100.0
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="m"} 80.0
"""
TGI_PAGE = """# TYPE tgi_queue_size gauge
tgi_queue_size 3
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 8
# TYPE tgi_request_success counter
tgi_request_success 4
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="100.0"} 4
tgi_request_generated_tokens_bucket{le="+Inf"} 4
tgi_request_generated_tokens_sum 200
tgi_request_generated_tokens_count 4
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"} 5000
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0"} 250.5
"""


@pytest.mark.parametrize(("page", "engine", "expect"), [
    (SGLANG_PAGE, "sglang", {"running": 5.0, "waiting": 2.0, "kv_cache_usage": 0.5, "prompt_tokens": 400.0,
                             "generation_tokens": 80.0, "prefix_cache_hit_rate": 0.25}),
    # TGI counts tokens only in histograms; a DCGM exporter on the same page adds the GPU (mJ -> J)
    (TGI_PAGE, "tgi", {"running": 8.0, "waiting": 3.0, "generation_tokens": 200.0, "requests_finished": 4.0,
                       "gpu_power_w": 250.5, "gpu_energy_j": 5.0}),
])
def test_each_engines_names_map_to_the_known_block(page: str, engine: str, expect: dict[str, float]) -> None:
    """One baseline sample and a final one whose counters all moved by their full value: the known
    block reads each engine's own names (absolute page values stand in for deltas here)."""
    scrape = parse(page)
    found = engines.present(engines.names_of(scrape))
    assert found[0].name == engine
    base = {"t_s": -1.0, "source": "s", "ok": True, "engine": engine, "engines": [e.name for e in found],
            "baseline": True, "gauges": scrape.gauges,
            "counters": {k: 0.0 for k in scrape.counters},
            "histograms": {k: {"buckets": {le: 0.0 for le in h["buckets"]}, "sum": 0.0, "count": 0.0}
                           for k, h in scrape.histograms.items()}}
    final = {"t_s": 2.0, "source": "s", "ok": True, **difference(scrape, None)}
    final.pop("baseline")
    block = window.summarise([base, final], begin_s=0.0, end_s=1.0, interval_s=1.0)
    k = block["known"]
    for key, value in expect.items():
        got = k[key]["mean"] if isinstance(k[key], dict) else k[key]
        assert got == pytest.approx(value), key
