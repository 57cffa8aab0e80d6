"""Before a run: enough open files for the connections it will hold, and enough cores for the
worker processes it will start. Each says so in one line, before anything starts.

Open files: every connection in flight is one file descriptor. A run that needs more than the
soft limit (``ulimit -n``, often 1,024) used to fail request by request with "Too many open files"
and a sampling thread's traceback. The soft limit may be raised to the hard limit by any process,
so it is (said in one line): refusing would only make the user type ``ulimit -n`` for what the
process can do itself. Past the hard limit the run cannot hold its connections: refused, with the
hint. A run whose in-flight count is not known ahead (an open loop without --max-concurrency) is
not checked; if it runs out, its failed requests say ``client_limit`` and name the limit.
"""

from __future__ import annotations

import math
import os

try:
    import resource
except ImportError:  # Windows: no rlimits to check
    resource = None  # type: ignore[assignment]

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.scheduler import phases

WORKER_START_CPU_S = 0.4
"""CPU a spawned worker spends before it is ready (interpreter, imports): measured 0.39 s."""
FD_RESERVE = 64
"""Descriptors a run holds besides its connections: stdio, requests.jsonl and the chunk-text side
file, the event loop's epoll and timerfd, /proc reads of the host sampler, the /metrics sampler's
pipes, a tokenizer's files, a scale-out coordinator's pipes to its workers (2 per worker, added)."""


def connections_needed(cfg: RunConfig) -> int | None:
    """Connections the run holds at most at once (None: not known ahead, an uncapped open loop)."""
    if not phases.is_open(cfg):
        return cfg.concurrency
    if cfg.max_concurrency:
        return cfg.max_concurrency
    if cfg.request_rate is not None and math.isinf(cfg.request_rate) and cfg.num_prompts:
        return cfg.num_prompts + cfg.warmup  # all at once
    return None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ensure_open_files(cfg: RunConfig, *, workers: int = 1) -> str | None:
    """Raise the soft open-file limit to what the run needs (at most the hard limit) and return the
    line that says so; ConfigError when even the hard limit is too low; None when nothing to do."""
    n = connections_needed(cfg)
    if n is None or resource is None:
        return None
    per_process = max(math.ceil(n / workers), 2 * workers if workers > 1 else 0) + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or per_process <= soft:
        return None
    what = (f"--max-concurrency {cfg.max_concurrency}" if cfg.max_concurrency and phases.is_open(cfg)
            else f"--concurrency {cfg.concurrency}" if not phases.is_open(cfg)
            else f"--request-rate inf with {n:,} requests at once")
    share = f" per worker process ({n:,} over {workers} workers)" if workers > 1 else ""
    if hard != resource.RLIM_INFINITY and per_process > hard:
        raise ConfigError(f"{what} needs about {per_process:,} open files{share} (one per connection + "
                          f"{FD_RESERVE}); this process may open at most {hard:,} (hard limit): raise it "
                          f"(ulimit -n {per_process}, as root or in /etc/security/limits.conf) or lower the concurrency")
    resource.setrlimit(resource.RLIMIT_NOFILE, (per_process, hard))  # inherited by spawned workers
    return f"raised the open-file limit (ulimit -n) from {soft:,} to {per_process:,} for {what}{share}"


def worker_warning(workers: int) -> str | None:
    """--workers over the usable cores: each worker is a Python process that takes ~0.4 s of CPU
    to start (imports) and a core to run; more workers than cores only queue for them. A warning,
    not a refusal: a run that wants to measure exactly that may."""
    cores = usable_cores()
    if workers <= cores:
        return None
    return (f"--workers {workers} on {cores} usable cores: each worker is a Python process (about "
            f"{WORKER_START_CPU_S:g} s of CPU to start: ~{workers * WORKER_START_CPU_S / cores:.0f} s before the "
            f"first request here) and needs a core of its own to keep up; use --workers auto "
            f"({max(1, cores - 1)} here) or fewer")
