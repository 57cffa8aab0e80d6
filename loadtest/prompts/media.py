"""What a prompt carries besides its text: images for a chat request, an audio file for a
transcription. Dataset rows name theirs (``image``, ``image_url``, ``images``, ``audio``), read here
when the dataset is loaded, so a missing or unreadable file is one line naming the file and its row
before anything starts; synthetic ones are made before the run (prompts/attach.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.errors import DatasetError
from loadtest.prompts.audio import dataset_audio
from loadtest.prompts.images import dataset_image

IMAGE_FIELDS = ("image", "image_url", "images")
MEDIA_FIELDS = (*IMAGE_FIELDS, "audio")


@dataclass(frozen=True)
class Audio:
    """An audio file as uploaded: its bytes, file name, MIME type and duration (seconds)."""

    data: bytes
    filename: str
    mime: str
    seconds: float


@dataclass(frozen=True)
class Media:
    """``images``: the URLs sent as ``image_url`` content parts (data: URLs, or a dataset's http(s)
    URLs); ``image_bytes``: the image files' bytes (None when an http(s) image's size is not known
    to the client); ``audio``: the file of a transcription request."""

    images: tuple[str, ...] = ()
    image_bytes: int | None = 0
    audio: Audio | None = None


def row_media(row: dict[str, Any], base: Path, where: str, row_index: int) -> Media | None:
    """The media a dataset row names, read now (None: it names none). Paths are relative to the
    dataset file's directory; rows are numbered from 1 in messages."""
    if not any(key in row for key in MEDIA_FIELDS):
        return None
    what = f"{where}: row {row_index + 1}"
    refs: list[Any] = []
    for key in IMAGE_FIELDS:
        value = row.get(key)
        if value is None:
            continue
        if key == "images":
            if not isinstance(value, list):
                raise DatasetError(f"{what}: 'images' must be a list of file paths or URLs")
            refs += value
        else:
            refs.append(value)
    urls, sizes = [], []
    for ref in refs:
        url, size = dataset_image(ref, base, what)
        urls.append(url)
        sizes.append(size)
    audio = None
    if row.get("audio") is not None:
        audio = Audio(*dataset_audio(row["audio"], base, what))
    if not urls and audio is None:
        return None
    image_bytes = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    return Media(images=tuple(urls), image_bytes=image_bytes, audio=audio)
