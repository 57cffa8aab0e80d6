"""Hosted APIs without a server (split from tests/integration/test_hosted_auth.py): the retry rules,
credentials and Azure URLs as configured, model encodings, and secrets masked."""

from __future__ import annotations

import argparse
import time
from email.utils import formatdate

import pytest

from loadtest.client.auth import build_auth, is_azure_url
from loadtest.cli.main import build_parser
from loadtest.cli.run import config_from_args
from loadtest.config import RunConfig
from loadtest.client.retry import RetryPolicy, parse_duration, parse_retry_after, provider_delay_s
from loadtest.transport import Exchange


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


def test_api_key_env_and_headers_and_insecure_flags():
    cfg = config_from_args(_ns("--endpoint", "https://gw.example/v1", "--header", "X-Title: bench",
                               "--header", "X-Api-Key: hdr-secret-1", "--insecure", "--rpm-limit", "60"))
    assert cfg.headers == (("X-Title", "bench"), ("X-Api-Key", "hdr-secret-1")) and cfg.insecure
    assert cfg.to_json()["headers"] == [["X-Title", "bench"], ["X-Api-Key", "***"]]
    assert build_auth(cfg).ssl_context is not None and build_auth(cfg).ssl_context.check_hostname is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(["single", "--header", "no separator"])


# -- secrets and one-line errors -------------------------------------------------------------------

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


def test_registered_secrets_are_masked_longest_first():
    from loadtest.redact import add_secret, is_secret_name, redact

    add_secret("Bearer tok-ABCDEF-777")
    assert redact("sent Authorization: Bearer tok-ABCDEF-777") == "sent Authorization: ***"
    assert redact("the provider echoed tok-ABCDEF-777 back") == "the provider echoed *** back"
    add_secret("ab")  # too short to mask safely: ordinary words would vanish
    assert redact("about") == "about"
    assert is_secret_name("X-Api-Key") and is_secret_name("Authorization") and not is_secret_name("X-Title")
