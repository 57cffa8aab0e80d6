"""The client's own CPU over a run's measured phase: the known overhead of what was measured
(summary.json ``run.client_cpu_*``), and the span it was counted over, which the verdict divides by
(an interrupted or aborted run's window ends long before the CPU clock stops)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

try:
    import resource
except ImportError:  # Windows: the user/system split is then not measured
    resource = None  # type: ignore[assignment]


def _rusage() -> Any:
    return resource.getrusage(resource.RUSAGE_SELF) if resource is not None else None


@dataclass
class ClientCpu:
    """``begin()`` as the measured phase starts, ``end()`` once its records are interpreted (that
    interpreting is part of the client's cost). Fields stay None when the phase never began."""

    startup_s: float | None = None
    """Process CPU before the measured phase (imports, prompts, connections): reported apart, so a
    short run's fixed cost is not read as a per-token one."""
    cpu_s: float | None = None
    span_s: float | None = None
    split: tuple[float, float] | None = None
    """(user, system) seconds: the system share is mostly the kernel's per-token socket reads, what
    no user-space speed-up can remove."""
    _cpu0: float = 0.0
    _wall0_ns: int = 0
    _rusage0: Any = None

    def begin(self) -> None:
        self.startup_s = self._cpu0 = time.process_time()
        self._wall0_ns = perf_counter_ns()
        self._rusage0 = _rusage()

    def end(self) -> None:
        self.cpu_s = time.process_time() - self._cpu0
        self.span_s = (perf_counter_ns() - self._wall0_ns) / 1e9
        after = _rusage()
        if self._rusage0 is not None and after is not None:
            self.split = after.ru_utime - self._rusage0.ru_utime, after.ru_stime - self._rusage0.ru_stime
