"""Hostile servers and impossible limits (docs/faults.md): what the run does with a server whose
usage counts are not counts, one that asks to wait longer than a request may, and with client-side
budgets and request options that cannot be honoured as given. Every server plays on loopback
(tests/faultserver.py); scripted replies run on both transports."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from faultserver import SSE_HEAD, FaultServer, chunk, event, response, serve
from test_faults import check_files, run_main

pytestmark = pytest.mark.timeout(60)
TRANSPORTS = ["fast", "httpx"]


def _sse(events: list[dict[str, Any]]) -> bytes:
    """Events as a chunked SSE body (json, not orjson: a count past 64 bits must be writable)."""
    return SSE_HEAD + b"".join(chunk(b"data: " + json.dumps(e).encode() + b"\n\n") for e in events) + b"0\r\n\r\n"


def bad_usage_server(usage: Any, *, stream: bool = True) -> Any:
    """Every dialect's reply with four content chunks (chat, Responses, Messages) or one vector
    (embeddings), whose usage is ``usage`` in that dialect's own names; chat's whole (one body)
    unless ``stream``."""

    def behaviour(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
        path = head.split(b" ")[1]
        if path.endswith(b"/embeddings"):
            sock.sendall(response(200, json.dumps({"data": [{"index": 0, "embedding": [0.5, 0.25]}],
                                                   "usage": {"prompt_tokens": usage}}).encode()))
        elif path.endswith(b"/responses"):
            sock.sendall(_sse([{"type": "response.output_text.delta", "delta": "w"}] * 4
                              + [{"type": "response.completed", "response": {
                                  "id": "r", "status": "completed", "usage": {"output_tokens": usage,
                                                                              "input_tokens": 5}}}]))
        elif path.endswith(b"/messages"):
            sock.sendall(_sse([{"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 5}}}]
                              + [{"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": "w"}}] * 4
                              + [{"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                  "usage": {"output_tokens": usage}}, {"type": "message_stop"}]))
        elif not stream:
            sock.sendall(response(200, json.dumps({"id": "r", "choices": [{"message": {"content": "w w w w"},
                                                                          "finish_reason": "stop"}],
                                                   "usage": {"completion_tokens": usage, "prompt_tokens": 5}}
                                                  ).encode()))
        else:
            sock.sendall(SSE_HEAD + b"".join(event("w") for _ in range(4))
                         + chunk(b'data: {"id":"r","choices":[],"usage":' + json.dumps(
                             {"completion_tokens": usage, "prompt_tokens": 5}).encode() + b"}\n\n")
                         + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    return behaviour


# -- usage values that are not token counts ---------------------------------------------------

BAD_USAGE = [("abc", '"abc"'), (2**70, str(2**70)), (-3, "-3"), (3.7, "3.7"), (True, "true"), ({"n": 4}, '{"n":4}')]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("value, shown", BAD_USAGE)
def test_a_bad_usage_count_is_data_counted_from_the_stream(tmp_path, capsys, transport, value, shown):
    """Was: a string or a 2^70 count crashed the run (exit 1, no summary; no run directory when the
    first reply had it); -3 gave negative throughput with exit 0; 3.7 was cut to 3, true read as 1."""
    with serve(bad_usage_server(value)) as server:
        code, _, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "2",
                                 "--transport", transport], tmp_path / "out", capsys)
    assert code == 0, err
    summary, rows = check_files(tmp_path / "out")
    for r in rows:
        assert r["ok"] and r["completion_tokens"] == 4 and r["token_source"] == "chunks" and r["prompt_tokens"] == 5
        assert r["usage_invalid"] == {"usage.completion_tokens": shown} and r["tokens_per_s"] > 0
    assert summary["counts"]["completed"] == 2 and summary["token_source"] == {"chunks": 2}
    assert summary["metrics"]["completion_tokens_total"] == 8 and summary["metrics"]["output_tokens_per_s"] > 0
    assert summary["usage_invalid"] == {"requests": 2, "fields": {"usage.completion_tokens": 2},
                                        "example": f"usage.completion_tokens = {shown}"}


@pytest.mark.parametrize("api, field, completion", [("chat", "completion_tokens", 1), ("responses", "output_tokens", 4),
                                                    ("messages", "output_tokens", 4), ("embeddings", "prompt_tokens", None)])
def test_every_dialect_checks_its_usage(tmp_path, capsys, api, field, completion):
    """Non-streamed chat, the Responses API, Anthropic's Messages API and embeddings, each with a
    count past 64 bits."""
    with serve(bad_usage_server(2**70, stream=api != "chat")) as server:
        code, _, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "2",
                                 "--api", api, *(["--no-stream"] if api == "chat" else [])], tmp_path / "out", capsys)
    assert code == 0, err
    summary, rows = check_files(tmp_path / "out")
    assert all(r["ok"] and r["usage_invalid"] == {f"usage.{field}": str(2**70)} for r in rows)
    assert all(r["completion_tokens"] == completion for r in rows)
    assert summary["usage_invalid"]["requests"] == 2


def test_valid_usage_leaves_no_trace(tmp_path, capsys):
    with serve(bad_usage_server(4.0)) as server:  # an integral float is taken as the integer
        code, _, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "2"],
                                tmp_path / "out", capsys)
    summary, rows = check_files(tmp_path / "out")
    assert code == 0 and summary["usage_invalid"] is None and summary["token_source"] == {"usage": 2}
    assert all(r["usage_invalid"] is None and r["completion_tokens"] == 4 for r in rows)


# -- a server that asks to wait longer than the request may ----------------------------------

def limited(headers: dict[str, str], *, ok_after: int | None = None) -> Any:
    """429 with ``headers`` to every request (to the first ``ok_after``, then a good stream)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
    posts = [0]  # generation requests (the run also asks GET /metrics)

    def behaviour(server: FaultServer, sock: socket.socket, n: int, request: bytes) -> None:
        if not request.startswith(b"POST"):
            sock.sendall(response(404, b"{}"))
            return
        posts[0] += 1
        if ok_after is not None and posts[0] > ok_after:
            sock.sendall(SSE_HEAD + event("w") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            return
        body = b'{"error":{"message":"Rate limit reached"}}'
        sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n" + head
                     + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    return behaviour


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("headers", [{"Retry-After": "99999"}, {"retry-after-ms": "99999000"},
                                     {"x-ratelimit-reset-requests": "27h46m39s", "x-ratelimit-remaining-requests": "0"}])
def test_a_wait_past_the_request_budget_is_a_failed_attempt_with_its_reason(tmp_path, capsys, transport, headers):
    """Was: held the request (capped at 600 s) past --timeout and --max-retries, silently, and a
    stopped run's record then said it was never rate limited."""
    with serve(limited(headers)) as server:
        code, took, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1",
                                    "--timeout", "3", "--transport", transport], tmp_path / "out", capsys)
    assert took < 3, took
    _, rows = check_files(tmp_path / "out")
    (r,) = rows
    assert r["error_kind"] == "rate_limited" and r["rate_limited"] == 1 and r["attempts"] == 1
    assert r["retry_wait_s"] == 0.0
    assert "server asked to wait 99999 s, more than the" in r["error"]
    assert "s left of the request's budget (--timeout 3 s from its first attempt): not retried" in r["error"]
    assert code == 2 and "rate limited" in err and len(err.strip().splitlines()) == 1


def test_the_budget_spans_every_wait_and_max_retries_is_kept(tmp_path, capsys):
    with serve(limited({"Retry-After": "1"})) as server:  # waits 1 s, 1 s; then only 0.5 s of 2.5 s is left
        code, took, _ = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1",
                                  "--timeout", "2.5", "--max-retries", "5"], tmp_path / "a", capsys)
    (r,) = check_files(tmp_path / "a")[1]
    assert (r["rate_limited"], r["attempts"]) == (3, 3) and 2.0 <= r["retry_wait_s"] < 2.5 and took < 4
    assert "server asked to wait 1 s, more than the 0.4" in r["error"]
    with serve(limited({"Retry-After": "0"})) as server:
        run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1",
                  "--max-retries", "2"], tmp_path / "b", capsys)
    (r,) = check_files(tmp_path / "b")[1]
    assert (r["rate_limited"], r["attempts"]) == (3, 3) and "still rate limited after --max-retries 2" in r["error"]


def test_a_small_wait_is_honoured(tmp_path, capsys):
    with serve(limited({"Retry-After": "0.3"}, ok_after=1)) as server:
        code, _, _ = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1"],
                              tmp_path / "out", capsys)
    (r,) = check_files(tmp_path / "out")[1]
    assert code == 0 and r["ok"] and (r["rate_limited"], r["attempts"]) == (1, 2) and r["retry_wait_s"] >= 0.3


def test_the_duration_deadline_interrupts_a_wait_and_the_record_keeps_its_429(tmp_path, capsys):
    with serve(limited({"Retry-After": "30"})) as server:
        code, took, err = run_main(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "2",
                                    "--duration", "1", "--timeout", "60"], tmp_path / "out", capsys)
    assert took < 3 and code == 2, (took, err)
    _, rows = check_files(tmp_path / "out")
    assert rows and all(r["error_kind"] == "cancelled" and r["rate_limited"] == 1 for r in rows)
    assert all(0.5 < r["retry_wait_s"] < 1.5 for r in rows)


# -- client-side budgets: honoured exactly, or refused up front ---------------------------------

def arrivals_server(log: list[float]) -> Any:
    """Logs each generation request's arrival (time.monotonic) and answers one short stream."""

    def behaviour(server: FaultServer, sock: socket.socket, n: int, request: bytes) -> None:
        if not request.startswith(b"POST"):
            sock.sendall(response(404, b"{}"))
            return
        log.append(time.monotonic())
        sock.sendall(SSE_HEAD + event("w") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    return behaviour


def test_rpm_limit_paces_starts_by_the_servers_own_clock(tmp_path, capsys):
    """--rpm-limit 120: one start per 0.5 s (each may go 50 ms early), not a burst. Was: a bucket of
    two, so the first two went in the same millisecond."""
    log: list[float] = []
    with serve(arrivals_server(log)) as server:
        code, _, err = run_main(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "4",
                                 "--duration", "2.2", "--rpm-limit", "120"], tmp_path / "out", capsys)
    assert code == 0, err
    gaps = [b - a for a, b in zip(log, log[1:])]
    assert 4 <= len(log) <= 5 and min(gaps) >= 0.44, gaps  # starts at 0, 0.45, 0.95, 1.45, 1.95
    _, rows = check_files(tmp_path / "out")
    assert sum((r["limit_wait_s"] or 0) > 0.3 for r in rows if r["ok"]) >= 3  # waited for its turn, outside latency


def test_rpm_limit_1_sends_one_request_a_minute(tmp_path, capsys):
    log: list[float] = []
    with serve(arrivals_server(log)) as server:
        run_main(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "2",
                  "--duration", "1.5", "--rpm-limit", "1"], tmp_path / "out", capsys)
    assert len(log) == 1
    _, rows = check_files(tmp_path / "out")
    assert sum(r["ok"] for r in rows) == 1 and all(r["error_kind"] == "cancelled" for r in rows if not r["ok"])


def test_a_tpm_limit_no_request_fits_in_is_refused_before_the_run(tmp_path, refused):
    with serve(arrivals_server([])) as server:
        refused(["single", "--endpoint", server.base_url, "--model", "m", "--max-tokens", "32", "--tpm-limit", "10",
                 "--output", str(tmp_path / "out")], tmp_path / "out", "--tpm-limit 10 is smaller than one request's cost")


@pytest.mark.parametrize("flag", ["--rpm-limit", "--tpm-limit"])
@pytest.mark.parametrize("value", ["0", "-5", "inf", "nan"])
def test_zero_negative_and_non_finite_budgets_are_refused(tmp_path, refused, flag, value):
    refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", flag, value,
             "--output", str(tmp_path / "out")], tmp_path / "out", flag)


# -- headers: no control characters, names that are tokens --------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["--header", "X-A: 1\r\nX-Injected: yes"], "header X-A: its value holds the control character '\\r'"),
    (["--header", "X-A: 1\nX-Injected: yes"], "control character '\\n'"),
    (["--header", "X-A: a\x00b"], "control character '\\x00'"),
    (["--header", "X-A: bell\x07"], "control character '\\x07'"),
    (["--header", "X-A: del\x7f"], "control character '\\x7f'"),
    (["--header", "Authorization: Bearer sk-9\r\nX: y"], "(secret)"),
    (["--header", "X Bad: v"], "expected 'Name: value'"),
    (["--session-header", "x y"], "expected a header name"),
    (["--session-header", "x\r\ny"], "expected a header name"),
    (["--api-key", "sk-1\r\nX: y"], "a control character (CR, LF, NUL...) in the key of --api-key"),
])
def test_header_injection_is_refused(tmp_path, refused, capsys, argv, says):
    """Was: --header 'X-A: 1\\r\\nX-Injected: yes' sent a second header."""
    refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", *argv, "--output", str(tmp_path / "o")],
            tmp_path / "o", says)


def test_a_tab_in_a_header_value_is_allowed(tmp_path, capsys):
    with serve(arrivals_server([])) as server:
        code, _, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1",
                                 "--header", "X-A: a\tb"], tmp_path / "out", capsys)
    assert code == 0, err


# -- --extra-body: fields the run controls -------------------------------------------------------

@pytest.mark.parametrize("body, says", [
    ('{"stream": false}', "--extra-body stream: a field the run controls; streaming is the run's: use --no-stream"),
    ('{"stream_options": {"include_usage": false}}', "--extra-body stream_options"),
    ('{"max_tokens": 1}', "--extra-body max_tokens: a field the run controls; use --max-tokens"),
    ('{"max_completion_tokens": 1}', "use --max-tokens"),
    ('{"max_output_tokens": 1}', "use --max-tokens"),
    ('{"model": "other"}', "use --model"),
    ('{"messages": []}', "the prompts come from --dataset"),
    ('{"prompt": "x"}', "the prompts come from --dataset"),
    ('{"n": 2}', "one completion per request is measured"),
])
def test_extra_body_fields_the_run_controls_are_refused(tmp_path, refused, body, says):
    """Was: {"stream": false} silently turned streaming off and reported the whole response as TTFT;
    {"max_tokens": 1} silently overrode --max-tokens."""
    for api in ("chat", "responses", "messages"):
        refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--api", api, "--extra-body", body,
                 "--output", str(tmp_path / "o")], tmp_path / "o", says)


def test_extra_body_may_not_contradict_an_option_given(tmp_path, refused):
    refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--temperature", "1",
             "--extra-body", '{"temperature": 0.5}', "--output", str(tmp_path / "o")], tmp_path / "o",
            "--extra-body temperature contradicts --temperature")


def test_other_extra_body_fields_are_sent_and_recorded(tmp_path, capsys):
    with serve(arrivals_server([])) as server:
        code, _, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "1",
                                 "--extra-body", '{"temperature": 0.5, "top_k": 3}'], tmp_path / "out", capsys)
    summary, rows = check_files(tmp_path / "out")
    assert code == 0 and rows[0]["ttft_s"] is not None, err
    assert summary["config"]["extra_body"] == {"temperature": 0.5, "top_k": 3} and summary["config"]["stream"] is True
