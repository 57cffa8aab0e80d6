"""Saved runs read back for reports: summary.json and requests.jsonl, read defensively.

Result files from other versions (older, newer, other commands such as sweeps) must never crash a
report: every field is looked up with a default, and a field the report does not know is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from loadtest.errors import ConfigError

MISSING = "-"


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """A JSON-lines file's objects one line at a time (a long run's file is never held whole in
    memory); nothing when the file is missing, a torn or non-object line skipped."""
    try:
        f = path.open("rb")
    except OSError:
        return
    with f:
        for line in f:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


GROUP_KEYS = ("engine", "model", "command", "variant", "run")
"""What ``report --by`` takes besides a config/server/run/client field of the saved summaries."""


def dig(d: Any, *keys: str, default: Any = None) -> Any:
    """d[k1][k2]... or default when any level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return default if d is None else d


@dataclass
class SavedRun:
    """One run directory."""

    path: Path
    summary: dict[str, Any]
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """requests.jsonl rows (warm-up requests left out); [] when the file is missing. A torn last
        line (a run killed mid-write) is skipped."""
        return [row for row in iter_jsonl(self.path / "requests.jsonl") if not row.get("warmup")]

    @property
    def ok_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("ok")]

    # -- identity ---------------------------------------------------------------------------
    @property
    def command(self) -> str:
        return str(self.summary.get("command") or MISSING)

    @property
    def engine(self) -> str:
        """The launched engine, with its variant when not the default (compiled, dtype, attention)."""
        server = self.summary.get("server")
        name = dig(server, "engine")
        if not name:
            return str(self.extra.get("engine") or MISSING)
        tags = []
        if dig(server, "compile"):
            tags.append("compile")
        return name + (":" + ":".join(tags) if tags else "")

    @property
    def model(self) -> str:
        """What the user asked for (`smollm2`, a file's or directory's name), not the path an engine
        happened to load (transformers serves an exported copy): the same model must get the same
        name on every engine for the tables to line up."""
        server = self.summary.get("server")
        requested = dig(server, "model", "requested")
        if not requested and str(dig(server, "model", "source", default="")).startswith("PyPI wheel"):
            requested = "smollm2"  # the embedded model, launched without --model
        name = (requested or dig(server, "model_name") or dig(self.summary, "run", "model")
                or dig(self.summary, "config", "model") or self.extra.get("model"))
        if not name:
            return MISSING
        name = str(name)
        if "/" in name and (name.startswith(("/", ".")) or Path(name).exists()):
            path = Path(name)
            name = path.stem if path.suffix.lower() == ".gguf" else path.name
        return name

    @property
    def variant(self) -> str:
        """How the engine ran: dtype, attention implementation, compile, quantisation."""
        server = self.summary.get("server") or {}
        parts = [f"{k}={server[k]}" for k in ("dtype", "attn_implementation", "quantisation") if server.get(k)]
        if server.get("compile"):
            parts.append("torch.compile")
        return ", ".join(parts) or MISSING

    def key(self, name: str) -> str:
        """A value to group or pivot by: engine, model, command, variant, or a config/server field."""
        if name in ("engine", "model", "command", "variant"):
            return str(getattr(self, name))
        if name == "run":
            return self.label
        for section in ("config", "server", "run", "client"):
            v = dig(self.summary, section, name)
            if v is not None:
                return str(v)
        return MISSING

    def has_key(self, name: str) -> bool:
        """Whether ``key(name)`` names something this run can have (a field it saved, even if null)."""
        return name in GROUP_KEYS or any(isinstance(self.summary.get(section), dict)
                                         and name in self.summary[section]
                                         for section in ("config", "server", "run", "client"))

    # -- numbers ----------------------------------------------------------------------------
    def metric(self, name: str, stat: str | None = None) -> float | None:
        v = dig(self.summary, "metrics", name)
        if stat is not None:
            v = dig(v, stat)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def count(self, name: str) -> int | None:
        """counts.NAME: a non-negative integer, else None (not measured): a string, a list, a
        boolean or a negative number in a hand-edited or foreign summary is never read as a count."""
        v = dig(self.summary, "counts", name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    @property
    def peak_memory_mb(self) -> float | None:
        """Peak memory of the engine: GPU memory when a GPU was sampled, else the process tree's RSS."""
        res = dig(self.summary, "server", "resources")
        for k in ("gpu_mem_peak_mb", "rss_peak_mb"):
            v = dig(res, k)
            if isinstance(v, (int, float)):
                return float(v)
        return None


def _is_run(path: Path) -> bool:
    return (path / "summary.json").is_file()


def _outermost(runs: list[Path]) -> list[Path]:
    """Runs not inside another run: a --repeat group's summary stands for its reps (DIR/rep-k),
    which are not counted twice (name a rep's directory to see it alone)."""
    found = set(runs)
    return [r for r in runs if not any(parent in found for parent in r.parents)]


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories under the given paths: a run itself, or any directory holding runs at any
    depth (a matrix output, a folder of results), in sorted order."""
    found: list[Path] = []
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory")
        if p.is_file() and p.name == "summary.json":
            p = p.parent
        if _is_run(p):
            found.append(p)
            continue
        nested = _outermost(sorted(s.parent for s in p.rglob("summary.json")))
        if not nested and p.is_dir() and any(p.rglob(FAILED_FILE)):
            continue  # a matrix directory where every pair failed: the failures are the report
        if not nested:
            raise ConfigError(f"{p}: no saved run here (no summary.json)")
        found.extend(nested)
    return found


def load_run(path: Path, root: Path | None = None) -> SavedRun:
    try:
        summary = orjson.loads((path / "summary.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path / 'summary.json'}: cannot read it ({exc})") from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path / 'summary.json'}: not a run summary")
    nested = root is not None and path != root and path.is_relative_to(root)
    label = str(path.relative_to(root)) if nested else path.name  # type: ignore[arg-type]
    return SavedRun(path=path, summary=summary, label=label)


def load_runs(paths: list[Path]) -> list[SavedRun]:
    runs = []
    for p in paths:
        root = p if p.is_dir() and not _is_run(p) else None
        runs.extend(load_run(r, root) for r in find_runs([p]))
    return runs


FAILED_FILE = "failed.json"


def find_failures(paths: list[Path]) -> list[dict[str, Any]]:
    """What `loadtest matrix` left for pairs that failed (engine, model, error), so a report of a
    matrix directory shows them as rows that say why."""
    out: list[dict[str, Any]] = []
    for p in paths:
        files = [p / FAILED_FILE] if (p / FAILED_FILE).is_file() else sorted(p.rglob(FAILED_FILE)) if p.is_dir() else []
        for f in files:
            try:
                data = orjson.loads(f.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if isinstance(data, dict):
                out.append({"engine": str(data.get("engine", MISSING)), "model": str(data.get("model", MISSING)),
                            "error": str(data.get("error", MISSING))})
    return out
