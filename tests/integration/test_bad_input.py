"""Bad input, secrets and --resume (rows of docs/faults.md): one line, a non-zero exit, no usage
screen, no traceback; nothing secret written; a resumed run keeps one row per request."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from loadtest.cli.main import main
from test_faults import LOADTEST, check_files

# -- bad input: one line, a non-zero exit, no usage screen, no traceback -----------------------

def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOADTEST, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=Path(__file__).parents[2])


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("loadtest: error: "), proc.stderr
    return lines[0]


def test_output_holding_a_run_is_refused_unless_overwrite(sim, tmp_path):
    s = sim(ttft_ms=1, tpot_ms=1)
    args = ["single", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "4", "--quiet",
            "--output", str(tmp_path / "out")]
    assert _cli([*args, "--num-prompts", "5"]).returncode == 0
    again = _cli([*args, "--num-prompts", "3"])
    assert again.returncode == 2 and "already holds a run" in _one_error_line(again)
    assert len((tmp_path / "out" / "requests.jsonl").read_text().splitlines()) == 5  # untouched
    over = _cli([*args, "--num-prompts", "3", "--overwrite"])
    assert over.returncode == 0, over.stderr
    summary, rows = check_files(tmp_path / "out")
    assert len(rows) == 3 and summary["counts"]["requests"] == 3


def test_failed_start_leaves_no_directory(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli(["single", "--endpoint", f"http://127.0.0.1:{port}/v1", "--output", str(tmp_path / "out")])
    assert proc.returncode == 2 and "cannot reach" in _one_error_line(proc)
    assert not (tmp_path / "out").exists()


def test_duration_shorter_than_one_request_says_so(sim, tmp_path):
    s = sim(ttft_ms=3000, tpot_ms=1)
    proc = _cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "2",
                 "--duration", "0.5", "--output", str(tmp_path / "out"), "--quiet"])
    assert proc.returncode == 2 and "no request completed within --duration 0.5 s" in proc.stderr


def test_dataset_rows_without_a_user_turn_are_counted(sim, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hello"}\n{"messages": [{"role": "assistant", "content": "x"}]}\n{"other": 1}\n')
    s = sim(ttft_ms=1, tpot_ms=1)
    proc = _cli(["single", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "4", "--num-prompts",
                 "2", "--dataset", str(data), "--output", str(tmp_path / "out"), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("skipped 2 of 3 rows without a usable first user turn") == 1


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "f").write_text("x")
    proc = _cli(["--debug", "single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--output",
                 str(tmp_path / "f" / "x")])
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# -- secrets ------------------------------------------------------------------------------------

def test_no_secret_reaches_the_results_or_the_console(sim, tmp_path):
    """URL credentials are redacted everywhere; keys from the environment are never written."""
    s = sim(ttft_ms=1, tpot_ms=1)
    secrets = {"OPENAI_API_KEY": "sk-envkey-123456", "HF_TOKEN": "hf_tokensecret987", "MY_SERVICE_KEY": "svc-key-555",
               "GITHUB_TOKEN": "ghp_secret000"}
    host = s.base_url.split("://", 1)[1]
    out = tmp_path / "out"
    ok = _cli(["single", "--endpoint", f"http://user:URLKEY-42@{host}", "--model", "sim-model", "--max-tokens", "4",
               "--num-prompts", "2", "--output", str(out)], env=secrets)
    assert ok.returncode == 0, ok.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bad = _cli(["single", "--endpoint", f"http://user:URLKEY-42@127.0.0.1:{port}/v1", "--model", "m",
                "--output", str(tmp_path / "out2")], env=secrets)
    assert bad.returncode == 2
    texts = [ok.stdout, ok.stderr, bad.stdout, bad.stderr]
    texts += [p.read_text() for d in (out, tmp_path / "out2") for p in d.iterdir()]
    for text in texts:
        for secret in ("URLKEY-42", *secrets.values()):
            assert secret not in text
    assert "http://***@" in (out / "summary.json").read_text() and "http://***@" in bad.stderr


def test_resume_after_a_crash_drops_the_cut_line_and_runs_the_rest(sim, tmp_path, capsys):
    s = sim(ttft_ms=1, tpot_ms=1)
    out = tmp_path / "out"
    args = ["single", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "4", "--num-prompts", "10"]
    assert main([*args, "--output", str(out), "--quiet"]) == 0
    first = (out / "requests.jsonl").read_bytes().splitlines(keepends=True)
    # A crash: no summary, four whole rows and half of the fifth.
    (out / "summary.json").unlink()
    (out / "requests.jsonl").write_bytes(b"".join(first[:4]) + first[4][:40])
    assert main([*args, "--resume", str(out), "--quiet"]) == 0
    summary, rows = check_files(out)
    assert sorted(r["id"] for r in rows) == list(range(10)) and summary["counts"]["completed"] == 10
    assert [r["prompt_id"] for r in sorted(rows, key=lambda r: r["id"])] == [
        json.loads(line)["prompt_id"] for line in first]  # the same seeded order
    assert summary["run"]["resumed"] and [p["ended"] for p in summary["run"]["pieces"]] == ["crashed", "done"]
    assert main([*args, "--resume", str(out), "--quiet"]) == 2
    assert "every request of that run is already done" in capsys.readouterr().err


def test_sim_rejects_non_finite_timings():
    proc = _cli(["serve", "sim", "--port", "0", "--tpot-ms", "inf"])
    assert proc.returncode == 2 and "must be finite numbers" in _one_error_line(proc)


def test_redaction_of_urls_and_secret_flags():
    from loadtest.redact import redact, redact_tree

    assert redact("cannot connect to https://u:sk-1@h:8/v1: refused") == "cannot connect to https://***@h:8/v1: refused"
    assert redact("llama-server --api-key sk-1 --hf-token=hf_2 -m x.gguf") == (
        "llama-server --api-key *** --hf-token=*** -m x.gguf")
    assert redact("mail a@b.c about --max-tokens 5") == "mail a@b.c about --max-tokens 5"
    tree = {"argv": ["vllm", "--api-key", "sk-1", "--port", "8"], "shell": "vllm --api-key sk-1", "n": 3}
    assert redact_tree(tree) == {"argv": ["vllm", "--api-key", "***", "--port", "8"], "shell": "vllm --api-key ***",
                                 "n": 3}
