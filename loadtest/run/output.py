"""Results on disk: the run directory, requests.jsonl written as each request completes, and
summary.json (the console's view of it is console.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from loadtest import __version__
from loadtest.errors import ConfigError, OutputError
from loadtest.measure.definitions import DEFINITIONS
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
    writable_dir(directory)


def writable_dir(directory: Path, option: str = "--output") -> None:
    """Create ``directory`` and write a probe file in it, or raise ConfigError (one line naming
    ``option``): every command that writes results checks this before it measures anything, so a
    destination it cannot write never costs a whole sweep."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{option} {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".loadtest-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {directory} is not a writable directory: {exc.strerror or exc}") from None


def writable_file(path: Path, option: str = "--output") -> None:
    """``path`` can be written (its directory is created, the file itself is not): ConfigError
    naming ``option`` otherwise, before a report or a comparison is built."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory: name a file to write")
    writable_dir(path.parent if str(path.parent) else Path("."), option=f"{option} {path}: its directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path} is not writable")


class RecordWriter:
    """Appends one JSON line per finished request and flushes it, so a run cut short (Ctrl-C, a
    crash, a dead server) keeps everything already measured.

    Each line is written whole or not at all: when the disk is full (or a file size limit is
    reached) the part of a line that got out is cut off again, so requests.jsonl only ever holds
    whole records; ``failed`` keeps the OS's reason and every later record is refused at once
    (``WriteFailed``), for the run to stop and say so."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "requests.jsonl"
        self._fh: IO[bytes] = open(self.path, "ab", buffering=0)
        self._end = self._fh.seek(0, os.SEEK_END)
        self.count = 0
        self.failed: OSError | None = None

    def write(self, record: RequestRecord) -> None:
        if record.error is not None:  # failed requests only: a message may quote a URL
            record.error = redact(record.error)
        self._append(record.to_json() + b"\n")

    def _append(self, line: bytes) -> None:
        """``line`` whole, or WriteFailed with none of it left in the file."""
        if self.failed is not None:
            raise WriteFailed(self.path, self.failed)
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fh.fileno(), view):]
        except OSError as exc:
            self.failed = exc
            try:
                os.ftruncate(self._fh.fileno(), self._end)
            except OSError:
                pass  # nothing more to do: the reader drops a last line cut short
            raise WriteFailed(self.path, exc) from None
        self._end += len(line)
        self.count += 1

    def close(self) -> None:
        self._fh.close()


class WriteFailed(OSError):
    """A record that could not be written (the disk is full...); the file holds whole records only."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror, str(path))
        self.cause = cause


def write_failure_line(path: Path, exc: OSError, kept: int) -> str:
    """The one line a run stopped by a failed write ends with: the OS's reason, where, what was kept."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EFBIG:
        reason += " (the file size limit, ulimit -f)"
    return (f"cannot write {path}: {reason}; the run stopped there, and requests.jsonl keeps the {kept} whole "
            "records written before it")


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
    """summary.json, whole or not at all (a temporary file renamed over it): when the disk is full
    the temporary file is removed, OutputError raised, and an older summary.json stays as it was."""
    path = directory / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; requests.jsonl in {directory} keeps "
                          "every whole record written") from None
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


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """requests.jsonl one line at a time (a long run's file is never held in memory)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)
