"""Hosted APIs: credentials, Azure and the retry rules. Keys never reach a file or the console;
bad auth is one line; Azure deployment URLs get the api-key header and api-version query."""

from __future__ import annotations

import json

from test_bad_input import _cli, _one_error_line


# -- auth and Azure -----------------------------------------------------------------------------------

def test_azure_deployment_url_against_the_sim(cli, sim, tmp_path):
    s = sim(api_key="azure-key-77", ttft_ms=2, tpot_ms=1)
    endpoint = f"{s.root_url}/openai/deployments/sim-model"
    code, summary, rows = cli(["single", "--endpoint", endpoint, "--azure", "--api-key", "azure-key-77",
                               "--num-prompts", "2", "--max-tokens", "4"], tmp_path / "az")
    assert code == 0 and summary["counts"]["completed"] == 2
    assert summary["config"]["model"] == "sim-model" and summary["config"]["api_version"] == "2024-10-21"
    assert summary["config"]["api_key"] == "(set)"


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


def test_tokenizer_model_names_the_fallback_in_the_summary(cli, sim, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    s = sim(ttft_ms=1, tpot_ms=1, usage=False, model="gpt-4o")
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--model", "gpt-4o", "--tokenizer", "model",
                               "--num-prompts", "2", "--max-tokens", "5"], tmp_path / "o")
    assert code == 0 and all(r["token_source"] == "tokenizer" and r["completion_tokens"] == 10 for r in rows)
    assert "approximate: o200k_base not available offline" in summary["run"]["tokenizer"]
