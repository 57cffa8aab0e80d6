"""The load-shape options of `throughput`, `sweep` and `capacity` (--request-rate, --arrival,
--max-concurrency, --ramp-up, --warmup 5s, --cooldown): parsed here so cli.py gains one call."""

from __future__ import annotations

import argparse
import math
from typing import Any

from loadtest.cli.argtypes import (fraction as _fraction, positive_float as _positive_float,
                                   positive_int as _positive_int)
from loadtest.errors import ConfigError
from loadtest.scheduler.shapes import ARRIVALS


def parse_rate(text: str) -> float:
    """Requests/s: a positive number, or inf (every request at once)."""
    if text.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (requests/s, or inf)") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"rate must be > 0 (or inf), got {text!r}")
    return v


def parse_seconds(text: str) -> float:
    """Seconds, with an optional unit: 5, 5s, 500ms, 2m."""
    t = text.strip().lower()
    scale = 1.0
    for suffix, k in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)], k
            break
    try:
        v = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 5, 5s, 500ms)") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"duration must be >= 0, got {text!r}")
    return v


def parse_warmup(text: str) -> int | float:
    """--warmup: a count of requests (10) or a time (5s, 500ms): a float means seconds."""
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    if t and t[-1] in "sm":
        return parse_seconds(t)
    raise argparse.ArgumentTypeError(f"--warmup takes a request count (10) or a time (5s), got {text!r}")


def add_load_arguments(p: argparse.ArgumentParser, *, command: str = "throughput") -> None:
    g = p.add_argument_group("load shape (open loop: requests start at a rate, whatever is in flight)")
    if command == "throughput":
        g.add_argument("--request-rate", type=parse_rate, metavar="R",
                       help="requests/s (inf: all at once); replaces --concurrency's closed loop")
    g.add_argument("--arrival", choices=ARRIVALS, default="poisson",
                   help="gaps between starts under --request-rate: poisson (default), constant, gamma")
    g.add_argument("--burstiness", type=_positive_float, default=1.0,
                   help="gamma shape k, the rate kept (vLLM's): CV = 1/sqrt(k); 1 = Poisson, < 1 burstier")
    g.add_argument("--max-concurrency", type=_positive_int, metavar="N",
                   help="cap on requests in flight under --request-rate; a request waiting for a slot records queue_s")
    g.add_argument("--ramp-up", type=parse_seconds, default=0.0, metavar="S",
                   help="rise linearly to the rate (or concurrency) over S seconds")
    g.add_argument("--cooldown", type=parse_seconds, default=0.0, metavar="S",
                   help="with --duration: keep the load S more seconds, requests started then left out")
    g.add_argument("--slo", action="append", metavar="SPEC",
                   help="objective, repeatable or comma-separated: ttft=0.5 (per request, seconds), tpot=50ms, "
                        "ttft:p99=0.5 (run-level); adds goodput to the summary")
    g.add_argument("--slo-attainment", type=_fraction, default=0.9, metavar="F",
                   help="share of requests that must meet the per-request objectives (default 0.9)")
    g.add_argument("--allow-client-bound", action="store_true",
                   help="sweep: go on when the verdict says the client limited the load (a run only reports it)")
    if command == "sweep":
        g.add_argument("--no-early-stop", action="store_true", help="run every level, even past saturation")


def load_fields(ns: argparse.Namespace, *, duration_s: float | None) -> dict[str, Any]:
    """RunConfig fields from the parsed load options; ConfigError on a combination that cannot work."""
    from loadtest.judge.slo import parse as parse_slos

    parse_slos(getattr(ns, "slo", None))  # bad objectives: one line before anything runs
    rate = getattr(ns, "request_rate", None)
    warmup = ns.warmup
    warmup_s = float(warmup) if isinstance(warmup, float) else None
    cooldown = getattr(ns, "cooldown", 0.0)
    if rate is None:
        for flag, value in (("--max-concurrency", getattr(ns, "max_concurrency", None)),):
            if value is not None:
                raise ConfigError(f"{flag} needs --request-rate (a closed loop's cap is --concurrency)")
        if getattr(ns, "arrival", "poisson") != "poisson" or getattr(ns, "burstiness", 1.0) != 1.0:
            raise ConfigError("--arrival and --burstiness need --request-rate")
    if getattr(ns, "burstiness", 1.0) != 1.0 and getattr(ns, "arrival", "poisson") != "gamma":
        raise ConfigError("--burstiness applies to --arrival gamma")
    if (warmup_s is not None or cooldown) and duration_s is None:
        raise ConfigError("--warmup in seconds and --cooldown need --duration (the phases are times around it)")
    if rate is not None and duration_s is not None and isinstance(warmup, int) and warmup:
        raise ConfigError("with --request-rate and --duration give --warmup as a time (e.g. --warmup 5s)")
    if getattr(ns, "resume", None) is not None and (rate is not None or warmup_s is not None or cooldown):
        raise ConfigError("--resume continues closed-loop runs only (not --request-rate, --warmup 5s, --cooldown)")
    return {"request_rate": rate, "arrival": getattr(ns, "arrival", "poisson"),
            "burstiness": getattr(ns, "burstiness", 1.0), "max_concurrency": getattr(ns, "max_concurrency", None),
            "ramp_up_s": getattr(ns, "ramp_up", 0.0), "warmup_s": warmup_s, "cooldown_s": cooldown,
            "warmup": 0 if warmup_s is not None else int(warmup)}
