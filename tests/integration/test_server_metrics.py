"""The client's server_metrics block against the test server's truth: the sim serves /metrics in
vLLM's, llama.cpp's and DCGM's names from the state it really had, and logs each request's queue
and prefill (--log-chunks). Token counters equal usage, the TTFT split equals the server's own queue
and prefill, the gauges saw the slots; slow, malformed, huge or absent pages neither delay nor fail
a run; abandoned requests are found running on a server that keeps generating."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main

pytestmark = pytest.mark.timeout(120)


def run(sim_url: str, out: Path, *extra: str) -> tuple[int, dict[str, Any], list[dict[str, Any]], float]:
    t0 = time.monotonic()
    code = main(["throughput", "--endpoint", sim_url, "--model", "sim-model", "--max-tokens", "20",
                 "--concurrency", "1", "--server-metrics-interval", "0.1", *extra, "--output", str(out), "--quiet"])
    took = time.monotonic() - t0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return code, summary, rows, took


def log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_vllm_metrics_agree_with_usage_and_the_servers_own_queue_and_prefill(sim, tmp_path: Path) -> None:
    s = sim(metrics=("vllm",), max_concurrency=2, output_tokens=20, ttft_ms=30, tpot_ms=5,
            log_chunks=str(tmp_path / "sim.jsonl"))
    code, summary, rows, _ = run(s.base_url, tmp_path / "out", "--concurrency", "4", "--num-prompts", "12")
    assert code == 0
    block = summary["server_metrics"]
    src = block["sources"][0]
    assert (src["engine"], src["status"], src["failed"]) == ("vllm", "ok", 0)
    k = block["known"]
    assert k["generation_tokens"] == sum(r["completion_tokens"] for r in rows) == 240
    assert k["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert block["tokens_check"]["agree"] is True and block["tokens_check"]["checked"] is True
    # two slots, four users: two run and two wait, nearly all the time
    assert k["running"]["max"] == 2 and k["waiting"]["max"] == 2
    assert 1.5 <= k["running"]["mean"] <= 2 and k["waiting"]["mean"] >= 1
    truth = log(tmp_path / "sim.jsonl")
    assert len(truth) == 12
    assert k["queue_s"]["count"] == 12
    assert k["queue_s"]["mean"] == pytest.approx(sum(t["queue_s"] for t in truth) / 12, abs=1e-6)
    assert k["prefill_s"]["mean"] == pytest.approx(sum(t["prefill_s"] for t in truth) / 12, abs=1e-6)
    # a percentile lies within the bucket edges it names
    lo, hi = k["ttft_s"]["p50_bounds"]
    assert lo <= k["ttft_s"]["p50"] <= hi
    split = block["ttft_split"]["from_histograms"]
    assert split["queue_s"] == pytest.approx(k["queue_s"]["mean"])
    assert split["server_ttft_s"] == pytest.approx(k["queue_s"]["mean"] + k["prefill_s"]["mean"], abs=1e-6)
    # what the server did not account for: loopback, HTTP and this client, well under 5 ms each
    assert 0 <= split["network_http_client_s"] < 0.005
    lines = [json.loads(x) for x in (tmp_path / "out" / "server_metrics.jsonl").read_text().splitlines()]
    nvml = [ln for ln in lines if ln["source"] == "nvml"]
    assert len(nvml) == 1 and nvml[0]["gave_up"] and "no GPU" in nvml[0]["error"]  # asked once, no GPU here
    lines = [ln for ln in lines if ln["source"] == src["url"]]
    assert lines[0]["baseline"] is True and lines[0]["t_s"] < rows[0]["start_s"]  # a sample before the window
    assert lines[-1]["t_s"] >= max(r["end_s"] for r in rows)  # and one after it
    assert block["scraper_cpu_s"] is not None and block["scraper_cpu_s"] < 2


def test_llamacpp_timings_split_ttft_per_request(sim, tmp_path: Path) -> None:
    s = sim(metrics=("llamacpp",), timings=True, max_concurrency=1, output_tokens=8, ttft_ms=25,
            log_chunks=str(tmp_path / "sim.jsonl"))
    code, summary, _rows, _ = run(s.base_url, tmp_path / "out", "--concurrency", "2", "--num-prompts", "6")
    assert code == 0
    block = summary["server_metrics"]
    assert block["sources"][0]["engine"] == "llamacpp"
    per = block["ttft_split"]["from_engine_timings"]
    truth = log(tmp_path / "sim.jsonl")
    assert per["requests"] == 6
    assert per["prefill_s"] == pytest.approx(sum(t["prefill_s"] for t in truth) / 6, abs=1e-4)
    # one slot, two users: the rest of the TTFT is mostly the queue llama.cpp does not report
    assert per["rest_s"] == pytest.approx(sum(t["queue_s"] for t in truth) / 6, abs=0.003)
    assert block["known"]["running"]["max"] == 1 and block["known"]["generation_tokens"] == 48


def test_no_metrics_endpoint_is_absent_and_silent(sim, tmp_path: Path, capsys) -> None:
    s = sim()
    code = main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "2",
                 "--output", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    src = summary["server_metrics"]["sources"]
    assert [x["status"] for x in src] == ["absent"] and "404" in src[0]["note"]
    assert summary["server_metrics"]["gpu"]["sampled"] is False  # no GPU here: said, not zero
    assert "server metrics" not in capsys.readouterr().out


def test_switched_off_samples_nothing(sim, tmp_path: Path) -> None:
    s = sim(metrics=("vllm",))
    code, summary, _, _ = run(s.base_url, tmp_path / "out", "--num-prompts", "2", "--no-server-metrics")
    assert code == 0 and "server_metrics" not in summary
    assert not (tmp_path / "out" / "server_metrics.jsonl").exists()


def test_a_slow_metrics_page_does_not_delay_the_run(sim, tmp_path: Path) -> None:
    fast = sim(metrics=("vllm",), output_tokens=5)
    *_, took_fast = run(fast.base_url, tmp_path / "fast", "--num-prompts", "3")
    slow = sim(metrics=("vllm",), output_tokens=5, metrics_delay_ms=4000)
    code, summary, rows, took_slow = run(slow.base_url, tmp_path / "slow", "--num-prompts", "3")
    assert code == 0 and len(rows) == 3 and all(r["ok"] for r in rows)
    assert took_slow < took_fast + 1.0, (took_fast, took_slow)  # at most the 0.5 s first-sample wait
    src = summary["server_metrics"]["sources"][0]
    assert src["samples"] == 0 and src["status"] == "failed"
    assert summary["server_metrics"]["tokens_check"]["agree"] is None


def test_a_malformed_page_is_given_up_with_one_line(sim, tmp_path: Path, capsys) -> None:
    s = sim(metrics=("vllm",), metrics_malformed=True)
    code = main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "2",
                 "--server-metrics", f"{s.root_url}/metrics", "--output", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    src = summary["server_metrics"]["sources"][0]
    assert src["status"] == "absent" and "not Prometheus text" in src["note"]
    out = capsys.readouterr().out
    assert "server metrics" in out and "not Prometheus text" in out and "Traceback" not in out


def test_a_huge_page_keeps_the_known_metrics(sim, tmp_path: Path) -> None:
    s = sim(metrics=("vllm",), metrics_extra_series=20000, output_tokens=10)
    code, summary, _rows, _ = run(s.base_url, tmp_path / "out", "--num-prompts", "4",
                                 "--server-metrics-interval", "0.5")
    assert code == 0
    block = summary["server_metrics"]
    assert "only the vllm metrics are kept" in block["sources"][0]["note"]
    assert block["known"]["generation_tokens"] == 40
    assert not any(k.startswith("loadtest_sim_padding") for k in block["gauges"])


@pytest.mark.parametrize("keeps_generating", [False, True])
def test_abandoned_requests_freed_or_not(sim, tmp_path: Path, keeps_generating: bool) -> None:
    s = sim(metrics=("vllm",), output_tokens=100, tpot_ms=10, ttft_ms=10,
            keep_generating_on_disconnect=keeps_generating)
    code, summary, rows, _ = run(s.base_url, tmp_path / "out", "--concurrency", "4", "--num-prompts", "16",
                                 "--cancel-rate", "0.5", "--cancel-after", "0.1", "--seed", "3")
    assert code == 0
    freed = summary["server_metrics"]["abandoned_freed"]
    assert freed["abandoned"] == sum(1 for r in rows if r["error_kind"] == "abandoned") > 0
    assert freed["samples"] >= 5
    assert freed["freed"] is (not keeps_generating), freed
    if keeps_generating:
        assert freed["excess_running_max"] >= 1


def test_dcgm_energy_matches_the_power_model(sim, tmp_path: Path) -> None:
    """The sim's GPU draws 60 W idle + 50 W per running request; with one slot busy for known spans
    the energy over the counted span is known to within the scrape's own instant."""
    s = sim(metrics=("vllm", "dcgm"), max_concurrency=1, output_tokens=40, tpot_ms=5,
            log_chunks=str(tmp_path / "sim.jsonl"))
    code, summary, _rows, _ = run(s.base_url, tmp_path / "out", "--num-prompts", "4")
    assert code == 0
    block = summary["server_metrics"]
    assert {x["engine"] for x in block["sources"]} == {"vllm"}  # one page, two families: vLLM's names win
    lines = [json.loads(x) for x in (tmp_path / "out" / "server_metrics.jsonl").read_text().splitlines()]
    t0, t1 = block["sources"][0]["span_s"]
    busy = 0.0
    origin = summary["run"]["clock_origin_ns"]
    for t in log(tmp_path / "sim.jsonl"):
        a, b = (t["slot_ns"] - origin) / 1e9, (t["end_ns"] - origin) / 1e9
        busy += max(0.0, min(b, t1) - max(a, t0))
    energy = sum(v for ln in lines if ln.get("ok") and not ln.get("baseline") and t0 < ln["t_s"] <= t1
                 for k, v in ln["counters"].items() if k.startswith("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"))
    # The server read its counter at some instant of each scrape, not at its midpoint t_s: the truth
    # is known to within each edge scrape's half duration at the most the GPU draws (60 + 50 W).
    edges = [ln for ln in lines if ln.get("ok") and ln["t_s"] in (t0, t1) and ln["source"] != "nvml"]
    slack_j = 110 * sum(ln["scrape_s"] / 2 for ln in edges) + 0.05
    assert energy / 1000 == pytest.approx(60 * (t1 - t0) + 50 * busy, abs=slack_j)


def test_scaled_out_runs_sample_once_in_the_coordinator(sim, tmp_path: Path) -> None:
    s = sim(metrics=("vllm",), output_tokens=10)
    code, summary, rows, _ = run(s.base_url, tmp_path / "out", "--concurrency", "4", "--num-prompts", "16",
                                 "--workers", "2")
    assert code == 0
    block = summary["server_metrics"]
    assert len(block["sources"]) == 1 and block["sources"][0]["status"] == "ok"
    assert block["known"]["generation_tokens"] == 160 == sum(r["completion_tokens"] for r in rows)
    assert block["tokens_check"]["agree"] is True


def test_requests_cut_at_the_deadline_are_never_compared_as_if_complete(sim, tmp_path: Path) -> None:
    """Four requests run, four wait in the server's queue and are cut by the deadline: the server generated
    (or queued) work the client never saw counted, so neither the token check nor the TTFT split
    may pretend the two populations are the same."""
    s = sim(metrics=("vllm",), max_concurrency=4, tpot_ms=20, output_tokens=75)
    code, summary, rows, _ = run(s.base_url, tmp_path / "out", "--concurrency", "8", "--duration", "2.5",
                                 "--max-tokens", "75")
    assert code == 0 and sum(1 for r in rows if r["error_kind"] == "cancelled") >= 4
    block = summary["server_metrics"]
    assert block["tokens_check"]["agree"] is None and "not compared" in block["tokens_check"]["note"]
    split = block["ttft_split"]
    assert split["from_histograms"] is None and "not split" in split["note"]
    assert block["known"]["waiting"]["max"] == 4  # what the split could not say, the gauges do


def test_after_abandoning_the_server_is_idle_again_when_it_aborts(sim, tmp_path: Path) -> None:
    s = sim(metrics=("vllm",), output_tokens=100, tpot_ms=10, ttft_ms=10)
    code, summary, _, _ = run(s.base_url, tmp_path / "out", "--concurrency", "2", "--num-prompts", "4",
                              "--cancel-rate", "1", "--cancel-after", "0.05")
    assert code == 2  # everything abandoned: nothing measured, said in one line
    freed = summary["server_metrics"]["abandoned_freed"]
    assert freed["freed"] is True and freed["abandoned"] == 4
    assert freed["after_run"]["running"] == 0 and freed["after_run"]["kv_cache_usage"] == 0  # its KV freed too
