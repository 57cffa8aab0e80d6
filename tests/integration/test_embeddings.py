"""--api embeddings and --api rerank against the test server, whose --log-chunks line per reply is the
truth: each request's inputs (or documents) and prompt tokens, exact synthetic lengths with the
server's per-text overhead taken off, a latency of exactly queue + prefill + base on the server's
schedule, no generation metric claimed, the rates in the summary and on the console, /v2/rerank,
usage missing (the tokenizer counts), a server without the endpoint (one line), sweep and capacity
on latency objectives, and the key in no file and no output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main


def _log(path: Path) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in map(json.loads, path.read_text().splitlines())}


def test_embeddings_batches_of_exact_length_and_latency_against_the_servers_schedule(sim, cli, tmp_path, capsys):
    log = tmp_path / "chunks.jsonl"
    # 2 tokens per input the server adds (a BOS and an EOS), taken off each input by the probe.
    s = sim(ttft_ms=20, prefill_tokens_per_s=10_000, tokenize_endpoint=True, template_tokens=2, log_chunks=str(log),
            max_concurrency=2)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--api", "embeddings", "--batch-size", "4",
                               "--dataset", "synthetic", "--prompt-tokens", "32", "--concurrency", "3",
                               "--num-prompts", "12"], tmp_path / "run")
    assert code == 0 and summary["counts"]["completed"] == 12
    truth = _log(log)
    for r in rows:
        t = truth[r["response_id"]]
        assert t["api"] == "embeddings" and t["inputs"] == r["inputs"] == 4 and r["embedding_dim"] == t["dimension"] == 8
        assert r["prompt_tokens"] == t["prompt_tokens"] == 4 * 32 and r["token_source"] == "usage"
        assert r["ttft_s"] is None and r["tpot_s"] is None and r["completion_tokens"] is None and r["tokens_per_s"] is None
        # the server's schedule: a slot (queue), then 128 tokens at 10k/s, then the 20 ms base
        assert t["prefill_s"] == pytest.approx(128 / 10_000)
        assert (t["due_ns"] - t["recv_ns"]) / 1e9 == pytest.approx(t["queue_s"] + 0.0128 + 0.020, abs=1e-6)
        served_s = (t["end_ns"] - t["recv_ns"]) / 1e9
        assert served_s <= r["e2e_s"] < served_s + 0.02  # the client adds its side, never less
    assert max(t["queue_s"] for t in truth.values()) > 0  # 3 in flight, 2 slots: some queued
    p, m = summary["prompts"], summary["metrics"]
    assert p["template_overhead_tokens"] == 2 and p["template_compensated"] and p["usage_exact"] == 12
    assert m["inputs_total"] == 48 and m["inputs_per_s"] == pytest.approx(48 / m["window_s"])
    assert m["prompt_tokens_total"] == 12 * 128 and m["prompt_tokens_per_s"] == pytest.approx(1536 / m["window_s"])
    assert m["documents_total"] is None and m["ttft_s"]["count"] == 0 and m["itl_s"]["count"] == 0
    assert summary["definitions"]["embeddings_and_rerank"]
    out = capsys.readouterr().out
    assert "embeddings: no TTFT, TPOT or ITL (not a generation)" in out and "inputs/s" in out
    assert "TTFT (ms)" not in out and "output tokens/s" not in out and "end-to-end latency" in out


def test_base64_vectors_open_loop_and_the_dimension_asked(sim, cli, tmp_path):
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=5, embedding_dim=24, log_chunks=str(log))
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--api", "embeddings", "--batch-size", "3",
                               "--encoding-format", "base64", "--request-rate", "40", "--num-prompts", "20"],
                              tmp_path / "b64")
    truth = _log(log)
    assert code == 0 and summary["counts"]["completed"] == 20 and summary["config"]["encoding_format"] == "base64"
    assert all(r["embedding_dim"] == 24 and r["inputs"] == 3 and r["scheduled_s"] is not None for r in rows)
    assert {truth[r["response_id"]]["encoding_format"] for r in rows} == {"base64"}
    assert all(r["prompt_tokens"] == truth[r["response_id"]]["prompt_tokens"] for r in rows)  # builtin prompts
    code, _, rows = cli(["single", "--endpoint", s.base_url, "--api", "embeddings", "--num-prompts", "2",
                         "--extra-body", '{"dimensions": 5}'], tmp_path / "dims")
    assert code == 0 and [r["embedding_dim"] for r in rows] == [5, 5]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_rerank_documents_of_exact_length_on_v1_and_v2(sim, cli, tmp_path, version):
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=10, prefill_tokens_per_s=50_000, tokenize_endpoint=True, template_tokens=3, log_chunks=str(log))
    endpoint = s.base_url.removesuffix("/v1") + f"/{version}"
    code, summary, rows = cli(["throughput", "--endpoint", endpoint, "--model", "sim-model", "--api", "rerank",
                               "--documents", "5", "--dataset", "synthetic", "--prompt-tokens", "8",
                               "--document-tokens", "24", "--concurrency", "2", "--num-prompts", "8"], tmp_path / "run")
    assert code == 0 and summary["counts"]["completed"] == 8
    truth = _log(log)
    for r in rows:
        t = truth[r["response_id"]]
        assert t["path"] == f"/{version}/rerank" and t["documents"] == r["documents"] == 5
        assert r["prompt_tokens"] == t["prompt_tokens"] == 5 * (8 + 24 + 3)  # every pair, with its separators
        assert r["ttft_s"] is None and r["inputs"] is None
        assert (t["end_ns"] - t["recv_ns"]) / 1e9 <= r["e2e_s"]
    p, m = summary["prompts"], summary["metrics"]
    assert p["verified_by_server_tokenize"] and p["template_overhead_tokens"] == 3 and p["usage_exact"] == 8
    assert m["documents_total"] == 40 and m["documents_per_s"] == pytest.approx(40 / m["window_s"])


def test_without_usage_the_tokenizer_counts_and_says_so(sim, cli, tmp_path):
    s = sim(ttft_ms=2, usage=False, prompt_tokenizer="cl100k_base", tokenize_endpoint=True)
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api", "embeddings", "--batch-size", "2",
                               "--dataset", "synthetic", "--prompt-tokens", "16", "--tokenizer", "cl100k_base",
                               "--num-prompts", "4"], tmp_path / "tok")
    assert code == 0 and all(r["prompt_tokens"] == 32 and r["token_source"] == "tokenizer" for r in rows)
    assert summary["token_source"] == {"tokenizer": 4} and summary["metrics"]["prompt_tokens_total"] == 128
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api", "rerank", "--documents", "2",
                               "--num-prompts", "2"], tmp_path / "none")
    assert code == 0 and all(r["prompt_tokens"] is None and r["token_source"] is None for r in rows)
    assert summary["metrics"]["prompt_tokens_per_s"] is None and summary["metrics"]["documents_total"] == 4


def test_a_server_without_the_endpoint_ends_the_run_with_one_line(sim, tmp_path, capsys):
    s = sim(ttft_ms=1, embeddings=False)  # as llama.cpp started without --embeddings: 501
    code = main(["single", "--endpoint", s.base_url, "--api", "embeddings", "--num-prompts", "5",
                 "--output", str(tmp_path / "a"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert "/v1/embeddings does not serve embeddings (HTTP 501" in err[0] and "--embeddings" in err[0]
    s2 = sim(ttft_ms=1)
    code = main(["single", "--endpoint", s2.base_url.removesuffix("/v1") + "/v3", "--model", "sim-model",
                 "--api", "rerank", "--num-prompts", "3", "--output", str(tmp_path / "b"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "/v3/rerank does not serve rerank (HTTP 404" in err[0]


@pytest.mark.parametrize(("args", "words"), [
    (["--slo", "ttft:p99=0.5"], "have no TTFT"),
    (["--slo", "tpot=50ms"], "have no TPOT"),
    (["--batch-size", "2", "--api", "rerank"], "--batch-size needs --api embeddings"),
    (["--documents", "2"], "--documents needs --api rerank"),
    (["--api", "rerank", "--document-tokens", "9"], "--document-tokens needs --dataset synthetic"),
])
def test_options_that_cannot_apply_are_one_line(tmp_path, capsys, args, words):
    argv = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "1", "--output", str(tmp_path)]
    code = main([*argv, *(args if "--api" in args else ["--api", "embeddings", *args])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0]


def test_sweep_and_capacity_on_latency_objectives(sim, tmp_path, capsys):
    # 2 slots, each request 20 ms: latency doubles past 2 in flight.
    s = sim(ttft_ms=20, max_concurrency=2)
    base = ["--endpoint", s.base_url, "--api", "rerank", "--documents", "4", "--num-prompts", "24", "--quiet"]
    assert main(["sweep", *base, "--concurrency", "1,4", "--output", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "documents/s" in out and "TTFT" not in out
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["rows"]
    assert [r["level"] for r in rows] == [1, 4] and all(r["documents_per_s"] and r["ttft_p99_s"] is None for r in rows)
    assert rows[1]["e2e_p50_s"] > 1.5 * rows[0]["e2e_p50_s"]  # queued for the 2 slots
    code = main(["capacity", *base, "--by", "concurrency", "--slo", "e2e:p90=0.03", "--no-repeat",
                 "--output", str(tmp_path / "cap")])
    found = json.loads((tmp_path / "cap" / "capacity.json").read_text())
    assert code == 0 and found["answer"] == 2, found


def test_the_key_is_in_no_file_and_no_output(sim, tmp_path, capsys):
    key = "sk-embed-0123456789secret"
    s = sim(ttft_ms=2, api_key=key)
    out = tmp_path / "run"
    code = main(["throughput", "--endpoint", s.base_url, "--api", "embeddings", "--api-key", key, "--batch-size", "2",
                 "--concurrency", "2", "--num-prompts", "6", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and key not in captured.out + captured.err
    files = [f for f in out.rglob("*") if f.is_file()]
    assert files and not [f for f in files if key.encode() in f.read_bytes()]


@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_report_reads_embeddings_and_rerank_runs(sim, cli, tmp_path, fmt):
    s = sim(ttft_ms=2)
    for api in ("embeddings", "rerank"):
        code, _, _ = cli(["single", "--endpoint", s.base_url, "--api", api, "--num-prompts", "3"], tmp_path / api)
        assert code == 0
    out = tmp_path / f"report.{fmt}"
    assert main(["report", str(tmp_path / "embeddings"), str(tmp_path / "rerank"), "--format", fmt,
                 "--output", str(out)]) == 0
    assert out.stat().st_size > 0
