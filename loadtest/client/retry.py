"""When to try a rate-limited request again: the provider's own word (``Retry-After``,
``retry-after-ms``, ``x-ratelimit-reset-requests/tokens``) when it gives one, else a capped
exponential backoff with seeded jitter (so two runs with one seed wait alike)."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from loadtest.transport import Exchange

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float | None:
    """OpenAI's reset durations (``"1m30s"``, ``"250ms"``, ``"6.5s"``) or plain seconds, in seconds."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        value = float(text)
        return value if value >= 0 else None
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date (RFC 9110), as seconds from now (>= 0)."""
    value = value.strip()
    try:
        seconds = float(value)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def provider_delay_s(headers: dict[str, str] | None) -> float | None:
    """How long the provider asks us to wait, from its headers; None when it does not say.
    ``retry-after-ms`` (finer) wins over ``retry-after``; without either, the reset time of the
    exhausted limit (requests or tokens; the later one when it is not said which)."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None and (v := parse_duration(ms)) is not None:
        return v / 1000
    if (ra := headers.get("retry-after")) is not None and (v := parse_retry_after(ra)) is not None:
        return v
    resets = {}
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        if reset is not None and (v := parse_duration(reset)) is not None:
            resets[kind] = v
    exhausted = [v for kind, v in resets.items() if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0"]
    chosen = exhausted or list(resets.values())
    return max(chosen) if chosen else None


@dataclass
class RetryPolicy:
    """Which answers are retried and after how long. ``max_retries`` 0 is --no-retry."""

    max_retries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @staticmethod
    def rate_limited(ex: Exchange) -> bool:
        """A 429, Anthropic's 529 (overloaded: the provider asks to come back later, as with a 429),
        or a 503 that says when to come back: the provider's limit, not a failure."""
        if ex.error_kind is not None:
            return False
        if ex.status == 429 or ex.status == 529:
            return True
        return ex.status == 503 and bool(ex.limit_headers) and provider_delay_s(ex.limit_headers) is not None

    @staticmethod
    def said_s(ex: Exchange) -> float | None:
        """The wait the provider asked for, uncapped (None: it did not say)."""
        return provider_delay_s(ex.limit_headers)

    def delay_s(self, ex: Exchange, retry: int) -> float:
        """Wait before retry number ``retry`` (1-based): the provider's delay when it gives one,
        else base * 2^(retry-1), capped, times a seeded jitter in [0.5, 1)."""
        given = provider_delay_s(ex.limit_headers)
        if given is not None:
            return min(given, self.cap_s * 10)  # a provider asking for > 10 minutes is not waited for blindly
        backoff = min(self.cap_s, self.base_s * 2 ** (retry - 1))
        return backoff * (0.5 + 0.5 * self._rng.random())
