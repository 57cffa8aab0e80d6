"""Images in a chat request to the sim: each ``image_url`` (or ``input_image``) content part is
charged a known ``--image-tokens`` prompt tokens, as a vision model's processor turns an image into
a fixed number of tokens for its size. They count in usage.prompt_tokens (and are reported in
``prompt_tokens_details.image_tokens``), in the prefill time (--prefill-tokens-per-s) that delays
the first token, and in the --log-chunks line (images, image_bytes, image_tokens): the truth a
client's TTFT with images is checked against. A request without images pays one walk over its
messages' content and nothing else."""

from __future__ import annotations

from typing import Any

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import Plan

IMAGE_PART_TYPES = ("image_url", "input_image")


def data_url_bytes(url: Any) -> int | None:
    """Decoded size of a base64 ``data:`` URL, from its length (nothing is decoded); None for any
    other URL (an http(s) image the sim would fetch)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    payload = url[url.find(",") + 1:]
    return len(payload) * 3 // 4 - (len(payload) - len(payload.rstrip("=")))


def count_images(body: dict[str, Any]) -> tuple[int, int | None]:
    """(image parts in the chat messages, their decoded bytes; None when any is not a data: URL)."""
    n, size = 0, 0  # type: tuple[int, int | None]
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES:
                url = part.get("image_url")
                n += 1
                b = data_url_bytes(url.get("url") if isinstance(url, dict) else url)
                size = None if size is None or b is None else size + b
    return n, size


def take_images(config: SimConfig, body: dict[str, Any], plan: Plan) -> None:
    """Charge a chat request's images before it takes its slot (its prefill then includes them)."""
    if not plan.chat:
        return
    n, size = count_images(body)
    if not n:
        return
    plan.image_tokens = n * config.image_tokens
    plan.prompt_tokens += plan.image_tokens
    if plan.log_extra is not None:
        plan.log_extra.update({"images": n, "image_bytes": size, "image_tokens": plan.image_tokens})
