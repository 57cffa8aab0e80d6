"""Images a chat request carries (``--images N``, or a dataset's ``image``/``image_url``/``images``).

Synthetic images are drawn with Pillow from a seed made of (run seed, prompt index, image index),
so one run's images are the same in every rerun and every prompt's differ (a server's multimodal
cache cannot answer one prompt's image from another's). They are coloured shapes over a gradient
with a little seeded noise: an image codec does roughly the work a photo would make it do, and a
PNG is about as large as a photo's. Everything here runs before the run, never per request.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from pathlib import Path

import numpy as np

from loadtest.errors import DatasetError

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^,;]*)*?);base64,", re.IGNORECASE)
_FAST = {"png": {"compress_level": 1}}  # zlib level 1: a third faster to make, about the same size


def synthetic_image(seed: int, prompt_index: int, image_index: int, size: tuple[int, int], fmt: str) -> bytes:
    """One seeded image file (PNG or JPEG bytes): a diagonal gradient, a dozen filled rectangles and
    ellipses, and +-6 levels of noise, all drawn from the three numbers."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed & 0xFFFFFFFF, prompt_index, image_index])
    w, h = size
    a, b = rng.integers(0, 256, size=(2, 3))
    ramp = (np.arange(w)[None, :] / max(w - 1, 1) + np.arange(h)[:, None] / max(h - 1, 1)) / 2
    pixels = a[None, None, :] + (b - a)[None, None, :] * ramp[:, :, None]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, x1 = sorted(rng.integers(0, w, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, h, size=2).tolist())
        colour = tuple(rng.integers(0, 256, size=3).tolist())
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, size=(h, w, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(out, format=FORMATS[fmt][0], **_FAST.get(fmt, {}))
    return out.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image_mime(data: bytes, what: str) -> str:
    """The MIME type of an image file's bytes, checked by Pillow (DatasetError naming ``what`` when
    the bytes are not an image Pillow can read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{what}: not an image ({_short(exc)})") from None
    return Image.MIME.get(fmt or "", f"image/{(fmt or 'octet-stream').lower()}")


def dataset_image(ref: object, base: Path, what: str) -> tuple[str, int | None]:
    """A dataset's image reference as (the URL sent, the image's bytes): a local path (relative
    to the dataset file), a ``data:`` URL, or an http(s) URL sent as it is (its bytes then unknown:
    None). ``{"url": ...}`` (OpenAI's image_url object) is taken too."""
    if isinstance(ref, dict):
        ref = ref.get("url")
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetError(f"{what}: expected a file path or a URL, got {ref!r}")
    ref = ref.strip()
    if ref.startswith(("http://", "https://")):
        return ref, None
    if ref.startswith("data:"):
        m = _DATA_URL.match(ref)
        if m is None:
            raise DatasetError(f"{what}: a data: URL must be base64 (data:image/png;base64,...)")
        try:
            data = base64.b64decode(ref[m.end():], validate=True)
        except binascii.Error as exc:
            raise DatasetError(f"{what}: bad base64 in the data: URL ({exc})") from None
        image_mime(data, what)
        return ref, len(data)
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{what}: cannot read image file {path}: {exc.strerror or exc}") from None
    return data_url(data, image_mime(data, f"{what}: {path}")), len(data)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
