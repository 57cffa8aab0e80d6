"""Load levels for `sweep` and `capacity`: parsing ``--concurrency 1,2,4`` / ``--request-rate
1,2,4|auto`` and spacing the automatic rates between a synchronous and a saturating probe."""

from __future__ import annotations

import argparse
import math

import numpy as np

from loadtest.errors import ConfigError
from loadtest.cli.argtypes import fraction as _fraction, positive_float as _positive, positive_int as _positive_int

AUTO_LEVELS = 10


def parse_levels(text: str, *, integer: bool, flag: str) -> list[float]:
    """'1,2,4' -> [1, 2, 4] (sorted, unique); each > 0 and finite."""
    values: list[float] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            v = float(part)
        except ValueError:
            raise ConfigError(f"{flag}: {part!r} is not a number (give a comma-separated list, e.g. 1,2,4)") from None
        if not (math.isfinite(v) and v > 0) or (integer and v != int(v)):
            raise ConfigError(f"{flag}: each level must be a {'whole number' if integer else 'finite number'} > 0, "
                              f"got {part!r}")
        values.append(int(v) if integer else v)
    if not values:
        raise ConfigError(f"{flag}: no levels given")
    return sorted(set(values))


def auto_rates(sync_rps: float, max_rps: float, n: int = AUTO_LEVELS) -> list[float]:
    """GuideLLM's sweep: ``n`` rates evenly spaced from the synchronous rate (one request at a
    time) to the saturated one (everything at once), both ends included, rounded to 3 figures."""
    if not (sync_rps > 0 and max_rps > 0):
        raise ConfigError("--request-rate auto: a probe completed no request; give the rates explicitly")
    lo, hi = min(sync_rps, max_rps), max(sync_rps, max_rps)
    return [float(f"{r:.3g}") for r in np.linspace(lo, hi, n)]


def add_level_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """--concurrency / --request-rate as levels, and how long each level runs."""
    g = p.add_mutually_exclusive_group(required=command == "sweep")
    if command == "sweep":
        g.add_argument("--concurrency", metavar="LIST", help="closed-loop levels, e.g. 1,2,4,8,16,32")
        g.add_argument("--request-rate", metavar="LIST", help="open-loop levels in requests/s, e.g. 1,2,4,8, or auto")
    else:
        g.add_argument("--by", choices=("rate", "concurrency"), default="rate",
                       help="search over the request rate (open loop, default) or the concurrency")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--num-prompts", type=_positive_int, help="measured requests per level (default: max(100, 4 x level); "
                                                        "rate levels: 10 s worth, at least 50)")
    amount.add_argument("--duration", type=_positive, help="measure each level for this many seconds instead")
    p.add_argument("--max-error-rate", type=_fraction, default=0.05, metavar="F",
                   help="a level whose failed share exceeds F counts as failing (default 0.05)")
