"""Hosted APIs: credentials, Azure and the retry rules. Keys never reach a file or the console;
bad auth is one line; Azure deployment URLs get the api-key header and api-version query."""

from __future__ import annotations

import argparse
import json
import time
from email.utils import formatdate

import pytest

from loadtest.client.auth import build_auth, is_azure_url
from loadtest.cli.main import build_parser, config_from_args
from loadtest.config import RunConfig
from loadtest.client.retry import RetryPolicy, parse_duration, parse_retry_after, provider_delay_s
from loadtest.transport import Exchange
from test_bad_input import _cli, _one_error_line


def _ns(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["single", "--model", "m", *args])


# -- retry rules ------------------------------------------------------------------------------------

def test_reset_durations_and_retry_after_forms():
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25 and parse_duration("6.5s") == 6.5
    assert parse_duration("2") == 2 and parse_duration("1h2m") == 3720 and parse_duration("soon") is None
    assert parse_retry_after("7") == 7
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past dates: now
    assert provider_delay_s({"retry-after": "2", "retry-after-ms": "1500"}) == 1.5
    assert provider_delay_s({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
                             "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "900"}) == 1
    assert provider_delay_s({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "20ms"}) == 1
    assert provider_delay_s(None) is None and provider_delay_s({"retry-after": "later"}) is None


def test_backoff_is_capped_jittered_and_seeded():
    ex = Exchange(t_start_ns=0, status=429)
    a, b = RetryPolicy(seed=3), RetryPolicy(seed=3)
    delays = [a.delay_s(ex, k) for k in range(1, 10)]
    assert delays == [b.delay_s(ex, k) for k in range(1, 10)]
    for k, d in enumerate(delays, 1):
        full = min(60.0, 2 ** (k - 1))
        assert 0.5 * full <= d < full
    assert RetryPolicy.rate_limited(Exchange(t_start_ns=0, status=503)) is False  # 503 without Retry-After: a failure
    assert RetryPolicy.rate_limited(Exchange(t_start_ns=0, status=503, limit_headers={"retry-after": "1"}))


# -- auth and Azure -----------------------------------------------------------------------------------

def test_azure_is_detected_from_the_url_and_gets_its_header_and_api_version():
    assert is_azure_url("https://myres.openai.azure.com/openai/deployments/gpt4o")
    assert not is_azure_url("https://api.openai.com/v1")
    ns = build_parser().parse_args(["single", "--endpoint", "https://myres.openai.azure.com/openai/deployments/gpt4o/"
                                    "chat/completions?api-version=2025-01-01-preview", "--api-key", "azk-1234"])
    cfg = config_from_args(ns)
    assert cfg.azure and cfg.model == "gpt4o" and cfg.api_version == "2025-01-01-preview"
    assert cfg.base_url == "https://myres.openai.azure.com/openai/deployments/gpt4o"
    auth = build_auth(cfg)
    assert auth.headers == {"api-key": "azk-1234"} and auth.query == "api-version=2025-01-01-preview"
    ns = build_parser().parse_args(["single", "--endpoint", "https://myres.openai.azure.com", "--model", "dep"])
    cfg = config_from_args(ns)
    assert cfg.base_url == "https://myres.openai.azure.com/openai/deployments/dep" and cfg.api_version == "2024-10-21"
    assert build_auth(RunConfig(command="single", base_url="http://h/v1", model=None, api_key="k-123",
                                headers=(("X-Org", "o1"),))).headers == {"Authorization": "Bearer k-123", "X-Org": "o1"}


def test_azure_deployment_url_against_the_sim(cli, sim, tmp_path):
    s = sim(api_key="azure-key-77", ttft_ms=2, tpot_ms=1)
    endpoint = f"{s.root_url}/openai/deployments/sim-model"
    code, summary, rows = cli(["single", "--endpoint", endpoint, "--azure", "--api-key", "azure-key-77",
                               "--num-prompts", "2", "--max-tokens", "4"], tmp_path / "az")
    assert code == 0 and summary["counts"]["completed"] == 2
    assert summary["config"]["model"] == "sim-model" and summary["config"]["api_version"] == "2024-10-21"
    assert summary["config"]["api_key"] == "(set)"


def test_api_key_env_and_headers_and_insecure_flags():
    cfg = config_from_args(_ns("--endpoint", "https://gw.example/v1", "--header", "X-Title: bench",
                               "--header", "X-Api-Key: hdr-secret-1", "--insecure", "--rpm-limit", "60"))
    assert cfg.headers == (("X-Title", "bench"), ("X-Api-Key", "hdr-secret-1")) and cfg.insecure
    assert cfg.to_json()["headers"] == [["X-Title", "bench"], ["X-Api-Key", "***"]]
    assert build_auth(cfg).ssl_context is not None and build_auth(cfg).ssl_context.check_hostname is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(["single", "--header", "no separator"])


# -- secrets and one-line errors -------------------------------------------------------------------

def test_keys_from_every_source_never_reach_files_or_console(sim, tmp_path):
    key, header_secret = "sk-hosted-SECRET-4242", "hdr-SECRET-9191"
    s = sim(api_key=key, ttft_ms=1, tpot_ms=1, rate_limit_every=2, retry_after_s=0.01)
    ok = _cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--api-key-env", "MY_PROVIDER_KEY",
               "--header", f"X-Api-Key: {header_secret}", "--header", f"Authorization: Bearer {key}",
               "--concurrency", "2", "--num-prompts", "4", "--max-tokens", "4", "--output", str(tmp_path / "ok")],
              env={"MY_PROVIDER_KEY": key})
    assert ok.returncode == 0, ok.stderr
    bad = _cli(["single", "--endpoint", s.base_url, "--model", "sim-model", "--api-key", key[:-1] + "X",
                "--header", f"X-Api-Key: {header_secret}", "--output", str(tmp_path / "bad")])
    line = _one_error_line(bad)
    assert bad.returncode == 2 and "refused" in line and "--api-key-env" in line
    texts = [ok.stdout, ok.stderr, bad.stdout, bad.stderr]
    texts += [p.read_text() for d in (tmp_path / "ok", tmp_path / "bad") if d.exists() for p in d.iterdir()]
    for text in texts:
        assert key not in text and key[:-1] + "X" not in text and header_secret not in text
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["counts"]["rate_limited"] >= 1


def test_unset_api_key_env_is_one_line(sim, tmp_path):
    proc = _cli(["single", "--endpoint", "http://127.0.0.1:9/v1", "--api-key-env", "SURELY_NOT_SET_12",
                 "--output", str(tmp_path / "o")])
    assert proc.returncode == 2 and "SURELY_NOT_SET_12" in _one_error_line(proc)


def test_model_encodings_and_the_offline_fallback_is_named(monkeypatch, tmp_path):
    from loadtest.tokens import encoding_for_model, estimator_for, load_tokenizer

    assert encoding_for_model("gpt-4o-mini") == "o200k_base" and encoding_for_model("o3") == "o200k_base"
    assert encoding_for_model("azure/gpt-5") == "o200k_base" and encoding_for_model("gpt-4-turbo") == "cl100k_base"
    assert encoding_for_model("gpt-3.5-turbo") == "cl100k_base" and encoding_for_model(None) == "cl100k_base"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty cache: o200k_base is not available offline
    tok = estimator_for("gpt-4o")
    assert tok.name.startswith("tiktoken:cl100k_base (approximate: o200k_base not available offline")
    assert tok.count("hello world") == 2
    assert load_tokenizer("model", "gpt-4").name == "tiktoken:cl100k_base"


def test_tokenizer_model_names_the_fallback_in_the_summary(cli, sim, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    s = sim(ttft_ms=1, tpot_ms=1, usage=False, model="gpt-4o")
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--model", "gpt-4o", "--tokenizer", "model",
                               "--num-prompts", "2", "--max-tokens", "5"], tmp_path / "o")
    assert code == 0 and all(r["token_source"] == "tokenizer" and r["completion_tokens"] == 10 for r in rows)
    assert "approximate: o200k_base not available offline" in summary["run"]["tokenizer"]


def test_registered_secrets_are_masked_longest_first():
    from loadtest.redact import add_secret, is_secret_name, redact

    add_secret("Bearer tok-ABCDEF-777")
    assert redact("sent Authorization: Bearer tok-ABCDEF-777") == "sent Authorization: ***"
    assert redact("the provider echoed tok-ABCDEF-777 back") == "the provider echoed *** back"
    add_secret("ab")  # too short to mask safely: ordinary words would vanish
    assert redact("about") == "about"
    assert is_secret_name("X-Api-Key") and is_secret_name("Authorization") and not is_secret_name("X-Title")
