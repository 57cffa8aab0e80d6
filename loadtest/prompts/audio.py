"""Audio a transcription request uploads (``--api transcriptions``): seeded synthetic speech-like
WAV of ``--audio-seconds``, or a dataset's ``audio`` files.

The synthetic clip is 16 kHz mono PCM16, what speech models resample to anyway: a voiced sound
(harmonics of a pitch that wanders between 90 and 220 Hz) shaped into syllables of about 4 per
second, grouped into words with short pauses, over a faint noise floor. It carries no words, so a
real model's transcript of it is not meaningful (Whisper may answer little or repeat itself): the
clip loads the server like speech of its length, and RTFx (audio seconds / latency) stays
comparable across servers. A run that needs real transcripts uses a dataset of recordings.

A dataset file's duration is read from its header: WAV by the standard library's ``wave``, the
compressed formats (MP3, FLAC, OGG, M4A...) by tinytag, without decoding the audio.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from loadtest.errors import DatasetError

RATE_HZ = 16_000
MIME = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
        ".opus": "audio/ogg", ".m4a": "audio/mp4", ".mp4": "audio/mp4", ".webm": "audio/webm", ".mpga": "audio/mpeg"}


def synthetic_wav(seed: int, index: int, seconds: float) -> bytes:
    """A seeded speech-like WAV of exactly round(seconds x 16 kHz) samples; the same three numbers
    always give the same bytes."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, index, 0xA0D10])
    n = max(1, round(seconds * RATE_HZ))
    t = np.arange(n) / RATE_HZ
    # Pitch: a slow seeded random walk between 90 and 220 Hz (a voice's range), as phase.
    knots = rng.uniform(90, 220, size=int(seconds * 2) + 2)
    f0 = np.interp(t, np.linspace(0, t[-1] if n > 1 else 1, knots.size), knots)
    phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 9))
    # Syllables at ~4/s (a raised sine per syllable), words of 2-5 syllables, pauses between words.
    envelope = np.zeros(n)
    pos = 0.0
    while pos < seconds:
        for _ in range(int(rng.integers(2, 6))):
            length = rng.uniform(0.15, 0.3)
            a, b = int(pos * RATE_HZ), min(n, int((pos + length) * RATE_HZ))
            if a >= n:
                break
            envelope[a:b] = np.sin(np.linspace(0, np.pi, b - a)) * rng.uniform(0.5, 1.0)
            pos += length
        pos += rng.uniform(0.1, 0.4)
    signal = 0.3 * voiced * envelope + 0.005 * rng.standard_normal(n)
    pcm = np.clip(signal * 32767, -32768, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def wav_seconds(data: bytes) -> float:
    """A WAV file's duration from its header (wave.Error or EOFError when it is not one)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnframes() / w.getframerate()


def dataset_audio(ref: object, base: Path, what: str) -> tuple[bytes, str, str, float]:
    """A dataset row's audio file (a path, relative to the dataset file) as (bytes, file name,
    MIME type, seconds); DatasetError naming ``what`` and the file when it cannot be read or its
    duration cannot be known."""
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetError(f"{what}: expected an audio file path, got {ref!r}")
    path = Path(ref.strip()).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{what}: cannot read audio file {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            seconds = wav_seconds(data)
        except (wave.Error, EOFError, ZeroDivisionError) as exc:
            raise DatasetError(f"{what}: {path}: not a readable WAV file ({exc or 'truncated'})") from None
        return data, path.name, "audio/wav", seconds
    seconds = _tag_seconds(data, path, what)
    return data, path.name, MIME.get(suffix, "application/octet-stream"), seconds


def _tag_seconds(data: bytes, path: Path, what: str) -> float:
    from tinytag import TinyTag, TinyTagException

    try:
        duration = TinyTag.get(file_obj=io.BytesIO(data), tags=False, filename=str(path)).duration
    except (TinyTagException, OSError, ValueError, KeyError, IndexError) as exc:
        raise DatasetError(f"{what}: {path}: not an audio file loadtest can read ({exc or type(exc).__name__})") from None
    if not duration or duration <= 0:
        raise DatasetError(f"{what}: {path}: its duration is not in its header (RTFx needs it); convert it to WAV")
    return float(duration)
