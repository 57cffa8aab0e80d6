"""A side of a comparison: one run directory, or a repeat group (a directory of rep-1..N runs).

A group is recognised by its rep-* subdirectories alone, whatever summary the group itself has, so
groups written by any version compare. Settings are read defensively: a summary written by an
older version that does not record a setting is "not recorded", never a difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.compare.foreign import Foreign, NotForeign, load_shape, read_foreign
from loadtest.compare.metrics import RUN_RATES, Metric
from loadtest.errors import ConfigError
from loadtest.measure.record import ABANDONED, CANCELLED
from loadtest.report.load import SavedRun, dig, load_run

REP = re.compile(r"rep-(\d+)")

# What must be equal for a difference to mean something: (name, where in summary.json).
SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("command", ("command",)),
    ("api", ("config", "api")),
    ("stream", ("config", "stream")),
    ("dataset", ("config", "dataset")),
    ("prompt_tokens", ("config", "prompt_tokens")),
    ("max_tokens", ("config", "max_tokens")),
    ("ignore_eos", ("config", "ignore_eos")),
    ("temperature", ("config", "temperature")),
    ("concurrency", ("config", "concurrency")),
    ("request_rate", ("config", "request_rate")),
    ("arrival", ("config", "arrival")),
    ("burstiness", ("config", "burstiness")),
    ("max_concurrency", ("config", "max_concurrency")),
    ("ramp_up_s", ("config", "ramp_up_s")),
    ("turns", ("config", "turns")),
    ("tools", ("config", "tools")),
    ("trace", ("config", "trace")),
    ("cancel_rate", ("config", "cancel_rate")),
    ("seed", ("config", "seed")),
    ("loadtest version", ("client", "loadtest_version")),
)
VARIED = "varied"
"""A group's seed when its repeats used different seeds (a new sample each time)."""
CONTAMINATING = ("client_bound", "disturbed", "server_saturated", "schedule_missed")


@dataclass
class Side:
    """What one side holds: its runs (one, or a group's repeats in order) and what was left out."""

    role: str                 # "baseline" or "candidate"
    path: Path
    runs: list[SavedRun]
    group: bool
    left_out: list[str] = field(default_factory=list)  # repeats without a summary.json
    stopped: list[str] = field(default_factory=list)  # repeats a signal stopped: partial, never a measurement
    interrupted: str | None = None  # why this side as a whole is not a full measurement (a signal stopped it)
    foreign: Foreign | None = None  # another tool's result (compare/foreign.py)

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def tool(self) -> str:
        return self.foreign.tool if self.foreign else "loadtest"

    @property
    def definitions(self) -> list[str]:
        """How this side's metrics are defined differently from loadtest's, one line each."""
        return self.foreign.definitions if self.foreign else []

    def describe(self) -> str:
        if self.foreign:
            return f"{self.path} ({self.tool} result, {len(self.runs[0].records):,} requests)"
        what = f"{len(self.runs)} repeats" if self.group else "1 run"
        return f"{self.path} ({what}, {sum(len(r.records) for r in self.runs):,} requests)"

    def setting(self, name: str) -> Any:
        """The setting's value on this side: None when no run recorded it; VARIED for a seed that
        differs among the repeats; a ' | '-joined list for any other that does (it should not)."""
        path = dict(SETTINGS)[name]
        values = []
        for r in self.runs:
            v = dig(r.summary, *path)
            v = str(v) if isinstance(v, (dict, list)) else v
            if v is not None and v not in values:
                values.append(v)
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return VARIED if name == "seed" else " | ".join(map(str, values))

    def contamination(self) -> list[str]:
        """Runs whose own verdict says their numbers are not to be trusted, each with why."""
        out = [f"interrupted ({self.interrupted})"] if self.interrupted else []
        for r in self.runs:
            v = r.summary.get("verdict")
            if not isinstance(v, dict):
                continue
            labels = [name for name in CONTAMINATING if v.get(name)]
            if labels:
                who = f"{r.label}: " if self.group else ""
                reasons = "; ".join(str(x) for x in v.get("reasons") or [])
                out.append(f"{who}{', '.join(labels)}" + (f" ({reasons})" if reasons else ""))
        return out

    @cached_property
    def samples(self) -> Samples:
        return Samples.of(self.runs)


def _foreign_side(path: Path, role: str) -> Side:
    try:
        f = read_foreign(path)
    except NotForeign as exc:
        raise ConfigError(f"{role} {exc}") from None
    if not f.run.records:
        raise ConfigError(f"{role} {path}: a {f.tool} result with no requests in it")
    return Side(role, path, [f.run], group=False, foreign=f)


def load_side(path: Path, role: str) -> Side:
    """A run directory, a repeat group, or another tool's result (compare/foreign.py: told by
    content), or one ConfigError line saying what the path is not."""
    if not path.exists():
        raise ConfigError(f"{role} {path}: no such file or directory")
    if path.is_file():
        if path.name != "summary.json":
            return _foreign_side(path, role)
        path = path.parent
    reps = sorted((d for d in path.iterdir() if d.is_dir() and REP.fullmatch(d.name)),
                  key=lambda d: int(REP.fullmatch(d.name).group(1)))  # type: ignore[union-attr]
    if reps:
        finished = [load_run(d, path) for d in reps if (d / "summary.json").is_file()]
        done = [r for r in finished if not _stopped(r.summary)]
        stopped = [r.path.name for r in finished if _stopped(r.summary)]
        if not done:
            raise ConfigError(f"{role} {path}: a repeat group with no finished repeat " + (
                f"({', '.join(stopped)} interrupted by a signal: partial, not a measurement)" if stopped
                else "(no rep-*/summary.json)"))
        group = load_run(path) if (path / "summary.json").is_file() else None
        interrupted = None
        if stopped or (group is not None and dig(group.summary, "repeat", "interrupted")):
            n = dig(group.summary, "repeat", "n") if group is not None else None
            interrupted = (f"{len(done)}{f' of {n}' if n else ''} repeats completed" + (
                f"; {', '.join(stopped)} stopped by a signal, left out" if stopped else ""))
        return Side(role, path, done, group=True, left_out=[d.name for d in reps if not (d / "summary.json").is_file()],
                    stopped=stopped, interrupted=interrupted)
    if (path / "summary.json").is_file():
        run = load_run(path)
        why = f"stopped by a signal after {len(run.records):,} requests" if _stopped(run.summary) else None
        return Side(role, path, [run], group=False, interrupted=why)
    return _foreign_side(path, role)


def _stopped(summary: dict[str, Any]) -> bool:
    """A run a signal stopped: what it measured is partial (ended early, its last requests cut)."""
    return dig(summary, "run", "ended") == "interrupted"


FOREIGN_SETTINGS = ("model", "num_prompts", "load", "output_tokens")
OUTPUT_TOKENS_TOLERANCE = 0.05
"""Medians of output tokens per request within 5% of each other are the same workload (a model
stopping on its own varies a little from run to run)."""


def _foreign_setting(side: Side, name: str) -> Any:
    """What a side says of a setting another tool can record too; None when it does not say."""
    if name == "output_tokens":
        v = [r.get("completion_tokens") for run in side.runs for r in run.ok_records]
        v = [x for x in v if isinstance(x, (int, float))]
        return float(np.median(v)) if v else None
    if side.foreign:
        return side.foreign.settings.get(name)
    if name == "model":
        return None if (m := side.runs[0].model) == "-" else m
    if name == "num_prompts":
        return dig(side.runs[0].summary, "config", "num_prompts")
    cfg = dig(side.runs[0].summary, "config", default={})
    rate, cap = cfg.get("request_rate"), cfg.get("max_concurrency")
    if rate is None:
        return load_shape(None, cfg.get("concurrency")) if cfg.get("concurrency") else None
    return load_shape(rate, cap)


def _foreign_differences(baseline: Side, candidate: Side) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    differ, unknown = [], []
    for name in FOREIGN_SETTINGS:
        b, c = _foreign_setting(baseline, name), _foreign_setting(candidate, name)
        if b is None or c is None:
            unknown.append(name)
        elif name == "output_tokens":
            if abs(c - b) > OUTPUT_TOKENS_TOLERANCE * max(abs(b), abs(c)):
                differ.append(("output tokens per request (median)", f"{b:g}", f"{c:g}"))
        elif str(b) != str(c):
            differ.append((name, b, c))
    for side in (baseline, candidate):
        if side.foreign:
            unknown += [n for n in side.foreign.not_recorded if n not in unknown]
    return differ, unknown


def differences(baseline: Side, candidate: Side) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """(settings whose values differ, with both values; settings only one side recorded). With
    another tool's result on a side, what both can record: the model, the number of prompts, the
    load and the output length."""
    if baseline.foreign or candidate.foreign:
        return _foreign_differences(baseline, candidate)
    differ, unknown = [], []
    for name, _ in SETTINGS:
        b, c = baseline.setting(name), candidate.setting(name)
        if b is None and c is None:
            continue
        if b is None or c is None:
            unknown.append(name)
        elif b != c:
            differ.append((name, b, c))
    return differ, unknown


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def run_rate(run: SavedRun, m: Metric) -> float | None:
    """A run-level metric of one run: goodput from the slo block, the others from metrics."""
    if m.name == "goodput_requests_per_min":
        return dig(run.summary, "slo", "goodput_requests_per_min")
    return run.metric(m.name, m.stat)


REQUEST_FIELDS = ("ttft_s", "tpot_s", "e2e_s", "tokens_per_s", "rtfx")


@dataclass
class RunSamples:
    """One run's per-request values: completed requests' latencies (NaN where not measured), the
    failed indicator over the requests that counted (not cancelled, not abandoned), and per-token
    ITL with the index of the request each value belongs to."""

    request: dict[str, np.ndarray]
    failed: np.ndarray
    itl: np.ndarray
    itl_weight: np.ndarray
    itl_request: np.ndarray
    requests_with_itl: int


def run_samples(run: SavedRun) -> RunSamples:
    ok = run.ok_records
    request = {f: np.array([_num(r.get(f)) for r in ok]) for f in REQUEST_FIELDS}
    counted = [r for r in run.records if r.get("ok") or r.get("error_kind") not in (CANCELLED, ABANDONED)]
    failed = np.array([0.0 if r.get("ok") else 1.0 for r in counted])
    values, weights, owner = [], [], []
    n = 0
    for r in ok:
        offsets, tokens = r.get("chunk_offsets_s"), r.get("chunk_tokens")
        if not isinstance(offsets, list) or not isinstance(tokens, list) or len(offsets) < 2 \
                or len(tokens) != len(offsets):
            continue
        gaps = np.diff(np.asarray(offsets, dtype=float))
        k = np.asarray(tokens[1:], dtype=float)
        keep = k > 0
        if not keep.any():
            continue
        values.append(gaps[keep] / k[keep])  # a chunk's gap shared by its tokens (itl_s's definition)
        weights.append(k[keep])
        owner.append(np.full(int(keep.sum()), n))
        n += 1

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0)

    return RunSamples(request, failed, cat(values), cat(weights), cat(owner).astype(np.int64), n)


@dataclass
class Samples:
    """A side's per-request values, run by run, and each run's run-level figures."""

    runs: list[RunSamples]
    rates: dict[str, list[float]]   # per run, by the metric's key; NaN where a run does not have it

    @staticmethod
    def of(runs: list[SavedRun]) -> Samples:
        rates = {m.key: [_num(run_rate(r, m)) for r in runs] for m in RUN_RATES}
        return Samples([run_samples(r) for r in runs], rates)

    def pooled(self, name: str) -> np.ndarray:
        v = np.concatenate([s.request[name] for s in self.runs]) if self.runs else np.empty(0)
        return v[np.isfinite(v)]

    @property
    def failed(self) -> np.ndarray:
        return np.concatenate([s.failed for s in self.runs]) if self.runs else np.empty(0)

    def itl(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """(values, weights, request index numbered across runs, requests per run)."""
        offsets = np.cumsum([0] + [s.requests_with_itl for s in self.runs])[:-1]
        return (np.concatenate([s.itl for s in self.runs]), np.concatenate([s.itl_weight for s in self.runs]),
                np.concatenate([s.itl_request + o for s, o in zip(self.runs, offsets)]).astype(np.int64),
                [s.requests_with_itl for s in self.runs])
