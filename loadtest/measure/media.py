"""Images and audio in the records and the summary (docs/media.md).

Per request: the images it carried and their bytes, the prompt tokens split into text and image
where the server's usage says (``prompt_tokens_details.image_tokens``/``text_tokens``, as OpenAI's
usage may carry them), the seconds of audio a transcription uploaded and its inverse real-time
factor, RTFx = audio seconds / e2e_s (as vLLM's and AIPerf's benchmarks define it: above 1, faster
than real time). Per run, over completed measured requests: images and image bytes per second,
audio seconds per second of the window, and RTFx's statistics. A run without images or audio gets
none of these keys.
"""

from __future__ import annotations

from array import array
from typing import Any, Protocol

import numpy as np


class _Record(Protocol):
    ok: bool
    e2e_s: float | None
    prompt_tokens: int | None
    images: int | None
    image_bytes: int | None
    prompt_image_tokens: int | None
    prompt_text_tokens: int | None
    audio_seconds: float | None
    rtfx: float | None


def note_media(rec: _Record, images: int | None, image_bytes: int | None, audio_seconds: float | None) -> None:
    """What the request carried (the runner knows it from the prompt); RTFx when it completed."""
    rec.images, rec.image_bytes, rec.audio_seconds = images, image_bytes if images else None, audio_seconds
    if audio_seconds is not None and rec.ok and rec.e2e_s:
        rec.rtfx = audio_seconds / rec.e2e_s


def split_prompt_tokens(rec: _Record, details: dict[str, Any]) -> None:
    """The prompt's image and text tokens from usage.prompt_tokens_details, when it reports image
    tokens (text = prompt_tokens - image tokens when it does not say text_tokens itself)."""
    image, text = details.get("image_tokens"), details.get("text_tokens")
    if type(image) is not int:
        return
    rec.prompt_image_tokens = image
    if type(text) is int:
        rec.prompt_text_tokens = text
    elif rec.prompt_tokens is not None:
        rec.prompt_text_tokens = rec.prompt_tokens - image


class MediaTotals:
    """Summed over completed measured requests (Columns.add hands them over)."""

    def __init__(self) -> None:
        self.images = 0
        self.image_requests = 0
        self.image_bytes: int | None = 0
        self.image_tokens: int | None = None
        self.text_tokens: int | None = None
        self.audio_s = 0.0
        self.audio_requests = 0
        self.rtfx: array[float] = array("d")

    def add(self, row: _Record) -> None:
        if row.images:
            self.images += row.images
            self.image_requests += 1
            self.image_bytes = None if self.image_bytes is None or row.image_bytes is None else (
                self.image_bytes + row.image_bytes)
            if row.prompt_image_tokens is not None:
                self.image_tokens = (self.image_tokens or 0) + row.prompt_image_tokens
            if row.prompt_text_tokens is not None:
                self.text_tokens = (self.text_tokens or 0) + row.prompt_text_tokens
        if row.audio_seconds is not None:
            self.audio_s += row.audio_seconds
            self.audio_requests += 1
            if row.rtfx is not None:
                self.rtfx.append(row.rtfx)

    def metrics(self, window_s: float | None, summarize: Any) -> dict[str, Any]:
        """The summary's media keys (none for a run without images or audio); ``summarize`` is
        metrics.summarize (passed in: this module is imported by metrics.py)."""
        per_s = (lambda n: n / window_s if n is not None and window_s else None)
        out: dict[str, Any] = {}
        if self.image_requests:
            out.update({"images_total": self.images, "images_per_s": per_s(self.images),
                        "image_bytes_total": self.image_bytes, "image_bytes_per_s": per_s(self.image_bytes),
                        "prompt_image_tokens_total": self.image_tokens, "prompt_text_tokens_total": self.text_tokens})
        if self.audio_requests:
            out.update({"audio_seconds_total": self.audio_s, "audio_seconds_per_s": per_s(self.audio_s),
                        "rtfx": summarize(np.frombuffer(self.rtfx, dtype=float) if len(self.rtfx) else [])})
        return out


def console_lines(summary: dict[str, Any]) -> list[str]:
    """The console's image and audio lines (none for a run without them)."""
    m, lines = summary["metrics"], []
    if m.get("images_total") is not None:
        size = m.get("image_bytes_total")
        tokens = m.get("prompt_image_tokens_total")
        lines.append(f"images: {m['images_total']:,} sent ({_num(m['images_per_s'])}/s)"
                     + (f", {size / 1e6:,.1f} MB ({_num((m['image_bytes_per_s'] or 0) / 1e6)} MB/s)" if size else "")
                     + (f"  |  prompt tokens: {tokens:,} image, {m['prompt_text_tokens_total'] or 0:,} text"
                        if tokens is not None else "  |  image tokens: not reported by the server"))
    if m.get("audio_seconds_total") is not None:
        r = m["rtfx"]
        lines.append(f"audio: {m['audio_seconds_total']:,.1f} s transcribed, {_num(m['audio_seconds_per_s'])} audio s "
                     f"per s  |  RTFx (audio s / latency) mean {_num(r['mean'])}, p50 {_num(r['p50'])}, "
                     f"min {_num(r['min'])}")
    return lines


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"
