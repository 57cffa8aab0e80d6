"""The test server's GET /metrics (vLLM, llama.cpp and DCGM families) against the truth it knows:
token counters equal the replies' usage, gauges the requests in flight, histogram sums the
per-request log (--log-chunks), the energy counter the power model; client disconnects with an
engine that aborts and one that keeps generating; the scrape faults a client must survive."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.sim import SimProcess
from loadtest.sim.engine import ITL_BUCKETS_S, REQUEST_BUCKETS_S, TTFT_BUCKETS_S

pytestmark = pytest.mark.timeout(60)

ALL = ("vllm", "llamacpp", "dcgm")
VLLM = {"model_name": "sim-model", "engine": "0"}
GPU = {"gpu": "0", "UUID": "GPU-sim-0", "device": "nvidia0", "modelName": "Sim GPU"}
Page = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fetch(s: SimProcess) -> httpx.Response:
    return httpx.get(s.root_url + "/metrics", trust_env=False, timeout=10)


def scrape(s: SimProcess) -> Page:
    """Every sample of the page, parsed by prometheus_client as the client's scraper does."""
    r = fetch(s)
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4"
    return {(x.name, frozenset(x.labels.items())): x.value
            for family in text_string_to_metric_families(r.text) for x in family.samples}


def v(page: Page, name: str, **labels: str) -> float:
    """One sample: vLLM's names get model_name and engine, DCGM's the GPU's labels."""
    base = VLLM if name.startswith("vllm:") else GPU if name.startswith("DCGM_") else {}
    return page[(name, frozenset({**base, **labels}.items()))]


def log_rows(path: Path, n: int | None = None) -> list[dict[str, Any]]:
    """The per-request log; with ``n``, once it holds n lines (the sim writes a reply's line just
    after the reply's last bytes, so a client can be there first)."""
    if n is not None:
        wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= n)
    return [json.loads(line) for line in path.read_text().splitlines()]


def post(s: SimProcess, path: str, **body: Any) -> dict[str, Any]:
    """One request; the usage of its reply (a stream's last chunk, with its timings when sent)."""
    body.setdefault("model", "sim-model")
    with httpx.Client(trust_env=False, timeout=30) as c:
        r = c.post(s.base_url + path, json=body)
        assert r.status_code == 200
        if not body.get("stream"):
            return r.json()
        last = json.loads([line for line in r.text.splitlines() if line.startswith("data: {")][-1][6:])
        return last


def wait_for(check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.005)


# -- names, types, selection ----------------------------------------------------------------------
def test_families_have_the_engines_names_types_and_labels(sim) -> None:
    s = sim(metrics=ALL)
    r = fetch(s)
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4"
    types = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    expected = {
        "vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge", "vllm:prompt_tokens": "counter", "vllm:generation_tokens": "counter",
        "vllm:num_preemptions": "counter", "vllm:prefix_cache_queries": "counter",
        "vllm:prefix_cache_hits": "counter", "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram", "vllm:inter_token_latency_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram", "vllm:request_queue_time_seconds": "histogram",
        "vllm:request_prefill_time_seconds": "histogram", "vllm:request_decode_time_seconds": "histogram",
        "llamacpp:prompt_tokens": "counter", "llamacpp:prompt_seconds": "counter",
        "llamacpp:tokens_predicted": "counter", "llamacpp:tokens_predicted_seconds": "counter",
        "llamacpp:n_decode": "counter", "llamacpp:requests_processing": "gauge",
        "llamacpp:requests_deferred": "gauge", "llamacpp:kv_cache_usage_ratio": "gauge",
        "llamacpp:kv_cache_tokens": "gauge", "DCGM_FI_DEV_GPU_UTIL": "gauge", "DCGM_FI_DEV_FB_USED": "gauge",
        "DCGM_FI_DEV_POWER_USAGE": "gauge", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "counter",
    }
    assert {name: types.get(name) for name in expected} == expected
    text = r.text
    assert "\nvllm:prompt_tokens_total{" in text and "\nllamacpp:tokens_predicted_total 0\n" in text
    assert 'vllm:num_requests_running{engine="0",model_name="sim-model"} 0.0' in text
    assert "vllm:generation_tokens_created{" in text  # prometheus_client's _created series, as vLLM serves
    assert "\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text  # no _total, as dcgm-exporter writes it
    page = scrape(s)
    assert {reason: v(page, "vllm:request_success_total", finished_reason=reason)
            for reason in ("stop", "length", "abort")} == {"stop": 0, "length": 0, "abort": 0}
    edges = {name: sorted(float(dict(k[1])["le"]) for k in page if k[0] == name + "_bucket")
             for name in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
                          "vllm:e2e_request_latency_seconds")}
    assert edges["vllm:time_to_first_token_seconds"] == [*TTFT_BUCKETS_S, float("inf")]
    assert edges["vllm:inter_token_latency_seconds"] == [*ITL_BUCKETS_S, float("inf")]
    assert edges["vllm:e2e_request_latency_seconds"] == [*REQUEST_BUCKETS_S, float("inf")]
    assert v(page, "DCGM_FI_DEV_POWER_USAGE") == 60 and v(page, "DCGM_FI_DEV_GPU_UTIL") == 0
    assert v(page, "DCGM_FI_DEV_FB_USED") == 1024 + 65536 * 128 // 1024


def test_only_the_chosen_families_and_none_answers_404(sim) -> None:
    dcgm_only = sim(metrics=("dcgm",))
    names = {f.name for f in text_string_to_metric_families(fetch(dcgm_only).text)}
    assert names == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE",
                     "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}
    plain = sim()
    r = fetch(plain)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# -- counters and histograms against the replies and the log --------------------------------------
def test_counters_equal_the_usage_and_histograms_the_log(sim, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    s = sim(metrics=ALL, ttft_ms=3, tpot_ms=2, output_tokens=6, prefill_tokens_per_s=10000, log_chunks=str(log))
    usages = [
        post(s, "/chat/completions", messages=[{"role": "user", "content": "a b c"}], max_tokens=4, stream=True,
             stream_options={"include_usage": True})["usage"],  # length
        post(s, "/chat/completions", messages=[{"role": "user", "content": "one two"}], max_tokens=9, stream=True,
             stream_options={"include_usage": True})["usage"],  # stop at 6
        post(s, "/completions", prompt="x y z w v", max_tokens=5)["usage"],  # non-stream, length
        post(s, "/completions", prompt="p", max_tokens=20, stream=True, stream_options={"include_usage": True})["usage"],
    ]
    rows = log_rows(log, 4)
    assert len(rows) == 4 and all(r["end"] == "finished" and r["completed"] for r in rows)
    page = scrape(s)
    prompt = sum(u["prompt_tokens"] for u in usages)
    generated = sum(u["completion_tokens"] for u in usages)
    assert (prompt, generated) == (3 + 2 + 5 + 1, 4 + 6 + 5 + 6)
    assert v(page, "vllm:prompt_tokens_total") == prompt == v(page, "vllm:prefix_cache_queries_total")
    assert v(page, "vllm:generation_tokens_total") == generated
    assert v(page, "vllm:prefix_cache_hits_total") == 0 == v(page, "vllm:num_preemptions_total")
    assert v(page, "vllm:request_success_total", finished_reason="length") == 2
    assert v(page, "vllm:request_success_total", finished_reason="stop") == 2
    assert v(page, "llamacpp:prompt_tokens_total") == prompt and v(page, "llamacpp:tokens_predicted_total") == generated
    # One decode per wake-up: requests one after another, one token per chunk, a non-stream reply in one.
    assert v(page, "llamacpp:n_decode_total") == 4 + 6 + 1 + 6
    # Histograms: one observation per request (ITL: per token after the first), sums from the log.
    for name in ("time_to_first_token", "e2e_request_latency", "request_queue_time", "request_prefill_time",
                 "request_decode_time"):
        assert v(page, f"vllm:{name}_seconds_count") == 4, name
    queue = sum(r["queue_s"] for r in rows)
    prefill = sum(r["prefill_s"] for r in rows)
    assert queue == 0 and v(page, "vllm:request_queue_time_seconds_sum") == 0
    # prefill = prompt / 10000 tokens/s + ttft 3 ms, for each request
    assert prefill == pytest.approx(prompt / 10000 + 4 * 0.003, abs=1e-9)
    assert v(page, "vllm:request_prefill_time_seconds_sum") == pytest.approx(prefill, abs=1e-9)
    assert v(page, "vllm:time_to_first_token_seconds_sum") == pytest.approx(queue + prefill, abs=1e-9)
    assert v(page, "llamacpp:prompt_seconds_total") == pytest.approx(prefill, rel=1e-5)  # 6 digits, as llama.cpp
    decode = sum((u["completion_tokens"] - 1) * 0.002 for u in usages)
    assert v(page, "vllm:request_decode_time_seconds_sum") == pytest.approx(decode, abs=1e-9)
    assert v(page, "llamacpp:tokens_predicted_seconds_total") == pytest.approx(decode, rel=1e-5)
    assert v(page, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(prefill + decode, abs=1e-9)
    itl = generated - 4
    assert v(page, "vllm:inter_token_latency_seconds_count") == itl
    assert v(page, "vllm:inter_token_latency_seconds_sum") == pytest.approx(itl * 0.002, abs=1e-9)
    assert v(page, "vllm:inter_token_latency_seconds_bucket", le="0.01") == itl  # every gap is tpot, 2 ms
    # Each reply's own log line: the schedule's first token, and what went out.
    for row, u in zip(rows, usages):
        assert row["generated_tokens"] == u["completion_tokens"] and row["prompt_tokens"] == u["prompt_tokens"]
        assert row["first_token_ns"] - row["slot_ns"] == round(row["prefill_s"] * 1e9)
        assert row["disconnect_ns"] is None and row["end_ns"] >= row["first_token_ns"]
    assert v(page, "vllm:num_requests_running") == 0 and v(page, "vllm:kv_cache_usage_perc") == 0


def _stream_in_thread(s: SimProcess, content: str, max_tokens: int) -> dict[str, Any]:
    return post(s, "/chat/completions", messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
                stream=True, stream_options={"include_usage": True})


def test_running_waiting_and_kv_with_slots(sim, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    # First tokens 600 ms after the slot: the scrape lands while two requests prefill and three wait.
    s = sim(metrics=ALL, max_concurrency=2, ttft_ms=600, tpot_ms=1, output_tokens=2, kv_cache_tokens=100,
            log_chunks=str(log))
    with ThreadPoolExecutor(5) as pool:
        replies = [pool.submit(_stream_in_thread, s, "w " * 5, 2) for _ in range(5)]
        wait_for(lambda: s.stats()["requests_received"] == 5)
        page = scrape(s)
        results = [r.result() for r in replies]
    assert v(page, "vllm:num_requests_running") == 2 and v(page, "vllm:num_requests_waiting") == 3
    assert v(page, "llamacpp:requests_processing") == 2 and v(page, "llamacpp:requests_deferred") == 3
    # KV: two running requests of 5 prompt tokens each, nothing generated yet, in a 100-token cache.
    assert v(page, "vllm:kv_cache_usage_perc") == 0.1 == v(page, "llamacpp:kv_cache_usage_ratio")
    assert v(page, "llamacpp:kv_cache_tokens") == 10
    assert v(page, "DCGM_FI_DEV_POWER_USAGE") == 60 + 2 * 50 and v(page, "DCGM_FI_DEV_GPU_UTIL") == 100
    assert all(r["usage"]["completion_tokens"] == 2 for r in results)
    after = scrape(s)
    assert v(after, "vllm:num_requests_running") == 0 == v(after, "vllm:num_requests_waiting")
    assert v(after, "vllm:kv_cache_usage_perc") == 0 and v(after, "DCGM_FI_DEV_POWER_USAGE") == 60
    rows = sorted(log_rows(log, 5), key=lambda r: r["slot_ns"])  # three waves of two slots, 600 ms each
    queued = [r["queue_s"] for r in rows]
    assert queued[:2] == [0, 0] and all(q > 0.4 for q in queued[2:4]) and queued[4] > 1.0
    for wave, before in ((rows[2:4], rows[0:2]), (rows[4:], rows[2:4])):  # a slot frees when a reply ends
        assert all(min(r["end_ns"] for r in before) <= r["slot_ns"] for r in wave)
    assert v(after, "vllm:request_queue_time_seconds_sum") == pytest.approx(sum(queued), abs=1e-9)
    assert v(after, "vllm:request_queue_time_seconds_bucket", le="0.3") == 2
    assert v(after, "vllm:request_prefill_time_seconds_sum") == pytest.approx(5 * 0.6, abs=1e-9)
    assert v(after, "vllm:time_to_first_token_seconds_sum") == pytest.approx(sum(queued) + 3.0, abs=1e-9)


def test_energy_over_an_interval_matches_the_power_model(sim, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    s = sim(metrics=("dcgm",), ttft_ms=150, tpot_ms=10, output_tokens=10, log_chunks=str(log))
    a1 = time.monotonic_ns()
    first = scrape(s)
    b1 = time.monotonic_ns()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: _stream_in_thread(s, "q " * n, 10), (1, 2, 3)))
    time.sleep(0.1)
    a2 = time.monotonic_ns()
    second = scrape(s)
    b2 = time.monotonic_ns()
    rows = log_rows(log, 3)
    busy_ns = sum(r["end_ns"] - r["slot_ns"] for r in rows)  # every request ran inside the interval
    assert len(rows) == 3 and all(b1 < r["slot_ns"] and r["end_ns"] < a2 for r in rows)
    # dcgm-exporter's counter has no _total; prometheus_client's parser names its sample with one.
    energy_mj = (v(second, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total")
                 - v(first, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total"))
    # 60 W idle over the interval between the two scrapes (known within their round trips) plus 50 W
    # per running request; W * ns / 1e6 = mJ, and each reading is floored to the mJ.
    low = (60 * (a2 - b1) + 50 * busy_ns) / 1e6 - 1
    high = (60 * (b2 - a1) + 50 * busy_ns) / 1e6 + 1
    assert low <= energy_mj <= high
    assert busy_ns >= 3 * 240e6  # three requests of 150 ms + 9 * 10 ms each really counted


# -- client disconnects ---------------------------------------------------------------------------
def _open_stream(s: SimProcess, max_tokens: int, wait_for_bytes: bytes | None) -> socket.socket:
    """A raw streaming request, read until ``wait_for_bytes`` arrived (None: not at all)."""
    body = json.dumps({"model": "sim-model", "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "a b c d"}]}).encode()
    sock = socket.create_connection((s.host, s.port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    got = b""
    while wait_for_bytes is not None and wait_for_bytes not in got:
        got += sock.recv(65536)
    return sock


@pytest.mark.parametrize("keep", [False, True], ids=["abort", "keep-generating"])
def test_a_disconnected_request_is_aborted_or_keeps_generating(sim, tmp_path: Path, keep: bool) -> None:
    log = tmp_path / "log.jsonl"
    # One slot; a request lasts 50 ms + 29 * 20 ms = 630 ms.
    s = sim(metrics=("vllm", "llamacpp"), max_concurrency=1, ttft_ms=50, tpot_ms=20, kv_cache_tokens=1000,
            keep_generating_on_disconnect=keep, log_chunks=str(log))
    running = _open_stream(s, 30, b" tok1")  # chatcmpl-1
    queued = _open_stream(s, 30, None)  # chatcmpl-2, waiting for the slot
    wait_for(lambda: s.stats()["requests_received"] == 2)
    t_close = time.monotonic_ns()
    queued.close()  # first, so that the slot the running one frees never reaches it in abort mode
    wait_for(lambda: s.stats()["requests_aborted"] == 1)
    running.close()
    wait_for(lambda: s.stats()["requests_aborted"] == 2)
    page = scrape(s)
    time.sleep(0.1)
    later = scrape(s)
    if not keep:  # both gone at once: no slot, no queue, no KV, no more tokens
        assert v(page, "vllm:num_requests_running") == 0 == v(page, "vllm:num_requests_waiting")
        assert v(page, "vllm:kv_cache_usage_perc") == 0
        rows = {r["id"]: r for r in log_rows(log, 2)}
        first, second = rows["chatcmpl-1"], rows["chatcmpl-2"]
        assert 2 <= first["generated_tokens"] < 30 and second["generated_tokens"] == 0
        assert v(later, "vllm:generation_tokens_total") == v(page, "vllm:generation_tokens_total") \
            == first["generated_tokens"] == sum(first["tokens"])
        assert v(later, "vllm:request_success_total", finished_reason="abort") == 1  # the queued one never ran
        assert v(later, "llamacpp:tokens_predicted_total") == 0  # llama.cpp counts a request only when it ends
        assert first["end"] == second["end"] == "disconnected"
        assert all(r["end_ns"] == r["disconnect_ns"] >= t_close for r in (first, second))
        assert second["slot_ns"] is None and second["queue_s"] is None and second["prefill_s"] is None
        return
    # The engine bug: the first still runs and holds its KV, the second still waits for the slot.
    assert v(page, "vllm:num_requests_running") == 1 and v(page, "vllm:num_requests_waiting") == 1
    assert v(page, "vllm:kv_cache_usage_perc") >= (4 + 2) / 1000
    assert v(later, "vllm:generation_tokens_total") > v(page, "vllm:generation_tokens_total")
    log_rows(log, 2)
    done = scrape(s)
    assert v(done, "vllm:num_requests_running") == 0 == v(done, "vllm:num_requests_waiting")
    assert v(done, "vllm:generation_tokens_total") == 60 == v(done, "llamacpp:tokens_predicted_total")
    assert v(done, "vllm:request_success_total", finished_reason="length") == 2
    assert v(done, "vllm:request_success_total", finished_reason="abort") == 0
    rows = {r["id"]: r for r in log_rows(log)}
    first, second = rows["chatcmpl-1"], rows["chatcmpl-2"]
    assert first["end"] == second["end"] == "disconnected" and not first["completed"]
    assert first["generated_tokens"] == second["generated_tokens"] == 30
    # Each ran to where it would have ended, 50 ms + 29 * 20 ms after its slot, long after its client left.
    for row in (first, second):
        assert row["end_ns"] - row["slot_ns"] >= 630e6 and row["disconnect_ns"] < row["end_ns"] - 100e6
    assert second["slot_ns"] >= first["end_ns"] and second["queue_s"] > 0.5  # it came 70 ms after the first
    # The log's chunks are what really went out: nothing after the client left.
    assert 2 <= sum(first["tokens"]) < 30 and all(t < first["disconnect_ns"] for t in first["sent_ns"])
    assert second["tokens"] == []


# -- faults on the scrape -------------------------------------------------------------------------
def test_a_delayed_scrape_does_not_hold_generation_back(sim, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    s = sim(metrics=("vllm",), metrics_delay_ms=400, ttft_ms=5, tpot_ms=5, log_chunks=str(log))
    took: list[float] = []

    def slow_scrape() -> None:
        t = time.monotonic()
        scrape(s)
        took.append(time.monotonic() - t)

    scraper = threading.Thread(target=slow_scrape)
    scraper.start()
    time.sleep(0.05)
    usage = _stream_in_thread(s, "a b", 40)["usage"]  # 5 + 39 * 5 ms = 200 ms, all within the wait
    streamed_while_waiting = scraper.is_alive()
    scraper.join()
    assert usage["completion_tokens"] == 40 and streamed_while_waiting and took[0] >= 0.4
    (row,) = log_rows(log, 1)
    due = [row["first_token_ns"] + i * 5_000_000 for i in range(40)]
    assert max(sent - d for sent, d in zip(row["sent_ns"], due)) < 30e6  # on schedule while the scrape waited


def test_a_malformed_page_is_rejected_by_the_parser(sim) -> None:
    s = sim(metrics=("vllm", "dcgm"), metrics_malformed=True)
    r = fetch(s)
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4"
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(r.text))


def test_extra_series_make_the_page_large(sim) -> None:
    s = sim(metrics=("llamacpp",), metrics_extra_series=20000)
    r = fetch(s)
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    padding = families["loadtest_sim_padding"]
    assert padding.type == "gauge" and len(padding.samples) == 20000 and len(r.content) > 500_000
    assert padding.samples[-1].labels == {"series": "19999"} and "llamacpp:n_decode" in families


# -- llama.cpp timings ----------------------------------------------------------------------------
def test_timings_prompt_ms_is_the_prefill_without_the_queue(sim, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    s = sim(metrics=("vllm",), max_concurrency=1, timings=True, ttft_ms=20, tpot_ms=1, output_tokens=5,
            prefill_tokens_per_s=1000, log_chunks=str(log))
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda n: _stream_in_thread(s, "t " * n, 5), (100, 50)))
    plain = post(s, "/completions", prompt="u " * 10, max_tokens=5)
    rows = {r["prompt_tokens"]: r for r in log_rows(log, 3)}
    for reply in (*replies, plain):
        t, row = reply["timings"], rows[reply["usage"]["prompt_tokens"]]
        assert t["prompt_n"] == row["prompt_tokens"] and t["predicted_n"] == 5 and t["predicted_ms"] == 4
        assert t["prompt_ms"] == pytest.approx(row["prefill_s"] * 1000, abs=1e-6)
        assert t["prompt_ms"] == pytest.approx(20 + t["prompt_n"], abs=1e-6)  # 1 ms a token + ttft
    # One of the two streams waited for the other's slot, and that wait is not in its prompt_ms: it got
    # the slot when the other ended (how long it waited depends on when the two threads sent).
    first, second = sorted((rows[100], rows[50]), key=lambda r: r["slot_ns"])
    assert second["queue_s"] > 0 and abs(second["slot_ns"] - first["end_ns"]) < 2_000_000
