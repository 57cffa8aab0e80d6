"""The slowest fault tests of tests/integration/test_faults.py, moved whole so that make test-fast
stays under 2 minutes: every scripted fault on both transports (the timeouts among them wait out
--timeout three times, 6 s each), a full listen backlog, the server killed mid-run then resumed, and
signals to a child process. Same rules: a bounded time, one row per request, no traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

import faultserver
from faultserver import NGINX_502, SSE_HEAD, FaultServer, chunk, event, hold, ok_stream, reset, response, serve
from loadtest.cli.main import main
from test_faults import TIMEOUT_S, _start, b_endless, b_never_answer, check_files, run_main


# -- behaviours of the scripted server ---------------------------------------------------------

def b_reset_mid_stream(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    if n % 2:
        ok_stream(sock)
        return
    sock.sendall(SSE_HEAD + event("a") + event("b") + event("c"))
    reset(sock)


def b_stall_after_headers(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + event("a"))
    hold(server)


def b_slow_drip(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD)
    while not server.stopping.wait(0.4):
        sock.sendall(event("drip"))


def b_5xx_burst(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    if n in (3, 4, 5):
        status = (500, 502, 503)[n - 3]
        sock.sendall(response(status, b'{"error":{"message":"overloaded\\nretry later"}}'))
    else:
        ok_stream(sock)


def b_html_502(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    if n % 2:
        ok_stream(sock)
    else:
        sock.sendall(response(502, NGINX_502, "text/html"))


def b_malformed_sse(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + event("a") + chunk(b"data: {\"choices\": [oops\n\n") + chunk(b"data: [DONE]\n\n")
                 + b"0\r\n\r\n")


def b_invalid_json(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + event("a") + chunk(b"data: not json at all\n\n") + b"0\r\n\r\n")


def b_invalid_utf8(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + event("a") + event(b"\xff\xfe bad") + b"0\r\n\r\n")


def b_no_data_lines(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + chunk(b"hello there\n\n") + chunk(b": comment\n\n") + b"0\r\n\r\n")


def b_10mb_chunk(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(SSE_HEAD + event("x" * (10 << 20)) + b"0\r\n\r\n")


def b_not_openai(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    sock.sendall(response(200, b"<html><head><title>Welcome to nginx!</title></head><body>hi</body></html>",
                          "text/html"))


def b_refuse_after_4(server: FaultServer, sock: socket.socket, n: int, head: bytes) -> None:
    ok_stream(sock)
    if n >= 4:
        server.close_listener()
        sock.close()


# (id, behaviour, extra args, exit code, error kinds expected in the summary, run.ended)
SCRIPTED = [
    ("reset-mid-stream", b_reset_mid_stream, ["--num-prompts", "6"], 0, {"disconnect"}, "done"),
    ("stall-after-headers", b_stall_after_headers, ["--num-prompts", "3"], 2, {"timeout"}, "aborted"),
    ("slow-drip", b_slow_drip, ["--num-prompts", "3"], 2, {"timeout"}, "aborted"),
    ("accept-never-answer", b_never_answer, ["--num-prompts", "3"], 2, {"timeout"}, "aborted"),
    ("5xx-burst", b_5xx_burst, ["--num-prompts", "8"], 0, {"server_error"}, "done"),
    ("html-error-page", b_html_502, ["--num-prompts", "6"], 0, {"server_error"}, "done"),
    ("malformed-sse", b_malformed_sse, ["--num-prompts", "3"], 2, {"malformed"}, "aborted"),
    ("invalid-json", b_invalid_json, ["--num-prompts", "3"], 2, {"malformed"}, "aborted"),
    ("invalid-utf8", b_invalid_utf8, ["--num-prompts", "3"], 2, {"malformed"}, "aborted"),
    ("sse-without-data-lines", b_no_data_lines, ["--num-prompts", "3"], 0, set(), "done"),
    ("10mb-chunk", b_10mb_chunk, ["--num-prompts", "3"], 2, {"runaway"}, "aborted"),
    ("endless-stream", b_endless, ["--num-prompts", "3"], 2, {"runaway"}, "aborted"),
    ("non-openai-server", b_not_openai, ["--num-prompts", "3"], 2, {"malformed"}, "aborted"),
    ("connection-refused-mid-run", b_refuse_after_4, ["--num-prompts", "10"], 2, {"connect"}, "aborted"),
]


@pytest.mark.parametrize("transport", ["fast", "httpx"])
@pytest.mark.parametrize("name,behaviour,args,code,kinds,ended", SCRIPTED, ids=[s[0] for s in SCRIPTED])
def test_scripted_fault(name, behaviour, args, code, kinds, ended, transport, tmp_path, capsys):
    with serve(behaviour) as server:
        got, took, err = run_main(["single", "--endpoint", server.base_url, "--model", "m", "--max-tokens", "16",
                                   "--transport", transport, *args], tmp_path / "out", capsys)
    assert got == code, err
    assert took < TIMEOUT_S * 3 + 2, took  # at most three requests wait out their timeout, then it stops
    summary, rows = check_files(tmp_path / "out")
    assert set(summary["errors"]) == kinds, summary["errors"]
    assert summary["run"]["ended"] == ended
    if code:
        assert len([ln for ln in err.splitlines() if ln.startswith("loadtest: error:")]) == 1, err
    if name == "html-error-page":
        assert summary["errors"]["server_error"]["example"] == "HTTP 502: HTML page: 502 Bad Gateway"
        assert "<" not in err
    if name in ("reset-mid-stream", "slow-drip", "endless-stream"):
        failed = [r for r in rows if not r["ok"]]
        assert failed and all(r["content_chunks"] > 0 and r["partial_tokens"] and r["bytes_received"] for r in failed)
    if name == "endless-stream":
        assert all(r["content_chunks"] >= 4 * 16 + 64 for r in rows), "cut off at the documented limit"
    if name == "5xx-burst":
        assert summary["errors"]["server_error"]["count"] == 3
        assert summary["errors"]["server_error"]["example"].endswith("overloaded retry later")


def test_duration_deadline_cancels_connects_to_a_full_backlog(tmp_path, capsys):
    """A listener that never accepts and whose backlog is full: connects hang in SYN retries,
    preconnect included; the deadline still ends the run at once."""
    with faultserver.full_backlog() as port:
        endpoint = ["--endpoint", f"http://127.0.0.1:{port}/v1", "--model", "m", "--concurrency", "2", "--duration", "1"]
        # Without preconnect the window starts at once; its connects are cancelled at the deadline.
        got, took, err = run_main(["throughput", *endpoint, "--no-preconnect", "--timeout", "30"], tmp_path / "np", capsys)
        assert took < 3 and got == 2, (took, err)
        summary, rows = check_files(tmp_path / "np")
        assert rows and all(r["error_kind"] == "cancelled" for r in rows)
        # Preconnect waits within the run's budget (min(--timeout, --duration, 30 s)) for connections that
        # never come, then the window runs.
        got, took, err = run_main(["throughput", *endpoint], tmp_path / "pre", capsys)
        assert took < TIMEOUT_S + 1 + 2 and got == 2, (took, err)


# -- the server killed mid-run, then the run resumed ------------------------------------------

def test_server_killed_mid_run_stops_and_resume_completes(sim, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = sim(port=port, ttft_ms=5, tpot_ms=20)
    out = tmp_path / "out"
    args = ["single", "--endpoint", server.base_url, "--model", "sim-model", "--max-tokens", "16", "--num-prompts", "30"]

    import threading

    def kill_soon() -> None:
        time.sleep(1.5)
        os.kill(server._proc.pid, signal.SIGKILL)

    threading.Thread(target=kill_soon, daemon=True).start()
    got, took, err = run_main(args, out, capsys)
    assert got == 2 and "stopped accepting connections" in err, err
    summary, rows = check_files(out)
    done = summary["counts"]["completed"]
    assert 0 < done < 30 and summary["run"]["ended"] == "aborted"
    assert set(summary["errors"]) <= {"disconnect", "connect"}

    sim(port=port, ttft_ms=5, tpot_ms=1)  # restarted
    code = main([*args, "--timeout", str(TIMEOUT_S), "--resume", str(out), "--quiet", "--num-prompts", "31"])
    assert code == 2 and "options differ from the run being resumed (num_prompts: 30 then, 31 now)" in (
        capsys.readouterr().err)
    code = main([*args, "--timeout", str(TIMEOUT_S), "--resume", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary, rows = check_files(out)
    # Only requests the dead server never got (refused, cancelled) ran again; the one it dropped mid-response stays.
    assert sorted(r["id"] for r in rows) == list(range(30)) and set(summary["errors"]) <= {"disconnect"}
    assert summary["counts"]["completed"] >= 27 and summary["counts"]["requests"] == 30
    assert summary["run"]["resumed"] and len(summary["run"]["pieces"]) == 2


# -- signals (a child process, as a user would send them) -------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_writes_a_partial_summary(sig, code, tmp_path):
    with serve(b_slow_drip) as server:
        proc = _start(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "3",
                       "--num-prompts", "9", "--timeout", "60"], tmp_path / "out")
        time.sleep(2.0)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 2.5
    assert proc.returncode == code, err
    assert "Traceback" not in err and ("Ctrl-C again" in err) == (sig == signal.SIGINT), err
    summary, rows = check_files(tmp_path / "out")
    assert summary["run"]["ended"] == "interrupted" and summary["counts"]["cancelled"] == 3


def test_second_ctrl_c_quits_at_once_with_whole_lines(tmp_path):
    with serve(b_slow_drip) as server:
        proc = _start(["throughput", "--endpoint", server.base_url, "--model", "m", "--concurrency", "3",
                       "--num-prompts", "9", "--timeout", "60"], tmp_path / "out")
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in err, err
    raw = (tmp_path / "out" / "requests.jsonl").read_bytes()
    assert all(json.loads(line) for line in raw.splitlines()) is not None and (raw == b"" or raw.endswith(b"\n"))
