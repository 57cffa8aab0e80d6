"""The run's prompts with the media its options ask for, made once before the run.

``--images N``: N seeded synthetic images after each chat prompt's own (a dataset row's), the k-th
image of the i-th prompt seeded by (run seed, i, k); ``--api transcriptions``: each prompt's audio
file, or, for a prompt whose row names none, a seeded synthetic clip of ``--audio-seconds``. Each
distinct image or clip is made once per process (a sweep's levels share them); a request then only
embeds what is already there.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from loadtest.config import DEFAULT_AUDIO_SECONDS, RunConfig
from loadtest.errors import ConfigError
from loadtest.prompts.audio import synthetic_wav
from loadtest.prompts.images import FORMATS, data_url, synthetic_image
from loadtest.prompts.media import Audio, Media
from loadtest.prompts.sources import Prompt


@cache
def _image(seed: int, prompt_index: int, image_index: int, size: tuple[int, int], fmt: str) -> tuple[str, int]:
    data = synthetic_image(seed, prompt_index, image_index, size, fmt)
    return data_url(data, FORMATS[fmt][1]), len(data)


@cache
def _clip(seed: int, index: int, seconds: float) -> Audio:
    return Audio(synthetic_wav(seed, index, seconds), f"synthetic-{index}.wav", "audio/wav", seconds)


def with_media(cfg: RunConfig, prompts: list[Prompt]) -> list[Prompt]:
    """``prompts`` as the run sends them (the same list when nothing is attached). Media an API
    cannot send is dropped (a row's audio on a chat run, its images on a transcription run); a
    dataset's images on an API other than chat are refused with one line."""
    if cfg.api == "transcriptions":
        seconds = cfg.audio_seconds or DEFAULT_AUDIO_SECONDS
        return [replace(p, media=Media(audio=p.media.audio if p.media is not None and p.media.audio is not None
                                       else _clip(cfg.seed, i, seconds))) for i, p in enumerate(prompts)]
    if not cfg.images and all(p.media is None for p in prompts):
        return prompts
    out = []
    for i, p in enumerate(prompts):
        urls, size = (list(p.media.images), p.media.image_bytes) if p.media is not None else ([], 0)
        for k in range(cfg.images):
            url, n = _image(cfg.seed, i, k, cfg.image_size, cfg.image_format)
            urls.append(url)
            size = None if size is None else size + n
        out.append(replace(p, media=Media(images=tuple(urls), image_bytes=size) if urls else None))
    if cfg.api != "chat" and any(p.media is not None for p in out):
        raise ConfigError(f"the prompts of {cfg.dataset} carry images, which only --api chat sends (as content parts)")
    return out


def media_numbers(prompts: list[Prompt]) -> dict[str, tuple[int | None, int | None, float | None]]:
    """Prompt id -> (images, image bytes, audio seconds), for the prompts that carry media: what
    their records say they sent."""
    return {p.id: (len(p.media.images) or None, p.media.image_bytes,
                   p.media.audio.seconds if p.media.audio is not None else None)
            for p in prompts if p.media is not None}
