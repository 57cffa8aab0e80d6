"""`--transport openai` (the official SDK behind the transport interface) and `loadtest models`,
against the sim: the same records as the default transport, retries and dialects included."""

from __future__ import annotations

from loadtest.cli.main import main


def test_openai_sdk_transport_max_completion_tokens_fallback_and_bad_key(cli, sim, tmp_path):
    s = sim(api_key="sk-sdk-1234", ttft_ms=2, tpot_ms=1, reject_max_tokens=True)
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api-key", "sk-sdk-1234", "--transport", "openai",
                               "--model", "sim-model", "--num-prompts", "2", "--max-tokens", "4"], tmp_path / "a")
    assert code == 0 and [r["attempts"] for r in rows] == [2, 1] and summary["run"]["max_completion_tokens_sent"]
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api-key", "wrong", "--transport", "openai",
                               "--model", "sim-model", "--num-prompts", "2"], tmp_path / "b")
    assert code == 2 and rows[0]["error_kind"] == "auth"


def test_models_command_lists_and_fails_in_one_line(sim, capsys):
    s = sim(api_key="sk-models-99")
    assert main(["models", "--endpoint", s.base_url, "--api-key", "sk-models-99"]) == 0
    assert "sim-model" in capsys.readouterr().out
    assert main(["models", "--endpoint", s.base_url, "--api-key", "nope-1234"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused the key (HTTP 401" in err and "nope-1234" not in err
    assert main(["models", "--endpoint", s.base_url, "--api-key", "sk-models-99", "--json"]) == 0
    assert '"object":"list"' in capsys.readouterr().out


def test_openai_sdk_transport_without_a_key(cli, sim, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = sim(ttft_ms=2, tpot_ms=1)
    code, summary, _ = cli(["single", "--endpoint", s.base_url, "--transport", "openai", "--num-prompts", "2",
                            "--max-tokens", "3"], tmp_path)  # the model comes from /models, through the SDK's client
    assert code == 0 and summary["counts"]["completed"] == 2 and summary["run"]["model"] == "sim-model"
