"""argparse types shared by every command: one clear message for each kind of bad value, given as
the option's own error (``loadtest: error: argument --rate: ...``) before anything runs."""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from loadtest.redact import add_secret, is_secret_name


INT_LIMIT = 2 ** 63 - 1
"""The largest integer an option takes: config.json and requests.jsonl are JSON that other tools
read as 64-bit integers (a larger one stopped the run when config.json was written)."""


def integer(text: str) -> int:
    """Any integer that fits in 64 bits (an option's plain ``type=int``, bounded)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if abs(v) > INT_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is too large (at most 2^63-1)")
    return v


def positive_int(text: str) -> int:
    v = integer(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def non_negative_int(text: str) -> int:
    v = integer(text) if text.strip().lstrip("-").isdigit() else -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return v


def finite_float(text: str) -> float:
    """A float that is a real number: nan and inf would be sent as null or overflow timers."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def non_negative_float(text: str) -> float:
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    v = finite_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return v


MIN_DURATION_S = 0.1


def duration(text: str) -> float:
    """--duration in seconds: 0.1 or more. A shorter window cannot hold a completed request's
    measurement (and a deadline of 1e-9 s passed before the first request was sent)."""
    v = positive_float(text)
    if v < MIN_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be {MIN_DURATION_S:g} s or more, got {text!r}: a shorter run "
                                         "measures nothing")
    return v


def sample_interval(text: str) -> float:
    """A sampling interval in seconds: 0.1 or more (a faster scrape would load the server it measures)."""
    v = positive_float(text)
    if v < 0.1:
        raise argparse.ArgumentTypeError(f"must be 0.1 or more, got {text}")
    return v


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    v = positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return v


def probability(text: str) -> float:
    """A share in [0, 1] (0 and 1 included)."""
    v = finite_float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text!r}")
    return v


def rate(text: str) -> float:
    """Requests/s: a positive number, or inf (every request at once)."""
    if text.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (requests/s, or inf)") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"rate must be > 0 (or inf), got {text!r}")
    return v


def seconds(text: str) -> float:
    """Seconds, with an optional unit: 5, 5s, 500ms, 2m."""
    t = text.strip().lower()
    scale = 1.0
    for suffix, k in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)], k
            break
    try:
        v = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 5, 5s, 500ms)") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"duration must be >= 0, got {text!r}")
    return v


def warmup(text: str) -> int | float:
    """--warmup: a count of requests (10) or a time (5s, 500ms): a float means seconds."""
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    if t and t[-1] in "sm":
        return seconds(t)
    raise argparse.ArgumentTypeError(f"--warmup takes a request count (10) or a time (5s), got {text!r}")


def worker_count(text: str) -> int:
    """--workers N, or auto: the cores less one (the coordinator's)."""
    if text == "auto":
        return max(1, (os.cpu_count() or 2) - 1)
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto', got {text!r}")
    return int(text)


_RAY_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


def ray_address(text: str) -> str:
    """``auto``, ``HOST:PORT`` (a cluster's GCS) or ``ray://HOST[:PORT]`` (Ray Client): anything
    else would reach Ray's own parser, which fails with an internal error or not at all."""
    if text in ("auto", "local"):
        return text
    rest = text[len("ray://"):] if text.startswith("ray://") else text
    host, sep, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not sep and text.startswith("ray://"):
        host, port = rest, "10001"
    ok = bool(host) and _RAY_HOST.match(host) is not None and port.isdigit() and 0 < int(port) < 65536
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Ray address: give auto, HOST:PORT or ray://HOST:PORT "
                                         "(an IPv6 host in brackets)")
    return text


def header(text: str) -> tuple[str, str]:
    """``'Name: value'`` (or ``Name=value``) as a (name, value) pair; the value of an auth-like name
    is registered as a secret at once, so no later line can print it."""
    sep = ":" if ":" in text else "=" if "=" in text else None
    name, value = (text.split(sep, 1) if sep else (text, ""))
    name, value = name.strip(), value.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {'a header' if is_secret_name(text) else repr(text)}")
    if is_secret_name(name):
        add_secret(value)
    if (bad := control_character(value)) is not None:  # CR/LF would inject a second header
        shown = "(secret)" if is_secret_name(name) else repr(value)
        raise argparse.ArgumentTypeError(f"header {name}: its value holds the control character {bad} (CR or LF "
                                         f"would start another header): {shown}")
    return name, value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def control_character(value: str) -> str | None:
    """The first C0 control character (tab allowed) or DEL in a header value, named (e.g.
    ``'\\r' (0x0d)``); None when there is none."""
    m = _CONTROL.search(value)
    return None if m is None else f"{m.group()!r} (0x{ord(m.group()):02x})"


def header_name(text: str) -> str:
    """A header's name: an HTTP token (RFC 9110), nothing else."""
    if not _TOKEN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a header name (letters, digits and !#$%&'*+-.^_`|~), got {text!r}")
    return text


MAX_SIZE_TOKENS = 10_000_000
"""The most tokens a prompt or a reply of ``tokens`` asks for: past any model's context (the
longest, 10M), and a prompt that size is built in memory before it is sent."""


def sizes(text: str) -> list[int]:
    """'16,128,512' -> [16, 128, 512] (sorted, unique), each 1 .. MAX_SIZE_TOKENS; an empty item
    ('16,,128') is a typo, refused rather than skipped."""
    parts = [x.strip() for x in text.split(",")]
    try:
        values = sorted({int(x) for x in parts})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts (e.g. 16,128), got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"token counts must be >= 1, got {text!r}")
    if values[-1] > MAX_SIZE_TOKENS:
        raise argparse.ArgumentTypeError(f"token counts must be at most {MAX_SIZE_TOKENS:,} (longer than any "
                                         f"model's context), got {values[-1]}")
    return values


_IMAGE_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def image_size(text: str) -> tuple[int, int]:
    """``WxH`` in pixels, each side 1..8192 (a larger synthetic image is not a request a server takes)."""
    m = _IMAGE_SIZE.match(text)
    if not m or not (1 <= int(m.group(1)) <= 8192 and 1 <= int(m.group(2)) <= 8192):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each 1..8192 pixels (e.g. 512x512), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def output_dir(text: str) -> Path:
    """--output DIR: not empty (that was the current directory) and not a filesystem root (a run's
    files were written into /)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a directory for the results (e.g. results/run1)")
    path = Path(text).expanduser()
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise argparse.ArgumentTypeError(f"{text!r} is the filesystem root: name a directory for the results")
    return path


def input_path(text: str) -> Path:
    """A file or directory to read (RUN_DIR, BASELINE, DIR, FILE, --resume): not empty, which
    Path('') reads as the current directory (``report ''`` reported whatever run was there)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a file or directory")
    return Path(text).expanduser()


def output_file(text: str) -> Path:
    """--output FILE of a report or a comparison: not empty, not a directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a file to write")
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: name a file to write")
    return path


def wandb_project(text: str) -> str:
    """--wandb PROJECT: a name, and the wandb package there to log to it. Checked when the options
    are read (without importing it), not after the whole run has been measured."""
    import importlib.util

    if not text.strip():
        raise argparse.ArgumentTypeError("needs a W&B project name")
    if importlib.util.find_spec("wandb") is None:
        raise argparse.ArgumentTypeError("needs the wandb package: pip install wandb (or leave --wandb out)")
    return text
