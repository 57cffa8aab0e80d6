"""Service-level objectives: parse ``--slo``, judge each request and the run, and count goodput.

Two kinds (the issue's, and DistServe's goodput): a per-request objective ``ttft=0.5`` is met by a
request whose own ttft_s <= 0.5 s; goodput counts the completed measured requests that met every
per-request objective, per minute of the window. A run-level objective ``ttft:p99=0.5`` (also
written ``ttft_p99=500ms``) is checked on the run's statistic. A run *meets* its SLOs when every
run-level objective holds and at least ``attainment`` of its requests met the per-request ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtest.errors import ConfigError

METRICS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "itl": "itl_s", "queue": "queue_s"}
PER_REQUEST = ("ttft_s", "tpot_s", "e2e_s", "queue_s")
STATS = ("mean", "p50", "p90", "p95", "p99", "max")
DEFAULT_ATTAINMENT = 0.9
_ITEM = re.compile(r"^\s*(?P<metric>[a-z][a-z0-9]*)(?:[:_](?P<stat>mean|max|p\d{2}))?\s*=\s*(?P<value>[0-9.eE+-]+)\s*(?P<unit>ms|s)?\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    """A record field (ttft_s, tpot_s, e2e_s, queue_s; itl_s only run-level)."""
    limit_s: float
    stat: str | None = None
    """None: per request. Else a statistic of the run (p99, mean...)."""

    @property
    def label(self) -> str:
        name = self.metric.removesuffix("_s")
        return f"{self.stat} {name}" if self.stat else name

    def text(self) -> str:
        value = f"{self.limit_s * 1e3:g} ms" if self.limit_s < 1 else f"{self.limit_s:g} s"
        return f"{self.label} <= {value}"


def parse(items: Iterable[str] | None) -> list[Objective]:
    """``--slo`` values (repeatable, comma-separated): ttft=0.5, tpot=50ms, ttft:p99=0.5, ttft_p99=0.5s."""
    out: list[Objective] = []
    for item in items or ():
        for part in filter(None, (p.strip() for p in item.split(","))):
            m = _ITEM.match(part.lower())
            if not m or m["metric"] not in METRICS:
                raise ConfigError(f"--slo {part!r}: expected METRIC=SECONDS or METRIC:pNN=SECONDS with METRIC one of "
                                  f"{', '.join(METRICS)} (e.g. ttft=0.5, tpot=50ms, ttft:p99=0.5)")
            stat = m["stat"]
            if stat is not None and stat not in STATS:
                raise ConfigError(f"--slo {part!r}: statistic must be one of {', '.join(STATS)}")
            try:
                value = float(m["value"]) * (1e-3 if m["unit"] == "ms" else 1.0)
            except ValueError:
                raise ConfigError(f"--slo {part!r}: {m['value']!r} is not a number") from None
            if not value > 0 or value == float("inf"):
                raise ConfigError(f"--slo {part!r}: the limit must be a finite number > 0")
            metric = METRICS[m["metric"]]
            if stat is None and metric not in PER_REQUEST:
                raise ConfigError(f"--slo {part!r}: {m['metric']} has no per-request value; give a statistic "
                                  f"({m['metric']}:p99=...)")
            out.append(Objective(metric, value, stat))
    return out


def request_ok(row: dict[str, Any], objectives: list[Objective]) -> bool:
    """A completed request met every per-request objective (a value not measured does not meet one)."""
    if not row.get("ok"):
        return False
    for o in objectives:
        if o.stat is None:
            v = row.get(o.metric)
            if v is None or v > o.limit_s:
                return False
    return True


def evaluate(summary: dict[str, Any], rows_path: Path, objectives: list[Objective], *,
             attainment: float = DEFAULT_ATTAINMENT) -> dict[str, Any]:
    """The slo block of summary.json: each objective's verdict, goodput, and whether the run met them."""
    per_request = [o for o in objectives if o.stat is None]
    good = measured = 0
    with open(rows_path, "rb") as fh:
        for line in fh:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line a crash cut short
            if row.get("warmup") or row.get("error_kind") in ("cancelled", "abandoned"):
                continue  # stopped by the run, or let go by the user (--cancel-rate): neither good nor bad
            measured += 1
            good += request_ok(row, per_request)
    window = summary["metrics"].get("window_s")
    checks = []
    for o in objectives:
        if o.stat is None:
            continue
        value = (summary["metrics"].get(o.metric) or {}).get(o.stat)
        checks.append({"objective": o.text(), "metric": o.metric, "stat": o.stat, "limit_s": o.limit_s,
                       "value_s": value, "met": value is not None and value <= o.limit_s})
    fraction = good / measured if measured else None
    attained = not per_request or (fraction is not None and fraction >= attainment)
    return {
        "objectives": [o.text() for o in objectives],
        "per_request": [o.text() for o in per_request],
        "run_level": checks,
        "good_requests": good if per_request else None,
        "good_fraction": fraction if per_request else None,
        "attainment_target": attainment if per_request else None,
        "goodput_requests_per_s": good / window if per_request and window else None,
        "goodput_requests_per_min": good / window * 60 if per_request and window else None,
        "met": attained and all(c["met"] for c in checks) and measured > 0,
    }


def line(block: dict[str, Any]) -> str:
    """One console line: met or not, and why."""
    parts = [f"{c['objective']} ({'-' if c['value_s'] is None else format(c['value_s'] * 1e3, '.1f') + ' ms'})"
             + ("" if c["met"] else " MISSED") for c in block["run_level"]]
    if block["per_request"]:
        frac = block["good_fraction"]
        parts.append(f"{'-' if frac is None else format(frac * 100, '.1f')}% of requests met "
                     f"{' and '.join(block['per_request'])} (target {block['attainment_target'] * 100:g}%); "
                     f"goodput {(block['goodput_requests_per_min'] or 0):,.1f} req/min")
    return ("SLOs met: " if block["met"] else "SLOs NOT met: ") + "; ".join(parts)
