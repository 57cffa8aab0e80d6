"""The simulated server itself: OpenAI compatibility (via the openai SDK and raw HTTP), every option,
the timing schedule, and the SimProcess lifecycle."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest

from loadtest.errors import LaunchError
from loadtest.sim import SimProcess, start_sim

pytestmark = pytest.mark.timeout(60)

CHAT = [{"role": "user", "content": "say a few words please"}]  # 5 prompt words


def client(s: SimProcess, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base_url, api_key=kw.pop("api_key", "unused"), max_retries=0,
                         http_client=httpx.Client(trust_env=False), **kw)


def raw_stream(s: SimProcess, path: str = "/chat/completions", **body: Any) -> tuple[httpx.Response, bytes]:
    """POST a streaming request; return the response and the whole decoded (de-chunked) body."""
    payload = {"model": "sim-model", "stream": True, **body}
    if path == "/chat/completions":
        payload.setdefault("messages", CHAT)
    else:
        payload.setdefault("prompt", "one two three")
    with httpx.Client(trust_env=False) as c, c.stream("POST", s.base_url + path, json=payload) as r:
        return r, r.read()


def events(body: bytes) -> list[str]:
    """SSE data payloads, accepting \\n or \\r\\n line ends."""
    text = body.decode().replace("\r\n", "\n")
    return [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]


def chunks(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(e) for e in events(body) if e != "[DONE]"]


def content_of(cs: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in cs if c["choices"])


# -- OpenAI compatibility -------------------------------------------------------------------------
def test_openai_sdk_chat_stream_with_usage(sim) -> None:
    s = sim(ttft_ms=5, tpot_ms=1)
    got = list(client(s).chat.completions.create(model="sim-model", messages=CHAT, max_tokens=7, stream=True,
                                                  stream_options={"include_usage": True}))
    assert got[0].choices[0].delta.role == "assistant" and got[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == " tok0 tok1 tok2 tok3 tok4 tok5 tok6" and len(text.split()) == 7
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "length"
    assert got[-1].choices == [] and got[-1].usage.prompt_tokens == 5
    assert got[-1].usage.completion_tokens == 7 and got[-1].usage.total_tokens == 12
    assert got[0].id.startswith("chatcmpl-") and {c.id for c in got} == {got[0].id}
    assert all(c.model == "sim-model" and c.object == "chat.completion.chunk" for c in got)


def test_openai_sdk_non_stream_chat_and_completions(sim) -> None:
    s = sim(ttft_ms=2, tpot_ms=1)
    c = client(s)
    chat = c.chat.completions.create(model="sim-model", messages=CHAT, max_tokens=4)
    assert chat.object == "chat.completion" and chat.choices[0].message.content == " tok0 tok1 tok2 tok3"
    assert chat.choices[0].finish_reason == "length"
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens) == (5, 4, 9)
    comp = c.completions.create(model="sim-model", prompt="a b c d", max_tokens=3)
    assert comp.object == "text_completion" and comp.choices[0].text == " tok0 tok1 tok2"
    assert (comp.usage.prompt_tokens, comp.usage.completion_tokens) == (4, 3)
    stream = list(c.completions.create(model="sim-model", prompt="a b", max_tokens=3, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(x.choices[0].text for x in stream if x.choices) == " tok0 tok1 tok2"
    assert stream[-1].usage.completion_tokens == 3 and stream[0].id.startswith("cmpl-")
    assert [m.id for m in c.models.list()] == ["sim-model"]


def test_default_length_is_16_and_model_may_be_omitted(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0)
    r = httpx.post(s.base_url + "/chat/completions", json={"messages": CHAT}, trust_env=False)
    body = r.json()
    assert r.status_code == 200 and body["usage"]["completion_tokens"] == 16
    assert body["choices"][0]["finish_reason"] == "length" and body["model"] == "sim-model"


def test_errors_have_openai_shape(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client(s).chat.completions.create(model="gpt-x", messages=CHAT)
    assert exc.value.code == "model_not_found" and "The model `gpt-x` does not exist." in exc.value.message
    with httpx.Client(trust_env=False) as c:
        bad = c.post(s.base_url + "/chat/completions", content=b"{nope")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert c.get(s.root_url + "/nowhere").status_code == 404
        assert c.get(s.base_url + "/chat/completions").status_code == 405
        assert c.post(s.base_url + "/completions", json={"max_tokens": 2}).status_code == 400
        assert c.post(s.base_url + "/completions", json={"prompt": "x", "max_tokens": 0}).status_code == 400
        assert c.get(s.root_url + "/health").json() == {"status": "ok"}


def test_api_key_is_enforced(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0, api_key="sekret")
    with pytest.raises(openai.AuthenticationError) as exc:
        client(s, api_key="wrong").chat.completions.create(model="sim-model", messages=CHAT, max_tokens=1)
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    r = httpx.get(s.base_url + "/models", trust_env=False)
    assert r.status_code == 401 and "error" in r.json()
    ok = client(s, api_key="sekret").chat.completions.create(model="sim-model", messages=CHAT, max_tokens=2)
    assert ok.choices[0].message.content == " tok0 tok1"


def test_keep_alive_and_pipelined_requests_on_one_socket(sim) -> None:
    s = sim(ttft_ms=5, tpot_ms=1)
    body = json.dumps({"messages": CHAT, "max_tokens": 3, "stream": True}).encode()
    req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        sock.sendall(req + req)  # pipelined: the second must wait for the first to finish
        data = b""
        while data.count(b"0\r\n\r\n") < 2:
            data += sock.recv(65536)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b"Transfer-Encoding: chunked") == 2
    assert data.count(b"data: [DONE]") == 2 and b'"id":"chatcmpl-1"' in data and b'"id":"chatcmpl-2"' in data


# -- timing ---------------------------------------------------------------------------------------
def test_tokens_arrive_on_the_absolute_schedule(sim) -> None:
    ttft, tpot, n = 80.0, 20.0, 6
    s = sim(ttft_ms=ttft, tpot_ms=tpot)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with httpx.Client(trust_env=False) as c:
        c.get(s.root_url + "/health")  # connect first so the clock starts at send
        t0 = time.monotonic()
        payload = {"model": "sim-model", "messages": CHAT, "max_tokens": n, "stream": True}
        with c.stream("POST", s.base_url + "/chat/completions", json=payload) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(((time.monotonic() - t0) * 1000, json.loads(line[6:])))
    assert arrivals[0][0] < ttft / 2  # the role chunk is sent on receipt
    content = [(t, c) for t, c in arrivals if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert [c["choices"][0]["delta"]["content"] for _, c in content] == [f" tok{i}" for i in range(n)]
    for i, (t, _) in enumerate(content):
        due = ttft + i * tpot
        assert due - 1.0 <= t <= due + 25.0, (i, t, due)  # never early; late only by scheduling noise
    st = s.stats()
    assert st["requests_completed"] == 1 and st["tokens_sent"] == n
    assert st["ttft_server_s"][0] == pytest.approx(ttft / 1000, abs=0.01) and st["ttft_server_s"][0] >= ttft / 1000
    assert 0 <= st["lateness_ms"]["mean"] < 10 and st["lateness_ms"]["count"] == n
    # Monotonic clocks are shared across processes: the server's receipt lies within our request.
    assert t0 <= st["first_request_recv_s"] <= t0 + ttft / 1000
    assert st["last_request_done_s"] - st["first_request_recv_s"] >= (ttft + (n - 1) * tpot) / 1000


def test_non_stream_reply_waits_for_the_last_token(sim) -> None:
    s = sim(ttft_ms=50, tpot_ms=10)
    t0 = time.monotonic()
    r = httpx.post(s.base_url + "/completions", json={"prompt": "x", "max_tokens": 6}, trust_env=False)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200 and r.headers["content-length"] == str(len(r.content))
    assert 0.100 <= elapsed < 0.5  # 50 + 5 * 10 ms


def test_concurrent_streams_all_complete_on_time(sim) -> None:
    import asyncio

    s = sim(ttft_ms=20, tpot_ms=5)

    async def one(c: httpx.AsyncClient) -> str:
        r = await c.post(s.base_url + "/chat/completions",
                         json={"messages": CHAT, "max_tokens": 20, "stream": True})
        return content_of(chunks(r.content))

    async def main() -> list[str]:
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=100)) as c:
            return await asyncio.gather(*[one(c) for _ in range(64)])

    texts = asyncio.run(main())
    assert all(len(t.split()) == 20 for t in texts)
    st = s.stats()
    assert st["requests_completed"] == 64 and st["tokens_sent"] == 64 * 20
    assert st["max_active_requests"] > 1 and st["active_requests"] == 0
    assert st["lateness_ms"]["mean"] < 5


# -- options --------------------------------------------------------------------------------------
def test_output_tokens_and_ignore_eos(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0, output_tokens=4)
    c = client(s)
    stop = c.chat.completions.create(model="sim-model", messages=CHAT, max_tokens=10)
    assert stop.usage.completion_tokens == 4 and stop.choices[0].finish_reason == "stop"
    capped = c.chat.completions.create(model="sim-model", messages=CHAT, max_tokens=3)
    assert capped.usage.completion_tokens == 3 and capped.choices[0].finish_reason == "length"
    forced = c.chat.completions.create(model="sim-model", messages=CHAT, max_tokens=9, extra_body={"ignore_eos": True})
    assert forced.usage.completion_tokens == 9 and forced.choices[0].finish_reason == "length"
    unbounded = c.chat.completions.create(model="sim-model", messages=CHAT)
    assert unbounded.usage.completion_tokens == 4 and unbounded.choices[0].finish_reason == "stop"


def test_tokens_per_chunk_and_empty_chunks(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=1, tokens_per_chunk=3, empty_chunks=True)
    _, body = raw_stream(s, max_tokens=7)
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks(body)[1:-1]]
    assert deltas == [" tok0 tok1 tok2", "", " tok3 tok4 tok5", "", " tok6", ""]


def test_no_role_chunk_and_reasoning_tokens(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=1, role_chunk=False, reasoning_tokens=3, tokens_per_chunk=2)
    _, body = raw_stream(s, max_tokens=6)
    cs = chunks(body)
    assert "role" not in cs[0]["choices"][0]["delta"]
    # Chunks never straddle the reasoning/content boundary.
    assert [list(c["choices"][0]["delta"].items()) for c in cs[:-1]] == [
        [("reasoning_content", " tok0 tok1")], [("reasoning_content", " tok2")],
        [("content", " tok3 tok4")], [("content", " tok5")]]
    full = client(s).chat.completions.create(model="sim-model", messages=CHAT, max_tokens=6)
    assert full.choices[0].message.content == " tok3 tok4 tok5" and full.usage.completion_tokens == 6
    assert full.choices[0].message.reasoning_content == " tok0 tok1 tok2"  # type: ignore[attr-defined]


def test_usage_off_and_usage_per_chunk(sim) -> None:
    off = sim(ttft_ms=1, tpot_ms=0, usage=False)
    _, body = raw_stream(off, max_tokens=3, stream_options={"include_usage": True})
    assert all("usage" not in c for c in chunks(body))
    assert "usage" not in httpx.post(off.base_url + "/completions", json={"prompt": "x", "max_tokens": 2},
                                     trust_env=False).json()
    per = sim(ttft_ms=1, tpot_ms=0, usage_per_chunk=True, tokens_per_chunk=2)
    _, body = raw_stream(per, max_tokens=5)
    cs = chunks(body)
    assert [c["usage"]["completion_tokens"] for c in cs[1:]] == [2, 4, 5, 5]
    assert all(c["usage"]["prompt_tokens"] == 5 for c in cs[1:])


def test_no_done_and_crlf(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0, done=False, crlf=True)
    _, body = raw_stream(s, max_tokens=3)
    assert b"[DONE]" not in body and b"\r\n\r\n" in body and b"}\n\n" not in body
    got = list(client(s).chat.completions.create(model="sim-model", messages=CHAT, max_tokens=3, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in got) == " tok0 tok1 tok2"


def test_reject_stream_options(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0, reject_stream_options=True)
    with pytest.raises(openai.BadRequestError) as exc:
        client(s).chat.completions.create(model="sim-model", messages=CHAT, stream=True,
                                          stream_options={"include_usage": True})
    assert "Unrecognized request argument supplied: stream_options" in exc.value.message
    assert len(list(client(s).chat.completions.create(model="sim-model", messages=CHAT, max_tokens=2,
                                                     stream=True))) == 4  # role, 2 tokens, finish


def test_fail_status_and_fail_every(sim) -> None:
    always = sim(ttft_ms=1, tpot_ms=0, fail_status=503)
    with pytest.raises(openai.APIStatusError) as exc:
        client(always).chat.completions.create(model="sim-model", messages=CHAT)
    assert exc.value.status_code == 503 and exc.value.body["type"] == "server_error"  # type: ignore[index]
    some = sim(ttft_ms=1, tpot_ms=0, fail_status=429, fail_every=3)
    codes = [httpx.post(some.base_url + "/completions", json={"prompt": "x", "max_tokens": 1},
                        trust_env=False).status_code for _ in range(6)]
    assert codes == [200, 200, 429, 200, 200, 429]
    st = some.stats()
    assert (st["requests_received"], st["requests_completed"], st["requests_failed"]) == (6, 4, 2)


def test_disconnect_after_tokens(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=1, disconnect_after_tokens=2)
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.Client(trust_env=False) as c, c.stream(
                "POST", s.base_url + "/chat/completions",
                json={"messages": CHAT, "max_tokens": 5, "stream": True}) as r:
            for part in r.iter_bytes():
                received += part
    assert content_of(chunks(received)) == " tok0 tok1"
    with pytest.raises(httpx.RemoteProtocolError):  # non-stream: the connection drops with no reply
        httpx.post(s.base_url + "/completions", json={"prompt": "x", "max_tokens": 5}, trust_env=False)
    st = s.stats()
    assert st["requests_failed"] == 2 and st["requests_completed"] == 0 and st["tokens_sent"] == 2


def test_stream_error_and_malformed_after_tokens(sim) -> None:
    err = sim(ttft_ms=1, tpot_ms=1, stream_error_after_tokens=2)
    _, body = raw_stream(err, max_tokens=5)
    evs = events(body)
    assert json.loads(evs[-2]) == {"error": {"message": "simulated failure", "type": "server_error"}}
    assert evs[-1] == "[DONE]" and content_of([json.loads(e) for e in evs[:-2]]) == " tok0 tok1"
    with pytest.raises(openai.APIError):
        list(client(err).chat.completions.create(model="sim-model", messages=CHAT, max_tokens=5, stream=True))
    bad = sim(ttft_ms=1, tpot_ms=1, malformed_after_tokens=1)
    r, body = raw_stream(bad, max_tokens=5)
    assert events(body)[-1] == "{not json" and b"[DONE]" not in body and r.status_code == 200


def test_stats_and_reset(sim) -> None:
    s = sim(ttft_ms=1, tpot_ms=0)
    for _ in range(3):
        raw_stream(s, max_tokens=4)
    st = s.stats()
    assert (st["requests_received"], st["requests_completed"], st["tokens_sent"]) == (3, 3, 12)
    assert len(st["ttft_server_s"]) == 3 and st["config"]["ttft_ms"] == 1.0
    s.reset()
    st = s.stats()
    assert (st["requests_received"], st["tokens_sent"], st["ttft_server_s"]) == (0, 0, [])
    assert st["first_request_recv_s"] is None and st["lateness_ms"]["mean"] is None


# -- SimProcess -----------------------------------------------------------------------------------
def _gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sim_process_lifecycle_and_pinning() -> None:
    with start_sim(cpu=0, ttft_ms=1) as s:
        assert s.base_url == f"http://127.0.0.1:{s.port}/v1" and s.port > 0
        assert os.sched_getaffinity(s.pid) == {0}
        pid = s.pid
        with pytest.raises(LaunchError, match="cannot listen"):  # port taken: the child's stderr is reported
            start_sim(port=s.port)
    assert pid is not None and _gone(pid)
    s.stop()  # idempotent


def test_main_module_prints_one_listening_line() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.sim", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("loadtest-sim listening on http://127.0.0.1:") and line.rstrip().endswith("/v1")
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        assert httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False).json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0


@pytest.mark.parametrize("prompt_tokenizer", [None, "cl100k_base"])
def test_one_tokenize_endpoint_counts_with_the_prompt_tokenizer_when_given(sim, prompt_tokenizer) -> None:
    """--tokenize-endpoint is the one /tokenize: the sim's exact words by default (the chunk-token
    tests), the --prompt-tokenizer when given (the synthetic-prompt tests), in both shapes."""
    s = sim(tokenize_endpoint=True, prompt_tokenizer=prompt_tokenizer)
    text = " tok0 tok1 hello, world"
    with httpx.Client(trust_env=False, base_url=s.root_url) as c:
        pieces = c.post("/tokenize", json={"content": text, "with_pieces": True}).json()["tokens"]
        plain = c.post("/tokenize", json={"content": text}).json()
        vllm = c.post("/tokenize", json={"prompt": text, "model": "sim-model"}).json()
    assert "".join(p["piece"] for p in pieces) == text
    if prompt_tokenizer is None:
        assert [p["piece"] for p in pieces] == [" tok0", " tok1", " hello,", " world"]
        assert plain["tokens"] == [0, 1, 2, 3]
    else:
        from loadtest.tokens import load_tokenizer

        ids = load_tokenizer("cl100k_base")._enc.encode(text)  # the offline cl100k_base the sim loads
        assert plain["tokens"] == ids and [p["id"] for p in pieces] == ids
    assert vllm["count"] == len(plain["tokens"]) == len(pieces)
