"""The sim's hosted-API limits: requests and tokens per minute answered with 429, as providers do,
with the headers clients are meant to honour (``retry-after``, ``retry-after-ms``,
``x-ratelimit-limit/remaining/reset-requests/tokens``); and ``--rate-limit-every N`` for an exact,
deterministic share of 429s in tests.

Each limit is a bucket of a minute's capacity refilled continuously (limit/60 per second): what
OpenAI documents, so a burst up to the limit passes and then the rate holds.
"""

from __future__ import annotations

import math
from time import monotonic

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import RequestError


def duration_text(seconds: float) -> str:
    """OpenAI's reset format: ``"1m30s"``, ``"6s"``, ``"250ms"``."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest = round(rest, 3)
    text = f"{int(minutes)}m" if minutes else ""
    return text + (f"{rest:g}s" if rest or not text else "")


class _Bucket:
    def __init__(self, per_minute: int) -> None:
        self.limit = per_minute
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.t = monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.t) * self.rate)
        self.t = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` fits (0 when it does now)."""
        return 0.0 if self.level >= amount else (min(amount, self.limit) - self.level) / self.rate


class ServerLimits:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.requests = _Bucket(config.rpm_limit) if config.rpm_limit else None
        self.tokens = _Bucket(config.tpm_limit) if config.tpm_limit else None
        self.seen = 0
        self.limited = 0

    def admit(self, tokens: int) -> RequestError | None:
        """Charge one request of ``tokens`` (prompt + max tokens, as providers count), or the 429
        that refuses it. Refused requests are not charged."""
        config = self.config
        self.seen += 1
        if config.rate_limit_every is not None and self.seen % config.rate_limit_every == 0:
            return self._refuse(config.retry_after_s if config.retry_after_s is not None else 1.0, "requests")
        now = monotonic()
        waits = {}
        for kind, bucket, amount in (("requests", self.requests, 1), ("tokens", self.tokens, tokens)):
            if bucket is not None:
                bucket.refill(now)
                waits[kind] = bucket.wait_s(amount)
        if any(waits.values()):
            kind = max(waits, key=waits.__getitem__)
            wait = config.retry_after_s if config.retry_after_s is not None else waits[kind]
            return self._refuse(wait, kind)
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= min(tokens, self.tokens.level)
        return None

    def _refuse(self, wait_s: float, kind: str) -> RequestError:
        self.limited += 1
        headers = {"retry-after": str(max(0, math.ceil(wait_s))), "retry-after-ms": str(round(wait_s * 1000))}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
                headers[f"x-ratelimit-remaining-{name}"] = "0" if name == kind else str(int(bucket.level))
                headers[f"x-ratelimit-reset-{name}"] = duration_text(wait_s if name == kind else 0.0)
        if self.requests is None and self.tokens is None:
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = duration_text(wait_s)
        limit = {"requests": self.config.rpm_limit, "tokens": self.config.tpm_limit}[kind]
        message = (f"Rate limit reached for {kind} per min (RPM/TPM limit {limit}). Please try again in "
                   f"{duration_text(wait_s)}." if limit else "Rate limit reached (simulated). Please try again later.")
        error = RequestError(429, message, type_=kind, code="rate_limit_exceeded")
        error.headers = headers
        return error
