"""A deterministic OpenAI-compatible streaming server with known timing, to check the client against.

Token i of a reply is due at receipt + ttft + i*tpot and reads " tok{i}"; ``/sim/stats`` reports what
was sent and when, on the CLOCK_MONOTONIC clock the client also uses. The server itself
(``loadtest.sim.server``) needs httptools and is imported only where it runs.
"""

from typing import Any

__all__ = ["SimConfig", "SimProcess", "start_sim"]


def __getattr__(name: str) -> Any:
    """``from loadtest.sim import SimProcess`` without loading the process machinery when only the
    config is needed (the CLI's parser reads SimConfig's defaults)."""
    if name == "SimConfig":
        from loadtest.sim.config import SimConfig

        return SimConfig
    if name in ("SimProcess", "start_sim"):
        from loadtest.sim import process

        return getattr(process, name)
    raise AttributeError(f"module 'loadtest.sim' has no attribute {name!r}")
