"""Results: requests.jsonl written as each request completes, summary.json, and the console table."""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import IO, Any

import orjson
from tabulate import tabulate

from loadtest import __version__
from loadtest.measure.definitions import DEFINITIONS
from loadtest.measure.hosted import console_lines
from loadtest.errors import ConfigError
from loadtest.measure.record import RequestRecord
from loadtest.redact import redact, redact_tree

SCHEMA_VERSION = 1


def default_output_dir(command: str, root: Path = Path("results")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{command}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{command}-{n}"
    return path


RUN_FILES = ("requests.jsonl", "summary.json", "summary.json.tmp")


def prepare_output_dir(directory: Path, *, overwrite: bool = False, resume: bool = False) -> None:
    """Make ``directory`` ready for a run, or raise ConfigError (one line) before anything starts.

    A directory that already holds a run is never appended to silently (two runs' rows under one
    summary): it is refused unless ``overwrite`` (its run files are removed first) or ``resume``.
    """
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--output {directory} is a file, not a directory")
    held = [name for name in RUN_FILES[:2] if (directory / name).exists()]
    if resume:
        if not (directory / "requests.jsonl").is_file():
            raise ConfigError(f"--resume {directory}: no requests.jsonl there to resume from")
    elif held:
        if not overwrite:
            raise ConfigError(f"--output {directory} already holds a run ({', '.join(held)}); "
                              "pass --overwrite to replace it or --resume DIR to continue it")
        for name in RUN_FILES:
            (directory / name).unlink(missing_ok=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".loadtest-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--output {directory} is not a writable directory: {exc.strerror or exc}") from None


class RecordWriter:
    """Appends one JSON line per finished request and flushes it, so a run cut short (Ctrl-C, a
    crash, a dead server) keeps everything already measured."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "requests.jsonl"
        self._fh: IO[bytes] = open(self.path, "ab")
        self.count = 0

    def write(self, record: RequestRecord) -> None:
        if record.error is not None:  # failed requests only: a message may quote a URL
            record.error = redact(record.error)
        self._fh.write(record.to_json() + b"\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        self._fh.close()


def client_info(transport: str, loop_name: str) -> dict[str, Any]:
    return {
        "loadtest_version": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "transport": transport,
        "event_loop": loop_name,
    }


def write_summary(directory: Path, summary: dict[str, Any]) -> Path:
    path = directory / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)
    return path


def build_summary(*, command: str, config: dict[str, Any], client: dict[str, Any], result: dict[str, Any],
                  run: dict[str, Any], server: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "config": config,
        "client": client,
        "server": redact_tree(server),  # an --engine-arg may carry a key
        "run": run,
        "definitions": DEFINITIONS,
        **result,
    }


def _fmt(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v * scale:,.{digits}f}"


_ROWS = [  # (metric, label, scale, digits)
    ("tokens_per_s", "tokens/s per request (completion / e2e)", 1, 2),
    ("ttft_s", "TTFT (ms)", 1e3, 1),
    ("ttft_content_s", "TTFT, visible content (ms)", 1e3, 1),
    ("tpot_s", "TPOT (ms)", 1e3, 2),
    ("itl_s", "ITL (ms, per token)", 1e3, 2),
    ("itl_chunk_s", "ITL (ms, per chunk)", 1e3, 2),
    ("decode_tokens_per_s", "decode tokens/s", 1, 1),
    ("e2e_s", "end-to-end latency (s)", 1, 3),
]


def _load(cfg: dict[str, Any]) -> str:
    """The load shape in a few words: 'concurrency 8' or 'rate 40 req/s (poisson, max 16 in flight)'."""
    rate = cfg.get("request_rate")
    if rate is None:
        return f"concurrency {cfg['concurrency']}"
    cap = f", max {cfg['max_concurrency']} in flight" if cfg.get("max_concurrency") else ""
    return f"rate {rate if isinstance(rate, str) else format(rate, 'g')} req/s ({cfg.get('arrival', 'poisson')}{cap})"


def render_rows(rows: list[list[str]], headers: list[str]) -> str:
    """A plain console table (no number parsing: values are shown exactly as given)."""
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def render_table(summary: dict[str, Any]) -> str:
    m = summary["metrics"]
    counts = summary["counts"]
    rows = []
    for key, label, scale, digits in _ROWS:
        s = m.get(key)
        if not s or not s.get("count"):
            continue
        if key == "ttft_content_s" and m["ttft_s"].get("mean") == s.get("mean"):
            continue  # identical unless the model reasons
        rows.append([label] + [_fmt(s[k], scale, digits) for k in ("mean", "p50", "p90", "p99", "min", "max")])
    table = tabulate(rows, headers=["metric", "mean", "p50", "p90", "p99", "min", "max"],
                     tablefmt="simple", disable_numparse=True, colalign=("left",) + ("right",) * 6)
    srcs = ", ".join(f"{k}: {v}" for k, v in summary["token_source"].items()) or "-"
    head = [
        f"{summary['command']}: {counts['completed']}/{counts['requests']} requests completed, "
        f"{counts['failed']} failed" + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")
        + f"  |  {_load(summary['config'])}  |  window {_fmt(m['window_s'], 1, 2)} s",
        f"requests/min {_fmt(m['requests_per_min'], 1, 1)}  |  output tokens/s {_fmt(m['output_tokens_per_s'], 1, 1)}"
        f"  |  completion tokens {m['completion_tokens_total']:,}  |  token source: {srcs}",
    ]
    chunk_srcs = summary.get("chunk_token_source")
    if chunk_srcs:
        how = "exact" if summary.get("chunk_tokens_exact") else "estimated (first chunk 1 token, the rest by text)"
        head.append(f"tokens per chunk: {how}: " + ", ".join(f"{k}: {v}" for k, v in chunk_srcs.items()))
    head += console_lines(summary)
    if summary["errors"]:
        head.append("errors: " + "; ".join(f"{k} x{v['count']} ({v['example']})" for k, v in summary["errors"].items()))
    if summary["run"].get("ended") not in (None, "done", "deadline"):
        head.append(f"run ended early: {summary['run']['ended']}")
    if summary["run"].get("resumed"):
        spans = ", ".join(f"{p['window_s']:.1f} s" if p["window_s"] is not None else "-" for p in summary["run"]["pieces"])
        head.append(f"resumed run: {len(summary['run']['pieces'])} pieces ({spans}), statistics over all of them")
    return "\n".join(head) + "\n\n" + table

