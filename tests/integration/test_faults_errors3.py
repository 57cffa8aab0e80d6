"""One line, never a traceback (docs/faults.md), round three: the test server's own options, model
discovery against hostile /models answers, engine subcommands' refusals, scenario files that are
not scenarios, corrupt recipes for rerun, and report formats over wrong-typed summaries."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.timeout(120)


# -- loadtest serve sim with hostile options ------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--port", "-1"], "port must be 0..65535, got -1"),
    (["--port", "70000"], "port must be 0..65535, got 70000"),
    (["--host", ""], "host must not be empty"),
    (["--host", "bad..host"], "--host 'bad..host' is not a host name or address"),
    (["--host", "999.1.1.1"], "cannot listen on 999.1.1.1"),
    (["--ttft-ms", "nan"], "must be finite"),
    (["--ttft-ms", "-1"], "must be >= 0"),
    (["--ttft-ms", "1e300"], "ttft_ms must be at most 86,400,000"),
    (["--tpot-ms", "1e300"], "tpot_ms must be at most"),
    (["--retry-after-s", "1e300"], "retry_after_s must be at most 86,400"),
    (["--prefill-tokens-per-s", "1e-300"], "prefill_tokens_per_s must be at least 0.001"),
    (["--prefill-tokens-per-s", "inf"], "prefill_tokens_per_s must be a finite number"),
    (["--embedding-dim", "1000000000000"], "embedding_dim must be at most 65,536"),
    (["--tool-call-rounds", "1", "--tool-calls-per-round", "1000000000000"], "tool_calls_per_round must be at most"),
    (["--metrics", "vllm", "--metrics-extra-series", "1000000000000"], "metrics_extra_series must be at most"),
    (["--metrics", "vllm", "--metrics-delay-ms", "1e300"], "metrics_delay_ms must be at most"),
    (["--transcript-words-per-s", "1e300"], "transcript_words_per_s must be at most"),
    (["--audio-tokens-per-s", "1e300"], "audio_tokens_per_s must be at most"),
    (["--template-tokens", "9000000000000000000"], "template_tokens must be at most 10,000,000"),
    (["--image-tokens", "9000000000000000000"], "image_tokens must be at most"),
    (["--output-tokens", "99999999999999999999999"], "is too large (at most 2^63-1)"),
    (["--embedding-dim", "-1"], "embedding_dim must be >= 1"),
    (["--log-chunks", "/nonexistent-dir/chunks.jsonl"], "log_chunks /nonexistent-dir/chunks.jsonl: cannot append"),
    (["--log-chunks", "/"], "log_chunks /: cannot append to it: Is a directory"),
    (["--prompt-tokenizer", "/nonexistent-dir/tok"], "no such local directory"),
])
def test_serve_sim_refuses_hostile_options(refused, tmp_path, args, says):
    """A day-long TTFT, a 10^12-float embedding, 10^12 tool calls or extra series were accepted:
    each request then overflowed a timer (a 400 'callback error') or the server ran out of memory
    and died; 'bad..host' was an internal error (UnicodeError); a chunk log in a missing directory
    was reported as 'cannot listen on HOST:PORT'."""
    refused(["serve", "sim", "--port", "0", *args], tmp_path / "out", says)


def test_serve_sim_on_a_port_in_use(refused, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(["serve", "sim", "--port", str(port)], tmp_path / "out", f"cannot listen on 127.0.0.1:{port}")
