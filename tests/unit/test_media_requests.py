"""The request side of images and audio: content parts in the chat body, and the multipart upload
of a transcription read back by an independent parser (the standard library's email package)."""

from __future__ import annotations

import email.parser
import email.policy

import orjson

from loadtest.client.media import BOUNDARY, form_body, transcription_body
from loadtest.client.payloads import build_body
from loadtest.prompts.media import Audio, Media
from loadtest.prompts.sources import Prompt


def _parts(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None, str | None]]:
    """name -> (payload bytes, file name, content type), parsed by email's MIME parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert message.is_multipart() and not message.defects
    out = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_payload(decode=True), part.get_filename(), part.get_content_type())
    return out


def test_chat_body_carries_text_then_image_parts():
    prompt = Prompt(id="p", text="describe these", media=Media(images=("data:image/png;base64,AAAA", "https://x/y.jpg"),
                                                              image_bytes=None))
    body = orjson.loads(build_body(prompt, {"model": "m", "stream": True}, api="chat", include_usage=True))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "describe these"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}}]}]
    plain = orjson.loads(build_body(Prompt(id="q", text="hi"), {"stream": False}, api="chat", include_usage=False))
    assert plain["messages"] == [{"role": "user", "content": "hi"}]


def test_transcription_form_fields_and_file_read_back_by_a_mime_parser():
    wav = b"RIFF....WAVEfmt " + bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    prompt = Prompt(id="a", text="ignored", media=Media(audio=Audio(wav, 'clip "1".wav', "audio/wav", 2.0)))
    base = {"model": "whisper", "max_tokens": 256, "stream": True, "temperature": 0.0, "ignore_eos": True,
            "language": "en", "timestamp_granularities": ["segment"]}
    body, headers = transcription_body(prompt, base, include_usage=True, continuous_usage=False,
                                       headers={"x-session": "s1"})
    assert headers["x-session"] == "s1" and headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = _parts(body, headers["Content-Type"])
    assert parts["file"] == (wav, 'clip %221%22.wav', "audio/wav")
    fields = {k: v[0].decode() for k, v in parts.items() if k != "file"}
    assert fields == {"model": "whisper", "temperature": "0.0", "language": "en",
                      "timestamp_granularities": '["segment"]', "response_format": "json", "stream": "true",
                      "stream_include_usage": "true"}
    body, headers = transcription_body(prompt, {"model": "w", "stream": False, "response_format": "verbose_json"},
                                       include_usage=False, continuous_usage=False, headers=None)
    fields = {k: v[0].decode() for k, v in _parts(body, headers["Content-Type"]).items() if k != "file"}
    assert fields == {"model": "w", "response_format": "verbose_json"}


def test_boundary_changes_when_the_file_holds_it():
    data = b"abc--" + BOUNDARY.encode() + b"xyz"
    body, content_type = form_body([("model", "m")], "a.wav", "audio/wav", data)
    assert content_type.endswith(BOUNDARY + "-1")
    assert _parts(body, content_type)["file"][0] == data


def test_fast_transport_sends_the_requests_content_type_instead_of_json():
    from loadtest.transport._fast import FastTransport

    t = FastTransport("http://127.0.0.1:9/v1", max_connections=1, headers={})
    form = t._request_bytes(b"POST", "/audio/transcriptions", b"x", {"Content-Type": "multipart/form-data; boundary=b"})
    assert b"Content-Type: multipart/form-data; boundary=b\r\n" in form and b"Content-Type: application/json" not in form
    assert b"Content-Type: application/json\r\n" in t._request_bytes(b"POST", "/chat/completions", b"{}")
