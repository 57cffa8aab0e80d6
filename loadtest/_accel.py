"""Which hot-path implementation runs, decided once.

The per-token work (the chunked-body decoder, the stamped-pieces buffer, the common SSE shape) is
in C in ``loadtest._speedups`` (loadtest/csrc/, built by setup.py). Without a C compiler at install
time, or with ``LOADTEST_PURE_PYTHON=1``, the pure-Python versions run: same results, ~15% more
client CPU per streamed token.
"""

from __future__ import annotations

import os
from types import ModuleType

speedups: ModuleType | None = None
if not os.environ.get("LOADTEST_PURE_PYTHON"):
    try:
        from loadtest import _speedups as speedups
    except ImportError:  # built without a C compiler
        speedups = None
