"""Continuing an interrupted or crashed run (``--resume DIR``) from its records.

A run writes its config to ``config.json`` before the first request, so a crashed run can be
checked too. Resuming needs the same options (output-only ones aside); the prompts already done
(a row that is not ``cancelled`` or ``connect``) are skipped in the same seeded order, so request
ids stay the positions in that order and the file keeps exactly one row per request. Rows of
requests that never reached a server (cancelled by the stop, or refused: the server was gone) and a
last line a crash cut short are dropped before the run continues: those requests run again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.config import RunConfig
from loadtest.errors import ConfigError

CONFIG_FILE = "config.json"
# Requests that never reached a server (refused, cancelled by the stop): they are sent again.
_REDONE = ("cancelled", "connect")
# Options that say where results go or how loudly, not what is measured; and the endpoint, which
# changes when the server is restarted on another port (--launch always picks a free one).
_NOT_COMPARED = ("output_dir", "quiet", "base_url")


@dataclass
class ResumePlan:
    todo: list[int] | None = None
    """Count runs being resumed: the request ids (positions in the seeded order) still to run."""
    next_index: int = 0
    """Duration runs: the first position to run (fresh runs: after the warm-up)."""
    remaining_s: float | None = None
    """Duration runs being resumed: what is left of --duration."""
    pieces: list[dict[str, Any]] = field(default_factory=list)
    """The earlier pieces of a resumed run: started_at, ended, window_s, requests."""


def _comparable(cfg_json: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg_json.items() if k not in _NOT_COMPARED}


def start(directory: Path, cfg: RunConfig) -> ResumePlan:
    """A fresh run: write its config so that it can be resumed after a crash."""
    (directory / CONFIG_FILE).write_bytes(orjson.dumps(_comparable(cfg.to_json()), option=orjson.OPT_INDENT_2))
    return ResumePlan(next_index=cfg.warmup)


def remove_empty_run(directory: Path) -> None:
    """Undo a start that measured nothing (the endpoint was unreachable...): no empty run is left."""
    # server_metrics.jsonl: a scrape of a run that measured nothing (a /models that stalled left it, empty)
    for name in ("requests.jsonl", CONFIG_FILE, "server_metrics.jsonl"):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()  # only when nothing else is in it


def plan_resume(directory: Path, cfg: RunConfig) -> ResumePlan:
    saved_path = directory / CONFIG_FILE
    if not saved_path.is_file():
        raise ConfigError(f"--resume {directory}: no {CONFIG_FILE} there (not a loadtest run directory?)")
    saved = _read_config(saved_path, directory)
    now = _comparable(cfg.to_json())
    differ = [f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
              if saved.get(k) != now.get(k)]
    if differ:
        raise ConfigError(f"--resume {directory}: options differ from the run being resumed ({'; '.join(differ)})")

    path = directory / "requests.jsonl"
    kept: list[bytes] = []
    done: set[int] = set()
    first_start = last_end = None
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"--resume {directory}: cannot read requests.jsonl ({exc.strerror or exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if number == len(lines):
                continue  # the last line, which a crash cut short
            raise ConfigError(f"--resume {directory}: requests.jsonl line {number} is not JSON ({exc}); only the "
                              "last line can be cut short by a crash") from None
        if not _is_record(row):
            raise ConfigError(f"--resume {directory}: requests.jsonl line {number} is not a request record "
                              "(an object with an integer id and a start_s)")
        if row.get("error_kind") in _REDONE:
            continue
        kept.append(line)
        done.add(row["id"])
        if not row.get("warmup"):
            first_start = row["start_s"] if first_start is None else min(first_start, row["start_s"])
            if row.get("end_s") is not None:
                last_end = row["end_s"] if last_end is None else max(last_end, row["end_s"])
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_bytes(b"".join(line + b"\n" for line in kept))
    os.replace(tmp, path)

    pieces = _earlier_pieces(directory, first_start, last_end, len(kept))
    if cfg.duration_s is not None:
        spent = sum(p["window_s"] or 0.0 for p in pieces)
        if spent >= cfg.duration_s:
            raise ConfigError(f"--resume {directory}: the run already measured its --duration {cfg.duration_s:g} s")
        return ResumePlan(next_index=max(done, default=cfg.warmup - 1) + 1, remaining_s=cfg.duration_s - spent,
                          pieces=pieces)
    assert cfg.num_prompts is not None
    todo = [i for i in range(cfg.warmup, cfg.warmup + cfg.num_prompts) if i not in done]
    if not todo:
        raise ConfigError(f"--resume {directory}: every request of that run is already done")
    return ResumePlan(todo=todo, pieces=pieces)


def _read_config(saved_path: Path, directory: Path) -> dict[str, Any]:
    """The saved run's config.json, or one line saying why it cannot be the config of a run."""
    try:
        saved = orjson.loads(saved_path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--resume {directory}: cannot read {CONFIG_FILE} ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--resume {directory}: {CONFIG_FILE} is not valid JSON ({exc})") from None
    if not isinstance(saved, dict) or "command" not in saved:
        raise ConfigError(f"--resume {directory}: {CONFIG_FILE} is not a loadtest run's config (an object with "
                          "its options)")
    return saved


def _is_record(row: Any) -> bool:
    number = (int, float)
    return (isinstance(row, dict) and isinstance(row.get("id"), int) and not isinstance(row.get("id"), bool)
            and isinstance(row.get("start_s"), number) and isinstance(row.get("end_s"), (*number, type(None))))


def _earlier_pieces(directory: Path, first_start: float | None, last_end: float | None,
                    rows: int) -> list[dict[str, Any]]:
    """From summary.json (an interrupted run wrote one); after a crash, from the rows' span."""
    summary_path = directory / "summary.json"
    if summary_path.is_file():
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pieces = orjson.loads(summary_path.read_bytes())["run"].get("pieces")
            if pieces and isinstance(pieces, list) and all(
                    isinstance(p, dict) and isinstance(p.get("window_s"), (int, float, type(None))) for p in pieces):
                return list(pieces)
    span = last_end - first_start if first_start is not None and last_end is not None else None
    return [{"started_at": None, "ended": "crashed", "window_s": span, "requests": rows}]
