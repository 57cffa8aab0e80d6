"""Which requests users abandon (``--cancel-rate P --cancel-after S``): real users close the tab,
and a server must stop the work it was doing for them. A share P of the requests is let go S
seconds after each was sent; the transport then really closes the connection, so the server sees
a disconnect (loadtest/transport: ``post(..., abandon_after_s=S)``).

The choice is a function of (seed, request index) alone: a keyed hash of the two, read as a number
in [0, 1), compared with P. So it does not depend on the order requests are scheduled or finish
in, nor on how a scaled-out run deals its indices to workers (indices are global), and the same
seed abandons the same requests in every run (the seed is in summary.json's config). The hash is
keyed apart from every other seeded choice (prompt order, arrivals, retry jitter), so turning
abandonment on changes nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from loadtest.config import RunConfig

_KEY = b"loadtest-abandon"
_SCALE = 1.0 / 2**64


def abandon_draw(seed: int, index: int) -> float:
    """Request ``index``'s uniform number in [0, 1) for this seed (one 8-byte keyed BLAKE2b, ~1 us)."""
    digest = hashlib.blake2b(b"%d:%d" % (seed, index), digest_size=8, key=_KEY).digest()
    return int.from_bytes(digest, "little") * _SCALE


def abandons(seed: int, index: int, rate: float) -> bool:
    """Whether request ``index`` is abandoned at --cancel-rate ``rate``: 0 never, 1 always."""
    return abandon_draw(seed, index) < rate


def abandonment(cfg: RunConfig) -> Callable[[int], float | None]:
    """index -> seconds after its start at which the client lets request ``index`` go, or None
    (it runs to its end). Without --cancel-rate every request runs to its end."""
    rate, after_s, seed = cfg.cancel_rate, cfg.cancel_after_s, cfg.seed
    if not rate:
        return lambda index: None
    delay_s = after_s if after_s is not None else 0.0
    return lambda index: delay_s if abandons(seed, index, rate) else None
