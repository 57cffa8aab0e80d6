"""The request side of images and audio: a chat prompt's images as ``image_url`` content parts,
and a transcription request as the multipart/form-data upload ``/audio/transcriptions`` takes.

The form is framed here, not by an HTTP library: the transports post bytes with headers, and the
framing is a few lines of RFC 7578. Its boundary is checked against the parts it separates, and
another is taken in the (never yet seen) case that a file holds it.
"""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.prompts.sources import Prompt

BOUNDARY = "loadtest-form-6b1f3c9e2d7a4058"
_NOT_FORM_FIELDS = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens", "ignore_eos", "tools",
                              "stream", "stream_options", "messages", "prompt", "input"})


def content_parts(text: str, images: tuple[str, ...]) -> list[dict[str, Any]]:
    """A user message's content: its text (when it has any: the exact length the run asked for),
    then each image as an ``image_url`` part, as OpenAI's chat API and the engines take them."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return parts + [{"type": "image_url", "image_url": {"url": url}} for url in images]


def _field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


def _quoted(name: str) -> bytes:
    """A name or file name inside a quoted Content-Disposition parameter (WHATWG's escapes)."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A").encode()


def form_body(fields: list[tuple[str, str]], filename: str, mime: str, data: bytes) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data upload: the fields in order, then ``file``."""
    boundary, n = BOUNDARY, 0
    while boundary.encode() in data or any(boundary in value for _, value in fields):
        n += 1
        boundary = f"{BOUNDARY}-{n}"
    mark = b"--" + boundary.encode()
    out = [b'%b\r\nContent-Disposition: form-data; name="%b"\r\n\r\n%b\r\n' % (mark, _quoted(k), v.encode())
           for k, v in fields]
    out.append(b'%b\r\nContent-Disposition: form-data; name="file"; filename="%b"\r\nContent-Type: %b\r\n\r\n'
               % (mark, _quoted(filename), mime.encode()))
    out += [data, b"\r\n%b--\r\n" % mark]
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def transcription_body(prompt: Prompt, base: dict[str, Any], *, include_usage: bool, continuous_usage: bool,
                       headers: dict[str, str] | None) -> tuple[bytes, dict[str, str]]:
    """(body, request headers) of one transcription request: model, response_format json (unless
    --extra-body names another), stream=true with vLLM's flattened stream options when streaming,
    the run's sampling fields and --extra-body as form fields, then the audio file. ``max_tokens``
    is not sent: a transcript is as long as its audio."""
    audio = prompt.media.audio if prompt.media is not None else None
    if audio is None:  # prompts/attach.py gives every prompt of a transcription run its audio
        raise ValueError(f"prompt {prompt.id} has no audio")
    fields = [(k, _field_value(v)) for k, v in base.items() if k not in _NOT_FORM_FIELDS and v is not None]
    if "response_format" not in base:
        fields.append(("response_format", "json"))
    if base.get("stream"):
        fields.append(("stream", "true"))
        if include_usage:  # vLLM's form of stream_options (the sender drops them when a server refuses)
            fields.append(("stream_include_usage", "true"))
            if continuous_usage:
                fields.append(("stream_continuous_usage_stats", "true"))
    body, content_type = form_body(fields, audio.filename, audio.mime, audio.data)
    return body, {**(headers or {}), "Content-Type": content_type}
