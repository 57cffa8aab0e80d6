"""Load shapes. The scheduler asks a shape only how many requests may be in flight; it knows
nothing of LLMs, and a shape knows nothing of HTTP."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClosedLoop:
    """Exactly ``concurrency`` requests in flight: each finished request is replaced at once.
    ``single`` is ClosedLoop(1): requests strictly one after another."""

    concurrency: int

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
