"""The slowest tests of tests/integration/test_hosted_sdk.py (the SDK transport's records in every
dialect, and TLS verification against a local HTTPS server), moved whole so that make test-fast
stays under 2 minutes."""

from __future__ import annotations

import pytest

from loadtest.cli.main import main


@pytest.mark.parametrize("extra", [[], ["--no-stream"], ["--api", "responses"], ["--api", "completions"]])
def test_openai_sdk_transport_gives_the_same_record(cli, sim, tmp_path, extra):
    s = sim(api_key="sk-sdk-1234", ttft_ms=5, tpot_ms=1, reasoning_tokens=2, rate_limit_every=3, retry_after_s=0.05)
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api-key", "sk-sdk-1234", "--transport", "openai",
                               "--model", "sim-model", "--num-prompts", "3", "--max-tokens", "6", *extra], tmp_path)
    assert code == 0 and summary["counts"]["completed"] == 3 and summary["counts"]["rate_limited"] == 1
    assert [r["attempts"] for r in rows] == [1, 1, 2]
    assert 0.05 <= rows[2]["retry_wait_s"] < 0.1  # the limit headers come through the SDK too
    for r in rows:
        assert r["completion_tokens"] == 6 and r["token_source"] == "usage"
        assert r["reasoning_tokens"] == (None if "completions" in extra else 2)
        assert (r["ttft_s"] is None) == ("--no-stream" in extra)


@pytest.fixture
def tls_server(tmp_path):
    """A one-thread HTTPS server on loopback with a self-signed certificate, answering /v1/models
    and non-stream chat (what --insecure must reach, and verification must refuse)."""
    import http.server
    import json
    import shutil
    import ssl
    import subprocess
    import threading

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    reply = {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": " a b"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, obj: dict) -> None:
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "m"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.mark.parametrize("transport", ["fast", "httpx"])
def test_tls_is_verified_unless_insecure(cli, tls_server, tmp_path, transport, capsys):
    args = ["single", "--endpoint", tls_server, "--model", "m", "--no-stream", "--num-prompts", "2",
            "--transport", transport]
    code, summary, _ = cli([*args, "--insecure"], tmp_path / "insecure")
    assert code == 0 and summary["counts"]["completed"] == 2 and summary["config"]["insecure"] is True
    assert main([*args, "--output", str(tmp_path / "verified"), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("loadtest: error:")]
    assert len(err) == 1 and ("CERTIFICATE_VERIFY_FAILED" in err[0] or "certificate" in err[0].lower())
