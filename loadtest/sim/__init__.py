"""A deterministic OpenAI-compatible streaming server with known timing, to check the client against.

Token i of a reply is due at receipt + ttft + i*tpot and reads " tok{i}"; ``/sim/stats`` reports what
was sent and when, on the CLOCK_MONOTONIC clock the client also uses. The server itself
(``loadtest.sim.server``) needs httptools and is imported only where it runs.
"""

from loadtest.sim.config import SimConfig, add_arguments, config_from_args
from loadtest.sim.process import SimProcess, start_sim

__all__ = ["SimConfig", "SimProcess", "add_arguments", "config_from_args", "start_sim"]
